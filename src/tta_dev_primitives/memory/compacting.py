"""One compaction: plan, summarize and apply (the ``compact`` operation; see
:mod:`.compaction` for what it does and the types it takes and returns)."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry import trace

from ..core.context import WorkflowContext
from ..observability import attributes as A
from . import codec
from .backends.base import CompactingBackend, CompactionPlan
from .compaction import (
    META_FROM,
    META_REPLACED,
    META_SOURCES,
    META_SUMMARIZED,
    META_SUMMARY,
    META_TO,
    CompactionReport,
    CompactionRequest,
    check_count,
    check_summarizer,
    check_threshold,
)
from .records import Entry, MemoryRecord, Record
from .search import (
    filter_key,
    indexed_value,
    make_document,
    matches_filter,
    normalize_vector,
    validate_filter,
)

if TYPE_CHECKING:
    from .operations import CompactOp
    from .runtime import Runtime

__all__ = ["run_compaction"]

_OWN = (META_SUMMARY, META_REPLACED, META_SUMMARIZED, META_FROM, META_TO, META_SOURCES)
_ATTEMPTS = 4  # plans tried when other writers keep changing the records


# -- one compaction ---------------------------------------------------------------------------


def _request(op: CompactOp) -> CompactionRequest:
    req = op.request
    if not isinstance(req, CompactionRequest):
        raise TypeError("a compact operation carries a CompactionRequest (use compact())")
    return req


def _times(record: Record) -> tuple[float | None, float | None, float | None]:
    """``(created_at, updated_at, expires_at)`` of a record, None where the backend keeps none
    (a backend without record times reports 0)."""
    created, updated, expires = record.created_at, record.updated_at, record.expires_at
    return (
        float(created) if created > 0 else None,
        float(updated) if updated > 0 else None,
        None if expires is None else float(expires),
    )


def _memory_record(record: Record, metadata: Mapping[str, Any] | None) -> MemoryRecord:
    created, updated, expires = _times(record)
    return MemoryRecord(
        record.key,
        codec.decode(record.payload),
        codec.copy_metadata(metadata) or {},
        created or 0.0,
        updated or 0.0,
        expires,
    )


def _common_metadata(metas: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The fields on which every one of ``metas`` agrees (our own markers left out)."""
    if not metas or any(not m for m in metas):
        return {}
    first = metas[0]
    assert first is not None
    out: dict[str, Any] = {}
    for name, value in first.items():
        if name in _OWN:
            continue
        k = filter_key(value)
        if all(name in m and filter_key(m[name]) == k for m in metas[1:] if m is not None):
            out[name] = value
    return out


def _is_summary(metadata: Mapping[str, Any] | None) -> bool:
    return metadata is not None and metadata.get(META_SUMMARY) is True


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _merge_metadata(metas: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Metadata of a merged record: every field of ``metas`` (oldest first; newer wins)."""
    out: dict[str, Any] = {}
    for m in metas:
        if m:
            out.update(m)
    return out or None


async def _duplicates(
    rt: Runtime, records: Sequence[Record], threshold: float
) -> dict[str, list[str]]:
    """Newest key -> the older keys that are its near-duplicates.

    Greedy, newest first: each record joins the first (newest) group whose head (its newest
    record) is similar enough, or heads a group of its own.
    """
    newest_first = list(reversed(records))
    values = [codec.decode(r.payload) for r in newest_first]
    if rt.embedder is not None:
        heads = _vector_heads(await rt.writer.embed(values), threshold)
    else:
        heads = _text_heads(values, [r.payload for r in newest_first], threshold)
    groups: dict[str, list[str]] = {}
    for i, head in enumerate(heads):
        if head is not None:
            groups.setdefault(newest_first[head].key, []).append(newest_first[i].key)
    return groups


def _vector_heads(raw: Sequence[Any], threshold: float) -> list[int | None]:
    """The head each record joins (None: it heads a group), by cosine of unit vectors."""
    n = len(raw)
    if not n:
        return []
    vectors = np.stack([normalize_vector(v) for v in raw]).astype(np.float64)
    is_head = np.zeros(n, dtype=bool)
    out: list[int | None] = []
    for i in range(n):
        close = np.flatnonzero(is_head[:i] & (vectors[:i] @ vectors[i] >= threshold - 1e-6))
        if close.size:
            out.append(int(close[0]))
        else:
            is_head[i] = True
            out.append(None)
    return out


def _text_heads(
    values: Sequence[Any], payloads: Sequence[str], threshold: float
) -> list[int | None]:
    """The head each record joins (None: it heads a group), by Jaccard of word sets.

    Prefix filtering: with the words of every set ordered rarest first, two sets of Jaccard at
    least ``threshold`` share a word among the first ``len - ceil(threshold * len) + 1`` of
    each, so only heads indexed under those words are compared. Records without words match
    on an identical value only.
    """
    words = [frozenset(make_document(v).terms) for v in values]
    df: dict[str, int] = {}
    for w in words:
        for t in w:
            df[t] = df.get(t, 0) + 1

    def prefix(w: frozenset[str]) -> list[str]:
        ordered = sorted(w, key=lambda t: (df[t], t))
        return ordered[: len(w) - math.ceil(threshold * len(w) - 1e-9) + 1]

    index: dict[str, list[int]] = {}
    wordless: dict[str, int] = {}
    out: list[int | None] = []
    for i, a in enumerate(words):
        if not a:
            head = wordless.setdefault(payloads[i], i)
            out.append(None if head == i else head)
            continue
        first = prefix(a)
        candidates: set[int] = set()
        for t in first:
            candidates.update(index.get(t, ()))
        found = None
        for h in sorted(candidates):
            b = words[h]
            inter = len(a & b)
            if inter >= threshold * (len(a) + len(b) - inter) - 1e-9:
                found = h
                break
        out.append(found)
        if found is None:
            for t in first:
                index.setdefault(t, []).append(i)
    return out


@dataclass(slots=True)
class _Plan:
    plan: CompactionPlan | None
    replaced: tuple[str, ...]
    merged: tuple[str, ...]


async def run_compaction(rt: Runtime, op: CompactOp, span: trace.Span) -> Any:
    """The ``compact`` operation's handler (see :meth:`MemoryPrimitive.compact`)."""
    req = _request(op)
    check_summarizer(req.summarizer)
    keep_last = check_count(req.keep_last, "keep_last", 0)
    max_records = (
        None if req.max_records is None else check_count(req.max_records, "max_records", 2)
    )
    threshold = check_threshold(req.merge_duplicates)
    if req.summarizer is None and threshold is None:
        raise ValueError("compact needs a summarizer, or merge_duplicates to merge only")
    timeout = codec.validate_ttl(req.summarizer_timeout, "summarizer_timeout")
    filter_ = validate_filter(req.filter)
    summary_key = None if req.summary_key is None else codec.validate_key(req.summary_key)
    ttl, _ = rt.writer.settings(req.ttl, None)
    backend = rt.backend
    if not isinstance(backend, CompactingBackend):
        raise TypeError(
            f"backend {backend.info().name!r} cannot compact: it needs scan() and "
            "apply_compaction() (see CompactingBackend)"
        )
    namespace = rt.namespace
    records = await backend.scan(namespace)
    if filter_:
        records = [r for r in records if matches_filter(r.metadata, filter_)]
    considered = len(records)
    by_key = {r.key: r for r in records}

    groups = {} if threshold is None else await _duplicates(rt, records, threshold)
    merged_away = {k for dups in groups.values() for k in dups}
    survivors = [r for r in records if r.key not in merged_away]
    merged_meta = {
        head: _merge_metadata([by_key[k].metadata for k in (*reversed(dups), head)])
        for head, dups in groups.items()
    }

    def metadata_of(r: Record) -> Mapping[str, Any] | None:
        return merged_meta.get(r.key, r.metadata)

    # Earlier summaries stand for the oldest records: they never take one of keep_last's
    # places, and each new summary rolls them in, so repeated compactions leave one.
    earlier = [r for r in survivors if _is_summary(metadata_of(r))]
    originals = [r for r in survivors if not _is_summary(metadata_of(r))]
    batch = originals[: max(0, len(originals) - keep_last)]
    if max_records is not None:
        batch = batch[:max_records]
    batch = [*earlier, *batch]
    if req.summarizer is None or len(batch) < 2:
        batch = []
    if (
        summary_key is not None
        and summary_key in by_key
        and summary_key not in {r.key for r in batch}
    ):
        raise ValueError(
            f"summary_key {summary_key!r} names a live record that is not being compacted"
        )

    summary: Any = None
    if batch:
        context = req.context if req.context is not None else WorkflowContext()
        inputs = [_memory_record(r, metadata_of(r)) for r in batch]
        async with asyncio.timeout(timeout):
            summary = await req.summarizer.execute(inputs, context)
        if _empty(summary):
            raise ValueError(
                f"summarizer {getattr(req.summarizer, 'name', req.summarizer)!r} returned "
                "nothing: every record was left in place"
            )
        # Validate (and encode) the summary before any record is touched.
        codec.encode_snapshot(summary, rt.writer.max_value_bytes, "summary")
    key = summary_key or f"summary:{uuid.uuid4().hex}"

    async def plan_without(changed: set[str]) -> _Plan:
        expected: dict[str, int] = {}
        delete: list[str] = []
        rewrite: list[tuple[Record, Mapping[str, Any] | None]] = []
        merged: list[str] = []
        in_batch = [r for r in batch if r.key not in changed]
        batch_keys = {r.key for r in in_batch} if len(in_batch) >= 2 else set()
        for head, dups in groups.items():
            keys = [head, *dups]
            if changed.intersection(keys):
                continue
            for k in keys:
                expected[k] = by_key[k].seq
            delete.extend(dups)
            merged.extend(dups)
            meta = merged_meta[head]
            if head not in batch_keys and meta != by_key[head].metadata:
                rewrite.append((by_key[head], meta))
        replaced: tuple[str, ...] = ()
        insert = None
        if batch_keys:
            kept_batch = [r for r in in_batch if r.key in batch_keys]
            replaced = tuple(r.key for r in kept_batch)
            for r in kept_batch:
                expected[r.key] = r.seq
                if r.key not in delete:
                    delete.append(r.key)
            insert = rt.writer.entry(key, summary, ttl, _summary_metadata(kept_batch, metadata_of))
        elif not merged:
            return _Plan(None, (), ())
        entries = [
            Entry(
                r.key,
                r.payload,
                codec.validate_metadata(meta) if meta else None,
                index_text=r.index_text,
            )
            for r, meta in rewrite
        ]
        values = [indexed_value(codec.decode(r.payload), r.index_text) for r, _ in rewrite]
        if insert is not None:
            entries.append(insert)
            values.append(summary)
        entries = await rt.writer.embedded(entries, values)
        if insert is not None:
            insert = entries.pop()
        plan = CompactionPlan(expected, tuple(delete), tuple(entries), insert)
        return _Plan(plan, replaced, tuple(merged))

    changed: set[str] = set()
    result = _Plan(None, (), ())
    for _ in range(_ATTEMPTS):
        result = await plan_without(changed)
        if result.plan is None:
            break
        conflicts = await backend.apply_compaction(namespace, result.plan)
        if not conflicts:
            break
        changed.update(conflicts)
    else:
        result = _Plan(None, (), ())
    report = CompactionReport(
        summary_key=key if result.plan is not None and result.plan.insert is not None else None,
        replaced=result.replaced if result.plan is not None else (),
        merged=result.merged if result.plan is not None else (),
        kept=tuple(sorted(changed)),
        considered=considered,
    )
    if span.is_recording():
        span.set_attributes(
            {
                A.ATTR_GEN_AI_MEMORY_RECORD_COUNT: report.removed,
                A.ATTR_MEMORY_COMPACTION_CONSIDERED: report.considered,
                A.ATTR_MEMORY_COMPACTION_REPLACED: len(report.replaced),
                A.ATTR_MEMORY_COMPACTION_MERGED: len(report.merged),
                A.ATTR_MEMORY_COMPACTION_KEPT: len(report.kept),
            }
        )
    return report


def _summary_metadata(
    batch: Sequence[Record], metadata_of: Callable[[Record], Mapping[str, Any] | None]
) -> dict[str, Any]:
    metas = [metadata_of(r) for r in batch]
    out = _common_metadata(metas)
    count = 0
    starts: list[float] = []
    ends: list[float] = []
    sources: list[str] = []
    for record, m in zip(batch, metas, strict=True):
        m = m or {}
        summary = m.get(META_SUMMARY) is True
        if summary:
            earlier = m.get(META_SOURCES, m.get(META_REPLACED))
            if isinstance(earlier, list):
                sources.extend(k for k in earlier if isinstance(k, str))
        else:
            sources.append(record.key)
        n = m.get(META_SUMMARIZED) if summary else None
        count += n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        created, updated, _ = _times(record)
        # An earlier summary stands for its own range; any other record for its own times.
        for name, acc, own in ((META_FROM, starts, created), (META_TO, ends, updated)):
            t = m.get(name) if summary else own
            if isinstance(t, int | float) and not isinstance(t, bool):
                acc.append(float(t))
    out[META_SUMMARY] = True
    out[META_REPLACED] = [r.key for r in batch]
    out[META_SOURCES] = list(dict.fromkeys(sources))
    out[META_SUMMARIZED] = count
    if starts:
        out[META_FROM] = min(starts)
    if ends:
        out[META_TO] = max(ends)
    return out


# -- compaction in the background --------------------------------------------------------------
