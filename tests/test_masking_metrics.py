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
