"""Batched fast tokenization with an on-disk cache, and the truncation modes (head, tail, head+tail).

The cache key is the tokenizer's fingerprint, the max length, the truncation mode and a hash of
the texts themselves (so a subsample or an edited file never reuses stale ids). Texts are stored
as one flat int32 array plus offsets: loading is a memory copy, not a re-tokenization.
"""
from __future__ import annotations

import hashlib
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_atomic

log = logging.getLogger("kagglebert")

TRUNCATIONS = ("head", "tail", "head+tail", "none")


def quiet_transformers() -> None:
    """transformers prints a load report for every missing key, and huggingface_hub a warning for every
    failed request (offline, twice per file); kagglebert says what matters itself, in one line."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    quiet_transformers()  # full lengths are measured on purpose; no "sequence too long" warning
    tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{model_path}: kagglebert needs a fast tokenizer (tokenizer.json)")
    return tokenizer


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary and the normalisation/splitting rules. The backend's truncation and
    padding settings are cleared while hashing (and restored after): transformers rewrites them on
    every call, so hashing them made the second `tokenize` of a process miss the cache its first
    call had written."""
    backend = tokenizer.backend_tokenizer
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()[:16]
    finally:
        if truncation:
            backend.enable_truncation(**truncation)
        if padding:
            backend.enable_padding(**padding)


def texts_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@dataclass
class TokenizedTexts:
    """Token ids of many texts: row i is flat[offsets[i]:offsets[i + 1]]."""

    flat: np.ndarray  # int32
    offsets: np.ndarray  # int64, len = n + 1
    full_lengths: np.ndarray  # word pieces before truncation, without special tokens

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, rows: np.ndarray) -> "TokenizedTexts":
        pieces = [self[i] for i in rows]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
        return TokenizedTexts(flat.astype(np.int32), offsets, self.full_lengths[rows])


def truncate(ids: list[int], budget: int, mode: str, head_tokens: int) -> list[int]:
    """Keep at most `budget` ids: the start, the end, or `head_tokens` from the start plus the rest
    from the end (Sun et al. 2019: head+tail beats either alone on long texts)."""
    if mode == "none" or len(ids) <= budget:
        return ids
    if mode == "head":
        return ids[:budget]
    if mode == "tail":
        return ids[len(ids) - budget :]
    head = min(head_tokens, budget)
    tail = budget - head
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])


def _encode(tokenizer, texts: list[str], max_length: int, mode: str, head_tokens: int, chunk: int = 2000) -> TokenizedTexts:
    """Tokenize without truncation (to know each full length), then cut and add [CLS] … [SEP]."""
    specials = mode != "none"
    budget = max_length - 2
    pieces, full_lengths = [], []
    for start in range(0, len(texts), chunk):
        encoded = tokenizer(
            texts[start : start + chunk],
            add_special_tokens=False,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        for ids in encoded:
            full_lengths.append(len(ids))
            if specials:
                ids = [tokenizer.cls_token_id, *truncate(ids, budget, mode, head_tokens), tokenizer.sep_token_id]
            pieces.append(np.asarray(ids, dtype=np.int32))
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    return TokenizedTexts(flat, offsets, np.asarray(full_lengths, dtype=np.int64))


def tokenize(
    tokenizer,
    texts: list[str],
    max_length: int = 0,
    truncation: str = "none",
    head_tokens: int = 128,
    cache_dir: Path | None = None,
) -> TokenizedTexts:
    """Token ids for `texts`; `truncation="none"` keeps whole texts without special tokens (LM corpus)."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if truncation != "none" and (tokenizer.cls_token_id is None or tokenizer.sep_token_id is None):
        raise ValueError("the tokenizer has no [CLS]/[SEP] tokens")
    if cache_dir is None:
        return _encode(tokenizer, texts, max_length, truncation, head_tokens)
    mode_key = f"{truncation}{head_tokens}" if truncation == "head+tail" else truncation
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_length}-{mode_key.replace('+', '_')}-{texts_hash(texts)}"
    path = Path(cache_dir) / "tokens" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return TokenizedTexts(stored["flat"], stored["offsets"], stored["full_lengths"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # damaged by hand or by a full disk elsewhere
            log.warning("%s: unreadable cache entry (%s); tokenizing again", path, type(err).__name__)
    result = _encode(tokenizer, texts, max_length, truncation, head_tokens)
    # the temporary name ends in .npz, so np.savez keeps it; an interrupted write leaves no entry
    write_atomic(path, lambda tmp: np.savez(tmp, flat=result.flat, offsets=result.offsets, full_lengths=result.full_lengths))
    return result
