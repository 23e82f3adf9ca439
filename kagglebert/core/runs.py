"""Run folders: `runs/<run.name>/` holds the resolved config, the folds and every stage's output.

A run name is bound to its config: reopening it with settings that change results is refused, so
outputs in one folder always come from one config. Settings that only change how a run is
watched or where it writes (device, progress bars, the submission name) may differ.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import config as config_mod
from .config import Config
from .data import CompetitionData, load_competition
from .errors import RunError
from .folds import load_or_make_folds
from .paths import run_dir, temporary_path
from .tasks import TaskSpec, get_task

log = logging.getLogger("kagglebert")

# keys that do not change what a run computes
NEUTRAL_KEYS = {
    "run.device", "run.progress", "run.runs_dir", "data.cache_dir",
    "train.log_every", "train.eval_batch_size", "train.folds", "submit.dir", "submit.name", "eda.examples_per_label",
}


def flat(cfg_dict: dict) -> dict:
    return {f"{section}.{key}": value for section, values in cfg_dict.items() for key, value in values.items()}


@dataclass
class Run:
    cfg: Config
    dir: Path
    task: TaskSpec

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def load_data(self) -> CompetitionData:
        cfg = self.cfg
        return load_competition(self.task, cfg.data.dir, cfg.data.max_rows, cfg.data.fold_seed)

    def folds(self, data: CompetitionData):
        """(id, fold) rows in the order of `data.train`, computed once and saved as folds.csv."""
        return load_or_make_folds(
            self.path("folds.csv"), data.train[self.task.id_column], self.task.stratify_targets(data.labels),
            self.cfg.data.n_folds, self.cfg.data.fold_seed,
        )


def open_run(cfg: Config) -> Run:
    """Create or reopen the run folder; refuse a different config under the same name."""
    folder = run_dir(cfg.run.runs_dir, cfg.run.name)
    saved = folder / "config.toml"
    if saved.is_file():
        old = flat(config_mod.load(saved).to_dict())
        new = flat(cfg.to_dict())
        changed = [k for k in new if k not in NEUTRAL_KEYS and old.get(k) != new[k]]
        if changed:
            shown = "; ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in changed[:4])
            raise RunError(
                f"{folder}: this run was made with another config ({shown}). "
                f"Use a new name (--set run.name=...) or delete {folder} to start over"
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, config_mod.dumps(cfg))
    return Run(cfg, folder, get_task(cfg.run.task))


def write_atomic(path: Path, text: str) -> None:
    tmp = temporary_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, payload: dict) -> None:
    write_atomic(path, json.dumps(payload, indent=2, default=float) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
