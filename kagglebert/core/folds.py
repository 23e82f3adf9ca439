"""Multilabel-stratified K folds, or one stratified validation split, computed once per run and
saved as folds.csv (id, fold). With a single split (data.valid_frac > 0) the validation rows are
fold 0 and every other row is fold -1 (TRAIN_ONLY): trained on, never predicted out of fold."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from .atomic import write_csv
from .data import read_predictions
from .errors import DataError, RunError
from .progress import PROGRESS_FROM_FOLD_ROWS, elapsed_bar

TRAIN_ONLY = -1  # folds.csv's fold of a row no model validates on (single split)


def make_folds(ids: pd.Series, targets: np.ndarray, n_folds: int, seed: int, valid_frac: float = 0.0) -> pd.DataFrame:
    fold = np.full(len(ids), TRAIN_ONLY, dtype=np.int64)
    shape = "one validation split" if valid_frac > 0 else f"{n_folds} folds"
    # iterstrat visits every row in Python and reports nothing: the bar shows the time it has taken
    with elapsed_bar(f"{shape} of {len(ids):,} rows", disable=len(ids) < PROGRESS_FROM_FOLD_ROWS):
        if valid_frac > 0:
            n_valid = max(1, int(round(valid_frac * len(ids))))
            splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_valid, train_size=len(ids) - n_valid, random_state=seed)
            _, valid = next(splitter.split(np.zeros(len(ids)), targets))
            fold[valid] = 0
        else:
            splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            for k, (_, valid) in enumerate(splitter.split(np.zeros(len(ids)), targets)):
                fold[valid] = k
    return pd.DataFrame({"id": ids.to_numpy(), "fold": fold})


def expected_folds(n_folds: int, valid_frac: float) -> set[int]:
    return {TRAIN_ONLY, 0} if valid_frac > 0 else set(range(n_folds))


def load_or_make_folds(path: Path, ids: pd.Series, targets: np.ndarray, n_folds: int, seed: int, valid_frac: float = 0.0) -> pd.DataFrame:
    """Every stage reads the same folds.csv; it must cover exactly the training ids."""
    if path.is_file():
        try:
            folds = read_predictions(path, "id")  # ids as written: `NA` stays an id
        except DataError as err:
            raise RunError(f"{err}; delete it or use a new run.name") from None
        if ("fold" not in folds.columns or folds["fold"].isna().any() or len(folds) != len(ids)
                or set(folds["id"]) != set(ids) or set(folds["fold"].astype(np.int64)) != expected_folds(n_folds, valid_frac)):
            shape = f"one split, data.valid_frac = {valid_frac:g}" if valid_frac > 0 else f"{n_folds} folds"
            raise RunError(f"{path}: does not match the training data ({len(ids)} ids, {shape}); delete it or use a new run.name")
        folds["fold"] = folds["fold"].astype(np.int64)
        return folds.set_index("id").loc[ids.to_numpy()].reset_index()
    folds = make_folds(ids, targets, n_folds, seed, valid_frac)
    write_csv(path, folds)
    return folds
