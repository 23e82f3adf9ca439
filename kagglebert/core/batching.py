"""Batches without waste: length-bucketed classifier batches padded only to the longest row (rounded
up to a multiple, so the GPU sees few distinct shapes), and packed masked-LM blocks with a fresh mask
every epoch. Everything here runs in the DataLoader, never inside the training step."""
from __future__ import annotations

import numpy as np
import torch

from .tokenization import TokenizedTexts, gather


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Shuffle, cut into pools of `bucket_size` batches, sort each pool by length, shuffle the
    batches. Rows of similar length share a batch; the order still changes every epoch."""

    def __init__(self, lengths: np.ndarray, batch_size: int, bucket_size: int = 100, seed: int = 0):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.pool = batch_size * max(1, bucket_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b].tolist()


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Inference order: longest first, so padding is minimal and memory peaks on the first batch."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple if multiple > 1 else n


class PadCollator:
    """Row indices → padded `input_ids`, `attention_mask` (and `labels`, `weights` — the loss
    terms' per-row weights — when given)."""

    def __init__(self, tokens: TokenizedTexts, pad_id: int, labels: np.ndarray | None = None, pad_multiple: int = 8,
                 weights: np.ndarray | None = None):
        self.tokens, self.pad_id, self.labels, self.pad_multiple = tokens, pad_id, labels, pad_multiple
        self.weights = weights

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        pieces = [self.tokens[i] for i in rows]
        width = round_up(max(len(p) for p in pieces), self.pad_multiple)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, piece in enumerate(pieces):
            input_ids[r, : len(piece)] = piece
            attention_mask[r, : len(piece)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
        if self.labels is not None:
            batch["labels"] = torch.from_numpy(self.labels[rows])
        if self.weights is not None:
            batch["weights"] = torch.from_numpy(self.weights[rows])
        return batch


SPREAD_ROWS = 1 << 14  # blocks moved per step of pack_blocks' spreading (a bounded temporary copy)


def pack_blocks(tokens: TokenizedTexts | list[TokenizedTexts], block_size: int, cls_id: int, sep_id: int) -> np.ndarray:
    """All texts joined with [SEP] and cut into [CLS] … [SEP] blocks of exactly `block_size`: no
    padding at all. The last partial block is dropped. `tokens` may be several TokenizedTexts (the
    LM corpus: train, then test), read where they lie (memory-mapped cache entries). The blocks are
    the only array written: the joined stream goes straight into its buffer and is then spread into
    rows in place, so a 2019-size corpus (1.9M comments) is held once, not once per step."""
    parts = list(tokens) if isinstance(tokens, (list, tuple)) else [tokens]
    body = block_size - 2
    lengths = [np.asarray(part.lengths, dtype=np.int64) for part in parts]
    n_stream = sum(int(n.sum()) + int((n > 0).sum()) for n in lengths)  # the ids and a [SEP] after each non-empty text
    n_blocks = n_stream // body
    out = np.empty((n_blocks + 1) * block_size, dtype=np.int32)  # (n_blocks + 1) rows hold the whole stream
    cursor = 0
    for part, n in zip(parts, lengths):
        nonempty = n > 0
        starts = np.asarray(part.offsets[:-1], dtype=np.int64)
        out_starts = cursor + (starts - starts[0] if len(starts) else starts) + np.cumsum(nonempty) - nonempty
        gather(part.flat, starts, n, out, out_starts)
        out[(out_starts + n)[nonempty]] = sep_id
        cursor += int(n.sum()) + int(nonempty.sum())
    blocks = out[: n_blocks * block_size].reshape(n_blocks, block_size)
    # from the last rows back: rows [first, last) land at first * block_size + 1 onwards, past their
    # source first * body, so no row's ids are overwritten before they are moved
    for last in range(n_blocks, 0, -SPREAD_ROWS):
        first = max(0, last - SPREAD_ROWS)
        blocks[first:last, 1:-1] = out[first * body : last * body].reshape(last - first, body).copy()
    blocks[:, 0], blocks[:, -1] = cls_id, sep_id
    return blocks


# How a vocabulary marks words: WordPiece continues one with "##" (BERT, MiniLM, ELECTRA);
# byte-level BPE starts one with "Ġ" (RoBERTa, GPT-2, Longformer); SentencePiece with "▁" (XLNet,
# DeBERTa-v2/v3, ALBERT, XLM-R). marker → whether it marks a word's start (else a continuation)
WORD_MARKERS = {"##": False, "\u0120": True, "\u2581": True}
MIN_MARKED_SHARE = 0.05  # a scheme's marker on fewer tokens than this is incidental (RoBERTa has a "##" token)


def word_marker(tokenizer) -> str | None:
    """The marker `tokenizer`'s vocabulary uses for words ("##", "Ġ" or "▁"), or None."""
    tokens = [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    counts = {m: sum(t.startswith(m) and len(t) > len(m) for t in tokens) for m in WORD_MARKERS}
    best = max(counts, key=counts.get)
    return best if counts[best] >= MIN_MARKED_SHARE * len(tokens) else None


def word_starts(tokenizer) -> torch.Tensor:
    """Per token id (computed once, not per batch): does this token start a word?"""
    marker = word_marker(tokenizer)
    if marker is None:
        raise ValueError(
            "lm.whole_word_mask = true: the tokenizer marks no words in a way kagglebert reads (WordPiece '##', "
            "byte-level BPE 'Ġ', SentencePiece '▁'); set lm.whole_word_mask = false")
    tokens = [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    return torch.tensor([t.startswith(marker) == WORD_MARKERS[marker] for t in tokens])


class MaskingCollator:
    """Block indices → BERT masking: `probability` of the (non-special) tokens are chosen, of
    those 80% become [MASK], 10% a random token, 10% stay; labels are -100 elsewhere.

    With `whole_word_mask`, a word is chosen or left as a whole: its pieces as the vocabulary marks
    them (`word_marker`: WordPiece "##" continuations, BPE "Ġ" or SentencePiece "▁" starts), a
    text's first piece (after a special token) always starting one; a tokenizer with no known
    marker is refused. The generator is reseeded by `set_epoch`, so each epoch draws a fresh mask
    and a fixed seed gives a fixed held-out mask for perplexity.
    """

    def __init__(self, blocks: np.ndarray, tokenizer, probability: float = 0.15, whole_word_mask: bool = False, seed: int = 0):
        self.blocks = torch.from_numpy(blocks.astype(np.int64))
        self.probability = probability
        self.mask_id = tokenizer.mask_token_id
        if self.mask_id is None:
            raise ValueError("the tokenizer has no [MASK] token: masked-LM training is impossible")
        self.vocab_size = len(tokenizer)
        special = torch.zeros(max(self.vocab_size, int(self.blocks.max()) + 1 if self.blocks.numel() else 1), dtype=torch.bool)
        special[list(tokenizer.all_special_ids)] = True
        self.special = special
        self.starts = None
        if whole_word_mask:
            self.starts = torch.cat([word_starts(tokenizer), torch.ones(len(special) - self.vocab_size, dtype=torch.bool)])
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        input_ids = self.blocks[rows].clone()
        labels = input_ids.clone()
        g = self.generator
        maskable = ~self.special[input_ids]
        if self.starts is None:
            chosen = torch.rand(input_ids.shape, generator=g) < self.probability
        else:
            # word index of every token: a word starts at a marked start, at a special token and
            # right after one (a text's first piece carries no "Ġ" / "▁")
            starts = self.starts[input_ids] | self.special[input_ids]
            starts[:, 1:] |= self.special[input_ids[:, :-1]]
            word = torch.cumsum(starts, dim=1) - 1
            word_chosen = torch.rand(input_ids.shape, generator=g) < self.probability
            chosen = torch.gather(word_chosen, 1, word.clamp(min=0))
        chosen &= maskable
        labels[~chosen] = -100
        to_mask = chosen & (torch.rand(input_ids.shape, generator=g) < 0.8)
        to_random = chosen & ~to_mask & (torch.rand(input_ids.shape, generator=g) < 0.5)
        input_ids[to_mask] = self.mask_id
        input_ids[to_random] = torch.randint(self.vocab_size, (int(to_random.sum()),), generator=g)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
