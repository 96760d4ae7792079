"""The storage strategy contract: what every memory backend provides.

A backend stores JSON-encoded records per namespace and answers searches with the shared
ranking of :mod:`tta_dev_primitives.memory.search`. It needs no base class: any object with
these methods satisfies :class:`MemoryBackend`. Validation, encoding, tracing and metrics
happen once, in :class:`~tta_dev_primitives.memory.MemoryPrimitive`, before a backend is
called; a backend maps its client's failures to :class:`MemoryBackendError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from opentelemetry.util.types import AttributeValue

from ..records import (
    Entry,
    ListQuery,
    ListResult,
    Namespace,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
)
from ..search import CorpusStats, Vector

__all__ = [
    "BackendInfo",
    "CompactingBackend",
    "CompactionPlan",
    "Entry",
    "MAX_TOMBSTONES",
    "HistoryBackend",
    "ListQuery",
    "ListResult",
    "MemoryBackend",
    "Namespace",
    "PingableBackend",
    "Record",
    "RecordUpdate",
    "SearchQuery",
    "SearchResult",
    "StatsBackend",
    "StoredVectors",
    "SyncMemoryBackend",
    "VectorBackend",
    "Version",
]


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What a backend says of itself without I/O.

    Attributes:
        name: Short backend name (``"in_memory"``, ``"redis"``, ...), the ``memory.backend``
            span attribute.
        persistent: Whether records outlive the process.
        degraded: True while a fallback backend serves from its secondary.
        remote: True when operations cross the network (spans become kind CLIENT).
        attributes: Extra span attributes, e.g. ``db.system.name``, ``server.address``.
    """

    name: str
    persistent: bool = False
    degraded: bool = False
    remote: bool = False
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


class MemoryBackend(Protocol):
    """The storage strategy of a :class:`~tta_dev_primitives.memory.MemoryPrimitive`.

    Every method takes the namespace first; nothing may ever cross namespaces. Records that
    have expired are never returned, listed, counted or found. Each namespace holds at most
    the backend's ``max_size`` records, evicting the least recently used (``get`` refreshes
    recency; ``search`` does not).

    **Versions.** Every write of a record (``put``, ``put_many``, ``update``, a compaction's
    rewrite or summary) gives it a new version, its write sequence number
    (:attr:`Record.seq`, a positive int): within a namespace each write's version is above
    every version the namespace gave out before, so versions order the writes, and **a
    (key, version) pair never names two different writes**. That holds across ``clear``,
    the namespace emptied by deletes, evictions or expiry, and begun again, a server restart
    or failover that rolled writes back, and an import (which writes, so takes new
    versions); it is what every optimistic step relies on: ``list`` cursors and horizons,
    :meth:`CompactingBackend.apply_compaction` and :meth:`VectorBackend.get_vectors`
    (records named by ``(key, version)``), a backend's own compare-and-set (``update``,
    ``delete_where``), change logs and journals. Versions are a backend's own: compare them
    only with versions of the same backend (a fallback's primary and secondary each have
    theirs; the in-memory backends of a process share one sequence counting from 1, while
    Redis's come from the server's clock, above 2^51: see ``lua/_seq.lua``).

    **Vectors.** The vectors a backend receives (``Entry.vector``, ``RecordUpdate.vector``,
    ``SearchQuery.vector``) are unit-length float32, normalized once by the primitive: a
    backend stores and compares them as given, without normalizing again.
    """

    def info(self) -> BackendInfo:
        """Describe the backend now (synchronous, no I/O)."""
        ...

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        """Store ``entry`` (replacing any record with its key); return how many were evicted.

        The record gets a new version (above every one the namespace gave out before: see
        *Versions*) and ``updated_at`` now (the backend's clock, epoch seconds); over a live
        record it keeps that record's ``created_at``.
        """
        ...

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        """Store several entries in order; return how many records were evicted."""
        ...

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        """The live record under ``key`` (refreshing its recency), or None.

        With its timestamps (``created_at``, ``updated_at``, ``expires_at``, epoch seconds).
        """
        ...

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        """Apply ``change`` to the live record under ``key``, atomically; the new record.

        A read-modify-write that no concurrent write interleaves with (two updates of
        different metadata keys both land). The record is written anew (next write sequence,
        ``updated_at`` now, recency refreshed), keeps its ``created_at``, and keeps whatever
        ``change`` leaves out: value and vector, metadata, expiry. None (and nothing
        written) when there is no live record under ``key``.
        """
        ...

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        """One page of the live records matching ``query.filter``, by write sequence.

        ``newest``: descending sequence, below ``query.after``; ``oldest``: ascending, above
        it; either way at most ``query.horizon`` (the backend's last write sequence when the
        walk began, returned in the result when ``query.horizon`` is None). So a walk never
        returns a record twice (a rewritten record moves past the horizon) and never skips
        one that lived, unchanged, throughout. Does not refresh recency.
        """
        ...

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        """Delete the live records of ``namespace`` matching a non-empty, validated
        ``filter`` (:func:`~tta_dev_primitives.memory.search.matches_filter`); how many."""
        ...

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        """The namespaces starting with ``prefix`` (itself included) that hold live
        records, sorted; never one of another key prefix or another backend's."""
        ...

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        """The live records under ``keys``, aligned with ``keys`` (None where missing)."""
        ...

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Delete ``key``; True if a live record was deleted."""
        ...

    async def clear(self, namespace: Namespace) -> int:
        """Delete every record of ``namespace`` (only that one); return how many."""
        ...

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        """Live keys of ``namespace``, least recently used first."""
        ...

    async def size(self, namespace: Namespace) -> int:
        """Number of live records in ``namespace``."""
        ...

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        """Hits for ``query`` ranked with :mod:`tta_dev_primitives.memory.search`."""
        ...

    async def aclose(self) -> None:
        """Release connections; further use is an error."""
        ...


@runtime_checkable
class SyncMemoryBackend(Protocol):
    """Optional capability of a backend that never waits (it lives in this process).

    ``get_now``/``put_now`` have the semantics of ``get``/``put`` without a coroutine; the
    primitive calls them instead of awaiting, which saves a coroutine per operation on the
    hottest path. Checked once, when the primitive is built.
    """

    def get_now(self, namespace: Namespace, key: str) -> Record | None:
        """:meth:`MemoryBackend.get` without a coroutine."""
        ...

    def put_now(self, namespace: Namespace, entry: Entry) -> int:
        """:meth:`MemoryBackend.put` without a coroutine."""
        ...


@runtime_checkable
class StatsBackend(Protocol):
    """Optional capability: a namespace's BM25 statistics, for a search over a namespace tree.

    ``search(..., subtree=True)`` sums them over the tree's namespaces and passes the union
    in ``SearchQuery.stats``, which :meth:`MemoryBackend.search` then scores with. A backend
    without it is searched namespace by namespace with each one's own statistics.
    """

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        """The live records' :class:`~tta_dev_primitives.memory.search.CorpusStats` for the
        words of ``query.text``."""
        ...


@runtime_checkable
class PingableBackend(Protocol):
    """Optional capability: a cheap round trip that says whether the backend answers.

    A :class:`~tta_dev_primitives.memory.backends.fallback.FallbackBackend` probes its
    primary with it during an outage (falling back to a read when the primary has none).
    """

    async def ping(self) -> None:
        """Return when the backend answers; raise :class:`MemoryBackendError` otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """One compaction of a namespace, applied all at once or not at all.

    Attributes:
        expected: Key -> the write sequence number each record must still hold. If any of
            them was rewritten, deleted or expired since it was read, nothing is applied.
        delete: Keys to delete (each one in ``expected``).
        rewrite: Entries written over live records of ``expected`` (merged duplicates),
            keeping each record's expiry.
        insert: A new record to store (the summary), or None.
    """

    expected: Mapping[str, int]
    delete: Sequence[str] = ()
    rewrite: Sequence[Entry] = ()
    insert: Entry | None = None


@runtime_checkable
class CompactingBackend(Protocol):
    """Optional capability: read a whole namespace and replace records in one atomic step.

    :meth:`~tta_dev_primitives.memory.MemoryPrimitive.compact` needs it. The write is
    optimistic: :meth:`apply_compaction` checks every record still is the version that was
    read, so a record another writer changed meanwhile is never deleted or overwritten.
    """

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        """Every live record of ``namespace``, oldest write first (recency untouched)."""
        ...

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        """Apply ``plan`` atomically; return ``[]``, or the keys that changed (then nothing
        was applied)."""
        ...


class StoredVectors(NamedTuple):
    """What :meth:`VectorBackend.get_vectors` returns.

    Attributes:
        space: ``(embedder name, dimensions)`` of the namespace's vectors (the ``Entry.space``
            they were written with), None when it holds none.
        vectors: One unit float32 vector or None per requested record, in request order.
    """

    space: tuple[str, int] | None
    vectors: builtins.list[Vector | None]


@runtime_checkable
class VectorBackend(Protocol):
    """Optional capability: read back the vectors stored with records.

    :meth:`~tta_dev_primitives.memory.MemoryPrimitive.export` uses it for
    ``export(vectors=True)``, so an import with the same embedder need not embed again.
    Without it an export carries no vectors (an import then re-embeds).
    """

    async def get_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        """The vectors of the records named by ``(key, write sequence)`` pairs.

        ``versions`` holds each record's key and the ``seq`` of the :class:`Record` just read
        (e.g. from :meth:`MemoryBackend.list`). The result is aligned with it: the unit
        vector stored with the record, or None where the record has no vector, is no longer
        live, or was rewritten since (its write sequence differs), so a vector is never
        paired with another version's value. Does not refresh recency.
        """
        ...


class Version(NamedTuple):
    """One version of a record, as :meth:`HistoryBackend.history` returns it.

    Attributes:
        record: The record as it was written (its ``updated_at`` is when it became current).
        valid_to: When it stopped being current (epoch seconds, the backend's clock): it was
            written over, updated or superseded then. None while it is current.
    """

    record: Record
    valid_to: float | None = None


@runtime_checkable
class HistoryBackend(Protocol):
    """Optional capability: keep earlier versions of records (``MemoryPrimitive(history=N)``).

    A versioned write keeps the live record it replaces (and each record it supersedes) as
    an earlier version of its key, ended now, in the same atomic step as the write. Each key
    keeps at most ``keep`` earlier versions (the newest); at most ``max_size`` keys of a
    namespace keep any (those most recently versioned: the others' go). An earlier version
    keeps its expiry and is gone from history once it passes. ``clear`` drops the history
    too; ``delete`` and eviction leave it.

    **Forgetting.** :meth:`forget` removes records for good: the live record and every
    earlier version, in one step, and leaves a tombstone per key (at most
    ``MAX_TOMBSTONES`` per namespace, the newest; each expiring after its ttl) that
    :meth:`forgotten` reports, so an import or a replay can refuse to bring them back.
    """

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        """:meth:`MemoryBackend.put`, keeping the live record under ``entry.key`` and the
        live records under ``supersedes`` (which leave the live records) as earlier
        versions; how many records were evicted."""
        ...

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        """:meth:`MemoryBackend.update`, keeping the record it changes as an earlier
        version."""
        ...

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        """The live versions of ``key``, newest first (the current one first, when there is
        one); with ``key=None``, every version of every key of the namespace (live records
        and earlier versions, in no particular order). Does not refresh recency."""
        ...

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        """Remove the live records and earlier versions of ``keys`` in one step, and (with
        ``tombstone_ttl``, seconds) leave their tombstones; how many records and versions
        were removed."""
        ...

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        """The keys of ``namespace`` with a live tombstone."""
        ...

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        """Add earlier versions (an import): each ``(entry, valid_to)`` becomes an earlier
        version of ``entry.key`` with the entry's times (``created_at``/``updated_at``, its
        ``ttl`` from now) and a new version number, kept among the key's others by
        ``valid_to``, within the same bounds; live records are untouched. How many were
        kept."""
        ...


MAX_TOMBSTONES = 10_000
"""Tombstones a namespace keeps at most (the newest): forgetting stays bounded."""
