"""Versioned records: earlier versions, as-of reads and supersession.

Usage::

    memory = MemoryPrimitive(history=10)  # keep up to 10 earlier versions per key
    await memory.add("diet", "vegetarian")
    ...
    await memory.add("diet", "vegan")  # the vegetarian version ends now
    [v.value for v in await memory.history("diet")]  # ["vegan", "vegetarian"]
    await memory.get("diet", as_of=last_month)  # "vegetarian"

A version is current from its ``valid_from`` (when it was written) until its ``valid_to``
(when it was written over, updated or superseded; None while current). ``as_of=t`` answers
with the versions current at ``t``: ``valid_from <= t < valid_to``, and not expired by ``t``.
The backend keeps the versions (the :class:`~.backends.base.HistoryBackend` capability): the
version change is one atomic step with the write on every backend.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import trace

from . import codec
from .backends.base import HistoryBackend, Version
from .records import Entry, ListQuery, MemoryPage, MemoryRecord, SearchHit, SearchQuery
from .search import matches_filter, string_leaves

if TYPE_CHECKING:
    from .primitive import MemoryOperation, MemoryPrimitive

__all__ = ["ResolverInput"]


class ResolverInput(NamedTuple):
    """What a resolver (``MemoryPrimitive(resolver=...)``) gets for each ``add``.

    Attributes:
        record: The record being added (``valid_from`` None: not written yet).
        candidates: The current records most similar to it (a search with its text, in the
            primitive's default mode), best first, the record's own key left out.
    """

    record: MemoryRecord
    candidates: list[SearchHit]


def check_history(value: object) -> int:
    """A validated ``history=`` (earlier versions kept per key)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"history must be an int (earlier versions per key), got {value!r}")
    if value < 0:
        raise ValueError(f"history must be >= 0, got {value}")
    return value


def check_as_of(value: object) -> float:
    """``as_of`` as epoch seconds: a number, or a timezone-aware ``datetime``."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise ValueError("as_of must be a timezone-aware datetime (or epoch seconds)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"as_of must be epoch seconds or a datetime, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"as_of must be finite, got {value!r}")
    return float(value)


def check_supersedes(value: object, key: str) -> tuple[str, ...]:
    """Validated ``supersedes=`` keys (the written key itself left out)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError("supersedes must be a list of keys")
    keys = [codec.validate_key(k, f"supersedes[{i}]") for i, k in enumerate(value)]
    return tuple(k for k in dict.fromkeys(keys) if k != key)


def history_backend(memory: MemoryPrimitive, operation: str) -> HistoryBackend:
    backend = memory._shared.backend
    if not isinstance(backend, HistoryBackend):
        raise TypeError(
            f"backend {backend.info().name!r} keeps no history ({operation} needs "
            "put_versioned(), update_versioned(), history() and forget_history(): see "
            "HistoryBackend)"
        )
    return backend


def version_record(version: Version) -> MemoryRecord:
    """A :class:`MemoryRecord` of one version, with ``valid_from``/``valid_to``."""
    r = version.record
    return MemoryRecord(
        r.key,
        codec.value_of(r.payload, r.snapshot),
        codec.copy_metadata(r.metadata) or {},
        r.created_at,
        r.updated_at,
        r.expires_at,
        r.updated_at,
        version.valid_to,
    )


def current_at(version: Version, t: float) -> bool:
    """Whether ``version`` was current at ``t``."""
    r = version.record
    if r.updated_at > t:
        return False
    if version.valid_to is not None and version.valid_to <= t:
        return False
    return r.expires_at is None or r.expires_at > t


def newest_first(versions: list[Version]) -> list[Version]:
    return sorted(versions, key=lambda v: v.record.seq, reverse=True)


async def resolve(
    memory: MemoryPrimitive, entry: Entry, value: Any, span: trace.Span
) -> tuple[str, ...]:
    """The keys the primitive's resolver says ``entry`` supersedes (among its candidates).

    Runs before the write's atomic step, and only when there are candidates; whatever it
    raises reaches the caller, and nothing is written.
    """
    resolver = memory._resolver
    assert resolver is not None
    text = " ".join(string_leaves(value)).strip()
    candidates: list[SearchHit] = []
    if text:
        hits = await memory.search(text, limit=memory._resolver_k + 1)
        candidates = [h for h in hits if h.key != entry.key][: memory._resolver_k]
    if not candidates:
        return ()  # nothing it could supersede: no call
    record = MemoryRecord(entry.key, value, codec.copy_metadata(entry.metadata) or {})
    out = await resolver.execute(ResolverInput(record, candidates))
    if out is None:
        return ()
    if isinstance(out, str | bytes) or not isinstance(out, Iterable):
        raise TypeError(
            f"resolver {getattr(resolver, 'name', resolver)!r} must return keys (a list of "
            f"str), got {type(out).__name__}"
        )
    allowed = {h.key for h in candidates}
    keys = []
    for k in out:
        if k not in allowed:
            raise ValueError(
                f"resolver {getattr(resolver, 'name', resolver)!r} returned {k!r}, which is "
                "not one of its candidates: nothing was written"
            )
        keys.append(k)
    if span.is_recording():
        span.set_attribute("memory.resolver.superseded.count", len(keys))
    return tuple(dict.fromkeys(keys))


async def run_history(memory: MemoryPrimitive, op: MemoryOperation, span: trace.Span) -> Any:
    """``history(key)``: the key's versions, newest first."""
    key = codec.validate_key(op.key)
    backend = history_backend(memory, "history")
    versions = newest_first(await backend.history(memory.namespace, key))
    memory._inst.record_count(span, len(versions))
    return [version_record(v) for v in versions]


async def versions_at(memory: MemoryPrimitive, key: str | None, t: float) -> list[Version]:
    """The versions current at ``t`` (of ``key``, or of every key), newest write first."""
    backend = history_backend(memory, "as_of")
    found = await backend.history(memory.namespace, key)
    return newest_first([v for v in found if current_at(v, t)])


async def run_get_as_of(memory: MemoryPrimitive, op: MemoryOperation, span: trace.Span) -> Any:
    """``get(key, as_of=t)`` and ``get_record(key, as_of=t)`` (``op.value`` says which)."""
    key = codec.validate_key(op.key)
    t = check_as_of(op.as_of)
    found = await versions_at(memory, key, t)
    memory._inst.read(span, bool(found), 1, memory._shared.backend.info())
    if not found:
        return None if op.value == "record" else op.default
    record = version_record(found[0])
    return record if op.value == "record" else record.value


async def search_as_of(memory: MemoryPrimitive, request: SearchQuery, t: float) -> list[SearchHit]:
    """A search over the versions current at ``t``, ranked by the shared engine."""
    from .store import InMemoryStore

    found = await versions_at(memory, None, t)
    found.reverse()  # oldest write first: the engine breaks ties newest first
    store = InMemoryStore(None, max_value_bytes=None)
    values = [codec.value_of(v.record.payload, v.record.snapshot) for v in found]
    entries = [
        Entry(
            v.record.key,
            v.record.payload,
            v.record.metadata,
            created_at=v.record.created_at,
            updated_at=v.record.updated_at,
        )
        for v in found
    ]
    if request.mode != "keyword":
        entries = await memory._embedded(entries, values)
    for e in entries:
        store.put(e)
    return [
        SearchHit(r.key, codec.decode(r.payload), r.score, codec.copy_metadata(r.metadata) or {})
        for r in store.search_results(request)
    ]


async def list_as_of(
    memory: MemoryPrimitive, query: ListQuery, t: float
) -> tuple[list[MemoryRecord], int | None]:
    """A page of the versions current at ``t``, by write order; the last one's version
    when more follow."""
    found = await versions_at(memory, None, t)
    if query.order == "oldest":
        found.reverse()
    after = query.after
    if after is not None:
        if query.order == "oldest":
            found = [v for v in found if v.record.seq > after]
        else:
            found = [v for v in found if v.record.seq < after]
    if query.filter:
        found = [v for v in found if matches_filter(v.record.metadata, query.filter)]
    page = found[: query.limit]
    more = len(found) > query.limit
    return [version_record(v) for v in page], (page[-1].record.seq if more and page else None)


def page_of(records: Sequence[MemoryRecord], cursor: str | None) -> MemoryPage:
    return MemoryPage(list(records), cursor)
