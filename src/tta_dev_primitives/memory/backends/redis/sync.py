"""The change-log sync: this process's index of a namespace, loaded once and caught up from
the namespace's change log before each search, list or ``delete_where``.

A namespace's index is built by a full load (``lua/load.lua``, then its records fetched a
group at a time), and caught up by ``lua/sync.lua``: one round trip when nothing changed.
The same loader feeds the Query Engine path's word statistics, through the
:class:`~tta_dev_primitives.memory.backends.redis.index.LoadableIndex` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...search import SearchIndex
from . import scripts as lua
from .index import ChurnedError, IndexT, LocalIndexes, NamespaceIndex, OldLayoutError
from .layout import NamespaceKeys
from .server import Server
from .wire import (
    GarbledRecord,
    RawFields,
    decode_index_rows,
    record_fields,
    split,
    stored_embedder,
)

__all__ = ["ChangeLogSync"]

_SYNC_KEYS = 2000  # changed records brought by one catch-up round trip
# Records of one group of pipelined calls in an index load. Small groups keep the replies in
# flight small: with 10,000 a 100k-record load left about 45 MB of freed replies in the process.
_LOAD_GROUP = 2_000


class ChangeLogSync:
    """Loads and catches up the namespaces' indexes of one backend.

    Args:
        server: The server the records come from.
        indexes: The search indexes held in this process.

    Attributes:
        indexes: As given.
    """

    def __init__(self, server: Server, indexes: LocalIndexes[SearchIndex]) -> None:
        self.server = server
        self.indexes = indexes
        self._loading: dict[tuple[asyncio.AbstractEventLoop, bytes], asyncio.Future[Any]] = {}

    async def fresh(
        self, ns: NamespaceKeys, operation: str, *, slow: bool = False
    ) -> tuple[NamespaceIndex[SearchIndex], float]:
        """The namespace's index, caught up with every change acknowledged before the call
        began and with the records expired by then dropped, and the server's clock (epoch
        seconds). Client failures raise MemoryBackendError; with ``slow``, a timed-out load
        is a refusal (the search's cost), never an outage."""
        server = self.server
        with server.failures(operation, slow=slow, deadline=server.search_timeout):
            state, now = await self._synced_index(ns)
        if state.incarnation is None:
            # No such namespace: holding its empty index would grow with every namespace
            # ever read, not with the live data (its next read loads it again, cheaply).
            self.indexes.drop(ns.base)
        state.index.expire(now)
        return state, now

    async def _synced_index(self, ns: NamespaceKeys) -> tuple[NamespaceIndex[SearchIndex], float]:
        state = self.indexes.get(ns.base)
        if state is not None and state.restarts != self.server.restarts:
            state = None  # the server restarted: writes may be lost that no log shows
        if state is not None:
            now = await self.catch_up(ns, state, self.indexes)
            if now is not None:
                return state, now
        # Concurrent searches of a namespace that is not loaded share one load.
        key = (asyncio.get_running_loop(), ns.base)
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(
                self.load(ns, self.indexes, SearchIndex, vectors=True)
            )
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def catch_up(
        self, ns: NamespaceKeys, state: NamespaceIndex[IndexT], into: LocalIndexes[IndexT]
    ) -> float | None:
        """Apply the change log to ``state`` (held by ``into``; round trips until none is
        left); the server clock, or None when the index must be reloaded."""
        changed = False
        while True:
            inc = state.incarnation or b""
            reply = await self.server.eval(
                lua.SYNC,
                ns,
                inc,
                state.last,
                _SYNC_KEYS,
                state.version,
                deadline=self.server.search_timeout,
            )
            incarnation, upto, last, now_ms, status, embedder, version = reply[:7]
            now = int(now_ms) / 1000
            if status == b"empty":
                if state.incarnation is not None or len(state.index):
                    state.reset(None, 0)
                    changed = True
                break
            if status == b"reload":
                return None
            if status == b"reset":
                # Emptied and begun again since: its whole log follows, no reload needed.
                state.reset(incarnation, 0)
                changed = True
            state.space = stored_embedder(embedder)
            if len(reply) > 7:
                rows = (
                    (reply[i], record_fields(*reply[i + 1 : i + 6]))
                    for i in range(7, len(reply), 6)
                )
                self._apply(ns, state, rows)
                changed = True
            state.last = int(upto)
            state.version = version or b""
            if state.last >= int(last):
                break
        if changed:
            into.measure(ns.base, state)
        return now

    def _apply(
        self,
        ns: NamespaceKeys,
        state: NamespaceIndex[IndexT],
        rows: Iterable[tuple[bytes, RawFields]],
    ) -> None:
        """Index ``(key, fields)`` rows (as ``SYNC`` and ``FETCH`` give them)."""
        index = state.index
        updated = state.updated
        garbled = self.server.garbled
        decoded = decode_index_rows(rows, updated)
        for exc in decoded.garbled:
            garbled.skipped(ns.base, exc)
        for key in decoded.gone:
            index.remove(key)
            updated.pop(key, None)
        batch = decoded.records
        if batch:
            try:
                index.upsert_many(batch)
            except ValueError:  # vectors of another length than the index's: one by one
                for record in batch:
                    try:
                        index.upsert_many([record])
                    except ValueError as exc:
                        garbled.skipped(ns.base, GarbledRecord(record[0], exc))
                        index.remove(record[0])

    async def _load_records(
        self,
        ns: NamespaceKeys,
        state: NamespaceIndex[IndexT],
        keys: Sequence[bytes],
        vectors: bool,
    ) -> None:
        """Fetch the records under ``keys`` into ``state``'s index, a group at a time: the
        next group's calls are sent before this one is indexed, so the server reads them
        while the client tokenizes (its time hidden behind the client's, not added)."""
        fetch = self.server.fetch
        groups = [keys[i : i + _LOAD_GROUP] for i in range(0, len(keys), _LOAD_GROUP)]
        pending = asyncio.ensure_future(fetch(ns, groups[0], vectors))
        try:
            for i, group in enumerate(groups):
                found = await pending
                if i + 1 < len(groups):
                    pending = asyncio.ensure_future(fetch(ns, groups[i + 1], vectors))
                    await asyncio.sleep(0)  # let it send its calls before we index
                self._apply(ns, state, zip(group, found, strict=True))
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def load(
        self,
        ns: NamespaceKeys,
        into: LocalIndexes[IndexT],
        new_index: Callable[[], IndexT],
        *,
        vectors: bool,
        attempts: int = 3,
    ) -> tuple[NamespaceIndex[IndexT], float]:
        """Build the namespace's index (``new_index()``, held by ``into``) from a full load,
        then catch it up with the log, loading again (at most ``attempts`` times in all)
        when the log shows a gap.

        Raises:
            ChurnedError: Every attempt found a gap.
            OldLayoutError: The namespace is in the 0.1.0 layout.
        """
        server = self.server
        reply = await server.eval(lua.LOAD, ns, deadline=server.search_timeout)
        incarnation, last, _, old, embedder = reply[:5]
        if int(old):
            raise OldLayoutError(ns.base)
        keys = split(reply[5], reply[6])
        state = NamespaceIndex(index=new_index(), incarnation=incarnation, last=int(last))
        state.version = reply[7] or b""
        state.space = stored_embedder(embedder)
        state.restarts = server.restarts
        if keys:
            await self._load_records(ns, state, keys, vectors)
        into.put(ns.base, state)
        now = await self.catch_up(ns, state, into)
        if now is None:
            # The log lost entries while the records were read (trimmed past a namespace
            # written faster than it loads, or another incarnation began): again.
            into.drop(ns.base)
            if attempts <= 1:
                raise ChurnedError(ns.base)
            return await self.load(ns, into, new_index, vectors=vectors, attempts=attempts - 1)
        return state, now
