"""TF-IDF vectorizers fitted on a large corpus in chunks, across worker processes, with the
non-zeros held once.

sklearn's `TfidfVectorizer.fit_transform` runs its analyzer in one Python process and keeps every
non-zero of every n-gram (kept or not) as a Python list entry (8 bytes) before pruning to
`max_features`, then converts and copies: 312,735 texts (2018 size) peaked at 5.4 GB and took one
core for minutes. Here each chunk of texts is counted by a public `CountVectorizer` in a worker
(spawned: a fresh interpreter importing this light module only), the chunks' vocabularies are
merged into global term ids (int32 indices and counts, 8 bytes a non-zero), the kept columns are
chosen by sklearn's rule (min_df / max_df on document frequency, then the `max_features` terms of
highest total count), and each chunk is weighted by sklearn's own `TfidfTransformer` with the
corpus's IDF. A row's weights depend only on its own counts and the IDF, so the chunked result is
bit for bit what the fitted vectorizer's `transform` gives on the same texts: the computation
`predict` repeats (tests/test_tfidf.py).

The one difference from sklearn's own fit: terms tied on total count at the `max_features` cut are
kept in alphabetical order here (sklearn keeps whichever its unstable sort puts first), so the
vocabulary does not depend on the chunking or the number of workers.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from scipy.sparse import csr_matrix, hstack

# texts a worker counts per job: big enough that a job's transfer and merge are cheap next to its
# counting, small enough that a worker's own vocabulary stays around 100 MB
CHUNK_TEXTS = 20_000
# the TfidfVectorizer settings that only weight counts (TfidfTransformer's); the others shape the analyzer
WEIGHTING_PARAMS = ("norm", "use_idf", "smooth_idf", "sublinear_tf")
# the settings that choose the kept columns; applied to the whole corpus here, never per chunk
PRUNING_PARAMS = ("min_df", "max_df", "max_features")


def count_chunk(analyzer_params: dict, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(terms in column order, indptr, indices, counts) of one chunk's term counts, every term kept.
    Top-level and light to import: it runs in a worker process."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(**analyzer_params, min_df=1, max_df=1.0, max_features=None, dtype=np.int32)
    try:
        x = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # no term at all in the chunk (empty or punctuation-only texts)
        return [], np.zeros(len(texts) + 1, dtype=np.int64), np.empty(0, np.int32), np.empty(0, np.int32)
    # columns are in the order of get_feature_names_out (CountVectorizer sorts its vocabulary)
    return (vectorizer.get_feature_names_out().tolist(), x.indptr.astype(np.int64), x.indices.astype(np.int32),
            x.data.astype(np.int32))


class _Merged:
    """One vectorizer's chunks with their column indices turned into corpus-wide term ids."""

    def __init__(self) -> None:
        self.term_id: dict[str, int] = {}
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []

    def add(self, counted: tuple) -> None:
        terms, indptr, indices, counts = counted
        term_id = self.term_id
        # setdefault reads len() before inserting: a new term gets the next id
        local_to_global = np.fromiter((term_id.setdefault(t, len(term_id)) for t in terms), dtype=np.int32, count=len(terms))
        self.chunks.append((indptr, local_to_global[indices], counts))

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(total count, document frequency) of every term id."""
        n_terms = len(self.term_id)
        total, docs = np.zeros(n_terms, dtype=np.float64), np.zeros(n_terms, dtype=np.int64)
        for _, ids, counts in self.chunks:
            total += np.bincount(ids, weights=counts, minlength=n_terms)
            docs += np.bincount(ids, minlength=n_terms)
        return total, docs


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


def fit_tfidf(vectorizers: list, texts: list[str], workers: int = 1, progress=None):
    """(vectorizers, matrix): each TfidfVectorizer fitted on `texts` (its vocabulary_ and idf_ set, ready
    to `transform`), and the CSR matrix of their TF-IDF rows side by side (the column order of
    `core.linear.tfidf_transform`). `workers` processes count the chunks (1: in this process);
    `progress(n)` is called with the number of texts each finished job covered."""
    from sklearn.feature_extraction.text import TfidfTransformer

    spans = [(start, min(start + CHUNK_TEXTS, len(texts))) for start in range(0, len(texts), CHUNK_TEXTS)] or [(0, 0)]
    merged = [_Merged() for _ in vectorizers]
    analyzer_params = []
    for vectorizer in vectorizers:
        params = vectorizer.get_params()
        analyzer_params.append({k: v for k, v in params.items() if k not in WEIGHTING_PARAMS + PRUNING_PARAMS + ("dtype",)})
    jobs = [(v, span) for span in spans for v in range(len(vectorizers))]  # chunk by chunk: both vectorizers advance together

    def collect(results) -> None:
        for (v, (start, stop)), counted in zip(jobs, results):
            merged[v].add(counted)
            if progress is not None:
                progress(stop - start)

    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(count_chunk, analyzer_params[v], texts[start:stop]) for v, (start, stop) in jobs]
            collect(future.result() for future in futures)  # in submission order: term ids do not depend on timing
    else:
        collect(count_chunk(analyzer_params[v], texts[start:stop]) for v, (start, stop) in jobs)

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

    # chunk by chunk: each vectorizer's kept counts, weighted, side by side, into the result's arrays;
    # a chunk's full counts are freed as soon as it is weighted, so the non-zeros are held about once
    weighted = []
    for c in range(len(spans)):
        blocks = []
        for v, (vectorizer, merged_v) in enumerate(zip(vectorizers, merged)):
            counts = _select(merged_v.chunks[c], columns_of[v], len(vectorizer.vocabulary_), vectorizer.get_params()["dtype"])
            merged_v.chunks[c] = None
            blocks.append(csr_matrix(transformers[v].transform(counts, copy=False)))
        weighted.append(hstack(blocks, format="csr"))
    return vectorizers, _stack_rows(weighted)


def _stack_rows(parts: list[csr_matrix]) -> csr_matrix:
    """vstack of CSR row blocks into arrays allocated once, each block freed once copied."""
    nnz = sum(p.nnz for p in parts)
    n_rows, n_columns = sum(p.shape[0] for p in parts), parts[0].shape[1]
    data = np.empty(nnz, dtype=parts[0].dtype)
    index_dtype = np.int32 if nnz < np.iinfo(np.int32).max else np.int64  # one dtype for both: scipy copies mixed ones
    indices, indptr = np.empty(nnz, dtype=index_dtype), np.zeros(n_rows + 1, dtype=index_dtype)
    row = at = 0
    for i in range(len(parts)):
        part = parts[i]
        data[at : at + part.nnz], indices[at : at + part.nnz] = part.data, part.indices
        indptr[row + 1 : row + part.shape[0] + 1] = part.indptr[1:] + at
        row, at = row + part.shape[0], at + part.nnz
        parts[i] = None
    x = csr_matrix((data, indices, indptr), shape=(n_rows, n_columns), copy=False)
    x.sort_indices()  # a scan when (as hstack leaves them) every row's columns already ascend
    return x
