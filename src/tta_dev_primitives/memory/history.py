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

import dataclasses
import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from opentelemetry import trace

from ..observability import attributes as A
from . import codec
from .backends.base import HistoryBackend, Version
from .operations import GetAsOfOp
from .records import (
    Entry,
    ListQuery,
    MemoryPage,
    MemoryRecord,
    Record,
    SearchHit,
    SearchQuery,
    memory_record,
)
from .search import indexed_value, matches_filter, string_leaves, validate_filter

if TYPE_CHECKING:
    from .operations import ForgetOp, GetRecordAsOfOp, HistoryOp
    from .runtime import Runtime

__all__ = ["ForgetReport", "ResolverInput"]


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


# isinstance() against a runtime-checkable protocol looks every method up (tens of
# microseconds): the answer is kept per backend class.
_CAPABLE: dict[type, bool] = {}


def history_backend(rt: Runtime, operation: str) -> HistoryBackend:
    backend = rt.backend
    capable = _CAPABLE.get(type(backend))
    if capable is None:
        capable = _CAPABLE[type(backend)] = isinstance(backend, HistoryBackend)
    if not capable:
        raise TypeError(
            f"backend {backend.info().name!r} keeps no history ({operation} needs "
            "put_versioned(), update_versioned(), history(), forget() and forgotten(): see "
            "HistoryBackend)"
        )
    return cast(HistoryBackend, backend)


def version_record(version: Version) -> MemoryRecord:
    """A :class:`MemoryRecord` of one version, with ``valid_from``/``valid_to``."""
    r = version.record
    return dataclasses.replace(memory_record(r), valid_from=r.updated_at, valid_to=version.valid_to)


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


async def resolve(rt: Runtime, entry: Entry, value: Any, span: trace.Span) -> tuple[str, ...]:
    """The keys the primitive's resolver says ``entry`` supersedes (among its candidates).

    Runs before the write's atomic step, and only when there are candidates; whatever it
    raises reaches the caller, and nothing is written.
    """
    resolver = rt.resolver
    assert resolver is not None
    text = " ".join(string_leaves(value)).strip()
    candidates: list[SearchHit] = []
    if text:
        hits = await rt.memory.search(text, limit=rt.resolver_k + 1)
        candidates = [h for h in hits if h.key != entry.key][: rt.resolver_k]
    if not candidates:
        return ()  # nothing it could supersede: no call
    record = MemoryRecord(
        entry.key, value, codec.copy_metadata(entry.metadata) or {}, index_text=entry.index_text
    )
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
        span.set_attribute(A.ATTR_MEMORY_RESOLVER_SUPERSEDED_COUNT, len(keys))
    return tuple(dict.fromkeys(keys))


async def run_history(rt: Runtime, op: HistoryOp, span: trace.Span) -> Any:
    """``history(key)``: the key's versions, newest first."""
    key = codec.validate_key(op.key)
    backend = history_backend(rt, "history")
    versions = newest_first(await backend.history(rt.namespace, key))
    rt.inst.record_count(span, len(versions))
    return [version_record(v) for v in versions]


async def versions_at(rt: Runtime, key: str | None, t: float) -> list[Version]:
    """The versions current at ``t`` (of ``key``, or of every key), newest write first."""
    backend = history_backend(rt, "as_of")
    found = await backend.history(rt.namespace, key)
    return newest_first([v for v in found if current_at(v, t)])


async def run_get_as_of(rt: Runtime, op: GetAsOfOp | GetRecordAsOfOp, span: trace.Span) -> Any:
    """``get(key, as_of=t)`` and ``get_record(key, as_of=t)`` (the kind says which; ``t``
    in ``op.as_of``)."""
    key = codec.validate_key(op.key)
    t = check_as_of(op.as_of)
    found = await versions_at(rt, key, t)
    rt.inst.read(span, bool(found), 1, rt.backend.info())
    if not found:
        return op.default if isinstance(op, GetAsOfOp) else None
    record = version_record(found[0])
    return record.value if isinstance(op, GetAsOfOp) else record


async def search_as_of(rt: Runtime, request: SearchQuery, t: float) -> list[SearchHit]:
    """A search over the versions current at ``t``, ranked by the shared engine."""
    from .store import InMemoryStore

    found = await versions_at(rt, None, t)
    found.reverse()  # oldest write first: the engine breaks ties newest first
    store = InMemoryStore(None, max_value_bytes=None)
    values = [
        indexed_value(codec.value_of(v.record.payload, v.record.snapshot), v.record.index_text)
        for v in found
    ]
    entries = [
        Entry(
            v.record.key,
            v.record.payload,
            v.record.metadata,
            created_at=v.record.created_at,
            updated_at=v.record.updated_at,
            index_text=v.record.index_text,
        )
        for v in found
    ]
    if request.mode != "keyword":
        entries = await rt.writer.embedded(entries, values)
    for e in entries:
        store.put(e)
    return [
        SearchHit(
            r.key,
            codec.value_of(r.payload, r.snapshot),
            r.score,
            codec.copy_metadata(r.metadata) or {},
        )
        for r in store.search_results(request)
    ]


async def list_as_of(
    rt: Runtime, query: ListQuery, t: float
) -> tuple[list[MemoryRecord], int | None]:
    """A page of the versions current at ``t``, by write order; the last one's version
    when more follow."""
    found = await versions_at(rt, None, t)
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


# -- forgetting ---------------------------------------------------------------------------------

DEFAULT_TOMBSTONE_TTL = 30 * 86400.0
"""Seconds a tombstone of ``forget`` lasts by default (30 days)."""


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What :meth:`~tta_dev_primitives.memory.MemoryPrimitive.forget` did.

    Attributes:
        forgotten: Keys forgotten (asked for, or matching the filter), sorted.
        removed: Live records and earlier versions removed (summaries included).
        summaries_removed: Keys of summaries built from a forgotten record, removed (and
            tombstoned) with it.
        summaries_rebuilt: Keys of such summaries rebuilt without it (``summarizer=``).
    """

    forgotten: tuple[str, ...] = ()
    removed: int = 0
    summaries_removed: tuple[str, ...] = ()
    summaries_rebuilt: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForgetRequest:
    """The arguments of one forget (a ``ForgetOp``)."""

    key: Any = None
    filter: Any = None
    summarizer: Any = None
    tombstone_ttl: Any = DEFAULT_TOMBSTONE_TTL


def _replaced(record: Record) -> list[str]:
    """The keys a summary record stands for: those it replaced, and the original records'
    through earlier summaries."""
    from .compaction import META_REPLACED, META_SOURCES, META_SUMMARY

    meta = record.metadata or {}
    if meta.get(META_SUMMARY) is not True:
        return []
    out: list[str] = []
    for name in (META_REPLACED, META_SOURCES):
        keys = meta.get(name)
        if isinstance(keys, list):
            out.extend(k for k in keys if isinstance(k, str))
    return out


def names_forgotten(metadata: Any, forgotten: set[str]) -> bool:
    """Whether a record's metadata marks it a summary built from a forgotten key."""
    return bool(forgotten) and bool(
        set(_replaced(Record("", "", metadata))).intersection(forgotten)
    )


def _sentences(value: Any) -> list[str]:
    from .compaction import SENTENCE_BREAK

    out: list[str] = []
    for leaf in string_leaves(value):
        out.extend(p.strip() for p in SENTENCE_BREAK.split(leaf) if p.strip())
    return out


async def run_forget(rt: Runtime, op: ForgetOp, span: trace.Span) -> Any:
    """``forget(key | filter=...)``: records, their history, summaries built from them."""
    from .compaction import (
        META_REPLACED,
        META_SOURCES,
        META_SUMMARIZED,
        check_summarizer,
    )

    req = op.request
    if not isinstance(req, ForgetRequest):
        raise TypeError("a forget operation carries a ForgetRequest (use forget())")
    if (req.key is None) == (req.filter is None):
        raise ValueError("forget takes a key or filter= (one of them)")
    key = None if req.key is None else codec.validate_key(req.key)
    filter_ = None if req.filter is None else validate_filter(req.filter)
    if req.filter is not None and not filter_:
        raise ValueError("filter must not be empty: forget(filter={}) would forget everything")
    check_summarizer(req.summarizer)
    ttl = codec.validate_ttl(req.tombstone_ttl, "tombstone_ttl")
    backend = history_backend(rt, "forget")
    ns = rt.namespace
    versions = await backend.history(ns, None)
    if key is not None:
        keys = {key}
    else:
        keys = {v.record.key for v in versions if matches_filter(v.record.metadata, filter_)}
    # Summaries built from them, through summaries that rolled those up.
    tainted = set(keys)
    grew = True
    while grew:
        grew = False
        for v in versions:
            k = v.record.key
            if k not in tainted and tainted.intersection(_replaced(v.record)):
                tainted.add(k)
                grew = True
    live = {v.record.key: v.record for v in versions if v.valid_to is None}
    summaries = sorted(k for k in tainted - keys if k in live)
    removed_summaries: list[str] = []
    rebuilt: list[str] = []
    removed = 0
    if req.summarizer is None:
        removed_summaries = summaries
    else:
        gone = {s for v in versions if v.record.key in keys for s in _sentences(_value(v))}
        known = {v.record.key for v in versions}
        for k in summaries:
            record = live[k]
            if not keys.intersection(_replaced(record)) <= known:
                # A forgotten record's text is gone (compacted away, no version kept): its
                # sentences cannot be told apart, so the summary goes.
                removed_summaries.append(k)
                continue
            kept = [s for s in _sentences(_value(Version(record))) if s not in gone]
            summary: Any = None
            meta = dict(record.metadata or {})
            for name in (META_REPLACED, META_SOURCES):
                if isinstance(meta.get(name), list):
                    meta[name] = [r for r in meta[name] if r not in tainted]
            n = meta.get(META_SUMMARIZED)
            if isinstance(n, int) and not isinstance(n, bool):
                meta[META_SUMMARIZED] = max(1, n - len(keys & set(_replaced(record))))
            if kept:
                cleaned = MemoryRecord(k, " ".join(kept), meta, record.created_at)
                summary = await req.summarizer.execute([cleaned])
            if summary is None or summary == "" or summary == [] or summary == {}:
                removed_summaries.append(k)
                continue
            entry = rt.writer.entry(k, summary, _left(record), codec.validate_metadata(meta))
            (entry,) = await rt.writer.embedded([entry], (summary,))
            removed += await backend.forget(ns, [k], None)  # its versions held the old text
            await rt.backend.put(ns, entry)
            rebuilt.append(k)
    targets = sorted(keys | set(removed_summaries))
    removed += await backend.forget(ns, targets, ttl)
    report = ForgetReport(tuple(sorted(keys)), removed, tuple(removed_summaries), tuple(rebuilt))
    rt.inst.record_count(span, report.removed)
    return report


def _value(version: Version) -> Any:
    return codec.value_of(version.record.payload, version.record.snapshot)


def _left(record: Record) -> float | None:
    """Seconds ``record`` has left to live (None: no expiry)."""
    import time

    if record.expires_at is None:
        return None
    return max(record.expires_at - time.time(), 1e-3)
