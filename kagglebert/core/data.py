"""Reading and checking the competition files. Every failed check is one line naming the file, the
row (1 = the first data row under the header) and the column."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .paths import find_data_dir
from .tasks import TaskSpec

log = logging.getLogger("kagglebert")


@dataclass
class CompetitionData:
    task: TaskSpec
    dir: Path
    train: pd.DataFrame  # id + text + label columns, labels as float32
    test: pd.DataFrame  # id + text
    sample_submission: pd.DataFrame  # as read: id + label columns
    train_file: Path
    test_file: Path

    @property
    def labels(self) -> np.ndarray:
        return self.train[self.task.label_columns].to_numpy(np.float32)

    @property
    def train_texts(self) -> list[str]:
        return self.train[self.task.text_column].tolist()

    @property
    def test_texts(self) -> list[str]:
        return self.test[self.task.text_column].tolist()


def find_file(data_dir: Path, name: str) -> Path:
    """`train.csv`, or the `train.csv.zip` Kaggle ships."""
    for candidate in (data_dir / name, data_dir / f"{name}.zip"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{data_dir / name}: file not found (nor {name}.zip)")


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as a string, nothing turned into NaN: the checks below decide what is valid."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as CSV: {reason}") from None


def require_columns(df: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for column in columns:
        if column not in df.columns:
            raise DataError(f"{path}: row 0 (header), column {column!r}: missing (found: {', '.join(df.columns)})")


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


def parse_labels(df: pd.DataFrame, path: Path, task: TaskSpec) -> None:
    """Label strings → float32 in place; binary tasks accept exactly 0 or 1."""
    for column in task.label_columns:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
        if task.binary_labels:
            bad = ~np.isin(values, (0.0, 1.0))
            expected = "0 or 1"
        else:
            bad = ~((values >= 0.0) & (values <= 1.0))
            expected = "a number in [0, 1]"
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: row {row + 1}, column {column!r}: value {df[column].iloc[row]!r} is not {expected}")
        df[column] = values.astype(np.float32)


def clean_text(df: pd.DataFrame, path: Path, text_column: str) -> None:
    """Empty or missing comment text is kept (as "") and counted: dropping rows would shift ids."""
    empty = np.flatnonzero(df[text_column].str.strip().to_numpy() == "")
    if len(empty):
        log.warning(
            "%s: %d row(s) with empty %r kept as empty strings (first: row %d)",
            path, len(empty), text_column, empty[0] + 1,
        )


def check_test_ids(test: pd.DataFrame, test_path: Path, sample: pd.DataFrame, sample_path: Path, id_column: str) -> None:
    sample_ids = set(sample[id_column])
    missing = np.flatnonzero(~test[id_column].isin(sample_ids).to_numpy())
    if len(missing):
        row = missing[0]
        raise DataError(
            f"{test_path}: row {row + 1}, column {id_column!r}: id {test[id_column].iloc[row]!r} is not in {sample_path.name}"
        )
    extra = np.flatnonzero(~sample[id_column].isin(set(test[id_column])).to_numpy())
    if len(extra):
        row = extra[0]
        raise DataError(
            f"{sample_path}: row {row + 1}, column {id_column!r}: id {sample[id_column].iloc[row]!r} is not in {test_path.name}"
        )


def stratified_subsample(df: pd.DataFrame, targets: np.ndarray, n_rows: int, seed: int) -> pd.DataFrame:
    """`n_rows` rows keeping each label's prevalence (iterative stratification), in file order."""
    if n_rows <= 0 or n_rows >= len(df):
        return df
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, train_size=n_rows, test_size=len(df) - n_rows, random_state=seed)
    keep, _ = next(splitter.split(np.zeros(len(df)), targets))
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def load_competition(task: TaskSpec, data_dir: str = "", max_rows: int = 0, seed: int = 42) -> CompetitionData:
    folder = find_data_dir(data_dir, task.competition_slug)
    train_path = find_file(folder, task.train_file)
    test_path = find_file(folder, task.test_file)
    sample_path = find_file(folder, task.sample_submission_file)

    train = read_csv(train_path)
    require_columns(train, train_path, [task.id_column, task.text_column, *task.label_columns, *task.extra_train_columns])
    check_unique_ids(train, train_path, task.id_column)
    parse_labels(train, train_path, task)
    clean_text(train, train_path, task.text_column)

    test = read_csv(test_path)
    require_columns(test, test_path, [task.id_column, task.text_column])
    check_unique_ids(test, test_path, task.id_column)
    clean_text(test, test_path, task.text_column)

    sample = read_csv(sample_path)
    require_columns(sample, sample_path, [task.id_column, *task.label_columns])
    check_unique_ids(sample, sample_path, task.id_column)
    check_test_ids(test, test_path, sample, sample_path, task.id_column)

    if max_rows:
        train = stratified_subsample(train, task.stratify_targets(train[task.label_columns].to_numpy()), max_rows, seed)
    keep = [task.id_column, task.text_column, *task.label_columns, *task.extra_train_columns]
    return CompetitionData(task, folder, train[keep], test[[task.id_column, task.text_column]], sample, train_path, test_path)
