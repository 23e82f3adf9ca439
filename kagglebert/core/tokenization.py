"""Batched fast tokenization with an on-disk cache, and the truncation modes (head, tail, head+tail).

The cache key is the tokenizer's fingerprint, the max length, the truncation mode and a hash of
the texts themselves (so a subsample or an edited file never reuses stale ids). Texts are stored
as one flat int32 array plus offsets, each a `.npy` file in the entry's folder, and come back
memory-mapped (`np.load(mmap_mode="r")`): a 1.8M-row entry costs no RAM until rows are read.

Each text list is run through the tokenizer once: the untruncated ids (the LM corpus's and the
EDA's entry, `truncation="none"`) are cached, and every truncated view (head, tail, head+tail at
any length) is cut from them with array arithmetic — the same ids as tokenizing again.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_dir
from .progress import PROGRESS_FROM_TEXTS, ProgressBar

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
        """The rows' ids, in `rows`' order, in memory (a fold's training rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        gather(self.flat, self.offsets[rows], lengths, flat, offsets[:-1])
        return TokenizedTexts(flat, offsets, np.asarray(self.full_lengths[rows]))


GATHER_CHUNK = 1 << 24  # ids copied per step of `gather`: bounded temporary index arrays


def gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray, out: np.ndarray, out_starts: np.ndarray) -> None:
    """out[out_starts[i] : out_starts[i] + lengths[i]] = source[starts[i] : starts[i] + lengths[i]] for every i,
    vectorized, in chunks of rows holding about GATHER_CHUNK ids."""
    starts, lengths, out_starts = (np.asarray(a, dtype=np.int64) for a in (starts, lengths, out_starts))
    ends = np.cumsum(lengths)
    begin = 0
    while begin < len(lengths):
        done = ends[begin - 1] if begin else 0
        end = max(begin + 1, int(np.searchsorted(ends, done + GATHER_CHUNK, side="right")))
        n = lengths[begin:end]
        total = int(n.sum())
        if total:
            within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            out[np.repeat(out_starts[begin:end], n) + within] = source[np.repeat(starts[begin:end], n) + within]
        begin = end


def truncate(ids: list[int], budget: int, mode: str, head_tokens: int) -> list[int]:
    """Keep at most `budget` ids: the start, the end, or `head_tokens` from the start plus the rest
    from the end (Sun et al. 2019: head+tail beats either alone on long texts). One text's rule;
    `cut` applies it to every text at once."""
    if mode == "none" or len(ids) <= budget:
        return ids
    if mode == "head":
        return ids[:budget]
    if mode == "tail":
        return ids[len(ids) - budget :]
    head = min(head_tokens, budget)
    tail = budget - head
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])


ENCODE_CHUNK = 10_000  # texts per tokenizer call (the Rust side parallelises within a call)


def ids_of_batch(tokenizer):
    """A function from a list of texts to their ids (lists), untruncated, without special tokens.

    For a fast tokenizer it calls the Rust tokenizer itself (a copy, so the truncation and padding
    transformers leaves set on it from an earlier call do not apply): transformers' per-call
    wrapping (a BatchEncoding, its checks, offsets computed and dropped) costs as much as the
    tokenizing itself at 1.8M texts. The ids are the same (tests/test_tokenization.py)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None:  # a Python ("slow") tokenizer: its own call
        return lambda batch: tokenizer(batch, add_special_tokens=False, truncation=False, return_attention_mask=False,
                                       return_token_type_ids=False)["input_ids"]
    backend = type(backend).from_str(backend.to_str())  # tokenizers.Tokenizer, reached without importing it (not a declared dependency)
    backend.no_truncation()
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: no offsets (tokenizers >= 0.21)
    return lambda batch: [encoding.ids for encoding in encode(batch, add_special_tokens=False)]


def _encode(tokenizer, texts: list[str]) -> TokenizedTexts:
    """Every text's word-piece ids, untruncated and without special tokens."""
    encode_batch = ids_of_batch(tokenizer)
    flats, lengths = [], []
    with ProgressBar(total=len(texts), desc="tokenize", unit="text", disable=len(texts) < PROGRESS_FROM_TEXTS, leave=False) as bar:
        for start in range(0, len(texts), ENCODE_CHUNK):
            encoded = encode_batch(texts[start : start + ENCODE_CHUNK])
            sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            flats.append(np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(sizes.sum())))
            lengths.append(sizes)
            bar.update(len(encoded))
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(flats) if flats else np.zeros(0, np.int32)
    return TokenizedTexts(flat, offsets, lengths)


def cut(full: TokenizedTexts, max_length: int, mode: str, head_tokens: int, cls_id: int, sep_id: int) -> TokenizedTexts:
    """[CLS] + `truncate`d ids + [SEP] for every text, from the untruncated ids, vectorized."""
    budget = max_length - 2
    n = len(full)
    lengths = np.asarray(full.lengths, dtype=np.int64)
    starts = np.asarray(full.offsets[:-1], dtype=np.int64)
    long = lengths > budget
    first_len = np.minimum(lengths, budget)
    first_start = starts.copy()
    second_len = np.zeros(n, dtype=np.int64)
    second_start = starts.copy()
    if mode == "tail":
        first_start = starts + lengths - first_len
    elif mode == "head+tail":
        head = min(head_tokens, budget)
        first_len = np.where(long, head, lengths)
        second_len = np.where(long, budget - head, 0)
        second_start = starts + lengths - second_len
    new_lengths = first_len + second_len + 2
    offsets = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    flat = np.empty(int(offsets[-1]), dtype=np.int32)
    flat[offsets[:-1]] = cls_id
    flat[offsets[1:] - 1] = sep_id
    gather(full.flat, first_start, first_len, flat, offsets[:-1] + 1)
    gather(full.flat, second_start, second_len, flat, offsets[:-1] + 1 + first_len)
    return TokenizedTexts(flat, offsets, np.asarray(full.full_lengths, dtype=np.int64))


ARRAYS = ("flat", "offsets", "full_lengths")


def entry_path(cache_dir: Path, tokenizer, texts_key: str, max_length: int, truncation: str, head_tokens: int) -> Path:
    mode_key = f"{truncation}{head_tokens}" if truncation == "head+tail" else truncation
    length = max_length if truncation != "none" else 0
    return Path(cache_dir) / "tokens" / f"{tokenizer_fingerprint(tokenizer)}-{length}-{mode_key.replace('+', '_')}-{texts_key}"


def load_entry(path: Path) -> TokenizedTexts | None:
    """A cache entry, memory-mapped; None when there is none (or it is damaged: then it is redone)."""
    if not path.is_dir():
        return None
    try:
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        if len(arrays["offsets"]) != len(arrays["full_lengths"]) + 1 or arrays["offsets"][-1] != len(arrays["flat"]):
            raise ValueError("inconsistent arrays")
        return TokenizedTexts(arrays["flat"], arrays["offsets"], arrays["full_lengths"])
    except (OSError, ValueError, IndexError) as err:  # damaged by hand or by a full disk elsewhere
        log.warning("%s: unreadable cache entry (%s); tokenizing again", path, type(err).__name__)
        return None


def save_entry(path: Path, tokens: TokenizedTexts) -> TokenizedTexts:
    """Written whole or not at all (a folder renamed into place); returned memory-mapped."""
    with atomic_dir(path) as folder:
        for name in ARRAYS:
            np.save(folder / f"{name}.npy", np.asarray(getattr(tokens, name)))
    return load_entry(path) or tokens


def cached(tokenizer, texts: list[str], cache_dir: Path, max_length: int = 0, truncation: str = "none",
           head_tokens: int = 128) -> TokenizedTexts | None:
    """The cache's entry for these texts and settings, memory-mapped, or None: nothing is tokenized."""
    return load_entry(entry_path(cache_dir, tokenizer, texts_hash(texts), max_length, truncation, head_tokens))


def tokenize(
    tokenizer,
    texts: list[str],
    max_length: int = 0,
    truncation: str = "none",
    head_tokens: int = 128,
    cache_dir: Path | None = None,
) -> TokenizedTexts:
    """Token ids for `texts`; `truncation="none"` keeps whole texts without special tokens (LM corpus).
    With `cache_dir`, the untruncated ids are cached once per text list and every truncation is cut
    from them (and cached too); entries come back memory-mapped."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if truncation != "none" and (tokenizer.cls_token_id is None or tokenizer.sep_token_id is None):
        raise ValueError("the tokenizer has no [CLS]/[SEP] tokens")

    def view(full: TokenizedTexts) -> TokenizedTexts:
        return full if truncation == "none" else cut(full, max_length, truncation, head_tokens, tokenizer.cls_token_id, tokenizer.sep_token_id)

    if cache_dir is None:
        return view(_encode(tokenizer, texts))
    key = texts_hash(texts)
    path = entry_path(cache_dir, tokenizer, key, max_length, truncation, head_tokens)
    found = load_entry(path)
    if found is not None:
        return found
    full_path = entry_path(cache_dir, tokenizer, key, 0, "none", head_tokens)
    full = load_entry(full_path) if full_path != path else None
    if full is None:
        full = save_entry(full_path, _encode(tokenizer, texts))
    return full if truncation == "none" else save_entry(path, view(full))
