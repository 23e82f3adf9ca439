"""Run folders: `runs/<run.name>/` holds the resolved config, the folds and every stage's output.
`Run` is the one place that knows the layout; no other module spells a file name inside a run:

    runs/<name>/config.toml            the resolved config
                inputs.json            sha256 of the data files and checkpoint it was made from, kagglebert's version
                .lock                  held (flock) by the process running a stage on it; holds its pid
                folds.csv              id, fold (computed once)
                eda/                   prevalence.csv, cooccurrence.csv, lengths.csv, length_summary.csv, summary.json
                folds/fold<k>_oof.csv, fold<k>_test.csv, fold<k>_record.json (written last: the fold is complete)
                folds/fold<k>_model/   the fold's best weights (safetensors, loadable by `predict`)
                features/              cached frozen-encoder embeddings (model.kind = features)
                oof.csv, test_pred.csv, metrics.json
    runs/_lm/<key>/                    an LM stage's output, keyed by what it depends on (checkpoint,
                                       data, lm.*), so runs that differ only in classifier settings share it
    runs/_lm/.<key>.lock               held while an LM stage trains it (two runs sharing a key take turns)

A run name is bound to its config and its inputs: reopening it with settings that change results,
or with other data files, another checkpoint or another kagglebert version, is refused, so outputs
in one folder always come from one config and one set of inputs. Settings that only change how a
run is watched or where it writes (device, progress bars, the submission name) may differ.

`open_run` checks everything first (core/preflight.py) and only then creates the folder; a second
process on the same run folder is refused while the first holds its lock (core/locks.py). What a
run is bound to (the settings that matter, inputs.json, the LM key) is core/binding.py. Readers (`read_run`,
`reader`, `open_run(cfg, write=False)`) never write, so a read-only run folder can be read and
submitted.
"""
from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from . import config as config_mod
from . import distributed, preflight
from .binding import check_config_unchanged, check_inputs_unchanged, dumps_inputs, lm_key, read_inputs
from .config import Config
from .data import CompetitionData, load_competition
from .errors import RunError
from .fingerprints import folder_fingerprints
from .folds import load_or_make_folds
from .atomic import write_atomic
from .locks import acquire, fcntl, release
from .paths import run_dir
from .tasks import TaskSpec, get_task

log = logging.getLogger("kagglebert")

LM_STORE = "_lm"  # under runs_dir; run names may not start with "_"


@dataclass
class Run:
    cfg: Config
    dir: Path
    task: TaskSpec
    read_only: bool = False  # opened by a reader (report, blend, predict): nothing is written
    data: CompetitionData | None = field(default=None, repr=False)  # what preflight loaded, shared by the stage
    inputs: dict | None = field(default=None, repr=False)  # inputs.json's content (fingerprints)
    # the LM key the folder recorded when it was made (inputs.json's lm_key): set by open_run and
    # read_run, whose cfg is the folder's own; None for a `reader` (its cfg is the caller's)
    recorded_lm_key: str | None = field(default=None, repr=False)

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    # the layout, in one place
    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    @property
    def inputs_path(self) -> Path:
        return self.dir / "inputs.json"

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

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

    def fold_linear_path(self, fold: int) -> Path:
        """A tfidf or features fold's logistic regressions (and scaler): arrays, no pickle (core/linear)."""
        return self.dir / "folds" / f"fold{fold}_linear.npz"

    @property
    def vectorizer_path(self) -> Path:
        """A tfidf run's vectorizer settings and vocabulary (JSON); fitted once, shared by the folds."""
        return self.dir / "tfidf_vectorizer.json"

    @property
    def vectorizer_idf_path(self) -> Path:
        return self.dir / "tfidf_idf.npz"

    @property
    def encoder_dir(self) -> Path:
        """A features run's frozen encoder inside an export (a run folder of its own uses its checkpoint)."""
        return self.dir / "encoder"
    def fold_resume_dir(self, fold: int) -> Path:
        """A fold's checkpoint inside its training (`train.checkpoint_minutes`), gone once the fold is complete."""
        return self.dir / "folds" / f".fold{fold}.partial"

    @property
    def saves_models(self) -> bool:
        return self.cfg.train.save_models

    def fold_model_files(self, fold: int) -> list[Path]:
        """What serving fold `fold` needs, by model kind (folders or files)."""
        if self.cfg.model.kind == "transformer":
            return [self.fold_model_dir(fold)]
        if self.cfg.model.kind == "tfidf":
            return [self.fold_linear_path(fold), self.vectorizer_path, self.vectorizer_idf_path]
        return [self.fold_linear_path(fold)]

    def fold_complete(self, fold: int) -> bool:
        """The record marks a finished fold; with `train.save_models` its models must be there too, so
        a fold trained before models were kept (or whose model was deleted) is trained again."""
        return self.fold_file(fold, "record.json").is_file() and (
            not self.saves_models or all(p.exists() for p in self.fold_model_files(fold)))

    @property
    def lm_dir(self) -> Path:
        """This run's LM stage output (shared with every run whose LM settings and inputs agree).
        A run folder records its key when it is made, so reading a run back needs no data, model
        or preflight; only a `reader` of a run not made yet fingerprints the inputs as they are now."""
        if self.recorded_lm_key:
            return Path(self.cfg.run.runs_dir) / LM_STORE / self.recorded_lm_key
        if self.inputs is None:
            self.inputs = read_inputs(self.inputs_path) if self.inputs_path.is_file() else preflight.input_fingerprints(self.cfg)
        return Path(self.cfg.run.runs_dir) / LM_STORE / lm_key(self.cfg, self.inputs)

    @property
    def lm_metrics_path(self) -> Path:
        return self.lm_dir / "lm_metrics.json"

    @property
    def lm_resume_dir(self) -> Path:
        """The LM stage's state after its last finished epoch: hidden beside the LM's folder and keyed
        like it, so only the same LM settings and inputs resume from it."""
        return self.lm_dir.with_name(f".{self.lm_dir.name}.partial")

    @property
    def lm_lock_path(self) -> Path:
        return self.lm_dir.with_name(f".{self.lm_dir.name}.lock")

    def lm_complete(self) -> bool:
        return self.lm_metrics_path.is_file()

    def lock_lm(self) -> None:
        """Hold the shared LM output's lock for as long as this Run lives: two runs with one LM key
        (two names, or two notebooks on one disk) never train the same LM into one folder at once."""
        if fcntl is None or not distributed.is_main():
            return
        store = self.lm_dir.parent
        try:
            store.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"{store}: cannot create: {err.strerror or err}") from None
        key = acquire(self.lm_dir, self.lm_lock_path, "this LM stage is being trained by another kagglebert process")
        if key:
            weakref.finalize(self, release, key)

    def unlock_lm(self) -> None:
        """The LM is complete: its lock file goes (the store lists only finished LMs). Safe while
        others wait: whoever locks the unlinked file next rechecks and finds the LM complete."""
        if self.lm_complete():
            self.lm_lock_path.unlink(missing_ok=True)

    def load_data(self) -> CompetitionData:
        """The competition data, read once: preflight's copy when the run was opened by `open_run`."""
        if self.data is None:
            cfg = self.cfg
            self.data = load_competition(self.task, cfg.data.dir, cfg.data.max_rows, cfg.data.fold_seed, cfg.data.require_competition,
                                         max_test_rows=cfg.data.max_test_rows)
        return self.data

    def folds(self, data: CompetitionData):
        """(id, fold) rows in the order of `data.train`, computed once and saved as folds.csv."""
        return load_or_make_folds(
            self.folds_path, data.train[self.task.id_column], self.task.stratify_targets(data.train),
            self.cfg.data.n_folds, self.cfg.data.fold_seed, self.cfg.data.valid_frac,
        )


def open_run(cfg: Config, write: bool = True) -> Run:
    """Check every input (core/preflight.py), then create or reopen the run folder; refuse a different
    config or other inputs under the same name. Nothing is written until every check has passed.

    write=True (eda, lm, train): the folder is created, locked for as long as the returned Run is
    alive (rank 0 only under torchrun), and config.toml / inputs.json are written.
    write=False (submit): the run must exist; nothing in it is written, so a read-only folder works."""
    checked = preflight.preflight(cfg)
    task = get_task(cfg.run.task)
    folder = run_dir(cfg.run.runs_dir, cfg.run.name)
    check_config_unchanged(folder, cfg)
    inputs = checked.inputs()
    inputs["lm_key"] = key = lm_key(cfg, inputs)  # recorded: readers find the LM without a preflight
    provisional = Run(cfg, folder, task, data=checked.data, inputs=inputs, recorded_lm_key=key)
    if cfg.lm.epochs > 0 and provisional.lm_complete():
        # the classifier starts from the LM stage's output: bind the run to those files too
        inputs["lm_output"] = folder_fingerprints(provisional.lm_dir)
    merged = check_inputs_unchanged(folder, inputs)
    if not write:
        if not (folder / "config.toml").is_file():
            raise RunError(f"{folder}: no such run; train it first (`python -m kagglebert train` or `run`)")
        return Run(cfg, folder, task, read_only=True, data=checked.data, inputs=merged, recorded_lm_key=key)
    run = Run(cfg, folder, task, data=checked.data, inputs=merged, recorded_lm_key=key)
    if not distributed.is_main():  # under torchrun rank 0 locks and writes; the others only read
        return run
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"{folder}: cannot create: {err.strerror or err}") from None
    if fcntl is not None:
        key = acquire(folder, run.lock_path)
        if key:
            weakref.finalize(run, release, key)
        # checked again under the lock: another process may have written this run meanwhile
        check_config_unchanged(folder, cfg)
        run.inputs = merged = check_inputs_unchanged(folder, inputs)
    for path, text in ((run.config_path, config_mod.dumps(cfg)), (run.inputs_path, dumps_inputs(merged))):
        if not (path.is_file() and path.read_text(encoding="utf-8") == text):  # a reopened run: untouched
            write_atomic(path, text)
    return run


def read_run(runs_dir: str | Path, name: str) -> Run:
    """A finished or partial run, opened read-only: its config is read from the folder, nothing
    is written, so a read-only folder (an attached Kaggle dataset) works."""
    folder = run_dir(str(runs_dir), name) if not Path(name).is_absolute() else Path(name)
    saved = folder / "config.toml"
    if not saved.is_file():
        raise RunError(f"{folder}: not a kagglebert run folder (no config.toml)")
    cfg = config_mod.load(saved)
    cfg.run.runs_dir = str(folder.parent)
    inputs_path = folder / "inputs.json"
    inputs = read_inputs(inputs_path) if inputs_path.is_file() else {}  # {}: made before inputs.json existed
    # no lm_key: a folder made before keys were recorded; lm_dir then hashes the recorded inputs
    return Run(cfg, folder, get_task(cfg.run.task), read_only=True, inputs=inputs, recorded_lm_key=inputs.get("lm_key"))


def reader(cfg: Config) -> Run:
    """The run `cfg` names, for reading: the folder need not exist yet and nothing is written."""
    return Run(cfg, run_dir(cfg.run.runs_dir, cfg.run.name), get_task(cfg.run.task), read_only=True)
