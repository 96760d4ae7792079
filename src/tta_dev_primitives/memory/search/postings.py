"""The words of a :class:`~.index.SearchIndex`: each word's postings, and its trigrams.

A record is a slot with a generation number (kept by the index); a posting counts only while
its generation equals its slot's, so a delete never touches postings. Each word's postings
are three growable int32 arrays (slot, generation, term frequency: 12 bytes a posting) viewed
as numpy arrays at search time, so a query word costs a few vectorized operations over its
postings whatever the number of records. A word's postings are compacted when more than half
are dead, and a word no live record holds is forgotten: every structure is bounded by the
live records, not by the history of writes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .scoring import CorpusStats, bm25, idf
from .text import Document, KeywordQuery

__all__ = ["Postings", "WordPostings", "bulk_postings"]

_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]
_Int32Array = npt.NDArray[np.int32]
# A word's postings are compacted once dead ones exceed live ones plus this slack.
_SLACK = 16


class WordPostings:
    """One word's postings: parallel growable arrays of slot, generation and frequency
    (int32 each: 12 bytes a posting)."""

    __slots__ = ("df", "gens", "slots", "tfs")

    def __init__(self) -> None:
        self.slots = array("i")
        self.gens = array("i")
        self.tfs = array("i")
        self.df = 0  # live records holding the word

    def views(self) -> tuple[_Int32Array, _Int32Array, _Int32Array]:
        return (
            np.frombuffer(self.slots, dtype=np.int32),
            np.frombuffer(self.gens, dtype=np.int32),
            np.frombuffer(self.tfs, dtype=np.int32),
        )


class Postings:
    """Every word's :class:`WordPostings` (``lists``), the trigrams of the words (``grams``,
    to find the words containing a query word) and the number of postings held."""

    __slots__ = ("grams", "lists", "n_postings")

    def __init__(self) -> None:
        self.lists: dict[str, WordPostings] = {}
        self.grams: dict[str, set[str]] = {}
        self.n_postings = 0

    def __len__(self) -> int:
        return len(self.lists)

    def df(self, term: str) -> int:
        """Number of live records holding ``term`` (a case-folded word)."""
        plist = self.lists.get(term)
        return 0 if plist is None else plist.df

    def _new(self, term: str) -> WordPostings:
        plist = self.lists[term] = WordPostings()
        for gram in _trigrams(term):
            self.grams.setdefault(gram, set()).add(term)
        return plist

    def add(self, slot: int, gen: int, terms: Mapping[str, int]) -> None:
        """Post one record's words (``terms``: term frequencies)."""
        lists = self.lists
        for term, tf in terms.items():
            plist = lists.get(term)
            if plist is None:
                plist = self._new(term)
            plist.slots.append(slot)
            plist.gens.append(gen)
            plist.tfs.append(tf)
            plist.df += 1
        self.n_postings += len(terms)

    def add_runs(
        self,
        names: list[str],
        word_of: _IntArray,
        slots: _Int32Array,
        gens: _Int32Array,
        tfs: _Int32Array,
    ) -> None:
        """Post many records' words at once: element ``i`` of the arrays is one posting of
        word ``names[word_of[i]]``, the postings of one word adjacent; each word's are
        appended in one piece."""
        lists = self.lists
        slot_bytes = memoryview(slots.tobytes())
        gen_bytes = memoryview(gens.tobytes())
        tf_bytes = memoryview(tfs.tobytes())
        starts = run_starts(word_of)
        stops = np.append(starts[1:], len(word_of))[: len(starts)]
        for word, start, stop in zip(
            word_of[starts].tolist(), (4 * starts).tolist(), (4 * stops).tolist(), strict=True
        ):
            term = names[word]
            plist = lists.get(term)
            if plist is None:
                plist = self._new(term)
            plist.slots.frombytes(slot_bytes[start:stop])
            plist.gens.frombytes(gen_bytes[start:stop])
            plist.tfs.frombytes(tf_bytes[start:stop])
            plist.df += (stop - start) >> 2
        self.n_postings += len(word_of)

    def release(self, words: Iterable[str], slot_gens: _Int32Array) -> None:
        """A record holding ``words`` (each once) is gone: count it out of each word,
        forgetting words no live record holds and compacting mostly dead postings
        (``slot_gens``: each slot's generation, -1 for free slots)."""
        lists = self.lists
        for term in words:
            plist = lists[term]
            plist.df -= 1
            if plist.df == 0:
                del lists[term]
                self.n_postings -= len(plist.slots)
                for gram in _trigrams(term):
                    grams = self.grams[gram]
                    grams.discard(term)
                    if not grams:
                        del self.grams[gram]
            elif len(plist.slots) > 2 * plist.df + _SLACK:
                self._compact(plist, slot_gens)

    def _compact(self, plist: WordPostings, slot_gens: _Int32Array) -> None:
        slots, gens, tfs = plist.views()
        keep = gens == slot_gens[slots]
        new_slots, new_gens, new_tfs = slots[keep], gens[keep], tfs[keep]
        del slots, gens, tfs  # release the buffers before the arrays are replaced
        self.n_postings -= len(plist.slots) - len(new_slots)
        plist.slots = array("i", new_slots.tobytes())
        plist.gens = array("i", new_gens.tobytes())
        plist.tfs = array("i", new_tfs.tobytes())

    def renumber(self, slot_gens: _Int32Array, renumbered: _Int32Array) -> None:
        """Drop dead postings and give the live ones their slot's new generation."""
        for plist in self.lists.values():
            slots, gens, tfs = plist.views()
            keep = gens == slot_gens[slots]
            new_slots, new_tfs = slots[keep], tfs[keep]
            del slots, gens, tfs
            self.n_postings -= len(plist.slots) - len(new_slots)
            plist.slots = array("i", new_slots.tobytes())
            plist.gens = array("i", renumbered[new_slots].tobytes())
            plist.tfs = array("i", new_tfs.tobytes())

    def accumulate(
        self,
        query: KeywordQuery,
        acc: _FloatArray,
        lengths: _FloatArray,
        slot_gens: _Int32Array,
        n_docs: int,
        avgdl: float,
        stats: CorpusStats | None,
    ) -> None:
        """Add each live record's BM25 for ``query``'s words to ``acc`` (one element per
        slot), with ``stats``' document frequencies when given."""
        lists = self.lists
        for term in query.terms:
            plist = lists.get(term)
            if plist is None:
                continue
            at, gens, tfs = plist.views()
            if len(at) != plist.df:  # dead postings among them (df counts the live ones)
                live = gens == slot_gens[at]
                at, tfs = at[live], tfs[live]
                del live
            # numpy indexes with intp: converted once, not by each of the next two uses.
            where = at.astype(np.intp)
            # int32 counts: numpy turns them into float64 exactly, as bm25 wants them.
            df = plist.df if stats is None else stats.df.get(term, plist.df)
            acc[where] += bm25(cast(_FloatArray, tfs), lengths[where], avgdl, idf(df, n_docs))
            del at, gens, tfs

    def holders(self, word: str, slot_gens: _Int32Array) -> list[npt.NDArray[Any]]:
        """The live slots holding a word that contains ``word``, one array per such word."""
        parts = []
        lists = self.lists
        for term in self._containing(word):
            plist = lists[term]
            slots, gens, _ = plist.views()
            parts.append(slots[gens == slot_gens[slots]] if len(slots) != plist.df else slots)
            del slots, gens
        return parts

    def _containing(self, word: str) -> list[str]:
        """Indexed words containing ``word``."""
        grams = _trigrams(word)
        if not grams:
            return [t for t in self.lists if word in t]
        sets = []
        for gram in grams:
            terms = self.grams.get(gram)
            if not terms:
                return []
            sets.append(terms)
        sets.sort(key=len)
        found = sets[0].intersection(*sets[1:]) if len(sets) > 1 else sets[0]
        return [t for t in found if word in t]

    def memory_bytes(self) -> int:
        """A cheap estimate: dict entries and arrays per word, 12 bytes per posting."""
        return len(self.lists) * 400 + self.n_postings * 12


def bulk_postings(
    vocab: dict[str, int],
    leaf_at: _IntArray,
    word_at: _IntArray,
    owner: list[int] | None,
    docs: list[tuple[int, Document]],
    n: int,
) -> tuple[_IntArray, _IntArray, _Int32Array, _IntArray]:
    """The postings of ``n`` records at once, for :meth:`Postings.add_runs`.

    Args:
        vocab: The words' ids (the words of ``docs`` are added).
        leaf_at: The leaf of each word found by :func:`~.text.tokenize_many`.
        word_at: Its id in ``vocab``.
        owner: The record of each leaf (None: one leaf each, in order).
        docs: The records given as ready documents, by record number.
        n: Number of records.

    Returns:
        For each posting, sorted by word then record: its word (an id of ``vocab``), its
        record and its term frequency; then each record's length.
    """
    record_at = leaf_at if owner is None else np.asarray(owner, dtype=np.int64)[leaf_at]
    lengths = np.bincount(record_at, minlength=n)
    # (word, record) pairs, sorted, and how often each occurs: the postings, word by word.
    pairs = word_at * n + record_at
    pairs.sort()
    first = run_starts(pairs)
    pairs, tfs = pairs[first], np.diff(first, append=len(word_at)).astype(np.int32)
    if docs:
        setdefault = vocab.setdefault
        more = [setdefault(t, len(vocab)) * n + i for i, doc in docs for t in doc.terms]
        more_tfs = [tf for _, doc in docs for tf in doc.terms.values()]
        for i, doc in docs:
            lengths[i] = doc.length
        if more:
            pairs = np.concatenate([pairs, np.asarray(more, dtype=np.int64)])
            tfs = np.concatenate([tfs, np.asarray(more_tfs, dtype=np.int32)])
            order = np.argsort(pairs, kind="stable")
            pairs, tfs = pairs[order], tfs[order]
    word_of = pairs // n
    record_of = pairs - word_of * n
    return word_of, record_of, tfs, lengths


def run_starts(values: _IntArray) -> _IntArray:
    """Where each run of equal elements of ``values`` begins."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))


def _trigrams(word: str) -> set[str]:
    return {word[i : i + 3] for i in range(len(word) - 2)}
