"""Build kagglebert/sample_data/jigsaw-bias-2019-sample/ from the bundled 2018 sample's texts.

No 2019 rows are available offline, so the 2019 fixture takes real 2018 comments and derives the
2019 competition's 45 columns from their 2018 labels and words by a fixed, seeded rule. The labels
are synthetic: the fixture tests the 2019 schema and pipeline, its scores say nothing about the
competition.

    python scripts/make_bias_sample.py            # rewrites the folder; same bytes every time

The rule (every draw from numpy's default_rng(SEED)):
- rows: TRAIN_ROWS + TEST_ROWS of the 2018 train.csv, rows with an identity term first picked up to
  IDENTITY_SHARE of the total, the rest at random; shuffled; the first TRAIN_ROWS are train.csv,
  the others test.csv (split half/half, at random, into the public and private label files).
- raters: toxicity_annotator_count n ∈ {4, 6, 10} (weights .5, .3, .2).
- target (`toxicity` in the label files) = Binomial(n, p) / n with p = 0.72 + 0.04 × (other 2018
  labels set) for a 2018-toxic comment, else 0.06 (+0.25 if any other 2018 label is set): a
  toxic comment's share lands mostly ≥ 0.5, a clean one's mostly below — with rater noise.
- subtypes: Binomial(n, q) / n with q = 0.65 when its 2018 label is set (severe_toxic →
  severe_toxicity, obscene → obscene, identity_hate → identity_attack, insult → insult,
  threat → threat; sexual_explicit ← obscene at 0.35), else 0.03 × target.
- identities: a row is annotated when a term of any of the 24 identities is in its text (a
  word-boundary, case-insensitive match; terms in IDENTITY_TERMS), and 5% of the other rows;
  unannotated rows are empty in all 24 columns (as most 2019 rows are). For an annotated row,
  identity_annotator_count k ∈ {4, 10} and each identity's share is Binomial(k, 0.85) / k when one
  of its terms matches, else Binomial(k, 0.01) / k.
- metadata: created_date uniform in 2015-09-29 … 2017-11-11; publication_id from a few outlets;
  parent_id empty for 60% of rows; article_id; rating "rejected" for 70% of target ≥ 0.5 rows and
  5% of the others; funny, wow, sad, likes, disagree Poisson counts.
- ids: train 1000000 + i, test 7000000 + i (integers, as in 2019).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "kagglebert" / "sample_data" / "jigsaw-toxic-2018-sample" / "train.csv"
OUT = ROOT / "kagglebert" / "sample_data" / "jigsaw-bias-2019-sample"
SEED = 2019
TRAIN_ROWS, TEST_ROWS = 5000, 1000
IDENTITY_SHARE = 0.4
LABELS_2018 = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]

IDENTITY_TERMS = {
    "asian": "asian|asians|chinese|japanese|korean|vietnamese",
    "atheist": "atheist|atheists|atheism",
    "bisexual": "bisexual|bisexuals",
    "black": "black|blacks|negro|negroes|nigger|niggers|african",
    "buddhist": "buddhist|buddhists|buddhism",
    "christian": "christian|christians|christianity|catholic|catholics|jesus|church",
    "female": "woman|women|female|females|girl|girls|mother|wife|sister|lady|ladies",
    "heterosexual": "heterosexual|heterosexuals",
    "hindu": "hindu|hindus|hinduism",
    "homosexual_gay_or_lesbian": "gay|gays|lesbian|lesbians|homosexual|homosexuals|homo|fag|fags|faggot|faggots",
    "intellectual_or_learning_disability": "autistic|autism|dyslexic|dyslexia",
    "jewish": "jew|jews|jewish|judaism|zionist|zionists",
    "latino": "latino|latinos|latina|hispanic|mexican|mexicans",
    "male": "man|men|male|males|guy|guys|boy|boys|father|husband|brother",
    "muslim": "muslim|muslims|islam|islamic|moslem|moslems",
    "other_disability": "disabled|disability|disabilities",
    "other_gender": "genderqueer|nonbinary|non-binary",
    "other_race_or_ethnicity": "arab|arabs|gypsy|gypsies|aboriginal",
    "other_religion": "pagan|pagans|mormon|mormons|scientology",
    "other_sexual_orientation": "queer|queers|asexual",
    "physical_disability": "blind|deaf|wheelchair|paraplegic",
    "psychiatric_or_mental_illness": "mental|crazy|insane|psycho|psychotic|lunatic|retard|retarded",
    "transgender": "transgender|transsexual|tranny",
    "white": "white|whites|caucasian|caucasians",
}
SUBTYPES = {"severe_toxicity": ("severe_toxic", 0.65), "obscene": ("obscene", 0.65), "identity_attack": ("identity_hate", 0.65),
            "insult": ("insult", 0.65), "threat": ("threat", 0.65), "sexual_explicit": ("obscene", 0.35)}
# the 2019 train.csv's 45 columns, in its order
TRAIN_COLUMNS = (["id", "target", "comment_text", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"]
                 + list(IDENTITY_TERMS)
                 + ["created_date", "publication_id", "parent_id", "article_id", "rating", "funny", "wow", "sad", "likes",
                    "disagree", "sexual_explicit", "identity_annotator_count", "toxicity_annotator_count"])
README = """# Jigsaw Unintended Bias in Toxicity Classification (2019) — SYNTHETIC fixture

**The labels here are synthetic.** No 2019 rows are available offline, so this folder takes real
comments of the bundled 2018 sample (`../jigsaw-toxic-2018-sample/train.csv`, Wikipedia talk-page
comments) and derives the 2019 competition's columns from their 2018 labels and words, by the
seeded rule in `scripts/make_bias_sample.py` (its docstring states it in full). It exists to test
and demonstrate the `jigsaw-bias-2019` task end to end; a score on it says nothing about the
competition.

| file | rows | columns |
| --- | --- | --- |
| train.csv | {train} | the 2019 train.csv's 45 columns (id, target, comment_text, 5 subtypes, 24 identities, metadata, sexual_explicit, annotator counts) |
| test.csv | {test} | id, comment_text |
| sample_submission.csv | {test} | id, prediction (0.0) |
| test_public_expanded.csv | {public} | the train columns with `toxicity` in place of `target`: the released labels of half the test rows |
| test_private_expanded.csv | {private} | the same for the other half |

How the labels were made, in short: `target` = the share of n ∈ {{4, 6, 10}} simulated raters
calling the comment toxic, each with a probability set by its 2018 labels (toxic: about 0.72–0.9,
clean: 0.06) — the 2018 label plus rater noise; each subtype likewise from its 2018 counterpart;
an identity's share from that identity's terms in the text (e.g. "muslim", "gay", "women"), empty
for the rows never annotated for identity (most rows, as in 2019); metadata drawn to look
plausible. Rows with an identity term were picked first (up to 40% of rows) so every scored
identity has rows in every fold.

Counts in train.csv: target ≥ 0.5 in {toxic} rows; identity-annotated rows {annotated}; members
(share ≥ 0.5) of the nine scored identities: {members}.

The comments are real Wikipedia talk-page comments and contain obscene, hateful and threatening
language. Licence: the comment text is from Wikipedia under CC BY-SA 3.0; the derived columns are CC0.
"""


def shares(rng: np.random.Generator, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    return rng.binomial(n, np.clip(p, 0.0, 1.0)) / n


def build() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(SEED)
    source = pd.read_csv(SOURCE, dtype={"id": str}, keep_default_na=False)
    texts = source["comment_text"]
    matches = {name: texts.str.contains(rf"\b(?:{terms})\b", case=False, regex=True).to_numpy()
               for name, terms in IDENTITY_TERMS.items()}
    has_term = np.any(np.stack(list(matches.values())), axis=0)
    total = TRAIN_ROWS + TEST_ROWS
    with_term = rng.permutation(np.flatnonzero(has_term))[: int(IDENTITY_SHARE * total)]
    others = rng.permutation(np.flatnonzero(~has_term))[: total - len(with_term)]
    picked = rng.permutation(np.concatenate([with_term, others]))
    rows = source.iloc[picked].reset_index(drop=True)
    match = {name: m[picked] for name, m in matches.items()}
    n = len(rows)

    labels = rows[LABELS_2018].to_numpy(np.int64)
    toxic, others_set = labels[:, 0] == 1, labels[:, 1:].sum(1)
    raters = rng.choice([4, 6, 10], size=n, p=[0.5, 0.3, 0.2])
    p_toxic = np.where(toxic, 0.72 + 0.04 * others_set, 0.06 + 0.25 * (others_set > 0))
    out = pd.DataFrame({"comment_text": rows["comment_text"]})
    out["target"] = shares(rng, raters, p_toxic)
    for column, (source_label, q) in SUBTYPES.items():
        out[column] = shares(rng, raters, np.where(rows[source_label].to_numpy() == 1, q, 0.03 * out["target"].to_numpy()))

    term_any = np.any(np.stack(list(match.values())), axis=0)
    annotated = term_any | (rng.random(n) < 0.05)
    k = rng.choice([4, 10], size=n)
    for name in IDENTITY_TERMS:
        values = shares(rng, k, np.where(match[name], 0.85, 0.01))
        out[name] = np.where(annotated, values, np.nan)

    start, end = pd.Timestamp("2015-09-29"), pd.Timestamp("2017-11-11")
    seconds = rng.integers(0, int((end - start).total_seconds()), size=n)
    micros = rng.integers(0, 1_000_000, size=n)
    out["created_date"] = [f"{(start + pd.Timedelta(seconds=int(s))).strftime('%Y-%m-%d %H:%M:%S')}.{int(m):06d}+00"
                           for s, m in zip(seconds, micros)]
    out["publication_id"] = rng.choice([6, 13, 21, 45, 53, 54, 102], size=n)
    parent = rng.integers(100_000, 6_300_000, size=n).astype(object)
    parent[rng.random(n) < 0.6] = ""
    out["parent_id"] = parent
    out["article_id"] = rng.integers(2_006, 400_000, size=n)
    rejected = np.where(out["target"].to_numpy() >= 0.5, rng.random(n) < 0.7, rng.random(n) < 0.05)
    out["rating"] = np.where(rejected, "rejected", "approved")
    for column, lam in (("funny", 0.3), ("wow", 0.05), ("sad", 0.1), ("likes", 2.5), ("disagree", 0.6)):
        out[column] = rng.poisson(lam, size=n)
    out["identity_annotator_count"] = np.where(annotated, k, 0)
    out["toxicity_annotator_count"] = raters

    train = out.iloc[:TRAIN_ROWS].reset_index(drop=True)
    test = out.iloc[TRAIN_ROWS:].reset_index(drop=True)
    train.insert(0, "id", 1_000_000 + np.arange(len(train)))
    test.insert(0, "id", 7_000_000 + np.arange(len(test)))
    train = train[TRAIN_COLUMNS]
    expanded = test[TRAIN_COLUMNS].rename(columns={"target": "toxicity"})
    public = np.zeros(len(test), dtype=bool)
    public[rng.permutation(len(test))[: len(test) // 2]] = True
    return {
        "train.csv": train,
        "test.csv": test[["id", "comment_text"]],
        "sample_submission.csv": pd.DataFrame({"id": test["id"], "prediction": 0.0}),
        "test_public_expanded.csv": expanded[public].reset_index(drop=True),
        "test_private_expanded.csv": expanded[~public].reset_index(drop=True),
    }


def main() -> None:
    frames = build()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(OUT / name, index=False, float_format="%.6g", lineterminator="\n")
    train = frames["train.csv"]
    scored = ["male", "female", "homosexual_gay_or_lesbian", "christian", "jewish", "muslim", "black", "white",
              "psychiatric_or_mental_illness"]
    members = ", ".join(f"{c} {int((train[c] >= 0.5).sum())}" for c in scored)
    (OUT / "README.md").write_text(README.format(
        train=f"{len(train):,}", test=f"{len(frames['test.csv']):,}", public=f"{len(frames['test_public_expanded.csv']):,}",
        private=f"{len(frames['test_private_expanded.csv']):,}", toxic=f"{int((train['target'] >= 0.5).sum()):,}",
        annotated=f"{int(train['identity_annotator_count'].gt(0).sum()):,}", members=members), encoding="utf-8")
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
