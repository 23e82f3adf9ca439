"""Stage 3 — k-fold classifier training with out-of-fold predictions.

Per fold the model is built fresh (from `runs/<name>/lm/` when the LM stage ran, else from
`model.name`), trained on the other folds, scored on its own fold after every epoch; the best
epoch's validation and test predictions are written as soon as the fold ends, so an interrupted run
resumes at the first unfinished fold. When every fold is done: `oof.csv`, `test_pred.csv` (mean
over folds) and `metrics.json`.

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
from ..core.batching import LengthBucketBatchSampler, PadCollator
from ..core.config import Config
from ..core.data import CompetitionData
from ..core.engine import (make_optimizer, make_scaler, make_scheduler, param_groups, resolve_device,
                     resolve_precision, seed_everything, train_epoch)
from ..core.errors import RunError
from ..core.modeling import build_classifier
from ..core.atomic import read_json, write_csv, write_json
from ..core.paths import cache_dir
from ..core.runs import Run, open_run
from . import baselines
from .kfold import assemble, save_fold, start_checkpoint
from ..core.tasks import positive_weights
from ..core.tokenization import load_tokenizer, tokenize

log = logging.getLogger("kagglebert")


def train_fold(run: Run, fold: int, train_rows: np.ndarray, valid_rows: np.ndarray, tokens, test_tokens, labels: np.ndarray, checkpoint: str, pad_id: int) -> dict:
    """Train on `train_rows`, keep the best epoch by the task's score on `valid_rows`; returns
    the validation and test predictions of that epoch plus the fold's record."""
    cfg, task = run.cfg, run.task
    tc = cfg.train
    seed_everything(cfg.run.seed + fold)
    device = distributed.local_device(resolve_device(cfg.run.device))
    precision = resolve_precision(tc.precision, device)
    model = build_classifier(checkpoint, len(task.label_columns), cfg.model.pooling, cfg.model.dropout).to(device)

    fold_tokens = tokens.subset(train_rows)
    sampler = LengthBucketBatchSampler(fold_tokens.lengths, tc.batch_size, tc.bucket_size, seed=cfg.run.seed + fold)
    collate = PadCollator(fold_tokens, pad_id, labels[train_rows], tc.pad_multiple)
    batches = torch.utils.data.DataLoader(range(len(train_rows)), batch_sampler=distributed.shard(sampler), collate_fn=collate, pin_memory=device.type == "cuda")
    optimizer = make_optimizer(param_groups(model, model.encoder, tc.lr, tc.head_lr, tc.layer_decay, tc.weight_decay), device)
    total_steps = tc.epochs * math.ceil(len(batches) / tc.grad_accum)
    scheduler = make_scheduler(optimizer, total_steps, tc.warmup_ratio, tc.schedule, tc.stlr_ratio)
    scaler = make_scaler(device, precision)

    weights = positive_weights(labels[train_rows], tc.pos_weight_power)
    pos_weight = None if weights is None else torch.from_numpy(weights).to(device)

    def compute_loss(model, batch):
        return task.loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"], pos_weight=pos_weight)

    train_module, train_loss = distributed.wrap(model, compute_loss, device)  # DDP under torchrun, else as is

    valid_tokens = tokens.subset(valid_rows)
    best = {"score": -math.inf}
    history, seconds, samples, lr_factors = [], 0.0, 0, []
    for epoch in range(tc.epochs):
        sampler.set_epoch(epoch)
        stats = train_epoch(train_module, batches, train_loss, optimizer, scheduler, scaler, device, precision,
                            tc.grad_accum, tc.max_grad_norm, tc.log_every,
                            desc=f"fold {fold} epoch {epoch + 1}/{tc.epochs}", progress=cfg.run.progress)
        seconds += stats.seconds
        samples += stats.samples
        lr_factors += stats.lr_factors
        valid_pred = distributed.predict(model, valid_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)
        scored = task.score(labels[valid_rows], valid_pred, task.label_columns)
        history.append({"epoch": epoch + 1, "train_loss": stats.loss, "score": scored["score"], "samples_per_s": stats.samples_per_s, "loss_curve": stats.loss_curve})
        log.info("fold %d epoch %d/%d: loss %.4f, valid %s %.4f, %.0f samples/s", fold, epoch + 1, tc.epochs, stats.loss, task.metric_name, scored["score"], stats.samples_per_s)
        if scored["score"] > best["score"]:
            best = {"score": scored["score"], "per_label": scored["per_label"], "epoch": epoch + 1, "valid_pred": valid_pred,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()} if epoch + 1 < tc.epochs else None}
    if best["state"] is not None:  # an earlier epoch won: predict the test set with its weights
        model.load_state_dict(best["state"])
    test_pred = distributed.predict(model, test_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)
    del model, train_module, optimizer, scheduler, batches, best["state"]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    record = {
        "fold": fold, "score": best["score"], "per_label": best["per_label"], "best_epoch": best["epoch"],
        "history": history, "train_seconds": seconds, "train_samples": samples,
        "train_samples_per_s": samples / seconds if seconds else 0.0,
        "lr_schedule": [tc.lr * f for f in lr_factors], "device": str(device), "precision": precision,
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
        start = time.perf_counter()
        result = train_fold(run, fold, np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold),
                            tokens, test_tokens, labels, checkpoint, tokenizer.pad_token_id)
        if distributed.is_main():
            save_fold(run, data, fold, np.flatnonzero(fold_of == fold), result["valid_pred"], result["test_pred"],
                      {**result["record"], "wall_seconds": time.perf_counter() - start})
        distributed.barrier()


def main(cfg: Config) -> dict | None:
    distributed.init_from_env()  # under torchrun: join the process group; else nothing
    with distributed.main_first():
        run = open_run(cfg)
    if run.metrics_path.is_file():
        metrics = read_json(run.metrics_path)
        log.info("train: reusing %s (OOF %s %.4f)", run.metrics_path, run.task.metric_name, metrics["oof_auc"])
        return metrics
    with distributed.main_first():  # rank 0 writes folds.csv, the others read it
        data = run.load_data()
        folds = run.folds(data)
    wanted = cfg.train.folds or list(range(cfg.data.n_folds))
    bad = [k for k in wanted if not 0 <= k < cfg.data.n_folds]
    if bad:
        raise RunError(f"train.folds = {cfg.train.folds}: fold {bad[0]} is outside 0..{cfg.data.n_folds - 1}")
    done = [k for k in wanted if run.fold_file(k, "record.json").is_file()]
    if done:
        log.info("train: folds %s already complete in %s, resuming", done, run.dir)
    todo = [k for k in wanted if k not in done]
    if todo:
        if cfg.model.kind == "transformer":
            fit_transformer(run, data, folds, todo)
        else:
            baselines.fit_baseline(run, data, folds, todo)
    if not distributed.is_main():  # rank 0 assembles and writes the run's files
        return None
    if not all(run.fold_file(k, "record.json").is_file() for k in range(cfg.data.n_folds)):
        log.info("train: folds %s done; train the others for oof.csv and metrics.json", wanted)
        return None
    metrics = assemble(run, data, folds)
    log.info("train: OOF %s %.4f (folds: %s)", run.task.metric_name, metrics["oof_auc"], ", ".join(f"{s:.4f}" for s in metrics["fold_auc"]))
    return metrics
