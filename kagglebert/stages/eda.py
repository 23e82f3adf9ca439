"""Stage 1 — exploratory data analysis: label prevalence and co-occurrence, comment lengths in
characters and tokens (train vs test), the share cut at the configured max length, duplicate and
empty texts; for a task with identity columns (2019) also the distribution of the soft target and,
per identity, how many comments mention it and how often those are toxic (the bias the 2019
competition is about). Tables go to `runs/<name>/eda/` as CSV/JSON.

    python -m kagglebert eda --config demo
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.config import Config
from ..core.paths import cache_dir, resolve_model
from ..core.progress import PROGRESS_FROM_TEXTS, ProgressBar
from ..core.atomic import write_csv, write_json
from ..core.runs import Run, open_run
from ..core.tokenization import cached, load_tokenizer, tokenize

log = logging.getLogger("kagglebert")

CUTS = (128, 256, 512)


@dataclass
class EDAResult:
    prevalence: pd.DataFrame  # label, positives, share
    cooccurrence: pd.DataFrame  # label × label: P(column | row)
    lengths: pd.DataFrame  # id, split, chars, tokens (one row per comment)
    length_summary: pd.DataFrame  # split × statistic
    summary: dict  # counts, duplicates, empties, truncated shares
    examples: pd.DataFrame  # label, id, text
    target_distribution: pd.DataFrame | None = None  # soft labels (2019): label, bin (lower edge), rows
    identities: pd.DataFrame | None = None  # identity columns (2019): identity, annotated, members, member_share, toxic_rate, background_toxic_rate


TARGET_BINS = np.linspace(0.0, 1.0, 11)  # tenths of the rater share; the last bin holds 1.0


def target_distribution(train: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Rows per tenth of each soft label's rater share (toxic is >= 0.5)."""
    rows = []
    for label in labels:
        counts, _ = np.histogram(train[label].to_numpy(np.float64), bins=TARGET_BINS)
        rows += [{"label": label, "bin": round(float(lo), 1), "rows": int(n)} for lo, n in zip(TARGET_BINS[:-1], counts)]
    return pd.DataFrame(rows)


def identity_table(train: pd.DataFrame, target: str, identities: list[str], scored: list[str]) -> pd.DataFrame:
    """Per identity column: rows annotated for identity (a share present), members (share >= 0.5),
    and the toxic rate (target >= 0.5) among members vs among all other rows."""
    toxic = train[target].to_numpy(np.float64) >= 0.5
    rows = []
    for name in identities:
        shares = train[name].to_numpy(np.float64)
        member = shares >= 0.5  # NaN: not annotated, not a member
        rows.append({"identity": name, "scored": name in scored, "annotated": int((~np.isnan(shares)).sum()),
                     "members": int(member.sum()), "member_share": float(member.mean()) if len(member) else float("nan"),
                     "toxic_rate": float(toxic[member].mean()) if member.any() else float("nan"),
                     "background_toxic_rate": float(toxic[~member].mean()) if (~member).any() else float("nan")})
    return pd.DataFrame(rows)


ENRICHED = 1.5  # a label this many times more common than in the competition: the data is not its natural balance


def prevalence_note(prevalence: pd.DataFrame) -> str:
    """How the data's label shares compare with the competition's full train.csv, measured on the
    label the competition has most of: 'toxic-enriched', 'toxic-depleted' or 'like the competition'."""
    known = prevalence.dropna(subset=["competition_share"])
    if known.empty:
        return "the competition's label shares are not known for this task"
    row = known.loc[known["competition_share"].idxmax()]
    ours, theirs = 100 * row["share"], 100 * row["competition_share"]
    ratio = row["share"] / row["competition_share"]
    verdict = (f"{row['label']}-enriched, not the competition's balance" if ratio >= ENRICHED
               else f"{row['label']}-depleted, not the competition's balance" if ratio <= 1 / ENRICHED else "like the competition")
    return f"{row['label']} {ours:.1f}% of these train rows vs {theirs:.1f}% in the competition: {verdict}"


TOKEN_SAMPLE = 50_000  # rows per split whose token lengths are measured when the cache has none (full size: a sample)


def token_lengths_of(tokenizer, texts: list[str], cfg: Config) -> tuple[np.ndarray, np.ndarray, str]:
    """(rows, their untruncated token lengths, where from). Every row when the tokenization cache
    holds these texts (the LM or the classifier tokenized them) or there are at most TOKEN_SAMPLE
    of them (tokenized now and cached); else a random TOKEN_SAMPLE rows (seed run.seed), so the EDA
    of 1.8M comments takes seconds, not the minutes a full tokenization does."""
    every = np.arange(len(texts))
    found = cached(tokenizer, texts, cache_dir(cfg))
    if found is not None:
        return every, np.asarray(found.full_lengths), "every row (tokenization cache)"
    if len(texts) <= TOKEN_SAMPLE:
        return every, tokenize(tokenizer, texts, cache_dir=cache_dir(cfg)).full_lengths, "every row"
    rows = np.sort(np.random.default_rng(cfg.run.seed).choice(len(texts), size=TOKEN_SAMPLE, replace=False))
    sampled = tokenize(tokenizer, [texts[i] for i in rows])
    return rows, sampled.full_lengths, f"a random sample of {TOKEN_SAMPLE:,} of {len(texts):,} rows (seed run.seed = {cfg.run.seed})"


def analyse(run: Run) -> EDAResult:
    cfg, task = run.cfg, run.task
    data = run.load_data()
    labels = data.labels
    positive = labels >= 0.5  # a soft label (2019: the rater share) counts as positive at >= 0.5
    prevalence = pd.DataFrame({
        "label": task.label_columns,
        "positives": positive.sum(0).astype(int),
        "share": positive.mean(0),
        "competition_share": [task.competition_prevalence.get(label, np.nan) for label in task.label_columns],
    })
    counts = positive.T.astype(np.int64) @ positive.astype(np.int64)
    # P(column label | row label): how often a row's label comes with each other label
    cooccurrence = pd.DataFrame(counts / np.maximum(np.diag(counts)[:, None], 1), index=task.label_columns, columns=task.label_columns)

    tokenizer = load_tokenizer(resolve_model(cfg.model.name))
    # at full size each phase takes seconds (tokenizing a sample, hashing 1.8M texts, finding duplicates)
    with ProgressBar(total=3, desc="eda", unit="phase", leave=False,
                     disable=not cfg.run.progress or len(data.train) + len(data.test) < PROGRESS_FROM_TEXTS) as bar:
        frames, sources = [], {}
        for split, frame in (("train", data.train), ("test", data.test)):
            bar.set_postfix_str(f"{split} token lengths")
            texts = frame[task.text_column].tolist()
            rows, token_lengths, sources[split] = token_lengths_of(tokenizer, texts, cfg)
            frames.append(pd.DataFrame({
                "id": frame[task.id_column].to_numpy()[rows], "split": split,
                "chars": frame[task.text_column].str.len().to_numpy()[rows], "tokens": token_lengths,
            }))
            bar.update()
        bar.set_postfix_str("duplicates, empty texts, identities")
        lengths = pd.concat(frames, ignore_index=True)
        length_summary = lengths.groupby("split")[["chars", "tokens"]].describe(percentiles=[0.5, 0.9, 0.99]).T

        budget = cfg.model.max_length - 2  # [CLS] and [SEP] take two places
        truncated = {
            f"{split}_truncated_at_{cut}": float((lengths.loc[lengths.split == split, "tokens"] > cut - 2).mean())
            for split in ("train", "test") for cut in sorted({*CUTS, cfg.model.max_length})
        }
        all_texts = pd.concat([data.train[task.text_column], data.test[task.text_column]])
        summary = {
            "data_dir": str(data.dir),
            "train_rows": len(data.train),
            "test_rows": len(data.test),
            "token_lengths_from": sources,  # per split: every row (the tokenization cache, or few enough rows) or a random sample
            "test_subsampled": data.test_subsampled,  # data.max_test_rows cut test.csv: predictions cover these rows only
            "any_label_share": float(positive.any(1).mean()),
            "label_share_vs_competition": prevalence_note(prevalence),
            "empty_train_texts": int((data.train[task.text_column].str.strip() == "").sum()),
            "empty_test_texts": int((data.test[task.text_column].str.strip() == "").sum()),
            "duplicate_train_texts": int(data.train[task.text_column].duplicated().sum()),
            "texts_in_both_train_and_test": int(data.test[task.text_column].isin(set(data.train[task.text_column])).sum()),
            "duplicate_texts_overall": int(all_texts.duplicated().sum()),
            "max_length": cfg.model.max_length,
            "train_share_truncated": float((lengths.loc[lengths.split == "train", "tokens"] > budget).mean()),
            **truncated,
        }
        rng = np.random.default_rng(cfg.run.seed)
        rows = []
        for j, label in enumerate(task.label_columns):
            hits = np.flatnonzero(positive[:, j])
            for i in rng.choice(hits, size=min(cfg.eda.examples_per_label, len(hits)), replace=False):
                rows.append({"label": label, "id": data.train[task.id_column].iloc[i], "text": data.train[task.text_column].iloc[i][:300]})
        examples = pd.DataFrame(rows, columns=["label", "id", "text"])
        soft = None if task.binary_labels else target_distribution(data.train, task.label_columns)
        identities = identity_table(data.train, task.label_columns[0], task.identity_columns, task.score_columns) if task.identity_columns else None
        bar.update()
    return EDAResult(prevalence, cooccurrence, lengths, length_summary, summary, examples, soft, identities)


def main(cfg: Config) -> EDAResult:
    run = open_run(cfg)
    result = analyse(run)
    out = run.eda_dir
    write_csv(out / "prevalence.csv", result.prevalence)
    write_csv(out / "cooccurrence.csv", result.cooccurrence, index=True)
    write_csv(out / "lengths.csv", result.lengths)
    write_csv(out / "length_summary.csv", result.length_summary, index=True)
    write_json(out / "summary.json", result.summary)
    if result.target_distribution is not None:
        write_csv(out / "target_distribution.csv", result.target_distribution)
    if result.identities is not None:
        write_csv(out / "identities.csv", result.identities)
    log.info("eda: %d train / %d test rows; %.1f%% of train cut at %d tokens → %s",
             result.summary["train_rows"], result.summary["test_rows"],
             100 * result.summary["train_share_truncated"], cfg.model.max_length, out)
    return result
