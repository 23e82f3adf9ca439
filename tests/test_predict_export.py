"""`predict`, `kagglebert.load_run` and `export` on tiny runs trained through the real CLI (tiny BERT,
2 folds, 1 epoch): predictions from the saved fold models equal the run's own test predictions
(exactly, up to float printing, with fp32 files; to fp16 rounding with fp16 files), the Python API
agrees with the CLI, an exported folder predicts like the run it came from, notebook 05 runs on an
export, and every bad input is one line, exit status 2, nothing written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import read_raw_csv

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, run_cli, small_run_args, sample_dir, tiny_model_dir):
    """`trained(dtype)` → (runs_dir, run name) of a finished tiny run whose fold models were saved
    in `dtype`; each dtype is trained once per session."""
    made: dict[str, tuple[Path, str]] = {}

    def train(dtype: str = "fp16") -> tuple[Path, str]:
        if dtype not in made:
            work = tmp_path_factory.mktemp(f"run-{dtype}")
            name = f"tiny-{dtype}"
            done = run_cli("train", "--config", "demo",
                           *small_run_args(sample_dir, tiny_model_dir, work, **{"lm.epochs": 0, "run.name": name,
                                                                                "train.save_dtype": dtype}))
            assert done.returncode == 0, done.stderr
            made[dtype] = (work / "runs", name)
        return made[dtype]

    return train


def read_pred(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def test_predict_on_the_test_file_equals_the_runs_own_predictions(trained, run_cli, sample_dir, tmp_path):
    """fp32 fold files: the same weights as the in-memory model that wrote test_pred.csv, so the same
    numbers up to the CSV's 6 significant digits; fp16 files: within fp16 rounding of the weights."""
    for dtype, tolerance in (("fp32", 2e-6), ("fp16", 5e-4)):
        runs_dir, name = trained(dtype)
        out = tmp_path / f"{dtype}.csv"
        done = run_cli("predict", "--run", name, "--runs-dir", runs_dir, "--input", sample_dir / "test.csv", "--output", out)
        assert done.returncode == 0, done.stderr
        # test.csv with sample_submission.csv beside it: a validated submission in sample order
        assert f"submission: {out}" in done.stdout and "kaggle competitions submit" in done.stdout
        got = read_pred(out)
        sample = read_raw_csv(sample_dir / "sample_submission.csv")
        assert list(got.columns) == list(sample.columns) and list(got["id"]) == list(sample["id"])
        own = read_pred(runs_dir / name / "test_pred.csv")  # the run predicted a max_rows subsample of test
        mine = got.set_index("id").loc[own["id"], LABELS].to_numpy()
        difference = np.abs(mine - own[LABELS].to_numpy()).max()
        assert difference <= tolerance, f"{dtype}: largest difference {difference}"
