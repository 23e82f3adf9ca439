"""Folds (multilabel stratification, reproducibility, folds.csv reuse) and tokenization
(truncation modes with exact ids, special tokens, the on-disk cache)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagglebert.core import folds as folds_mod
from kagglebert.core import tokenization
from kagglebert.core.data import load_competition
from kagglebert.core.errors import RunError
from kagglebert.core.folds import load_or_make_folds, make_folds
from kagglebert.core.tasks import JIGSAW_TOXIC_2018
from kagglebert.core.tokenization import tokenize, truncate

TASK = JIGSAW_TOXIC_2018


@pytest.fixture(scope="module")
def data(sample_dir):
    return load_competition(TASK, str(sample_dir))


# ---- folds ----


def test_folds_are_multilabel_stratified(data):
    targets = TASK.stratify_targets(data.labels)
    n_folds = 3
    folds = make_folds(data.train["id"], targets, n_folds, seed=7)
    assert list(folds["id"]) == list(data.train["id"])
    assert sorted(folds["fold"].unique()) == list(range(n_folds))
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 2
    overall = targets.mean(0)
    for k in range(n_folds):
        in_fold = targets[folds["fold"].to_numpy() == k]
        # every label's positive share in each fold within 2 rows' worth of the overall share
        assert np.all(np.abs(in_fold.mean(0) - overall) <= 2 / len(in_fold)), (k, in_fold.sum(0), targets.sum(0))


def test_folds_are_reproducible_for_a_seed(data):
    targets = TASK.stratify_targets(data.labels)
    a = make_folds(data.train["id"], targets, 3, seed=7)
    b = make_folds(data.train["id"], targets, 3, seed=7)
    c = make_folds(data.train["id"], targets, 3, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert (a["fold"] != c["fold"]).any()


def test_folds_csv_is_reused(data, tmp_path, monkeypatch):
    path = tmp_path / "folds.csv"
    targets = TASK.stratify_targets(data.labels)
    first = load_or_make_folds(path, data.train["id"], targets, 3, seed=7)
    assert path.is_file()
    saved = path.read_bytes()

    def must_not_recompute(*args, **kwargs):
        raise AssertionError("folds recomputed although folds.csv exists")

    monkeypatch.setattr(folds_mod, "make_folds", must_not_recompute)
    # another seed on purpose: the saved folds win, so every stage sees the same split
    second = load_or_make_folds(path, data.train["id"], targets, 3, seed=99)
    pd.testing.assert_frame_equal(first, second)
    assert path.read_bytes() == saved

    with pytest.raises(RunError, match=r"folds\.csv: does not match the training data \(299 ids, 3 folds\)"):
        load_or_make_folds(path, data.train["id"].iloc[1:], targets[1:], 3, seed=7)


# ---- truncation ----


@pytest.mark.parametrize(
    "mode, head_tokens, expected",
    [
        ("head", 0, [0, 1, 2, 3]),
        ("tail", 0, [6, 7, 8, 9]),
        ("head+tail", 1, [0, 7, 8, 9]),
        ("head+tail", 3, [0, 1, 2, 9]),
        ("head+tail", 10, [0, 1, 2, 3]),  # head_tokens beyond the budget: head only
    ],
)
def test_truncate_keeps_exact_ids(mode, head_tokens, expected):
    assert truncate(list(range(10)), 4, mode, head_tokens) == expected


def test_truncate_leaves_short_texts_alone():
    for mode in ("head", "tail", "head+tail"):
        assert truncate([5, 6], 4, mode, 1) == [5, 6]


LONG_TEXT = " ".join(f"word{i} tokenization sentence" for i in range(40))


@pytest.mark.parametrize(
    "mode, keep",
    [
        ("head", lambda ids: ids[:14]),
        ("tail", lambda ids: ids[-14:]),
        ("head+tail", lambda ids: ids[:5] + ids[-9:]),
    ],
)
def test_tokenize_truncates_and_adds_special_tokens(tokenizer, mode, keep):
    full = tokenizer(LONG_TEXT, add_special_tokens=False)["input_ids"]
    assert len(full) > 40
    short = "a short comment"
    short_ids = tokenizer(short, add_special_tokens=False)["input_ids"]
    result = tokenize(tokenizer, [LONG_TEXT, short], max_length=16, truncation=mode, head_tokens=5)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert result[0].tolist() == [cls, *keep(full), sep]
    assert len(result[0]) == 16
    assert result[1].tolist() == [cls, *short_ids, sep]
    assert result.full_lengths.tolist() == [len(full), len(short_ids)]
    assert result.lengths.tolist() == [16, len(short_ids) + 2]


def test_tokenize_none_keeps_whole_texts_without_specials(tokenizer):
    result = tokenize(tokenizer, [LONG_TEXT, ""], truncation="none")
    assert result[0].tolist() == tokenizer(LONG_TEXT, add_special_tokens=False)["input_ids"]
    assert len(result[1]) == 0
    assert result.flat.dtype == np.int32


def test_subset_picks_rows(tokenizer):
    texts = ["one", "two words", "three words here"]
    tokens = tokenize(tokenizer, texts, max_length=16, truncation="head")
    part = tokens.subset(np.array([2, 0]))
    assert part[0].tolist() == tokens[2].tolist() and part[1].tolist() == tokens[0].tolist()
    assert part.full_lengths.tolist() == [tokens.full_lengths[2], tokens.full_lengths[0]]


def test_tokenize_cache_is_loaded_not_recomputed(tokenizer, data, tmp_path, monkeypatch):
    texts = data.train_texts[:100]
    args = dict(max_length=32, truncation="head+tail", head_tokens=8, cache_dir=tmp_path)
    first = tokenize(tokenizer, texts, **args)
    entries = sorted(p.name.split("-")[2] for p in (tmp_path / "tokens").iterdir())
    assert entries == ["head_tail8", "none"], entries  # the untruncated ids, and the view cut from them
    assert isinstance(first.flat, np.memmap)  # memory-mapped from the cache

    def must_not_encode(*a, **k):
        raise AssertionError("texts re-tokenized although the cache holds them")

    monkeypatch.setattr(tokenization, "_encode", must_not_encode)
    second = tokenize(tokenizer, texts, **args)
    np.testing.assert_array_equal(first.flat, second.flat)
    np.testing.assert_array_equal(first.offsets, second.offsets)
    np.testing.assert_array_equal(first.full_lengths, second.full_lengths)

    # another mode or length is cut from the cached untruncated ids (no tokenizer pass), and is
    # exactly what a fresh tokenization gives: never a stale hit
    for changed in ({**args, "head_tokens": 4}, {**args, "max_length": 64}, {**args, "truncation": "tail"}):
        got = tokenize(tokenizer, texts, **changed)
        monkeypatch.undo()
        fresh = tokenize(tokenizer, texts, **{**changed, "cache_dir": None})
        monkeypatch.setattr(tokenization, "_encode", must_not_encode)
        np.testing.assert_array_equal(got.flat, fresh.flat)
        np.testing.assert_array_equal(got.offsets, fresh.offsets)
    with pytest.raises(AssertionError, match="re-tokenized"):  # other texts: tokenized again
        tokenize(tokenizer, texts[:99] + [texts[99] + "!"], **args)


@pytest.mark.parametrize("mode", ["head", "tail", "head+tail"])
def test_cut_from_untruncated_ids_matches_truncating_each_text(tokenizer, data, mode):
    texts = data.train_texts[:200] + ["", "short"]
    full = tokenize(tokenizer, texts)
    got = tokenize(tokenizer, texts, max_length=24, truncation=mode, head_tokens=7)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert full[i].tolist() == ids
        assert got[i].tolist() == [cls, *truncate(ids, 22, mode, 7), sep]
        assert got.full_lengths[i] == len(ids)
    rows = np.array([5, 0, 201, 17])
    picked = got.subset(rows)
    assert [picked[j].tolist() for j in range(len(rows))] == [got[i].tolist() for i in rows]


def test_pack_blocks_joins_texts_with_sep(tokenizer):
    from kagglebert.core.batching import pack_blocks
    from kagglebert.core.tokenization import TokenizedTexts

    tokens = TokenizedTexts(np.arange(1, 11, dtype=np.int32), np.array([0, 3, 3, 7, 10]), np.array([3, 0, 4, 3]))
    blocks = pack_blocks(tokens, 6, cls_id=100, sep_id=101)
    # stream: 1 2 3 SEP 4 5 6 7 SEP 8 9 10 SEP (the empty text adds nothing) → blocks of 4 between CLS/SEP
    assert blocks.tolist() == [[100, 1, 2, 3, 101, 101], [100, 4, 5, 6, 7, 101], [100, 101, 8, 9, 10, 101]]
    # several parts (the LM corpus: train, then test) make one stream: … 10 SEP 1 2 3 SEP, the last SEP dropped
    two = pack_blocks([tokens, tokens.subset(np.array([0]))], 6, cls_id=100, sep_id=101)
    assert two.tolist() == blocks.tolist() + [[100, 101, 1, 2, 3, 101]]


@pytest.mark.parametrize("spread_rows", [1, 3, 1 << 14])
def test_pack_blocks_equals_joining_then_cutting(spread_rows, monkeypatch):
    """Written in place into one buffer, the blocks are those of the plain recipe: concatenate the
    parts, insert a [SEP] after every non-empty text, cut rows of block_size - 2, add [CLS]/[SEP]."""
    from kagglebert.core import batching
    from kagglebert.core.tokenization import TokenizedTexts

    monkeypatch.setattr(batching, "SPREAD_ROWS", spread_rows)
    rng = np.random.default_rng(0)
    parts = []
    for n_texts in (57, 1, 23):
        lengths = rng.integers(0, 40, n_texts) * (rng.random(n_texts) > 0.2)  # some empty texts
        offsets = np.concatenate([[5], 5 + np.cumsum(lengths)])  # ids start at 5: a view into a larger array
        flat = rng.integers(200, 300, int(offsets[-1]) + 3).astype(np.int32)
        parts.append(TokenizedTexts(flat, offsets, lengths))
    stream = []
    for part in parts:
        for i in range(len(part)):
            stream += part[i].tolist() + ([101] if len(part[i]) else [])
    for block_size in (4, 9, 32):
        body = block_size - 2
        rows = [[100, *stream[k * body:(k + 1) * body], 101] for k in range(len(stream) // body)]
        assert batching.pack_blocks(parts, block_size, cls_id=100, sep_id=101).tolist() == rows


def test_a_damaged_cache_entry_is_recomputed(tokenizer, tmp_path, caplog):
    import logging

    texts = ["a damaged cache", "must not be a traceback"]
    first = np.array(tokenize(tokenizer, texts, max_length=16, truncation="head", cache_dir=tmp_path).flat)  # a copy: the file is damaged in place below
    (entry,) = [p for p in (tmp_path / "tokens").iterdir() if "-head-" in p.name]
    (entry / "flat.npy").write_bytes(b"not an npy")
    with caplog.at_level(logging.WARNING, logger="kagglebert"):
        again = tokenize(tokenizer, texts, max_length=16, truncation="head", cache_dir=tmp_path)
    assert "unreadable cache entry (" in caplog.text
    np.testing.assert_array_equal(again.flat, first)
    np.testing.assert_array_equal(np.load(entry / "flat.npy"), first)  # rewritten whole
