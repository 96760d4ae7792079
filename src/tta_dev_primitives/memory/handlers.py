"""The memory operations' handlers: validation, encoding and the backend call, once each.

Each handler takes the :class:`~.runtime.Runtime` of the primitive (or view) that runs it,
its typed operation and the current span (``NO_SPAN`` when nothing records); :data:`HANDLERS`
maps every operation kind to its handler. Compaction, import, history and forget have their
handlers in their own modules.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace

from ..observability import attributes as A
from . import codec, tree
from .compacting import run_compaction
from .cursor import decode_cursor, encode_cursor
from .embeddings import embed_query, refuse_zero_vectors
from .history import (
    check_as_of,
    check_supersedes,
    history_backend,
    list_as_of,
    resolve,
    run_forget,
    run_get_as_of,
    run_history,
    search_as_of,
)
from .importing import import_into
from .instrumentation import NO_SPAN
from .operations import (
    KEEP,
    AddManyOp,
    AddOp,
    AddVersionedOp,
    ClearOp,
    DeleteOp,
    DeleteWhereOp,
    GetManyOp,
    GetOp,
    GetRecordOp,
    ImportOp,
    KeysOp,
    ListOp,
    NamespacesOp,
    SearchOp,
    SizeOp,
    UpdateOp,
)
from .records import (
    Entry,
    ListQuery,
    MemoryPage,
    MemoryRecord,
    Namespace,
    Record,
    RecordUpdate,
    SearchHit,
    SearchQuery,
    memory_record,
)
from .rerank import RERANK_DEPTH, rerank, validate_reranker
from .runtime import Runtime
from .search import (
    indexed_value,
    normalize_vector,
    prepare_query,
    validate_filter,
    validate_fusion,
    validate_semantic_weight,
)
from .transfer import ImportConflictError, ImportReport, ImportRequest, import_attributes
from .writes import validate_part

__all__ = ["HANDLERS", "Handler"]

_ORDERS = ("newest", "oldest")
_MODES = ("keyword", "semantic", "hybrid")


async def _embed_query(rt: Runtime, query: str, span: trace.Span) -> Any:
    cache = rt.query_vectors
    if not span.is_recording():
        return await cache.vector(query, lambda: _query_vector(rt, query))
    tracer = rt.telemetry.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("memory.search.embed_query") as child:
        misses = cache.misses
        vector = await cache.vector(query, lambda: _query_vector(rt, query))
        child.set_attribute("memory.search.query_cached", cache.misses == misses)
        return vector


async def _query_vector(rt: Runtime, query: str) -> Any:
    vector = normalize_vector(await embed_query(rt.embedder, query))
    refuse_zero_vectors(rt.embedder, (query,), (vector,), query=True)
    return vector


async def handle_add(rt: Runtime, op: AddOp, span: trace.Span) -> None:
    ttl, meta = rt.writer.settings(op.ttl, op.metadata)
    entry = rt.writer.entry(op.key, op.value, ttl, meta, index_text=op.index_text)
    embed = _check_embed(op.embed)
    if rt.embedder is not None:
        if embed is not False:
            (entry,) = await rt.writer.embedded([entry], (_embedded_text(op.value, entry, embed),))
    elif rt.namespace not in rt.shared.vectors_checked:
        await rt.writer.warn_if_vectors(rt.shared.backend, rt.namespace)
    shared = rt.shared
    if span is not NO_SPAN:
        rt.inst.records(span, ((entry.key, entry.payload, None, entry.metadata),))
    sync = shared.sync
    if sync is not None:
        evicted = sync.put_now(rt.namespace, entry)
    else:
        evicted = await shared.backend.put(rt.namespace, entry)
    if evicted:
        rt.inst.evicted(span, evicted, shared.backend.info())
    if shared.compactor is not None:
        rt.added(1)


async def handle_add_versioned(rt: Runtime, op: AddVersionedOp, span: trace.Span) -> None:
    """``add`` with ``history`` or ``supersedes``: one versioned write."""
    ttl, meta = rt.writer.settings(op.ttl, op.metadata)
    entry = rt.writer.entry(op.key, op.value, ttl, meta, index_text=op.index_text)
    supersedes = check_supersedes(op.supersedes, entry.key)
    embed = _check_embed(op.embed)
    backend = history_backend(rt, "add")
    if rt.resolver is not None:
        found = await resolve(rt, entry, op.value, span)
        supersedes = tuple(dict.fromkeys((*supersedes, *found)))
    if rt.embedder is not None and embed is not False:
        (entry,) = await rt.writer.embedded([entry], (_embedded_text(op.value, entry, embed),))
    if span is not NO_SPAN:
        rt.inst.records(span, ((entry.key, entry.payload, None, entry.metadata),))
        if supersedes:
            span.set_attribute(A.ATTR_MEMORY_SUPERSEDED_COUNT, len(supersedes))
    evicted = await backend.put_versioned(rt.namespace, entry, rt.history, supersedes)
    if evicted:
        rt.inst.evicted(span, evicted, rt.shared.backend.info())
    rt.added(1)


async def handle_add_many(rt: Runtime, op: AddManyOp, span: trace.Span) -> None:
    items: object = op.items
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, Iterable) and not isinstance(items, str | bytes):
        pairs = []
        for i, pair in enumerate(items):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"items[{i}] must be a (key, value) tuple")
            pairs.append(pair)
    else:
        raise TypeError("items must be a mapping or an iterable of (key, value) tuples")
    ttl, meta = rt.writer.settings(op.ttl, op.metadata)
    texts = _index_texts(op.index_text, pairs)
    entries = [
        rt.writer.entry(k, v, ttl, meta, i, texts.get(k) if texts else None)
        for i, (k, v) in enumerate(pairs)
    ]
    inst = rt.inst
    inst.record_count(span, len(entries))
    if not entries:
        return
    if rt.embedder is None:
        await rt.writer.warn_if_vectors(rt.shared.backend, rt.namespace)
    values = [v for _, v in pairs]
    if texts:
        values = [indexed_value(v, e.index_text) for v, e in zip(values, entries, strict=True)]
    entries = await rt.writer.embedded(entries, values)
    if span is not NO_SPAN:
        inst.records(span, ((e.key, e.payload, None, e.metadata) for e in entries))
    evicted = await rt.shared.backend.put_many(rt.namespace, entries)
    if evicted:
        inst.evicted(span, evicted, rt.shared.backend.info())
    rt.added(len(entries))


async def handle_get(rt: Runtime, op: GetOp, span: trace.Span) -> Any:
    key = codec.validate_key(op.key)
    shared = rt.shared
    sync = shared.sync
    if sync is not None:
        record = sync.get_now(rt.namespace, key)
    else:
        record = await shared.backend.get(rt.namespace, key)
    if span is not NO_SPAN:
        _traced_read(rt, span, key, record)
    if record is None:
        return op.default
    return codec.value_of(record.payload, record.snapshot)


async def handle_get_many(rt: Runtime, op: GetManyOp, span: trace.Span) -> dict[str, Any]:
    raw = op.keys
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise TypeError("keys must be an iterable of str")
    keys = [codec.validate_key(k, f"keys[{i}]") for i, k in enumerate(raw)]
    if not keys:
        return {}
    records = await rt.shared.backend.get_many(rt.namespace, keys)
    found = [(k, r) for k, r in zip(keys, records, strict=True) if r is not None]
    rt.inst.read(span, len(found), len(set(keys)), rt.shared.backend.info())
    rt.inst.records(span, ((k, r.payload, None, r.metadata) for k, r in found))
    return {k: codec.value_of(r.payload, r.snapshot) for k, r in found}


async def handle_search(rt: Runtime, op: SearchOp, span: trace.Span) -> list[SearchHit]:
    query = op.query
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    limit = codec.validate_limit(op.limit)
    mode = op.mode
    if mode is None:
        mode = "keyword" if rt.embedder is None else "hybrid"
    elif mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    elif mode != "keyword" and rt.embedder is None:
        raise ValueError(f"mode={mode!r} needs an embedder: MemoryPrimitive(embedder=...)")
    filter_ = validate_filter(op.filter)
    if not isinstance(op.subtree, bool):
        raise TypeError(f"subtree must be True or False, got {type(op.subtree).__name__}")
    half_life = op.recency_half_life
    if half_life is not None:
        if isinstance(half_life, bool) or not isinstance(half_life, int | float):
            raise TypeError(
                f"recency_half_life must be a number of seconds or None, "
                f"got {type(half_life).__name__}"
            )
        if not 0 < half_life < float("inf"):
            raise ValueError(f"recency_half_life must be > 0 seconds, got {half_life!r}")
        half_life = float(half_life)
        if op.subtree and mode == "hybrid":
            raise ValueError(
                "recency_half_life is not supported with subtree=True in hybrid mode; "
                "use mode='keyword' or 'semantic', or search one namespace"
            )
    inst = rt.inst
    inst.search_mode(span, mode)
    # The one blank check of the primitive's path: the backend reuses ``keywords``.
    keywords = prepare_query(query)
    if keywords is None:
        inst.record_count(span, 0)
        return []
    weight = rt.semantic_weight
    if op.semantic_weight is not None:
        weight = validate_semantic_weight(op.semantic_weight)
    fusion = rt.fusion if op.fusion is None else validate_fusion(op.fusion)
    min_score = op.min_score
    if min_score is not None:
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise TypeError(f"min_score must be a number or None, got {type(min_score).__name__}")
        if math.isnan(min_score):
            raise ValueError("min_score must be a number, got NaN")
    reranker = rt.reranker if op.reranker is None else validate_reranker(op.reranker)
    vector = None
    if mode != "keyword":
        vector = await _embed_query(rt, query, span)
    request = SearchQuery(
        query,
        limit if reranker is None else max(limit, RERANK_DEPTH),
        mode,
        filter_,
        vector,
        space=rt.writer.space(vector),
        fusion=fusion,
        semantic_weight=weight,
        phases=rt.inst.search_phases(span),
        recency_half_life=half_life,
        keywords=keywords,
    )
    if op.as_of is not None:
        if op.subtree:
            raise ValueError("as_of does not combine with subtree=True (yet)")
        hits = await search_as_of(rt, request, check_as_of(op.as_of))
        if min_score is not None:
            hits = [h for h in hits if h.score >= min_score]
        inst.record_count(span, len(hits))
        return hits[:limit]
    backend = rt.shared.backend
    if op.subtree:
        found = await backend.namespaces(rt.namespace)
        n = len(rt.namespace)
        pairs = [(found[i][n:], r) for i, r in await tree.search_tree(backend, found, request)]
    else:
        pairs = [((), r) for r in await backend.search(rt.namespace, request)]
    if min_score is not None:
        pairs = [(ns, r) for ns, r in pairs if r.score >= min_score]
    hits = [
        SearchHit(
            r.key,
            codec.value_of(r.payload, r.snapshot),
            r.score,
            codec.copy_metadata(r.metadata) or {},
            ns,
        )
        for ns, r in pairs
    ]
    if reranker is not None and hits:
        if span.is_recording():
            tracer = rt.telemetry.tracer()
            assert tracer is not None
            with tracer.start_as_current_span("memory.search.rerank") as child:
                child.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(hits))
                hits = await rerank(reranker, query, hits, limit)
        else:
            hits = await rerank(reranker, query, hits, limit)
    inst.record_count(span, len(hits))
    if span.is_recording():
        payloads = {(ns, r.key): r.payload for ns, r in pairs}
        inst.records(
            span,
            ((h.key, payloads[h.namespace, h.key], h.score, h.metadata) for h in hits),
            retrieval=True,
        )
    return hits


async def handle_get_record(rt: Runtime, op: GetRecordOp, span: trace.Span) -> MemoryRecord | None:
    key = codec.validate_key(op.key)
    shared = rt.shared
    record = await shared.backend.get(rt.namespace, key)
    if span is not NO_SPAN:
        _traced_read(rt, span, key, record)
    return None if record is None else memory_record(record)


async def handle_update(rt: Runtime, op: UpdateOp, span: trace.Span) -> MemoryRecord:
    key = codec.validate_key(op.key)
    if not isinstance(op.merge_metadata, bool):
        raise TypeError("merge_metadata must be True or False")
    payload = None
    snapshot: Any = codec.NO_SNAPSHOT
    vector = None
    set_text = op.index_text is not KEEP
    text = rt.writer.index_text(op.index_text) if set_text else None
    if op.value is not KEEP:
        payload, snapshot = codec.encode_snapshot(op.value, rt.writer.max_value_bytes)
        if rt.embedder is not None:
            embedded = text
            if not set_text:  # embedded with the index text the record keeps
                stored = await rt.shared.backend.get(rt.namespace, key)
                embedded = None if stored is None else stored.index_text
            value = indexed_value(op.value, embedded)
            (entry,) = await rt.writer.embedded([Entry(key, payload, None, None)], (value,))
            vector = entry.vector
        else:
            await rt.writer.warn_if_vectors(rt.shared.backend, rt.namespace)
    metadata: dict[str, Any] | None = None
    if op.metadata is not KEEP:
        if op.metadata is None:
            if not op.merge_metadata:
                metadata = {}  # replace with nothing
        else:
            metadata = codec.validate_metadata(op.metadata)
    set_ttl = op.ttl is not KEEP
    ttl = rt.writer.ttl(op.ttl) if set_ttl else None
    change = RecordUpdate(
        payload, snapshot, vector, metadata, op.merge_metadata, set_ttl, ttl, set_text, text
    )
    if rt.history:
        backend = history_backend(rt, "update")
        record = await backend.update_versioned(rt.namespace, key, change, rt.history)
    else:
        record = await rt.shared.backend.update(rt.namespace, key, change)
    if record is None:
        raise KeyError(key)
    if span is not NO_SPAN:
        rt.inst.records(span, ((key, record.payload, None, record.metadata),))
    return memory_record(record)


async def handle_list(rt: Runtime, op: ListOp, span: trace.Span) -> MemoryPage:
    filter_ = validate_filter(op.filter)
    limit = codec.validate_limit(op.limit)
    order = op.order
    if order not in _ORDERS:
        raise ValueError(f"order must be 'newest' or 'oldest', got {order!r}")
    if not isinstance(op.subtree, bool):
        raise TypeError(f"subtree must be True or False, got {type(op.subtree).__name__}")
    if op.subtree:
        if op.as_of is not None:
            raise ValueError("as_of does not combine with subtree=True (yet)")
        return await _list_tree(rt, op, ListQuery(filter_, limit, order), span)
    horizon = after = None
    if op.cursor is not None:
        horizon, after = decode_cursor(op.cursor, order)
    query = ListQuery(filter_, limit, order, after, horizon)
    if op.as_of is not None:
        found, last = await list_as_of(rt, query, check_as_of(op.as_of))
        rt.inst.record_count(span, len(found))
        cursor = None if last is None else encode_cursor(order, 0, last)
        return MemoryPage(found, cursor)
    result = await rt.shared.backend.list(rt.namespace, query)
    records = result.records
    rt.inst.record_count(span, len(records))
    next_cursor = None
    if result.more and records:
        next_cursor = encode_cursor(order, result.horizon, records[-1].seq)
    return MemoryPage([memory_record(r) for r in records], next_cursor)


async def _list_tree(rt: Runtime, op: ListOp, query: ListQuery, span: trace.Span) -> MemoryPage:
    start = None
    if op.cursor is not None:
        if not isinstance(op.cursor, str):
            raise TypeError(f"cursor must be a str or None, got {type(op.cursor).__name__}")
        start = tree.decode_tree_cursor(op.cursor, query.order)
    backend = rt.shared.backend
    found = await backend.namespaces(rt.namespace)
    page, cursor = await tree.list_tree(backend, rt.namespace, found, query, start)
    rt.inst.record_count(span, len(page))
    return MemoryPage([memory_record(r, ns) for ns, r in page], cursor)


async def handle_delete_where(rt: Runtime, op: DeleteWhereOp, span: trace.Span) -> int:
    if op.filter is None:
        raise TypeError("delete_where needs a filter (use clear() to delete everything)")
    filter_ = validate_filter(op.filter)
    if filter_ is None:
        raise ValueError("delete_where needs a non-empty filter: use clear() to delete everything")
    count = await rt.shared.backend.delete_where(rt.namespace, filter_)
    rt.inst.record_count(span, count)
    return count


async def handle_namespaces(rt: Runtime, op: NamespacesOp, span: trace.Span) -> list[Namespace]:
    prefix = _parts(op.prefix, "prefix")
    suffix = None if op.suffix is None else _parts(op.suffix, "suffix")
    depth = op.max_depth
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"max_depth must be an int or None, got {type(depth).__name__}")
        if depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {depth}")
    own = rt.namespace
    found = await rt.shared.backend.namespaces(own + tree.literal_prefix(prefix))
    n = len(own)
    rel = [ns[n:] for ns in found if len(ns) > n]
    out = tree.match_namespaces(rel, prefix, suffix, depth)
    rt.inst.record_count(span, len(out))
    return out


async def handle_delete(rt: Runtime, op: DeleteOp, span: trace.Span) -> bool:
    key = codec.validate_key(op.key)
    return await rt.shared.backend.delete(rt.namespace, key)


async def handle_clear(rt: Runtime, op: ClearOp, span: trace.Span) -> int:
    count = await rt.shared.backend.clear(rt.namespace)
    rt.inst.record_count(span, count)
    return count


async def handle_keys(rt: Runtime, op: KeysOp, span: trace.Span) -> list[str]:
    keys = await rt.shared.backend.keys(rt.namespace)
    rt.inst.record_count(span, len(keys))
    return keys


async def handle_size(rt: Runtime, op: SizeOp, span: trace.Span) -> int:
    size = await rt.shared.backend.size(rt.namespace)
    rt.inst.record_count(span, size)
    return size


async def handle_import(rt: Runtime, op: ImportOp, span: trace.Span) -> ImportReport:
    req = op.request
    if not isinstance(req, ImportRequest):
        raise TypeError("an import operation carries an ImportRequest (use import_())")
    try:
        report = await import_into(
            rt, req.records, on_conflict=req.on_conflict, progress=req.progress
        )
    except ImportConflictError as exc:
        if span.is_recording():
            span.set_attributes(import_attributes(exc.report))
        raise
    if span.is_recording():
        span.set_attributes(import_attributes(report))
    return report


def _embedded_text(value: Any, entry: Entry, embed: bool | str) -> Any:
    """What ``add`` embeds: the value with the entry's index text, or the ``embed`` text."""
    return indexed_value(value, entry.index_text) if embed is True else embed


def _index_texts(raw: object, pairs: list[tuple[Any, Any]]) -> dict[Any, Any] | None:
    """``add_many``'s ``index_text``: a mapping of keys of ``pairs`` to text (each checked by
    the writer's ``entry``), or None."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise TypeError(f"index_text must be a mapping of keys to str, got {type(raw).__name__}")
    keys = {k for k, _ in pairs if isinstance(k, str)}
    for key in raw:
        if key not in keys:
            raise ValueError(f"index_text names key {key!r}, which is not in items")
    return dict(raw)


def _parts(raw: object, arg: str) -> tuple[str, ...]:
    """A tuple of namespace parts (``*`` allowed: the caller gives it its meaning)."""
    if isinstance(raw, str):
        raise TypeError(f"{arg} must be a tuple of namespace parts, not a str")
    if not isinstance(raw, Sequence):
        raise TypeError(f"{arg} must be a tuple of str, got {type(raw).__name__}")
    return tuple(validate_part(p, f"{arg} part") for p in raw)


def _traced_read(rt: Runtime, span: trace.Span, key: str, record: Record | None) -> None:
    """A one-key read's span attributes: hit or miss, and the record."""
    rt.inst.read(span, record is not None, 1, rt.shared.backend.info())
    if record is not None:
        rt.inst.records(span, ((key, record.payload, None, record.metadata),))


def _check_embed(embed: object) -> bool | str:
    if embed is not True and not isinstance(embed, str) and embed is not False:
        raise TypeError(f"embed must be True, False or a str, got {type(embed).__name__}")
    return embed


Handler = Callable[[Runtime, Any, trace.Span], Awaitable[Any]]
"""A handler: ``(runtime, operation, span)`` to the operation's result."""

HANDLERS: dict[str, Handler] = {
    "add": handle_add,
    "get": handle_get,
    "search": handle_search,
    "delete": handle_delete,
    "clear": handle_clear,
    "keys": handle_keys,
    "size": handle_size,
    "add_many": handle_add_many,
    "get_many": handle_get_many,
    "compact": run_compaction,
    "get_record": handle_get_record,
    "update": handle_update,
    "list": handle_list,
    "delete_where": handle_delete_where,
    "namespaces": handle_namespaces,
    "import": handle_import,
    "add_versioned": handle_add_versioned,
    "get_as_of": run_get_as_of,
    "get_record_as_of": run_get_as_of,
    "history": run_history,
    "forget": run_forget,
}
"""Every operation kind's handler."""
