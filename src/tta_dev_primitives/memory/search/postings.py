"""The words of a :class:`~.index.SearchIndex`: each word's postings, and its trigrams.

A record is a slot with a generation number (kept by the index); a posting counts only while
its generation equals its slot's, so a delete never touches postings. Each word's postings
are three growable arrays (int32 slot and generation, uint8 term frequency: 9 bytes a
posting; a frequency over 255 is kept aside, by slot) viewed
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
_Uint8Array = npt.NDArray[np.uint8]
# A word's postings are compacted once dead ones exceed live ones plus this slack.
_SLACK = 16
# The largest term frequency kept in a posting: a larger one is kept in ``over``.
_TF_MAX = 255


class WordPostings:
    """One word's postings: parallel growable arrays of slot, generation (int32) and
    frequency (uint8: 9 bytes a posting); ``over`` holds, by slot, the frequencies over
    255 (the posting says 255) of the latest postings of their slots, None while there are
    none."""

    __slots__ = ("df", "gens", "over", "slots", "tfs")

    def __init__(self) -> None:
        self.slots = array("i")
        self.gens = array("i")
        self.tfs = array("B")
        self.df = 0  # live records holding the word
        self.over: dict[int, int] | None = None

    def views(self) -> tuple[_Int32Array, _Int32Array, _Uint8Array]:
        return (
            np.frombuffer(self.slots, dtype=np.int32),
            np.frombuffer(self.gens, dtype=np.int32),
            np.frombuffer(self.tfs, dtype=np.uint8),
        )

    def note_frequencies(self, slots: Iterable[int], tfs: Iterable[int]) -> None:
        """Keep the frequencies over 255 of postings just added at ``slots`` (and forget
        those of earlier postings at the same slots)."""
        over = self.over
        for slot, tf in zip(slots, tfs, strict=True):
            if tf > _TF_MAX:
                if over is None:
                    over = self.over = {}
                over[slot] = tf
            elif over:
                over.pop(slot, None)

    def frequencies(self, slots: _Int32Array, tfs: _Uint8Array) -> _FloatArray:
        """The term frequencies of postings (``slots``, ``tfs``: live ones), as float64."""
        out = tfs.astype(np.float64)
        over = self.over
        if over:
            big = np.flatnonzero(tfs == _TF_MAX)
            out[big] = [over.get(slot, _TF_MAX) for slot in slots[big].tolist()]
        return out


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
            plist.tfs.append(min(tf, _TF_MAX))
            if tf > _TF_MAX or plist.over:
                plist.note_frequencies((slot,), (tf,))
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
        tf_bytes = memoryview(np.minimum(tfs, _TF_MAX).astype(np.uint8).tobytes())
        big = bool((tfs > _TF_MAX).any())
        starts = run_starts(word_of)
        stops = np.append(starts[1:], len(word_of))[: len(starts)]
        for word, start, stop in zip(
            word_of[starts].tolist(), starts.tolist(), stops.tolist(), strict=True
        ):
            term = names[word]
            plist = lists.get(term)
            if plist is None:
                plist = self._new(term)
            plist.slots.frombytes(slot_bytes[4 * start : 4 * stop])
            plist.gens.frombytes(gen_bytes[4 * start : 4 * stop])
            plist.tfs.frombytes(tf_bytes[start:stop])
            if big or plist.over:
                plist.note_frequencies(slots[start:stop].tolist(), tfs[start:stop].tolist())
            plist.df += stop - start
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
        if plist.over:
            kept = set(new_slots[new_tfs == _TF_MAX].tolist())
            plist.over = {s: tf for s, tf in plist.over.items() if s in kept} or None
        plist.slots = array("i", new_slots.tobytes())
        plist.gens = array("i", new_gens.tobytes())
        plist.tfs = array("B", new_tfs.tobytes())

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
            plist.tfs = array("B", new_tfs.tobytes())

    def accumulate(
        self,
        query: KeywordQuery,
        acc: _FloatArray,
        lengths: _Int32Array,
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
            df = plist.df if stats is None else stats.df.get(term, plist.df)
            tf = plist.frequencies(at, tfs)
            # int32 lengths: numpy turns them into float64 exactly, as bm25 wants them.
            length = cast(_FloatArray, lengths[where])
            acc[where] += bm25(tf, length, avgdl, idf(df, n_docs))
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
        """A cheap estimate: dict entries and arrays per word, 9 bytes per posting."""
        return len(self.lists) * 400 + self.n_postings * 9


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
