"""The TF-IDF baseline's vectorizers fitted in chunks across processes (core/tfidf): the matrix is
bit for bit what the fitted vectorizers' `transform` gives (what predict computes on new texts), the
result does not depend on the chunking or the worker count, and the vocabulary and IDF are sklearn's
own fit's except for the order of terms tied at the max_features cut."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from kagglebert.core import tfidf
from kagglebert.core.linear import tfidf_transform
from kagglebert.stages.baselines import tfidf_matrices, tfidf_vectorizers

from conftest import read_raw_csv


@pytest.fixture(scope="module")
def texts(sample_dir) -> list[str]:
    return read_raw_csv(sample_dir / "train.csv")["comment_text"].tolist()[:400]


def same_matrix(got, want) -> None:
    want = want.tocsr()
    want.sort_indices()  # the order of columns inside a row is not the matrix: older scipy/sklearn leave it unsorted
    assert got.shape == want.shape and got.dtype == want.dtype
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


def test_tfidf_matrices_are_what_transform_computes(texts, monkeypatch):
    """Chunks of 64 texts counted by 2 spawned workers, train and test rows in matrices of their own:
    exactly the matrices `tfidf_transform` (what predict runs on new texts) gives, bit for bit."""
    monkeypatch.setattr(tfidf, "CHUNK_TEXTS", 64)
    monkeypatch.setattr("kagglebert.stages.baselines.os.cpu_count", lambda: 2)
    train, test = texts[:250], texts[250:]
    x_train, x_test, vectorizers = tfidf_matrices(train, test)
    assert x_train.shape[1] == sum(len(v.vocabulary_) for v in vectorizers)
    for got, texts_ in ((x_train, train), (x_test, test)):
        same_matrix(got, tfidf_transform(vectorizers, texts_))


def test_the_result_does_not_depend_on_chunks_or_workers(texts, monkeypatch):
    results = []
    for chunk, workers in ((37, 1), (1000, 1), (90, 2)):
        monkeypatch.setattr(tfidf, "CHUNK_TEXTS", chunk)
        vectorizers, (x,) = tfidf.fit_tfidf(tfidf_vectorizers(), [texts], workers)
        results.append(([v.vocabulary_ for v in vectorizers], [v.idf_ for v in vectorizers], x))
    for vocabularies, idfs, x in results[1:]:
        assert vocabularies == results[0][0]
        assert all(np.array_equal(a, b) for a, b in zip(idfs, results[0][1]))
        same_matrix(x, results[0][2])


@pytest.mark.parametrize("smooth_idf", [True, False])
def test_without_a_binding_max_features_the_fit_is_sklearns(texts, monkeypatch, smooth_idf):
    monkeypatch.setattr(tfidf, "CHUNK_TEXTS", 50)
    settings = dict(analyzer="char_wb", ngram_range=(2, 4), min_df=2, max_df=0.9, sublinear_tf=True, smooth_idf=smooth_idf,
                    strip_accents="unicode", dtype=np.float32)
    (ours,), (x,) = tfidf.fit_tfidf([TfidfVectorizer(**settings)], [texts])
    reference = TfidfVectorizer(**settings)
    want = reference.fit_transform(texts)
    assert ours.vocabulary_ == reference.vocabulary_
    np.testing.assert_allclose(ours.idf_, reference.idf_, rtol=1e-6)  # the same formula; float32 rounding (and, in older scikit-learn, the dtype) may differ
    assert x.shape == want.shape
    np.testing.assert_allclose(x.toarray(), want.toarray(), rtol=1e-5, atol=1e-7)


def test_a_binding_max_features_differs_from_sklearn_only_in_ties_at_the_cut(texts):
    settings = dict(analyzer="word", ngram_range=(1, 2), max_features=800, min_df=1, dtype=np.float32)
    (ours,), _ = tfidf.fit_tfidf([TfidfVectorizer(**settings)], [texts])
    reference = TfidfVectorizer(**settings).fit(texts)
    counts = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), use_idf=False, norm=None).fit(texts)
    total = np.asarray(counts.transform(texts).sum(axis=0)).ravel()
    count_of = {term: total[column] for term, column in counts.vocabulary_.items()}
    cut = min(count_of[t] for t in ours.vocabulary_)
    assert len(ours.vocabulary_) == 800
    left_out = set(count_of) - set(ours.vocabulary_)
    assert all(count_of[t] <= cut for t in left_out)
    assert any(count_of[t] == cut for t in left_out)  # the sample has ties at the cut: the rule below is exercised
    differing = set(ours.vocabulary_) ^ set(reference.vocabulary_)
    assert {count_of[t] for t in differing} <= {cut}
    tied = sorted(t for t, c in count_of.items() if c == cut)
    kept_tied = sorted(t for t in ours.vocabulary_ if count_of[t] == cut)
    assert kept_tied == tied[: len(kept_tied)]  # alphabetical among the tied


def test_a_corpus_too_small_for_min_df_falls_back_to_min_df_1():
    (word,), (x, y) = tfidf.fit_tfidf([TfidfVectorizer(min_df=2)], [["alpha beta"], ["gamma delta", ""]])
    assert word.get_params()["min_df"] == 1 and sorted(word.vocabulary_) == ["alpha", "beta", "delta", "gamma"]
    same_matrix(x, word.transform(["alpha beta"]))
    same_matrix(y, word.transform(["gamma delta", ""]))


# whitespace runs, tabs, a no-break space (NFKD turns it into a space), accents, a ligature, a dotted
# capital I (lower() adds a combining dot), mathematical and Fraktur letters (NFKD makes capitals of
# them, so lowering twice is not lowering once), repeated n-grams inside a word, empty and blank texts
AWKWARD_TEXTS = ["", "   ", "Ça  va\u00a0très\tbien", "İstanbul ﬁne ﬁne", "𝐀BC ℌello", "aa aaa  aaaa", "x", "naïve\n\ncafé NAÏVE"]


def shouting(text: str) -> str:  # a custom preprocessor: char_wb's per-word counting does not apply
    return text.upper() + " !"


@pytest.mark.parametrize("settings, as_bytes, per_word", [
    (dict(analyzer="char_wb", ngram_range=(2, 5), strip_accents="unicode"), False, True),
    (dict(analyzer="char_wb", ngram_range=(1, 3), lowercase=False), False, True),
    (dict(analyzer="char_wb", ngram_range=(2, 4), strip_accents="unicode"), True, True),  # bytes: decoded first
    (dict(analyzer="char_wb", ngram_range=(2, 4), preprocessor=shouting), False, False),
    (dict(analyzer="char", ngram_range=(2, 4), strip_accents="unicode"), False, False),
    (dict(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", strip_accents="unicode"), False, False),
], ids=["char_wb", "char_wb-cased", "char_wb-bytes", "char_wb-own-preprocessor", "char", "word"])
def test_a_chunks_counts_are_countvectorizers(texts, monkeypatch, settings, as_bytes, per_word):
    """count_chunk against CountVectorizer itself, term by term: char_wb n-grams are cut once per
    distinct word and multiplied out (two countings: texts × words, words × n-grams), which must give
    the counts of cutting every text; other analyzers count each text's n-grams (one counting)."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import CountVectorizer

    countings = []
    real = tfidf._sparse_counts
    monkeypatch.setattr(tfidf, "_sparse_counts", lambda *a: countings.append(1) or real(*a))
    chunk = texts[:300] + AWKWARD_TEXTS
    if as_bytes:
        chunk = [text.encode("utf-8") for text in chunk]
    terms, indptr, indices, counts = tfidf.count_chunk(settings, chunk)
    assert len(countings) == (2 if per_word else 1)
    reference = CountVectorizer(**settings).fit(chunk)
    assert sorted(terms) == sorted(reference.vocabulary_)
    got = csr_matrix((counts.astype(np.int64), indices, indptr), shape=(len(chunk), len(terms)))
    want = reference.transform(chunk)[:, [reference.vocabulary_[t] for t in terms]]
    assert (got != want).nnz == 0 and got.nnz == want.nnz


@pytest.mark.parametrize("setting", [dict(binary=True), dict(vocabulary=["ab", "bc"])])
def test_settings_the_chunked_fit_does_not_apply_are_refused(texts, setting):
    with pytest.raises(ValueError, match="counts are never capped at 1 here, and the vocabulary is always learnt"):
        tfidf.fit_tfidf([TfidfVectorizer(analyzer="char_wb", **setting)], [texts[:20]])
