"""Stage 1 — exploratory data analysis: label prevalence and co-occurrence, comment lengths in
characters and tokens (train vs test), the share cut at the configured max length, duplicate and
empty texts. Tables go to `runs/<name>/eda/` as CSV/JSON.

    python -m kagglebert eda --config demo
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.config import Config
from ..core.paths import cache_dir, resolve_model
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
    prevalence = pd.DataFrame({
        "label": task.label_columns,
        "positives": labels.sum(0).astype(int),
        "share": labels.mean(0),
    })
    positive = labels >= 0.5
    counts = positive.T.astype(np.int64) @ positive.astype(np.int64)
    # P(column label | row label): how often a row's label comes with each other label
    cooccurrence = pd.DataFrame(counts / np.maximum(np.diag(counts)[:, None], 1), index=task.label_columns, columns=task.label_columns)

    tokenizer = load_tokenizer(resolve_model(cfg.model.name))
    frames, sources = [], {}
    for split, frame in (("train", data.train), ("test", data.test)):
        texts = frame[task.text_column].tolist()
        rows, token_lengths, sources[split] = token_lengths_of(tokenizer, texts, cfg)
        frames.append(pd.DataFrame({
            "id": frame[task.id_column].to_numpy()[rows], "split": split,
            "chars": frame[task.text_column].str.len().to_numpy()[rows], "tokens": token_lengths,
        }))
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
    return EDAResult(prevalence, cooccurrence, lengths, length_summary, summary, examples)


def main(cfg: Config) -> EDAResult:
    run = open_run(cfg)
    result = analyse(run)
    out = run.eda_dir
    write_csv(out / "prevalence.csv", result.prevalence)
    write_csv(out / "cooccurrence.csv", result.cooccurrence, index=True)
    write_csv(out / "lengths.csv", result.lengths)
    write_csv(out / "length_summary.csv", result.length_summary, index=True)
    write_json(out / "summary.json", result.summary)
    log.info("eda: %d train / %d test rows; %.1f%% of train cut at %d tokens → %s",
             result.summary["train_rows"], result.summary["test_rows"],
             100 * result.summary["train_share_truncated"], cfg.model.max_length, out)
    return result
