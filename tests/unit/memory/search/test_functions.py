"""The pure functions of the search module: words, BM25, fusion, top-k and vectors."""

from __future__ import annotations

import math

import pytest

from tta_dev_primitives.memory import search


def test_tokenize_is_case_insensitive_unicode_words() -> None:
    """Words are maximal runs of Unicode word characters, lower-cased."""
    assert search.tokenize("Hello, WORLD! café_au-lait 東京 42") == [
        "hello",
        "world",
        "café_au",
        "lait",
        "東京",
        "42",
    ]


def test_string_leaves_skip_keys_and_numbers() -> None:
    """Only string values are leaves, depth first in document order."""
    value = {"title": "A", "n": 1, "tags": ["b", {"deep": "c"}, 2], "flag": True}
    assert search.string_leaves(value) == ["A", "b", "c"]


def test_bm25_prefers_rarer_terms_and_shorter_docs() -> None:
    """idf falls with document frequency; the same tf scores more in a shorter document."""
    assert search.idf(1, 100) > search.idf(50, 100) > 0
    q = search.prepare_query("redis")
    assert q is not None
    short = search.make_document("redis rocks")
    long = search.make_document("redis " + "filler " * 20)
    df = {"redis": 2}
    assert search.keyword_score(q, short, df, 2, 12) > search.keyword_score(q, long, df, 2, 12)


def test_prepare_query_blank_is_none() -> None:
    """Blank queries prepare to None; words are de-duplicated in order."""
    assert search.prepare_query("  \t") is None
    q = search.prepare_query(" Cat cat DOG ")
    assert q == search.KeywordQuery("cat cat dog", ("cat", "dog"))


def test_top_orders_best_then_newest() -> None:
    """Ties break by higher sequence number (newer write) first."""
    scored = [(1.0, 1, "a"), (2.0, 2, "b"), (1.0, 3, "c")]
    assert [k for _, _, k in search.top(scored, None)] == ["b", "c", "a"]
    assert [k for _, _, k in search.top(scored, 2)] == ["b", "c"]


def test_rrf_fuses_rankings() -> None:
    """A key ranked well in both lists beats one ranked first in only one."""
    kw = [(5.0, 1, "a"), (4.0, 2, "b")]
    sem = [(0.9, 2, "b"), (0.8, 3, "c")]
    fused = search.fuse_rrf([kw, sem], None)
    assert next(k for _, _, k in fused) == "b"
    assert fused[0][0] == pytest.approx(1 / 62 + 1 / 61)


def test_normalize_vector() -> None:
    """Vectors become unit length; zero stays zero."""
    assert search.normalize_vector([3, 4]).tolist() == pytest.approx([0.6, 0.8])
    assert search.normalize_vector([3, 4]).dtype == "float32"
    assert search.normalize_vector([0, 0]).tolist() == [0.0, 0.0]
    assert math.isclose(
        sum(x * x for x in search.normalize_vector([1, 2, 3]).tolist()), 1.0, rel_tol=1e-6
    )
    with pytest.raises(ValueError, match="NaN"):
        search.normalize_vector([1.0, float("nan")])
