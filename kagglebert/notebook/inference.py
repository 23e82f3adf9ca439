"""What notebook 05 serves, found in one call: an export (attached on Kaggle, or named), else a run
or blend folder of the working folder's runs/ — the one notebook 04 recommends unless the notebook
names another — so the notebook works after a plain `pip install` (Colab) as well as with the
internet off on Kaggle."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..core import config as config_mod
from ..core.atomic import read_json
from ..core.errors import RunError
from ..deploy import export
from ..stages.serving import ServedRun, load_run
from ..stages.serving.blend import is_blend
from . import profiles, report

log = logging.getLogger("kagglebert")


@dataclass
class Served:
    model: ServedRun
    source: str  # "export: <folder>" or "run folder: <folder>", and why it was chosen

    @property
    def summary(self) -> str:
        return f"{self.source}\n{self.model.describe()}"


def notebook_runs_dir() -> Path:
    """The runs/ folder notebooks 01–04 write: the notebooks' output folder, or `run.runs_dir` from
    KAGGLEBERT_OVERRIDES when that sets it (as those notebooks read it)."""
    runs = profiles.output_dirs()["run"]["runs_dir"]
    for text in profiles.parse_overrides(os.environ.get(profiles.OVERRIDES_ENV, "")):
        key, value = config_mod.parse_override(text)
        if key == "run.runs_dir":
            runs = str(value)
    return Path(runs).expanduser()


def recommended(runs_dir: Path) -> str:
    """The finished run or blend under `runs_dir` with the best honest OOF score: notebook 04's
    ranking (`report.run_scores`), over every run and blend there."""
    candidates = {}
    if runs_dir.is_dir():
        for folder in sorted(runs_dir.iterdir()):
            metrics = folder / "metrics.json"
            if folder.name.startswith((".", "_")) or not metrics.is_file():
                continue
            if is_blend(folder) or (folder / "config.toml").is_file():
                candidates[folder.name] = read_json(metrics)
    if not candidates:
        raise RunError(f"no kagglebert export found, and no finished run in {runs_dir}: run notebooks 03–04 here first, "
                       f"or attach an export (python -m kagglebert export) and set KAGGLEBERT_EXPORT to its folder")
    return str(report.run_scores(candidates).index[0])


def open_model(run: str = "", export_dir: str = "", runs_dir: str | Path | None = None, device: str = "auto") -> Served:
    """The model notebook 05 scores with, loaded: `export_dir` (an export folder) when given; else
    `run` (a run or blend name under runs/, or a folder's path) when given; else an export found
    under the Kaggle inputs (an attached dataset) or exports/; else the recommended run or blend
    of runs/ (notebook 04's choice)."""
    runs = Path(runs_dir) if runs_dir else notebook_runs_dir()
    if export_dir:
        found = export.locate_export(export_dir)
        return Served(load_run(export.exported_run(found), device=device), f"export: {found}")
    if run:
        model = load_run(run, runs, device=device)
        return Served(model, f"run folder: {model.run.dir} (named in the notebook)")
    try:
        found = export.locate_export()
    except RunError:
        found = None
    if found is not None:
        return Served(load_run(export.exported_run(found), device=device), f"export: {found}")
    name = recommended(runs)
    model = load_run(name, runs, device=device)
    return Served(model, f"run folder: {model.run.dir} (no export attached; the best honest OOF score in {runs}, as notebook 4 ranks)")
