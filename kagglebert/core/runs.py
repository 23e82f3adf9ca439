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

`open_run` checks everything first (core/checks.py) and only then creates the folder; a second
process on the same run folder is refused while the first holds its lock. Readers (`read_run`,
`reader`, `open_run(cfg, write=False)`) never write, so a read-only run folder can be read and
submitted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

from . import checks
from . import config as config_mod
from . import distributed
from .config import Config
from .data import CompetitionData, load_competition
from .errors import RunError
from .folds import load_or_make_folds
from .atomic import read_json, write_atomic
from .paths import run_dir
from .tasks import TaskSpec, get_task

log = logging.getLogger("kagglebert")

# keys that do not change what a run computes. data.dir is one: inputs.json binds the run to the
# files' content, so the same files found elsewhere (a clone vs /kaggle/input) are the same run
NEUTRAL_KEYS = {
    "run.device", "run.progress", "run.runs_dir", "data.cache_dir", "data.dir", "data.require_competition",
    "train.log_every", "lm.log_every", "train.eval_batch_size", "train.folds", "submit.dir", "submit.name", "eda.examples_per_label",
}


def flat(cfg_dict: dict) -> dict:
    return {f"{section}.{key}": value for section, values in cfg_dict.items() for key, value in values.items()}


LM_STORE = "_lm"  # under runs_dir; run names may not start with "_"
# what an LM stage's output depends on: runs equal on these share one trained LM
LM_KEY_FIELDS = ("run.task", "run.seed", "data.dir", "data.max_rows", "data.max_test_rows", "data.fold_seed", "model.name")


def lm_key(cfg: Config, inputs: dict | None = None) -> str:
    """A short hash of every setting and input the LM stage's result depends on (and nothing else):
    the data files' and the checkpoint's fingerprints are part of it, so other data or another
    checkpoint under the same paths never reuses a stale LM."""
    values = flat(cfg.to_dict())
    fields = LM_KEY_FIELDS
    if inputs:
        # the data files' content replaces their folder: the same files elsewhere share the LM
        fields = tuple(k for k in LM_KEY_FIELDS if k != "data.dir")
    picked = {k: values[k] for k in fields} | {k: v for k, v in values.items() if k.startswith("lm.") and k not in NEUTRAL_KEYS}
    if inputs:
        picked["inputs"] = {"data": inputs.get("data"), "model": (inputs.get("model") or {}).get("files")}
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Run:
    cfg: Config
    dir: Path
    task: TaskSpec
    read_only: bool = False  # opened by a reader (report, blend, predict): nothing is written
    data: CompetitionData | None = field(default=None, repr=False)  # what preflight loaded, shared by the stage
    inputs: dict | None = field(default=None, repr=False)  # inputs.json's content (fingerprints)

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

    @property
    def saves_models(self) -> bool:
        return self.cfg.train.save_models and self.cfg.model.kind == "transformer"  # baselines keep no weights

    def fold_complete(self, fold: int) -> bool:
        """The record marks a finished fold; with `train.save_models` its weights must be there too, so
        a fold trained before weights were kept (or whose model folder was deleted) is trained again."""
        return self.fold_file(fold, "record.json").is_file() and (not self.saves_models or self.fold_model_dir(fold).is_dir())

    @property
    def lm_dir(self) -> Path:
        """This run's LM stage output (shared with every run whose LM settings and inputs agree)."""
        if self.inputs is None:  # a reader of a run not made yet: the inputs as they are now
            self.inputs = read_inputs(self.inputs_path) if self.inputs_path.is_file() else checks.input_fingerprints(self.cfg)
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
        key = _acquire(self.lm_dir, self.lm_lock_path, "this LM stage is being trained by another kagglebert process")
        if key:
            weakref.finalize(self, _release, key)

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
            self.folds_path, data.train[self.task.id_column], self.task.stratify_targets(data.labels),
            self.cfg.data.n_folds, self.cfg.data.fold_seed, self.cfg.data.valid_frac,
        )


def read_inputs(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: unreadable ({err}); delete the run folder to start over") from None


# what each kind of classifier reads besides run.*, data.*, model.kind and (when needs_lm) lm.*:
# the other model.* / train.* keys cannot change its results (TF-IDF has no encoder, no epochs)
KIND_READS = {
    "tfidf": {"train.C"},
    "features": {"train.C", "train.precision", "train.pad_multiple", "model.name", "model.max_length",
                 "model.truncation", "model.head_tokens", "model.pooling"},
}


def unread_keys(cfg: Config) -> set[str]:
    """Keys `cfg` never reads: lm.* without an LM stage, and what its model.kind ignores."""
    keys = set(config_mod.flat_keys())
    unread = set() if config_mod.needs_lm(cfg) else {k for k in keys if k.startswith("lm.")}
    if cfg.model.kind in KIND_READS:
        unread |= {k for k in keys if k.startswith(("model.", "train.")) and k != "model.kind"} - KIND_READS[cfg.model.kind]
    return unread


def changed_settings(old_cfg: Config, cfg: Config) -> list[str]:
    """Keys whose change changes what the run computes. A key is ignored only when neither config
    reads it (lm.epochs 1 → 0 is a change; lm.lr under lm.epochs = 0 on both sides is not)."""
    old, new = flat(old_cfg.to_dict()), flat(cfg.to_dict())
    ignored = NEUTRAL_KEYS | (unread_keys(old_cfg) & unread_keys(cfg))
    return [k for k in new if k not in ignored and old.get(k) != new[k]]


def check_config_unchanged(folder: Path, cfg: Config) -> None:
    saved = folder / "config.toml"
    if not saved.is_file():
        return
    saved_cfg = config_mod.load(saved)
    old, new = flat(saved_cfg.to_dict()), flat(cfg.to_dict())
    changed = changed_settings(saved_cfg, cfg)
    if changed:
        shown = "; ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in changed[:4])
        raise RunError(
            f"{folder}: this run was made with another config ({shown}). "
            f"Use a new name (--set run.name=...) or delete {folder} to start over"
        )


def check_inputs_unchanged(folder: Path, inputs: dict) -> dict:
    """The stored inputs.json merged with `inputs`; refused when a recorded input differs."""
    path = folder / "inputs.json"
    if not path.is_file():
        return dict(inputs)
    old = read_inputs(path)
    changes = checks.describe_changes(old, inputs)
    if changes:
        raise RunError(
            f"{folder}: this run was made from other inputs ({'; '.join(changes[:3])}). "
            f"Use a new name (--set run.name=...) or delete {folder} to start over"
        )
    return {**old, **{k: v for k, v in inputs.items() if v is not None}}


# ---- one process per run folder ----

_locks: dict[str, list] = {}  # resolved folder → [file descriptor, open Runs holding it]


def _acquire(folder: Path, lock_path: Path, busy: str = "in use by another kagglebert process") -> str:
    """flock `lock_path` (guarding `folder`) for this process (re-entrant within it); returns the
    registry key, or "" when an ancestor process holds it. The kernel drops a dead process's lock,
    so a stale lock cannot outlive a kill -9; the pid written into the file is for the message."""
    key = str(lock_path.resolve())
    if key in _locks:
        _locks[key][1] += 1
        return key
    try:
        # not an atomic write: the lock lives on this one inode, which a rename would replace
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunError(f"{lock_path}: cannot write: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if holder.isdigit() and int(holder) in _ancestors():
            # launched by the process holding the lock (a notebook starting torchrun or
            # notebook_launcher workers for a run it opened): it works on that process's behalf
            return ""
        raise RunError(
            f"{folder}: {busy} (pid {holder}); wait for it to finish (or stop it), or use another run.name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _locks[key] = [fd, 1]
    return key


def _ancestors() -> set[int]:
    """The pids of this process's parent, grandparent, … (Linux /proc; elsewhere the parent only)."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the (command) is the state, then ppid
    return found


def _release(key: str) -> None:
    held = _locks.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _locks[key]
        os.close(held[0])  # closing the descriptor drops the flock


def release_locks() -> None:
    """Drop every run lock this process holds (the CLI, at the end of a command)."""
    for key in list(_locks):
        os.close(_locks.pop(key)[0])


def open_run(cfg: Config, write: bool = True) -> Run:
    """Check every input (core/checks.py), then create or reopen the run folder; refuse a different
    config or other inputs under the same name. Nothing is written until every check has passed.

    write=True (eda, lm, train): the folder is created, locked for as long as the returned Run is
    alive (rank 0 only under torchrun), and config.toml / inputs.json are written.
    write=False (submit): the run must exist; nothing in it is written, so a read-only folder works."""
    checked = checks.preflight(cfg)
    task = get_task(cfg.run.task)
    folder = run_dir(cfg.run.runs_dir, cfg.run.name)
    check_config_unchanged(folder, cfg)
    inputs = checked.inputs()
    provisional = Run(cfg, folder, task, data=checked.data, inputs=inputs)
    if cfg.lm.epochs > 0 and provisional.lm_complete():
        # the classifier starts from the LM stage's output: bind the run to those files too
        inputs["lm_output"] = checks.folder_fingerprints(provisional.lm_dir)
    merged = check_inputs_unchanged(folder, inputs)
    if not write:
        if not (folder / "config.toml").is_file():
            raise RunError(f"{folder}: no such run; train it first (`python -m kagglebert train` or `run`)")
        return Run(cfg, folder, task, read_only=True, data=checked.data, inputs=merged)
    run = Run(cfg, folder, task, data=checked.data, inputs=merged)
    if not distributed.is_main():  # under torchrun rank 0 locks and writes; the others only read
        return run
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"{folder}: cannot create: {err.strerror or err}") from None
    if fcntl is not None:
        key = _acquire(folder, run.lock_path)
        if key:
            weakref.finalize(run, _release, key)
        # checked again under the lock: another process may have written this run meanwhile
        check_config_unchanged(folder, cfg)
        run.inputs = merged = check_inputs_unchanged(folder, inputs)
    for path, text in ((run.config_path, config_mod.dumps(cfg)), (run.inputs_path, checks.dumps_inputs(merged))):
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
    return Run(cfg, folder, get_task(cfg.run.task), read_only=True, inputs=inputs)


def reader(cfg: Config) -> Run:
    """The run `cfg` names, for reading: the folder need not exist yet and nothing is written."""
    return Run(cfg, run_dir(cfg.run.runs_dir, cfg.run.name), get_task(cfg.run.task), read_only=True)
