"""Notebook profiles: one word picks a whole config, so the same notebook runs on a laptop CPU and
on a Kaggle/Colab GPU without edits.

    quick — the bundled sample, the packaged MiniLM, a label-stratified subsample: minutes on a CPU.
    full  — the competition data (/kaggle/input/<slug>/ or data.dir), bert-base-uncased (or any model
            id or folder via model.name=...), GPU-sized settings.

`KAGGLEBERT_PROFILE` overrides the notebook's PROFILE and `KAGGLEBERT_OVERRIDES` adds `--set`-style
overrides (`data.max_rows=120 train.epochs=1`, shell-quoted, separated by spaces), so a test or a
scheduled job can shrink or redirect a notebook without touching it. The same profile in every
notebook gives the same run names, so 02–04 pick up what the notebooks before them made.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..core import config as config_mod
from ..core.config import Config
from ..core.errors import ConfigError
from ..stages import pipeline
from ..core.paths import KAGGLE_INPUT, REPO_ROOT

PROFILE_ENV = "KAGGLEBERT_PROFILE"
OVERRIDES_ENV = "KAGGLEBERT_OVERRIDES"

PROFILES: dict[str, dict] = {
    "quick": {
        "run": {"name": "quick", "progress": False},
        "data": {"max_rows": 1500, "n_folds": 3},
        "model": {"name": "packaged-minilm", "max_length": 128, "truncation": "head+tail", "head_tokens": 64,
                  "pooling": "mean"},  # MiniLM was trained as a mean-pooled sentence encoder
        "lm": {"epochs": 1, "block_size": 128, "batch_size": 32, "lr": 1e-4},
        "train": {"epochs": 2, "batch_size": 32, "lr": 6e-5, "head_lr": 1e-3, "layer_decay": 0.95,
                  "warmup_ratio": 0.06, "schedule": "linear", "pos_weight_power": 0.5},
    },
    "full": {  # the values of configs/kaggle-bert-base.toml (configs/ does not ship in the wheel)
        "run": {"name": "full", "progress": True},
        "data": {"max_rows": 0, "n_folds": 5},
        # Sun et al. 2019: lr 2e-5..5e-5, warm-up 10%, layer decay 0.95, head+tail truncation
        "model": {"name": "bert-base-uncased", "max_length": 256, "truncation": "head+tail", "head_tokens": 128,
                  "pooling": "mean"},
        "lm": {"epochs": 1, "block_size": 128, "batch_size": 32, "lr": 5e-5, "warmup_ratio": 0.06},
        "train": {"epochs": 2, "batch_size": 32, "eval_batch_size": 256, "lr": 2e-5, "head_lr": 1e-3,
                  "layer_decay": 0.95, "warmup_ratio": 0.1, "schedule": "linear"},
    },
}


def where() -> str:
    """'kaggle' | 'colab' | 'local', from the folders each one has."""
    if KAGGLE_INPUT.is_dir():
        return "kaggle"
    if os.path.isdir("/content"):  # Colab's working folder; no other place we run has it
        return "colab"
    return "local"


def output_dirs() -> dict:
    """Writable places for run folders and submissions: /kaggle/working on Kaggle, the repository
    root in a clone (so every notebook finds the same runs/ whatever its working directory), else
    the working directory."""
    if where() == "kaggle":
        base = Path("/kaggle/working")
    elif (REPO_ROOT / "pyproject.toml").is_file():
        base = REPO_ROOT
    else:
        base = Path.cwd()
    return {"run": {"runs_dir": str(base / "runs")}, "submit": {"dir": str(base / "submissions")}}


def parse_overrides(text: str) -> list[str]:
    """`data.max_rows=120 model.name='/tmp/my model'` → ['data.max_rows=120', 'model.name=/tmp/my model']."""
    return shlex.split(text)


def load(profile: str = "quick", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The profile's config; KAGGLEBERT_PROFILE wins over `profile`, then `overrides`, then
    KAGGLEBERT_OVERRIDES are applied (each `section.key=value`, checked like `--set`)."""
    name = os.environ.get(PROFILE_ENV) or profile
    if name not in PROFILES:
        raise ConfigError(f"profile {name!r}: choose one of {', '.join(PROFILES)}")
    cfg = config_mod.from_dict(PROFILES[name], source=f"profile {name}")
    cfg = cfg.replace(**output_dirs())
    for text in [*overrides, *parse_overrides(os.environ.get(OVERRIDES_ENV, ""))]:
        key, value = config_mod.parse_override(text)
        config_mod.set_key(cfg, key, value, source=f"override {text}")
    config_mod.validate(cfg)
    return cfg


def variants(cfg: Config) -> dict[str, Config]:
    """The two arms of the question: FiT (fine-tune the classifier straight from the checkpoint)
    and ITPT-FiT (masked-LM on the competition text first). Same folds, seeds and recipe; only
    lm.epochs and the run name differ."""
    lm_epochs = cfg.lm.epochs if cfg.lm.epochs > 0 else 1
    return {
        "FiT": cfg.replace(run={"name": f"{cfg.run.name}-fit"}, lm={"epochs": 0}),
        "ITPT-FiT": cfg.replace(run={"name": f"{cfg.run.name}-itpt"}, lm={"epochs": lm_epochs}),
    }


# The classic baselines' own settings, as in configs/tfidf.toml and configs/features.toml (a test
# keeps them equal): everything else, data and folds included, comes from the profile, so their
# runs blend with the transformer runs.
BASELINES: dict[str, dict] = {
    "TF-IDF": {"model": {"kind": "tfidf"}, "train": {"C": 4.0}},
    "features": {"model": {"kind": "features", "max_length": 256, "truncation": "head+tail", "head_tokens": 128,
                           "pooling": "mean"}, "train": {"C": 0.01}},
}


def baselines(cfg: Config) -> dict[str, Config]:
    """TF-IDF + logistic regression and the frozen encoder's embeddings + logistic regression
    (BERT-Feat), on cfg's data and folds: `<name>-tfidf` and `<name>-features`."""
    return {
        label: cfg.replace(run={"name": f"{cfg.run.name}-{settings['model']['kind']}"}, lm={"epochs": 0}, **settings)
        for label, settings in BASELINES.items()
    }


def train_run(cfg: Config) -> dict | None:
    """Everything a run's classifier needs, reusing what is complete (`pipeline.fit`)."""
    return pipeline.fit(cfg)
