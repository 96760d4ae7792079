"""``FallbackBackend``'s operations: each routed by :class:`~.routing.Router` (see the
package docstring for what it guarantees)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import MemoryBackendError
from ...records import (
    Entry,
    ListQuery,
    ListResult,
    Namespace,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
)
from ...search import CorpusStats
from ..base import (
    CompactingBackend,
    CompactionPlan,
    MemoryBackend,
    StatsBackend,
    StoredVectors,
    VectorBackend,
    Version,
)
from .journal import served_event
from .replay import history_of
from .routing import Router, ignore

__all__ = ["FallbackBackend"]


class FallbackBackend(Router):
    """Serves from ``secondary`` while ``primary`` fails; replays the outage's writes after.

    Args:
        primary: The backend of record (usually a :class:`RedisBackend`).
        secondary: Serves during outages and mirrors recent writes (usually an
            :class:`InMemoryBackend`; its ``max_size`` bounds the mirror).
        probe_interval: Seconds between probes of a failed primary.
        on_activation: Called with the error each time an outage starts (exceptions it
            raises are logged, never propagated).
        clock: Monotonic clock in seconds, for the absolute expiry of journaled records.

    Attributes:
        fallback_activations: How many outages started (switches to the secondary).
    """

    # -- MemoryBackend --------------------------------------------------------------------------

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        return await self._write(
            self.primary.put,
            self.secondary.put,
            self._journal.put,
            self._journal.accepted_put,
            None if self._mirror_now is None else self._mirror_one,
            namespace,
            entry,
        )

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        return await self._write(
            self.primary.put_many,
            self.secondary.put_many,
            self._journal.put_many,
            self._journal.accepted_put_many,
            None if self._mirror_now is None else self._mirror_many,
            namespace,
            entries,
        )

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if self._journal.refused:
            pinned, record = self._journal.refused_record(namespace, key)
            if pinned:
                return record
        return await self._read(self.primary.get, self.secondary.get, namespace, key)

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        records = await self._read(self.primary.get_many, self.secondary.get_many, namespace, keys)
        if self._journal.refused:
            for i, key in enumerate(keys):
                pinned, record = self._journal.refused_record(namespace, key)
                if pinned:
                    records[i] = record
        return records

    async def delete(self, namespace: Namespace, key: str) -> bool:
        return await self._write(
            self.primary.delete,
            self.secondary.delete,
            self._journal.delete,
            self._journal.accepted_delete,
            None,
            namespace,
            key,
        )

    async def clear(self, namespace: Namespace) -> int:
        return await self._write(
            self.primary.clear,
            self.secondary.clear,
            self._journal.clear,
            self._journal.forget_refused,
            None,
            namespace,
        )

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        # The mirror applies the same change: it holds the record only if this process
        # wrote it recently, and then holds what the primary holds.
        return await self._write(
            self.primary.update,
            self._serve_update,
            ignore,  # _serve_update journals, once it knows the secondary applied it
            self._journal.accepted_update,
            None,
            namespace,
            key,
            change,
        )

    async def _serve_update(
        self, namespace: Namespace, key: str, change: RecordUpdate
    ) -> Record | None:
        """The secondary's update: the mirror write while healthy; during an outage the
        answer, journaled only when the secondary held the record (else the caller hears
        KeyError, and the primary must not get the change later)."""
        record = await self.secondary.update(namespace, key, change)
        if record is not None and self._degraded:
            self._journal.update(namespace, key, change)
        return record

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        return await self._write(
            self.primary.delete_where,
            self.secondary.delete_where,
            self._journal.delete_where,
            ignore,
            None,
            namespace,
            filter,
        )

    def _held_back(self, namespace: Namespace) -> bool:
        """Whether ``namespace`` has acknowledged writes the primary refused: its reads are
        then served by the secondary, which holds them, until the primary accepts them."""
        if not (self._journal.refused and self._journal.refused_in(namespace)):
            return False
        served_event(1)
        self._ensure_probe()
        return True

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        if self._held_back(namespace):
            return await self.secondary.list(namespace, query)
        return await self._read(self.primary.list, self.secondary.list, namespace, query)

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        return await self._read(self.primary.namespaces, self.secondary.namespaces, prefix)

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        if self._held_back(namespace):
            return await self.secondary.keys(namespace)
        return await self._read(self.primary.keys, self.secondary.keys, namespace)

    async def size(self, namespace: Namespace) -> int:
        if self._held_back(namespace):
            return await self.secondary.size(namespace)
        return await self._read(self.primary.size, self.secondary.size, namespace)

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        if self._held_back(namespace):
            return await self.secondary.search(namespace, query)
        return await self._read(self.primary.search, self.secondary.search, namespace, query)

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        if self._held_back(namespace):
            return await _stats_of(self.secondary, namespace, query)
        return await self._read(self._primary_stats, self._secondary_stats, namespace, query)

    async def _primary_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        return await _stats_of(self.primary, namespace, query)

    async def _secondary_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        return await _stats_of(self.secondary, namespace, query)

    # -- VectorBackend: the active backend's vectors ------------------------------------------

    async def get_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        # Write sequences are the backend's own: the versions come from a list() just served
        # by the active backend, so ask that one (a switch in between gives None: re-embed).
        return await self._read(self._primary_vectors, self._secondary_vectors, namespace, versions)

    async def _primary_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        return await _vectors_of(self.primary, namespace, versions)

    async def _secondary_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        return await _vectors_of(self.secondary, namespace, versions)

    # -- CompactingBackend: on the primary only ---------------------------------------------

    def _compacting_primary(self) -> CompactingBackend:
        primary = self.primary
        if self._degraded:
            # The secondary holds only a mirror, and a replayed compaction could not check
            # that the primary's records are still the versions summarized: wait for it.
            raise MemoryBackendError(
                "compaction needs the primary backend, and it is unavailable (the fallback "
                "serves meanwhile); compact again once it is back",
                backend=self.info().name,
                operation="compact",
                transient=True,
            )
        if not isinstance(primary, CompactingBackend):
            raise TypeError(f"backend {primary.info().name!r} cannot compact")
        return primary

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        primary = self._compacting_primary()
        try:
            return await primary.scan(namespace)
        except MemoryBackendError as exc:
            self._activate(exc)
            raise

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        primary = self._compacting_primary()
        try:
            changed = await primary.apply_compaction(namespace, plan)
        except MemoryBackendError as exc:
            self._activate(exc)
            raise
        if not changed:
            # The mirror follows without checks (its versions are its own). It forgets the
            # rewritten records rather than guess their expiry: it is a cache of recent writes.
            for key in (*plan.delete, *(e.key for e in plan.rewrite)):
                await self.secondary.delete(namespace, key)
            if plan.insert is not None:
                await self.secondary.put(namespace, plan.insert)
        return changed

    # -- HistoryBackend: journaled like every write ----------------------------------------
    # While healthy the primary keeps the history and the mirror follows (its own versions
    # of what this process wrote); during an outage the secondary serves and keeps the
    # versions, and each versioned write is journaled on its own (never merged) and replayed
    # in order, so the primary gets every version (ended at replay time).

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        return await self._write(
            history_of(self.primary).put_versioned,
            history_of(self.secondary).put_versioned,
            self._journal.put_versioned,
            self._journal.accepted_put_versioned,
            None,
            namespace,
            entry,
            keep,
            supersedes,
        )

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        return await self._write(
            history_of(self.primary).update_versioned,
            self._serve_versioned_update,
            ignore,  # _serve_versioned_update journals, once the secondary applied it
            self._journal.accepted_update_versioned,
            None,
            namespace,
            key,
            change,
            keep,
        )

    async def _serve_versioned_update(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        record = await history_of(self.secondary).update_versioned(namespace, key, change, keep)
        if record is not None and self._degraded:
            self._journal.update_versioned(namespace, key, change, keep)
        return record

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        return await self._read(
            history_of(self.primary).history,
            history_of(self.secondary).history,
            namespace,
            key,
        )

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        # Journaled after every write acknowledged before it, so a replay never brings a
        # forgotten record back; the mirror forgets it at once.
        return await self._write(
            history_of(self.primary).forget,
            history_of(self.secondary).forget,
            self._journal.forget,
            self._journal.accepted_forget,
            None,
            namespace,
            keys,
            tombstone_ttl,
        )

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        return await self._write(
            history_of(self.primary).restore,
            history_of(self.secondary).restore,
            self._journal.restore,
            ignore,
            None,
            namespace,
            versions,
            keep,
        )

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        # Both: the mirror knows what this process forgot during an outage.
        found = await self._read(
            history_of(self.primary).forgotten,
            history_of(self.secondary).forgotten,
            namespace,
        )
        if not self._degraded:
            found |= await history_of(self.secondary).forgotten(namespace)
        return found


async def _vectors_of(
    backend: MemoryBackend, namespace: Namespace, versions: Sequence[tuple[str, int]]
) -> StoredVectors:
    """``backend``'s vectors, or none at all when it cannot give them back."""
    if isinstance(backend, VectorBackend):
        return await backend.get_vectors(namespace, versions)
    return StoredVectors(None, [None] * len(versions))


async def _stats_of(
    backend: MemoryBackend, namespace: Namespace, query: SearchQuery
) -> CorpusStats:
    """``backend``'s statistics of ``namespace`` (none known: empty, so the search of the
    tree falls back to each namespace's own for this one)."""
    if isinstance(backend, StatsBackend):
        return await backend.search_stats(namespace, query)
    return CorpusStats(0, 0, {})
