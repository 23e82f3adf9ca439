"""The project's question, measured: does masked-LM fine-tuning on the competition text (ITPT)
before classifier fine-tuning (FiT) help? Every variant (`lm.epochs` = 0, i.e. FiT, and each N > 0,
ITPT-FiT) is trained with the same folds, the same seeds and the same classifier settings, each as
its own run `<name>-lm{E}-s{seed}` (finished runs and LM stages are reused). The comparison is
paired: for every seed and fold, ITPT's fold AUC minus FiT's on the very same validation rows.
When the competition's released test labels are in the data folder (`TaskSpec.leaderboard`), each
variant's submission is also scored on them: its test score per split beside OOF, and ITPT's paired
test difference per seed.

Writes `runs/<name>/ablation.json`, `ablation.md` (also printed) and `ablation.png`.

    python -m kagglebert ablate --config demo --seeds 0 1 2 --lm-epochs 0 1 4
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..core.atomic import write_atomic, write_figure, write_json
from ..core.config import Config, fold_count
from ..core.data import read_predictions
from ..core.errors import ConfigError, RunError
from ..core.runs import Run, read_run, reader
from ..stages import pipeline
from ..stages.submit import run_leaderboard

log = logging.getLogger("kagglebert")


def variant_key(lm_epochs: int) -> str:
    return f"lm{lm_epochs}"


def variant_config(cfg: Config, lm_epochs: int, seed: int) -> Config:
    return cfg.replace(run={"name": f"{cfg.run.name}-lm{lm_epochs}-s{seed}", "seed": seed}, lm={"epochs": lm_epochs})


def valid_train_ratio(cfg: Config) -> float:
    """n_valid / n_train of one model: 1/(k-1) with k folds, valid_frac/(1 - valid_frac) with one split."""
    frac = cfg.data.valid_frac
    return frac / (1.0 - frac) if frac > 0 else 1.0 / (cfg.data.n_folds - 1)


def paired_summary(diffs: np.ndarray, valid_over_train: float) -> dict:
    """Mean of the paired differences and two 95% intervals.

    `paired_diff_ci95` is the textbook t-interval, treating the fold × seed pairs as independent.
    They are not: the folds' training sets overlap, which makes that interval too narrow.
    `paired_diff_ci95_corrected` widens the variance by (1/n + n_valid/n_train) instead of 1/n
    (Nadeau & Bengio 2003, "corrected resampled t-test"); with k folds n_valid/n_train = 1/(k-1),
    with one split (data.valid_frac = f, one pair per seed) f/(1-f)."""
    from scipy.stats import t as student_t  # scikit-learn depends on scipy, so it is always there

    n = len(diffs)
    mean = float(np.mean(diffs))
    if n < 2:
        return {"paired_diff_mean": mean, "paired_diff_ci95": None, "paired_diff_ci95_corrected": None, "pairs": n}
    sd = float(np.std(diffs, ddof=1))
    quantile = float(student_t.ppf(0.975, n - 1))
    half = quantile * sd / math.sqrt(n)
    half_corrected = quantile * sd * math.sqrt(1.0 / n + valid_over_train)
    return {
        "paired_diff_mean": mean,
        "paired_diff_sd": sd,
        "paired_diff_ci95": [mean - half, mean + half],
        "paired_diff_ci95_corrected": [mean - half_corrected, mean + half_corrected],
        "pairs": n,
        "itpt_wins": int(np.sum(diffs > 0)),
    }


def mean_per_label(per_label_runs: list[dict]) -> dict:
    """Mean AUC per label over seeds; a label without an AUC in some seed (one class only) is None."""
    out = {}
    for label in per_label_runs[0]:
        values = [r[label] for r in per_label_runs]
        out[label] = None if any(v is None for v in values) else float(np.mean(values))
    return out


def check_lm_epochs(cfg: Config, lm_epochs: list[int] | None) -> list[int]:
    if lm_epochs is None:
        if cfg.lm.epochs <= 0:
            raise ConfigError("ablate: lm.epochs is 0 in the config; set it (--set lm.epochs=N) or pass --lm-epochs 0 N")
        lm_epochs = [0, cfg.lm.epochs]
    if any(e < 0 for e in lm_epochs):
        raise ConfigError(f"ablate --lm-epochs {' '.join(map(str, lm_epochs))}: epochs cannot be negative")
    if 0 not in lm_epochs:
        log.info("ablate: adding lm.epochs = 0 (FiT), the baseline every ITPT variant is paired with")
    epochs = sorted(set(lm_epochs) | {0})
    if len(epochs) < 2:
        raise ConfigError("ablate --lm-epochs: give at least one length N > 0 to compare with FiT (0)")
    return epochs


# ablate's own outputs, in the folder `Run` gives the ablation's name (runs/<name>/)
ABLATION_JSON, ABLATION_MD, ABLATION_PNG = "ablation.json", "ablation.md", "ablation.png"


def train_variant(cfg: Config, lm_epochs: int, seed: int) -> tuple[dict, Run]:
    """Train (or reuse) one variant; the finished run comes back opened read-only."""
    variant = variant_config(cfg, lm_epochs, seed)
    metrics = pipeline.fit(variant)
    if metrics is None:  # cannot happen with train.folds = []; guarded in main
        raise RunError(f"ablate: run {variant.run.name} did not finish all folds")
    return metrics, read_run(variant.run.runs_dir, variant.run.name)


def main(cfg: Config, seeds: list[int], lm_epochs: list[int] | None = None) -> dict:
    if cfg.model.kind != "transformer":
        raise ConfigError(f"ablate: model.kind = {cfg.model.kind!r}; the LM stage only exists for transformer runs")
    if cfg.train.folds and sorted(cfg.train.folds) != list(range(fold_count(cfg))):
        raise ConfigError(f"ablate: train.folds = {cfg.train.folds}; the comparison needs every fold (set train.folds = [])")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"ablate --seeds {' '.join(map(str, seeds))}: give distinct seeds")
    epochs = check_lm_epochs(cfg, lm_epochs)
    out = reader(cfg)  # validates the name before hours of training; written only at the end

    results: dict[int, list[dict]] = {e: [] for e in epochs}
    reference_folds, reference_run = None, None
    for seed in seeds:
        for e in epochs:
            log.info("ablate: lm.epochs = %d, seed %d", e, seed)
            metrics, run = train_variant(cfg, e, seed)
            folds = read_predictions(run.folds_path, "id")
            if reference_folds is None:
                reference_folds, reference_run = folds, run
            elif not folds.equals(reference_folds):
                raise RunError(f"{run.folds_path}: differs from {reference_run.folds_path}; the variants must share folds (same data.* settings)")
            results[e].append({"seed": seed, "run": run.dir.name, **metrics, "leaderboard": run_leaderboard(run)})

    first_board = results[0][0]["leaderboard"]
    summary: dict = {
        "metric": results[0][0]["metric"], "seeds": seeds, "lm_epochs": epochs, "n_folds": fold_count(cfg),
        "valid_frac": cfg.data.valid_frac,  # > 0: one split, one paired difference per seed
        "train_rows": results[0][0].get("train_rows"), "model": cfg.model.name, "variants": {},
        # what the test scores are (files, splits, note); None: no released labels in the data folder
        "test": None if first_board is None else {k: first_board[k] for k in ("metric", "files", "note")},
    }
    for e in epochs:
        runs = results[e]
        scores = [r["oof_auc"] for r in runs]
        entry = {
            "lm_epochs": e,
            "runs": [r["run"] for r in runs],
            "oof_auc": float(np.mean(scores)),
            "oof_auc_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
            "oof_auc_per_seed": scores,
            "fold_auc": [a for r in runs for a in r["fold_auc"]],  # seed-major: seed 0's folds, then seed 1's
            "per_label_auc": mean_per_label([r["per_label_auc"] for r in runs]),
            "perplexity_before": None, "perplexity_after": None,
            "train_samples_per_s": float(np.mean([r["train_samples_per_s"] or 0.0 for r in runs])),
        }
        if e > 0:
            entry["perplexity_before"] = float(np.mean([r["perplexity_before"] for r in runs]))
            entry["perplexity_after"] = float(np.mean([r["perplexity_after"] for r in runs]))
            entry["perplexity_after_per_seed"] = [r["perplexity_after"] for r in runs]
            diffs = np.array(entry["fold_auc"]) - np.array(summary["variants"][variant_key(0)]["fold_auc"])
            entry["paired_diffs"] = diffs.tolist()
            entry.update(paired_summary(diffs, valid_train_ratio(cfg)))
        if summary["test"] is not None:
            entry["test"] = test_scores([r["leaderboard"] for r in runs])
            if e > 0:
                fit_test = summary["variants"][variant_key(0)]["test"]
                for split, scores in entry["test"].items():
                    pairs = [(a, b) for a, b in zip(scores["per_seed"], fit_test[split]["per_seed"]) if a is not None and b is not None]
                    scores["diff_vs_fit_per_seed"] = [a - b for a, b in pairs]
                    scores["diff_vs_fit"] = float(np.mean([a - b for a, b in pairs])) if pairs else None
        summary["variants"][variant_key(e)] = entry

    write_json(out.path(ABLATION_JSON), summary)
    table = markdown_table(summary)
    write_atomic(out.path(ABLATION_MD), table)
    plot(summary, out.path(ABLATION_PNG))
    print(table)
    log.info("ablate: %s, %s, %s", out.path(ABLATION_JSON), ABLATION_MD, ABLATION_PNG)
    return summary


def test_scores(boards: list[dict]) -> dict:
    """Per leaderboard split: the test score of every seed's submission and their mean (None when
    a seed's split has no scored row)."""
    out = {}
    for split in boards[0]["splits"]:
        per_seed = [b["splits"][split]["score"] for b in boards]
        out[split] = {
            "score": None if any(v is None for v in per_seed) else float(np.mean(per_seed)),
            "per_seed": per_seed,
            "rows": boards[0]["splits"][split]["rows"],
        }
        if "per_label" in boards[0]["splits"][split]:
            out[split]["per_label"] = mean_per_label([b["splits"][split]["per_label"] for b in boards])
    return out


def fmt_score(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def fmt_interval(interval) -> str:
    return "–" if interval is None else f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


def markdown_table(summary: dict) -> str:
    seeds, n_folds = summary["seeds"], summary["n_folds"]
    test = summary.get("test")
    splits = [] if test is None else list(next(iter(summary["variants"].values()))["test"])
    lines = [
        f"OOF {summary['metric']}, {len(seeds)} seed(s) × {n_folds} folds, {summary['train_rows']} training rows, model {summary['model']}",
        "",
        "| variant | LM epochs | OOF AUC (mean over seeds) | per seed | perplexity before → after | Δ vs FiT (paired) | 95% CI (t) | 95% CI (corrected) |"
        + "".join(f" test AUC, {split} | Δ test vs FiT |" for split in splits),
        "|---|---|---|---|---|---|---|---|" + "---|---|" * len(splits),
    ]
    for key, v in summary["variants"].items():
        name = "FiT" if v["lm_epochs"] == 0 else "ITPT-FiT"
        per_seed = ", ".join(f"{s:.4f}" for s in v["oof_auc_per_seed"])
        ppl = "–" if v["perplexity_before"] is None else f"{v['perplexity_before']:.1f} → {v['perplexity_after']:.1f}"
        diff = "–" if v["lm_epochs"] == 0 else f"{v['paired_diff_mean']:+.4f}"
        cells = "".join(f" {fmt_score(v['test'][split]['score'])} ({v['test'][split]['rows']} rows) | "
                        f"{'–' if v['lm_epochs'] == 0 or v['test'][split]['diff_vs_fit'] is None else format(v['test'][split]['diff_vs_fit'], '+.4f')} |"
                        for split in splits)
        lines.append(f"| {name} ({key}) | {v['lm_epochs']} | {v['oof_auc']:.4f} | {per_seed} | {ppl} | {diff} | "
                     f"{fmt_interval(v.get('paired_diff_ci95'))} | {fmt_interval(v.get('paired_diff_ci95_corrected'))} |" + cells)
    if test is not None:
        lines += ["", f"Test: {test['metric']} on the released labels ({', '.join(test['files'])}); {test['note']}."]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    """Left: every seed × fold paired difference (ITPT − FiT) per variant, with its mean. Right:
    per-label OOF AUC of each variant (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on Kaggle or in tests
    import matplotlib.pyplot as plt

    variants = summary["variants"]
    itpt = [k for k, v in variants.items() if v["lm_epochs"] > 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, key in enumerate(itpt):
        diffs = np.array(variants[key]["paired_diffs"])
        jitter = np.linspace(-0.15, 0.15, len(diffs)) if len(diffs) > 1 else np.zeros(1)
        left.scatter(np.full(len(diffs), i) + jitter, diffs, alpha=0.7, label=None)
        left.hlines(diffs.mean(), i - 0.25, i + 0.25, colors="black")
        ci = variants[key].get("paired_diff_ci95")
        if ci is not None:
            left.vlines(i, ci[0], ci[1], colors="gray", linewidth=3, alpha=0.5)
    left.axhline(0.0, color="red", linewidth=1)
    left.set_xticks(range(len(itpt)), [f"{k} − lm0" for k in itpt])
    left.set_ylabel("fold AUC difference (ITPT − FiT)")
    left.set_title("paired differences per seed × fold (bar: mean, gray: 95% t-interval)")

    labels = list(next(iter(variants.values()))["per_label_auc"])
    width = 0.8 / len(variants)
    for i, (key, v) in enumerate(variants.items()):
        values = [np.nan if v["per_label_auc"][label] is None else v["per_label_auc"][label] for label in labels]
        tested = "".join(f", test {split} {fmt_score(t['score'])}" for split, t in (v.get("test") or {}).items())
        right.bar(np.arange(len(labels)) + i * width - 0.4 + width / 2, values, width, label=f"{key} (OOF {v['oof_auc']:.4f}{tested})")
    right.set_xticks(range(len(labels)), labels, rotation=30)
    right.set_ylabel("OOF ROC AUC (mean over seeds)")
    finite = [v for var in variants.values() for v in var["per_label_auc"].values() if v is not None]
    if finite:
        right.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.02))
    right.legend(fontsize=8)
    right.set_title("per-label AUC")
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)
