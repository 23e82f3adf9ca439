"""Baselines on the same folds as the transformer: what a fine-tuned model has to beat.

- `model.kind = "tfidf"`: word 1–2-gram + char 2–5-gram TF-IDF, one logistic regression (lbfgs) per
  label. The vectorizers are fitted once on train + test text, counted in chunks across worker
  processes (`core/tfidf`), and the labels are fitted in threads. Above
  `core/linear.TFIDF_MAX_TEXTS` texts it is refused in preflight, before anything is written.
- `model.kind = "features"` ("BERT-Feat", Sun et al. 2019): the frozen encoder (`model.name`, or
  the LM stage's output when `lm.epochs > 0`) embeds every comment once (pooled as
  `model.pooling`), the embeddings are cached in the run folder, and a logistic regression per
  label is fitted on standardised embeddings.

Both write the same per-fold files as the transformer (through `kfold.save_fold`), so oof.csv,
test_pred.csv, metrics.json and the submission come from the same code. With `train.save_models`
(the default) they also keep what `predict` needs, as arrays and JSON (core/linear, no pickle): the
TF-IDF vocabulary and IDF, and per fold the logistic regressions (and the features scaler).

    python -m kagglebert run --config tfidf
    python -m kagglebert run --config features
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ..core.data import CompetitionData
from ..core.engine import resolve_device, resolve_precision, seed_everything
from ..core.errors import ConfigError
from ..core.linear import LinearHeads, save_vectorizers
from ..core.modeling import encode, load_encoder
from ..core.paths import cache_dir
from ..core.progress import ProgressBar
from ..core.atomic import write_atomic
from ..core.runs import Run
from ..core.tfidf import SpilledMatrix, fit_tfidf
from ..core.tokenization import load_tokenizer, tokenize
from .kfold import save_fold, start_checkpoint

log = logging.getLogger("kagglebert")

# Sizes that keep the full 12k-row sample to about a minute on two CPU cores; the char n-grams
# carry most of the signal on obfuscated insults ("f*ck", "idi0t"), so they get the larger share.
WORD_MAX_FEATURES = 50_000
CHAR_MAX_FEATURES = 100_000
MIN_DF = 2
# worker processes counting n-grams (counting one chunk adds about 0.3 GB to a worker): Kaggle's 4 CPUs
MAX_VECTORIZE_WORKERS = 4


def tfidf_vectorizers():
    """Word 1–2-grams next to char 2–5-grams, unfitted."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    common = dict(sublinear_tf=True, strip_accents="unicode", min_df=MIN_DF, dtype=np.float32)
    return [
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), max_features=WORD_MAX_FEATURES, token_pattern=r"(?u)\b\w+\b", **common),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), max_features=CHAR_MAX_FEATURES, **common),
    ]


def tfidf_matrices(train_texts: list[str], test_texts: list[str], progress: bool = False):
    """(train, test) sparse TF-IDF matrices and the fitted vectorizers (`tfidf_vectorizers`).

    The vocabulary and IDF are fitted once on train + test text: that uses no label (like the LM
    stage reading the test comments), and one fit instead of one per fold keeps the run short. The
    texts are counted in chunks by up to `MAX_VECTORIZE_WORKERS` worker processes and the matrix is
    assembled with its non-zeros held about once (`core/tfidf.fit_tfidf`); its rows are exactly what
    the fitted vectorizers' `transform` gives, the computation `predict` repeats."""
    vectorizers = tfidf_vectorizers()
    workers = max(1, min(os.cpu_count() or 1, MAX_VECTORIZE_WORKERS))
    n_texts = len(train_texts) + len(test_texts)
    with ProgressBar(total=n_texts * len(vectorizers), desc="tfidf: counting n-grams", unit="text", disable=not progress,
                     leave=False) as bar:
        vectorizers, (x_train, x_test) = fit_tfidf(vectorizers, [train_texts, test_texts], workers, bar.update)
    return x_train, x_test, vectorizers


def embeddings_path(run: Run, split: str) -> Path:
    return run.features_dir / f"{split}_embeddings.npy"


def frozen_embeddings(run: Run, data: CompetitionData) -> tuple[np.ndarray, np.ndarray, dict]:
    """(train, test) embeddings from the run folder, or computed once and saved there. The run
    folder is bound to its config, so a cached file always matches model, length and pooling."""
    paths = {split: embeddings_path(run, split) for split in ("train", "test")}
    expected = {"train": len(data.train), "test": len(data.test)}
    if all(p.is_file() for p in paths.values()):
        arrays = {split: np.load(p) for split, p in paths.items()}
        if all(len(arrays[s]) == expected[s] for s in arrays):
            log.info("features: reusing embeddings in %s", paths["train"].parent)
            return arrays["train"], arrays["test"], {"encode_seconds": 0.0}
    cfg = run.cfg
    checkpoint = start_checkpoint(run)
    device = resolve_device(cfg.run.device)
    precision = resolve_precision(cfg.train.precision, device)
    tokenizer = load_tokenizer(checkpoint)
    tok_args = dict(max_length=cfg.model.max_length, truncation=cfg.model.truncation, head_tokens=cfg.model.head_tokens, cache_dir=cache_dir(cfg))
    tokens = {"train": tokenize(tokenizer, data.train_texts, **tok_args), "test": tokenize(tokenizer, data.test_texts, **tok_args)}
    encoder = load_encoder(checkpoint).to(device)
    start = time.perf_counter()
    arrays = {split: encode(encoder, tokens[split], tokenizer.pad_token_id, cfg.model.pooling, cfg.train.eval_batch_size,
                            device, precision, cfg.train.pad_multiple, cfg.run.progress) for split in ("train", "test")}
    seconds = time.perf_counter() - start
    n_texts = sum(len(a) for a in arrays.values())
    log.info("features: encoded %d texts with %s in %.0f s (%.0f texts/s)", n_texts, checkpoint, seconds, n_texts / seconds)
    for split, path in paths.items():
        write_atomic(path, lambda tmp, array=arrays[split]: np.save(tmp, array))
    del encoder
    return arrays["train"], arrays["test"], {"encode_seconds": seconds, "encode_texts_per_s": n_texts / seconds, "checkpoint": checkpoint}


# label fits run side by side in threads (lbfgs spends its time in scipy's sparse products and
# sklearn's loss, which release the GIL; threads share the matrices, processes would copy them):
# every core up to this many. lbfgs reads the float32 CSR rows as they are (no per-fit copy).
MAX_FIT_THREADS = 4


def fit_threads(n_labels: int) -> int:
    return max(1, min(os.cpu_count() or 1, MAX_FIT_THREADS, n_labels))


def fit_per_label(x_train, y_train: np.ndarray, C: float, solver: str, seed: int) -> LinearHeads:
    """One logistic regression per label column, the labels fitted side by side in threads (the
    same models as one after another: each fit is seeded). A label with a single class among the
    training rows (possible on tiny subsamples) has nothing to learn: its prediction is that class,
    a constant."""
    n_labels = y_train.shape[1]
    coef, intercept = np.zeros((n_labels, x_train.shape[1])), np.zeros(n_labels)
    constant = np.full(n_labels, np.nan)
    if hasattr(x_train, "sum_duplicates"):
        # canonical (sorted, no duplicate) indices now, in this thread: scipy would otherwise
        # tidy a shared matrix in place from several threads at once
        x_train.sum_duplicates()
        x_train.sort_indices()

    def fit_label(j: int) -> None:
        target = (y_train[:, j] >= 0.5).astype(np.int64)
        if target.min() == target.max():
            constant[j] = float(target[0])
            return
        model = LogisticRegression(C=C, solver=solver, max_iter=1000, random_state=seed)
        model.fit(x_train, target)
        coef[j], intercept[j] = model.coef_[0], model.intercept_[0]

    # the labels with most positives first: their fits take the most lbfgs iterations (toxic 40, threat
    # 22 on 40,000 rows at 2018 size), so started first they leave no long fit alone at the end
    by_positives = np.argsort(-(y_train >= 0.5).sum(axis=0), kind="stable").tolist()
    with ThreadPoolExecutor(fit_threads(n_labels)) as pool:
        list(pool.map(fit_label, by_positives))  # list(): a fit's exception is raised here
    return LinearHeads(coef, intercept, constant)


def fit_baseline(run: Run, data: CompetitionData, folds: pd.DataFrame, todo: list[int]) -> None:
    """Train the folds in `todo` for `model.kind` tfidf or features; files as the transformer's."""
    cfg, task = run.cfg, run.task
    kind = cfg.model.kind
    seed_everything(cfg.run.seed)
    if kind == "tfidf":
        start = time.perf_counter()
        x_all, x_test, vectorizers = tfidf_matrices(data.train_texts, data.test_texts, cfg.run.progress)
        if run.saves_models:  # before any fold's record: a complete fold finds its vocabulary
            save_vectorizers(vectorizers, run.vectorizer_path, run.vectorizer_idf_path)
        extra = {"vectorize_seconds": time.perf_counter() - start, "n_features": int(x_all.shape[1])}
        log.info("tfidf: %d features, %.0f s", x_all.shape[1], extra["vectorize_seconds"])
        # lbfgs, not liblinear: the same OOF AUC to 0.0002 on the bundled sample in half the time, and
        # no 16-bytes-per-non-zero copy of the rows per fit (liblinear's format): GBs at full size
        solver = "lbfgs"
        spilled = SpilledMatrix(x_test)  # on disk while the folds fit; read back for each fold's predictions
        del x_test
        test_rows = spilled.load
    elif kind == "features":
        x_all, x_test, extra = frozen_embeddings(run, data)
        solver = "lbfgs"  # dense and a few hundred columns: lbfgs converges in a few dozen steps

        def test_rows():
            return x_test
    else:
        raise ConfigError(f"model.kind = {kind!r}: baselines are tfidf or features")
    labels, truth = data.labels, data.truth
    fold_of = folds["fold"].to_numpy()
    # a bar over the folds (at 2018 size each takes about 30 s: 6 label fits, nothing finer to show),
    # closed and its line cleared however the loop ends
    with ProgressBar(total=len(todo), desc=f"{kind}: folds", unit="fold", disable=not cfg.run.progress, leave=False) as folds_bar:
        for fold in todo:
            start = time.perf_counter()
            train_rows, valid_rows = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
            x_train = x_all[train_rows]
            scaler = None
            if kind == "features":
                # scaled on the fold's training rows only; embedding dimensions differ in scale by 100×
                scaler = StandardScaler().fit(x_train)
                x_train = scaler.transform(x_train)
            heads = fit_per_label(x_train, labels[train_rows], cfg.train.C, solver, cfg.run.seed + fold)
            del x_train  # the fold's copy of its training rows (0.7 GB at 2018 size) goes before the predictions and the next copy
            if scaler is not None:
                heads.mean, heads.scale, heads.var = scaler.mean_, scaler.scale_, scaler.var_
            # the served models' own code path (heads scale the raw features themselves)
            valid_pred, test_pred = heads.probabilities(x_all[valid_rows]), heads.probabilities(test_rows())
            if run.saves_models:
                heads.save(run.fold_linear_path(fold))
            seconds = time.perf_counter() - start
            scored = task.score(truth[valid_rows], valid_pred, task.label_columns)
            record = {
                "fold": fold, "score": scored["score"], "per_label": scored["per_label"],
                "train_seconds": seconds, "train_samples": len(train_rows),
                "train_samples_per_s": len(train_rows) / seconds if seconds else 0.0,
                "wall_seconds": seconds, "model_kind": kind, "C": cfg.train.C, "solver": solver, **extra,
            }
            save_fold(run, data, fold, valid_rows, valid_pred, test_pred, record)
            folds_bar.update(1)
