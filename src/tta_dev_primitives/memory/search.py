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

import heapq
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from opentelemetry.trace import Tracer

from ..observability import attributes as A

__all__ = [
    "BM25_B",
    "BM25_K1",
    "DEFAULT_SEMANTIC_WEIGHT",
    "KEYWORD_SHARE_MEAN",
    "KEYWORD_SHARE_SD",
    "MIN_RELEVANT_SCORE",
    "SIMILARITY_MEAN",
    "SIMILARITY_SD",
    "RRF_K",
    "SUBSTRING_BONUS",
    "Candidate",
    "CorpusStats",
    "Document",
    "Fusion",
    "KeywordQuery",
    "Scored",
    "SearchMode",
    "Vector",
    "bm25",
    "cosine",
    "FILTER_OPERATORS",
    "filter_anchors",
    "filter_key",
    "is_equality_filter",
    "fuse",
    "fuse_calibrated",
    "fuse_convex",
    "fuse_rrf",
    "fusion_depth",
    "has_substring",
    "idf",
    "keyword_bound",
    "keyword_confidence",
    "keyword_evidence",
    "keyword_score",
    "indexed_value",
    "make_document",
    "merge_stats",
    "matches_filter",
    "normalize_vector",
    "prepare_query",
    "rank_by_mode",
    "rank_keyword",
    "rank_semantic",
    "recency_weight",
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

SearchMode = Literal["keyword", "semantic", "hybrid"]
Fusion = Literal["convex", "rrf", "minmax"]

BM25_K1 = 1.2
BM25_B = 0.75
SUBSTRING_BONUS = 1.0
RRF_K = 60
DEFAULT_SEMANTIC_WEIGHT = 0.5

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

Vector = npt.NDArray[np.float32]
"""A unit embedding, float32 (what :func:`normalize_vector` returns)."""

_WORD = re.compile(r"\w+")
_K1P1 = BM25_K1 + 1.0
_F = TypeVar("_F", float, npt.NDArray[np.float64])


def tokenize(text: str) -> list[str]:
    """Case-folded words (maximal runs of Unicode word characters) of ``text``."""
    return _WORD.findall(text.casefold())


_IntArray = npt.NDArray[np.int64]
# What ``\w`` matches among ASCII characters: [0-9A-Za-z_].
_ASCII_WORD = np.zeros(256, dtype=bool)
_ASCII_WORD[list(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")] = True
# The low n bytes of a little-endian uint64 (n = 0..8), to zero what follows a word.
_LOW_BYTES = np.array(
    [int.from_bytes(b"\xff" * n + b"\x00" * (8 - n), "little") for n in range(9)], dtype="<u8"
)
# Characters of ASCII text tokenized by one numpy pass (bounds its extra memory).
_BATCH_CHARS = 1 << 16


def tokenize_many(leaves: Sequence[str], vocab: dict[str, int]) -> tuple[_IntArray, _IntArray]:
    """The words of many case-folded leaves at once, as numbers (for bulk indexing).

    Each word of ``leaves[i]``, exactly as ``_WORD.findall(leaves[i])`` (what
    :func:`tokenize` does after case folding) finds it, is one element of the two arrays
    returned: ``i``, and the word's id in ``vocab`` (words not in it yet are added, with the
    next free id, ``len(vocab)``). Words come in no particular order.

    ASCII leaves (most text) are tokenized by numpy, 64 KiB of text at a time (arrays that
    stay in the CPU cache), without a Python object per word: word characters are looked up
    in a table (``[0-9A-Za-z_]``: what the pattern matches in ASCII), each run of them is a
    word, and the runs of one batch are grouped by sorting their bytes; one occurrence of
    each group is sliced from the text and looked up in ``vocab``, so the ids are exact
    whatever the grouping. Other leaves go through the regular expression.
    """
    owners: list[_IntArray] = []
    ids: list[_IntArray] = []
    is_ascii = list(map(str.isascii, leaves))
    ascii_at = [i for i, ok in enumerate(is_ascii) if ok] if not all(is_ascii) else None
    picked = leaves if ascii_at is None else [leaves[i] for i in ascii_at]
    sizes = np.fromiter(map(len, picked), dtype=np.int64, count=len(picked)) + 1
    ends = np.cumsum(sizes)
    start = 0
    while start < len(picked):
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] + _BATCH_CHARS)))
        where = np.arange(start, stop, dtype=np.int64)
        if ascii_at is not None:
            where = np.asarray(ascii_at, dtype=np.int64)[where]
        owner, word = _ascii_words(picked[start:stop], sizes[start:stop], vocab)
        owners.append(where[owner])
        ids.append(word)
        start = stop
    if ascii_at is not None:
        findall = _WORD.findall
        setdefault = vocab.setdefault
        for i, ok in enumerate(is_ascii):
            if not ok:
                found = [setdefault(w, len(vocab)) for w in findall(leaves[i])]
                owners.append(np.full(len(found), i, dtype=np.int64))
                ids.append(np.asarray(found, dtype=np.int64))
    if not owners:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(owners), np.concatenate(ids)


def _ascii_words(
    leaves: Sequence[str], sizes: _IntArray, vocab: dict[str, int]
) -> tuple[_IntArray, _IntArray]:
    """:func:`tokenize_many` of ASCII leaves (``sizes``: each leaf's length plus one)."""
    joined = "\n".join(leaves)  # a newline is no word character: words never span leaves
    buf = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    edges = np.flatnonzero(np.diff(_ASCII_WORD[buf], prepend=False, append=False))
    starts, stops = edges[0::2], edges[1::2]
    per_leaf = np.diff(np.searchsorted(starts, np.cumsum(sizes) - sizes), append=len(starts))
    owner = np.repeat(np.arange(len(leaves), dtype=np.int64), per_leaf)
    ids = np.empty(len(starts), dtype=np.int64)
    if not len(starts):
        return owner, ids
    lengths = stops - starts
    # A word is the uint64 columns of its bytes, zero-padded to a multiple of 8 (no word
    # holds a zero byte, so padding never makes two words equal); words of one width are
    # grouped by sorting those columns, and any occurrence stands for its word.
    widths = (lengths + 7) >> 3
    padded = np.concatenate([buf, np.zeros(8 * int(widths.max()), dtype=np.uint8)])
    setdefault = vocab.setdefault
    for width in np.flatnonzero(np.bincount(widths)).tolist():
        sel = np.flatnonzero(widths == width)
        at, size = starts[sel], lengths[sel]
        columns = sliding_window_view(padded, 8 * width)[at].view("<u8")
        for j in range(width):
            columns[:, j] &= _LOW_BYTES[np.clip(size - 8 * j, 0, 8)]
        if width == 1:
            order = np.argsort(columns[:, 0])
            ordered = columns[order, 0]
            new_word = ordered[1:] != ordered[:-1]
        else:
            order = np.lexsort(columns.T[::-1])
            ordered = columns[order]
            new_word = (ordered[1:] != ordered[:-1]).any(axis=1)
        group = np.zeros(len(order), dtype=np.int64)
        np.cumsum(new_word, out=group[1:])
        first = order[np.flatnonzero(np.concatenate(([True], new_word)))]
        found = [
            setdefault(joined[a : a + n], len(vocab))
            for a, n in zip(at[first].tolist(), size[first].tolist(), strict=True)
        ]
        ids[sel[order]] = np.asarray(found, dtype=np.int64)[group]
    return owner, ids


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


def indexed_value(value: Any, index_text: str | None) -> Any:
    """What search indexes of a record: its value, plus its ``index_text`` (extra text indexed
    with the record, not part of its value) as one more string leaf."""
    return value if index_text is None else [value, index_text]


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


_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
_FIELD_OPS = frozenset(("$eq", "$ne", "$in", "$nin", "$exists", "$not", *_COMPARE))
_COMBINATORS = frozenset(("$and", "$or", "$not"))
FILTER_OPERATORS = tuple(sorted(_FIELD_OPS | _COMBINATORS))
"""Every operator a filter may use (see :func:`validate_filter`)."""


def _is_ops(condition: object) -> bool:
    return (
        isinstance(condition, Mapping)
        and bool(condition)
        and all(isinstance(k, str) and k.startswith("$") for k in condition)
    )


def validate_filter(filter: object, arg: str = "filter") -> dict[str, Any] | None:
    """Check a metadata filter's shape; return it (None for None or ``{}``).

    A filter maps field names to conditions, all of which must hold; ``$and``/``$or`` take a
    non-empty list of filters and ``$not`` one filter. A condition is a plain JSON value
    (equality) or a mapping of operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists
    $not``. Call it before any I/O: evaluation (:func:`matches_filter`) never raises.

    Raises:
        TypeError: ``filter`` is not a mapping.
        ValueError: An unknown operator or a malformed condition, named in the message.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"{arg} must be a mapping or None, got {type(filter).__name__}")
    _check_filter(filter, arg)
    return dict(filter) if filter else None


def _check_filter(filter: Mapping[Any, Any], where: str) -> None:
    for field, condition in filter.items():
        if not isinstance(field, str):
            raise TypeError(f"{where}: field names must be str, got {type(field).__name__}")
        if field in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise ValueError(f"{where}: {field} takes a non-empty list of filters")
            for i, sub in enumerate(condition):
                if not isinstance(sub, Mapping):
                    raise ValueError(
                        f"{where}: {field}[{i}] must be a filter (a mapping), "
                        f"got {type(sub).__name__}"
                    )
                _check_filter(sub, f"{where}.{field}[{i}]")
        elif field == "$not":
            if not isinstance(condition, Mapping) or not condition:
                raise ValueError(f"{where}: $not takes a non-empty filter (a mapping)")
            _check_filter(condition, f"{where}.$not")
        elif field.startswith("$"):
            raise ValueError(
                f"{where}: unknown operator {field!r} (combinators: $and, $or, $not; "
                "field operators go inside a field's condition)"
            )
        else:
            _check_condition(condition, f"{where}[{field!r}]")


def _check_condition(condition: object, where: str) -> None:
    if not isinstance(condition, Mapping):
        return  # a plain value: equality
    dollar = [k for k in condition if isinstance(k, str) and k.startswith("$")]
    if not dollar:
        return  # a dict value: equality
    if len(dollar) != len(condition):
        raise ValueError(
            f"{where}: a condition mixes operators ({', '.join(dollar)}) with plain keys; "
            "use {'$eq': {...}} to match a dict value"
        )
    for op, operand in condition.items():
        if op not in _FIELD_OPS:
            raise ValueError(
                f"{where}: unknown operator {op!r} (known: {', '.join(sorted(_FIELD_OPS))})"
            )
        if op in _COMPARE:
            if isinstance(operand, bool) or not isinstance(operand, int | float | str):
                raise ValueError(
                    f"{where}: {op} compares with a number or a str, got {type(operand).__name__}"
                )
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise ValueError(f"{where}: {op} takes a list, got {type(operand).__name__}")
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise ValueError(f"{where}: $exists takes True or False")
        elif op == "$not":
            if isinstance(operand, Mapping) and not operand:
                raise ValueError(f"{where}: $not takes a non-empty condition")
            _check_condition(operand, f"{where}.$not")


_MISSING: Any = object()


def _json_eq(got: Any, expected: Any) -> bool:
    # JSON equality: 1 == 1.0, but true is not 1 (at the top level, as filter_key).
    return got == expected and (type(got) is bool) == (type(expected) is bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _holds(got: Any, condition: Any) -> bool:
    """Whether a field's value (``_MISSING`` when absent) meets a validated condition."""
    if not _is_ops(condition):
        return got is not _MISSING and _json_eq(got, condition)
    for op, operand in condition.items():
        if op == "$eq":
            ok = got is not _MISSING and _json_eq(got, operand)
        elif op == "$ne":
            ok = got is _MISSING or not _json_eq(got, operand)
        elif op == "$in":
            ok = got is not _MISSING and any(_json_eq(got, v) for v in operand)
        elif op == "$nin":
            ok = got is _MISSING or not any(_json_eq(got, v) for v in operand)
        elif op == "$exists":
            ok = (got is not _MISSING) == operand
        elif op == "$not":
            ok = not _holds(got, operand)
        else:
            # Numbers compare with numbers and strings with strings; anything else
            # (a missing field included) matches nothing.
            if isinstance(operand, str):
                ok = isinstance(got, str) and _COMPARE[op](got, operand)
            else:
                ok = _number(got) and _COMPARE[op](got, operand)
        if not ok:
            return False
    return True


def matches_filter(metadata: Mapping[str, Any] | None, filter: Mapping[str, Any] | None) -> bool:
    """True when ``metadata`` meets a filter checked by :func:`validate_filter`.

    Every field condition must hold (see :func:`validate_filter`); a plain value is JSON
    equality (``1`` equals ``1.0``, ``true`` is not ``1``). Order operators compare numbers
    with numbers and strings with strings: a type mismatch, or a missing field, matches
    nothing. ``$ne``, ``$nin`` and ``$not`` match a record without the field;
    ``$exists: false`` matches only such records. Never raises on a valid filter.
    """
    if not filter:
        return True
    meta: Mapping[str, Any] = metadata or {}
    for field, condition in filter.items():
        if field == "$and":
            if not all(matches_filter(meta, sub) for sub in condition):
                return False
        elif field == "$or":
            if not any(matches_filter(meta, sub) for sub in condition):
                return False
        elif field == "$not":
            if matches_filter(meta, condition):
                return False
        elif not _holds(meta.get(field, _MISSING), condition):
            return False
    return True


def filter_anchors(filter: Mapping[str, Any] | None) -> list[tuple[str, list[Any]]]:
    """Top-level ``(field, values)`` a matching record's field must equal one of.

    From plain values, ``$eq`` and ``$in`` (also inside a top-level ``$and``): an index of
    metadata values answers them with a lookup, and only its candidates need
    :func:`matches_filter`. Empty when no condition is of that kind.
    """
    out: list[tuple[str, list[Any]]] = []
    if not filter:
        return out
    for field, condition in filter.items():
        if field == "$and":
            for sub in condition:
                out.extend(filter_anchors(sub))
        elif field.startswith("$"):
            continue
        elif not _is_ops(condition):
            out.append((field, [condition]))
        else:
            if "$eq" in condition:
                out.append((field, [condition["$eq"]]))
            if "$in" in condition:
                out.append((field, list(condition["$in"])))
    return out


def is_equality_filter(filter: Mapping[str, Any] | None) -> bool:
    """True when every condition is a plain value (the anchors alone decide a match)."""
    return bool(filter) and all(
        not field.startswith("$") and not _is_ops(condition)
        for field, condition in (filter or {}).items()
    )


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


# The calibrated fusion's keyword confidence: ``min(1, share / 0.15) ** 2`` of the best
# keyword hit's share of keyword_bound. A paraphrase shares only incidental words with the
# records ("what", "my") and reaches a few percent: its keyword evidence counts for little.
_EVIDENCE_FULL = 0.15


def fuse_calibrated(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
    depth: int | None = None,
) -> list[Scored]:
    """Convex combination of calibrated evidence: ``(1 - w) * c * k + w * s``, scored by
    :func:`relevance`.

    ``k`` is :func:`keyword_evidence` (against ``keyword_bound``; without one, the best keyword
    score stands for it) and ``s`` :func:`semantic_evidence`. Unlike per-query min-max, the
    evidence does not depend on the other hits, so the best hit of an unrelated query scores
    low. A record missing from a ranking gets the evidence of that ranking's last hit when the
    ranking was cut at ``depth`` (it scored at most that), else of a score of zero (it did
    not match at all). ``c`` is ``min(1, share / 0.15) ** 2``, ``share`` being the best
    keyword hit's share of the bound: words in common by accident, as in a paraphrase, reach
    a few percent and count for little; a query naming what a record holds counts fully.
    """
    w = semantic_weight
    bound = keyword_bound
    if bound is None or bound <= 0.0:
        bound = keyword[0][0] if keyword else 1.0
    share = keyword[0][0] / bound if keyword else 0.0
    c = min(1.0, share / _EVIDENCE_FULL) ** 2
    kw = {key: keyword_evidence(score, bound) for score, _, key in keyword}
    sem = {key: semantic_evidence(score) for score, _, key in semantic}
    seqs = {key: seq for _, seq, key in keyword}
    seqs.update((key, seq) for _, seq, key in semantic)
    cut = depth if depth is not None else math.inf
    kw_missing = min(kw.values()) if kw and len(kw) >= cut else keyword_evidence(0.0, bound)
    sem_missing = min(sem.values()) if sem and len(sem) >= cut else semantic_evidence(0.0)
    kw_weight = (1.0 - w) * c
    return top(
        (
            (
                relevance(kw_weight * kw.get(key, kw_missing) + w * sem.get(key, sem_missing)),
                seq,
                key,
            )
            for key, seq in seqs.items()
        ),
        limit,
    )


def _calibrate(ranked: list[Scored], evidence: Callable[[float], float]) -> list[Scored]:
    return [(relevance(evidence(s)), seq, key) for s, seq, key in ranked]


def fuse(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    *,
    fusion: Fusion = "convex",
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
    depth: int | None = None,
) -> list[Scored]:
    """Fuse a keyword and a semantic ranking with the chosen method (``depth``: where each
    ranking was cut, see :func:`fuse_calibrated`)."""
    if fusion == "rrf":
        return fuse_rrf([keyword, semantic], limit)
    if fusion == "minmax":
        return fuse_convex(keyword, semantic, limit, semantic_weight, keyword_bound)
    return fuse_calibrated(keyword, semantic, limit, semantic_weight, keyword_bound, depth)


def validate_semantic_weight(weight: object, arg: str = "semantic_weight") -> float:
    """Return ``weight`` as a float if it is a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise TypeError(f"{arg} must be a number in [0, 1], got {type(weight).__name__}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{arg} must be in [0, 1], got {weight!r}")
    return float(weight)


def validate_fusion(fusion: object, arg: str = "fusion") -> Fusion:
    """Return ``fusion`` if it is ``"convex"``, ``"rrf"`` or ``"minmax"``."""
    if fusion == "convex" or fusion == "rrf" or fusion == "minmax":
        return fusion
    raise ValueError(f"{arg} must be 'convex', 'rrf' or 'minmax', got {fusion!r}")


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
    recency: Callable[[str], float] | None = None,
    raw: bool = False,
) -> list[Scored]:
    """Run the ranking(s) a mode needs; hybrid fuses each retriever's best
    :func:`fusion_depth` hits (a retriever may return more: only that many are used).
    ``keyword_bound`` gives the query's :func:`keyword_bound` (after ``keyword`` ran).
    Scores come out calibrated (:func:`relevance`), except with ``rrf`` fusion.

    ``recency`` (a key's :func:`recency_weight`) multiplies each hit's final score before
    the best ``limit`` are kept: keyword and semantic mode weigh every hit, hybrid mode
    every fused hit (of the same :func:`fusion_depth` candidates as without it).

    With a ``tracer`` (pass one only while the caller's span records), each part of a
    semantic or hybrid search is a child span: ``memory.search.keyword``,
    ``memory.search.vector``, ``memory.search.fuse``, with the number of hits it gave in
    ``gen_ai.memory.record.count`` (a keyword search has one part: no child span).

    ``raw`` (keyword and semantic mode, without ``recency``) leaves the retriever's own
    scores uncalibrated, for a caller that fuses rankings itself.
    """
    if raw and mode != "hybrid" and recency is None:
        if mode == "keyword":
            return keyword(limit)
        if tracer is None:
            return semantic(limit)
        return _traced(tracer, "vector", lambda: semantic(limit))
    if recency is not None:
        if mode == "keyword":
            ranked = _keyword_relevance(keyword(None), keyword_bound)
        elif mode == "semantic":
            ranked = _calibrate(semantic(None), semantic_evidence)
        else:
            ranked = _hybrid(
                limit, None, keyword, semantic, fusion, semantic_weight, tracer, keyword_bound
            )
        return top(((s * recency(key), seq, key) for s, seq, key in ranked), limit)
    if mode == "keyword":
        return _keyword_relevance(keyword(limit), keyword_bound)  # one part: no child span
    if mode == "semantic":
        if tracer is None:
            return _calibrate(semantic(limit), semantic_evidence)
        return _calibrate(_traced(tracer, "vector", lambda: semantic(limit)), semantic_evidence)
    return _hybrid(limit, limit, keyword, semantic, fusion, semantic_weight, tracer, keyword_bound)


def _keyword_relevance(
    ranked: list[Scored], keyword_bound: Callable[[], float] | None
) -> list[Scored]:
    if not ranked or keyword_bound is None:
        return ranked
    bound = keyword_bound()
    return _calibrate(ranked, lambda s: keyword_evidence(s, bound))


def recency_weight(age: float, half_life: float) -> float:
    """``0.5 ** (age / half_life)``: 1 for a record written now, 0.5 one half-life ago
    (a negative age, from clock skew, counts as 0)."""
    return math.pow(0.5, max(age, 0.0) / half_life)


def _hybrid(
    limit: int,
    fused_limit: int | None,
    keyword: Callable[[int | None], list[Scored]],
    semantic: Callable[[int | None], list[Scored]],
    fusion: Fusion,
    semantic_weight: float,
    tracer: Tracer | None,
    keyword_bound: Callable[[], float] | None,
) -> list[Scored]:
    if tracer is None:
        depth = fusion_depth(limit)
        kw = keyword(depth)[:depth]
        sem = semantic(depth)[:depth]
        bound = None if keyword_bound is None else keyword_bound()
        return fuse(
            kw,
            sem,
            fused_limit,
            fusion=fusion,
            semantic_weight=semantic_weight,
            keyword_bound=bound,
            depth=depth,
        )
    depth = fusion_depth(limit)
    kw = _traced(tracer, "keyword", lambda: keyword(depth)[:depth])
    sem = _traced(tracer, "vector", lambda: semantic(depth)[:depth])
    bound = None if keyword_bound is None else keyword_bound()
    return _traced(
        tracer,
        "fuse",
        lambda: fuse(
            kw,
            sem,
            fused_limit,
            fusion=fusion,
            semantic_weight=semantic_weight,
            keyword_bound=bound,
            depth=depth,
        ),
    )


def _traced(tracer: Tracer, part: str, run: Callable[[], list[Scored]]) -> list[Scored]:
    with tracer.start_as_current_span(f"memory.search.{part}") as span:
        hits = run()
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(hits))
        return hits


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
