"""A TF-IDF or features run served: the fold's logistic regressions (core/linear: arrays, no
pickle) score the texts' features, averaged over folds as `train` averages the test predictions.

- tfidf: the run's vectorizers (vocabulary and IDF as stored; never refitted) turn the texts into
  the same sparse matrix training built.
- features: the run's frozen encoder embeds the texts as training did (same tokenization, pooling
  and batch size); inside an export the encoder travels in the run folder (`encoder/`), in a
  working folder it is the run's checkpoint (the LM stage's output, or `model.name`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...core.atomic import read_json
from ...core.engine import resolve_precision
from ...core.errors import RunError
from ...core.config import fold_count
from ...core.linear import LinearHeads, load_vectorizers, tfidf_transform
from ...core.modeling import encode, load_encoder
from ...core.runs import Run
from ...core.tokenization import load_tokenizer, tokenize
from ..kfold import start_checkpoint
from .common import ServedRun
from .transformer import check_finished

log = logging.getLogger("kagglebert")


def encoder_checkpoint(run: Run) -> str:
    """The frozen encoder a features run embeds with: its copy inside an export, else the
    checkpoint training started from."""
    return str(run.encoder_dir) if run.encoder_dir.is_dir() else start_checkpoint(run)


def check_servable(run: Run) -> list[Path]:
    """Every fold's model files are there (nothing loaded); their paths."""
    check_finished(run)
    files = []
    for fold in range(fold_count(run.cfg)):
        for path in run.fold_model_files(fold):
            if not path.exists():
                raise RunError(f"{path}: missing; fold {fold}'s model was not saved (a {run.cfg.model.kind} run made "
                               f"before kagglebert kept baseline models, or the file was deleted); train the run again "
                               f"under a new name to serve it")
            files.append(path)
    if run.cfg.model.kind == "features":
        encoder_checkpoint(run)  # an unfinished LM stage, a missing packaged model: said now
    return sorted(set(files))


@dataclass
class LinearRun(ServedRun):
    """A finished tfidf or features run: one LinearHeads per fold, and what turns texts into features."""

    run: Run
    heads: list[LinearHeads]
    vectorizers: list | None  # tfidf
    encoder: torch.nn.Module | None  # features
    tokenizer: object | None  # features
    device: torch.device
    precision: str
    batch_size: int

    @property
    def kind(self) -> str:
        return self.run.cfg.model.kind

    @property
    def folds(self) -> list[int]:
        return list(range(len(self.heads)))

    @property
    def n_models(self) -> int:
        return len(self.heads)

    def features(self, texts: list[str]):
        if self.vectorizers is not None:
            return tfidf_transform(self.vectorizers, texts)
        cfg = self.config
        tokens = tokenize(self.tokenizer, texts, max_length=cfg.model.max_length, truncation=cfg.model.truncation,
                          head_tokens=cfg.model.head_tokens)
        return encode(self.encoder, tokens, self.tokenizer.pad_token_id, cfg.model.pooling, self.batch_size,
                      self.device, self.precision, cfg.train.pad_multiple)

    def fold_probabilities(self, texts: list[str]) -> list[np.ndarray]:
        """Each fold's logistic regressions on the texts' features (computed once)."""
        x = self.features(texts)
        return [heads.probabilities(x) for heads in self.heads]

    def fold_table(self) -> pd.DataFrame:
        records = [read_json(self.run.fold_file(k, "record.json")) for k in self.folds]
        return pd.DataFrame({
            "fold": self.folds,
            self.run.task.metric_name: [r.get("score") for r in records],
            "features": [h.n_features for h in self.heads],
            "fixed labels": [int(np.isfinite(h.constant).sum()) for h in self.heads],
        }).set_index("fold")

    def describe(self) -> str:
        what = (f"TF-IDF, {self.heads[0].n_features:,} features" if self.vectorizers is not None
                else f"frozen {self.config.model.name} embeddings on {self.device} ({self.precision})")
        return f"run {self.name}: {len(self.heads)} folds of logistic regressions per label ({what})"


def load(run: Run, device: torch.device, batch_size: int) -> LinearRun:
    check_servable(run)
    n_labels = len(run.task.label_columns)
    heads = [LinearHeads.load(run.fold_linear_path(k), n_labels) for k in range(fold_count(run.cfg))]
    vectorizers = encoder = tokenizer = None
    precision = "fp32"
    if run.cfg.model.kind == "tfidf":
        vectorizers = load_vectorizers(run.vectorizer_path, run.vectorizer_idf_path)
        n_columns = sum(len(v.vocabulary_) for v in vectorizers)
    else:
        checkpoint = encoder_checkpoint(run)
        try:
            tokenizer, encoder = load_tokenizer(checkpoint), load_encoder(checkpoint).to(device)
        except (OSError, ValueError) as err:
            raise RunError(f"{checkpoint}: the run's encoder cannot be loaded ({str(err).splitlines()[0]})") from None
        precision = resolve_precision("auto", device)
        n_columns = encoder.config.hidden_size
    for k, fold_heads in enumerate(heads):
        if fold_heads.n_features != n_columns:
            raise RunError(f"{run.fold_linear_path(k)}: models for {fold_heads.n_features} features, but the run's "
                           f"{'vocabulary' if vectorizers is not None else 'encoder'} gives {n_columns}")
    log.info("predict: %s, %d folds of %s models", run.dir, len(heads), run.cfg.model.kind)
    return LinearRun(run, heads, vectorizers, encoder, tokenizer, device, precision,
                     batch_size or run.cfg.train.eval_batch_size)
