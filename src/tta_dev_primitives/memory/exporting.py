"""Export: a namespace tree's records streamed as format objects (see :mod:`.transfer`).

:meth:`MemoryPrimitive.export` returns :func:`export_records`' iterator: one page of the
backend's ``list`` at a time, oldest first, one ``export_memory`` span for the whole walk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry.util.types import AttributeValue

from ..observability import attributes as A
from . import codec
from .backends.base import HistoryBackend, MemoryBackend, VectorBackend
from .records import ListQuery, Namespace, Record
from .search import matches_filter, validate_filter
from .transfer import BATCH_SIZE, record_object

if TYPE_CHECKING:
    from ..core.context import WorkflowContext
    from .runtime import Runtime

__all__ = ["export_records"]


def _time_of(t: float) -> float | None:
    # A backend without record times reports 0: the format says null.
    return t if t > 0 else None


def _object_of(
    sub: Namespace, r: Record, vector: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``r`` as a format object of the namespace ``sub`` (relative to the exported one)."""
    return record_object(
        sub,
        r.key,
        codec.value_of(r.payload, r.snapshot),
        codec.copy_metadata(r.metadata),
        _time_of(r.created_at),
        _time_of(r.updated_at),
        r.expires_at,
        vector,
        r.index_text,
    )


def export_records(
    rt: Runtime,
    *,
    filter: Mapping[str, Any] | None = None,
    vectors: bool = False,
    history: bool = False,
    context: WorkflowContext | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The records of ``memory``'s namespace and of the namespaces below it, as format objects.

    See :meth:`~tta_dev_primitives.memory.MemoryPrimitive.export`. The arguments are checked
    here, before anything is read; the records are read when the iterator is.
    """
    filter_ = validate_filter(filter)
    if not isinstance(vectors, bool):
        raise TypeError(f"vectors must be True or False, got {type(vectors).__name__}")
    if not isinstance(history, bool):
        raise TypeError(f"history must be True or False, got {type(history).__name__}")
    if history and not isinstance(rt.backend, HistoryBackend):
        raise TypeError(f"backend {rt.backend.info().name!r} keeps no history")
    return _export(rt, filter_, vectors, context, history)


async def _export(
    rt: Runtime,
    filter_: Mapping[str, Any] | None,
    vectors: bool,
    context: WorkflowContext | None,
    history: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    # A page of the backend's list() at a time (oldest first, one walk per namespace with its
    # horizon), so the export holds at most BATCH_SIZE records whatever the namespace's size.
    backend = rt.backend
    own = rt.namespace
    op = rt.stream_operation("export", context)
    count = with_vector = 0
    try:
        with op.active():
            listed = await backend.namespaces(own)
        subs: list[Namespace] = [()]
        subs.extend(ns[len(own) :] for ns in listed if len(ns) > len(own))
        for sub in subs:
            namespace = own + sub
            after: int | None = None
            horizon: int | None = None
            while True:
                with op.active():
                    page = await backend.list(
                        namespace, ListQuery(filter_, BATCH_SIZE, "oldest", after, horizon)
                    )
                    found: list[dict[str, Any] | None] = [None] * len(page.records)
                    if vectors and page.records:
                        found = await _vectors(backend, namespace, page.records)
                horizon = page.horizon
                for r, vec in zip(page.records, found, strict=True):
                    with_vector += vec is not None
                    count += 1
                    yield _object_of(sub, r, vec)
                if not page.more or not page.records:
                    break
                after = page.records[-1].seq
            if history and isinstance(backend, HistoryBackend):
                # Then the namespace's earlier versions (format version 2: with valid_to),
                # key by key, newest first.
                with op.active():
                    found_versions = await backend.history(namespace, None)
                earlier = sorted(
                    (
                        v
                        for v in found_versions
                        if v.valid_to is not None
                        and (not filter_ or matches_filter(v.record.metadata, filter_))
                    ),
                    key=lambda v: (v.record.key, -(v.valid_to or 0.0)),
                )
                for v in earlier:
                    r = v.record
                    count += 1
                    obj = _object_of(sub, r)
                    obj["valid_to"] = v.valid_to
                    yield obj
    except GeneratorExit:  # the consumer stopped early: not an error
        op.finish(_export_attributes(count, with_vector, vectors), degraded=_degraded(backend))
        raise
    except BaseException as exc:
        attributes = _export_attributes(count, with_vector, vectors)
        op.finish(attributes, exc, degraded=_degraded(backend))
        raise
    op.finish(_export_attributes(count, with_vector, vectors), degraded=_degraded(backend))


def _export_attributes(count: int, with_vector: int, vectors: bool) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {A.ATTR_GEN_AI_MEMORY_RECORD_COUNT: count}
    if vectors:
        out[A.ATTR_MEMORY_EXPORT_VECTORS] = with_vector
    return out


def _degraded(backend: MemoryBackend) -> bool:
    return backend.info().degraded


async def _vectors(
    backend: MemoryBackend, namespace: Namespace, records: list[Record]
) -> list[dict[str, Any] | None]:
    """The format's ``vector`` objects of ``records`` (None where the backend has none)."""
    if not isinstance(backend, VectorBackend):
        return [None] * len(records)
    stored = await backend.get_vectors(namespace, [(r.key, r.seq) for r in records])
    if stored.space is None:
        return [None] * len(records)
    name, dims = stored.space
    return [
        None
        if v is None or len(v) != dims
        else {"embedder": name, "dimensions": dims, "values": v.astype(np.float64).tolist()}
        for v in stored.vectors
    ]
