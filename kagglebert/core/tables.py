"""The rules every competition table shares, whoever reads it (core/data.py: train, test,
sample_submission; core/leaderboard.py and core/bias.py: the released test labels; `predict`'s
input): its columns are there, it has data rows, its ids are present and unique. It sits below
those readers (core/data.py imports the tasks, which import the leaderboard readers). Each failed
rule is one DataError naming the file, the row (0 = the header) and the column."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError


def require_columns(df: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for column in columns:
        if column not in df.columns:
            raise DataError(f"{path}: row 0 (header), column {column!r}: missing (found: {', '.join(df.columns)})")


def require_rows(df: pd.DataFrame, path: Path) -> None:
    if len(df) == 0:
        raise DataError(f"{path}: no data rows (only a header)")


def check_unique_ids(df: pd.DataFrame, path: Path, id_column: str) -> None:
    ids = df[id_column]
    empty = np.flatnonzero(ids.str.strip().to_numpy() == "")
    if len(empty):
        raise DataError(f"{path}: row {empty[0] + 1}, column {id_column!r}: empty id")
    duplicated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(duplicated):
        row = duplicated[0]
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}, column {id_column!r}: duplicate id {ids.iloc[row]!r} (first at row {first + 1})"
        )


def find_labels(data_dir: Path, name: str) -> Path | None:
    """`name` (or the `name.zip` Kaggle ships) in `data_dir`; None when absent."""
    for candidate in (Path(data_dir) / name, Path(data_dir) / f"{name}.zip"):
        if candidate.is_file():
            return candidate
    return None
