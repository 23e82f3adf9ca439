"""Multilabel-stratified K folds, computed once per run and saved as folds.csv (id, fold)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from .atomic import write_csv
from .data import read_predictions
from .errors import DataError, RunError


def make_folds(ids: pd.Series, targets: np.ndarray, n_folds: int, seed: int) -> pd.DataFrame:
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(ids), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(ids)), targets)):
        fold[valid] = k
    return pd.DataFrame({"id": ids.to_numpy(), "fold": fold})


def load_or_make_folds(path: Path, ids: pd.Series, targets: np.ndarray, n_folds: int, seed: int) -> pd.DataFrame:
    """Every stage reads the same folds.csv; it must cover exactly the training ids."""
    if path.is_file():
        try:
            folds = read_predictions(path, "id")  # ids as written: `NA` stays an id
        except DataError as err:
            raise RunError(f"{err}; delete it or use a new run.name") from None
        if ("fold" not in folds.columns or folds["fold"].isna().any() or len(folds) != len(ids)
                or set(folds["id"]) != set(ids) or folds["fold"].nunique() != n_folds):
            raise RunError(f"{path}: does not match the training data ({len(ids)} ids, {n_folds} folds); delete it or use a new run.name")
        folds["fold"] = folds["fold"].astype(np.int64)
        return folds.set_index("id").loc[ids.to_numpy()].reset_index()
    folds = make_folds(ids, targets, n_folds, seed)
    write_csv(path, folds)
    return folds
