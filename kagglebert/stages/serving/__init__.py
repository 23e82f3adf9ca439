"""Serving finished runs: every model kind (transformer, tfidf, features) and blends, loaded once
and ready to score texts.

    import kagglebert
    model = kagglebert.load_run("demo")               # runs/demo/, or the path of a run or blend folder
    model.predict(["thanks for the fix", "..."])      # DataFrame: a row per text, a column per label

The run folder is only read (an attached Kaggle dataset or an `export` folder works). Each kind has
its module: `transformer` (fold models), `linear` (tfidf and features: logistic regressions kept as
arrays), `blend` (members' ranks, weighted); `common` holds what they share.
"""
from __future__ import annotations

from pathlib import Path

from ...core.runs import Run
from . import blend, single
from .common import ServedRun, check_batch_size, locate_run, pick_device, run_folder

__all__ = ["ServedRun", "load_run", "served_run", "locate_run"]


def served_run(run: str | Path, runs_dir: str | Path = "runs") -> Run:
    """The `Run` that names what is served (a blend's: its first member's settings under the
    blend's name), after every check that needs no weights loaded: a bad run or blend fails in a
    second, before an input is read or anything written."""
    folder = run_folder(run, runs_dir)
    if blend.is_blend(folder):
        manifest, members = blend.check_servable(folder)
        return blend.blend_folder_run(members[0], folder.parent, folder.name)
    located = locate_run(run, runs_dir)
    single.check_servable(located)
    return located


def load_run(run: str | Path, runs_dir: str | Path = "runs", *, device: str = "auto", batch_size: int = 0) -> ServedRun:
    """A finished run or blend, loaded for scoring. `run`: a name under `runs_dir` or the path of a
    run or blend folder (e.g. inside an `export` folder). `batch_size` 0 = the run's
    train.eval_batch_size."""
    check_batch_size(batch_size)
    folder = run_folder(run, runs_dir)
    where = pick_device(device)
    if blend.is_blend(folder):
        return blend.load(folder, where, batch_size)
    return single.load(locate_run(run, runs_dir), where, batch_size)
