"""``InMemoryBackend``: the zero-setup backend, one :class:`InMemoryStore` per namespace."""

from __future__ import annotations

import builtins
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import codec
from ..codec import validate_max_size
from ..errors import MemoryBackendError
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
from ..search import CorpusStats
from ..store import VERSIONS, InMemoryStore
from .base import MAX_TOMBSTONES, BackendInfo, CompactionPlan, StoredVectors, Version

__all__ = ["InMemoryBackend"]

_INFO = BackendInfo(name="in_memory", persistent=False)


class InMemoryBackend:
    """Keeps each namespace in its own :class:`InMemoryStore` inside this process.

    Needs nothing but the standard library. Records live as long as the process (or until
    they expire or are evicted); each namespace holds at most ``max_size`` records.

    Args:
        max_size: Most records per namespace (None = unbounded).
        max_total: Most records over all namespaces (None = unbounded): past it, whole
            namespaces are dropped, least recently written first. Meant for caches such as
            the Redis fallback's mirror, where forgetting a namespace loses nothing; at least
            ``max_size``.
        clock: Monotonic clock in seconds, shared by every namespace (inject a fake one in
            tests).
    """

    def __init__(
        self,
        max_size: int | None = 1000,
        *,
        max_total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_size = validate_max_size(max_size)
        self.max_total = validate_max_size(max_total, "max_total")
        if self.max_total is not None and (self.max_size is None or self.max_size > self.max_total):
            raise ValueError(f"max_total must be >= max_size, got {max_total} < {max_size}")
        self._clock = clock
        # One epoch offset for every namespace, so their timestamps agree.
        self._epoch = time.time() - clock()
        # Least recently written namespace first (only kept in that order with max_total).
        self._stores: dict[Namespace, InMemoryStore] = {}
        self._total = 0  # records over all namespaces, at most (expiry only lowers it)
        # Earlier versions (HistoryBackend): namespace -> key -> versions, newest first; keys
        # least recently versioned first, at most max_size of them.
        self._history: dict[Namespace, OrderedDict[str, builtins.list[Version]]] = {}
        # Forgotten keys: namespace -> key -> when the tombstone expires (epoch seconds).
        self._tombstones: dict[Namespace, dict[str, float]] = {}

    def _store(self, namespace: Namespace) -> InMemoryStore:
        store = self._stores.get(namespace)
        if store is None:
            self._sweep()
            store = self._new_store()
            self._stores[namespace] = store
        return store

    def _sweep(self) -> None:
        """Look at the two namespaces written longest ago (each then goes to the back): one
        whose records all expired is dropped. Run once per new namespace, so namespaces
        nobody touches again after their records expired (task memory) do not add up: the
        stores held stay proportional to the namespaces with live records."""
        stores = self._stores
        for _ in range(min(2, len(stores))):
            namespace, store = next(iter(stores.items()))
            del stores[namespace]
            if len(store):  # purges what expired
                stores[namespace] = store

    def _new_store(self) -> InMemoryStore:
        return InMemoryStore(
            self.max_size, clock=self._clock, max_value_bytes=None, epoch_offset=self._epoch
        )

    def info(self) -> BackendInfo:
        return _INFO

    def put_now(self, namespace: Namespace, entry: Entry) -> int:
        """:meth:`put` without a coroutine (this backend never waits)."""
        if self.max_total is not None:
            return self._put_bounded(namespace, (entry,))
        return self._store(namespace).put(entry)

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        return self.put_now(namespace, entry)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        if self.max_total is not None:
            return self._put_bounded(namespace, entries)
        store = self._store(namespace)
        return sum(store.put(entry) for entry in entries)

    def _put_bounded(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        stores = self._stores
        store = stores.pop(namespace, None)
        if store is None:
            store = self._new_store()
        stores[namespace] = store  # now the most recently written
        before = len(store)
        evicted = sum(store.put(entry) for entry in entries)
        self._total += len(store) - before
        if self.max_total is not None and self._total > self.max_total:
            self._total = sum(len(s) for s in stores.values())
            while self._total > self.max_total and len(stores) > 1:
                oldest = next(iter(stores))
                dropped = stores.pop(oldest)
                self._history.pop(oldest, None)
                self._total -= len(dropped)
                evicted += len(dropped)
        return evicted

    def get_now(self, namespace: Namespace, key: str) -> Record | None:
        """:meth:`get` without a coroutine (this backend never waits)."""
        store = self._stores.get(namespace)
        return None if store is None else store.get_record(key)

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        store = self._stores.get(namespace)
        return None if store is None else store.get_record(key)

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        store = self._stores.get(namespace)
        if store is None:
            return [None] * len(keys)
        return [store.get_record(key) for key in keys]

    async def delete(self, namespace: Namespace, key: str) -> bool:
        store = self._stores.get(namespace)
        if store is None:
            return False
        held = len(store)
        deleted = store.delete(key)
        self._total -= held - len(store)
        self._drop_if_empty(namespace, store)
        return deleted

    def _drop_if_empty(self, namespace: Namespace, store: InMemoryStore) -> None:
        # An emptied namespace keeps nothing in the process (its versions never come back:
        # every store takes them from one sequence), so state follows the live data.
        if not len(store) and self._stores.get(namespace) is store:
            del self._stores[namespace]

    async def clear(self, namespace: Namespace) -> int:
        store = self._stores.pop(namespace, None)
        self._history.pop(namespace, None)
        if store is None:
            return 0
        self._total -= len(store)
        return store.clear()

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        store = self._stores.get(namespace)
        return [] if store is None else store.keys()

    async def size(self, namespace: Namespace) -> int:
        store = self._stores.get(namespace)
        return 0 if store is None else store.size()

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        store = self._stores.get(namespace)
        return [] if store is None else store.search_results(query)

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        store = self._stores.get(namespace)
        return CorpusStats(0, 0, {}) if store is None else store.corpus_stats(query)

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        store = self._stores.get(namespace)
        return None if store is None else store.update(key, change)

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        store = self._stores.get(namespace)
        if store is None:
            return ListResult([], 0 if query.horizon is None else query.horizon, False)
        return store.list_records(query)

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        store = self._stores.get(namespace)
        if store is None:
            return 0
        held = len(store)
        deleted = store.delete_where(filter)
        self._total -= held - len(store)
        self._drop_if_empty(namespace, store)
        return deleted

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        n = len(prefix)
        return sorted(ns for ns, store in self._stores.items() if ns[:n] == prefix and store.size())

    async def held(self) -> int:
        """Live records over all namespaces."""
        return sum(len(store) for store in self._stores.values())

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        store = self._stores.get(namespace)
        return [] if store is None else store.scan()

    async def get_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        store = self._stores.get(namespace)
        if store is None:
            return StoredVectors(None, [None] * len(versions))
        return StoredVectors(*store.vectors(versions))

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        store = self._stores.get(namespace)
        if store is None:
            return list(plan.expected)
        return store.apply_compaction(plan.expected, plan.delete, plan.rewrite, plan.insert)

    # -- HistoryBackend: earlier versions --------------------------------------------------

    def _now(self) -> float:
        return self._clock() + self._epoch

    def _keep(self, namespace: Namespace, old: Record, valid_to: float, keep: int) -> None:
        history = self._versions(namespace)
        # Expired versions are left out when read, and pushed out here by newer ones.
        versions = history.pop(old.key, None)
        if versions is None:
            versions = [Version(old, valid_to)]
        else:
            versions.insert(0, Version(old, valid_to))
            del versions[keep:]
        history[old.key] = versions
        self._trim(history)

    def _versions(self, namespace: Namespace) -> OrderedDict[str, builtins.list[Version]]:
        """The earlier versions of ``namespace``'s keys (made empty when it has none)."""
        history = self._history.get(namespace)
        if history is None:
            history = self._history[namespace] = OrderedDict()
        return history

    def _trim(self, history: OrderedDict[str, builtins.list[Version]]) -> None:
        """Keep the versions of at most ``max_size`` keys, the least recently versioned go."""
        if self.max_size is not None:
            while len(history) > self.max_size:
                history.popitem(last=False)

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        store = self._store(namespace)
        if not supersedes:  # the common case, without the general one's tables
            old = store.peek(entry.key)
            evicted = self.put_now(namespace, entry)
            if old is not None and keep:
                new = store.peek(entry.key)
                now = self._now() if new is None or entry.updated_at else new.updated_at
                self._keep(namespace, old, now, keep)
            return evicted
        olds = [(k, store.peek(k)) for k in dict.fromkeys((entry.key, *supersedes))]
        for k, old in olds:
            if old is not None and k != entry.key:
                held = len(store)
                store.delete(k)
                self._total -= held - len(store)
        evicted = self.put_now(namespace, entry)
        new = self._stores[namespace].peek(entry.key) if namespace in self._stores else None
        # The versions it ends stop being current when it became current.
        now = self._now() if new is None or entry.updated_at is not None else new.updated_at
        for _, old in olds:
            if old is not None and keep:
                self._keep(namespace, old, now, keep)
        return evicted

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        store = self._stores.get(namespace)
        if store is None:
            return None
        old = store.peek(key)
        new = store.update(key, change)
        if old is not None and new is not None:
            self._keep(namespace, old, new.updated_at, keep)
        return new

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        store = self._stores.get(namespace)
        history = self._history.get(namespace) or OrderedDict()
        now = self._now()
        if key is None:
            out = [] if store is None else [Version(r) for r in store.scan()]
            for versions in history.values():
                out.extend(v for v in versions if _alive(v, now))
            return out
        current = None if store is None else store.peek(key)
        out = [] if current is None else [Version(current)]
        out.extend(v for v in history.get(key, ()) if _alive(v, now))
        return out

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        keys = list(dict.fromkeys(keys))
        removed = 0
        store = self._stores.get(namespace)
        if store is not None:
            for key in keys:
                held = len(store)
                removed += store.delete(key)
                self._total -= held - len(store)
            self._drop_if_empty(namespace, store)
        history = self._history.get(namespace)
        if history:
            removed += sum(len(history.pop(k, ())) for k in keys)
            if not history:
                del self._history[namespace]
        if tombstone_ttl is not None and keys:
            now = self._now()
            stones = self._tombstones.setdefault(namespace, {})
            for key in keys:
                stones.pop(key, None)
                stones[key] = now + tombstone_ttl
            for key in [k for k, at in stones.items() if at <= now]:
                del stones[key]
            while len(stones) > MAX_TOMBSTONES:
                del stones[next(iter(stones))]
        return removed

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        if keep < 1:
            return 0
        history = self._versions(namespace)
        now = self._now()
        kept = 0
        for entry, valid_to in versions:
            updated = now if entry.updated_at is None else entry.updated_at
            created = updated if entry.created_at is None else entry.created_at
            expires = None if entry.ttl is None else now + entry.ttl
            record = Record(
                entry.key,
                entry.payload,
                codec.copy_metadata(entry.metadata),
                next(VERSIONS),
                created_at=created,
                updated_at=updated,
                expires_at=expires,
                index_text=entry.index_text,
            )
            found = [*history.pop(entry.key, ()), Version(record, valid_to)]
            found.sort(key=lambda v: v.valid_to or 0.0, reverse=True)
            history[entry.key] = found[:keep]
            kept += 1
            self._trim(history)
        return kept

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        now = self._now()
        return {k for k, at in self._tombstones.get(namespace, {}).items() if at > now}

    async def aclose(self) -> None:
        """Drop every record; any later operation raises ``MemoryBackendError("closed")``.

        The open path pays nothing for the check: the namespaces' dict is swapped for one
        that refuses every lookup.
        """
        self._history = {}
        self._tombstones = {}
        self._stores = _Closed()
        self._total = 0


def _alive(version: Version, now: float) -> bool:
    expires = version.record.expires_at
    return expires is None or expires > now


class _Closed(dict[Namespace, InMemoryStore]):
    """The namespaces of a closed backend: every lookup raises ``MemoryBackendError``."""

    def _refuse(self, *_: object, **__: object) -> Any:
        raise MemoryBackendError(
            "closed: this InMemoryBackend was closed (aclose()); build a new one",
            backend="memory",
            operation="closed",
            transient=False,
        )

    get = __getitem__ = __contains__ = pop = setdefault = _refuse
    items = values = keys = __setitem__ = __iter__ = __len__ = _refuse
