"""``InMemoryStore``: the synchronous, stdlib-only LRU + TTL store with ranked search."""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import os
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from . import codec
from .records import (
    Entry,
    ListQuery,
    ListResult,
    Record,
    RecordUpdate,
    SearchHit,
    SearchQuery,
    SearchResult,
)
from .search import (
    CorpusStats,
    SearchIndex,
    Vector,
    check_space,
    filter_anchors,
    indexed_value,
    matches_filter,
    normalize_vector,
    recency_weights,
    validate_filter,
)

__all__ = ["InMemoryStore"]

# Records indexed at once after which the C heap's freed pages go back to the system.
_LARGE_LOAD = 50_000


_new = tuple.__new__

# The write sequence (version) of every in-memory record of this process, shared by all
# stores: a store emptied, cleared or built anew (a namespace dropped and written again)
# never gives a (key, version) pair out twice. ``next`` on it is atomic under the GIL.
VERSIONS = itertools.count(1)


class InMemoryStore:
    """A bounded, in-process key/value store with TTL and ranked keyword search.

    An ``OrderedDict`` keeps least-recently-used order: ``get`` refreshes a record,
    ``search`` does not, and adding past ``max_size`` evicts the least recently used.
    Expired records are dropped lazily and are never returned, listed, counted or found.
    Values are stored as JSON text, so what ``get`` returns is always a fresh copy.

    Args:
        max_size: Most records kept (None = unbounded).
        clock: Monotonic clock in seconds; inject a fake one to test TTLs without sleeping.
        max_value_bytes: Largest accepted value, as JSON, for :meth:`add`.
        epoch_offset: Added to ``clock()`` to give the epoch seconds of the records'
            timestamps (default: ``time.time() - clock()`` when the store is built, so the
            timestamps are wall-clock times that advance with ``clock``).
    """

    def __init__(
        self,
        max_size: int | None = 1000,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_value_bytes: int | None = codec.DEFAULT_MAX_VALUE_BYTES,
        epoch_offset: float | None = None,
    ) -> None:
        self.max_size = codec.validate_max_size(max_size)
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds")
        self._clock = clock
        self._epoch = time.time() - clock() if epoch_offset is None else epoch_offset
        self._max_value_bytes = max_value_bytes
        self._items: OrderedDict[str, Record] = OrderedDict()
        # The expiry, on ``clock``, of each record with a TTL (only those: most have none).
        self._expires: dict[str, float] = {}
        self._index = SearchIndex()
        # (embedder name, dimensions) of the vectors stored here, while any record lives.
        self._space: tuple[str, int] | None = None
        # Records written since the last search, and indexed keys deleted, replaced or evicted
        # since then: the next search applies both, so writes and deletes stay cheap and each
        # record is tokenized at most once.
        # (the entry is kept only until then: the index holds what search needs after).
        self._pending: dict[str, Entry] = {}
        self._stale: set[str] = set()
        # (expires_at, seq, key) per TTL write; entries of records rewritten or deleted since
        # are dropped lazily, and the heap is rebuilt once it holds more than twice the live
        # records with a TTL, so it stays proportional to them.
        self._expiry: list[tuple[float, int, str]] = []
        self._seq = VERSIONS
        self._last_seq = 0
        # The write sequence and key of each write, ascending (two columns, not a tuple per
        # write): list() pages through them by write order. Entries of records rewritten or
        # deleted since are skipped, and the log is rebuilt once it holds more than twice the
        # live records, so it stays proportional to them.
        self._log_seqs = array("q")
        self._log_keys: list[str] = []

    # -- the record-level API used by InMemoryBackend --------------------------------------

    def put(self, entry: Entry) -> int:
        """Store a validated entry; return how many records were evicted to make room.

        Over a live record, ``created_at`` is kept; everything else is the entry's. The
        entry's ``created_at``/``updated_at``, when set, are the record's times instead.
        """
        now = self._clock()
        if self._expiry:
            self._purge(now)
        ttl = entry.ttl
        return self._write(entry, now, None if ttl is None else now + ttl)

    def _write(self, entry: Entry, now: float, expires_at: float | None) -> int:
        if entry.space is not None and entry.vector is not None:
            self._space = check_space(self._space if self._items else None, entry.space)
        seq = next(self._seq)
        self._last_seq = seq
        key = entry.key
        items = self._items
        expires = self._expires
        old = items.get(key)
        stamp = now + self._epoch
        created = entry.created_at
        if created is None:
            created = stamp
            if old is not None and expires.get(key, now + 1.0) > now:
                created = old.created_at
        updated = entry.updated_at
        # tuple.__new__ directly: a named tuple's own __new__ is a Python function.
        record = _new(
            Record,
            (
                key,
                entry.payload,
                entry.metadata,
                seq,
                entry.snapshot,
                created,
                stamp if updated is None else updated,
                None if expires_at is None else expires_at + self._epoch,
                entry.index_text,
            ),
        )
        if old is not None:
            self._unindex(key)
            items[key] = record
            items.move_to_end(key)
        else:
            items[key] = record
        self._pending[key] = entry
        log_keys = self._log_keys
        self._log_seqs.append(seq)
        log_keys.append(key)
        if len(log_keys) > 2 * len(items) + 64:
            self._rebuild_log()
        if expires_at is not None:
            expires[key] = expires_at
            heap = self._expiry
            heapq.heappush(heap, (expires_at, seq, key))
            if len(heap) > 2 * len(expires) + 64:
                self._rebuild_expiry()
        elif old is not None:
            expires.pop(key, None)
        evicted = 0
        max_size = self.max_size
        if max_size is not None:
            while len(items) > max_size:
                old_key = next(iter(items))
                self._remove(old_key)
                evicted += 1
        return evicted

    def get_record(self, key: str) -> Record | None:
        """The live record under ``key``, refreshing its recency; None if absent or expired."""
        record = self._items.get(key)
        if record is None:
            return None
        if self._expires and self._expired(key, self._clock()):
            self._remove(key)
            return None
        self._items.move_to_end(key)
        return record

    def peek(self, key: str) -> Record | None:
        """The live record under ``key`` without refreshing its recency; None if none."""
        record = self._items.get(key)
        if record is None or (self._expires and self._expired(key, self._clock())):
            return None
        return record

    def _expired(self, key: str, now: float) -> bool:
        at = self._expires.get(key)
        return at is not None and at <= now

    def _live(self, key: str, seq: int, now: float) -> bool:
        """Whether the record written as ``seq`` under ``key`` is still there, unexpired."""
        record = self._items.get(key)
        return record is not None and record.seq == seq and not self._expired(key, now)

    def update(self, key: str, change: RecordUpdate) -> Record | None:
        """Apply ``change`` to the live record under ``key``; the new record, or None.

        The record gets a new write sequence and ``updated_at`` (an update is a write) and
        keeps its ``created_at``; what ``change`` leaves out is kept.
        """
        now = self._clock()
        record = self._items.get(key)
        if record is None or self._expired(key, now):
            return None
        if change.payload is None:
            payload, snapshot = record.payload, record.snapshot
            pending = self._pending.get(key)
            vector = pending.vector if pending is not None else self._index.vector(key)
            space = self._space if vector is not None else None
        else:
            payload, snapshot, vector = change.payload, change.snapshot, change.vector
            space = self._space if vector is not None else None
        metadata = change.merged(record.metadata)
        if change.set_ttl:
            expires_at = None if change.ttl is None else now + change.ttl
        else:
            expires_at = self._expires.get(key)
        entry = Entry(
            key,
            payload,
            metadata,
            None,
            vector,
            snapshot=snapshot,
            space=space,
            index_text=change.new_index_text(record.index_text),
        )
        self._write(entry, now, expires_at)
        return self._items[key]

    def list_records(self, query: ListQuery) -> ListResult:
        """One page of live records by write order (does not refresh recency)."""
        now = self._clock()
        if self._expiry:
            self._purge(now)
        horizon = self._last_seq if query.horizon is None else query.horizon
        after = query.after
        newest = query.order == "newest"
        filter_ = query.filter
        items = self._items
        limit = query.limit
        out: list[Record] = []
        if filter_ and filter_anchors(filter_):
            # A selective filter: the index's candidates, sorted, instead of a walk.
            for seq, key in sorted(self._matching(filter_), reverse=newest):
                if seq > horizon or (
                    after is not None and (seq >= after if newest else seq <= after)
                ):
                    continue
                if len(out) == limit:
                    return ListResult(out, horizon, True)
                out.append(items[key])
            return ListResult(out, horizon, False)
        seqs, keys = self._log_seqs, self._log_keys
        if newest:
            top = horizon if after is None else min(horizon, after - 1)
            i = bisect.bisect_left(seqs, top + 1) - 1
            step = -1
        else:
            i = bisect.bisect_left(seqs, (after or 0) + 1)
            step = 1
        n = len(seqs)
        while 0 <= i < n:
            seq, key = seqs[i], keys[i]
            i += step
            if seq > horizon:
                break
            record = items.get(key)
            if record is None or record.seq != seq:
                continue  # rewritten or deleted since
            if filter_ and not matches_filter(record.metadata, filter_):
                continue
            if len(out) == limit:
                return ListResult(out, horizon, True)
            out.append(record)
        return ListResult(out, horizon, False)

    def delete_where(self, filter: Mapping[str, Any]) -> int:
        """Delete every live record whose metadata matches ``filter``; return how many."""
        if self._expiry:
            self._purge(self._clock())
        keys = [key for _, key in self._matching(filter)]
        for key in keys:
            self._remove(key)
        return len(keys)

    def _matching(self, filter: Mapping[str, Any]) -> list[tuple[int, str]]:
        self._sync_index()
        return self._index.matching(filter)

    def _sync_index(self) -> None:
        index = self._index
        if self._stale:
            for key in self._stale:
                index.remove(key)
            self._stale.clear()
        if self._pending:
            # Column by column with C-level maps: the bulk load of many records pays for
            # little Python work per record here.
            keys = list(self._pending)
            entries = list(self._pending.values())
            seqs = map(_SEQ, map(self._items.__getitem__, keys))
            values = list(map(_SNAPSHOT, entries))
            for i, snap in enumerate(values):
                if snap is codec.NO_SNAPSHOT:
                    values[i] = codec.decode(entries[i].payload)
            texts = list(map(_INDEX_TEXT, entries))
            if texts.count(None) != len(texts):
                values = list(map(indexed_value, values, texts))
            metadata = map(_METADATA, entries)
            vectors = map(_VECTOR, entries)
            index.upsert_many(zip(keys, seqs, values, metadata, itertools.repeat(None), vectors))
            self._pending.clear()
            if len(keys) >= _LARGE_LOAD:
                del keys, entries, values, texts
                _release_freed_heap()

    def vectors(
        self, versions: Iterable[tuple[str, int]]
    ) -> tuple[tuple[str, int] | None, list[Vector | None]]:
        """``(space, vectors)``: the unit vector of each live ``(key, write sequence)`` (None
        where there is none, or the record was rewritten or removed since); no recency."""
        now = self._clock()
        items = self._items
        pending = self._pending
        index = self._index
        out: list[Vector | None] = []
        for key, seq in versions:
            if not self._live(key, seq, now):
                out.append(None)
                continue
            entry = pending.get(key)
            if entry is None:
                out.append(index.vector(key))
            else:
                out.append(None if entry.vector is None else normalize_vector(entry.vector).copy())
        return (self._space if items else None), out

    def scan(self) -> list[Record]:
        """Every live record, oldest write first, without refreshing recency."""
        if self._expiry:
            self._purge(self._clock())
        records = list(self._items.values())
        records.sort(key=lambda r: r.seq)
        return records

    def apply_compaction(
        self,
        expected: Mapping[str, int],
        delete: Iterable[str],
        rewrite: Iterable[Entry],
        insert: Entry | None,
    ) -> list[str]:
        """Replace records at once if each of ``expected`` still holds its write sequence.

        Returns ``[]`` when applied, else the keys that changed (and nothing is changed).
        Rewritten records keep their expiry.
        """
        now = self._clock()
        changed = [key for key, seq in expected.items() if not self._live(key, seq, now)]
        if changed:
            return changed
        for key in delete:
            self._remove(key)
        for entry in rewrite:
            at = self._expires.get(entry.key)
            ttl = None if at is None else max(at - now, 1e-9)
            self.put(
                Entry(
                    entry.key,
                    entry.payload,
                    entry.metadata,
                    ttl,
                    entry.vector,
                    space=entry.space,
                    index_text=entry.index_text,
                )
            )
        if insert is not None:
            self.put(insert)
        return []

    def corpus_stats(self, query: SearchQuery) -> CorpusStats:
        """The live records' BM25 statistics for ``query``'s words (see :class:`CorpusStats`)."""
        prepared = query.prepared()
        if prepared is None:
            return CorpusStats(0, 0, {})
        self._purge(self._clock())
        self._sync_index()
        return self._index.corpus_stats(prepared)

    def search_results(self, query: SearchQuery) -> list[SearchResult]:
        """Ranked hits for a validated query (does not refresh recency)."""
        prepared = query.prepared()
        if prepared is None:
            return []
        vector = query.vector
        if vector is not None and query.space is not None and self._items:
            self._space = check_space(self._space, query.space)
        self._purge(self._clock())
        self._sync_index()
        index = self._index
        items = self._items
        recency = recency_weights(
            query.recency_half_life,
            self._clock() + self._epoch,
            lambda key: items[key].updated_at,
        )
        scored = index.rank(prepared, query, recency)
        hits = [(score, items[key]) for score, _, key in scored]
        # The stored snapshot rides along, so the primitive hands out a copy of it instead of
        # decoding the JSON again (as for get).
        return [SearchResult(r.key, r.payload, score, r.metadata, r.snapshot) for score, r in hits]

    # -- the friendly synchronous API -------------------------------------------------------

    def add(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a JSON value under ``key`` (replacing any previous value).

        Raises:
            TypeError: ``key`` is not a str, ``value``/``metadata`` are not JSON, or ``ttl``
                is not a number.
            ValueError: ``key`` is empty or too long, ``ttl`` <= 0, or the value is too large.
        """
        key = codec.validate_key(key)
        ttl = codec.validate_ttl(ttl)
        meta = codec.validate_metadata(metadata)
        payload, snap = codec.encode_snapshot(value, self._max_value_bytes)
        self.put(Entry(key, payload, meta, ttl, snapshot=snap))

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` (a fresh copy), refreshing its recency; ``default`` if none."""
        record = self.get_record(codec.validate_key(key))
        return default if record is None else codec.value_of(record.payload, record.snapshot)

    def search(
        self, query: str, limit: int = 5, *, filter: Mapping[str, Any] | None = None
    ) -> list[SearchHit]:
        """Keyword search, best first (see :mod:`tta_dev_primitives.memory.search`)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        filter = validate_filter(filter)
        results = self.search_results(
            SearchQuery(query, codec.validate_limit(limit), "keyword", filter)
        )
        return [
            SearchHit(
                r.key, codec.decode(r.payload), r.score, codec.copy_metadata(r.metadata) or {}
            )
            for r in results
        ]

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if a live record was deleted."""
        if key not in self._items:
            return False
        expired = self._expired(key, self._clock())
        self._remove(key)
        return not expired

    def clear(self) -> int:
        """Delete every record; return how many live records there were."""
        count = self.size()
        self._items.clear()
        self._expires.clear()
        self._index.clear()
        self._log_seqs = array("q")
        self._log_keys = []
        self._pending.clear()
        self._stale.clear()
        self._expiry.clear()
        self._space = None
        return count

    def size(self) -> int:
        """Number of live records."""
        if self._expiry:
            self._purge(self._clock())
        return len(self._items)

    def keys(self) -> list[str]:
        """Live keys, least recently used first."""
        if self._expiry:
            self._purge(self._clock())
        return list(self._items)

    def __len__(self) -> int:
        return self.size()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._items and not self._expired(key, self._clock())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    # -- internals --------------------------------------------------------------------------

    def _unindex(self, key: str) -> None:
        if self._pending.pop(key, None) is None:
            stale = self._stale
            stale.add(key)
            if len(stale) > len(self._items) + 64:
                # Many deletes and no search: forget them now, so the index stays
                # proportional to the live records.
                index = self._index
                for old in stale:
                    index.remove(old)
                stale.clear()

    def _remove(self, key: str) -> None:
        del self._items[key]
        if self._expires:
            self._expires.pop(key, None)
        self._unindex(key)

    def _rebuild_log(self) -> None:
        log = sorted(zip(map(_SEQ, self._items.values()), self._items, strict=True))
        self._log_seqs = array("q", [seq for seq, _ in log])
        self._log_keys = [key for _, key in log]

    def _rebuild_expiry(self) -> None:
        items = self._items
        self._expiry = [(at, items[key].seq, key) for key, at in self._expires.items()]
        heapq.heapify(self._expiry)

    def _purge(self, now: float) -> None:
        heap = self._expiry
        items = self._items
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            record = items.get(key)
            # A stale heap entry (the key was rewritten or deleted since) is just dropped.
            if record is not None and record.seq == seq:
                self._remove(key)


def _release_freed_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere).

    A bulk load frees many temporary blocks; glibc keeps the freed pages of its heap in the
    process (about 20 MB after indexing 100k records), and Python cannot ask for them back
    by any other means. Called once after a large bulk load, not per write.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        import ctypes

        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (ValueError, OSError, AttributeError):  # not glibc (no such name, or no symbol)
        return None
    return trim


_SEQ = attrgetter("seq")
_SNAPSHOT = attrgetter("snapshot")
_METADATA = attrgetter("metadata")
_VECTOR = attrgetter("vector")
_INDEX_TEXT = attrgetter("index_text")
