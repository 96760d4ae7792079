"""Search scoring: the one definition of how records rank, shared by every backend.

These are pure functions. :mod:`tta_dev_primitives.memory.index` holds the stateful,
vectorized index that answers searches with exactly these scores; a backend without an index
may rank candidate records with :func:`rank_keyword` and :func:`rank_semantic` directly.

Ranking rules:

* Text is compared case-insensitively by Unicode case folding (:meth:`str.casefold`), so
  ``"STRASSE"`` finds ``"Straße"`` and a capital sigma finds a final one.
* Keyword mode scores BM25 (k1=1.2, b=0.75, :func:`bm25` for each query word) over the words
  of the value's string leaves (never dict key names, never numbers), plus
  ``SUBSTRING_BONUS`` when one string leaf contains the whole query as a substring
  (:func:`has_substring`), so a user typing ``"pyth"`` finds ``"python"``. Only hits with a
  score above zero are returned.
* Semantic mode scores the cosine of unit vectors (:func:`cosine`, hits above zero). Vectors
  are stored as float32 (:func:`normalize_vector`); scores are exact sums of their products.
* Hybrid mode takes each retriever's best :func:`fusion_depth` hits and fuses them
  (:func:`fuse_convex`, the default: a convex combination of min-max normalized scores with
  ``semantic_weight`` on the semantic side; or :func:`fuse_rrf`, reciprocal rank fusion).
* ``filter`` matches metadata by JSON equality (:func:`matches_filter`;
  :func:`filter_key` is the same equality as a hashable key, for indexes).
* Ties are broken newest first, by write sequence number; hits are best first (:func:`top`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
from opentelemetry.trace import Tracer

from ..observability import attributes as A

__all__ = [
    "BM25_B",
    "BM25_K1",
    "DEFAULT_SEMANTIC_WEIGHT",
    "RRF_K",
    "SUBSTRING_BONUS",
    "Candidate",
    "Document",
    "Fusion",
    "KeywordQuery",
    "Scored",
    "SearchMode",
    "Vector",
    "bm25",
    "cosine",
    "filter_key",
    "fuse",
    "fuse_convex",
    "fuse_rrf",
    "fusion_depth",
    "has_substring",
    "idf",
    "keyword_bound",
    "keyword_confidence",
    "keyword_score",
    "make_document",
    "matches_filter",
    "normalize_vector",
    "prepare_query",
    "rank_by_mode",
    "rank_keyword",
    "rank_semantic",
    "string_leaves",
    "tokenize",
    "top",
    "validate_fusion",
    "validate_semantic_weight",
]

SearchMode = Literal["keyword", "semantic", "hybrid"]
Fusion = Literal["convex", "rrf"]

BM25_K1 = 1.2
BM25_B = 0.75
SUBSTRING_BONUS = 1.0
RRF_K = 60
DEFAULT_SEMANTIC_WEIGHT = 0.5

Vector = npt.NDArray[np.float32]
"""A unit embedding, float32 (what :func:`normalize_vector` returns)."""

_WORD = re.compile(r"\w+")
_K1P1 = BM25_K1 + 1.0
_F = TypeVar("_F", float, npt.NDArray[np.float64])


def tokenize(text: str) -> list[str]:
    """Case-folded words (maximal runs of Unicode word characters) of ``text``."""
    return _WORD.findall(text.casefold())


def string_leaves(value: Any) -> list[str]:
    """The string leaves of a JSON value, depth first: dict values and list items only."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


class Document(NamedTuple):
    """What search knows of one record (a named tuple: one is built per record indexed).

    Attributes:
        terms: Term frequency of each word.
        length: Number of words (the BM25 document length).
        leaves: The case-folded string leaves, for whole-query substring matching.
        vector: Unit float32 embedding, when an embedder was configured.
    """

    terms: Mapping[str, int]
    length: int
    leaves: tuple[str, ...]
    vector: Vector | Sequence[float] | None = None


try:  # the C loop behind collections.Counter, without Counter's Python-level overhead
    from _collections import _count_elements  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - other interpreters

    def _count_elements(mapping: dict[str, int], words: Iterable[str]) -> None:
        for word in words:
            mapping[word] = mapping.get(word, 0) + 1


def _counts(words: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    _count_elements(counts, words)
    return counts


def make_document(value: Any, vector: Sequence[float] | Vector | None = None) -> Document:
    """Build the :class:`Document` of a JSON value (and its optional embedding)."""
    vec = None if vector is None else normalize_vector(vector)
    if type(value) is str:  # the common case, without the walk
        leaf = value.casefold()
        words = _WORD.findall(leaf)
        return Document(_counts(words), len(words), (leaf,), vec)
    leaves = tuple(leaf.casefold() for leaf in string_leaves(value))
    all_words: list[str] = []
    findall = _WORD.findall
    for leaf in leaves:
        all_words += findall(leaf)
    return Document(_counts(all_words), len(all_words), leaves, vec)


@dataclass(frozen=True, slots=True)
class KeywordQuery:
    """A prepared keyword query: the stripped case-folded text and its unique words in order."""

    text: str
    terms: tuple[str, ...]


def prepare_query(query: str) -> KeywordQuery | None:
    """Prepare ``query``; None for an empty or whitespace-only query (which matches nothing)."""
    text = query.strip().casefold()
    if not text:
        return None
    return KeywordQuery(text, tuple(dict.fromkeys(_WORD.findall(text))))


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


def has_substring(text: str, leaves: Iterable[str]) -> bool:
    """The substring rule: one case-folded leaf contains the whole case-folded query."""
    return any(text in leaf for leaf in leaves)


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


def matches_filter(metadata: Mapping[str, Any] | None, filter: Mapping[str, Any] | None) -> bool:
    """True when every ``filter`` field equals the metadata's field (JSON equality)."""
    if not filter:
        return True
    if not metadata:
        return False
    missing = object()
    for field, expected in filter.items():
        got = metadata.get(field, missing)
        if got is missing or got != expected or (type(got) is bool) != (type(expected) is bool):
            return False
    return True


def filter_key(value: Any) -> Hashable:
    """A hashable key with :func:`matches_filter`'s equality for one metadata field value.

    Two JSON values give equal keys exactly when the filter would call them equal (``1`` and
    ``1.0`` are equal, ``True`` and ``1`` are not at the top level), so an index can look a
    filter's values up instead of testing every record.
    """
    return (type(value) is bool, _hashable(value))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, dict):
        return ("d", frozenset((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("l", tuple(_hashable(v) for v in value))
    return value  # type: ignore[no-any-return]


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


def normalize_vector(vector: Sequence[float] | npt.NDArray[Any]) -> Vector:
    """``vector`` scaled to unit length, as float32 (all zeros stays zeros).

    Idempotent: a float32 array that is already of unit length (within 1e-6) is returned as
    it is, so a vector normalized once keeps its exact numbers wherever it goes next.

    Raises:
        ValueError: ``vector`` is not one-dimensional, or holds a non-finite number.
    """
    array = np.asarray(vector, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"an embedding must be a flat list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("an embedding holds a NaN or an infinite number")
    norm = float(np.sqrt(np.dot(array, array)))
    if isinstance(vector, np.ndarray) and vector.dtype == np.float32 and abs(norm - 1.0) <= 1e-6:
        return vector
    if norm == 0.0:
        return np.zeros(len(array), dtype=np.float32)
    return (array / norm).astype(np.float32)


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


def fusion_depth(limit: int) -> int:
    """How many hits of each retriever hybrid search fuses: ``max(50, 5 * limit)``."""
    return max(50, 5 * limit)


def fuse_rrf(
    rankings: Sequence[Sequence[Scored]], limit: int | None, k: int = RRF_K
) -> list[Scored]:
    """Reciprocal rank fusion: each ranking adds ``1 / (k + rank)`` (rank from 1) to a key."""
    fused: dict[str, list[float]] = {}
    seqs: dict[str, int] = {}
    for ranking in rankings:
        for rank, (_, seq, key) in enumerate(ranking, start=1):
            fused.setdefault(key, []).append(1.0 / (k + rank))
            seqs[key] = seq
    return top(((math.fsum(parts), seqs[key], key) for key, parts in fused.items()), limit)


def keyword_bound(query: KeywordQuery, df: Mapping[str, int], n_docs: int) -> float:
    """The most any record could score for ``query``: every word at its largest BM25 weight
    (``idf * (k1 + 1)``, words no record holds included) plus the substring bonus."""
    return math.fsum(idf(df.get(t, 0), n_docs) * _K1P1 for t in query.terms) + SUBSTRING_BONUS


# Keyword confidence (see fuse_convex): the best hit's share of keyword_bound below which
# keyword evidence counts for nothing, and the share from which it counts fully.
_CONFIDENCE_FLOOR = 0.1
_CONFIDENCE_FULL = 0.4


def keyword_confidence(best: float, bound: float | None) -> float:
    """How much a keyword ranking is worth in fusion, from 0 to 1 (1 without a ``bound``).

    ``best / bound`` is the share of the query's possible score the best hit reached; a
    paraphrase that shares only incidental words ("what", "my") with the records reaches a
    few percent, a query naming what a record holds reaches a third or more. The share is
    mapped linearly from [0.1, 0.4] to [0, 1] and squared, so weak, accidental keyword hits
    cannot reorder what the semantic side found.
    """
    if bound is None or bound <= 0.0:
        return 1.0
    share = (best / bound - _CONFIDENCE_FLOOR) / (_CONFIDENCE_FULL - _CONFIDENCE_FLOOR)
    return min(1.0, max(0.0, share)) ** 2


def fuse_convex(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
) -> list[Scored]:
    """Convex combination of per-query min-max normalized scores.

    Each ranking's scores are mapped to [0, 1] (best 1, worst 0; a ranking whose scores are
    all equal maps to 1), then a record scores ``(1 - w) * c * keyword + w * semantic``, 0 for
    a ranking it is not in, where ``c`` is :func:`keyword_confidence` of the best keyword
    score against ``keyword_bound`` (1 when no bound is given). Raw BM25 and cosine are never
    added: their scales differ per query.
    """
    w = semantic_weight
    confidence = keyword_confidence(keyword[0][0], keyword_bound) if keyword else 1.0
    fused: dict[str, float] = {}
    seqs: dict[str, int] = {}
    for ranking, weight in ((keyword, (1.0 - w) * confidence), (semantic, w)):
        if not ranking:
            continue
        hi = ranking[0][0]
        lo = min(s for s, _, _ in ranking)
        span = hi - lo
        for score, seq, key in ranking:
            part = weight * ((score - lo) / span if span > 0.0 else 1.0)
            fused[key] = fused.get(key, 0.0) + part
            seqs[key] = seq
    return top(((score, seqs[key], key) for key, score in fused.items()), limit)


def fuse(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    *,
    fusion: Fusion = "convex",
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
) -> list[Scored]:
    """Fuse a keyword and a semantic ranking with the chosen method."""
    if fusion == "rrf":
        return fuse_rrf([keyword, semantic], limit)
    return fuse_convex(keyword, semantic, limit, semantic_weight, keyword_bound)


def validate_semantic_weight(weight: object, arg: str = "semantic_weight") -> float:
    """Return ``weight`` as a float if it is a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise TypeError(f"{arg} must be a number in [0, 1], got {type(weight).__name__}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{arg} must be in [0, 1], got {weight!r}")
    return float(weight)


def validate_fusion(fusion: object, arg: str = "fusion") -> Fusion:
    """Return ``fusion`` if it is ``"convex"`` or ``"rrf"``."""
    if fusion == "convex" or fusion == "rrf":
        return fusion
    raise ValueError(f"{arg} must be 'convex' or 'rrf', got {fusion!r}")


def rank_by_mode(
    mode: SearchMode,
    limit: int,
    keyword: Callable[[int | None], list[Scored]],
    semantic: Callable[[int | None], list[Scored]],
    *,
    fusion: Fusion = "convex",
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    tracer: Tracer | None = None,
    keyword_bound: Callable[[], float] | None = None,
) -> list[Scored]:
    """Run the ranking(s) a mode needs; hybrid fuses each retriever's best
    :func:`fusion_depth` hits (a retriever may return more: only that many are used).
    ``keyword_bound`` gives the query's :func:`keyword_bound` (after ``keyword`` ran).

    With a ``tracer`` (pass one only while the caller's span records), each part of a
    semantic or hybrid search is a child span: ``memory.search.keyword``,
    ``memory.search.vector``, ``memory.search.fuse``, with the number of hits it gave in
    ``gen_ai.memory.record.count`` (a keyword search has one part: no child span).
    """
    if mode == "keyword":
        return keyword(limit)  # one part: the search span itself shows it
    if tracer is None:
        if mode == "semantic":
            return semantic(limit)
        depth = fusion_depth(limit)
        kw = keyword(depth)[:depth]
        sem = semantic(depth)[:depth]
        bound = None if keyword_bound is None else keyword_bound()
        return fuse(
            kw, sem, limit, fusion=fusion, semantic_weight=semantic_weight, keyword_bound=bound
        )
    if mode == "semantic":
        return _traced(tracer, "vector", lambda: semantic(limit))
    depth = fusion_depth(limit)
    kw = _traced(tracer, "keyword", lambda: keyword(depth)[:depth])
    sem = _traced(tracer, "vector", lambda: semantic(depth)[:depth])
    bound = None if keyword_bound is None else keyword_bound()
    return _traced(
        tracer,
        "fuse",
        lambda: fuse(
            kw, sem, limit, fusion=fusion, semantic_weight=semantic_weight, keyword_bound=bound
        ),
    )


def _traced(tracer: Tracer, part: str, run: Callable[[], list[Scored]]) -> list[Scored]:
    with tracer.start_as_current_span(f"memory.search.{part}") as span:
        hits = run()
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(hits))
        return hits
