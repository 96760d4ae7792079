"""Scores: BM25 and the substring bonus (keyword), cosine (semantic), calibration, recency.

Pure functions of their arguments: :mod:`.index` computes exactly these scores, vectorized,
and a backend without an index ranks candidates with :func:`rank_keyword` and
:func:`rank_semantic` directly. Ties are broken newest first, by write sequence (:func:`top`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from .filters import matches_filter
from .text import Document, KeywordQuery, Vector, has_substring

__all__ = [
    "BM25_B",
    "BM25_K1",
    "KEYWORD_SHARE_MEAN",
    "KEYWORD_SHARE_SD",
    "MIN_RELEVANT_SCORE",
    "SIMILARITY_MEAN",
    "SIMILARITY_SD",
    "SUBSTRING_BONUS",
    "Candidate",
    "CorpusStats",
    "Scored",
    "bm25",
    "cosine",
    "idf",
    "keyword_bound",
    "keyword_evidence",
    "keyword_score",
    "kth_floor",
    "merge_stats",
    "rank_keyword",
    "rank_semantic",
    "recency_weight",
    "recency_weights",
    "relevance",
    "semantic_evidence",
    "top",
]


BM25_K1 = 1.2
BM25_B = 0.75
SUBSTRING_BONUS = 1.0

# Calibration, fitted once on the development half of LoCoMo (the 50 best hits of each
# retriever for each question; docs/memory/search.md): the mean and standard deviation of a
# keyword hit's share of keyword_bound, and of a semantic hit's cosine with MiniLMEmbedder.
KEYWORD_SHARE_MEAN = 0.089
KEYWORD_SHARE_SD = 0.040
SIMILARITY_MEAN = 0.44
SIMILARITY_SD = 0.095
MIN_RELEVANT_SCORE = 0.35
"""The calibrated "relevant" line for ``search(min_score=)`` (see :func:`relevance`): evidence
0.62 standard deviations below a typical candidate's. Chosen on LoCoMo's development half so
that it costs the default search at most 0.02 of recall@10 (it costs 0.006) while the best hit
of an unrelated query falls below it."""
_K1P1 = BM25_K1 + 1.0
_F = TypeVar("_F", float, npt.NDArray[np.float64])


def idf(df: int, n_docs: int) -> float:
    """BM25 inverse document frequency (the always-positive Lucene form)."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25(tf: _F, length: _F, avgdl: float, weight: float) -> _F:
    """What one query word adds to a record's score: BM25 of its term frequency ``tf``.

    Works alike on floats and on float64 arrays (one element per record), with the same
    operations in the same order, so a vectorized index and :func:`keyword_score` agree to
    the last bit.

    Args:
        tf: Occurrences of the word in the record.
        length: The record's length in words.
        avgdl: Mean record length of the namespace.
        weight: The word's :func:`idf`.
    """
    return weight * tf * _K1P1 / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * length / avgdl))


def keyword_score(
    query: KeywordQuery,
    doc: Document,
    df: Mapping[str, int],
    n_docs: int,
    avgdl: float,
) -> float:
    """BM25 of ``doc`` for ``query`` plus the whole-query substring bonus."""
    score = 0.0
    terms = doc.terms
    length = float(doc.length)
    for term in query.terms:
        tf = terms.get(term)
        if tf:
            score += bm25(float(tf), length, avgdl, idf(df.get(term, 1), n_docs))
    if has_substring(query.text, doc.leaves):
        score += SUBSTRING_BONUS
    return score


Candidate = tuple[str, int, Document, Mapping[str, Any] | None]
"""(key, write sequence, document, metadata) of one record a backend offers for ranking."""

Scored = tuple[float, int, str]
"""(score, write sequence, key)."""


def _order(s: Scored) -> tuple[float, int]:
    return (-s[0], -s[1])


def top(scored: Iterable[Scored], limit: int | None) -> list[Scored]:
    """Best first, ties newest first (higher sequence), at most ``limit`` (None = all)."""
    if limit is None:
        return sorted(scored, key=_order)
    return heapq.nsmallest(limit, scored, key=_order)


def rank_keyword(
    query: KeywordQuery,
    candidates: Iterable[Candidate],
    df: Mapping[str, int],
    n_docs: int,
    total_length: int,
    limit: int | None,
    filter: Mapping[str, Any] | None = None,
) -> list[Scored]:
    """Rank candidates for a keyword query (the reference scorer: one record at a time).

    Args:
        query: The prepared query.
        candidates: Every record that may score above zero (a superset is fine).
        df: Number of live records of the namespace containing each query term.
        n_docs: Number of live records in the namespace.
        total_length: Sum of the lengths of those records.
        limit: Maximum number of hits (None = all).
        filter: Metadata equality filter.
    """
    avgdl = total_length / n_docs if n_docs and total_length else 1.0
    scored: list[Scored] = []
    for key, seq, doc, metadata in candidates:
        if filter and not matches_filter(metadata, filter):
            continue
        score = keyword_score(query, doc, df, n_docs, avgdl)
        if score > 0.0:
            scored.append((score, seq, key))
    return top(scored, limit)


def cosine(rows: npt.NDArray[np.float32], query: Vector) -> npt.NDArray[np.float64]:
    """Exact cosine of each unit row with the unit ``query``.

    The products of float32 numbers are exact in float64 and each row is summed the same way
    wherever it sits, so a row scores the same in any matrix (a BLAS matrix-vector product
    does not promise that: its result can depend on the row's position).
    """
    if not len(rows):
        return np.zeros(0)
    products: npt.NDArray[np.float64] = np.multiply(rows, query, dtype=np.float64)
    return np.asarray(products.sum(axis=1), dtype=np.float64)


def rank_semantic(
    query_vector: Sequence[float] | Vector,
    candidates: Iterable[Candidate],
    limit: int | None,
    filter: Mapping[str, Any] | None = None,
) -> list[Scored]:
    """Rank candidates by cosine similarity to ``query_vector`` (a unit vector)."""
    q = np.asarray(query_vector, dtype=np.float32)
    keep: list[tuple[str, int]] = []
    rows: list[Vector | Sequence[float]] = []
    for key, seq, doc, metadata in candidates:
        vector = doc.vector
        if vector is None or len(vector) != len(q):
            continue
        if filter and not matches_filter(metadata, filter):
            continue
        keep.append((key, seq))
        rows.append(vector)
    if not rows:
        return []
    scores = cosine(np.asarray(np.stack(rows), dtype=np.float32), q).tolist()
    return top(
        ((s, seq, key) for s, (key, seq) in zip(scores, keep, strict=True) if s > 0.0), limit
    )


def keyword_bound(query: KeywordQuery, df: Mapping[str, int], n_docs: int) -> float:
    """The most any record could score for ``query``: every word at its largest BM25 weight
    (``idf * (k1 + 1)``, words no record holds included) plus the substring bonus."""
    return math.fsum(idf(df.get(t, 0), n_docs) * _K1P1 for t in query.terms) + SUBSTRING_BONUS


def relevance(evidence: float) -> float:
    """A calibrated score in (0, 1) from standardized evidence: ``1 / (1 + exp(-evidence))``.

    0.5 is the evidence of a typical candidate (a hit among a retriever's 50 best on the
    calibration set), 0.73 one standard deviation above it, 0.12 two below.
    """
    if evidence < -700.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-evidence))


def keyword_evidence(score: float, bound: float) -> float:
    """A keyword hit's standardized evidence: its share of :func:`keyword_bound`, less
    ``KEYWORD_SHARE_MEAN``, over ``KEYWORD_SHARE_SD``."""
    share = score / bound if bound > 0.0 else 0.0
    return (share - KEYWORD_SHARE_MEAN) / KEYWORD_SHARE_SD


def semantic_evidence(similarity: float) -> float:
    """A semantic hit's standardized evidence: its cosine less ``SIMILARITY_MEAN``, over
    ``SIMILARITY_SD``."""
    return (similarity - SIMILARITY_MEAN) / SIMILARITY_SD


def recency_weight(age: float, half_life: float) -> float:
    """``0.5 ** (age / half_life)``: 1 for a record written now, 0.5 one half-life ago
    (a negative age, from clock skew, counts as 0)."""
    return math.pow(0.5, max(age, 0.0) / half_life)


def recency_weights(
    half_life: float | None, now: float, updated_at: Callable[[str], float | None]
) -> Callable[[str], float] | None:
    """Each key's :func:`recency_weight` for a search at ``now`` (None without a
    ``half_life``): the age is ``now`` less ``updated_at(key)``; a key without a time (None)
    counts as written now. What every backend passes as ``recency`` to
    :func:`~.fusion.rank_by_mode`."""
    if half_life is None:
        return None

    def weight(key: str) -> float:
        at = updated_at(key)
        return recency_weight(0.0 if at is None else now - at, half_life)

    return weight


class CorpusStats(NamedTuple):
    """The BM25 statistics of a set of records for one query's words.

    A search over several namespaces (``search(..., subtree=True)``) sums each namespace's
    statistics (:func:`merge_stats`) and ranks every namespace's records with the union's,
    so a record scores what it would if all those records were one namespace.

    Attributes:
        n_docs: Live records.
        total_length: Sum of their lengths in words.
        df: For each query word, how many of them hold it.
    """

    n_docs: int
    total_length: int
    df: Mapping[str, int]


def merge_stats(parts: Iterable[CorpusStats]) -> CorpusStats:
    """The statistics of the union of disjoint record sets (integer sums: exact, any order)."""
    n_docs = total = 0
    df: dict[str, int] = {}
    for part in parts:
        n_docs += part.n_docs
        total += part.total_length
        for term, count in part.df.items():
            df[term] = df.get(term, 0) + count
    return CorpusStats(n_docs, total, df)


def kth_floor(scores: npt.NDArray[Any], k: int) -> float:
    """A value at most the ``k``-th largest of ``scores`` (more than ``k`` of them), close
    to it, in one pass instead of a partition.

    The maxima of ``k`` disjoint chunks are ``k`` of the scores, so the least of them is at
    most the ``k``-th largest. When the top is crowded into a few chunks that bound is loose
    (many rows pass it): then the rows that pass are partitioned, which is exact and still
    cheaper than partitioning every score.
    """
    size = len(scores) // k
    bound = float(scores[: size * k].reshape(k, size).max(axis=1).min())
    passing = scores[scores >= bound]
    if len(passing) > max(1024, 64 * k):
        cut = len(passing) - k
        bound = float(np.partition(passing, cut)[cut])
    return bound
