"""Masked-LM batches (BERT's 15% / 80-10-10 statistics, specials untouched, a fresh mask per
epoch, whole-word masking) and the competition metric against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from kagglebert.core.batching import MaskingCollator, pack_blocks
from kagglebert.core.data import load_competition
from kagglebert.core.tasks import JIGSAW_TOXIC_2018, mean_column_auc
from kagglebert.core.tokenization import tokenize

BLOCK = 64


@pytest.fixture(scope="module")
def blocks(sample_dir, tokenizer):
    """Every real training comment of the sample, packed into [CLS] … [SEP] blocks (~25k tokens)."""
    data = load_competition(JIGSAW_TOXIC_2018, str(sample_dir))
    tokens = tokenize(tokenizer, data.train_texts, truncation="none")
    return pack_blocks(tokens, BLOCK, tokenizer.cls_token_id, tokenizer.sep_token_id)


def special_mask(ids: torch.Tensor, tokenizer) -> torch.Tensor:
    return torch.isin(ids, torch.tensor(list(tokenizer.all_special_ids)))


def test_pack_blocks_shape(blocks, tokenizer):
    assert blocks.shape[1] == BLOCK and len(blocks) > 300
    assert (blocks[:, 0] == tokenizer.cls_token_id).all() and (blocks[:, -1] == tokenizer.sep_token_id).all()
    assert not (blocks == tokenizer.pad_token_id).any()  # packed: no padding at all


def test_masking_statistics(blocks, tokenizer):
    collate = MaskingCollator(blocks, tokenizer, probability=0.15, seed=0)
    rows = list(range(len(blocks)))
    batch = collate(rows)
    original = torch.from_numpy(blocks.astype(np.int64))
    inputs, labels = batch["input_ids"], batch["labels"]
    special = special_mask(original, tokenizer)
    chosen = labels != -100

    assert not (chosen & special).any(), "a special token was selected"
    assert torch.equal(inputs[special], original[special])
    assert torch.equal(labels[chosen], original[chosen])  # the loss targets are the original ids
    assert torch.equal(inputs[~chosen], original[~chosen])  # nothing changes outside the selection

    n_chosen = int(chosen.sum())
    share = n_chosen / int((~special).sum())
    assert share == pytest.approx(0.15, abs=0.01)
    masked = float((inputs[chosen] == tokenizer.mask_token_id).float().mean())
    unchanged = float((inputs[chosen] == original[chosen]).float().mean())
    random = 1.0 - masked - unchanged
    assert masked == pytest.approx(0.80, abs=0.025)
    assert unchanged == pytest.approx(0.10, abs=0.02)
    assert random == pytest.approx(0.10, abs=0.02)
    assert batch["attention_mask"].all()


def test_a_fresh_mask_each_epoch_and_a_fixed_one_per_seed(blocks, tokenizer):
    rows = list(range(64))
    collate = MaskingCollator(blocks, tokenizer, seed=5)
    epoch0 = collate(rows)
    collate.set_epoch(1)
    epoch1 = collate(rows)
    assert not torch.equal(epoch0["labels"], epoch1["labels"])

    same = MaskingCollator(blocks, tokenizer, seed=5)
    again = same(rows)
    assert torch.equal(epoch0["input_ids"], again["input_ids"]) and torch.equal(epoch0["labels"], again["labels"])
    collate.set_epoch(0)
    assert torch.equal(collate(rows)["labels"], epoch0["labels"])

    other_seed = MaskingCollator(blocks, tokenizer, seed=6)(rows)
    assert not torch.equal(other_seed["labels"], epoch0["labels"])


def test_whole_word_masking_takes_every_piece(blocks, tokenizer):
    collate = MaskingCollator(blocks, tokenizer, probability=0.15, whole_word_mask=True, seed=0)
    batch = collate(list(range(len(blocks))))
    chosen = (batch["labels"] != -100).numpy()
    pieces = np.array(tokenizer.convert_ids_to_tokens(blocks.reshape(-1).tolist())).reshape(blocks.shape)
    special = special_mask(torch.from_numpy(blocks.astype(np.int64)), tokenizer).numpy()
    # a "##" piece belongs to the word of the piece before it: both chosen or neither
    continuation = np.char.startswith(pieces[:, 1:], "##") & ~special[:, :-1] & ~special[:, 1:]
    assert continuation.sum() > 500
    assert np.array_equal(chosen[:, 1:][continuation], chosen[:, :-1][continuation])
    assert chosen[:, 1:][continuation].sum() > 30  # multi-piece words were actually masked
    assert not (chosen & special).any()
    share = chosen.sum() / (~special).sum()
    assert 0.10 < share < 0.20


# ---- metric ----


def test_mean_column_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    y_true = (rng.random((500, 3)) < [0.3, 0.1, 0.05]).astype(np.float32)
    y_pred = np.clip(y_true * 0.3 + rng.random((500, 3)), 0, 1)
    result = mean_column_auc(y_true, y_pred, labels)
    expected = [roc_auc_score(y_true[:, j], y_pred[:, j]) for j in range(3)]
    assert [result["per_label"][name] for name in labels] == pytest.approx(expected, abs=1e-12)
    assert result["score"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert 0.5 < result["score"] < 1.0


def test_single_class_column_is_none_and_left_out():
    rng = np.random.default_rng(1)
    y_true = np.zeros((200, 3), dtype=np.float32)
    y_true[:40, 0] = 1
    y_true[::3, 2] = 1  # column 1 has no positives
    y_pred = rng.random((200, 3))
    result = mean_column_auc(y_true, y_pred, ["x", "never", "z"])
    assert result["per_label"]["never"] is None
    expected = np.mean([roc_auc_score(y_true[:, 0], y_pred[:, 0]), roc_auc_score(y_true[:, 2], y_pred[:, 2])])
    assert result["score"] == pytest.approx(expected, abs=1e-12)
    everything_one = mean_column_auc(np.ones((10, 1)), rng.random((10, 1)), ["all"])
    assert everything_one["per_label"]["all"] is None and np.isnan(everything_one["score"])


# ---- whole-word masking on BPE and SentencePiece vocabularies (tokenizers trained here, offline) ----

WORDS = "the quick brownish foxes jumped over lazily sleeping dogs while unbelievably noisy neighbours argued"


def trained_tokenizer(kind: str, texts: list[str]):
    """A small fast tokenizer of `kind` trained on `texts` with the `tokenizers` library: byte-level
    BPE (RoBERTa's scheme: "Ġ" starts a word), SentencePiece Unigram (XLNet / DeBERTa-v3: "▁"), or
    a whitespace word-level one that marks no word pieces at all."""
    from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    if kind == "bpe":
        raw = ByteLevelBPETokenizer()
        raw.train_from_iterator(texts, vocab_size=400, min_frequency=2, special_tokens=specials, show_progress=False)
    elif kind == "unigram":
        raw = SentencePieceUnigramTokenizer()
        raw.train_from_iterator(texts, vocab_size=400, special_tokens=specials, unk_token="<unk>", show_progress=False)
    else:
        raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        raw.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=400, special_tokens=specials, show_progress=False))
    raw = getattr(raw, "_tokenizer", raw)
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   mask_token="<mask>", cls_token="<s>", sep_token="</s>")


@pytest.fixture(scope="module")
def sample_texts(sample_dir):
    return load_competition(JIGSAW_TOXIC_2018, str(sample_dir)).train_texts


@pytest.mark.parametrize("kind, marker", [("bpe", "\u0120"), ("unigram", "\u2581")])
def test_whole_word_masking_on_bpe_and_sentencepiece(kind, marker, sample_texts):
    """Words as the fast tokenizer's own word_ids() see them (letters only, one space between):
    every piece of a word is chosen with it or not at all, and words do get masked."""
    from kagglebert.core.batching import word_marker

    tok = trained_tokenizer(kind, sample_texts)
    assert word_marker(tok) == marker
    encoding = tok(WORDS, add_special_tokens=False)
    ids, word_ids = encoding["input_ids"], encoding.word_ids()
    assert len(ids) > len(WORDS.split()) + 3  # a small vocabulary: several words come in pieces
    block = np.array([[tok.cls_token_id, *ids, tok.sep_token_id]] * 400, dtype=np.int32)  # 400 draws of one text
    collate = MaskingCollator(block, tok, probability=0.3, whole_word_mask=True, seed=0)
    chosen = (collate(list(range(len(block))))["labels"] != -100).numpy()[:, 1:-1]
    for word in set(word_ids):
        columns = [i for i, w in enumerate(word_ids) if w == word]
        assert (chosen[:, columns] == chosen[:, columns[:1]]).all(), (kind, word)  # all pieces or none
    assert 0.2 < chosen.mean() < 0.4
    # per-token masking (the old fallback for these vocabularies) splits words: this test would see it
    split = (MaskingCollator(block, tok, probability=0.3, seed=0)(list(range(len(block))))["labels"] != -100).numpy()[:, 1:-1]
    multi = [[i for i, w in enumerate(word_ids) if w == word] for word in set(word_ids)]
    assert any((split[:, c] != split[:, c[:1]]).any() for c in multi if len(c) > 1)


def test_whole_word_masking_refuses_a_tokenizer_without_word_marks(sample_texts):
    tok = trained_tokenizer("wordlevel", sample_texts)
    block = np.array([[tok.cls_token_id, *tok(WORDS, add_special_tokens=False)["input_ids"], tok.sep_token_id]], dtype=np.int32)
    with pytest.raises(ValueError, match="lm.whole_word_mask = true: the tokenizer marks no words .*set lm.whole_word_mask = false"):
        MaskingCollator(block, tok, whole_word_mask=True)
    MaskingCollator(block, tok, whole_word_mask=False)  # per-token masking needs no marks


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_encoding_through_the_rust_tokenizer_gives_the_tokenizers_own_ids(kind, sample_texts, tokenizer):
    """tokenization._encode calls the Rust tokenizer of a fast tokenizer directly: its ids equal the
    transformers call's, untruncated, even after a call that left truncation set on the backend."""
    from kagglebert.core.tokenization import _encode

    fast = tokenizer if kind == "wordpiece" else trained_tokenizer(kind, sample_texts[:300])
    texts = sample_texts[:300] + ["", "   ", "naïve café — 東京 🙂", "word " * 600]
    fast(texts[:5], truncation=True, max_length=8)  # leaves truncation to 8 on fast.backend_tokenizer
    expected = fast(texts, add_special_tokens=False, truncation=False)["input_ids"]
    encoded = _encode(fast, texts)
    assert [encoded.flat[encoded.offsets[i]:encoded.offsets[i + 1]].tolist() for i in range(len(texts))] == expected
    assert max(map(len, expected)) > 600  # the long text came back whole
