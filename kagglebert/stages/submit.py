"""Stage 4 — the submission: `submissions/<name>.csv` with exactly sample_submission's ids, columns
and row order, probabilities in [0, 1] and no NaN. Checked before it is written, written to a
temporary file and linked into place, never over an existing file. It writes only into
`submit.dir` (the run folder is opened read-only, so a read-only run can be submitted). A run on
a subsample of the test rows (`data.max_test_rows`) or on the bundled sample is marked as a sample run:
Kaggle would reject its file, and the log line and the printed command's message say so.

    python -m kagglebert submit --config demo
"""
from __future__ import annotations

import io
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import atomic
from ..core.config import Config
from ..core.data import find_file, read_csv, read_predictions
from ..core.errors import DataError, RunError
from ..core.leaderboard import describe
from ..core.paths import find_data_dir
from ..core.runs import Run, open_run
from ..core.tasks import TaskSpec

log = logging.getLogger("kagglebert")


@dataclass
class Submission:
    path: Path
    frame: pd.DataFrame
    reused: bool
    command: str  # the kaggle CLI line that submits it, every argument shell-quoted
    sample_run: bool = False  # predictions for a subsample / the bundled sample: not a competition submission
    leaderboard: dict | None = None  # the file's test scores when the released labels are in the data folder


def build_submission(pred: pd.DataFrame, pred_path: Path, sample: pd.DataFrame, task: TaskSpec) -> pd.DataFrame:
    """`pred` reordered to sample_submission's rows and columns; any mismatch is a one-line error."""
    id_col = task.id_column
    # the label columns under their submission names (2019: `target` is submitted as `prediction`)
    pred = pred.rename(columns={a: b for a, b in zip(task.label_columns, task.submission_names) if b not in pred.columns})
    for column in sample.columns:
        if column not in pred.columns:
            raise DataError(f"{pred_path}: row 0 (header), column {column!r}: missing (sample_submission has it)")
    pred = pred.astype({id_col: str})
    duplicated = np.flatnonzero(pred[id_col].duplicated().to_numpy())
    if len(duplicated):
        raise DataError(f"{pred_path}: row {duplicated[0] + 1}, column {id_col!r}: duplicate id {pred[id_col].iloc[duplicated[0]]!r}")
    known = set(pred[id_col])
    missing = np.flatnonzero(~sample[id_col].isin(known).to_numpy())
    if len(missing):
        raise DataError(f"{pred_path}: column {id_col!r}: id {sample[id_col].iloc[missing[0]]!r} (sample_submission row {missing[0] + 1}) has no prediction")
    extra = np.flatnonzero(~pred[id_col].isin(set(sample[id_col])).to_numpy())
    if len(extra):
        raise DataError(f"{pred_path}: row {extra[0] + 1}, column {id_col!r}: id {pred[id_col].iloc[extra[0]]!r} is not in sample_submission")
    out = pred.set_index(id_col).loc[sample[id_col].to_numpy(), [c for c in sample.columns if c != id_col]].reset_index()
    for column in out.columns[1:]:
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(np.float64)
        bad = ~((values >= 0.0) & (values <= 1.0))  # NaN fails both comparisons
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{pred_path}: id {out[id_col].iloc[row]!r}, column {column!r}: value {out[column].iloc[row]} is not a probability in [0, 1]")  # str(): "nan", not numpy's repr "np.float64(nan)"
        out[column] = values
    return out


def submission_text(frame: pd.DataFrame) -> str:
    """The submission file's content: probabilities to 6 significant digits."""
    return frame.to_csv(index=False, float_format="%.6g")


def as_written(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """`frame` as its submission file reads back (rounded as written): what Kaggle scores."""
    return pd.read_csv(io.StringIO(submission_text(frame)), dtype={id_column: str}, keep_default_na=False, na_filter=False)


def leaderboard_scores(frame: pd.DataFrame, task: TaskSpec, data_folder: Path) -> dict | None:
    """The task's leaderboard scores of submission `frame` as written, from the released test
    labels in `data_folder`; None when the task has no such scoring or the files are absent."""
    if task.leaderboard is None:
        return None
    return task.leaderboard(Path(data_folder), as_written(frame, task.id_column))


def run_leaderboard(run: Run) -> dict | None:
    """A finished run's test predictions, in submission form, scored like `submit` scores them."""
    if run.task.leaderboard is None:
        return None
    data = run.load_data()
    frame = build_submission(read_predictions(run.test_pred_path, run.task.id_column), run.test_pred_path, data.sample_submission, run.task)
    return leaderboard_scores(frame, run.task, data.dir)


def write_new(frame: pd.DataFrame, path: Path) -> bool:
    """Write `frame` to `path` atomically. An existing identical file is reused (returns True); a
    different one is never overwritten."""
    text = submission_text(frame)
    if path.exists() and path.read_bytes() != text.encode("utf-8"):
        raise RunError(f"{path}: exists with other predictions; choose another name (--set submit.name=...) or delete it")
    return atomic.write_new(path, text)


SAMPLE_RUN_NOTE = "sample run, not the full test set"


def kaggle_command(slug: str, path: Path, message: str) -> str:
    """The kaggle CLI line, safe to paste into a shell: a name or message holding `$(...)`, quotes
    or spaces stays one literal argument."""
    return shlex.join(["kaggle", "competitions", "submit", "-c", slug, "-f", str(path), "-m", message])


def short_of_competition(rows: int, task: TaskSpec) -> bool:
    """A submission of `rows` rows that is not the competition's test set (TaskSpec.test_rows): a
    sample run's, however its data was found (a sample attached as if it were the competition, too)."""
    return task.test_rows is not None and rows != task.test_rows


def submit_predictions(pred_path: Path, task: TaskSpec, data_dir: str, out_path: Path, message: str,
                       sample: pd.DataFrame | None = None, sample_run: bool = False, data_folder: Path | None = None) -> Submission:
    """`pred_path`'s predictions checked against sample_submission and written to `out_path`,
    scored on the released test labels when the data folder holds them (checked before writing).
    `sample`: sample_submission as the run saw it (restricted to the subsampled test ids with
    data.max_test_rows); by default read from the data folder (`data_folder`, else found from `data_dir`)."""
    if not pred_path.is_file():
        raise RunError(f"{pred_path}: not found; run `python -m kagglebert train` (or `run`) first")
    folder = data_folder if data_folder is not None else find_data_dir(data_dir, task.competition_slug)
    if sample is None:
        sample = read_csv(find_file(folder, task.sample_submission_file))
    pred = read_predictions(pred_path, task.id_column)  # ids exactly as written: `NA` is an id
    frame = build_submission(pred, pred_path, sample, task)
    leaderboard = leaderboard_scores(frame, task, folder)
    sample_run = sample_run or short_of_competition(len(frame), task)
    if sample_run:
        message = f"{message} ({SAMPLE_RUN_NOTE})"
    reused = write_new(frame, out_path)
    command = kaggle_command(task.competition_slug, out_path, message)
    log.info("submit: %s %s (%d rows)%s", "reusing" if reused else "wrote", out_path, len(frame),
             f"; {SAMPLE_RUN_NOTE}: Kaggle would reject it" if sample_run else "")
    if leaderboard is not None:
        log.info("submit: %s; %s", describe(leaderboard), leaderboard["note"])
    return Submission(out_path, frame, reused, command, sample_run, leaderboard)


def main(cfg: Config) -> Submission:
    run = open_run(cfg, write=False)  # checks config and inputs against the run; writes nothing there
    data = run.load_data()
    name = cfg.submit.name or cfg.run.name
    message = f"kagglebert {name}"
    if run.metrics_path.is_file():
        message += f": OOF {run.task.metric_name} {atomic.read_json(run.metrics_path)['oof_auc']:.4f}"
    return submit_predictions(run.test_pred_path, run.task, cfg.data.dir, Path(cfg.submit.dir) / f"{name}.csv", message,
                              sample=data.sample_submission, sample_run=data.sample_run, data_folder=data.dir)
