"""What is timed: classifier rows and packed masked-LM blocks, either from the bundled sample (the
`--quick` profile) or synthetic token ids whose lengths follow the 2018 comments (`--gpu`: no
tokenizer cost, any size), and the randomly initialised BERT config every contender shares."""
from __future__ import annotations

import numpy as np

from ..core.batching import pack_blocks
from ..core.paths import BUNDLED_SAMPLE
from ..core.tasks import JIGSAW_TOXIC_2018
from ..core.tokenization import TokenizedTexts, tokenize
from .profiles import N_LABELS, Profile


def bert_config(profile: Profile, vocab_size: int, pad_id: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=profile.hidden, num_hidden_layers=profile.layers,
                      num_attention_heads=profile.heads, intermediate_size=profile.intermediate,
                      max_position_embeddings=512, pad_token_id=pad_id, **extra)


def bundled_texts(n_rows: int) -> tuple[list[str], np.ndarray]:
    """The first `n_rows` comments of the bundled sample's train.csv and their six labels."""
    import pandas as pd

    frame = pd.read_csv(BUNDLED_SAMPLE / "train.csv", dtype=str, keep_default_na=False, nrows=n_rows)
    labels = frame[JIGSAW_TOXIC_2018.label_columns].astype(np.float32).to_numpy()
    return frame[JIGSAW_TOXIC_2018.text_column].tolist(), labels


def synthetic_tokens(n_rows: int, max_length: int, vocab_size: int, cls_id: int, sep_id: int, seed: int) -> TokenizedTexts:
    """Word-piece counts log-normal like the 2018 comments (median 48, mean 92: sigma² = 2 ln(92/48)),
    cut at `max_length` with [CLS] … [SEP]; ids drawn from the ordinary part of the vocabulary."""
    rng = np.random.default_rng(seed)
    full = np.maximum(1, np.round(rng.lognormal(np.log(48), np.sqrt(2 * np.log(92 / 48)), n_rows))).astype(np.int64)
    kept = np.minimum(full, max_length - 2)
    pieces = [np.concatenate([[cls_id], rng.integers(1000, vocab_size, k), [sep_id]]).astype(np.int32) for k in kept]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    return TokenizedTexts(np.concatenate(pieces), offsets, full)


def classifier_workload(profile: Profile, tokenizer, texts: list[str], labels: np.ndarray) -> tuple[TokenizedTexts, np.ndarray]:
    """Enough rows for the largest batch size's warm-up and timed sets: the bundled comments cut at
    `max_length`, or synthetic ones with random labels (10% positive) for the synthetic profile."""
    most_rows = max(profile.batch_sizes) * (profile.warmup_batches + profile.timed_batches)
    if profile.synthetic:
        tokens = synthetic_tokens(most_rows, profile.max_length, len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
        return tokens, (np.random.default_rng(1).random((most_rows, N_LABELS)) < 0.1).astype(np.float32)
    return tokenize(tokenizer, texts[:most_rows], profile.max_length, "head"), labels[:most_rows]


def lm_blocks(profile: Profile, tokenizer, texts: list[str] | None) -> np.ndarray:
    """Packed blocks for the largest batch size: whole bundled comments (or synthetic ones) joined
    with [SEP] and cut at `max_length`, as many comments as the blocks need."""
    n_blocks = max(profile.batch_sizes) * (profile.warmup_batches + profile.lm_timed_batches)
    n_comments = n_blocks * profile.max_length // 30 + 1  # comfortably enough: comments average ~90 word pieces
    if texts is None:
        # no cut (max length 10⁶): the LM corpus is whole comments
        corpus = synthetic_tokens(n_comments, 10**6, len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=2)
    else:
        corpus = tokenize(tokenizer, texts[:n_comments])  # whole comments, no special tokens: the LM corpus
    return pack_blocks(corpus, profile.max_length, tokenizer.cls_token_id, tokenizer.sep_token_id)
