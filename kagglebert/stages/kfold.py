"""The k-fold bookkeeping every model kind shares (transformer in `train`, tfidf/features in
`baselines`): which checkpoint a fold starts from, a finished fold's files, and the run's files
assembled from all folds."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..core.atomic import read_json, write_csv, write_json
from ..core.config import fold_count
from ..core.data import CompetitionData, read_predictions
from ..core.errors import RunError
from ..core.paths import resolve_model
from ..core.runs import Run
from .submit import build_submission, leaderboard_scores

log = logging.getLogger("kagglebert")


def start_checkpoint(run: Run) -> str:
    """The LM stage's output when it is part of this run, else the base checkpoint."""
    if run.cfg.lm.epochs > 0:
        if not run.lm_complete():
            raise RunError(f"lm.epochs = {run.cfg.lm.epochs} but {run.lm_dir} is not complete: run `python -m kagglebert lm` first (or `run`)")
        return str(run.lm_dir)
    return resolve_model(run.cfg.model.name)


def save_fold(run: Run, data: CompetitionData, fold: int, valid_rows: np.ndarray, valid_pred: np.ndarray, test_pred: np.ndarray, record: dict) -> None:
    """A fold's predictions, then its record: the record is the marker that the fold is complete."""
    task = run.task
    oof = pd.DataFrame(valid_pred, columns=task.label_columns)
    oof.insert(0, task.id_column, data.train[task.id_column].to_numpy()[valid_rows])
    write_csv(run.fold_file(fold, "oof.csv"), oof)
    test = pd.DataFrame(test_pred, columns=task.label_columns)
    test.insert(0, task.id_column, data.test[task.id_column].to_numpy())
    write_csv(run.fold_file(fold, "test.csv"), test)
    write_json(run.fold_file(fold, "record.json"), record)
    log.info("fold %d: %s %.4f (best epoch %s), %.0f s", fold, task.metric_name, record["score"], record.get("best_epoch", "-"), record.get("wall_seconds", 0.0))


def validation_scope(cfg) -> str:
    """What oof.csv covers, in words (metrics.json's `oof_scope`)."""
    if cfg.data.valid_frac > 0:
        return (f"single split: oof.csv holds the validation rows only (data.valid_frac = {cfg.data.valid_frac:g}; "
                "folds.csv fold 0), the other rows were trained on and have no out-of-fold prediction")
    return f"k-fold: oof.csv holds every training row, each predicted by the model of the fold that held it out ({cfg.data.n_folds} folds)"


def assemble(run: Run, data: CompetitionData, folds: pd.DataFrame) -> dict:
    """oof.csv, test_pred.csv (mean over folds) and metrics.json from the per-fold files. With a
    single split (data.valid_frac) oof.csv holds the validation rows only, in training-file order,
    and metrics.json says so (`oof_scope`, `oof_rows`)."""
    cfg, task = run.cfg, run.task
    n_models = fold_count(cfg)
    scored_rows = np.flatnonzero(folds["fold"].to_numpy() >= 0)  # every row with k folds; the validation rows of a split
    ids = data.train[task.id_column].to_numpy()[scored_rows]
    records = [read_json(run.fold_file(k, "record.json")) for k in range(n_models)]
    oof = pd.concat([read_predictions(run.fold_file(k, "oof.csv"), task.id_column) for k in range(n_models)])  # `NA` stays an id
    oof = oof.set_index(task.id_column).loc[ids].reset_index()
    write_csv(run.oof_path, oof)
    tests = [read_predictions(run.fold_file(k, "test.csv"), task.id_column) for k in range(n_models)]
    test_pred = tests[0].copy()
    test_pred[task.label_columns] = np.mean([t[task.label_columns].to_numpy() for t in tests], axis=0)
    write_csv(run.test_pred_path, test_pred)

    scored = task.score(data.truth[scored_rows], oof[task.label_columns].to_numpy(), task.label_columns)
    total_seconds = sum(r.get("train_seconds", 0.0) for r in records)
    metrics = {
        "metric": task.metric_name,
        "oof_auc": scored["score"],
        "fold_auc": [r["score"] for r in records],
        "per_label_auc": scored["per_label"],
        "fold_per_label_auc": [r["per_label"] for r in records],
        "best_epochs": [r.get("best_epoch") for r in records],
        "train_samples_per_s": sum(r.get("train_samples", 0) for r in records) / total_seconds if total_seconds else None,
        "train_seconds": total_seconds,
        **{key: scored[key] for key in ("overall_auc", "power_means", "per_identity") if key in scored},  # 2019: the bias table
        "model_kind": cfg.model.kind,
        "train_rows": len(data.train),
        "oof_rows": len(scored_rows),  # < train_rows with a single split: the validation rows only
        "valid_frac": cfg.data.valid_frac,  # 0 = k folds
        "oof_scope": validation_scope(cfg),
        "test_rows": len(data.test),
    }
    # the test predictions scored as their submission file will be, when the released labels are there
    leaderboard = leaderboard_scores(build_submission(test_pred, run.test_pred_path, data.sample_submission, task), task, data.dir)
    if leaderboard is not None:
        metrics["leaderboard"] = leaderboard
    if cfg.lm.epochs > 0 and run.lm_complete():
        lm_metrics = read_json(run.lm_metrics_path)
        metrics.update({k: lm_metrics[k] for k in ("perplexity_before", "perplexity_after", "lm_tokens_per_s")})
    write_json(run.metrics_path, metrics)
    return metrics
