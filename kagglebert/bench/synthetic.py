"""Synthetic competition folders of any size, drawn from the bundled texts, for scale benchmarks:

    python -m kagglebert.bench.synthetic --rows 159571 --test-rows 153164 --schema 2018 /tmp/jigsaw-2018-full
    python -m kagglebert.bench.synthetic --rows 1804874 --test-rows 97320 --schema 2019 /tmp/jigsaw-2019-full

Rule, both schemas: every synthetic comment is a bundled comment (drawn with replacement) followed by
one to three pseudo-words drawn from a Zipf-distributed vocabulary of 200,000 (`zq` + a number), so
texts are unique and the vocabulary keeps growing with the row count the way real comments' does
(a TF-IDF or a tokenization cache fed 300 distinct texts over and over would measure nothing real);
a training row keeps its base comment's labels. Ids are new and unique.

2018 schema: train.csv (id, comment_text, the six labels), test.csv (id, comment_text),
sample_submission.csv (id + six labels at 0.5), all as the competition ships them (ids: 16 hex digits).

2019 schema (the Unintended Bias competition's 45 training columns): when the 2019 fixture
(`sample_data/jigsaw-bias-2019-sample/`) is in the package, its rows are the bases and every column
but id and comment_text is copied from the base row. Without it, the 2019 columns come from the 2018
base row by this documented rule: target = min(1, 0.7·toxic + 0.06·(sum of the five other labels));
severe_toxicity, obscene, threat, insult, identity_attack = 0.8 × severe_toxic, obscene, threat,
insult, identity_hate; sexual_explicit = 0.3 × obscene; the 24 identity columns are empty on 78% of
rows (unannotated, as in the real file) and otherwise 0 except one random identity at a random
tenth in 0.1–1.0; the metadata columns (created_date, publication_id, parent_id, article_id, rating,
funny, wow, sad, likes, disagree, identity_annotator_count, toxicity_annotator_count) are random but
well-formed. test.csv: id, comment_text; sample_submission.csv: id, prediction (0.5). Ids are
integers, as in the competition.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.paths import BUNDLED_SAMPLE

SCHEMAS = ("2018", "2019")
FIXTURE_2019 = BUNDLED_SAMPLE.parent / "jigsaw-bias-2019-sample"
LABELS_2018 = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
SUBTYPES_2019 = ["severe_toxicity", "obscene", "identity_attack", "insult", "threat"]
IDENTITIES_2019 = [
    "asian", "atheist", "bisexual", "black", "buddhist", "christian", "female", "heterosexual", "hindu",
    "homosexual_gay_or_lesbian", "intellectual_or_learning_disability", "jewish", "latino", "male", "muslim",
    "other_disability", "other_gender", "other_race_or_ethnicity", "other_religion", "other_sexual_orientation",
    "physical_disability", "psychiatric_or_mental_illness", "transgender", "white",
]
META_2019 = ["created_date", "publication_id", "parent_id", "article_id", "rating", "funny", "wow", "sad", "likes",
             "disagree", "sexual_explicit", "identity_annotator_count", "toxicity_annotator_count"]
COLUMNS_2019 = ["id", "target", "comment_text", *SUBTYPES_2019, *IDENTITIES_2019, *META_2019]  # 45
VOCABULARY = 200_000
ZIPF_A = 1.3
UNANNOTATED_SHARE = 0.78
CHUNK = 200_000  # rows written per to_csv call: bounded memory at any size


def suffixes(rng: np.random.Generator, n: int) -> np.ndarray:
    """One to three Zipf-drawn pseudo-words per row, as strings."""
    count = rng.integers(1, 4, size=n)
    words = np.minimum(rng.zipf(ZIPF_A, size=(n, 3)), VOCABULARY)
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = " ".join(f"zq{w}" for w in words[i, :count[i]])
    return out


def synth_texts(rng: np.random.Generator, bases: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(base row index, text) for n synthetic comments."""
    picks = rng.integers(0, len(bases), size=n)
    tails = suffixes(rng, n)
    texts = np.array([f"{bases[p]} {t}" for p, t in zip(picks, tails)], dtype=object)
    return picks, texts


def hex_ids(rng: np.random.Generator, n: int, offset: int) -> np.ndarray:
    """Unique 16-hex-digit ids (2018 style): a random odd multiplier over offset + row, mod 2**64."""
    multiplier = int(rng.integers(1, 2 ** 62)) * 2 + 1  # odd: a bijection mod 2**64
    rows = np.arange(offset, offset + n, dtype=np.uint64)
    return np.array([f"{v:016x}" for v in (rows * np.uint64(multiplier))], dtype=object)


def write_chunked(path: Path, frame_of, n: int, progress: bool) -> None:
    """frame_of(start, stop) → the rows' DataFrame, appended to `path` chunk by chunk."""
    from tqdm.auto import tqdm

    with open(path, "w", encoding="utf-8", newline="") as handle, tqdm(total=n, desc=path.name, disable=not progress, unit="row") as bar:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            frame_of(start, stop).to_csv(handle, index=False, header=start == 0, float_format="%.6g")
            bar.update(stop - start)


def bundled_2018() -> tuple[pd.DataFrame, pd.DataFrame]:
    read = dict(dtype=str, keep_default_na=False, na_filter=False)
    return pd.read_csv(BUNDLED_SAMPLE / "train.csv", **read), pd.read_csv(BUNDLED_SAMPLE / "test.csv", **read)


def build_2018(out: Path, rows: int, test_rows: int, seed: int, progress: bool) -> None:
    train, test = bundled_2018()
    rng = np.random.default_rng(seed)
    train_texts, test_bases = train["comment_text"].to_numpy(object), np.concatenate([test["comment_text"].to_numpy(object), train["comment_text"].to_numpy(object)])
    labels = train[LABELS_2018].to_numpy()
    train_ids, test_ids = hex_ids(rng, rows, 0), hex_ids(rng, test_rows, rows)

    def train_chunk(start: int, stop: int) -> pd.DataFrame:
        picks, texts = synth_texts(rng, train_texts, stop - start)
        frame = pd.DataFrame({"id": train_ids[start:stop], "comment_text": texts})
        for j, label in enumerate(LABELS_2018):
            frame[label] = labels[picks, j]
        return frame

    def test_chunk(start: int, stop: int) -> pd.DataFrame:
        return pd.DataFrame({"id": test_ids[start:stop], "comment_text": synth_texts(rng, test_bases, stop - start)[1]})

    write_chunked(out / "train.csv", train_chunk, rows, progress)
    write_chunked(out / "test.csv", test_chunk, test_rows, progress)
    sample = pd.DataFrame({"id": test_ids})
    for label in LABELS_2018:
        sample[label] = 0.5
    sample.to_csv(out / "sample_submission.csv", index=False)


def derived_2019(rng: np.random.Generator, labels: np.ndarray) -> pd.DataFrame:
    """The 2019 columns from 2018 labels (rows × six 0/1), by the rule in the module docstring."""
    n = len(labels)
    toxic, severe, obscene, threat, insult, hate = (labels[:, j].astype(np.float64) for j in range(6))
    cols = {"target": np.minimum(1.0, 0.7 * toxic + 0.06 * (severe + obscene + threat + insult + hate))}
    for name, source in zip(SUBTYPES_2019, (severe, obscene, hate, insult, threat)):
        cols[name] = 0.8 * source
    annotated = rng.random(n) >= UNANNOTATED_SHARE
    which = rng.integers(0, len(IDENTITIES_2019), size=n)
    level = rng.integers(1, 11, size=n) / 10.0
    for j, name in enumerate(IDENTITIES_2019):
        column = np.where(annotated, np.where(which == j, level, 0.0), np.nan)
        cols[name] = column
    start = np.datetime64("2015-09-29T10:50:00")
    cols["created_date"] = (start + rng.integers(0, 600 * 24 * 3600, size=n).astype("timedelta64[s]")).astype(str)
    cols["publication_id"] = rng.integers(2, 116, size=n)
    cols["parent_id"] = np.where(rng.random(n) < 0.43, rng.integers(61_006, 6_333_965, size=n).astype(float), np.nan)
    cols["article_id"] = rng.integers(2_006, 399_541, size=n)
    cols["rating"] = np.where(rng.random(n) < 0.05, "rejected", "approved")
    for name in ("funny", "wow", "sad", "likes", "disagree"):
        cols[name] = rng.poisson(0.3 if name != "likes" else 2.0, size=n)
    cols["sexual_explicit"] = 0.3 * obscene
    cols["identity_annotator_count"] = np.where(annotated, 4, 0)
    cols["toxicity_annotator_count"] = rng.integers(4, 11, size=n)
    return pd.DataFrame(cols)


def build_2019(out: Path, rows: int, test_rows: int, seed: int, progress: bool) -> None:
    rng = np.random.default_rng(seed)
    read = dict(dtype=str, keep_default_na=False, na_filter=False)
    fixture = FIXTURE_2019 / "train.csv"
    if fixture.is_file():  # the 2019 fixture's own rows are the bases: every column as in a real 2019 file
        base = pd.read_csv(fixture, **read)
        base_test = pd.read_csv(FIXTURE_2019 / "test.csv", **read)["comment_text"].to_numpy(object)
        columns = list(base.columns)
    else:
        train, test = bundled_2018()
        base = train
        base_test = test["comment_text"].to_numpy(object)
        columns = COLUMNS_2019
    base_texts = base["comment_text"].to_numpy(object)
    test_bases = np.concatenate([base_test, base_texts])

    def train_chunk(start: int, stop: int) -> pd.DataFrame:
        picks, texts = synth_texts(rng, base_texts, stop - start)
        ids = np.arange(59_848 + start, 59_848 + stop)
        if fixture.is_file():
            frame = base.iloc[picks].reset_index(drop=True)
            frame["id"], frame["comment_text"] = ids, texts
        else:
            frame = derived_2019(rng, base[LABELS_2018].to_numpy(np.int64)[picks])
            frame.insert(0, "id", ids)
            frame.insert(2, "comment_text", texts)
        return frame[columns]

    test_ids = np.arange(7_000_000, 7_000_000 + test_rows)

    def test_chunk(start: int, stop: int) -> pd.DataFrame:
        return pd.DataFrame({"id": test_ids[start:stop], "comment_text": synth_texts(rng, test_bases, stop - start)[1]})

    write_chunked(out / "train.csv", train_chunk, rows, progress)
    write_chunked(out / "test.csv", test_chunk, test_rows, progress)
    pd.DataFrame({"id": test_ids, "prediction": 0.5}).to_csv(out / "sample_submission.csv", index=False)


def build(out: Path, rows: int, test_rows: int, schema: str = "2018", seed: int = 0, progress: bool = True) -> Path:
    if schema not in SCHEMAS:
        raise ValueError(f"--schema {schema}: choose {' or '.join(SCHEMAS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (build_2018 if schema == "2018" else build_2019)(out, rows, test_rows, seed, progress)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kagglebert.bench.synthetic",
                                     description="Write a synthetic competition folder (train.csv, test.csv, sample_submission.csv) drawn from the bundled texts.")
    parser.add_argument("--rows", type=int, required=True, help="training rows (2018: 159571; 2019: 1804874)")
    parser.add_argument("--test-rows", type=int, required=True, help="test rows (2018: 153164; 2019: 97320)")
    parser.add_argument("--schema", choices=SCHEMAS, default="2018")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("out", type=Path, help="the folder to write (created)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.test_rows < 1:
        parser.error("--rows and --test-rows must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out}: exists and is not a folder")
    began = time.perf_counter()
    build(args.out, args.rows, args.test_rows, args.schema, args.seed, not args.no_progress)
    print(f"{args.out}: {args.rows:,} training and {args.test_rows:,} test rows ({args.schema} schema) in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
