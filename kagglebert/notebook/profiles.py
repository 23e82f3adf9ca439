"""Notebook profiles: one word picks a whole config, so the same notebook runs on a laptop CPU and
on a Kaggle/Colab GPU without edits.

    quick — the bundled sample, the packaged MiniLM, a label-stratified subsample: minutes on a CPU.
    full  — the competition data (/kaggle/input/<slug>/ or data.dir), bert-base-uncased (or any model
            id or folder via model.name=...), GPU-sized settings.

`TASK` (the notebooks' first cell, or `KAGGLEBERT_TASK`) picks the competition: "jigsaw-toxic-2018"
or "jigsaw-bias-2019" (Unintended Bias: its bundled sample is the synthetic 2019 fixture; runs are
named `<profile>-bias`, and train with the subtypes as auxiliary targets and identity weights).

`KAGGLEBERT_PROFILE` overrides the notebook's PROFILE and `KAGGLEBERT_OVERRIDES` adds `--set`-style
overrides (`data.max_rows=120 train.epochs=1`, shell-quoted, separated by spaces), so a test or a
scheduled job can shrink or redirect a notebook without touching it. The same profile in every
notebook gives the same run names, so 02–04 pick up what the notebooks before them made — in
their own `runs/`, or, on Kaggle where each notebook has its own `/kaggle/working`, in an earlier
notebook's saved output attached as an input (`reuse_earlier`).

The full profile never runs on the bundled sample: `load` finds the competition's files under the
Kaggle input folder (or takes `data.dir`) and stops with one line saying what to attach otherwise.
"""
from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core import config as config_mod
from ..core.atomic import read_json, write_atomic
from ..core.config import Config, fold_count
from ..core.errors import ConfigError
from ..core.paths import attached_runs_dirs, find_data_dir, platform, working_dir
from ..core.errors import RunError
from ..core.binding import changed_settings
from ..core.runs import Run, open_run, read_run, reader
from ..core.tasks import get_task
from ..stages import lm, pipeline, submit
from . import environment, report

log = logging.getLogger("kagglebert")

PROFILE_ENV = "KAGGLEBERT_PROFILE"
TASK_ENV = "KAGGLEBERT_TASK"
OVERRIDES_ENV = "KAGGLEBERT_OVERRIDES"

# each profile is a bundled config (kagglebert/configs/<name>.toml), loaded like any --config
PROFILE_CONFIGS = {
    "quick": "quick",  # the notebooks' CPU recipe
    "full": "kaggle-bert-base",  # GPU settings, the competition's files, never the sample
}
PROFILE_NAMES = tuple(PROFILE_CONFIGS)
# what a task changes in either profile (the 2018 settings are the profiles themselves)
TASK_SETTINGS: dict[str, dict] = {
    "jigsaw-toxic-2018": {},
    "jigsaw-bias-2019": {
        "train": {"aux_columns": ["severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit"],
                  "identity_weights": "bpsn-bnsp"},
    },
}


def profile_config(name: str) -> Config:
    """The profile's bundled config: configs/quick.toml as it is; configs/kaggle-bert-base.toml
    with run name `full` and progress bars on."""
    cfg = config_mod.load(PROFILE_CONFIGS[name])
    return cfg.replace(run={"name": "full", "progress": True}) if name == "full" else cfg


where = platform  # 'kaggle' | 'colab' | 'local' (core/paths.platform), printed by every notebook


def output_dirs() -> dict:
    """runs/ and submissions/ in the working folder (core/paths.working_dir: KAGGLEBERT_WORKING,
    /kaggle/working, a clone's root, else the current folder)."""
    base = working_dir()
    return {"run": {"runs_dir": str(base / "runs")}, "submit": {"dir": str(base / "submissions")}}


def parse_overrides(text: str) -> list[str]:
    """`data.max_rows=120 model.name='/tmp/my model'` → ['data.max_rows=120', 'model.name=/tmp/my model']."""
    return shlex.split(text)


def load(profile: str = "quick", overrides: list[str] | tuple[str, ...] = (), task: str = "jigsaw-toxic-2018") -> Config:
    """The profile's config for `task`; KAGGLEBERT_PROFILE wins over `profile` and KAGGLEBERT_TASK
    over `task`, then `overrides`, then KAGGLEBERT_OVERRIDES are applied (each `section.key=value`,
    checked like `--set`). A profile
    with `data.require_competition` (full) and no `data.dir` gets the folder where the competition's files
    were found, or stops with one line saying what to attach."""
    environment.fork_safe_cuda_checks()  # before anything asks torch about GPUs: launch must be able to fork
    name = os.environ.get(PROFILE_ENV) or profile
    if name not in PROFILE_NAMES:
        raise ConfigError(f"profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    task = os.environ.get(TASK_ENV) or task
    get_task(task)  # an unknown task is one line naming the known ones
    cfg = profile_config(name)
    if task != cfg.run.task:
        cfg = cfg.replace(run={"task": task, "name": f"{cfg.run.name}-bias" if task == "jigsaw-bias-2019" else f"{cfg.run.name}-{task}"},
                          **TASK_SETTINGS.get(task, {}))
    cfg = cfg.replace(**output_dirs())
    for text in [*overrides, *parse_overrides(os.environ.get(OVERRIDES_ENV, ""))]:
        key, value = config_mod.parse_override(text)
        config_mod.set_key(cfg, key, value, source=f"override {text}")
    config_mod.validate(cfg)
    if cfg.data.require_competition and not cfg.data.dir:
        slug = get_task(cfg.run.task).competition_slug
        cfg = cfg.replace(data={"dir": str(find_data_dir("", slug, require_competition=True))})
    return cfg


def data_dir(cfg: Config) -> Path:
    """Where cfg's data comes from (`data.dir`, the competition found under the Kaggle input
    folder, or the bundled sample); logged with the reason."""
    return find_data_dir(cfg.data.dir, get_task(cfg.run.task).competition_slug)


def variants(cfg: Config) -> dict[str, Config]:
    """The two arms of the question: FiT (fine-tune the classifier straight from the checkpoint)
    and ITPT-FiT (masked-LM on the competition text first). Same folds, seeds and recipe; only
    lm.epochs and the run name differ."""
    lm_epochs = cfg.lm.epochs if cfg.lm.epochs > 0 else 1
    return {
        "FiT": cfg.replace(run={"name": f"{cfg.run.name}-fit"}, lm={"epochs": 0}),
        "ITPT-FiT": cfg.replace(run={"name": f"{cfg.run.name}-itpt"}, lm={"epochs": lm_epochs}),
    }


# The classic baselines' own settings are the [model] and [train] tables of configs/tfidf.toml and
# configs/features.toml (the encoder's name excepted: the features baseline embeds with the
# profile's model); data, folds and run come from the profile, so their runs blend with the
# transformer runs.
BASELINE_CONFIGS = {"TF-IDF": "tfidf", "features": "features"}


def baseline_settings(label: str) -> dict:
    tables = config_mod.read_tables(BASELINE_CONFIGS[label])
    return {"model": {k: v for k, v in tables.get("model", {}).items() if k != "name"}, "train": dict(tables.get("train", {}))}


def baselines(cfg: Config) -> dict[str, Config]:
    """TF-IDF + logistic regression and the frozen encoder's embeddings + logistic regression
    (BERT-Feat), on cfg's data and folds: `<name>-tfidf` and `<name>-features`."""
    runs = {}
    for label in BASELINE_CONFIGS:
        settings = baseline_settings(label)
        runs[label] = cfg.replace(run={"name": f"{cfg.run.name}-{settings['model']['kind']}"}, lm={"epochs": 0}, **settings)
    return runs


def train_run(cfg: Config) -> dict | None:
    """Everything a run's classifier needs, reusing what is complete (`pipeline.fit`): a finished
    run is read back without touching its LM stage; otherwise the missing stages run, on every
    GPU when the machine has several (`environment.launch`)."""
    finished = reader(cfg).metrics_path
    if finished.is_file():
        # the same config and inputs, or a one-line refusal; write=False takes no lock, so nothing
        # here stands in the way of the stage's own processes
        open_run(cfg, write=False)
        log.info("train: reusing %s", finished)
        return read_json(finished)
    if cfg.model.kind != "transformer":  # the logistic-regression baselines run in one process
        return pipeline.fit(cfg)
    return environment.launch(pipeline.fit, cfg)


def lm_run(cfg: Config) -> dict:
    """The LM stage (`lm.main`), on every GPU when the machine has several."""
    return environment.launch(lm.main, cfg)


# --- work carried between notebooks ---------------------------------------------------------------

def _same_settings(saved: Path, cfg: Config) -> bool:
    """The folder's config.toml computes what cfg would (only watching/writing keys may differ)."""
    return not changed_settings(config_mod.load(saved), cfg)


def _link(source: Path, target: Path) -> None:
    """`target` → `source` (read-only reuse, no copy); a dangling link left by a saved notebook
    output is replaced."""
    if target.is_symlink() and not target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source.resolve(), target, target_is_directory=source.is_dir())


def _mirror_run(source: Path, target: Path) -> None:
    """A run folder in this notebook's runs/ that reads an attached one: small files copied (this
    notebook may add to the folder, and its saved output then stands alone), folders — fold
    models, EDA tables, features — linked read-only."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        here = target / entry.name
        if here.exists():
            continue  # this notebook's own files win
        if not entry.exists():
            continue  # a dangling link inside the attached output
        if entry.is_dir() and entry.name == "folds":
            _mirror_run(entry, here)  # fold files copied, fold model folders linked
        elif entry.is_dir():
            _link(entry, here)
        else:
            write_atomic(here, entry.read_bytes())


def _has_work(run: Run) -> bool:
    return run.metrics_path.is_file() or any(run.fold_complete(k) for k in range(fold_count(run.cfg)))


def _attached_runs(name: str, cfg: Config) -> tuple[list[Run], list[Run]]:
    """Attached run folders called `name` holding finished folds: those made with cfg's settings
    (complete ones first) and those made with other settings."""
    own = Path(cfg.run.runs_dir).resolve()
    found = []
    for runs in attached_runs_dirs():
        if runs.resolve() == own:
            continue
        try:
            run = read_run(runs, name)
        except (RunError, ConfigError):  # no such run there, or an unreadable config
            continue
        if _has_work(run):
            found.append(run)
    same = sorted((r for r in found if _same_settings(r.config_path, cfg)), key=lambda r: not r.metrics_path.is_file())
    return same, [r for r in found if r not in same]


def _reuse_lm(cfg: Config) -> dict:
    own = reader(cfg)
    row = {"output": f"LM stage of {cfg.run.name} ({own.lm_dir.relative_to(Path(cfg.run.runs_dir))})"}
    if own.lm_complete():
        return {**row, "used": "this notebook's runs/", "path": str(own.lm_dir)}
    for runs in attached_runs_dirs():
        there = reader(cfg.replace(run={"runs_dir": str(runs)}))
        if there.lm_complete() and there.lm_dir.resolve() != own.lm_dir.resolve():
            _link(there.lm_dir, own.lm_dir)
            return {**row, "used": "attached (read-only)", "path": str(there.lm_dir)}
    return {**row, "used": "not found: trained here", "path": str(own.lm_dir)}


def _reuse_run(cfg: Config, trained_here: bool = True) -> dict:
    own = reader(cfg)
    row = {"output": f"run {cfg.run.name}"}
    if own.metrics_path.is_file():
        return {**row, "used": "this notebook's runs/", "path": str(own.dir)}
    same, other = _attached_runs(cfg.run.name, cfg)
    if same:
        _mirror_run(same[0].dir, own.dir)
        complete = same[0].metrics_path.is_file()
        return {**row, "used": "attached (read-only)" + ("" if complete else "; its unfinished folds train here"), "path": str(same[0].dir)}
    if other:
        return {**row, "used": f"not reused ({other[0].dir} was made with other settings): trained here", "path": str(own.dir)}
    if _has_work(own):
        return {**row, "used": "this notebook's runs/ (unfinished)", "path": str(own.dir)}
    missing = "not found: trained here" if trained_here else "not found, and this notebook does not train it (left out below)"
    return {**row, "used": missing, "path": str(own.dir)}


def reuse_earlier(*cfgs: Config, trained_here: list[Config] | None = None, lm_only: bool = False) -> pd.DataFrame:
    """For each run (and the LM stage it needs): where its outputs come from — this notebook's
    `runs/`, an earlier notebook's output attached as an input (`<input>/<notebook>/runs/`), made
    available here read-only — or nowhere yet. `trained_here`: the runs this notebook trains when
    they are missing (default: all); `lm_only`: the notebook trains only the LM stage (notebook 2).
    Outputs made with other settings are never reused."""
    trains = {c.run.name for c in (cfgs if trained_here is None else trained_here)}
    rows = []
    for cfg in cfgs:
        if pipeline.needs_lm(cfg):
            rows.append(_reuse_lm(cfg))
        if not lm_only:
            rows.append(_reuse_run(cfg, cfg.run.name in trains))
    return pd.DataFrame(rows).set_index("output")


# --- the file to submit ----------------------------------------------------------------------------

@dataclass
class FinalChoice:
    scores: pd.DataFrame  # every candidate, best first
    name: str
    path: Path
    rows: int
    command: str
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        notes = "".join(f"\nwarning: {w}" for w in self.warnings)
        return f"{self.scores.to_string()}\n\nsubmit {self.name}: {self.path} ({self.rows:,} rows)\n{self.command}{notes}"


def final_submission(runs: list[Config], blends: list[dict] = ()) -> FinalChoice:
    """The candidate with the best honest OOF score (nested for a fitted blend) among finished
    `runs` and `blends` (blend.main's results), its submission file (written for a run if it is
    not yet) and the command that submits it; warnings when the file is not the competition's size
    or a transformer run scores near chance or below a baseline."""
    by_name = {c.run.name: c for c in runs}
    metrics = {name: read_json(reader(c).metrics_path) for name, c in by_name.items() if reader(c).metrics_path.is_file()}
    blend_by_name = {Path(b["submission"]).stem: b for b in blends}
    metrics.update(blend_by_name)
    if not metrics:
        raise RunError("no finished run to submit: train one first (profiles.train_run)")
    scores = report.run_scores(metrics)
    best = str(scores.index[0])
    task = get_task(runs[0].run.task)  # blends only join runs of one task
    if best in blend_by_name:  # the command blend.main printed for its file: one command per file
        path, command = Path(blend_by_name[best]["submission"]), blend_by_name[best]["submit_command"]
    else:
        submission = submit.main(by_name[best])
        path, command = submission.path, submission.command
    rows = len(pd.read_csv(path, usecols=[0]))
    kinds = {name: by_name[name].model.kind for name in metrics if name in by_name}
    flags = report.health_flags({n: (metrics[n], by_name[n]) for n, k in kinds.items() if k == "transformer"},
                                {n: metrics[n] for n, k in kinds.items() if k != "transformer"})
    unfinished = [name for name in by_name if name not in metrics]
    if unfinished:  # said, not silently dropped: e.g. notebook 4 alone never trains the FiT arm
        flags.append(f"left out of the ranking (no finished run here or attached): {', '.join(unfinished)}")
    warnings = report.submission_warnings(task.name, rows, path) + flags
    for text in warnings:
        log.warning("warning: %s", text)
    return FinalChoice(scores, best, path, rows, command, warnings)
