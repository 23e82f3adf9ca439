"""A transformer run served: every fold model the run saved (`folds/fold<k>_model/`) scores the
texts and the probabilities are averaged over folds — what `train` does for the test set, so on the
run's own test file the result equals `test_pred.csv` (to fp16 rounding when the models were saved
in fp16). Batches are sorted by length, run without gradients and under autocast on a GPU (bf16
where the GPU has it, else fp16; fp32 on a CPU), like training's own predictions."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...core.atomic import read_json
from ...core.checkpoint import load_classifier, read_meta
from ...core.engine import resolve_precision
from ...core.config import fold_count
from ...core.errors import RunError
from ...core.modeling import Classifier, predict as model_probabilities
from ...core.runs import Run
from ...core.tokenization import tokenize, tokenizer_fingerprint
from .common import ServedRun

log = logging.getLogger("kagglebert")

# what every fold model of one run must agree on: the texts are tokenized once for all of them
SHARED_META = ("task", "label_columns", "max_length", "truncation", "head_tokens")


def check_finished(run: Run) -> None:
    """Every fold trained, and trained with its models kept: what any kind needs to be served."""
    cfg = run.cfg
    if not cfg.train.save_models:
        raise RunError(f"{run.dir}: trained with train.save_models = false, so no fold models were kept; train it "
                       f"again under a new name with --set train.save_models=true")
    for fold in range(fold_count(cfg)):
        if not run.fold_file(fold, "record.json").is_file():  # not fold_complete: a missing model gets its own message
            raise RunError(f"{run.dir}: fold {fold} is not trained ({run.fold_file(fold, 'record.json').name} missing); "
                           f"finish the run with `python -m kagglebert train` first")


def fold_model_dirs(run: Run) -> list[Path]:
    """The saved model folder of every fold of a finished transformer run; one-line RunError when
    the run cannot be served (models not saved, a fold unfinished or its model gone)."""
    check_finished(run)
    folders = []
    for fold in range(fold_count(run.cfg)):
        folder = run.fold_model_dir(fold)
        if not folder.is_dir():
            raise RunError(f"{folder}: missing; fold {fold}'s model was not saved or was deleted (the run cannot predict)")
        folders.append(folder)
    return folders


def check_fold_metas(folders: list[Path], run: Run) -> list[dict]:
    """Every fold's kagglebert.json, read before any weights are loaded: the folds must be this
    run's task and agree with each other on labels and tokenization."""
    metas = [read_meta(folder) for folder in folders]
    for folder, meta in zip(folders, metas):
        if meta.get("task") != run.task.name or meta.get("label_columns") != list(run.task.label_columns):
            raise RunError(f"{folder}: a model for task {meta.get('task')!r} with labels {meta.get('label_columns')}, "
                           f"but run {run.dir.name!r} is {run.task.name!r} with {list(run.task.label_columns)}")
        for key in SHARED_META:
            if meta.get(key) != metas[0].get(key):
                raise RunError(f"{folder}: {key} = {meta.get(key)!r}, but {folders[0].name} has {metas[0].get(key)!r}; "
                               f"the fold models do not belong to one run")
    return metas


def check_servable(run: Run) -> list[dict]:
    """Everything checked without loading weights; the folds' metas."""
    return check_fold_metas(fold_model_dirs(run), run)


@dataclass
class TrainedRun(ServedRun):
    """A finished transformer run's fold models, loaded once, ready to score texts."""

    run: Run
    models: list[Classifier]
    tokenizer: object
    meta: dict  # fold 0's kagglebert.json (the folds agree on task, labels and tokenization)
    device: torch.device
    precision: str  # autocast precision: fp32 on a CPU, bf16/fp16 on a GPU
    batch_size: int
    kind: str = "transformer"

    @property
    def folds(self) -> list[int]:
        return list(range(len(self.models)))

    @property
    def n_models(self) -> int:
        return len(self.models)

    def fold_probabilities(self, texts: list[str]) -> list[np.ndarray]:
        """Each fold model's sigmoid outputs, (n texts, n labels): the texts are tokenized once."""
        meta = self.meta
        tokens = tokenize(self.tokenizer, texts, max_length=meta["max_length"], truncation=meta["truncation"],
                          head_tokens=meta["head_tokens"])
        return [model_probabilities(model, tokens, self.tokenizer.pad_token_id, self.batch_size, self.device,
                                    self.precision, self.config.train.pad_multiple) for model in self.models]

    def fold_table(self) -> pd.DataFrame:
        """One row per fold model: its validation score, best epoch and stored dtype."""
        records = [read_json(self.run.fold_file(k, "record.json")) for k in self.folds]
        return pd.DataFrame({
            "fold": self.folds,
            self.run.task.metric_name: [r.get("score") for r in records],
            "best epoch": [r.get("best_epoch") for r in records],
            "stored as": [self.meta.get("dtype")] * len(self.models),
        }).set_index("fold")

    def describe(self) -> str:
        return (f"run {self.name}: {len(self.models)} fold models ({self.config.model.name}, stored as "
                f"{self.meta.get('dtype')}) on {self.device} ({self.precision})")


def load(run: Run, device: torch.device, batch_size: int) -> TrainedRun:
    folders = fold_model_dirs(run)
    check_fold_metas(folders, run)
    models, tokenizer, meta = [], None, None
    for folder in folders:
        model, fold_tokenizer, fold_meta = load_classifier(folder, device=device, task=run.task)
        if tokenizer is None:
            tokenizer, meta = fold_tokenizer, fold_meta
        elif tokenizer_fingerprint(fold_tokenizer) != tokenizer_fingerprint(tokenizer):
            raise RunError(f"{folder}: its tokenizer differs from {folders[0].name}'s; the fold models do not belong to one run")
        models.append(model)
    precision = resolve_precision("auto", device)
    log.info("predict: %s, %d fold models on %s (%s)", run.dir, len(models), device, precision)
    return TrainedRun(run, models, tokenizer, meta, device, precision, batch_size or run.cfg.train.eval_batch_size)
