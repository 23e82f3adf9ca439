"""TF-IDF vectorizers fitted on a large corpus in chunks, across worker processes, in bounded memory.

sklearn's `TfidfVectorizer.fit_transform` runs its analyzer and a per-n-gram Python counting loop in
one process and keeps every non-zero of every n-gram (kept or not) as a Python list entry before
pruning to `max_features`: 312,735 texts (2018 size) peaked at 5.4 GB. Here each chunk of texts is
analysed by CountVectorizer's own analyzer in a worker (spawned: a fresh interpreter importing this
light module only) and counted with pandas' hash table; the chunks' vocabularies are merged into
corpus-wide term ids and the counted chunks wait on disk; the kept columns are chosen by sklearn's
rule (min_df / max_df on document frequency, then the `max_features` terms of highest total count);
and each chunk is weighted by sklearn's own `TfidfTransformer` with the corpus's IDF, straight into
the result's arrays. A row's weights depend only on its own counts and the IDF, so the chunked
result is bit for bit what the fitted vectorizer's `transform` gives on the same texts: the
computation `predict` repeats (tests/test_tfidf.py). At 2018 size the whole baseline (5 folds)
peaks at 2.5 GB (BENCHMARKS.md).

The one difference from sklearn's own fit: terms tied on total count at the `max_features` cut are
kept in alphabetical order here (sklearn keeps whichever its unstable sort puts first), so the
vocabulary does not depend on the chunking or the number of workers.
"""
from __future__ import annotations

import ctypes
import itertools
import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack, load_npz, save_npz

# texts a worker counts per job: big enough that a job's transfer and merge are cheap next to its
# counting and that words repeat within it (char_wb n-grams are cut once per distinct word of a
# chunk: 170 µs a comment at 10,000, 260 at 5,000), small enough that counting one adds about 0.3 GB to a worker
CHUNK_TEXTS = 10_000
# the TfidfVectorizer settings that only weight counts (TfidfTransformer's); the others shape the analyzer
WEIGHTING_PARAMS = ("norm", "use_idf", "smooth_idf", "sublinear_tf")
# the settings that choose the kept columns; applied to the whole corpus here, never per chunk
PRUNING_PARAMS = ("min_df", "max_df", "max_features")

log = logging.getLogger("kagglebert")


def _sparse_counts(n_rows: int, lengths: np.ndarray, items: np.ndarray) -> tuple[list, csr_matrix]:
    """(distinct items, counts): row r holds the next `lengths[r]` of `items`, counted with pandas'
    hash table and scipy's duplicate summing; columns in the order items were first seen."""
    import pandas as pd

    codes, distinct = pd.factorize(items)
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), lengths)
    x = csr_matrix((np.ones(len(codes), dtype=np.int32), (rows, codes.astype(np.int32))), shape=(n_rows, len(distinct)))
    x.sum_duplicates()  # one entry per (row, item), its count; columns ascending in each row
    return distinct.tolist(), x


def _flat(per_row: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, items) of a list of lists, the items as an object array (pandas would turn a list
    of str into fixed-width unicode)."""
    lengths = np.fromiter(map(len, per_row), dtype=np.int64, count=len(per_row))
    return lengths, np.fromiter(itertools.chain.from_iterable(per_row), dtype=object, count=int(lengths.sum()))


def count_chunk(analyzer_params: dict, texts: list[str]) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """(terms, indptr, indices, counts) of one chunk's term counts, every term kept, columns in the
    order terms were first seen. The analyzer is CountVectorizer's own; the counting is pandas'
    hash table and scipy's duplicate summing, not CountVectorizer's per-n-gram Python loop (a
    third of the time). Top-level and light to import: it runs in a worker process.

    char_wb n-grams never cross a word (sklearn pads each whitespace-separated word of the
    preprocessed text with a space and cuts it alone), so a text's counts are its word counts times
    each distinct word's n-gram counts, one sparse product: the n-grams are cut once per distinct
    word of the chunk instead of once per word in every text (36,000 words for 5,000 comments'
    900,000), by the analyzer of the same vectorizer with its preprocessing (already applied) off.
    The same counts; counting at 2018 size took 57-58 s instead of 116-121 s (BENCHMARKS.md)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(**analyzer_params)
    if analyzer_params.get("analyzer") == "char_wb" and analyzer_params.get("preprocessor") is None:
        decode, preprocess = vectorizer.decode, vectorizer.build_preprocessor()  # the analyzer's own first two steps
        word_lengths, words = _flat([preprocess(decode(text)).split() for text in texts])
        distinct_words, text_words = _sparse_counts(len(texts), word_lengths, words)
        del words
        # the words are decoded, preprocessed str: cut as they are (preprocessing twice is not always a no-op)
        cut = CountVectorizer(**dict(analyzer_params, input="content", lowercase=False, strip_accents=None)).build_analyzer()
        terms, word_terms = _sparse_counts(len(distinct_words), *_flat([cut(word) for word in distinct_words]))
        x = (text_words @ word_terms).tocsr()
        x.sort_indices()
    else:
        analyze = vectorizer.build_analyzer()
        terms, x = _sparse_counts(len(texts), *_flat([analyze(text) for text in texts]))
    counts = x.data.astype(np.uint16 if x.data.max(initial=0) <= np.iinfo(np.uint16).max else np.int32)  # 2 bytes a non-zero held in the parent
    return terms, x.indptr.astype(np.int64), x.indices.astype(np.int32), counts


class _Merged:
    """One vectorizer's chunks with their column indices turned into corpus-wide term ids, kept on disk
    in `folder` until weighted (at 2018 size they are 1.4 GB, which the parent would otherwise hold
    beside the workers' own), and each term id's total count and document frequency."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.term_id: dict[str, int] = {}
        self.total, self.docs = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        self.n_chunks = 0

    def add(self, counted: tuple) -> None:
        terms, indptr, indices, counts = counted
        term_id = self.term_id
        # setdefault reads len() before inserting: a new term gets the next id
        local_to_global = np.fromiter((term_id.setdefault(t, len(term_id)) for t in terms), dtype=np.int32, count=len(terms))
        ids = local_to_global[indices]
        n_terms = len(term_id)
        if n_terms > len(self.total):  # grown by half again: amortised copies
            grown = max(n_terms, len(self.total) * 3 // 2)
            self.total = np.concatenate([self.total, np.zeros(grown - len(self.total))])
            self.docs = np.concatenate([self.docs, np.zeros(grown - len(self.docs), dtype=np.int64)])
        self.total[:n_terms] += np.bincount(ids, weights=counts, minlength=n_terms)
        self.docs[:n_terms] += np.bincount(ids, minlength=n_terms)
        for key, array in (("indptr", indptr), ("ids", ids), ("counts", counts)):
            np.save(self.folder / f"{self.name}-{self.n_chunks}-{key}.npy", array)
        self.n_chunks += 1

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(total count, document frequency) of every term id."""
        return self.total[: len(self.term_id)], self.docs[: len(self.term_id)]

    def path(self, c: int, key: str) -> Path:
        return self.folder / f"{self.name}-{c}-{key}.npy"

    def ids(self, c: int) -> np.ndarray:
        """Chunk `c`'s term ids, memory-mapped (read, not held)."""
        return np.load(self.path(c, "ids"), mmap_mode="r")

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, term ids, counts) of chunk `c`, read back once: its files are deleted."""
        arrays = tuple(np.load(self.path(c, key)) for key in ("indptr", "ids", "counts"))
        for key in ("indptr", "ids", "counts"):
            self.path(c, key).unlink()
        return arrays


def kept_terms(terms: list[str], total: np.ndarray, docs: np.ndarray, n_docs: int, min_df, max_df, max_features) -> np.ndarray:
    """Ids of the kept terms, by sklearn's rule: document frequency within [min_df, max_df] (a float
    is a share of the documents), then the `max_features` of highest total count; ties at the cut
    go alphabetically. Empty when nothing passes."""
    low = min_df if isinstance(min_df, (int, np.integer)) else min_df * n_docs
    high = max_df if isinstance(max_df, (int, np.integer)) else max_df * n_docs
    candidates = np.flatnonzero((docs >= low) & (docs <= high))
    if max_features is None or len(candidates) <= max_features:
        return candidates
    cut = np.sort(total[candidates])[::-1][max_features - 1]  # the count of the last term kept
    above = candidates[total[candidates] > cut]
    tied = sorted(candidates[total[candidates] == cut], key=terms.__getitem__)
    return np.concatenate([above, np.array(tied[: max_features - len(above)], dtype=above.dtype)])


def idf_of(docs: np.ndarray, n_docs: int, smooth_idf: bool, dtype) -> np.ndarray:
    """TfidfTransformer.fit's IDF from document frequencies: ln((1 + n) / (1 + df)) + 1 when
    smoothed, ln(n / df) + 1 otherwise (sklearn's documented formula; tests check it against sklearn's fit)."""
    smooth = float(smooth_idf)
    return (np.log((n_docs + smooth) / (docs.astype(np.float64) + smooth)) + 1.0).astype(dtype)


def _select(chunk: tuple, column_of: np.ndarray, n_columns: int, dtype) -> csr_matrix:
    """A chunk's counts on the kept columns only (`column_of[term id]`, -1 when dropped), rows'
    columns ascending like CountVectorizer.transform's."""
    indptr, ids, counts = chunk
    columns = column_of[ids]
    keep = columns >= 0
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
    kept_indptr = np.zeros(len(indptr), dtype=np.int32)  # int32 like the columns: scipy would copy both to int64
    np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=kept_indptr[1:])
    x = csr_matrix((counts[keep].astype(dtype), columns[keep], kept_indptr), shape=(len(indptr) - 1, n_columns))
    x.sort_indices()  # the order within a row is the order of the row's sums in normalize: as transform's
    return x


def fit_tfidf(vectorizers: list, parts: list[list[str]], workers: int = 1, progress=None):
    """(vectorizers, matrices): each TfidfVectorizer fitted on the texts of all `parts` (its vocabulary_
    and idf_ set, ready to `transform`), and for each part the CSR matrix of its rows' TF-IDF, the
    vectorizers' columns side by side (the column order of `core.linear.tfidf_transform`). Each part
    gets arrays of its own (a scipy matrix built on a slice of a larger array copies it). `workers`
    processes count the chunks (1: in this process); `progress(n)` is called with the number of
    texts each finished job covered. The counted chunks wait in a temporary folder (about 7 bytes
    a non-zero before pruning: 1.4 GB at 2018 size), deleted on return."""
    for vectorizer in vectorizers:  # settings this fit does not apply: refused, not silently ignored
        p = vectorizer.get_params()
        if p["binary"] or p["vocabulary"] is not None:
            raise ValueError(f"fit_tfidf: binary={p['binary']!r}, vocabulary={'given' if p['vocabulary'] is not None else None}: "
                             "counts are never capped at 1 here, and the vocabulary is always learnt")
    with tempfile.TemporaryDirectory(prefix="kagglebert-tfidf-") as folder:
        return _fit_tfidf(Path(folder), vectorizers, parts, workers, progress)


def _fit_tfidf(folder: Path, vectorizers: list, parts: list[list[str]], workers: int, progress):
    from sklearn.feature_extraction.text import TfidfTransformer

    texts = [text for part in parts for text in part]
    bounds = np.cumsum([0] + [len(part) for part in parts]).tolist()
    # (start, stop, part) of each chunk; no chunk straddles two parts
    spans = [(start, min(start + CHUNK_TEXTS, end), k) for k, (first, end) in enumerate(zip(bounds, bounds[1:]))
             for start in range(first, end, CHUNK_TEXTS)] or [(0, 0, 0)]
    merged = [_Merged(folder, f"v{v}") for v in range(len(vectorizers))]
    analyzer_params = []
    for vectorizer in vectorizers:
        params = vectorizer.get_params()
        analyzer_params.append({k: v for k, v in params.items() if k not in WEIGHTING_PARAMS + PRUNING_PARAMS + ("dtype",)})
    jobs = [(v, span) for span in spans for v in range(len(vectorizers))]  # chunk by chunk: both vectorizers advance together

    def collect(results) -> None:
        for (v, (start, stop, _)), counted in zip(jobs, results):
            merged[v].add(counted)
            if progress is not None:
                progress(stop - start)

    def in_order(futures: list):
        for i in range(len(futures)):
            result = futures[i].result()
            futures[i] = None  # a finished future holds its result: drop it once merged
            yield result

    began = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(count_chunk, analyzer_params[v], texts[start:stop]) for v, (start, stop, _) in jobs]
            collect(in_order(futures))  # in submission order: term ids do not depend on timing
    else:
        collect(count_chunk(analyzer_params[v], texts[start:stop]) for v, (start, stop, _) in jobs)
    log.info("tfidf: counted %d texts in %d chunks with %d worker(s): %s distinct terms, %.0f s", len(texts), len(spans), workers,
             " + ".join(f"{len(m.term_id):,}" for m in merged), time.perf_counter() - began)
    began = time.perf_counter()
    n_docs = len(texts)
    transformers, columns_of = [], []
    for vectorizer, merged_v in zip(vectorizers, merged):
        terms = list(merged_v.term_id)  # id order
        total, docs = merged_v.frequencies()
        p = vectorizer.get_params()
        kept = kept_terms(terms, total, docs, n_docs, p["min_df"], p["max_df"], p["max_features"])
        if len(kept) == 0 and p["min_df"] != 1:  # min_df=2 on a handful of texts can leave no term at all
            vectorizer.set_params(min_df=1)
            kept = kept_terms(terms, total, docs, n_docs, 1, p["max_df"], p["max_features"])
        if len(kept) == 0:
            raise ValueError("empty vocabulary: no text has a term the TF-IDF vectorizer counts")
        kept = kept[np.argsort(np.array([terms[i] for i in kept], dtype=object), kind="stable")]  # columns alphabetical, as sklearn's
        column_of = np.full(len(terms), -1, dtype=np.int32)
        column_of[kept] = np.arange(len(kept), dtype=np.int32)
        vectorizer.vocabulary_ = {terms[i]: column for column, i in enumerate(kept)}
        if p["use_idf"]:
            vectorizer.idf_ = idf_of(docs[kept], n_docs, p["smooth_idf"], p["dtype"])
        transformer = TfidfTransformer(**{k: p[k] for k in WEIGHTING_PARAMS})
        if p["use_idf"]:
            transformer.idf_ = vectorizer.idf_
        transformers.append(transformer)
        columns_of.append(column_of)
        merged_v.term_id = {}  # the corpus-wide vocabulary is no longer needed; the chunks are
        del terms
    release_freed_memory()

    # chunk by chunk: each vectorizer's kept counts, read back from disk, weighted, side by side,
    # straight into the result's arrays (allocated once; each chunk's place counted first), the freed
    # memory handed back after each. Threads: numpy and scipy's sparse routines release the GIL for most
    # of the work
    chunk_nnz = [sum(int(np.count_nonzero(columns_of[v][m.ids(c)] >= 0)) for v, m in enumerate(merged)) for c in range(len(spans))]
    n_columns = sum(len(v.vocabulary_) for v in vectorizers)
    count_dtype = vectorizers[0].get_params()["dtype"]
    # the dtype transform() returns with an IDF set from outside: the counts' (float32) in recent
    # scikit-learn, float64 in older ones (1.2 multiplies by a float64 diagonal); predict gets the same
    dtype = np.result_type(*(t.transform(csr_matrix((1, len(v.vocabulary_)), dtype=count_dtype)).dtype
                             for t, v in zip(transformers, vectorizers)))
    outputs = []  # per part: (data, indices, indptr), allocated once
    for k in range(len(parts)):
        nnz = sum(n for n, span in zip(chunk_nnz, spans) if span[2] == k)
        index_dtype = np.int32 if max(nnz, n_columns) < np.iinfo(np.int32).max else np.int64  # one dtype: scipy copies mixed ones
        outputs.append((np.empty(nnz, dtype=dtype), np.empty(nnz, dtype=index_dtype), np.zeros(len(parts[k]) + 1, dtype=index_dtype)))
    at = []  # where each chunk's non-zeros go in its part's arrays
    for k in range(len(parts)):
        sizes = [n for n, span in zip(chunk_nnz, spans) if span[2] == k]
        at += np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64).tolist()[:-1]

    def weigh(c: int) -> None:
        (start, stop, k), blocks = spans[c], []
        for v, (vectorizer, merged_v) in enumerate(zip(vectorizers, merged)):
            counts = _select(merged_v.chunk(c), columns_of[v], len(vectorizer.vocabulary_), count_dtype)
            blocks.append(transformers[v].transform(counts, copy=False))
        part = hstack(blocks, format="csr")
        data, indices, indptr = outputs[k]
        first_row = start - bounds[k]
        data[at[c] : at[c] + part.nnz], indices[at[c] : at[c] + part.nnz] = part.data, part.indices
        indptr[first_row + 1 : first_row + (stop - start) + 1] = part.indptr[1:] + at[c]
        del blocks, part, counts
        release_freed_memory()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(weigh, range(len(spans))))  # list(): a chunk's exception is raised here
    matrices = []
    for k in range(len(parts)):
        x = csr_matrix(outputs[k], shape=(len(parts[k]), n_columns), copy=False)
        x.sort_indices()  # a scan when (as hstack leaves them) every row's columns already ascend
        matrices.append(x)
    log.info("tfidf: %s columns kept, %s non-zeros weighted, %.0f s", f"{n_columns:,}", f"{sum(chunk_nnz):,}", time.perf_counter() - began)
    return vectorizers, matrices


class SpilledMatrix:
    """A sparse matrix kept in a temporary folder (deleted with this object), read back whole by each
    `load()`: the baseline's TF-IDF test rows wait there while each fold's training rows are copied and
    fitted, so the two are not held at once (0.8 + 0.7 GB at 2018 size)."""

    def __init__(self, x) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="kagglebert-spill-")
        self.path = Path(self._folder.name) / "matrix.npz"
        save_npz(self.path, x, compressed=False)

    def load(self):
        return load_npz(self.path)


def release_freed_memory() -> None:
    """Hand memory freed by this process back to the system (glibc's malloc_trim; nothing elsewhere).
    The chunks' arrays (a few MB each) sit below glibc's adaptive mmap threshold, so once freed they stay
    in the heap: without this, the resident size keeps the high-water mark of the counting (measured:
    0.56 GB more for 100,000 comments) under the matrix built after it."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl)
        return None


_LIBC = _glibc()
