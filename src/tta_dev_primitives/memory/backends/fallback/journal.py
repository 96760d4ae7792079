"""The outage journal of :class:`~.FallbackBackend`: the operations acknowledged while the
primary was down, in acknowledged order and merged only where the merge is equivalent, and
the operations the primary refused on replay (kept, served and retried)."""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from ... import codec
from ...errors import MemoryBackendError
from ...records import Entry, Namespace, Record, RecordUpdate

# Users reach the package's names through the package; the rest is its siblings' plumbing.
__all__ = ["RefusedOperation"]


def served_event(count: int) -> None:
    """Note on the current span that refused operations answered a read."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("memory.replay.refused.served", {"memory.record.count": count})


@dataclass(frozen=True, slots=True)
class Put:
    namespace: Namespace
    entry: Entry
    deadline: float | None  # absolute expiry on the backend's clock


@dataclass(frozen=True, slots=True)
class Delete:
    namespace: Namespace
    key: str


@dataclass(frozen=True, slots=True)
class Clear:
    namespace: Namespace


@dataclass(frozen=True, slots=True)
class Update:
    namespace: Namespace
    key: str
    change: RecordUpdate  # its ttl unused: deadline holds the new expiry (with set_ttl)
    deadline: float | None  # absolute expiry on the backend's clock


@dataclass(frozen=True, slots=True)
class DeleteWhere:
    namespace: Namespace
    filter: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class VersionedPut:
    """A write with history (``put_versioned``): journaled one by one, never merged, so the
    primary gets every version, in order."""

    namespace: Namespace
    entry: Entry
    deadline: float | None
    keep: int
    supersedes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VersionedUpdate:
    namespace: Namespace
    key: str
    change: RecordUpdate
    deadline: float | None
    keep: int


@dataclass(frozen=True, slots=True)
class ForgetHistory:
    """A forget: records, versions and tombstones (the tombstones' expiry absolute)."""

    namespace: Namespace
    keys: tuple[str, ...]
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Restore:
    """Earlier versions an import added (``restore``), replayed as they were given."""

    namespace: Namespace
    versions: tuple[tuple[Entry, float], ...]
    keep: int


Op = (
    Put
    | Delete
    | Clear
    | Update
    | DeleteWhere
    | VersionedPut
    | VersionedUpdate
    | ForgetHistory
    | Restore
)
# (namespace, key): key None for a clear, ("where", filter JSON) for a delete_where.
JournalKey = tuple[Namespace, str | tuple[str, str] | None]
# A journal entry: its key and operation, under an id that grows in acknowledged order.
Journaled = tuple[JournalKey, Op]


def compose(first: Update, second: Update) -> Update:
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
    return Update(first.namespace, first.key, change, deadline)


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


_KINDS: dict[type[Any], str] = {
    Put: "add",
    Delete: "delete",
    Update: "update",
    DeleteWhere: "delete_where",
    VersionedPut: "add",
    VersionedUpdate: "update",
    ForgetHistory: "forget",
    Restore: "import",
    Clear: "clear",
}


def kind(op: Op) -> str:
    """The operation's name as users see it (:attr:`RefusedOperation.operation`)."""
    return _KINDS[type(op)]


def with_ttl(entry: Entry, ttl: float | None) -> Entry:
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


def own_copy(entry: Entry) -> Entry:
    """``entry`` with a copy of its metadata: the caller may mutate theirs later."""
    if entry.metadata is None:
        return entry
    return Entry(
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


class Journal:
    """The operations acknowledged during an outage, and those the primary refused.

    Each journaling method takes the arguments of the backend operation it journals, so the
    backend routes a write to it as it would to a backend.

    Args:
        clock: Monotonic clock in seconds, for the absolute expiry of journaled records.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # Entry id -> (key, operation), in the order the operations were acknowledged.
        self.entries: OrderedDict[int, Journaled] = OrderedDict()
        self._ids = itertools.count()
        # The id of each key's last entry, and of each namespace's last clear or
        # delete_where (a barrier: no later operation is merged into an entry before it).
        self._last: dict[JournalKey, int] = {}
        self._barrier: dict[Namespace, int] = {}
        # Journaled operations the primary refused on replay: kept, served and retried.
        self.refused: OrderedDict[JournalKey, tuple[Op, MemoryBackendError]] = OrderedDict()

    def mergeable(self, jkey: JournalKey) -> Op | None:
        """The key's last journaled operation, if a later one may replace or amend it: no
        clear or delete_where of its namespace came after it."""
        n = self._last.get(jkey)
        if n is None or self._barrier.get(jkey[0], -1) > n:
            return None
        return self.entries[n][1]

    def add(self, jkey: JournalKey, op: Op, barrier: bool = False) -> None:
        """Journal ``op`` after every operation acknowledged before it."""
        # The key's earlier entry is dropped when nothing between them depends on it
        # (operations on other keys commute with it; a clear or delete_where of the
        # namespace may not): the replay's outcome is the same.
        n = self._last.get(jkey)
        if n is not None and not barrier and self._barrier.get(jkey[0], -1) < n:
            del self.entries[n]
        n = next(self._ids)
        self.entries[n] = (jkey, op)
        self._last[jkey] = n
        if barrier:
            self._barrier[jkey[0]] = n
        if self.refused:
            self.refused.pop(jkey, None)  # superseded by this newer operation

    def remove(self, n: int) -> None:
        """Drop entry ``n`` (replayed, or set aside as refused)."""
        jkey, _ = self.entries.pop(n)
        if self._last.get(jkey) == n:
            del self._last[jkey]
        if self._barrier.get(jkey[0]) == n:
            del self._barrier[jkey[0]]

    def refuse(self, n: int, entry: Journaled, exc: MemoryBackendError) -> bool:
        """Set entry ``n`` aside as refused by the primary (unless a newer operation replaced
        it meanwhile); True if its key was not refused already."""
        if self.entries.get(n) is not entry:
            return False
        self.remove(n)
        jkey, op = entry
        new = jkey not in self.refused
        self.refused[jkey] = (op, exc)
        return new

    def deadline(self, ttl: float | None) -> float | None:
        """The absolute expiry of something expiring in ``ttl`` seconds."""
        return None if ttl is None else self._clock() + ttl

    # -- journaling, one method per backend write -------------------------------------------

    def put(self, namespace: Namespace, entry: Entry) -> None:
        entry = own_copy(entry)
        self.add((namespace, entry.key), Put(namespace, entry, self.deadline(entry.ttl)))

    def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self.put(namespace, entry)

    def delete(self, namespace: Namespace, key: str) -> None:
        self.add((namespace, key), Delete(namespace, key))

    def clear(self, namespace: Namespace) -> None:
        # The clear leaves nothing of what its namespace's earlier operations did.
        for n in [n for n, (jkey, _) in self.entries.items() if jkey[0] == namespace]:
            self.remove(n)
        self.forget_refused(namespace)
        self.add((namespace, None), Clear(namespace), barrier=True)

    def _own_change(self, change: RecordUpdate) -> tuple[RecordUpdate, float | None]:
        """Our own copy of ``change``, and the absolute expiry it sets (if any)."""
        deadline = self.deadline(change.ttl) if change.set_ttl else None
        if change.metadata is not None:
            change = change._replace(metadata=codec.copy_metadata(change.metadata))
        return change, deadline

    def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> None:
        # Journaled as the change itself (replayed with the primary's update), folded into
        # the key's earlier journaled write or update when nothing of its namespace that may
        # depend on it (a delete_where, a clear) came between them (see add).
        change, deadline = self._own_change(change)
        op = Update(namespace, key, change, deadline)
        prior = self.mergeable((namespace, key))
        if isinstance(prior, Update):
            op = compose(prior, op)
        elif isinstance(prior, Put):
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
            self.add((namespace, key), Put(namespace, entry, put_deadline))
            return
        self.add((namespace, key), op)

    def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> None:
        where = ("where", json.dumps(filter, sort_keys=True))
        op = DeleteWhere(namespace, codec.copy_metadata(filter) or {})
        self.add((namespace, where), op, barrier=True)

    def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> None:
        entry = own_copy(entry)
        op = VersionedPut(namespace, entry, self.deadline(entry.ttl), keep, tuple(supersedes))
        self.add((namespace, entry.key), op, barrier=True)

    def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> None:
        change, deadline = self._own_change(change)
        op = VersionedUpdate(namespace, key, change, deadline, keep)
        self.add((namespace, key), op, barrier=True)

    def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> None:
        op = ForgetHistory(namespace, tuple(keys), self.deadline(tombstone_ttl))
        self.add((namespace, ("forget", "\x00".join(keys))), op, barrier=True)

    def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> None:
        op = Restore(namespace, tuple(versions), keep)
        keys = "\x00".join(e.key for e, _ in versions)
        self.add((namespace, ("restore", keys)), op, barrier=True)

    # -- a write the primary accepted makes a refused one of its keys moot -------------------
    # One method per backend write, taking its arguments (clear: forget_refused).

    def accepted_put(self, namespace: Namespace, entry: Entry) -> None:
        self.forget_refused(namespace, entry.key)

    def accepted_put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self.forget_refused(namespace, entry.key)

    def accepted_delete(self, namespace: Namespace, key: str) -> None:
        self.forget_refused(namespace, key)

    def accepted_update(self, namespace: Namespace, key: str, change: RecordUpdate) -> None:
        self.forget_refused(namespace, key)

    def accepted_put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> None:
        for key in (entry.key, *supersedes):
            self.forget_refused(namespace, key)

    def accepted_update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> None:
        self.forget_refused(namespace, key)

    def accepted_forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> None:
        for key in keys:  # a refused write of a forgotten key must not be retried
            self.forget_refused(namespace, key)

    # -- refused operations ---------------------------------------------------------------

    def forget_refused(self, namespace: Namespace, key: str | None = None) -> None:
        """Drop refused operations a newer accepted write made moot (all of a namespace when
        ``key`` is None: a clear)."""
        refused = self.refused
        if key is not None:
            refused.pop((namespace, key), None)
            return
        for jkey in [k for k in refused if k[0] == namespace]:
            del refused[jkey]

    def refused_record(self, namespace: Namespace, key: str) -> tuple[bool, Record | None]:
        """(True, what the refused journaled write of ``key`` says the key holds), or
        (False, None) when no refused operation covers it."""
        found = self.refused.get((namespace, key))
        if found is None:
            return False, None
        op = found[0]
        served_event(1)
        if isinstance(op, Put):
            if op.deadline is not None and op.deadline <= self._clock():
                return True, None
            entry = op.entry
            meta = codec.copy_metadata(entry.metadata)
            return True, Record(
                entry.key, entry.payload, meta, 0, entry.snapshot, index_text=entry.index_text
            )
        if isinstance(op, Delete):
            return True, None
        return False, None  # an update or delete_where: the backends' records stand

    def refused_in(self, namespace: Namespace) -> bool:
        """Whether ``namespace`` has operations the primary refused."""
        return any(ns == namespace for ns, _ in self.refused)

    def refused_operations(self) -> list[RefusedOperation]:
        """The refused operations, oldest first, as users see them."""
        return [
            RefusedOperation(kind(op), op.namespace, k if isinstance(k, str) else None, exc)
            for (_, k), (op, exc) in self.refused.items()
        ]
