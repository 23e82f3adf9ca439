"""Leaderboard scores offline: a submission scored against the competition's released test labels,
when they are in the data folder (`TaskSpec.leaderboard`). Users attach these files on Kaggle
anyway; with them `run`, `submit`, `ablate` and notebook 4 report test scores beside OOF.

What a task's `leaderboard(data_dir, submission)` returns (None when its label files are absent):

    {"metric": "mean column ROC AUC",
     "files": ["test_labels.csv"],                 # the label files read, as found in data_dir
     "splits": {"all": {"score": 0.97,             # None when no row of the split is scored
                        "rows": 600,                # submission rows scored in this split
                        "per_label": {...}}},       # the task's breakdown (2018: AUC per label)
     "note": "..."}                                 # what was scored, in words

`splits` holds the leaderboard's own splits where they are published ("public", "private": 2019)
and one split "all" where they are not (2018: the released labels do not say which rows were
public, so the whole scored set is reported, never called public or private). Every split entry
has "score" and "rows"; other keys are the task's detail.

This module reads the label files itself (it sits below `core.data`, which imports the tasks);
each bad cell is a one-line DataError naming the file, the row and the column."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import DataError
from .tables import check_unique_ids, find_labels, require_columns, require_rows

UNSCORED = -1  # 2018's test_labels.csv: the row was not used for scoring


def read_text_table(path: Path) -> pd.DataFrame:
    """Every cell as a string (a `.zip` holding one CSV is read too); one-line DataError otherwise."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, index_col=False)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as CSV: {reason}") from None
    return frame


def read_labels(path: Path, id_column: str, label_columns: list[str], allowed: tuple[float, ...]) -> pd.DataFrame:
    """The label file with its label columns as float64, every value one of `allowed`."""
    frame = read_text_table(path)
    require_columns(frame, path, [id_column, *label_columns])
    require_rows(frame, path)
    check_unique_ids(frame, path, id_column)
    for column in label_columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        bad = ~np.isin(values, allowed)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            expected = " or ".join(f"{a:g}" for a in allowed)
            raise DataError(f"{path}: row {row + 1}, column {column!r}: value {frame[column].iloc[row]!r} is not {expected}")
        frame[column] = values
    return frame[[id_column, *label_columns]]


def align(labels: pd.DataFrame, path: Path, submission: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """`labels`' rows in the submission's order. A submission id the label file lacks is an error
    (the labels belong to other test rows); label rows the submission lacks (a subsampled test set)
    are left out."""
    ids = submission[id_column].astype(str)
    missing = np.flatnonzero(~ids.isin(set(labels[id_column])).to_numpy())
    if len(missing):
        raise DataError(f"{path}: column {id_column!r}: no row for id {ids.iloc[missing[0]]!r} "
                        f"(submission row {missing[0] + 1}); these labels belong to other test rows")
    return labels.set_index(id_column).loc[ids.to_numpy()].reset_index()


def score_all_scored_rows(data_dir: Path, submission: pd.DataFrame, *, labels_file: str, id_column: str,
                          label_columns: list[str], score: Callable[[np.ndarray, np.ndarray, list[str]], dict],
                          metric: str, why_one_split: str) -> dict | None:
    """A label file with 0/1 per label and -1 on unscored rows (2018's test_labels.csv), scored as
    one split "all": every submission row whose labels are not -1. A row is scored or unscored as a
    whole; -1 in some of its columns only is an error."""
    path = find_labels(data_dir, labels_file)
    if path is None:
        return None
    labels = read_labels(path, id_column, label_columns, allowed=(0.0, 1.0, float(UNSCORED)))
    unscored = labels[label_columns].to_numpy() == UNSCORED
    mixed = np.flatnonzero(unscored.any(1) & ~unscored.all(1))
    if len(mixed):
        row = int(mixed[0])
        column = label_columns[int(np.flatnonzero(unscored[row])[0])]
        raise DataError(f"{path}: row {row + 1}, column {column!r}: {UNSCORED} in some label columns of this row only "
                        f"(a row is unscored, {UNSCORED} everywhere, or scored, 0/1 everywhere)")
    rows = align(labels, path, submission, id_column)
    keep = ~(rows[label_columns].to_numpy() == UNSCORED).any(1)
    y_true = rows[label_columns].to_numpy()[keep]
    y_pred = submission[label_columns].to_numpy(np.float64)[keep]
    scored = score(y_true, y_pred, label_columns) if keep.any() else {"score": None, "per_label": {c: None for c in label_columns}}
    value = scored["score"]
    value = None if value is None or not np.isfinite(value) else float(value)
    total_scored = int((~unscored.any(1)).sum())
    note = (f"{path.name}: the {int(keep.sum())} scored rows of this submission's {len(submission)} "
            f"({len(submission) - int(keep.sum())} marked {UNSCORED}, unscored); {why_one_split}")
    if int(keep.sum()) < total_scored:
        note += f"; the file scores {total_scored} rows, this submission holds {int(keep.sum())} of them"
    return {
        "metric": metric,
        "files": [path.name],
        "splits": {"all": {"score": value, "rows": int(keep.sum()), "per_label": scored["per_label"]}},
        "note": note,
    }


def fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def describe(leaderboard: dict | None) -> str:
    """One line for logs, the CLI and notebooks: "test mean column ROC AUC: all 0.9712 (600 rows)"."""
    if leaderboard is None:
        return "no test labels in the data folder: no test score"
    parts = [f"{name} {fmt_score(split['score'])} ({split['rows']} rows)" for name, split in leaderboard["splits"].items()]
    return f"test {leaderboard['metric']} ({', '.join(leaderboard['files'])}): {', '.join(parts)}"
