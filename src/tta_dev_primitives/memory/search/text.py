"""Text and vectors as search sees them: tokenizing, a record's :class:`Document`, queries.

* Words are maximal runs of Unicode word characters of the case-folded text
  (:func:`tokenize`; :func:`tokenize_many` finds the same words of many leaves at once).
* A record's text is the string leaves of its JSON value (:func:`string_leaves`): dict values
  and list items, never dict key names, never numbers.
* Vectors are unit float32 embeddings (:func:`normalize_vector`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Document",
    "Leaves",
    "KeywordQuery",
    "Vector",
    "has_substring",
    "indexed_value",
    "leaves_holding",
    "make_document",
    "normalize_vector",
    "pack_leaves",
    "prepare_query",
    "string_leaves",
    "tokenize",
    "tokenize_many",
]


Vector = npt.NDArray[np.float32]
"""A unit embedding, float32 (what :func:`normalize_vector` returns)."""

_WORD = re.compile(r"\w+")


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


Leaves = str | tuple[str, ...]
"""A record's string leaves as an index keeps them: the leaf itself when there is one, else
a tuple."""

# Leaves searched as one joined string by leaves_holding.
_JOINED = 4096


def has_substring(text: str, leaves: Iterable[str]) -> bool:
    """The substring rule: one case-folded leaf contains the whole case-folded query."""
    return any(text in leaf for leaf in leaves)


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


def pack_leaves(leaves: tuple[str, ...]) -> Leaves:
    """A record's leaves as the index keeps them: the one leaf itself, or the tuple."""
    return leaves[0] if len(leaves) == 1 else leaves


def leaves_holding(text: str, slots: list[int], leaves: list[Leaves]) -> list[int]:
    """The slots whose record holds ``text`` by :func:`has_substring`.

    The candidates' leaves are joined by NULs, case-folded and searched as one string, a
    few thousand at a time: one C-level scan instead of a fold and a search per leaf.
    Folding keeps NULs and makes none, so a match never spans two leaves and the NULs before
    a match name its leaf (a query holding a NUL, or a chunk with a leaf holding one, is
    tested leaf by leaf).
    """
    if "\0" in text:
        return _each_leaf_holding(text, slots, leaves)
    out: list[int] = []
    for start in range(0, len(slots), _JOINED):
        chunk = slots[start : start + _JOINED]
        owners = chunk  # the slot of each joined leaf
        try:
            joined = "\0".join(map(leaves.__getitem__, chunk))  # type: ignore[arg-type]
        except TypeError:  # a record with several leaves: a tuple among them
            owners = []
            parts: list[str] = []
            for slot in chunk:
                held = _unpack(leaves[slot])
                parts.extend(held)
                owners.extend([slot] * len(held))
            joined = "\0".join(parts)
        joined = joined.casefold()
        find, count = joined.find, joined.count
        if count("\0") != len(owners) - 1:  # a leaf holding a NUL: no NUL names a leaf
            out.extend(_each_leaf_holding(text, chunk, leaves))
            continue
        at = find(text)
        leaf = seen = 0  # the leaf of the match at ``at``: NULs counted up to ``seen``
        while at >= 0:
            leaf += count("\0", seen, at)
            seen = at
            slot = owners[leaf]
            if not out or out[-1] != slot:
                out.append(slot)
            end = find("\0", at)
            if end < 0:
                break
            at = find(text, end + 1)
    return out


def _each_leaf_holding(text: str, slots: list[int], leaves: list[Leaves]) -> list[int]:
    return [
        slot
        for slot in slots
        if has_substring(text, [leaf.casefold() for leaf in _unpack(leaves[slot])])
    ]


def _unpack(held: Leaves) -> tuple[str, ...]:
    return (held,) if isinstance(held, str) else held
