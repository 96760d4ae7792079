"""``FallbackBackend``: keep serving, and lose no write, while the primary backend is down.

Usage::

    backend = FallbackBackend(RedisBackend.from_url(url), InMemoryBackend(1000))

(``MemoryPrimitive(redis_url=url)`` builds exactly this.)

What it guarantees:

* **Healthy** (the primary answers): every operation goes to the primary. Writes and deletes
  also go to the secondary, which is a bounded mirror (its own ``max_size`` per namespace) of
  what this process wrote recently. Reads never consult the mirror.
* **Outage** (an operation of the primary raised :class:`MemoryBackendError`): that operation
  and every later one is served by the secondary. One warning is logged per outage, and
  :attr:`FallbackBackend.fallback_activations` counts the outages (``on_activation`` is called
  at each). Every write, delete and clear is journaled, in order; the journal keeps only the
  last operation per key (and a clear drops the earlier operations of its namespace), which
  leaves the final state, and the order of the last writes, unchanged. Reads see the mirror:
  what this process wrote recently (before or during the outage) is found; a record written
  long ago, evicted from the mirror, or written by another process, is not (``get`` misses,
  ``search``/``keys``/``size`` cover the mirror only). ``delete`` reports what the mirror
  knew.
* **Recovery**: a background task probes the primary at most every ``probe_interval``
  seconds. When it answers, the journal is replayed to it in order (an operation journaled
  during the replay is replayed too); only when the journal is empty does the primary serve
  again. A replayed record keeps its absolute expiry; a record that expired during the outage
  is not replayed, its key is deleted on the primary instead (as if the write had reached it
  and expired there). After recovery every read is the primary's again, so it sees both what
  it kept from before the outage and every write of the outage, last write winning per key.
* No acknowledged write is lost while the process lives: if the primary fails mid-replay the
  rest of the journal stays for the next probe; :meth:`FallbackBackend.aclose` makes one last
  attempt and logs an error with the count of operations it could not replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import codec
from ..errors import MemoryBackendError
from ..records import Entry, Namespace, Record, SearchQuery, SearchResult
from .base import BackendInfo, MemoryBackend, PingableBackend, SyncMemoryBackend

__all__ = ["FallbackBackend"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Put:
    namespace: Namespace
    entry: Entry
    deadline: float | None  # absolute expiry on the backend's clock


@dataclass(frozen=True, slots=True)
class _Delete:
    namespace: Namespace
    key: str


@dataclass(frozen=True, slots=True)
class _Clear:
    namespace: Namespace


_Op = _Put | _Delete | _Clear
_JournalKey = tuple[Namespace, str | None]  # (namespace, key); key None for a clear


class FallbackBackend:
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

    def __init__(
        self,
        primary: MemoryBackend,
        secondary: MemoryBackend,
        *,
        probe_interval: float = 5.0,
        on_activation: Callable[[MemoryBackendError], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(probe_interval, bool) or not isinstance(probe_interval, int | float):
            raise TypeError("probe_interval must be a number of seconds")
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be > 0, got {probe_interval!r}")
        self.primary = primary
        self.secondary = secondary
        self.probe_interval = float(probe_interval)
        self.fallback_activations = 0
        # Journaled operations the primary refused on replay (not an outage), with the error.
        self.replay_refused: list[tuple[object, MemoryBackendError]] = []
        self._on_activation = on_activation
        self._clock = clock
        self._degraded = False
        self._degraded_info: BackendInfo | None = None
        self._journal: OrderedDict[_JournalKey, _Op] = OrderedDict()
        self._lock = asyncio.Lock()
        self._probe_task: asyncio.Task[None] | None = None
        self._outage_started = 0.0
        self._closed = False
        # The mirror write on the healthy path: synchronous when the secondary can (the
        # in-memory backend's put_now), to keep it off the write's latency.
        self._mirror_now: Callable[[Namespace, Entry], int] | None = (
            secondary.put_now if isinstance(secondary, SyncMemoryBackend) else None
        )

    # -- state ----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while the secondary serves."""
        return self._degraded

    @property
    def pending(self) -> int:
        """Journaled operations not yet replayed to the primary."""
        return len(self._journal)

    def info(self) -> BackendInfo:
        """The active backend's info; ``degraded=True`` while the secondary serves."""
        if self._degraded:
            info = self._degraded_info
            if info is None:
                info = self._degraded_info = dataclasses.replace(
                    self.secondary.info(), degraded=True
                )
            return info
        return self.primary.info()

    def _activate(self, exc: MemoryBackendError) -> None:
        if not exc.transient:
            # The primary answered and refused this operation: an outage would not explain
            # it and memory cannot fix it, so the caller hears of it.
            raise exc
        if self._degraded:
            return
        self._degraded = True
        self._degraded_info = None
        self._outage_started = self._clock()
        self.fallback_activations += 1
        logger.warning(
            "memory backend %r failed (%s); serving from %r and journaling writes until it "
            "answers again (probing every %gs)",
            self.primary.info().name,
            exc,
            self.secondary.info().name,
            self.probe_interval,
        )
        if self._on_activation is not None:
            try:
                self._on_activation(exc)
            except Exception:
                logger.exception("on_activation callback failed")
        task = self._probe_task
        if not self._closed and (task is None or task.done()):
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())

    # -- journal --------------------------------------------------------------------------------

    def _journal_op(self, jkey: _JournalKey, op: _Op) -> None:
        # Keep only the last operation per key, at the end: the final state is the same.
        self._journal.pop(jkey, None)
        self._journal[jkey] = op

    def _journal_put(self, namespace: Namespace, entry: Entry) -> None:
        meta = entry.metadata
        if meta is not None:  # our own copy: the caller may mutate theirs later
            copied = codec.copy_metadata(meta)
            entry = Entry(
                entry.key, entry.payload, copied, entry.ttl, entry.vector, snapshot=entry.snapshot
            )
        deadline = None if entry.ttl is None else self._clock() + entry.ttl
        self._journal_op((namespace, entry.key), _Put(namespace, entry, deadline))

    def _journal_clear(self, namespace: Namespace) -> None:
        for jkey in [k for k in self._journal if k[0] == namespace]:
            del self._journal[jkey]
        self._journal[(namespace, None)] = _Clear(namespace)

    async def _replay(self, op: _Op) -> None:
        primary = self.primary
        if isinstance(op, _Put):
            entry = op.entry
            if op.deadline is not None:
                left = op.deadline - self._clock()
                if left <= 0:
                    # Expired during the outage: as if it had reached the primary and expired.
                    await primary.delete(op.namespace, entry.key)
                    return
                entry = Entry(entry.key, entry.payload, entry.metadata, left, entry.vector)
            await primary.put(op.namespace, entry)
        elif isinstance(op, _Delete):
            await primary.delete(op.namespace, op.key)
        else:
            await primary.clear(op.namespace)

    # -- recovery -------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while self._degraded and not self._closed:
            await asyncio.sleep(self.probe_interval)
            try:
                if await self.recover():
                    return
            except Exception:  # never let the probe die: the backend would stay degraded
                logger.exception("probing the primary %r failed", self.primary.info().name)

    async def _probe(self) -> None:
        if isinstance(self.primary, PingableBackend):
            await self.primary.ping()
        else:
            await self.primary.size(("__probe__",))

    async def recover(self) -> bool:
        """Probe the primary now; if it answers, replay the journal and switch back to it.

        The background probe calls this every ``probe_interval``; call it yourself to
        recover sooner (or in tests). Returns True when the primary is serving.
        """
        async with self._lock:
            if not self._degraded:
                return True
            replayed = 0
            try:
                await self._probe()
                journal = self._journal
                while journal:
                    jkey, op = next(iter(journal.items()))
                    try:
                        await self._replay(op)
                    except MemoryBackendError as exc:
                        if exc.transient:
                            raise
                        # The primary refuses this one operation (it is not an outage):
                        # set it aside rather than block every later write behind it.
                        self.replay_refused.append((op, exc))
                        logger.error(
                            "the primary %r refused a journaled operation; set aside in "
                            "replay_refused (%s)",
                            self.primary.info().name,
                            exc,
                        )
                    # A newer operation on the key may have replaced this one meanwhile.
                    if journal.get(jkey) is op:
                        del journal[jkey]
                    replayed += 1
            except MemoryBackendError as exc:
                logger.debug("primary still failing (%s); %d operations pending", exc, self.pending)
                return False
            self._degraded = False
            logger.warning(
                "memory backend %r is back after %.1fs; replayed %d journaled operations",
                self.primary.info().name,
                self._clock() - self._outage_started,
                replayed,
            )
            return True

    # -- MemoryBackend --------------------------------------------------------------------------

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        if not self._degraded:
            try:
                evicted = await self.primary.put(namespace, entry)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                mirror = self._mirror_now
                if mirror is not None:
                    mirror(namespace, entry)
                else:
                    await self.secondary.put(namespace, entry)
                return evicted
        # Journal before any await, so a recovery finishing meanwhile still replays it.
        self._journal_put(namespace, entry)
        return await self.secondary.put(namespace, entry)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        if not self._degraded:
            try:
                evicted = await self.primary.put_many(namespace, entries)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                await self.secondary.put_many(namespace, entries)
                return evicted
        for entry in entries:
            self._journal_put(namespace, entry)
        return await self.secondary.put_many(namespace, entries)

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if not self._degraded:
            try:
                return await self.primary.get(namespace, key)
            except MemoryBackendError as exc:
                self._activate(exc)
        return await self.secondary.get(namespace, key)

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[Record | None]:
        if not self._degraded:
            try:
                return await self.primary.get_many(namespace, keys)
            except MemoryBackendError as exc:
                self._activate(exc)
        return await self.secondary.get_many(namespace, keys)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        if not self._degraded:
            try:
                deleted = await self.primary.delete(namespace, key)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                await self.secondary.delete(namespace, key)
                return deleted
        self._journal_op((namespace, key), _Delete(namespace, key))
        return await self.secondary.delete(namespace, key)

    async def clear(self, namespace: Namespace) -> int:
        if not self._degraded:
            try:
                count = await self.primary.clear(namespace)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                await self.secondary.clear(namespace)
                return count
        self._journal_clear(namespace)
        return await self.secondary.clear(namespace)

    async def keys(self, namespace: Namespace) -> list[str]:
        if not self._degraded:
            try:
                return await self.primary.keys(namespace)
            except MemoryBackendError as exc:
                self._activate(exc)
        return await self.secondary.keys(namespace)

    async def size(self, namespace: Namespace) -> int:
        if not self._degraded:
            try:
                return await self.primary.size(namespace)
            except MemoryBackendError as exc:
                self._activate(exc)
        return await self.secondary.size(namespace)

    async def search(self, namespace: Namespace, query: SearchQuery) -> list[SearchResult]:
        if not self._degraded:
            try:
                return await self.primary.search(namespace, query)
            except MemoryBackendError as exc:
                self._activate(exc)
        return await self.secondary.search(namespace, query)

    async def aclose(self) -> None:
        """Stop probing, try once more to replay the journal, then close both backends."""
        if self._closed:
            return
        self._closed = True
        task = self._probe_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._degraded and self._journal:
            await self.recover()
            if self._journal:
                logger.error(
                    "closing with %d journaled memory operations the primary %r never got",
                    len(self._journal),
                    self.primary.info().name,
                )
        try:
            await self.primary.aclose()
        finally:
            await self.secondary.aclose()
