"""Stage 3 — k-fold classifier training with out-of-fold predictions.

Data: the competition's train comments (tokenized, cut to `model.max_length`), split by folds.csv.
Model: per fold a fresh classifier — the encoder from `runs/_lm/<key>/` when the LM stage ran, else
from `model.name`, with `model.pooling` and a linear head. Loss: the task's (BCE over the six
labels, positives optionally up-weighted). After every epoch the fold is scored on its own rows and
the best epoch is kept. Writes, per fold and in this order: the best epoch's weights
(`folds/fold<k>_model/`, with `train.save_models`, stored in `train.save_dtype`), its validation
and test predictions, then `fold<k>_record.json`, the marker that the fold is complete — an
interrupted run resumes at the first unfinished fold. When every fold is done: `oof.csv`,
`test_pred.csv` (mean over folds) and `metrics.json`.

    python -m kagglebert train --config demo
"""
from __future__ import annotations

import gc
import logging
import math
import time

import numpy as np
import pandas as pd
import torch

from ..core import distributed
from ..core.atomic import atomic_dir, read_json
from ..core.batching import LengthBucketBatchSampler, PadCollator
from ..core.checkpoint import save_classifier
from ..core.config import Config, fold_count
from ..core.data import CompetitionData
from ..core.engine import fit, param_groups, start
from ..core.errors import Interrupted, RunError
from ..core.modeling import build_classifier, predict
from ..core.paths import cache_dir
from ..core.runs import Run, open_run
from ..core.tasks import positive_weights
from ..core.tokenization import load_tokenizer, tokenize
from . import baselines
from .kfold import assemble, save_fold, start_checkpoint

log = logging.getLogger("kagglebert")


def train_fold(run: Run, fold: int, *, train_rows: np.ndarray, valid_rows: np.ndarray, tokens, test_tokens, labels: np.ndarray,
               checkpoint: str, tokenizer) -> dict:
    """Train on `train_rows`, keep the best epoch by the task's score on `valid_rows`, save its
    weights (with `train.save_models`); returns that epoch's validation and test predictions plus
    the fold's record."""
    cfg, task, tc = run.cfg, run.task, run.cfg.train
    device, precision = start(seed=cfg.run.seed + fold, device=cfg.run.device, precision=tc.precision)
    pad_id = tokenizer.pad_token_id
    model = build_classifier(checkpoint, len(task.label_columns), cfg.model.pooling, cfg.model.dropout).to(device)

    weights = positive_weights(labels[train_rows], tc.pos_weight_power)
    pos_weight = None if weights is None else torch.from_numpy(weights).to(device)

    def compute_loss(model, batch):
        return task.loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"], pos_weight=pos_weight)

    valid_tokens = tokens.subset(valid_rows)
    best = {"score": -math.inf}
    history = []

    def score_epoch(epoch: int, stats, training) -> None:
        """Score the held-out fold; keep the best epoch's predictions, and its weights unless it is
        the last epoch (the model in hand then)."""
        nonlocal best
        valid_pred = predict(model, valid_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)
        scored = task.score(labels[valid_rows], valid_pred, task.label_columns)
        history.append({"epoch": epoch, "train_loss": stats.loss, "score": scored["score"], "samples_per_s": stats.samples_per_s, "loss_curve": stats.loss_curve})
        log.info("fold %d epoch %d/%d: loss %.4f, valid %s %.4f, %.0f samples/s", fold, epoch, tc.epochs, stats.loss, task.metric_name, scored["score"], stats.samples_per_s)
        if scored["score"] > best["score"]:
            best = {"score": scored["score"], "per_label": scored["per_label"], "epoch": epoch, "valid_pred": valid_pred,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()} if epoch < tc.epochs else None}

    fold_tokens = tokens.subset(train_rows)
    epochs = fit(
        model=model, compute_loss=compute_loss,
        param_groups=param_groups(model, model.encoder, tc.lr, tc.head_lr, tc.layer_decay, tc.weight_decay),
        batch_sampler=LengthBucketBatchSampler(fold_tokens.lengths, tc.batch_size, tc.bucket_size, seed=cfg.run.seed + fold),
        collate=PadCollator(fold_tokens, pad_id, labels[train_rows], tc.pad_multiple),
        rows=len(train_rows), epochs=tc.epochs, device=device, precision=precision,
        warmup_ratio=tc.warmup_ratio, schedule=tc.schedule, stlr_ratio=tc.stlr_ratio,
        grad_accum=tc.grad_accum, max_grad_norm=tc.max_grad_norm, log_every=tc.log_every,
        section="train", desc=f"fold {fold}", progress=cfg.run.progress, on_epoch=score_epoch,
    )
    if best["state"] is not None:  # an earlier epoch won: save and predict with its weights
        model.load_state_dict(best["state"])
    if tc.save_models and distributed.is_main():  # before the record: a fold with a record has its model
        with atomic_dir(run.fold_model_dir(fold)) as folder:
            save_classifier(model, tokenizer, folder, task=task, model_cfg=cfg.model, dtype=tc.save_dtype)
    test_pred = predict(model, test_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)
    model = best["state"] = None  # free the fold's weights before the next fold builds its own
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    seconds = sum(e.seconds for e in epochs)
    samples = sum(e.samples for e in epochs)
    record = {
        "fold": fold, "score": best["score"], "per_label": best["per_label"], "best_epoch": best["epoch"],
        "history": history, "train_seconds": seconds, "train_samples": samples,
        "train_samples_per_s": samples / seconds if seconds else 0.0,
        "lr_schedule": [tc.lr * f for e in epochs for f in e.lr_factors], "device": str(device), "precision": precision,
        "checkpoint": checkpoint,
    }
    return {"record": record, "valid_pred": best["valid_pred"], "test_pred": test_pred}


def fit_transformer(run: Run, data: CompetitionData, folds: pd.DataFrame, todo: list[int]) -> None:
    cfg = run.cfg
    checkpoint = start_checkpoint(run)
    tokenizer = load_tokenizer(checkpoint)
    tok_args = dict(max_length=cfg.model.max_length, truncation=cfg.model.truncation, head_tokens=cfg.model.head_tokens, cache_dir=cache_dir(cfg))
    with distributed.main_first():  # one writer for the tokenization cache
        tokens = tokenize(tokenizer, data.train_texts, **tok_args)
        test_tokens = tokenize(tokenizer, data.test_texts, **tok_args)
    labels = data.labels
    fold_of = folds["fold"].to_numpy()
    for fold in todo:
        began = time.perf_counter()
        result = train_fold(run, fold, train_rows=np.flatnonzero(fold_of != fold), valid_rows=np.flatnonzero(fold_of == fold),
                            tokens=tokens, test_tokens=test_tokens, labels=labels, checkpoint=checkpoint, tokenizer=tokenizer)
        if distributed.is_main():
            save_fold(run, data, fold, np.flatnonzero(fold_of == fold), result["valid_pred"], result["test_pred"],
                      {**result["record"], "wall_seconds": time.perf_counter() - began})
        distributed.barrier()


CHANCE_AUC = 0.5  # the ROC AUC of a random ranking
NEAR_CHANCE_MARGIN = 0.1  # a transformer below 0.6 on these labels learned next to nothing: something is broken
def likely_fixes(cfg: Config) -> str:
    """What to change in `cfg` when its transformer scores near chance or below a baseline: only
    the settings that differ from the recipe that works on these labels, each with its value now."""
    train, model = cfg.train, cfg.model
    fixes = []
    if cfg.data.max_rows:
        fixes.append(f"more rows (data.max_rows = {cfg.data.max_rows} now: a subsample this small is noisy and "
                     "favours the baselines; judge the recipe on the full data)")
    if train.epochs < 2:
        fixes.append(f"at least 2 epochs (train.epochs = {train.epochs} now)")
    if model.pooling != "mean":
        fixes.append(f"mean pooling for sentence encoders such as MiniLM (model.pooling = {model.pooling!r} now)")
    if not 2e-5 <= train.lr <= 6e-5:
        fixes.append(f"encoder lr 2e-5–6e-5 (train.lr = {train.lr:g} now)")
    if train.head_lr < 5e-4:
        fixes.append(f"a fresh head at about 1e-3 (train.head_lr = {train.head_lr:g} now)")
    if train.pos_weight_power == 0:
        fixes.append("rare labels weighted (train.pos_weight_power = 0.5)")
    if model.truncation == "head":
        fixes.append(f"head+tail truncation (model.truncation = 'head' now; model.max_length = {model.max_length})")
    if cfg.lm.epochs > 0:
        fixes.append(f"if only this ITPT arm is weak, its LM stage (lm.head_lr = {cfg.lm.head_lr:g} for a fresh MLM head; "
                     f"fewer than lm.epochs = {cfg.lm.epochs})")
    if not fixes:
        return "the settings follow the recipe that works here: check the data (label and text columns) and the loss curve"
    return "likely fixes: " + "; ".join(fixes)


def near_chance(score: float) -> bool:
    return score < CHANCE_AUC + NEAR_CHANCE_MARGIN


def log_score(run: Run, metrics: dict, verb: str) -> None:
    """The run's OOF score — and a warning, with the likely fixes, when a transformer scored near chance."""
    where = "folds" if not metrics.get("valid_frac") else f"{metrics['oof_rows']} validation rows of one split"
    log.info("train: %s (OOF %s %.4f; %s: %s)", verb, run.task.metric_name, metrics["oof_auc"], where,
             ", ".join(f"{s:.4f}" for s in metrics["fold_auc"]))
    if run.cfg.model.kind == "transformer" and near_chance(metrics["oof_auc"]):
        log.warning("train: %s: OOF AUC %.4f is near chance (%.1f): the model learned next to nothing; %s",
                    run.dir.name, metrics["oof_auc"], CHANCE_AUC, likely_fixes(run.cfg))


def main(cfg: Config) -> dict | None:
    distributed.init_from_env()  # under torchrun: join the process group; else nothing
    with distributed.main_first():
        run = open_run(cfg)
    every_fold = range(fold_count(cfg))
    finished = (run.metrics_path, run.oof_path, run.test_pred_path)  # a deleted one is assembled again below
    if all(p.is_file() for p in finished) and all(run.fold_complete(k) for k in every_fold):
        metrics = read_json(run.metrics_path)
        log_score(run, metrics, f"reusing {run.metrics_path}")
        return metrics
    with distributed.main_first():  # rank 0 writes folds.csv, the others read it
        data = run.load_data()
        folds = run.folds(data)
    wanted = cfg.train.folds or list(every_fold)
    bad = [k for k in wanted if k not in every_fold]
    if bad:
        raise RunError(f"train.folds = {cfg.train.folds}: fold {bad[0]} is outside 0..{len(every_fold) - 1}")
    done = [k for k in wanted if run.fold_complete(k)]
    if done:
        log.info("train: folds %s already complete in %s, resuming", done, run.dir)
    todo = [k for k in wanted if k not in done]
    try:
        if todo and cfg.model.kind == "transformer":
            fit_transformer(run, data, folds, todo)
        elif todo:
            baselines.fit_baseline(run, data, folds, todo)
    except KeyboardInterrupt:
        stopped_in = next((k for k in todo if not run.fold_complete(k)), todo[-1])
        raise Interrupted(f"interrupted in fold {stopped_in}; rerun the same command to resume") from None
    if not distributed.is_main():  # rank 0 assembles and writes the run's files
        return None
    if not all(run.fold_complete(k) for k in every_fold):
        log.info("train: folds %s done; train the others for oof.csv and metrics.json", wanted)
        return None
    metrics = assemble(run, data, folds)
    log_score(run, metrics, f"wrote {run.metrics_path}")
    return metrics
