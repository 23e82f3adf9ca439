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
import pickle
import shutil
import time

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from ..core import distributed
from ..core.advice import CHANCE_AUC, likely_fixes, near_chance
from ..core.atomic import atomic_dir, read_json, write_json
from ..core.batching import LengthBucketBatchSampler, PadCollator
from ..core.checkpoint import save_classifier
from ..core.config import Config, fold_count
from ..core.data import CompetitionData
from ..core.engine import Batches, fit, param_groups, precision_of, start
from ..core.errors import Interrupted, RunError
from ..core.modeling import build_classifier, predict
from ..core.paths import cache_dir
from ..core.runs import Run, open_run
from ..core.bias import identity_weights
from ..core.tasks import positive_weights
from ..core.tokenization import load_tokenizer, tokenize
from . import baselines
from .kfold import assemble, save_fold, start_checkpoint

log = logging.getLogger("kagglebert")


def train_fold(run: Run, fold: int, *, train_rows: np.ndarray, valid_rows: np.ndarray, tokens, test_tokens, labels: np.ndarray,
               checkpoint: str, tokenizer, truth: np.ndarray | None = None, loss_weights: np.ndarray | None = None) -> dict:
    """Train on `train_rows`, keep the best epoch by the task's score on `valid_rows`, save its
    weights (with `train.save_models`); returns that epoch's validation and test predictions plus
    the fold's record. `labels`: the training targets (the label columns, then train.aux_columns);
    `truth`: what the score reads (default `labels`); `loss_weights`: rows × targets weights of the
    loss terms (identity-aware weights), None = plain BCE."""
    cfg, task, tc = run.cfg, run.task, run.cfg.train
    truth = labels if truth is None else truth
    n_labels = len(task.label_columns)  # the scored outputs come first; auxiliary targets follow
    accelerator = start(seed=cfg.run.seed + fold, device=cfg.run.device, precision=tc.precision, section="train")
    device, precision = accelerator.device, precision_of(accelerator)
    pad_id = tokenizer.pad_token_id
    model = build_classifier(checkpoint, labels.shape[1], cfg.model.pooling, cfg.model.dropout).to(device)

    weights = positive_weights(labels[train_rows], tc.pos_weight_power)
    pos_weight = None if weights is None else torch.from_numpy(weights).to(device)

    def compute_loss(model, batch):
        return task.loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"], pos_weight=pos_weight,
                         weights=batch.get("weights"))

    valid_tokens = tokens.subset(valid_rows)
    best = {"score": -math.inf}
    history = []

    def score_epoch(epoch: int, stats, training) -> None:
        """Score the held-out fold; keep the best epoch's predictions, and its weights unless it is
        the last epoch (the model in hand then)."""
        nonlocal best
        valid_pred = predict(model, valid_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)[:, :n_labels]
        scored = task.score(truth[valid_rows], valid_pred, task.label_columns)
        history.append({"epoch": epoch, "train_loss": stats.loss, "score": scored["score"], "samples_per_s": stats.samples_per_s, "loss_curve": stats.loss_curve})
        log.info("fold %d epoch %d/%d: loss %.4f, valid %s %.4f, %.0f samples/s", fold, epoch, tc.epochs, stats.loss, task.metric_name, scored["score"], stats.samples_per_s)
        if scored["score"] > best["score"]:
            best = {"score": scored["score"], "per_label": scored["per_label"], "per_identity": scored.get("per_identity"),
                    "epoch": epoch, "valid_pred": valid_pred,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()} if epoch < tc.epochs else None}

    fold_tokens = tokens.subset(train_rows)
    batches = Batches(LengthBucketBatchSampler(fold_tokens.lengths, tc.batch_size, tc.bucket_size, seed=cfg.run.seed + fold),
                      PadCollator(fold_tokens, pad_id, labels[train_rows], tc.pad_multiple,
                                  weights=None if loss_weights is None else loss_weights[train_rows]), len(train_rows))
    # a checkpoint inside the fold's training (train.checkpoint_minutes): resume from it when it is for this very plan
    resume_dir = run.fold_resume_dir(fold)
    plan = {"format": FOLD_RESUME_FORMAT, "epochs": tc.epochs, "rows": len(train_rows), "batches": len(batches.sampler),
            "batch_size": tc.batch_size, "grad_accum": tc.grad_accum, "checkpoint": checkpoint}
    finished = []  # the earlier epochs' seconds, samples and lr factors, for the record
    resume = load_fold_progress(resume_dir, plan, model)
    if resume is not None:
        history[:], finished[:] = resume["history"], resume["finished"]
        best = {**resume["best"], "score": resume["best"].get("score", -math.inf)}
        log.info("fold %d: resuming in epoch %d after batch %d from %s", fold, resume["epoch"] + 1, resume["stats"]["batches"], resume_dir)

    def at_checkpoint(training, position: dict) -> None:
        if distributed.is_main():
            save_fold_progress(resume_dir, model, training, {**plan, "history": history, "finished": finished, **position}, best)

    def epoch_done(epoch: int, stats, training) -> None:
        score_epoch(epoch, stats, training)
        finished.append({"seconds": stats.seconds, "samples": stats.samples, "lr_factors": stats.lr_factors})

    fit(model, compute_loss, batches, tc, accelerator=accelerator,
        groups=param_groups(model, model.encoder, tc.lr, tc.head_lr, tc.layer_decay, tc.weight_decay),
        desc=f"fold {fold}", progress=cfg.run.progress, on_epoch=epoch_done, save=at_checkpoint, resume=resume)
    if best["state"] is not None:  # an earlier epoch won: save and predict with its weights
        model.load_state_dict(best["state"])
    if tc.save_models and distributed.is_main():  # before the record: a fold with a record has its model
        with atomic_dir(run.fold_model_dir(fold)) as folder:
            save_classifier(model, tokenizer, folder, task=task, model_cfg=cfg.model, dtype=tc.save_dtype)
    test_pred = predict(model, test_tokens, pad_id, tc.eval_batch_size, device, precision, tc.pad_multiple)[:, :n_labels]
    model = best["state"] = None  # free the fold's weights before the next fold builds its own
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    seconds = sum(e["seconds"] for e in finished)
    samples = sum(e["samples"] for e in finished)
    record = {
        "fold": fold, "score": best["score"], "per_label": best["per_label"], "best_epoch": best["epoch"],
        "history": history, "train_seconds": seconds, "train_samples": samples,
        "train_samples_per_s": samples / seconds if seconds else 0.0,
        "lr_schedule": [tc.lr * f for e in finished for f in e["lr_factors"]], "device": str(device), "precision": precision,
        "checkpoint": checkpoint,
        **({"per_identity": best["per_identity"]} if best.get("per_identity") is not None else {}),
    }
    return {"record": record, "valid_pred": best["valid_pred"], "test_pred": test_pred}


FOLD_RESUME_FORMAT = 1


def save_fold_progress(folder, model, training, progress: dict, best: dict) -> None:
    """A fold's checkpoint inside an epoch, replacing the previous one whole: the weights, the
    optimizer/schedule/scaler/RNG states, the position (`progress["epoch"]`, `["stats"]`), the
    epochs scored so far, and the best one's predictions and weights."""
    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(training.resume_state(), tmp / "training_state.pt")
        if best.get("valid_pred") is not None:
            np.save(tmp / "best_valid_pred.npy", best["valid_pred"])
        if best.get("state") is not None:
            save_file(best["state"], str(tmp / "best_model.safetensors"))
        write_json(tmp / "progress.json", {**progress, "best": {k: best[k] for k in ("score", "per_label", "per_identity", "epoch") if k in best}})


def load_fold_progress(folder, plan: dict, model) -> dict | None:
    """The fit `resume` (weights loaded into `model`) plus the fold's bookkeeping, when `folder` holds
    a checkpoint for this very plan; else None."""
    if not (folder / "progress.json").is_file():
        return None
    progress = read_json(folder / "progress.json")
    if any(progress.get(k) != v for k, v in plan.items()):
        log.warning("train: ignoring the checkpoint in %s (saved for other settings); the fold starts over", folder)
        return None
    try:
        load_model(model, str(folder / "model.safetensors"))
        state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=True)
        best = dict(progress["best"])
        if (folder / "best_valid_pred.npy").is_file():
            best["valid_pred"] = np.load(folder / "best_valid_pred.npy")
        best["state"] = load_file(str(folder / "best_model.safetensors")) if (folder / "best_model.safetensors").is_file() else None
    except (OSError, RuntimeError, ValueError, SafetensorError, pickle.UnpicklingError) as err:
        raise RunError(f"{folder}: cannot resume the fold from it ({str(err).splitlines()[0]}); delete it to train the fold over") from None
    return {"epoch": progress["epoch"], "stats": progress["stats"], "state": state, "history": progress["history"],
            "finished": progress["finished"], "best": best}


def task_loss_weights(cfg: Config, data: CompetitionData) -> np.ndarray | None:
    """rows × targets weights of the loss terms: train.identity_weights' row weights on the label
    columns, 1 on the auxiliary ones; None when the scheme is "off" (plain BCE)."""
    task = data.task
    rows = identity_weights(data.train[task.label_columns[0]].to_numpy(), data.train[task.score_columns].to_numpy(np.float64),
                            cfg.train.identity_weights) if task.score_columns else None
    if rows is None:
        return None
    n_labels, n_aux = len(task.label_columns), len(cfg.train.aux_columns)
    return np.concatenate([np.repeat(rows[:, None], n_labels, axis=1), np.ones((len(rows), n_aux), np.float32)], axis=1)


def fit_transformer(run: Run, data: CompetitionData, folds: pd.DataFrame, todo: list[int]) -> None:
    cfg = run.cfg
    checkpoint = start_checkpoint(run)
    tokenizer = load_tokenizer(checkpoint)
    tok_args = dict(max_length=cfg.model.max_length, truncation=cfg.model.truncation, head_tokens=cfg.model.head_tokens, cache_dir=cache_dir(cfg))
    with distributed.main_first():  # one writer for the tokenization cache
        tokens = tokenize(tokenizer, data.train_texts, **tok_args)
        test_tokens = tokenize(tokenizer, data.test_texts, **tok_args)
    labels = data.targets(cfg.train.aux_columns)
    loss_weights = task_loss_weights(cfg, data)
    fold_of = folds["fold"].to_numpy()
    for fold in todo:
        began = time.perf_counter()
        result = train_fold(run, fold, train_rows=np.flatnonzero(fold_of != fold), valid_rows=np.flatnonzero(fold_of == fold),
                            tokens=tokens, test_tokens=test_tokens, labels=labels, checkpoint=checkpoint, tokenizer=tokenizer,
                            truth=data.truth, loss_weights=loss_weights)
        if distributed.is_main():
            save_fold(run, data, fold, np.flatnonzero(fold_of == fold), result["valid_pred"], result["test_pred"],
                      {**result["record"], "wall_seconds": time.perf_counter() - began})
            shutil.rmtree(run.fold_resume_dir(fold), ignore_errors=True)  # the fold is complete: its checkpoint goes
        distributed.barrier()


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
