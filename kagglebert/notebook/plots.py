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
FEW_POSITIVES = 30  # a rate or an AUC resting on fewer positive comments is shown as noisy


def _figure(width: float = 7.0, height: float = 4.0, ncols: int = 1):
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), layout="constrained")
    plt.close(fig)  # the notebook displays the returned figure; pyplot must not show it a second time
    return fig, axes


def label_prevalence(prevalence: pd.DataFrame, note: str = "") -> Figure:
    """Bar per label: share of training comments that carry it (count on the bar); with the
    competition's own shares (column `competition_share`, eda) a black tick per label, and `note`
    (eda's label_share_vs_competition, e.g. 'toxic-enriched') in the title."""
    fig, ax = _figure()
    frame = prevalence.sort_values("share", ascending=False)
    bars = ax.bar(frame["label"], 100 * frame["share"], color="tab:red", label="this data")
    ax.bar_label(bars, labels=[f"{n:,}" for n in frame["positives"]], fontsize=8)
    if "competition_share" in frame and frame["competition_share"].notna().any():
        ax.scatter(frame["label"], 100 * frame["competition_share"], marker="_", s=600, color="black", zorder=3,
                   label="the competition's full train.csv")
        ax.legend(fontsize=8, loc="upper right")
    ax.set(title="Label prevalence in train (count on each bar)" + (f"\n{note}" if note else ""), xlabel="label",
           ylabel="% of training comments")
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


def label_cooccurrence(cooccurrence: pd.DataFrame, positives: pd.Series | dict | None = None, few: int = FEW_POSITIVES) -> Figure:
    """Heatmap of P(column label | row label). With `positives` (label → comments carrying it),
    each row's count is in its tick label, and a cell whose row rests on fewer than `few` comments
    shows its count (e.g. 2/3) as well: a probability from 3 comments is not an estimate."""
    fig, ax = _figure(7.0, 5.5)
    image = _annotated_heatmap(ax, cooccurrence, "viridis", 0.0, ".2f", 8, rotate=True)
    if positives is not None:
        counts = {label: int(positives[label]) for label in cooccurrence.index}
        ax.set_yticks(range(len(counts)), [f"{label} (n={n:,})" for label, n in counts.items()])
        for i, label in enumerate(cooccurrence.index):
            if counts[label] < few:
                for j in range(cooccurrence.shape[1]):
                    value = cooccurrence.iloc[i, j]
                    ax.texts[i * cooccurrence.shape[1] + j].set_text(f"{value:.2f}\n{round(value * counts[label])}/{counts[label]}")
    title = "Label co-occurrence: P(column label | row label)"
    ax.set(title=title + (f"\n(rows with under {few} comments show counts)" if positives is not None else ""),
           xlabel="also labelled", ylabel="comments labelled")
    fig.colorbar(image, ax=ax, shrink=0.8, label="conditional probability")
    return fig


def comment_lengths(lengths: pd.DataFrame, cuts: tuple[int, ...] = TOKEN_CUTS, max_length: int | None = None) -> Figure:
    """Histograms of comment length in characters and in word pieces, train vs test, on log axes
    with log-spaced bins from the shortest comment to the longest (no clipping, so the long tail
    stays a tail instead of piling up into a false peak), with the share of each split a max length
    of 128/256/512 tokens would cut; `max_length` (the run's model.max_length) is marked as in use.
    A pile of comments at exactly the longest length is named: the source cut them there."""
    fig, (ax_chars, ax_tokens) = _figure(12.0, 4.2, ncols=2)
    sizes = lengths["split"].value_counts()
    counted = " + ".join(f"{sizes.get(split, 0):,} {split}" for split in ("train", "test") if split in sizes) + " comments"
    for column, ax, unit in (("chars", ax_chars, "characters"), ("tokens", ax_tokens, "word pieces")):
        values_all = lengths[column].clip(lower=1)  # an empty comment would sit at log(0)
        shortest, longest = float(values_all.min()), max(2.0, float(values_all.max()))
        # log-spaced edges put on half-integers: lengths are whole numbers, and an edge between two of
        # them would give some bins one length and their neighbours two (a comb of false peaks)
        bins = np.unique(np.round(np.geomspace(shortest, longest + 1, 36))) - 0.5
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            values = values_all[lengths.split == split]
            # each split as shares of its own comments: train and test compare whatever their sizes
            ax.hist(values, bins=bins, weights=np.full(len(values), 100 / max(1, len(values))), alpha=0.5, color=colour,
                    label=f"{split} (median {values.median():.0f})")
        ax.set_xscale("log")
        ax.set_xlim(bins[0], bins[-1])  # from the shortest comment: no empty band left of the data
        ax.set(title=f"{unit.capitalize()} per comment ({counted})", xlabel=f"{unit} (log scale)", ylabel="% of the split's comments per bin")
    at_cap = int((lengths["chars"] == lengths["chars"].max()).sum())
    if at_cap >= max(3, len(lengths) // 1000):  # many comments exactly as long as the longest: a cut at the source
        ax_chars.axvline(lengths["chars"].max(), color="black", linestyle=":", linewidth=1,
                         label=f"{at_cap:,} comments at exactly {lengths['chars'].max():,} (cut there by the data's source)")
    marks = sorted(set(cuts) | ({max_length} if max_length else set()))
    for cut, style in zip(marks, ("--", "-.", ":", (0, (1, 3)))):
        # [CLS] and [SEP] take two of the max_length places
        shares = ", ".join(f"{split} {100 * (lengths.loc[lengths.split == split, 'tokens'] > cut - 2).mean():.1f}%"
                           for split in ("train", "test"))
        in_use = cut == max_length
        ax_tokens.axvline(cut, color="tab:red" if in_use else "black", linestyle=style, linewidth=1.6 if in_use else 1,
                          label=f"max_length {cut}{' (this run)' if in_use else ''}: cuts {shares}")
    low, high = ax_chars.get_ylim()
    ax_chars.set_ylim(low, high * 1.35)  # headroom: the legend sits above the bars, hiding none
    ax_chars.legend(fontsize=8, loc="upper left")
    ax_tokens.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the bars stay visible
    return fig


def lm_loss_curve(lm_metrics: dict, cfg) -> Figure:
    """Masked-LM training loss against the optimizer step, over all epochs; dashed: the held-out
    loss before and after. The stage records the mean over each window of `lm.log_every` steps
    (one host sync per window), so with log_every = 1 every step is a point; with larger windows
    each point is drawn at its window's last step and the title says how many steps it averages."""
    fig, ax = _figure()
    steps_per_epoch = math.ceil(lm_metrics["train_blocks"] / cfg.lm.batch_size)
    n_windows = len(lm_metrics["epochs"][0]["loss_curve"]) if lm_metrics["epochs"] else 1
    # the window the LM was trained with (it may have been another notebook's log_every)
    window = cfg.lm.log_every if math.ceil(steps_per_epoch / cfg.lm.log_every) == n_windows else math.ceil(steps_per_epoch / max(1, n_windows))
    for epoch in lm_metrics["epochs"]:
        curve = np.asarray(epoch["loss_curve"], dtype=float)
        ends = np.minimum(window * np.arange(1, len(curve) + 1), steps_per_epoch)
        steps = (epoch["epoch"] - 1) * steps_per_epoch + ends
        ax.plot(steps, curve, marker="o" if len(curve) <= 60 else None, markersize=2.5, linewidth=0.8, alpha=0.7,
                label=f"training, epoch {epoch['epoch']}")
        if len(curve) >= 20:  # a running mean shows the trend through the per-batch noise
            span = max(5, len(curve) // 10)
            smooth = np.convolve(curve, np.ones(span) / span, mode="valid")
            ax.plot(steps[span - 1:], smooth, color="black", linewidth=1.5, label=f"running mean of {span} points" if epoch["epoch"] == 1 else None)
    for key, colour in (("perplexity_before", "tab:gray"), ("perplexity_after", "tab:green")):
        # perplexity = exp(cross-entropy): the held-out loss on the same scale as the curve
        ax.axhline(math.log(lm_metrics[key]), color=colour, linestyle="--", linewidth=1,
                   label=f"held-out, {key.split('_')[1]} ({math.log(lm_metrics[key]):.2f})")
    per = "per step" if window == 1 else f"mean of each {window} steps"
    ax.set(title=f"Masked-LM training loss ({per})", xlabel="optimizer step", ylabel="cross-entropy at masked tokens")
    low, high = ax.get_ylim()
    top = max(high, math.log(lm_metrics["perplexity_before"]))
    ax.set_ylim(low, top + 0.05 * (top - low))  # the held-out "before" line stays inside the axes, not on its edge
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
    """The learning rate of every optimizer step, from 0 before the first; the warm-up (the
    rising steps) shaded and counted, so it shows even when it lasts one or two steps."""
    fig, ax = _figure()
    lrs = np.asarray(lrs, dtype=float)
    steps = np.arange(0, len(lrs) + 1)
    values = np.concatenate([[0.0], lrs])  # before the first step nothing has been applied
    ax.plot(steps, values, drawstyle="steps-post", marker="." if len(lrs) < 100 else None, color="tab:blue")
    peak = int(np.argmax(lrs)) + 1 if len(lrs) else 0
    if peak > 0:
        ax.axvspan(0, peak, color="tab:orange", alpha=0.15, label=f"warm-up: {peak} of {len(lrs)} steps")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlim(0, max(1, len(lrs)))
    ax.set_ylim(0, 1.1 * max(values.max(), 1e-12))
    ax.set(title=title, xlabel="optimizer step", ylabel="learning rate")
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
    ax_pair.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: it hides no fold's line
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the tails near 1 stay visible
    return fig


def blend_per_label(table: pd.DataFrame) -> Figure:
    """OOF AUC per label for each blend member and the blend (rows of report.blend_table). Bars
    start at 0.5, the AUC of a random ranking, so a bar's length is skill above chance; the
    legend sits outside the axes, where it hides no bar."""
    labels = [c for c in table.columns if c not in ("weight", "OOF AUC")]
    positives = table.loc[table["OOF AUC"].isna()]  # report.blend_table's last row: positives per label, no score
    counts = {label: int(positives.iloc[0][label]) for label in labels} if len(positives) else {}
    table = table.loc[table["OOF AUC"].notna()]
    nested = table.loc[table[labels].isna().all(axis=1), "OOF AUC"]  # the nested-score row: no per-label AUCs
    table = table.dropna(subset=labels, how="all")
    few = [j for j, label in enumerate(labels) if label in counts and counts[label] < FEW_POSITIVES]
    fig, ax = _figure(11.0, 4.2)
    width = 0.8 / len(table)
    x = np.arange(len(labels))
    chance = 0.5
    for i, (name, row) in enumerate(table.iterrows()):
        values = row[labels].astype(float).to_numpy()
        label = f"{name}: {row['OOF AUC']:.4f}"
        if str(name).startswith("blend") and len(nested):  # the honest score next to the fitted one
            label += f" ({float(nested.iloc[0]):.4f} with weights from the other folds)"
        bars = ax.bar(x + (i - (len(table) - 1) / 2) * width, values - chance, width, bottom=chance, label=label)
        for j in few:  # an AUC resting on a handful of positives: pale and hatched, not read like the rest
            bars[j].set(alpha=0.35, hatch="//")
    ax.axhline(chance, color="black", linewidth=0.8)
    ticks = [f"{label}\n(n={counts[label]:,}{', few' if j in few else ''})" if counts else label for j, label in enumerate(labels)]
    ax.set_xticks(x, ticks, rotation=0 if counts else 20)
    for j in few:
        ax.get_xticklabels()[j].set_color("grey")
    low = float(np.nanmin(table[labels].to_numpy(dtype=float)))
    ax.set_ylim(min(chance, low - 0.02), 1.0)
    title = "Out-of-fold AUC per label: members and blend (bars start at chance, 0.5)"
    if few:
        title += f"\nhatched: under {FEW_POSITIVES} positive comments, an AUC too noisy to compare"
    ax.set(title=title, ylabel="ROC AUC")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="OOF AUC")
    return fig


def target_distribution(distribution: pd.DataFrame) -> Figure:
    """Rows per tenth of the soft target's rater share (eda's target_distribution): most comments
    sit near 0; toxic is >= 0.5 (the dashed line)."""
    fig, ax = _figure()
    for label, frame in distribution.groupby("label", sort=False):
        ax.bar(frame["bin"] + 0.05, frame["rows"], width=0.09, label=label, alpha=0.8)
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1, label="toxic from here (>= 0.5)")
    ax.set_yscale("log")
    ax.set(title="Soft target: share of raters who called the comment toxic", xlabel="rater share",
           ylabel="training comments (log scale)", xlim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def identity_toxicity(identities: pd.DataFrame) -> Figure:
    """Per identity (eda's identities table): left, how many comments mention it (share >= 0.5);
    right, how often those comments are toxic against the other comments' rate — the gap a model
    learns as "identity word = toxic", the bias the 2019 score punishes. Scored identities in red."""
    frame = identities.sort_values("members", ascending=True)
    fig, (left, right) = _figure(12.0, max(4.0, 0.28 * len(frame) + 1.0), ncols=2)
    colors = ["tab:red" if s else "tab:gray" for s in frame["scored"]]
    y = np.arange(len(frame))
    bars = left.barh(y, frame["members"], color=colors)
    left.bar_label(bars, labels=[f"{n:,}" for n in frame["members"]], fontsize=7)
    left.set_yticks(y, frame["identity"], fontsize=8)
    left.set(title="Comments mentioning each identity (share >= 0.5)", xlabel="training comments")
    rates = 100 * frame["toxic_rate"].to_numpy(dtype=float)
    right.barh(y, np.nan_to_num(rates), color=colors)
    background = 100 * float(np.nanmedian(frame["background_toxic_rate"].to_numpy(dtype=float)))
    right.axvline(background, color="black", linestyle="--", linewidth=1, label=f"other comments: {background:.1f}%")
    right.set_yticks(y, [f"n={n}" for n in frame["members"]], fontsize=7)
    right.set(title="Toxic rate among the comments mentioning it (red: scored identities)", xlabel="% toxic (target >= 0.5)")
    right.legend(fontsize=8, loc="lower right")
    return fig


def bias_per_identity(per_identity: dict, title: str = "Bias AUCs per scored identity (out of fold)") -> Figure:
    """Subgroup, BPSN and BNSP AUC per identity (metrics.json's per_identity), each identity's
    member count in its tick label; a missing AUC (too few rows of one class) is marked "n/a".
    The score's power means (p = -5) are pulled down by the lowest bars."""
    frame = pd.DataFrame(per_identity).T
    kinds = [("subgroup_auc", "subgroup"), ("bpsn_auc", "BPSN (subgroup negatives vs background positives)"),
             ("bnsp_auc", "BNSP (subgroup positives vs background negatives)")]
    fig, ax = _figure(11.0, 4.5)
    x = np.arange(len(frame))
    width = 0.8 / len(kinds)
    chance = 0.5
    for i, (key, name) in enumerate(kinds):
        values = pd.to_numeric(frame[key], errors="coerce").to_numpy(dtype=float)
        offsets = x + (i - 1) * width
        ax.bar(offsets, np.nan_to_num(values - chance), width, bottom=chance, label=name)
        for xi, v in zip(offsets, values):
            if np.isnan(v):
                ax.text(xi, chance + 0.01, "n/a", ha="center", fontsize=7, rotation=90)
    ax.axhline(chance, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{name}\n(n={int(n)})" for name, n in zip(frame.index, frame["subgroup_size"])], rotation=30, ha="right", fontsize=8)
    finite = pd.to_numeric(frame[[k for k, _ in kinds]].stack(), errors="coerce").dropna()
    ax.set_ylim(min(chance, float(finite.min()) - 0.02) if len(finite) else chance, 1.0)
    ax.set(title=title, ylabel="ROC AUC (bars start at chance, 0.5)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
