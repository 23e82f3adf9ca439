"""Run-folder files → tables and dicts for the notebooks. Nothing here trains; every function reads
what a stage wrote under `runs/<name>/` (or the submission file) and shapes it for display."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.config import Config, fold_count
from ..core.errors import RunError
from ..core.paths import platform, resolve_model
from ..core.atomic import read_json
from ..core.data import read_predictions
from ..core.runs import open_run, reader
from ..core.tasks import get_task
from ..stages.submit import leaderboard_scores, run_leaderboard, short_of_competition
from ..core.advice import CHANCE_AUC, likely_fixes, near_chance


def _fold_file(cfg: Config, fold: int, kind: str):
    return reader(cfg).fold_file(fold, kind)


def _require(path, what: str):
    if not path.is_file():
        raise RunError(f"{path}: not found; {what}")
    return path


def summary_table(summary: dict, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """A flat dict (e.g. EDAResult.summary) as a two-column table; with `keys`, only the items
    whose name contains one of them."""
    rows = [(k, v) for k, v in summary.items() if not keys or any(part in k for part in keys)]
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def lm_table(lm_metrics: dict) -> pd.DataFrame:
    """Corpus size and perplexity before/after from lm_metrics.json."""
    rows = {
        "corpus tokens": lm_metrics["corpus_tokens"],
        "block size": lm_metrics["block_size"],
        "training blocks": lm_metrics["train_blocks"],
        "held-out blocks": lm_metrics["heldout_blocks"],
        "epochs": len(lm_metrics["epochs"]),
        "held-out perplexity before": round(lm_metrics["perplexity_before"], 2),
        "held-out perplexity after": round(lm_metrics["perplexity_after"], 2),
        "MLM head trained from scratch": lm_metrics["fresh_mlm_head"],
        "training tokens/s": round(lm_metrics["lm_tokens_per_s"], 1),
        "device / precision": f"{lm_metrics['device']} / {lm_metrics['precision']}",
    }
    return pd.DataFrame({"value": rows})


def fill_mask(model_path: str, sentences: list[str], top_k: int = 5) -> list[list[str]]:
    """Top-k predictions for the `[MASK]` in each sentence (written with `[MASK]` whatever the
    model's own mask token is)."""
    from transformers import pipeline

    from ..core.modeling import quiet_transformers

    quiet_transformers()
    unmasker = pipeline("fill-mask", model=model_path, tokenizer=model_path, device="cpu", top_k=top_k)
    mask = unmasker.tokenizer.mask_token
    out = unmasker([s.replace("[MASK]", mask) for s in sentences])
    out = [out] if len(sentences) == 1 else out
    return [[p["token_str"].strip() for p in preds] for preds in out]


def fill_mask_before_after(cfg: Config, sentences: list[str], top_k: int = 5) -> pd.DataFrame:
    """The base checkpoint's and the LM stage's (`runs/<name>/lm/`) top-k words for each `[MASK]`."""
    run_lm = reader(cfg).lm_dir
    _require(reader(cfg).lm_metrics_path, "run the LM stage first (kagglebert.stages.lm.main)")
    before = fill_mask(resolve_model(cfg.model.name), sentences, top_k)
    after = fill_mask(str(run_lm), sentences, top_k)
    return pd.DataFrame({
        "sentence": sentences,
        f"before: {cfg.model.name}": [", ".join(p) for p in before],
        f"after: {cfg.run.name}'s LM": [", ".join(p) for p in after],
    })


def fold_records(cfg: Config) -> list[dict]:
    return [read_json(_require(_fold_file(cfg, k, "record.json"), "train this fold first (kagglebert.train.main)"))
            for k in range(fold_count(cfg))]


def fold_table(cfg: Config) -> pd.DataFrame:
    """One row per fold: score, per-label AUC, best epoch, speed; a last row with the mean."""
    records = fold_records(cfg)
    rows = [{"fold": r["fold"], "score": r["score"], **r["per_label"], "best epoch": r.get("best_epoch"),
             "train samples/s": r.get("train_samples_per_s"), "train s": r.get("train_seconds")} for r in records]
    table = pd.DataFrame(rows).set_index("fold")
    table.loc["mean"] = table.mean(numeric_only=True)
    return table


@dataclass
class OOF:
    labels: list[str]
    truth: np.ndarray  # rows × labels, 0/1
    pred: np.ndarray  # rows × labels, out-of-fold probabilities


def oof_predictions(cfg: Config) -> OOF:
    """Out-of-fold predictions lined up with the training labels (by id)."""
    path = _require(reader(cfg).oof_path, "finish k-fold training first")
    run = open_run(cfg, write=False)  # checks the data still matches the run; writes nothing
    task = run.task
    oof = read_predictions(path, task.id_column)
    data = run.load_data()
    # every training row with k folds; with a single split (data.valid_frac) the validation rows only
    scored = np.flatnonzero(data.train[task.id_column].isin(set(oof[task.id_column])).to_numpy())
    oof = oof.set_index(task.id_column).loc[data.train[task.id_column].to_numpy()[scored], task.label_columns]
    return OOF(task.label_columns, data.labels[scored], oof.to_numpy())


def lr_schedule(cfg: Config, fold: int = 0) -> np.ndarray:
    """The top encoder layer's learning rate after each optimizer step, as the fold trained."""
    record = read_json(_require(_fold_file(cfg, fold, "record.json"), f"train fold {fold} first"))
    return np.asarray(record["lr_schedule"], dtype=float)


def compare_runs(fit: Config, itpt: Config) -> dict | None:
    """FiT vs ITPT-FiT on identical folds: per-fold scores and their paired difference, plus the
    OOF score and per-label OOF AUC of each. None until both runs have metrics.json."""
    paths = [reader(c).metrics_path for c in (fit, itpt)]
    if not all(p.is_file() for p in paths):
        return None
    a, b = (read_json(p) for p in paths)
    folds_a, folds_b = (reader(c).folds_path for c in (fit, itpt))
    if folds_a.read_text() != folds_b.read_text():
        raise RunError(f"{folds_a} and {folds_b} differ: a paired comparison needs the same folds")
    per_fold = pd.DataFrame({"FiT": a["fold_auc"], "ITPT-FiT": b["fold_auc"]})
    per_fold.index.name = "fold"
    per_fold["difference"] = per_fold["ITPT-FiT"] - per_fold["FiT"]
    diff = per_fold["difference"].to_numpy()
    per_label = pd.DataFrame({"FiT": a["per_label_auc"], "ITPT-FiT": b["per_label_auc"]})
    per_label["difference"] = per_label["ITPT-FiT"] - per_label["FiT"]
    summary = {
        "FiT OOF AUC": a["oof_auc"],
        "ITPT-FiT OOF AUC": b["oof_auc"],
        "mean paired difference": float(diff.mean()),
        # with a handful of folds the spread says more than a p-value would
        "std of paired difference": float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"),
        "folds where ITPT-FiT wins": f"{int((diff > 0).sum())} of {len(diff)}",
    }
    return {"per_fold": per_fold, "per_label": per_label, "summary": pd.DataFrame({"value": summary})}


def fold_test_predictions(cfg: Config) -> dict:
    """Per-fold test predictions, how alike they are, and their mean (what test_pred.csv holds)."""
    task = get_task(cfg.run.task)
    frames = [read_predictions(_require(_fold_file(cfg, k, "test.csv"), f"train fold {k} first"), task.id_column)
              for k in range(fold_count(cfg))]
    stacked = np.stack([f[task.label_columns].to_numpy() for f in frames])  # folds × rows × labels
    # Spearman (AUC only sees order) between two folds' predictions, per label, then the mean
    # over labels: pooling labels would measure their different base rates, not agreement
    names = [f"fold {k}" for k in range(len(frames))]
    correlation = sum(pd.DataFrame(stacked[:, :, j].T, columns=names).corr(method="spearman")
                      for j in range(len(task.label_columns))) / len(task.label_columns)
    blended = frames[0][[task.id_column]].copy()
    blended[task.label_columns] = stacked.mean(0)
    saved = read_predictions(_require(reader(cfg).test_pred_path, "finish k-fold training first"), task.id_column)
    return {
        "per_fold": {k: f for k, f in enumerate(frames)},
        "correlation": correlation,
        "mean": blended,
        "max_abs_diff_vs_test_pred": float(np.abs(saved[task.label_columns].to_numpy() - blended[task.label_columns].to_numpy()).max()),
    }


def validate_submission(cfg: Config, path) -> pd.DataFrame:
    """Re-read the written file and check it against sample_submission.csv as the run saw it
    (its test rows only, when data.max_test_rows bounded them), item by item."""
    task = get_task(cfg.run.task)
    sample = reader(cfg).load_data().sample_submission
    sub = read_predictions(path, task.id_column)
    values = sub[[c for c in sub.columns if c != task.id_column]].to_numpy(dtype=float)
    checks = {
        "columns equal sample_submission's": list(sub.columns) == list(sample.columns),
        "rows equal sample_submission's": len(sub) == len(sample),
        "ids in sample_submission's order": sub[task.id_column].tolist() == sample[task.id_column].tolist(),
        "no missing values": not np.isnan(values).any(),
        "all values in [0, 1]": bool(((values >= 0) & (values <= 1)).all()),
    }
    return pd.DataFrame({"passed": checks})


POSITIVES_ROW = "positives (comments labelled)"


def blend_table(blend_metrics: dict) -> pd.DataFrame:
    """blend.main's result as one table: each member's and the blend's OOF AUC, overall and per
    label, with each member's weight (mean over labels), and a last row with the positives each
    label's AUC rests on (plots.blend_per_label marks the labels with few)."""
    rows = {}
    for name, score in blend_metrics["member_oof_auc"].items():
        rows[name] = {"weight": blend_metrics["weights"][name], "OOF AUC": score, **blend_metrics["member_per_label_auc"][name]}
    rows[f"blend ({blend_metrics['method']})"] = {"weight": None, "OOF AUC": blend_metrics["oof_auc"], **blend_metrics["per_label_auc"]}
    if blend_metrics.get("oof_auc_nested") is not None:  # fitted weights: the score they earn on unseen folds
        rows["blend, weights from the other folds"] = {"weight": None, "OOF AUC": blend_metrics["oof_auc_nested"]}
    if blend_metrics.get("label_positives"):  # blends made before it was recorded have none
        rows[POSITIVES_ROW] = {"weight": None, "OOF AUC": None, **blend_metrics["label_positives"]}
    return pd.DataFrame.from_dict(rows, orient="index").round(4)


# --- what to submit ----------------------------------------------------------------------------


def honest_score(metrics: dict) -> float:
    """A run's OOF score as it would hold on unseen rows: for a blend with fitted weights the
    nested score (weights chosen without the scored fold), else the OOF score."""
    nested = metrics.get("oof_auc_nested")
    return float(nested if nested is not None else metrics["oof_auc"])


def run_scores(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per run (name → its metrics.json as a dict), best first: OOF score, the honest
    score used for ranking, and the kind (blend or one model)."""
    rows = [{"run": name, "OOF AUC": m["oof_auc"], "nested OOF AUC": m.get("oof_auc_nested"),
             "ranked by": honest_score(m), "kind": f"blend ({m['method']})" if "members" in m else "one model"}
            for name, m in runs.items()]
    return pd.DataFrame(rows).set_index("run").sort_values("ranked by", ascending=False)


def submission_warnings(task_name: str, rows: int, path) -> list[str]:
    """A file whose row count is not the competition test set's: Kaggle rejects it."""
    task = get_task(task_name)
    if not short_of_competition(rows, task):
        return []
    expected = task.test_rows
    fix = ("attach the competition and use the full profile" if platform() == "kaggle"
           else "use the full profile with the competition's files (data.dir)")
    return [f"{path} has {rows:,} rows; the competition's test set has {expected:,}. This is a sample run "
            f"(the bundled sample or data.max_test_rows): Kaggle will reject it; {fix}"]


def health_flags(transformers: dict[str, tuple[dict, Config]], baselines: dict[str, dict]) -> list[str]:
    """Transformer runs (name → (metrics, config)) that score near chance or below a classic
    baseline on the same folds, each with the fixes its own settings call for; [] when all is well."""
    flags = []
    best_baseline = max(baselines.items(), key=lambda item: item[1]["oof_auc"], default=None)
    for name, (metrics, cfg) in transformers.items():
        score = metrics["oof_auc"]
        if near_chance(score):
            flags.append(f"{name}: OOF AUC {score:.4f} is near chance ({CHANCE_AUC}); {likely_fixes(cfg)}")
        elif best_baseline is not None and score < best_baseline[1]["oof_auc"]:
            why = ("on a subsample this can be noise" if cfg.data.max_rows
                   else "a recipe problem, not a result")
            flags.append(f"{name}: OOF AUC {score:.4f} is below the {best_baseline[0]} baseline "
                         f"({best_baseline[1]['oof_auc']:.4f}) on the same folds: {why}; {likely_fixes(cfg)}")
    return flags


def leaderboard_table(runs: list[Config], blends: list[dict] = ()) -> tuple[pd.DataFrame, str] | None:
    """Every finished candidate's test score on the competition's released labels (when the data
    folder holds them: TaskSpec.leaderboard) beside its honest OOF score, best test score first, and
    the note saying what was scored; None when there are no labels. Runs are scored on their test
    predictions in submission form, blends on their written submission file."""
    finished = [c for c in runs if reader(c).metrics_path.is_file()]
    if not finished:
        return None
    rows = []
    for c in finished:
        board = run_leaderboard(reader(c))
        if board is None:
            return None
        rows.append((c.run.name, honest_score(read_json(reader(c).metrics_path)), board))
    data = reader(finished[0]).load_data()
    for b in blends:
        frame = read_predictions(Path(b["submission"]), data.task.id_column)
        rows.append((Path(b["submission"]).stem, honest_score(b), leaderboard_scores(frame, data.task, data.dir)))
    table = pd.DataFrame([
        {"run": name, "honest OOF AUC": oof,
         **{f"test AUC, {split} ({s['rows']} rows)": s["score"] for split, s in board["splits"].items()}}
        for name, oof, board in rows]).set_index("run")
    note = f"{rows[0][2]['metric']} on {', '.join(rows[0][2]['files'])}: {rows[0][2]['note']}"
    return table.sort_values(table.columns[1], ascending=False).round(4), note


# --- error analysis ----------------------------------------------------------------------------

THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def threshold_table(oof: OOF, thresholds: tuple[float, ...] = THRESHOLDS) -> pd.DataFrame:
    """Per label and threshold: comments flagged, precision, recall — what a moderation rule
    "flag when p ≥ t" would do with the out-of-fold predictions."""
    rows = []
    for j, label in enumerate(oof.labels):
        truth = oof.truth[:, j] >= 0.5
        for t in thresholds:
            flagged = oof.pred[:, j] >= t
            hits = int((flagged & truth).sum())
            rows.append({"label": label, "threshold": t, "positives": int(truth.sum()), "flagged": int(flagged.sum()),
                         "precision": hits / flagged.sum() if flagged.any() else float("nan"),
                         "recall": hits / truth.sum() if truth.any() else float("nan")})
    return pd.DataFrame(rows).set_index(["label", "threshold"]).round(3)


def largest_errors(cfg: Config, per_label: int = 3, max_chars: int = 300) -> pd.DataFrame:
    """For each label, the `per_label` most confident out-of-fold mistakes of each kind: false
    positives (not labelled, highest probability) and false negatives (labelled, lowest
    probability), with the comment (cut at `max_chars`)."""
    oof = oof_predictions(cfg)
    run = reader(cfg)
    data = run.load_data()
    texts = data.train[run.task.text_column].to_numpy()
    ids = data.train[run.task.id_column].to_numpy()
    rows = []
    for j, label in enumerate(oof.labels):
        truth, pred = oof.truth[:, j] >= 0.5, oof.pred[:, j]
        negatives, positives = np.flatnonzero(~truth), np.flatnonzero(truth)
        picks = [("false positive", negatives[np.argsort(-pred[negatives], kind="stable")[:per_label]]),
                 ("false negative", positives[np.argsort(pred[positives], kind="stable")[:per_label]])]
        for kind, rows_of_kind in picks:
            rows += [{"label": label, "error": kind, "id": ids[i], "labelled": int(truth[i]), "predicted": round(float(pred[i]), 4),
                      "comment": texts[i] if len(texts[i]) <= max_chars else texts[i][:max_chars] + "…"} for i in rows_of_kind]
    return pd.DataFrame(rows).set_index(["label", "error"])
