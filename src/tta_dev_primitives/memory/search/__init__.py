"""Search: the one definition of how records rank, shared by every backend.

A pure package (no I/O, no telemetry, no backend): :mod:`.text` (tokenizing, documents,
vectors), :mod:`.filters` (the filter language: one validator, one evaluator),
:mod:`.scoring` (BM25, cosine, calibration, recency), :mod:`.fusion` (modes, hybrid fusion,
the :class:`PhaseObserver` hook search phases report to) and :mod:`.index`, the stateful,
vectorized :class:`SearchIndex` that answers searches with exactly these scores (its parts:
:mod:`.postings`, :mod:`.vectors`, :mod:`.fields`). A backend without an index may rank
candidate records with :func:`rank_keyword` and :func:`rank_semantic` directly.

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
  (:func:`fuse_calibrated`, the default ``convex`` fusion: a convex combination of the two
  calibrated evidences with ``semantic_weight`` on the semantic side; :func:`fuse_rrf`,
  reciprocal rank fusion; or :func:`fuse_convex`, per-query min-max, as ``minmax``).
* Scores are calibrated (:func:`relevance`): a keyword hit's BM25 as a share of the most the
  query could score (:func:`keyword_evidence`), a semantic hit's cosine
  (:func:`semantic_evidence`) and their fusion are each standardized with constants fitted
  once, then mapped to (0, 1), so a score means the same across queries and
  ``MIN_RELEVANT_SCORE`` is one line for every mode (RRF scores are ranks, not calibrated).
* ``filter`` matches metadata (:func:`validate_filter` checks one, :func:`matches_filter`
  evaluates it, the same on every backend: equality, ``$eq $ne $gt $gte $lt $lte $in $nin
  $exists``, ``$and $or $not``); :func:`filter_key` is JSON equality as a hashable key and
  :func:`filter_anchors` the conditions an index of metadata values can answer.
* Ties are broken newest first, by write sequence number; hits are best first (:func:`top`).
"""

from __future__ import annotations

from .filters import (
    FILTER_OPERATORS,
    filter_anchors,
    filter_key,
    is_equality_filter,
    matches_filter,
    validate_filter,
)
from .fusion import (
    DEFAULT_SEMANTIC_WEIGHT,
    RRF_K,
    Fusion,
    PhaseObserver,
    SearchMode,
    fuse,
    fuse_calibrated,
    fuse_convex,
    fuse_rrf,
    fusion_depth,
    keyword_confidence,
    rank_by_mode,
    validate_fusion,
    validate_semantic_weight,
)
from .index import IndexRecord, SearchIndex, check_space
from .scoring import (
    BM25_B,
    BM25_K1,
    KEYWORD_SHARE_MEAN,
    KEYWORD_SHARE_SD,
    MIN_RELEVANT_SCORE,
    SIMILARITY_MEAN,
    SIMILARITY_SD,
    SUBSTRING_BONUS,
    Candidate,
    CorpusStats,
    Scored,
    bm25,
    cosine,
    idf,
    keyword_bound,
    keyword_evidence,
    keyword_score,
    merge_stats,
    rank_keyword,
    rank_semantic,
    recency_weight,
    recency_weights,
    relevance,
    semantic_evidence,
    top,
)
from .text import (
    Document,
    KeywordQuery,
    Vector,
    has_substring,
    indexed_value,
    make_document,
    normalize_vector,
    prepare_query,
    string_leaves,
    tokenize,
    tokenize_many,
)

__all__ = [
    "BM25_B",
    "BM25_K1",
    "Candidate",
    "CorpusStats",
    "DEFAULT_SEMANTIC_WEIGHT",
    "Document",
    "FILTER_OPERATORS",
    "Fusion",
    "IndexRecord",
    "KEYWORD_SHARE_MEAN",
    "KEYWORD_SHARE_SD",
    "KeywordQuery",
    "MIN_RELEVANT_SCORE",
    "PhaseObserver",
    "RRF_K",
    "SIMILARITY_MEAN",
    "SIMILARITY_SD",
    "SUBSTRING_BONUS",
    "Scored",
    "SearchIndex",
    "SearchMode",
    "Vector",
    "bm25",
    "check_space",
    "cosine",
    "filter_anchors",
    "filter_key",
    "fuse",
    "fuse_calibrated",
    "fuse_convex",
    "fuse_rrf",
    "fusion_depth",
    "has_substring",
    "indexed_value",
    "idf",
    "is_equality_filter",
    "keyword_bound",
    "keyword_confidence",
    "keyword_evidence",
    "keyword_score",
    "make_document",
    "matches_filter",
    "merge_stats",
    "normalize_vector",
    "prepare_query",
    "rank_by_mode",
    "rank_keyword",
    "rank_semantic",
    "recency_weight",
    "recency_weights",
    "relevance",
    "semantic_evidence",
    "string_leaves",
    "tokenize",
    "tokenize_many",
    "top",
    "validate_filter",
    "validate_fusion",
    "validate_semantic_weight",
]
