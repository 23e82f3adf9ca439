"""Shared fixtures: a tiny BERT built from a config (seconds to train on a CPU), a few hundred real
rows of the bundled sample, and a helper that runs the real CLI in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kagglebert.core.paths import BUNDLED_SAMPLE, REPO_ROOT, resolve_model

SAMPLE_TRAIN_ROWS = 300  # enough for 2 stratified folds and masking statistics, small enough for 2 cores


def read_raw_csv(path: Path) -> pd.DataFrame:
    """Every cell as the string in the file, the way kagglebert.data reads it."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised BertForMaskedLM (hidden 32, 2 layers, 2 heads) with the packaged
    MiniLM's tokenizer, saved like any checkpoint folder: the pipeline loads it by path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("packaged-minilm"), use_fast=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)  # the same tiny weights every session
    model = BertForMaskedLM(config)
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from kagglebert.core.tokenization import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The first SAMPLE_TRAIN_ROWS rows of the bundled train.csv plus the whole test.csv and
    sample_submission.csv, in the competition's file format."""
    folder = tmp_path_factory.mktemp("sample-data")
    read_raw_csv(BUNDLED_SAMPLE / "train.csv").head(SAMPLE_TRAIN_ROWS).to_csv(folder / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((BUNDLED_SAMPLE / name).read_bytes())
    return folder


@pytest.fixture()
def broken_copy(sample_dir, tmp_path):
    """`broken_copy(edit)` → a copy of the sample folder whose three frames went through
    `edit(train, test, sample)` (which changes them in place) before being written back."""

    def make(edit) -> Path:
        folder = tmp_path / "data"
        folder.mkdir()
        frames = {name: read_raw_csv(sample_dir / f"{name}.csv") for name in ("train", "test", "sample_submission")}
        edit(frames["train"], frames["test"], frames["sample_submission"])
        for name, frame in frames.items():
            frame.to_csv(folder / f"{name}.csv", index=False)
        return folder

    return make


def cli_env() -> dict:
    env = dict(os.environ)
    # offline: a test must never reach the hub; one thread: a hidden-32 model gains nothing from
    # more, and spinning OpenMP threads slow everyone down on a shared 2-core machine
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli("run", "--set", ...)` → the finished `python -m kagglebert ...` process (text output)."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kagglebert", *map(str, args)],
            cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=timeout,
        )

    return run


def small_run_overrides(data_dir: Path, model_dir: Path, work: Path, **extra: str) -> list[str]:
    """`--set` arguments for a quick CPU run of configs/demo.toml writing only under `work`."""
    values = {
        "data.dir": data_dir,
        "model.name": model_dir,
        "data.max_rows": 200,
        "data.max_test_rows": 200,
        "data.n_folds": 2,
        "train.epochs": 1,
        "lm.epochs": 1,
        "run.runs_dir": work / "runs",
        "submit.dir": work / "submissions",
        "run.progress": "false",
        "data.cache_dir": work / "cache",
        **extra,
    }
    args = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture(scope="session")
def small_run_args():
    return small_run_overrides


def pytest_configure(config):
    # tests that take tens of seconds are marked slow: `pytest -m "not slow"` for a quick pass;
    # `make test` runs them all
    config.addinivalue_line("markers", "slow: takes tens of seconds; deselect with -m 'not slow'")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps process-wide state once anything creates it (the bench's Hugging Face
    Trainer does), and `notebook_launcher` then refuses to start; each test leaves it as it found it."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)
