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
  at each). Every write, delete, update, ``delete_where`` and clear is journaled in the order
  it was acknowledged, and replayed in that order. Entries are merged only where the merge
  is equivalent: a later operation on a key replaces (or, an update, is folded into) the
  key's earlier entry unless a ``delete_where`` or clear of its namespace came between them
  (which may depend on the record as the earlier operation left it); a clear drops the
  earlier operations of its namespace. Reads see the mirror:
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
* No write this backend acknowledged is lost while the process lives: if the primary fails
  mid-replay the rest of the journal stays for the next probe; a journaled operation the
  primary refuses is kept (:class:`RefusedOperation`), still served by ``get``, and retried;
  :meth:`FallbackBackend.aclose` makes one last attempt and logs an error with the count of
  operations the primary never accepted. (Writes the primary itself acknowledged are as
  durable as its persistence.)
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import dataclasses
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace

from .. import codec
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
from .base import (
    BackendInfo,
    CompactingBackend,
    CompactionPlan,
    HistoryBackend,
    MemoryBackend,
    PingableBackend,
    StatsBackend,
    StoredVectors,
    SyncMemoryBackend,
    VectorBackend,
    Version,
)

__all__ = ["FallbackBackend", "RefusedOperation"]

logger = logging.getLogger(__name__)

_REPLAY_BATCH = 1000  # journaled writes of one namespace replayed per put_many
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _served_event(count: int) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("memory.replay.refused.served", {"memory.record.count": count})


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


@dataclass(frozen=True, slots=True)
class _Update:
    namespace: Namespace
    key: str
    change: RecordUpdate  # its ttl unused: deadline holds the new expiry (with set_ttl)
    deadline: float | None  # absolute expiry on the backend's clock


@dataclass(frozen=True, slots=True)
class _DeleteWhere:
    namespace: Namespace
    filter: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _VersionedPut:
    """A write with history (``put_versioned``): journaled one by one, never merged, so the
    primary gets every version, in order."""

    namespace: Namespace
    entry: Entry
    deadline: float | None
    keep: int
    supersedes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _VersionedUpdate:
    namespace: Namespace
    key: str
    change: RecordUpdate
    deadline: float | None
    keep: int


@dataclass(frozen=True, slots=True)
class _ForgetHistory:
    """A forget: records, versions and tombstones (the tombstones' expiry absolute)."""

    namespace: Namespace
    keys: tuple[str, ...]
    deadline: float | None


@dataclass(frozen=True, slots=True)
class _Restore:
    """Earlier versions an import added (``restore``), replayed as they were given."""

    namespace: Namespace
    versions: tuple[tuple[Entry, float], ...]
    keep: int


_Op = (
    _Put
    | _Delete
    | _Clear
    | _Update
    | _DeleteWhere
    | _VersionedPut
    | _VersionedUpdate
    | _ForgetHistory
    | _Restore
)
# (namespace, key): key None for a clear, ("where", filter JSON) for a delete_where.
_JournalKey = tuple[Namespace, str | tuple[str, str] | None]
# A journal entry: its key and operation, under an id that grows in acknowledged order.
_Journaled = tuple[_JournalKey, "_Op"]


def _compose(first: _Update, second: _Update) -> _Update:
    """One journaled update with the effect of ``first`` then ``second``."""
    a, b = first.change, second.change
    payload: str | None
    if b.payload is not None:
        payload, snapshot, vector = b.payload, b.snapshot, b.vector
    else:
        payload, snapshot, vector = a.payload, a.snapshot, a.vector
    metadata: Mapping[str, Any] | None
    if b.metadata is None:
        metadata, merge = a.metadata, a.merge_metadata
    elif not b.merge_metadata or a.metadata is None:
        metadata, merge = b.metadata, b.merge_metadata
    else:
        metadata, merge = {**a.metadata, **b.metadata}, a.merge_metadata
    if b.set_ttl:
        set_ttl, deadline = True, second.deadline
    else:
        set_ttl, deadline = a.set_ttl, first.deadline
    text = b.index_text if b.set_index_text else a.index_text
    set_text = a.set_index_text or b.set_index_text
    change = RecordUpdate(payload, snapshot, vector, metadata, merge, set_ttl, None, set_text, text)
    return _Update(first.namespace, first.key, change, deadline)


@dataclass(frozen=True, slots=True)
class RefusedOperation:
    """A journaled operation the primary refused when it was replayed.

    It is not dropped: it stays journaled (counted in :attr:`FallbackBackend.pending`), ``get``
    and ``get_many`` keep answering from it, and it is retried at every probe and by
    :meth:`FallbackBackend.retry_refused`, until the primary accepts it or a newer write of
    the same key replaces it.

    Attributes:
        operation: ``"add"``, ``"update"``, ``"delete"``, ``"delete_where"`` or ``"clear"``.
        namespace: The namespace it belongs to.
        key: The record's key (None for a clear or a delete_where).
        error: Why the primary refused it, the last time it was tried.
    """

    operation: str
    namespace: Namespace
    key: str | None
    error: MemoryBackendError


def _kind(op: _Op) -> str:
    if isinstance(op, _Put):
        return "add"
    if isinstance(op, _Delete):
        return "delete"
    if isinstance(op, _Update):
        return "update"
    if isinstance(op, _DeleteWhere):
        return "delete_where"
    if isinstance(op, _VersionedPut):
        return "add"
    if isinstance(op, _VersionedUpdate):
        return "update"
    if isinstance(op, _ForgetHistory):
        return "forget"
    if isinstance(op, _Restore):
        return "import"
    return "clear"


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
        # How many journaled operations the primary refused on replay (each counted once).
        self.replay_refusals = 0
        self._on_activation = on_activation
        self._clock = clock
        self._degraded = False
        self._degraded_info: BackendInfo | None = None
        # Entry id -> (key, operation), in the order the operations were acknowledged.
        self._journal: OrderedDict[int, _Journaled] = OrderedDict()
        self._ids = itertools.count()
        # The id of each key's last entry, and of each namespace's last clear or
        # delete_where (a barrier: no later operation is merged into an entry before it).
        self._last: dict[_JournalKey, int] = {}
        self._barrier: dict[Namespace, int] = {}
        # Journaled operations the primary refused on replay: kept, served and retried.
        self._refused: OrderedDict[_JournalKey, tuple[_Op, MemoryBackendError]] = OrderedDict()
        # Set while a replay holds new writes back for its last stretch (see _drain).
        self._hold: asyncio.Event | None = None
        # Writes on their way to the primary, and the event a retry waits on until none is.
        self._writing = 0
        self._idle: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
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
        """Journaled operations the primary has not accepted yet (refused ones included)."""
        return len(self._journal) + len(self._refused)

    @property
    def replay_refused(self) -> builtins.list[RefusedOperation]:
        """The journaled operations the primary refused on replay, oldest first.

        They are kept (and served by ``get``) until the primary accepts them: see
        :meth:`retry_refused`, or write the key again.
        """
        return [
            RefusedOperation(
                _kind(op), op.namespace, jkey[1] if isinstance(jkey[1], str) else None, exc
            )
            for jkey, (op, exc) in self._refused.items()
        ]

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
        self._ensure_probe()

    def _ensure_probe(self) -> None:
        """Run the background probe in the current event loop (a task dies with its loop, and
        scripts and notebooks may run each call in a new one)."""
        task = self._probe_task
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            # An empty context: the probe must not record into the span that started it.
            self._probe_task = loop.create_task(self._probe_loop(), context=contextvars.Context())

    # -- journal --------------------------------------------------------------------------------

    def _mergeable(self, jkey: _JournalKey) -> _Op | None:
        """The key's last journaled operation, if a later one may replace or amend it: no
        clear or delete_where of its namespace came after it."""
        n = self._last.get(jkey)
        if n is None or self._barrier.get(jkey[0], -1) > n:
            return None
        return self._journal[n][1]

    def _journal_op(self, jkey: _JournalKey, op: _Op, barrier: bool = False) -> None:
        # Appended in acknowledged order. The key's earlier entry is dropped when nothing
        # between them depends on it (operations on other keys commute with it; a clear or
        # delete_where of the namespace may not): the replay's outcome is the same.
        n = self._last.get(jkey)
        if n is not None and not barrier and self._barrier.get(jkey[0], -1) < n:
            del self._journal[n]
        n = next(self._ids)
        self._journal[n] = (jkey, op)
        self._last[jkey] = n
        if barrier:
            self._barrier[jkey[0]] = n
        if self._refused:
            self._refused.pop(jkey, None)  # superseded by this newer operation

    def _unjournal(self, n: int) -> None:
        """Drop entry ``n`` (replayed, or set aside as refused)."""
        jkey, _ = self._journal.pop(n)
        if self._last.get(jkey) == n:
            del self._last[jkey]
        if self._barrier.get(jkey[0]) == n:
            del self._barrier[jkey[0]]

    def _journal_put(self, namespace: Namespace, entry: Entry) -> None:
        meta = entry.metadata
        if meta is not None:  # our own copy: the caller may mutate theirs later
            copied = codec.copy_metadata(meta)
            entry = Entry(
                entry.key,
                entry.payload,
                copied,
                entry.ttl,
                entry.vector,
                snapshot=entry.snapshot,
                created_at=entry.created_at,
                updated_at=entry.updated_at,
                space=entry.space,
                index_text=entry.index_text,
            )
        deadline = None if entry.ttl is None else self._clock() + entry.ttl
        self._journal_op((namespace, entry.key), _Put(namespace, entry, deadline))

    def _journal_clear(self, namespace: Namespace) -> None:
        # The clear leaves nothing of what its namespace's earlier operations did.
        for n in [n for n, (jkey, _) in self._journal.items() if jkey[0] == namespace]:
            self._unjournal(n)
        self._forget_refused(namespace)
        self._journal_op((namespace, None), _Clear(namespace), barrier=True)

    def _forget_refused(self, namespace: Namespace, key: str | None = None) -> None:
        """Drop refused operations a newer accepted write made moot (all of a namespace when
        ``key`` is None: a clear)."""
        refused = self._refused
        if key is not None:
            refused.pop((namespace, key), None)
            return
        for jkey in [k for k in refused if k[0] == namespace]:
            del refused[jkey]

    def _refused_record(self, namespace: Namespace, key: str) -> tuple[bool, Record | None]:
        """(True, what the refused journaled write of ``key`` says the key holds), or
        (False, None) when no refused operation covers it."""
        found = self._refused.get((namespace, key))
        if found is None:
            return False, None
        op = found[0]
        _served_event(1)
        if isinstance(op, _Put):
            if op.deadline is not None and op.deadline <= self._clock():
                return True, None
            entry = op.entry
            meta = codec.copy_metadata(entry.metadata)
            return True, Record(
                entry.key, entry.payload, meta, 0, entry.snapshot, index_text=entry.index_text
            )
        if isinstance(op, _Delete):
            return True, None
        return False, None  # an update or delete_where: the backends' records stand

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
                entry = _with_ttl(entry, left)
            await primary.put(op.namespace, entry)
        elif isinstance(op, _Delete):
            await primary.delete(op.namespace, op.key)
        elif isinstance(op, _Update):
            change = op.change
            if change.set_ttl and op.deadline is not None:
                left = op.deadline - self._clock()
                if left <= 0:
                    await primary.delete(op.namespace, op.key)
                    return
                change = change._replace(ttl=left)
            await primary.update(op.namespace, op.key, change)
        elif isinstance(op, _DeleteWhere):
            await primary.delete_where(op.namespace, op.filter)
        elif isinstance(op, _VersionedPut | _VersionedUpdate | _ForgetHistory | _Restore):
            await self._replay_history(op)
        else:
            await primary.clear(op.namespace)

    async def _replay_history(
        self, op: _VersionedPut | _VersionedUpdate | _ForgetHistory | _Restore
    ) -> None:
        primary = self._history_of(self.primary)
        if isinstance(op, _Restore):
            await primary.restore(op.namespace, op.versions, op.keep)
            return
        if isinstance(op, _ForgetHistory):
            left = None if op.deadline is None else max(op.deadline - self._clock(), 1e-3)
            await primary.forget(op.namespace, op.keys, left)
            return
        left = None if op.deadline is None else op.deadline - self._clock()
        if isinstance(op, _VersionedUpdate):
            change = op.change
            if left is not None:
                if left <= 0:
                    await self.primary.delete(op.namespace, op.key)
                    return
                change = change._replace(ttl=left)
            await primary.update_versioned(op.namespace, op.key, change, op.keep)
            return
        entry = op.entry
        if left is not None:
            if left <= 0:  # expired during the outage: what it superseded still goes
                for key in (entry.key, *op.supersedes):
                    await self.primary.delete(op.namespace, key)
                return
            entry = _with_ttl(entry, left)
        await primary.put_versioned(op.namespace, entry, op.keep, op.supersedes)

    # -- recovery -------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while (self._degraded or self._refused) and not self._closed:
            await asyncio.sleep(self.probe_interval)
            try:
                if await self.recover() and not self._refused:
                    return
            except Exception:  # never let the probe die: the backend would stay degraded
                logger.exception("probing the primary %r failed", self.primary.info().name)

    async def _probe(self) -> None:
        if isinstance(self.primary, PingableBackend):
            await self.primary.ping()
        else:
            await self.primary.size(("__probe__",))

    def _loop_lock(self) -> asyncio.Lock:
        # asyncio.Lock binds to the event loop it first waits in: one lock per loop.
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def recover(self) -> bool:
        """Probe the primary now; if it answers, replay the journal and switch back to it.

        The background probe calls this every ``probe_interval``; call it yourself to
        recover sooner (or in tests). Operations the primary refuses on replay stay
        journaled (see :attr:`replay_refused`) and are retried here too. Returns True when
        the primary is serving.
        """
        async with self._loop_lock():
            if not self._degraded and not self._refused:
                return True
            try:
                await self._probe()
                if self._degraded:
                    replayed = await self._drain()
                    logger.warning(
                        "memory backend %r is back after %.1fs; replayed %d journaled operations",
                        self.primary.info().name,
                        self._clock() - self._outage_started,
                        replayed,
                    )
                elif self._refused:
                    await self._retry_refused()
            except MemoryBackendError as exc:
                logger.debug("primary still failing (%s); %d operations pending", exc, self.pending)
                return not self._degraded
            return True

    async def retry_refused(self) -> int:
        """Replay the operations the primary refused, now; return how many it still refuses.

        Raises:
            MemoryBackendError: The primary is unavailable (they stay journaled).
        """
        async with self._loop_lock():
            if self._degraded:
                raise MemoryBackendError(
                    "the primary is unavailable; refused operations stay journaled",
                    backend=self.primary.info().name,
                    operation="retry_refused",
                )
            await self._retry_refused(stop_at_refusal=False)
            return len(self._refused)

    async def _replay_one(self, n: int, entry: _Journaled) -> bool:
        """Replay journal entry ``n``; False if the primary refused it (kept aside).

        Raises:
            MemoryBackendError: The primary is unavailable (the operation stays journaled).
        """
        jkey, op = entry
        try:
            await self._replay(op)
        except MemoryBackendError as exc:
            if exc.transient:
                raise
            if self._journal.get(n) is entry:
                self._unjournal(n)
                if jkey not in self._refused:
                    self.replay_refusals += 1
                self._refused[jkey] = (op, exc)
            return False
        # A newer operation on the key may have replaced this one meanwhile.
        if self._journal.get(n) is entry:
            self._unjournal(n)
        return True

    async def _replay_some(self, limit: int) -> int:
        """Replay the journal's first operation, or its first run of writes to one namespace
        (up to ``limit`` and ``_REPLAY_BATCH``) as one ``put_many``; return how many.

        Raises:
            MemoryBackendError: The primary is unavailable (the operations stay journaled).
        """
        journal = self._journal
        head = list(itertools.islice(journal.items(), max(1, min(limit, _REPLAY_BATCH))))
        first = head[0][1][1]
        now = self._clock()
        run: builtins.list[tuple[int, _Journaled, _Put]] = []
        if isinstance(first, _Put):
            for n, entry in head:
                op = entry[1]
                if not isinstance(op, _Put) or op.namespace != first.namespace:
                    break
                if op.deadline is not None and op.deadline <= now:
                    break  # expired: replayed alone, as a delete
                run.append((n, entry, op))
        if len(run) < 2:
            await self._replay_one(*head[0])
            return 1
        entries = [
            Entry(
                e.key,
                e.payload,
                e.metadata,
                None if op.deadline is None else op.deadline - now,
                e.vector,
                created_at=e.created_at,
                updated_at=e.updated_at,
                space=e.space,
                index_text=e.index_text,
            )
            for _, _, op in run
            for e in (op.entry,)
        ]
        try:
            await self.primary.put_many(first.namespace, entries)
        except MemoryBackendError as exc:
            if exc.transient:
                raise
            for n, entry, _ in run:  # refused as a batch: find out which, one at a time
                if journal.get(n) is entry:
                    await self._replay_one(n, entry)
            return len(run)
        for n, entry, _ in run:
            if journal.get(n) is entry:  # not replaced by a newer operation meanwhile
                self._unjournal(n)
        return len(run)

    async def _drain(self) -> int:
        """Replay the whole journal, then switch back to the primary.

        What was journaled when the replay began is replayed while writes go on; what the
        writes of that stretch added is then replayed with new writes held back (they wait
        on ``_hold``), so a tight write loop cannot postpone the switch back for ever. Runs of
        writes go as batches, so the replay outpaces the writes it races.
        """
        journal = self._journal
        refused_before = len(self._refused)
        replayed = 0
        budget = len(journal)
        while journal and budget > 0:
            done = await self._replay_some(budget)
            budget -= done
            replayed += done
        if journal:
            hold = self._hold = asyncio.Event()
            try:
                while journal:
                    replayed += await self._replay_some(len(journal))
                self._degraded = False
            finally:
                self._hold = None
                hold.set()
        self._degraded = False
        if len(self._refused) > refused_before:
            self._report_refused(len(self._refused) - refused_before)
        return replayed

    async def _retry_refused(self, stop_at_refusal: bool = True) -> None:
        """Replay the refused operations again.

        New writes are held back and writes already on their way to the primary are waited
        for, so an older refused write can never land after a newer one of its key. A probe
        stops at the first operation still refused (moving it to the back): a server that is
        still full costs one round trip.

        Raises:
            MemoryBackendError: The primary is unavailable.
        """
        refused = self._refused
        if not refused:
            return
        hold = self._hold = asyncio.Event()
        try:
            if self._writing:
                idle = self._idle = asyncio.Event()
                await idle.wait()
            for jkey in list(refused):
                found = refused.get(jkey)
                if found is None:
                    continue
                op = found[0]
                try:
                    await self._replay(op)
                except MemoryBackendError as exc:
                    if exc.transient:
                        raise
                    refused[jkey] = (op, exc)
                    if stop_at_refusal:
                        refused.move_to_end(jkey)
                        break
                    continue
                del refused[jkey]
        finally:
            self._idle = None
            self._hold = None
            hold.set()
        if not refused:
            logger.warning(
                "the primary %r accepted every journaled operation it had refused",
                self.primary.info().name,
            )

    def _report_refused(self, new: int) -> None:
        if not self._refused:
            return
        first_key, (first_op, first_exc) = next(iter(self._refused.items()))
        logger.error(
            "the primary %r refused %d journaled operation(s) (%d new), e.g. %s of %r: %s; "
            "they stay journaled, are still served from here, and are retried every %gs "
            "(FallbackBackend.replay_refused, retry_refused())",
            self.primary.info().name,
            len(self._refused),
            new,
            _kind(first_op),
            first_key[1],
            first_exc,
            self.probe_interval,
        )
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "memory.replay.refused",
                {"memory.replay.refused.count": len(self._refused), "error.type": str(first_exc)},
            )
        self._ensure_probe()

    # -- routing --------------------------------------------------------------------------------

    async def _read(
        self,
        primary: Callable[_P, Awaitable[_T]],
        secondary: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Ask the primary while healthy; the secondary during an outage (or once it starts)."""
        if self._closed:
            raise self._closed_error()
        if not self._degraded:
            try:
                return await primary(*args, **kwargs)
            except MemoryBackendError as exc:
                self._activate(exc)
        else:
            self._ensure_probe()
        return await secondary(*args, **kwargs)

    async def _write(
        self,
        primary: Callable[_P, Awaitable[_T]],
        secondary: Callable[_P, Awaitable[_T]],
        journal: Callable[_P, None],
        accepted: Callable[_P, None],
        mirror_now: Callable[_P, _T] | None,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Write to the primary and mirror to the secondary while healthy; during an outage,
        journal the write for replay and serve it from the secondary (``mirror_now``: its
        synchronous form, when it has one)."""
        if self._closed:
            raise self._closed_error()
        hold = self._hold
        if hold is not None:  # a replay's last stretch, or a retry of refused operations
            await hold.wait()
        if not self._degraded:
            self._writing += 1
            try:
                result = await primary(*args, **kwargs)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                if self._refused:
                    accepted(*args, **kwargs)
                await secondary(*args, **kwargs)
                return result
            finally:
                self._writing -= 1
                idle = self._idle
                if idle is not None and not self._writing:
                    idle.set()
        else:
            self._ensure_probe()
        if mirror_now is not None:
            # The mirror's synchronous write (put_now): no recovery can run between it and
            # the journal's, so it goes first, and a write it refuses (vectors of another
            # embedder than the namespace's) is never journaled for the primary.
            result = mirror_now(*args, **kwargs)
            journal(*args, **kwargs)
            return result
        # Journal before any await, so a recovery finishing meanwhile still replays it.
        journal(*args, **kwargs)
        return await secondary(*args, **kwargs)

    def _closed_error(self) -> MemoryBackendError:
        return MemoryBackendError(
            "closed: this FallbackBackend was closed (aclose()); build a new one",
            backend=self.primary.info().name,
            transient=False,
        )

    def _mirror_one(self, namespace: Namespace, entry: Entry) -> int:
        mirror = self._mirror_now
        assert mirror is not None
        return mirror(namespace, entry)

    def _mirror_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        mirror = self._mirror_now
        assert mirror is not None
        evicted = 0
        for i, entry in enumerate(entries):
            try:
                evicted += mirror(namespace, entry)
            except Exception:
                self._journal_puts(namespace, entries[:i])  # the ones the mirror holds
                raise
        return evicted

    def _accepted_put(self, namespace: Namespace, entry: Entry) -> None:
        self._forget_refused(namespace, entry.key)

    def _accepted_puts(self, namespace: Namespace, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self._forget_refused(namespace, entry.key)

    def _accepted_delete(self, namespace: Namespace, key: str) -> None:
        self._forget_refused(namespace, key)

    def _journal_puts(self, namespace: Namespace, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self._journal_put(namespace, entry)

    def _journal_delete(self, namespace: Namespace, key: str) -> None:
        self._journal_op((namespace, key), _Delete(namespace, key))

    def _journal_update(self, namespace: Namespace, key: str, change: RecordUpdate) -> None:
        # Journaled as the change itself (replayed with the primary's update), folded into
        # the key's earlier journaled write or update when nothing of its namespace that may
        # depend on it (a delete_where, a clear) came between them (see _journal_op).
        deadline = None
        if change.set_ttl and change.ttl is not None:
            deadline = self._clock() + change.ttl
        if change.metadata is not None:  # our own copy
            change = change._replace(metadata=codec.copy_metadata(change.metadata))
        op = _Update(namespace, key, change, deadline)
        prior = self._mergeable((namespace, key))
        if isinstance(prior, _Update):
            op = _compose(prior, op)
        elif isinstance(prior, _Put):
            # Replayed as the write it amends: the record, as the update leaves it.
            e = prior.entry
            if change.payload is not None:
                payload, snapshot, vector = change.payload, change.snapshot, change.vector
            else:
                payload, snapshot, vector = e.payload, e.snapshot, e.vector
            meta = change.merged(e.metadata)
            put_deadline = deadline if change.set_ttl else prior.deadline
            ttl = None if put_deadline is None else max(put_deadline - self._clock(), 1e-3)
            space = e.space if vector is not None else None
            entry = Entry(
                key,
                payload,
                meta,
                ttl,
                vector,
                snapshot=snapshot,
                space=space,
                index_text=change.new_index_text(e.index_text),
            )
            self._journal_op((namespace, key), _Put(namespace, entry, put_deadline))
            return
        self._journal_op((namespace, key), op)

    def _journal_delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> None:
        where = ("where", json.dumps(filter, sort_keys=True))
        self._journal_op(
            (namespace, where),
            _DeleteWhere(namespace, codec.copy_metadata(filter) or {}),
            barrier=True,
        )

    def _accepted_update(self, namespace: Namespace, key: str, change: RecordUpdate) -> None:
        self._forget_refused(namespace, key)

    def _accepted_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> None:
        return None

    def _no_journal(self, namespace: Namespace, key: str, change: RecordUpdate) -> None:
        return None  # _serve_update journals, once it knows the secondary applied it

    async def _serve_update(
        self, namespace: Namespace, key: str, change: RecordUpdate
    ) -> Record | None:
        """The secondary's update: the mirror write while healthy; during an outage the
        answer, journaled only when the secondary held the record (else the caller hears
        KeyError, and the primary must not get the change later)."""
        record = await self.secondary.update(namespace, key, change)
        if record is not None and self._degraded:
            self._journal_update(namespace, key, change)
        return record

    # -- MemoryBackend --------------------------------------------------------------------------

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        mirror = self._mirror_now
        if (
            mirror is not None
            and not self._degraded
            and self._hold is None
            and not self._refused
            and not self._closed
        ):
            # The hot path, without a coroutine for the mirror write (in-memory put_now).
            self._writing += 1
            try:
                evicted = await self.primary.put(namespace, entry)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                mirror(namespace, entry)
                return evicted
            finally:
                self._writing -= 1
                idle = self._idle
                if idle is not None and not self._writing:
                    idle.set()
        return await self._write(
            self.primary.put,
            self.secondary.put,
            self._journal_put,
            self._accepted_put,
            None if mirror is None else self._mirror_one,
            namespace,
            entry,
        )

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        return await self._write(
            self.primary.put_many,
            self.secondary.put_many,
            self._journal_puts,
            self._accepted_puts,
            None if self._mirror_now is None else self._mirror_many,
            namespace,
            entries,
        )

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if self._refused:
            pinned, record = self._refused_record(namespace, key)
            if pinned:
                return record
        return await self._read(self.primary.get, self.secondary.get, namespace, key)

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        records = await self._read(self.primary.get_many, self.secondary.get_many, namespace, keys)
        if self._refused:
            for i, key in enumerate(keys):
                pinned, record = self._refused_record(namespace, key)
                if pinned:
                    records[i] = record
        return records

    async def delete(self, namespace: Namespace, key: str) -> bool:
        return await self._write(
            self.primary.delete,
            self.secondary.delete,
            self._journal_delete,
            self._accepted_delete,
            None,
            namespace,
            key,
        )

    async def clear(self, namespace: Namespace) -> int:
        return await self._write(
            self.primary.clear,
            self.secondary.clear,
            self._journal_clear,
            self._forget_refused,
            None,
            namespace,
        )

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        # The mirror applies the same change: it holds the record only if this process
        # wrote it recently, and then holds what the primary holds.
        return await self._write(
            self.primary.update,
            self._serve_update,
            self._no_journal,
            self._accepted_update,
            None,
            namespace,
            key,
            change,
        )

    def _held_back(self, namespace: Namespace) -> bool:
        """Whether ``namespace`` has acknowledged writes the primary refused: its reads are
        then served by the secondary, which holds them, until the primary accepts them."""
        for ns, _ in self._refused:
            if ns == namespace:
                _served_event(1)
                self._ensure_probe()
                return True
        return False

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        if self._refused and self._held_back(namespace):
            return await self.secondary.list(namespace, query)
        return await self._read(self.primary.list, self.secondary.list, namespace, query)

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        return await self._write(
            self.primary.delete_where,
            self.secondary.delete_where,
            self._journal_delete_where,
            self._accepted_where,
            None,
            namespace,
            filter,
        )

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        return await self._read(self.primary.namespaces, self.secondary.namespaces, prefix)

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        if self._refused and self._held_back(namespace):
            return await self.secondary.keys(namespace)
        return await self._read(self.primary.keys, self.secondary.keys, namespace)

    async def size(self, namespace: Namespace) -> int:
        if self._refused and self._held_back(namespace):
            return await self.secondary.size(namespace)
        return await self._read(self.primary.size, self.secondary.size, namespace)

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        if self._refused and self._held_back(namespace):
            return await self.secondary.search(namespace, query)
        return await self._read(self.primary.search, self.secondary.search, namespace, query)

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        if self._refused and self._held_back(namespace):
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

    def _history_of(self, backend: MemoryBackend) -> HistoryBackend:
        if not isinstance(backend, HistoryBackend):
            raise TypeError(f"backend {backend.info().name!r} keeps no history")
        return backend

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        return await self._write(
            self._history_of(self.primary).put_versioned,
            self._history_of(self.secondary).put_versioned,
            self._journal_versioned,
            self._accepted_versioned,
            None,
            namespace,
            entry,
            keep,
            supersedes,
        )

    def _journal_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> None:
        if entry.metadata is not None:  # our own copy
            entry = Entry(
                entry.key,
                entry.payload,
                codec.copy_metadata(entry.metadata),
                entry.ttl,
                entry.vector,
                snapshot=entry.snapshot,
                created_at=entry.created_at,
                updated_at=entry.updated_at,
                space=entry.space,
                index_text=entry.index_text,
            )
        deadline = None if entry.ttl is None else self._clock() + entry.ttl
        op = _VersionedPut(namespace, entry, deadline, keep, tuple(supersedes))
        self._journal_op((namespace, entry.key), op, barrier=True)

    def _accepted_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> None:
        for key in (entry.key, *supersedes):
            self._forget_refused(namespace, key)

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        return await self._write(
            self._history_of(self.primary).update_versioned,
            self._serve_versioned_update,
            self._no_versioned_journal,
            self._accepted_versioned_update,
            None,
            namespace,
            key,
            change,
            keep,
        )

    async def _serve_versioned_update(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        record = await self._history_of(self.secondary).update_versioned(
            namespace, key, change, keep
        )
        if record is not None and self._degraded:
            deadline = None
            if change.set_ttl and change.ttl is not None:
                deadline = self._clock() + change.ttl
            if change.metadata is not None:
                change = change._replace(metadata=codec.copy_metadata(change.metadata))
            op = _VersionedUpdate(namespace, key, change, deadline, keep)
            self._journal_op((namespace, key), op, barrier=True)
        return record

    def _no_versioned_journal(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> None:
        return None  # _serve_versioned_update journals, once the secondary applied it

    def _accepted_versioned_update(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> None:
        self._forget_refused(namespace, key)

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        return await self._read(
            self._history_of(self.primary).history,
            self._history_of(self.secondary).history,
            namespace,
            key,
        )

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        # Journaled after every write acknowledged before it, so a replay never brings a
        # forgotten record back; the mirror forgets it at once.
        return await self._write(
            self._history_of(self.primary).forget,
            self._history_of(self.secondary).forget,
            self._journal_forget,
            self._accepted_forget,
            None,
            namespace,
            keys,
            tombstone_ttl,
        )

    def _journal_forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> None:
        deadline = None if tombstone_ttl is None else self._clock() + tombstone_ttl
        op = _ForgetHistory(namespace, tuple(keys), deadline)
        self._journal_op((namespace, ("forget", "\x00".join(keys))), op, barrier=True)

    def _accepted_forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> None:
        for key in keys:  # a refused write of a forgotten key must not be retried
            self._forget_refused(namespace, key)

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        return await self._write(
            self._history_of(self.primary).restore,
            self._history_of(self.secondary).restore,
            self._journal_restore,
            self._accepted_restore,
            None,
            namespace,
            versions,
            keep,
        )

    def _journal_restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> None:
        op = _Restore(namespace, tuple(versions), keep)
        keys = "\x00".join(e.key for e, _ in versions)
        self._journal_op((namespace, ("restore", keys)), op, barrier=True)

    def _accepted_restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> None:
        return None

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        # Both: the mirror knows what this process forgot during an outage.
        found = await self._read(
            self._history_of(self.primary).forgotten,
            self._history_of(self.secondary).forgotten,
            namespace,
        )
        if not self._degraded:
            found |= await self._history_of(self.secondary).forgotten(namespace)
        return found

    async def aclose(self) -> None:
        """Stop probing, try once more to replay the journal, then close both backends."""
        if self._closed:
            return
        self._closed = True
        task = self._probe_task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if (self._degraded and self._journal) or self._refused:
            await self.recover()
            if self.pending:
                logger.error(
                    "closing with %d journaled memory operations the primary %r never "
                    "accepted (%d of them refused)",
                    self.pending,
                    self.primary.info().name,
                    len(self._refused),
                )
        try:
            await self.primary.aclose()
        finally:
            await self.secondary.aclose()


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


def _with_ttl(entry: Entry, ttl: float) -> Entry:
    """``entry`` expiring in ``ttl`` seconds: a replay keeps a record's absolute expiry."""
    return Entry(
        entry.key,
        entry.payload,
        entry.metadata,
        ttl,
        entry.vector,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        space=entry.space,
        index_text=entry.index_text,
    )
