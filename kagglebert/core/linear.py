"""The baselines' fitted models, kept without pickle: a run folder may come from anyone (an attached
Kaggle dataset), and unpickling runs whatever code the file names. What inference needs is data:

- a TF-IDF vectorizer: its settings and vocabulary as JSON, its IDF as a .npz array;
- per fold, one logistic regression per label (coef_, intercept_; a constant for a label with one
  class among the fold's training rows) and, for features runs, the scaler's statistics: one .npz.

Arrays are read with `allow_pickle=False`. The sklearn objects are rebuilt from these arrays and
called as in training (`StandardScaler.transform`, `LogisticRegression.predict_proba`), so a served
run reproduces its own test predictions, not an approximation of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import read_json, write_atomic, write_json
from .errors import RunError

FORMAT = 1
# model.kind = tfidf is refused above this many texts (training + test, after data.max_rows /
# data.max_test_rows), in preflight before anything is written (core/preflight.check_tfidf_size). The
# reason is memory: the TF-IDF matrix holds about 670 non-zeros (8 bytes each) per comment, next to
# the loaded data and a fold's copy of its training rows. 312,735 texts (2018 size, 5 folds) peaked
# at 2.56 GB in 189–252 s over three runs (`python -m kagglebert.bench --scale 159571 --test-rows
# 153164`, its tfidf step, 2-core machine alone, BENCHMARKS.md); memory and time grow about linearly, so 600,000 texts
# stay near 5 GB and 8 minutes, and 2019's 1.9M would need about 15 GB (over the 12 GB a 2019-size
# run is allowed). Use data.max_rows (training rows) above it.
TFIDF_MAX_TEXTS = 600_000
# rows per block in LinearHeads.probabilities: a block's float64 copy stays around 70 MB at 2018 size
PREDICT_ROWS = 8_192
# the TfidfVectorizer settings that change what transform() computes; the rest are sklearn's defaults
VECTORIZER_PARAMS = ("analyzer", "ngram_range", "token_pattern", "lowercase", "strip_accents", "sublinear_tf",
                     "norm", "use_idf", "smooth_idf", "binary", "min_df", "max_df", "max_features", "dtype")


def read_arrays(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of a .npz file, no pickled objects allowed; one-line RunError when unusable."""
    if not path.is_file():
        raise RunError(f"{path}: missing; the run's fitted models were not saved or were deleted (the run cannot predict)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable array file ({str(err).splitlines()[0]})") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise RunError(f"{path}: array {missing[0]!r} missing")
    return arrays


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append .npz to a path
            np.savez(handle, **arrays)

    write_atomic(path, write)


@dataclass
class LinearHeads:
    """One binary logistic regression per label, on features standardised by `mean`/`scale` when
    those are set (features runs). `constant[j]` is not NaN for a label whose training rows had a
    single class: its prediction is that class (0 or 1), whatever the text."""

    coef: np.ndarray  # (labels, features) float64, LogisticRegression.coef_ rows
    intercept: np.ndarray  # (labels,)
    constant: np.ndarray  # (labels,) NaN where a model was fitted
    mean: np.ndarray | None = None  # StandardScaler.mean_ (features runs)
    scale: np.ndarray | None = None  # StandardScaler.scale_
    var: np.ndarray | None = None  # StandardScaler.var_

    @property
    def n_features(self) -> int:
        return self.coef.shape[1]

    def scaler(self):
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = self.mean, self.scale, self.var
        scaler.n_features_in_, scaler.n_samples_seen_ = len(self.mean), 0
        return scaler

    def model(self, j: int):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression()
        model.coef_, model.intercept_ = self.coef[j : j + 1].copy(), self.intercept[j : j + 1].copy()
        model.classes_, model.n_features_in_ = np.array([0, 1]), self.n_features
        return model

    def probabilities(self, x) -> np.ndarray:
        """(rows, labels) float32 probabilities, as `baselines.fit_per_label` computed them. Rows go
        through in blocks, each cast once to the models' float64: predict_proba would otherwise cast
        the whole (float32, sparse) matrix again for every label (1.2 GB a time for 2018's test rows).
        A row's probability does not depend on the block it is in."""
        out = np.zeros((x.shape[0], len(self.intercept)), dtype=np.float32)
        models = [None if np.isfinite(c) else self.model(j) for j, c in enumerate(self.constant)]
        scaler = self.scaler() if self.mean is not None else None
        for start in range(0, x.shape[0], PREDICT_ROWS):
            block = x[start : start + PREDICT_ROWS]
            block = scaler.transform(block) if scaler is not None else block.astype(np.float64)
            for j, model in enumerate(models):
                out[start : start + PREDICT_ROWS, j] = self.constant[j] if model is None else model.predict_proba(block)[:, 1]
        return out

    def save(self, path: Path) -> None:
        arrays = {"format": np.array(FORMAT), "coef": self.coef, "intercept": self.intercept, "constant": self.constant}
        if self.mean is not None:
            arrays.update(scaler_mean=self.mean, scaler_scale=self.scale, scaler_var=self.var)
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path, n_labels: int) -> "LinearHeads":
        arrays = read_arrays(path, ("coef", "intercept", "constant"))
        if arrays["coef"].ndim != 2 or arrays["coef"].shape[0] != n_labels or arrays["intercept"].shape != (n_labels,):
            raise RunError(f"{path}: models for {arrays['coef'].shape[0]} labels, but the run's task has {n_labels}")
        scaled = "scaler_mean" in arrays
        return cls(arrays["coef"], arrays["intercept"], arrays["constant"],
                   *(arrays[k] if scaled else None for k in ("scaler_mean", "scaler_scale", "scaler_var")))


def save_vectorizers(vectorizers: list, settings_path: Path, idf_path: Path) -> None:
    """Fitted TfidfVectorizers: settings + vocabulary (terms in column order) as JSON, IDF as arrays."""
    described = []
    for vectorizer in vectorizers:
        params = {key: vectorizer.get_params()[key] for key in VECTORIZER_PARAMS}
        params["dtype"] = np.dtype(params["dtype"]).name
        terms = [""] * len(vectorizer.vocabulary_)
        for term, column in vectorizer.vocabulary_.items():
            terms[column] = term
        described.append({"params": params, "terms": terms})
    save_arrays(idf_path, {f"idf{i}": v.idf_ for i, v in enumerate(vectorizers)})
    write_json(settings_path, {"format": FORMAT, "vectorizers": described})


def load_vectorizers(settings_path: Path, idf_path: Path) -> list:
    """The vectorizers `save_vectorizers` stored, ready to `transform` (no refit)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not settings_path.is_file():
        raise RunError(f"{settings_path}: missing; the run's TF-IDF vocabulary was not saved (the run cannot predict)")
    try:
        described = read_json(settings_path)["vectorizers"]
        arrays = read_arrays(idf_path, tuple(f"idf{i}" for i in range(len(described))))
        vectorizers = []
        for i, item in enumerate(described):
            params = dict(item["params"], ngram_range=tuple(item["params"]["ngram_range"]), dtype=np.dtype(item["params"]["dtype"]))
            vectorizer = TfidfVectorizer(**params)
            vectorizer.vocabulary_ = {term: column for column, term in enumerate(item["terms"])}
            vectorizer.idf_ = arrays[f"idf{i}"]
            vectorizers.append(vectorizer)
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"{settings_path}: not a readable TF-IDF description ({err})") from None
    return vectorizers


def tfidf_transform(vectorizers: list, texts: list[str]):
    """The sparse matrix the run's models read: every vectorizer's columns side by side."""
    from scipy.sparse import hstack

    return hstack([v.transform(texts) for v in vectorizers]).tocsr()
