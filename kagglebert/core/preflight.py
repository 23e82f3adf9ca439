"""Preflight: everything a stage will read is checked before anything is written. `open_run` calls
`preflight(cfg)` before it creates the run folder or its config.toml, so a typo in `data.dir` or
`model.name`, a bad file or an impossible setting ends as one line (exit 2) with nothing on disk,
and the corrected command starts clean.

Checked (config ranges and types were checked when the config was loaded):
- the task's own training keys (auxiliary columns, identity weights), here;
- the device exists (`cuda` without a GPU, `mps` missing) and supports the precision, here;
- the data files, rows per fold and labels too rare to score (core/data_checks.py);
- the model folder or hub id (core/model_checks.py);
- `model.kind = tfidf` on more texts than the TF-IDF baseline is made for (core/linear.TFIDF_MAX_TEXTS), here;
- submit.dir can be written, here.

It also fingerprints the inputs (sha256 of the data files and of the checkpoint's files, and the
kagglebert version: core/fingerprints.py) so a run is bound to what it was made from. Each check is
memoised per process by the files' size and modification time: the stages of one `run` check once.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import data_checks, model_checks
from .config import Config
from .data import CompetitionData
from .errors import ConfigError
from .linear import TFIDF_MAX_TEXTS
from .logs import warnings_after_success
from .paths import kagglebert_version
from .tasks import TaskSpec, get_task

# ---- task ----


def check_task_settings(cfg: Config, task: TaskSpec) -> None:
    """The task-specific training keys name what this task has: auxiliary targets from its
    auxiliary columns, identity weights only where there are identities."""
    aux = cfg.train.aux_columns
    for column in aux:
        if column not in task.aux_columns:
            offered = ", ".join(task.aux_columns) if task.aux_columns else "none (leave it [])"
            raise ConfigError(f"config: train.aux_columns = {aux!r}: {column!r} is not an auxiliary column of {task.name} "
                              f"(it has: {offered})")
    if len(set(aux)) != len(aux):
        raise ConfigError(f"config: train.aux_columns = {aux!r}: a column is listed twice")
    if cfg.train.identity_weights != "off" and not task.score_columns:
        raise ConfigError(f"config: train.identity_weights = {cfg.train.identity_weights!r}: {task.name} has no identity "
                          f"columns; use \"off\"")


# ---- device ----


def check_device(name: str) -> None:
    import torch

    if name.startswith("cuda"):
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device = {name!r}: no CUDA GPU is visible to torch here; use run.device=auto (or cpu)")
        if index >= torch.cuda.device_count():
            raise ConfigError(f"run.device = {name!r}: only {torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("run.device = 'mps': Apple's MPS backend is not available here; use run.device=auto (or cpu)")


def check_precision(cfg: Config) -> None:
    """fp16 needs a CUDA GPU: refused now, not when the first fold starts."""
    from .engine import precision_problem, resolve_device  # torch only when checking, as in check_device

    device = resolve_device(cfg.run.device)
    used = [s for s, on in (("train", cfg.model.kind == "transformer"), ("lm", cfg.lm.epochs > 0)) if on]
    for section in used:
        problem = precision_problem(section, getattr(cfg, section).precision, device)
        if problem:
            raise ConfigError(problem)


# ---- all of them ----


@dataclass
class Preflight:
    data: CompetitionData
    model: model_checks.ModelCheck

    def inputs(self) -> dict:
        """What the run is made from; stored as the run folder's inputs.json."""
        return {
            "kagglebert": kagglebert_version(),
            "data": dict(self.data.fingerprints),
            "model": {"name": self.model.name, "files": dict(self.model.files)},
        }


def preflight(cfg: Config) -> Preflight:
    """Check the task, the device, the data and the model; raises one-line KagglebertErrors."""
    with warnings_after_success():
        task = get_task(cfg.run.task)
        check_task_settings(cfg, task)
        check_device(cfg.run.device)
        check_precision(cfg)
        data = data_checks.check_data(cfg, task)
        check_tfidf_size(cfg, data)
        # every kind is checked: TF-IDF needs no weights, but EDA measures token lengths with model.name's tokenizer
        model = model_checks.check_model(cfg)
        check_writable_dir(cfg.submit.dir, "submit.dir")  # found now, not after hours of training
    return Preflight(data, model)


def check_tfidf_size(cfg: Config, data: CompetitionData) -> None:
    """model.kind = tfidf above TFIDF_MAX_TEXTS training + test texts: refused (its reason is next
    to the constant), with the data.max_rows that fits."""
    n_texts = len(data.train) + len(data.test)
    if cfg.model.kind == "tfidf" and n_texts > TFIDF_MAX_TEXTS:
        fits = TFIDF_MAX_TEXTS - len(data.test)
        advice = f"set data.max_rows (e.g. {fits:,})" if fits > 0 else "set data.max_rows and data.max_test_rows"
        raise ConfigError(f"config: model.kind = tfidf: {len(data.train):,} training + {len(data.test):,} test texts is above the "
                          f"{TFIDF_MAX_TEXTS:,} the TF-IDF baseline is made for (its memory grows with the texts: 2.5 GB for "
                          f"312,735, about 15 GB for 1.9M); {advice}")


def check_writable_dir(folder: str, key: str) -> None:
    """`folder` exists as a writable folder, or can be created: its nearest existing ancestor is a
    writable folder. Nothing is created here."""
    path = Path(folder).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ConfigError(f"config: {key} = {folder!r}: {existing} is not a folder")
    try:  # a real probe, removed at once: permission bits say nothing for root or read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".kagglebert-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(f"config: {key} = {folder!r}: cannot write in {existing}: {err.strerror or err}") from None


def input_fingerprints(cfg: Config) -> dict:
    """inputs.json's content for `cfg` without opening a run (a reader asking where its LM is)."""
    return preflight(cfg).inputs()
