"""Run folders: `runs/<run.name>/` holds the resolved config, the folds and every stage's output.
`Run` is the one place that knows the layout; no other module spells a file name inside a run:

    runs/<name>/config.toml            the resolved config
                folds.csv              id, fold (computed once)
                eda/                   prevalence.csv, cooccurrence.csv, lengths.csv, length_summary.csv, summary.json
                folds/fold<k>_oof.csv, fold<k>_test.csv, fold<k>_record.json (written last: the fold is complete)
                folds/fold<k>_model/   the fold's best weights (safetensors, loadable by `predict`)
                features/              cached frozen-encoder embeddings (model.kind = features)
                oof.csv, test_pred.csv, metrics.json
    runs/_lm/<key>/                    an LM stage's output, keyed by what it depends on (checkpoint,
                                       data, lm.*), so runs that differ only in classifier settings share it

A run name is bound to its config: reopening it with settings that change results is refused, so
outputs in one folder always come from one config. Settings that only change how a run is
watched or where it writes (device, progress bars, the submission name) may differ.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from . import config as config_mod
from .config import Config
from .data import CompetitionData, load_competition
from .errors import RunError
from .folds import load_or_make_folds
from .atomic import read_json, write_atomic
from .paths import run_dir
from .tasks import TaskSpec, get_task

log = logging.getLogger("kagglebert")

# keys that do not change what a run computes
NEUTRAL_KEYS = {
    "run.device", "run.progress", "run.runs_dir", "data.cache_dir",
    "train.log_every", "train.eval_batch_size", "train.folds", "submit.dir", "submit.name", "eda.examples_per_label",
}


def flat(cfg_dict: dict) -> dict:
    return {f"{section}.{key}": value for section, values in cfg_dict.items() for key, value in values.items()}


LM_STORE = "_lm"  # under runs_dir; run names may not start with "_"
# what an LM stage's output depends on: runs equal on these share one trained LM
LM_KEY_FIELDS = ("run.task", "run.seed", "data.dir", "data.max_rows", "data.fold_seed", "model.name")


def lm_key(cfg: Config) -> str:
    """A short hash of every setting the LM stage's result depends on (and nothing else)."""
    values = flat(cfg.to_dict())
    picked = {k: values[k] for k in LM_KEY_FIELDS} | {k: v for k, v in values.items() if k.startswith("lm.")}
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Run:
    cfg: Config
    dir: Path
    task: TaskSpec
    read_only: bool = False  # opened by a reader (report, blend, predict): nothing is written

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    # the layout, in one place
    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    @property
    def folds_path(self) -> Path:
        return self.dir / "folds.csv"

    @property
    def eda_dir(self) -> Path:
        return self.dir / "eda"

    @property
    def features_dir(self) -> Path:
        return self.dir / "features"

    @property
    def oof_path(self) -> Path:
        return self.dir / "oof.csv"

    @property
    def test_pred_path(self) -> Path:
        return self.dir / "test_pred.csv"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.json"

    def fold_file(self, fold: int, kind: str) -> Path:
        """kind: `oof.csv`, `test.csv` or `record.json` (the record is written last)."""
        return self.dir / "folds" / f"fold{fold}_{kind}"

    def fold_model_dir(self, fold: int) -> Path:
        return self.dir / "folds" / f"fold{fold}_model"

    def fold_complete(self, fold: int) -> bool:
        return self.fold_file(fold, "record.json").is_file()

    @property
    def lm_dir(self) -> Path:
        """This run's LM stage output (shared with every run whose LM settings and inputs agree)."""
        return Path(self.cfg.run.runs_dir) / LM_STORE / lm_key(self.cfg)

    @property
    def lm_metrics_path(self) -> Path:
        return self.lm_dir / "lm_metrics.json"

    def lm_complete(self) -> bool:
        return self.lm_metrics_path.is_file()

    def load_data(self) -> CompetitionData:
        cfg = self.cfg
        return load_competition(self.task, cfg.data.dir, cfg.data.max_rows, cfg.data.fold_seed)

    def folds(self, data: CompetitionData):
        """(id, fold) rows in the order of `data.train`, computed once and saved as folds.csv."""
        return load_or_make_folds(
            self.folds_path, data.train[self.task.id_column], self.task.stratify_targets(data.labels),
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


def read_run(runs_dir: str | Path, name: str) -> Run:
    """A finished or partial run, opened read-only: its config is read from the folder, nothing
    is written, so a read-only folder (an attached Kaggle dataset) works."""
    folder = run_dir(str(runs_dir), name) if not Path(name).is_absolute() else Path(name)
    saved = folder / "config.toml"
    if not saved.is_file():
        raise RunError(f"{folder}: not a kagglebert run folder (no config.toml)")
    cfg = config_mod.load(saved)
    cfg.run.runs_dir = str(folder.parent)
    return Run(cfg, folder, get_task(cfg.run.task), read_only=True)


def reader(cfg: Config) -> Run:
    """The run `cfg` names, for reading: the folder need not exist yet and nothing is written."""
    return Run(cfg, run_dir(cfg.run.runs_dir, cfg.run.name), get_task(cfg.run.task), read_only=True)
