"""``SearchIndex``: the vectorized, incremental search index of one namespace.

(About 750 lines, one piece: the writes, expiry and search paths all work on the per-slot
arrays kept here; the words, vectors and metadata are in their own modules.)

Any in-process user keeps one :class:`SearchIndex` per namespace and feeds it the namespace's
writes; it ranks with the definitions of :mod:`tta_dev_primitives.memory.search`, to the last
bit for BM25 and exactly for cosine, so every user of it returns the same hits in the same
order. It assumes nothing of where the records live (the in-memory store, the fallback
mirror and the Redis backend's in-process copy all use it the same way).

API (stable; everything else is private)::

    index = SearchIndex()
    index.upsert(key, seq, value, metadata=None, expires_at=None, vector=None)
    index.upsert_many([(key, seq, value, metadata, expires_at, vector), ...])  # bulk load
    index.remove(key) -> bool          # True if the key was indexed
    index.clear()
    len(index), key in index
    index.search(query, limit, mode="keyword", vector=None, filter=None, now=None,
                 fusion="convex", semantic_weight=0.5) -> list[(score, seq, key)]
    index.search_keyword(prepared_query, limit, filter=None, now=None)
    index.search_semantic(unit_vector, limit, filter=None, now=None)
    index.keyword_bound(prepared_query) -> float   # for fusion: the best possible score
    index.rank(prepared_query, search_query, recency=None) -> list[(score, seq, key)]
    index.page(filter, horizon=, after=, newest=, limit=) -> list[(seq, key)]  # write order
    index.last_seq() -> int            # the highest live write sequence
    index.memory_bytes() -> int        # a cheap estimate of what the index holds

* ``seq`` is the record's write sequence number (ties rank newest first: higher ``seq``).
* ``value`` is the record's JSON value, or a ready :class:`~.search.Document`.
* ``expires_at`` is an absolute time in the caller's clock; a search given ``now`` drops every
  record with ``expires_at <= now`` first (a search without ``now`` applies no expiry).
* ``vector`` is the record's embedding (any sequence or array of numbers; it is normalized
  and kept as float32). All vectors of an index have one length: another length is a
  ``ValueError``. :meth:`SearchIndex.check_space` records which embedder made them.
* Results are ``(score, seq, key)`` tuples, best first; the caller maps keys to records.

How it is built, and why it stays fast and small:

* Each record has a slot; per-slot arrays hold its length, write sequence and a generation
  number. Its words are in :class:`~.postings.Postings` (one growable int32 array triple a
  word, vectorized at search time; top-k is an ``argpartition``), its vector in
  :class:`~.vectors.Vectors` (one float32 matrix) and its metadata in
  :class:`~.fields.MetadataFields` (an index of field values: a filter is a lookup giving a
  mask, not a scan).
* Generations are int32: before the counter would pass 2**31 - 1, the live records are
  numbered from 0 again (dead postings dropped), once every two billion writes.
* A record's leaves are kept as given (its value's own strings, shared with the store that
  holds the value), not as case-folded copies: the few candidates of a substring check are
  case-folded then, and a released record's words are found again from them.
* A bulk load works a piece of 8192 records at a time, so its temporary arrays stay small
  (the C allocator keeps large freed blocks in the process: one pass over 100k records left
  about 100 MB of them).
* Deletes and overwrites are tombstones: a posting counts only while its generation equals
  its slot's, so a delete never touches postings and a freed slot is reused at once. No
  search rebuilds anything and every structure is bounded by the live records.
"""

from __future__ import annotations

import heapq
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import is_not, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ..records import SearchQuery

from .fields import MetadataFields
from .fusion import DEFAULT_SEMANTIC_WEIGHT, Fusion, SearchMode, rank_by_mode
from .postings import Postings, bulk_postings
from .scoring import SUBSTRING_BONUS, CorpusStats, Scored, keyword_bound, kth_floor
from .text import (
    Document,
    KeywordQuery,
    Leaves,
    Vector,
    leaves_holding,
    make_document,
    normalize_vector,
    pack_leaves,
    prepare_query,
    string_leaves,
    tokenize,
    tokenize_many,
)
from .vectors import Vectors, grow

__all__ = ["IndexRecord", "SearchIndex", "check_space"]

IndexRecord = tuple[
    str, int, Any, "Mapping[str, Any] | None", "float | None", "Sequence[float] | Vector | None"
]
"""(key, seq, value or Document, metadata, expires_at, vector): one record for upsert_many."""

_TINY = 5e-324  # the least positive float: "scores at all"
# Candidates whose substring check is done in one go before the bound is tightened again.
_CHUNK = 1024
# Records indexed at once by upsert_many: its temporary arrays stay this small, however many
# records are loaded (large temporaries freed by the C allocator stay in the process).
_BULK = 8192
# Generations are int32: the live records are numbered again before the counter passes this.
_MAX_GEN = 2**31 - 1
_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]
_Int32Array = npt.NDArray[np.int32]


class SearchIndex:
    """The search index of one namespace (see the module docstring for the API)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._keys: list[str | None] = []
        # Each record's string leaves as given (not case-folded: a value's own strings,
        # shared with whoever holds the value); its words are found from them again when
        # it is released.
        self._leaves: list[Leaves] = []
        self._free: list[int] = []
        cap = 16
        self._seq = np.zeros(cap, dtype=np.int64)
        self._gen = np.full(cap, -1, dtype=np.int32)  # -1: free slot
        self._length = np.zeros(cap, dtype=np.float64)
        self._next_gen = 0
        self._total_length = 0
        self._words = Postings()
        self._fields = MetadataFields()
        self._vectors = Vectors(cap)
        self._space: tuple[str, int] | None = None
        # Expiry: (expires_at, generation, slot); entries of rewritten records are dropped
        # lazily, and the heap is rebuilt once it holds twice the live expiring records.
        self._expiry: list[tuple[float, int, int]] = []
        self._n_expiring = 0
        self._expires: dict[int, float] = {}

    # -- writes ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    @property
    def total_length(self) -> int:
        """Sum of the live records' lengths in words."""
        return self._total_length

    @property
    def dimensions(self) -> int | None:
        """Length of the indexed vectors (None before the first vector)."""
        return self._vectors.dimensions

    def df(self, term: str) -> int:
        """Number of live records holding ``term`` (a case-folded word)."""
        return self._words.df(term)

    def check_space(self, name: str, dimensions: int) -> None:
        """Record which embedder made this index's vectors, or refuse another one.

        Raises:
            ValueError: The index holds vectors of another embedder (name or dimensions).
        """
        empty = not self._slot_of
        self._space = check_space(None if empty else self._space, (name, dimensions))

    def upsert(
        self,
        key: str,
        seq: int,
        value: Any,
        metadata: Mapping[str, Any] | None = None,
        expires_at: float | None = None,
        vector: Sequence[float] | Vector | None = None,
    ) -> None:
        """Index one record under ``key``, replacing what was there.

        Raises:
            ValueError: ``vector`` has another length than the vectors already indexed.
        """
        doc = value if isinstance(value, Document) else make_document(value)
        vec = _doc_vector(doc) if vector is None else normalize_vector(vector)
        self._vectors.check(vec)
        self._insert(key, seq, doc, metadata, expires_at, vec)

    def upsert_many(self, records: Iterable[IndexRecord]) -> None:
        """Index many records (the bulk load): like :meth:`upsert` for each, in order.

        The records are indexed :data:`_BULK` at a time. The words of those are found and
        counted at once (:func:`~.search.tokenize_many`, then one sort of (word, record)
        pairs), and each word's postings are appended in one piece, so what is left per
        record is a few list assignments; slot arrays and vectors are written a piece at a
        time. Pieces keep the temporary arrays small whatever the number of records: the
        C allocator keeps large freed blocks in the process, so one pass over 100k records
        would leave about 100 MB behind it.
        """
        rows = list(records)
        if not rows:
            return
        keys = list(map(itemgetter(0), rows))
        if len(set(keys)) != len(keys):
            # A key written twice: the last write wins, in the order of the last writes.
            last = {key: i for i, key in enumerate(keys)}
            rows = [rows[i] for i in sorted(last.values())]
        del keys
        vectors = list(map(itemgetter(5), rows))
        documents = any(
            issubclass(kind, Document) for kind in set(map(type, map(itemgetter(2), rows)))
        )
        if documents or any(map(is_not, vectors, repeat(None))):
            self._check_vectors(rows)
        del vectors
        for start in range(0, len(rows), _BULK):
            self._upsert_piece(rows[start : start + _BULK])

    def _check_vectors(self, rows: list[IndexRecord]) -> None:
        """Refuse rows whose vectors have another length (before anything changes, so a bad
        batch indexes nothing), and make room for all of their vectors at once."""
        self._vectors.check_many(
            row[2].vector if row[5] is None and isinstance(row[2], Document) else row[5]
            for row in rows
        )

    def _upsert_piece(self, rows: list[IndexRecord]) -> None:
        """:meth:`upsert_many` of checked rows with distinct keys."""
        keys = list(map(itemgetter(0), rows))
        # Columns (not zip(*rows), which holds one GC-tracked iterator per row).
        seqs, values, metas, expiries, vecs = (list(map(itemgetter(i), rows)) for i in range(1, 6))
        n = len(rows)
        flat: list[str]  # the case-folded string leaves of the records given as values
        owner: list[int] | None = None  # flat's record of each leaf (None: one each, in order)
        docs: list[tuple[int, Document]] = []
        leaves_of: Sequence[Leaves]
        if set(map(type, values)) == {str}:
            flat = list(map(str.casefold, values))
            leaves_of = values  # one leaf each: kept as the str itself
        else:
            flat, owner = [], []
            packed: list[Leaves] = []
            leaves_of = packed
            for i, value in enumerate(values):
                if isinstance(value, Document):
                    docs.append((i, value))
                    packed.append(pack_leaves(value.leaves))
                    if vecs[i] is None:
                        vecs[i] = value.vector
                    continue
                if type(value) is str:
                    packed.append(value)
                    flat.append(value.casefold())
                    owner.append(i)
                    continue
                leaves = string_leaves(value)
                packed.append(pack_leaves(tuple(leaves)))
                flat.extend([leaf.casefold() for leaf in leaves])
                owner.extend([i] * len(leaves))
        vocab: dict[str, int] = {}
        leaf_at, word_at = tokenize_many(flat, vocab)
        del flat
        word_of, record_of, tfs, lengths = bulk_postings(vocab, leaf_at, word_at, owner, docs, n)

        slot_of = self._slot_of
        for key in slot_of.keys() & keys if slot_of else ():
            self._release(slot_of.pop(key))
        slots = self._alloc_many(n)
        index = np.asarray(slots, dtype=np.int64)
        if self._next_gen + n > _MAX_GEN:
            self._renumber()
        gen0 = self._next_gen
        self._next_gen += n
        self._gen[index] = np.arange(gen0, gen0 + n, dtype=np.int32)
        self._seq[index] = seqs
        self._length[index] = lengths
        self._total_length += int(lengths.sum())

        self._words.add_runs(
            list(vocab),
            word_of,
            index[record_of].astype(np.int32),
            (record_of + gen0).astype(np.int32),
            tfs,
        )
        self._slot_of.update(zip(keys, slots, strict=True))
        for column, items in ((self._keys, keys), (self._leaves, leaves_of)):
            deque(map(column.__setitem__, slots, items), maxlen=0)
        add_fields = self._fields.add
        for slot, metadata in zip(slots, metas, strict=True):
            add_fields(slot, metadata)
        for slot, gen, expires_at in zip(slots, range(gen0, gen0 + n), expiries, strict=True):
            if expires_at is not None:
                self._expires[slot] = expires_at
                self._n_expiring += 1
                heapq.heappush(self._expiry, (expires_at, gen, slot))
        self._vectors.add_many(
            [(slot, v) for slot, v in zip(slots, vecs, strict=True) if v is not None]
        )

    def vector(self, key: str) -> Vector | None:
        """A copy of the unit vector indexed under ``key`` (None: no vector or no key)."""
        slot = self._slot_of.get(key)
        return None if slot is None else self._vectors.get(slot)

    def remove(self, key: str) -> bool:
        """Forget ``key``; True if it was indexed."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return False
        self._release(slot)
        return True

    def clear(self) -> None:
        """Forget every record (and the embedder identity)."""
        self._reset()

    def _insert(
        self,
        key: str,
        seq: int,
        doc: Document,
        metadata: Mapping[str, Any] | None,
        expires_at: float | None,
        vec: Vector | None,
    ) -> int:
        old = self._slot_of.get(key)
        if old is not None:
            self._release(old)
        slot = self._alloc()
        self._slot_of[key] = slot
        if self._next_gen >= _MAX_GEN:
            self._renumber()
        gen = self._next_gen
        self._next_gen = gen + 1
        self._gen[slot] = gen
        self._seq[slot] = seq
        self._length[slot] = doc.length
        self._total_length += doc.length
        self._keys[slot] = key
        self._leaves[slot] = pack_leaves(doc.leaves)
        self._words.add(slot, gen, doc.terms)
        self._fields.add(slot, metadata)
        if expires_at is not None:
            self._expires[slot] = expires_at
            self._n_expiring += 1
            heapq.heappush(self._expiry, (expires_at, gen, slot))
            if len(self._expiry) > 2 * self._n_expiring + 64:
                self._expiry = [(t, int(self._gen[s]), s) for s, t in self._expires.items()]
                heapq.heapify(self._expiry)
        if vec is not None:
            self._vectors.add_rows([slot], vec[None, :])
        return slot

    def _alloc_many(self, count: int) -> list[int]:
        """``count`` free slots: freed ones first, then new ones (arrays grown once)."""
        take = min(count, len(self._free))
        slots = [self._free.pop() for _ in range(take)]
        start = len(self._keys)
        extra = count - take
        if extra:
            end = start + extra
            if end > len(self._gen):
                cap = max(end, 2 * len(self._gen))
                self._grow(cap)
            self._keys.extend([None] * extra)
            self._leaves.extend([()] * extra)
            self._fields.extend(extra)
            slots.extend(range(start, end))
        return slots

    def _alloc(self) -> int:
        if self._free:
            return self._free.pop()
        slot = len(self._keys)
        if slot == len(self._gen):
            self._grow(2 * slot)
        self._keys.append(None)
        self._leaves.append(())
        self._fields.meta.append(None)
        return slot

    def _grow(self, cap: int) -> None:
        """Per-slot arrays for ``cap`` slots."""
        self._seq = grow(self._seq, cap, 0)
        self._gen = grow(self._gen, cap, -1)
        self._length = grow(self._length, cap, 0.0)
        self._vectors.grow_slots(cap)

    def _release(self, slot: int) -> None:
        self._gen[slot] = -1
        self._total_length -= int(self._length[slot])
        self._keys[slot] = None
        held = self._leaves[slot]
        self._leaves[slot] = ()
        # The record's words, found again from its leaves (cheaper than keeping them).
        if type(held) is str:
            words = tokenize(held)
        else:
            words = [word for leaf in held for word in tokenize(leaf)]
        self._words.release(set(words), self._gen)
        self._fields.remove(slot)
        if self._expires.pop(slot, None) is not None:
            self._n_expiring -= 1
        self._vectors.release(slot)
        self._free.append(slot)

    def _renumber(self) -> None:
        """Number the live records' generations from 0 again (their postings with them,
        dead postings dropped), so that the int32 generations never wrap around."""
        gen = self._gen
        renumbered = np.full(len(gen), -1, dtype=np.int32)
        live = np.flatnonzero(gen >= 0)
        renumbered[live] = np.arange(len(live), dtype=np.int32)
        self._words.renumber(gen, renumbered)
        self._gen = renumbered
        self._next_gen = len(live)
        # Expiry entries name generations: the old numbers would now match other records.
        self._expiry = [(t, int(renumbered[s]), s) for s, t in self._expires.items()]
        heapq.heapify(self._expiry)

    # -- expiry ------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Forget every record with ``expires_at <= now``; return how many."""
        heap = self._expiry
        removed = 0
        while heap and heap[0][0] <= now:
            _, gen, slot = heapq.heappop(heap)
            if self._gen[slot] == gen:
                key = self._keys[slot]
                assert key is not None
                del self._slot_of[key]
                self._release(slot)
                removed += 1
        return removed

    # -- search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        limit: int,
        *,
        mode: SearchMode = "keyword",
        vector: Sequence[float] | Vector | None = None,
        filter: Mapping[str, Any] | None = None,
        now: float | None = None,
        fusion: Fusion = "convex",
        semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    ) -> list[Scored]:
        """Rank the live records for ``query`` in ``mode`` (semantic needs ``vector``)."""
        prepared = prepare_query(query)
        if prepared is None:
            return []
        if now is not None:
            self.expire(now)
        q = None if vector is None else normalize_vector(vector)
        return rank_by_mode(
            mode,
            limit,
            lambda n: self.search_keyword(prepared, n, filter),
            lambda n: [] if q is None else self.search_semantic(q, n, filter),
            fusion=fusion,
            semantic_weight=semantic_weight,
            keyword_bound=lambda: self.keyword_bound(prepared),
        )

    def rank(
        self,
        prepared: KeywordQuery,
        query: SearchQuery,
        recency: Callable[[str], float] | None = None,
    ) -> list[Scored]:
        """Rank for a validated backend query (its mode, limit, vector, filter, fusion,
        weight and phase observer; ``recency`` weighs each key): what every backend's search
        runs."""
        vector = query.vector
        filter_ = query.filter
        stats = query.stats
        return rank_by_mode(
            query.mode,
            query.limit,
            lambda limit: self.search_keyword(prepared, limit, filter_, stats=stats),
            lambda limit: [] if vector is None else self.search_semantic(vector, limit, filter_),
            fusion=query.fusion,
            semantic_weight=query.semantic_weight,
            phases=query.phases,
            keyword_bound=lambda: self.keyword_bound(prepared, stats),
            recency=recency,
            raw=query.raw,
        )

    def keyword_bound(self, query: KeywordQuery, stats: CorpusStats | None = None) -> float:
        """:func:`~.search.keyword_bound` of ``query`` over this index's live records (or
        over the records ``stats`` describes)."""
        if stats is not None:
            return keyword_bound(query, stats.df, stats.n_docs)
        return keyword_bound(query, {t: self.df(t) for t in query.terms}, len(self._slot_of))

    def corpus_stats(self, query: KeywordQuery) -> CorpusStats:
        """This index's BM25 statistics for ``query``'s words (see :class:`CorpusStats`)."""
        return CorpusStats(
            len(self._slot_of), self._total_length, {t: self.df(t) for t in query.terms}
        )

    def _filter_mask(self, filter: Mapping[str, Any] | None) -> npt.NDArray[np.bool_] | None:
        """Slots whose metadata matches ``filter`` (None: no filter)."""
        if not filter:
            return None
        found = self.filter_slots(filter)
        mask = np.zeros(len(self._keys), dtype=bool)
        if found:
            mask[np.fromiter(found, dtype=np.int64, count=len(found))] = True
        return mask

    def filter_slots(self, filter: Mapping[str, Any]) -> list[int]:
        """The live slots whose metadata matches a validated, non-empty ``filter``
        (:meth:`~.fields.MetadataFields.matching`: a lookup of its equality conditions, then
        :func:`~.filters.matches_filter` of the slots they leave)."""
        return self._fields.matching(filter, self._slot_of.values())

    def matching(self, filter: Mapping[str, Any] | None) -> list[tuple[int, str]]:
        """``(seq, key)`` of every live record whose metadata matches ``filter``."""
        keys = self._keys
        seqs = self._seq
        if not filter:
            return [(int(seqs[slot]), key) for key, slot in self._slot_of.items()]
        out = []
        for slot in self.filter_slots(filter):
            key = keys[slot]
            assert key is not None
            out.append((int(seqs[slot]), key))
        return out

    def last_seq(self) -> int:
        """The highest write sequence of a live record (0 when empty)."""
        live = self._gen[: len(self._keys)] >= 0
        return int(self._seq[: len(self._keys)][live].max(initial=0))

    def page(
        self,
        filter: Mapping[str, Any] | None,
        *,
        horizon: int,
        after: int | None,
        newest: bool,
        limit: int,
    ) -> list[tuple[int, str]]:
        """At most ``limit`` ``(seq, key)`` of the live records matching ``filter`` with a
        sequence at most ``horizon`` and beyond ``after``, in write order (``newest``:
        descending). Vectorized: one pass over the candidates' sequences, then a partial
        sort of the page."""
        n = len(self._keys)
        if filter:
            found = self.filter_slots(filter)
            slots = np.fromiter(found, dtype=np.int64, count=len(found))
        else:
            slots = np.flatnonzero(self._gen[:n] >= 0)
        seqs = self._seq[slots]
        mask = seqs <= horizon
        if after is not None:
            mask &= (seqs < after) if newest else (seqs > after)
        slots, seqs = slots[mask], seqs[mask]
        order_by = -seqs if newest else seqs
        if len(seqs) > limit:
            part = np.argpartition(order_by, limit - 1)[:limit]
            slots, seqs, order_by = slots[part], seqs[part], order_by[part]
        keys = self._keys
        out = []
        for i in np.argsort(order_by, kind="stable").tolist():
            key = keys[int(slots[i])]
            assert key is not None
            out.append((int(seqs[i]), key))
        return out

    def search_keyword(
        self,
        query: KeywordQuery,
        limit: int | None,
        filter: Mapping[str, Any] | None = None,
        now: float | None = None,
        *,
        stats: CorpusStats | None = None,
    ) -> list[Scored]:
        """The best ``limit`` records for a prepared query (None = all), as
        :func:`~.search.rank_keyword` over every live record ranks them (with the BM25
        statistics ``stats`` instead of this index's own, when given)."""
        if now is not None:
            self.expire(now)
        n_docs = len(self._slot_of)
        if not n_docs:
            return []
        total = self._total_length
        if stats is not None:
            n_docs, total = stats.n_docs, stats.total_length
        avgdl = total / n_docs if total else 1.0
        acc = np.zeros(len(self._keys))
        self._words.accumulate(query, acc, self._length, self._gen, n_docs, avgdl, stats)
        mask = self._filter_mask(filter)
        self._add_bonus(query, acc, mask, limit)
        if mask is None and limit is not None and len(acc) > limit:
            # Only scores at least a bound of the limit-th best can be in the top: one pass
            # instead of gathering every record that scores.
            slots = np.flatnonzero(acc >= max(kth_floor(acc, limit), _TINY))
            return self._top(slots, acc[slots], limit)
        eligible = acc > 0.0
        if mask is not None:
            eligible &= mask
        slots = np.flatnonzero(eligible)
        return self._top(slots, acc[slots], limit)

    def _add_bonus(
        self,
        query: KeywordQuery,
        acc: _FloatArray,
        mask: npt.NDArray[np.bool_] | None,
        limit: int | None,
    ) -> None:
        """Add the substring bonus to ``acc`` for every record that can still use it."""
        text = query.text
        if not query.terms:
            # No word characters: only a substring can match; test every live record.
            cands: npt.NDArray[Any] = np.flatnonzero(self._gen >= 0)
        else:
            # Every record holding the query has, for its longest word, a word containing it.
            parts = self._words.holders(max(query.terms, key=len), self._gen)
            if not parts:
                return
            cands = np.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0].copy()
            if query.terms == (text,):
                # The query is one word: containing a word that contains it is the rule.
                if mask is not None:
                    cands = cands[mask[cands]]
                acc[cands] += SUBSTRING_BONUS
                return
        if mask is not None:
            cands = cands[mask[cands]]
        leaves = self._leaves
        if limit is None or len(cands) <= _CHUNK:
            hits = leaves_holding(text, cands.tolist(), leaves)
            acc[hits] += SUBSTRING_BONUS
            return
        # Only a record within the bonus of the current k-th best can still enter the top:
        # test candidates best first, and stop once the rest cannot reach the k-th score.
        kth = self._kth(acc, mask, limit)
        cands = cands[acc[cands] + SUBSTRING_BONUS >= kth]
        cands = cands[np.argsort(-acc[cands], kind="stable")]
        for start in range(0, len(cands), _CHUNK):
            chunk = cands[start : start + _CHUNK]
            if acc[chunk[0]] + SUBSTRING_BONUS < kth:
                break
            hits = leaves_holding(text, chunk.tolist(), leaves)
            if hits:
                acc[hits] += SUBSTRING_BONUS
                kth = self._kth(acc, mask, limit)

    def _kth(self, acc: _FloatArray, mask: npt.NDArray[np.bool_] | None, limit: int) -> float:
        """At most the ``limit``-th best score so far, close to it (0 if fewer records
        score): a bound, which is all the pruning needs, in one pass."""
        scores = acc[mask] if mask is not None else acc
        if len(scores) <= limit:
            return 0.0
        return kth_floor(scores, limit)

    def _top(self, slots: _IntArray, values: _FloatArray, limit: int | None) -> list[Scored]:
        """The best ``limit`` of ``slots`` by their ``values`` (one per slot), ties newest
        first."""
        if limit is not None and len(slots) > limit:
            # Every one of the best limit scores is at least this bound.
            keep = values >= kth_floor(values, limit)
            slots, values = slots[keep], values[keep]
        seqs = self._seq[slots]
        order = np.lexsort((-seqs, -values))
        if limit is not None:
            order = order[:limit]
        keys = self._keys
        return [
            (score, seq, keys[slot])
            for score, seq, slot in zip(
                values[order].tolist(), seqs[order].tolist(), slots[order].tolist(), strict=True
            )
        ]

    def search_semantic(
        self,
        vector: Sequence[float] | Vector,
        limit: int | None,
        filter: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> list[Scored]:
        """The ``limit`` records most similar to a unit ``vector`` (None = all), exactly as
        :func:`~.search.rank_semantic` over every live record ranks them."""
        if now is not None:
            self.expire(now)
        q = np.asarray(vector, dtype=np.float32)
        vectors = self._vectors
        if not vectors.searchable(q):
            return []
        slots, exact = vectors.nearest(q, self._filter_mask(filter), limit)
        return self._top(slots, exact, limit)

    # -- size --------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """A cheap estimate of the memory this index holds, in bytes."""
        per_slot = self._seq.nbytes + self._gen.nbytes + self._length.nbytes
        slots = len(self._keys)
        # Lists and dict entries per slot, leaves as average text.
        text = self._total_length * 8
        return (
            per_slot
            + slots * 200
            + self._words.memory_bytes()
            + text
            + self._vectors.memory_bytes()
            + sys.getsizeof(self._slot_of)
        )


def check_space(current: tuple[str, int] | None, new: tuple[str, int]) -> tuple[str, int]:
    """The embedder identity a namespace keeps: ``new`` if it has none, else ``current``.

    Raises:
        ValueError: ``new`` differs from ``current`` (another embedder's vectors would give
            meaningless scores), naming both.
    """
    if current is None or current == new:
        return new
    raise ValueError(
        f"this namespace holds vectors of embedder {current[0]!r} ({current[1]} dimensions); "
        f"embedder {new[0]!r} ({new[1]} dimensions) cannot search or add to it: use one "
        "embedder per namespace, or clear it first"
    )


def _doc_vector(doc: Document) -> Vector | None:
    vector = doc.vector
    if vector is None or (isinstance(vector, np.ndarray) and vector.dtype == np.float32):
        return vector  # make_document normalized it already
    return normalize_vector(vector)
