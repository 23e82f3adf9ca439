"""Every figure the notebooks show. Each function takes what a stage returned (or a `report` table)
and returns a matplotlib Figure; nothing is shown or saved here, so the notebooks display them and
tests can save them."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

TOKEN_CUTS = (128, 256, 512)


def _figure(width: float = 7.0, height: float = 4.0, ncols: int = 1):
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), layout="constrained")
    plt.close(fig)  # the notebook displays the returned figure; pyplot must not show it a second time
    return fig, axes


def label_prevalence(prevalence: pd.DataFrame) -> Figure:
    """Bar per label: share of training comments that carry it (count on the bar)."""
    fig, ax = _figure()
    frame = prevalence.sort_values("share", ascending=False)
    bars = ax.bar(frame["label"], 100 * frame["share"], color="tab:red")
    ax.bar_label(bars, labels=[f"{n:,}" for n in frame["positives"]], fontsize=8)
    ax.set(title="Label prevalence in train (count on each bar)", xlabel="label", ylabel="% of training comments")
    ax.tick_params(axis="x", rotation=20)
    return fig


def _annotated_heatmap(ax, frame: pd.DataFrame, cmap: str, vmin: float, fmt: str, fontsize: int, rotate: bool):
    """A matrix drawn as colours with its values written in each cell; returns the image for a colorbar."""
    image = ax.imshow(frame.to_numpy(), cmap=cmap, vmin=vmin, vmax=1)
    ax.set_xticks(range(frame.shape[1]), list(frame.columns), rotation=35 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(frame.shape[0]), list(frame.index))
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            value = frame.iloc[i, j]
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=fontsize, color="white" if value < 0.6 else "black")
    return image


def label_cooccurrence(cooccurrence: pd.DataFrame) -> Figure:
    """Heatmap of P(column label | row label)."""
    fig, ax = _figure(6.0, 5.0)
    image = _annotated_heatmap(ax, cooccurrence, "viridis", 0.0, ".2f", 8, rotate=True)
    ax.set(title="Label co-occurrence: P(column label | row label)", xlabel="also labelled", ylabel="comments labelled")
    fig.colorbar(image, ax=ax, shrink=0.8, label="conditional probability")
    return fig


def comment_lengths(lengths: pd.DataFrame, cuts: tuple[int, ...] = TOKEN_CUTS) -> Figure:
    """Histograms of comment length in characters and in word pieces, train vs test, with the
    share of each split that a max length of 128/256/512 tokens would cut."""
    fig, (ax_chars, ax_tokens) = _figure(12.0, 4.2, ncols=2)
    for column, ax, unit in (("chars", ax_chars, "characters"), ("tokens", ax_tokens, "word pieces")):
        top = max(1.0, float(lengths[column].quantile(0.99)))
        bins = np.linspace(0, top, 50)
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            values = lengths.loc[lengths.split == split, column].clip(upper=top)
            ax.hist(values, bins=bins, density=True, alpha=0.5, color=colour, label=f"{split} (median {values.median():.0f})")
        ax.set(title=f"Comment length in {unit} (clipped at the 99th percentile)", xlabel=unit, ylabel="density")
    for cut, style in zip(cuts, ("--", "-.", ":")):
        # [CLS] and [SEP] take two of the max_length places
        shares = ", ".join(f"{split} {100 * (lengths.loc[lengths.split == split, 'tokens'] > cut - 2).mean():.1f}%"
                           for split in ("train", "test"))
        ax_tokens.axvline(cut, color="black", linestyle=style, linewidth=1, label=f"max_length {cut}: cuts {shares}")
    ax_chars.legend(fontsize=8)
    ax_tokens.legend(fontsize=8)
    return fig


def lm_loss_curve(lm_metrics: dict, cfg) -> Figure:
    """Masked-LM training loss, one point per `train.log_every` batches (the last window of an
    epoch may be shorter), over all epochs; dashed: the held-out loss before and after."""
    fig, ax = _figure()
    log_every = cfg.train.log_every
    steps_per_epoch = math.ceil(lm_metrics["train_blocks"] / cfg.lm.batch_size)
    for epoch in lm_metrics["epochs"]:
        curve = epoch["loss_curve"]
        ends = np.minimum(log_every * np.arange(1, len(curve) + 1), steps_per_epoch)
        ax.plot((epoch["epoch"] - 1) * steps_per_epoch + ends, curve, marker="o", markersize=3, label=f"training, epoch {epoch['epoch']}")
    for key, colour in (("perplexity_before", "tab:gray"), ("perplexity_after", "tab:green")):
        # perplexity = exp(cross-entropy): the held-out loss on the same scale as the curve
        ax.axhline(math.log(lm_metrics[key]), color=colour, linestyle="--", linewidth=1,
                   label=f"held-out, {key.split('_')[1]} ({math.log(lm_metrics[key]):.2f})")
    ax.set(title="Masked-LM loss", xlabel="batch", ylabel="cross-entropy at masked tokens")
    ax.legend(fontsize=8)
    return fig


def perplexity(lm_metrics: dict) -> Figure:
    """Held-out perplexity before and after LM fine-tuning (log scale: a fresh MLM head starts
    near the vocabulary size, a trained one in the tens)."""
    fig, ax = _figure(5.0, 4.0)
    values = [lm_metrics["perplexity_before"], lm_metrics["perplexity_after"]]
    bars = ax.bar(["before", "after"], values, color=["tab:gray", "tab:green"])
    ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values])
    ax.set_yscale("log")
    ax.set_ylim(1, 3 * max(values))  # bars start at perplexity 1, the floor, so their heights compare
    ax.set(title="Held-out masked-LM perplexity", xlabel="LM fine-tuning", ylabel="perplexity (log scale)")
    return fig


def oof_roc_curves(oof) -> Figure:
    """One out-of-fold ROC curve per label (a `report.OOF`)."""
    fig, ax = _figure(6.0, 5.5)
    for j, label in enumerate(oof.labels):
        truth = oof.truth[:, j] >= 0.5
        if not 0 < truth.sum() < len(truth):
            continue  # one class only in this slice: no curve
        fpr, tpr, _ = roc_curve(truth, oof.pred[:, j])
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(truth, oof.pred[:, j]):.3f}, n+={int(truth.sum())})")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    ax.set(title="Out-of-fold ROC curve per label", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def lr_schedule(lrs: np.ndarray, title: str = "Learning rate used (top encoder layer)") -> Figure:
    fig, ax = _figure()
    ax.plot(np.arange(1, len(lrs) + 1), lrs, marker="." if len(lrs) < 50 else None)
    ax.set(title=title, xlabel="optimizer step", ylabel="learning rate after the step")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return fig


def paired_folds(per_fold: pd.DataFrame, a: str = "FiT", b: str = "ITPT-FiT") -> Figure:
    """Each fold's score under both arms, joined by a line (left), and the paired difference (right)."""
    fig, (ax_pair, ax_diff) = _figure(11.0, 4.0, ncols=2)
    for fold, row in per_fold.iterrows():
        ax_pair.plot([0, 1], [row[a], row[b]], marker="o", label=f"fold {fold}")
    ax_pair.set_xticks([0, 1], [a, b])
    ax_pair.set_xlim(-0.3, 1.3)
    ax_pair.set(title="Validation score per fold (same folds, same seeds)", xlabel="recipe", ylabel="mean column ROC AUC")
    ax_pair.legend(fontsize=8)
    diff = per_fold[b] - per_fold[a]
    ax_diff.bar([f"fold {k}" for k in per_fold.index], diff, color=np.where(diff >= 0, "tab:green", "tab:red"))
    ax_diff.axhline(0, color="black", linewidth=1)
    ax_diff.axhline(diff.mean(), color="tab:blue", linestyle="--", label=f"mean {diff.mean():+.4f}")
    ax_diff.set(title=f"Paired difference: {b} − {a}", xlabel="fold", ylabel="AUC difference")
    ax_diff.legend(fontsize=8)
    return fig


def fold_correlation(correlation: pd.DataFrame) -> Figure:
    """Rank correlation between the folds' test predictions: the lower, the more blending helps."""
    fig, ax = _figure(5.0, 4.5)
    image = _annotated_heatmap(ax, correlation, "magma", min(0.0, float(correlation.min().min())), ".3f", 9, rotate=False)
    ax.set(title="Test predictions: rank correlation between folds", xlabel="fold model", ylabel="fold model")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Spearman correlation (mean over labels)")
    return fig


def prediction_histograms(frame: pd.DataFrame, labels: list[str], title: str = "Submitted probabilities per label") -> Figure:
    fig, ax = _figure()
    for label in labels:
        ax.hist(frame[label], bins=np.linspace(0, 1, 41), histtype="step", linewidth=1.5, label=label)
    ax.set_yscale("log")
    ax.set(title=title, xlabel="predicted probability", ylabel="test comments (log scale)")
    ax.legend(fontsize=8)
    return fig


def blend_per_label(table: pd.DataFrame) -> Figure:
    """OOF AUC per label for each blend member and the blend (rows of report.blend_table)."""
    labels = [c for c in table.columns if c not in ("weight", "OOF AUC")]
    table = table.dropna(subset=labels, how="all")  # the nested-score row has no per-label AUCs
    fig, ax = _figure(9.0, 4.0)
    width = 0.8 / len(table)
    x = np.arange(len(labels))
    for i, (name, row) in enumerate(table.iterrows()):
        ax.bar(x + (i - (len(table) - 1) / 2) * width, row[labels].astype(float), width, label=f"{name}: {row['OOF AUC']:.4f}")
    ax.set_xticks(x, labels, rotation=20)
    low = float(np.nanmin(table[labels].to_numpy(dtype=float)))
    ax.set_ylim(max(0.0, low - 0.02), 1.0)
    ax.set(title="Out-of-fold AUC per label: members and blend", ylabel="ROC AUC")
    ax.legend(fontsize=8, loc="lower right")
    return fig
