"""Span attributes and metrics of memory operations, kept out of the primitive's logic.

:class:`MemoryInstrumentation` is what a :class:`~tta_dev_primitives.memory.MemoryPrimitive`
calls to describe an operation: the attributes a span starts with, what it learned (hit or
miss, records counted, evictions), opt-in content and the counters. Every method is cheap when
nothing records: span methods return at once on a non-recording span, counters at once when no
meter SDK is configured.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ..core.context import WorkflowContext
from ..core.instrumented import add_context_attributes
from ..core.telemetry import (
    DURATION_BUCKETS,
    TelemetryHandles,
    attribute_int,
    attribute_text,
    error_type,
)
from ..observability import attributes as A
from .backends.base import BackendInfo
from .records import Namespace
from .search import Scored

__all__ = [
    "MemoryInstrumentation",
    "SearchSpans",
    "StreamOperation",
    "content_capture_default",
    "store_id",
]

CONTENT_LIMIT = 1024  # characters of captured content per attribute value

NO_SPAN = trace.INVALID_SPAN
"""The span a handler gets when nothing records at all (no tracer, no meter): it may skip
every span and metric call."""
UNTRACED = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
"""The span a handler gets when no tracer records but a meter may: metrics still count."""


def store_id(namespace: Namespace) -> str:
    """``gen_ai.memory.store.id`` of a namespace: its parts joined by ``/``.

    ``%`` and ``/`` inside a part are escaped, so distinct namespaces read distinctly.
    """
    return attribute_text("/".join(p.replace("%", "%25").replace("/", "%2F") for p in namespace))


def content_capture_default() -> bool:
    """True when the standard GenAI switch asks for content capture."""
    return os.environ.get(A.CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def truncate(text: str) -> str:
    """``text`` cut to ``CONTENT_LIMIT`` characters, safe for OTLP (see ``attribute_text``)."""
    return attribute_text(text if len(text) <= CONTENT_LIMIT else text[:CONTENT_LIMIT] + "…")


def _histogram(meter: metrics.Meter) -> metrics.Histogram:
    return meter.create_histogram(
        A.METRIC_MEMORY_DURATION,
        unit="s",
        description="Duration of memory operations.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )


def _counter(name: str, description: str) -> Callable[[metrics.Meter], metrics.Counter]:
    def make(meter: metrics.Meter) -> metrics.Counter:
        return meter.create_counter(name, unit="{record}", description=description)

    return make


_HITS = _counter(A.METRIC_MEMORY_HITS, "Reads that found a record.")
_MISSES = _counter(A.METRIC_MEMORY_MISSES, "Reads that found no record.")
_EVICTIONS = _counter(A.METRIC_MEMORY_EVICTIONS, "Records evicted by the LRU bound.")
_FALLBACKS = _counter(A.METRIC_MEMORY_FALLBACKS, "Switches to the fallback backend.")
_COUNTERS = {
    A.METRIC_MEMORY_HITS: _HITS,
    A.METRIC_MEMORY_MISSES: _MISSES,
    A.METRIC_MEMORY_EVICTIONS: _EVICTIONS,
    A.METRIC_MEMORY_FALLBACKS: _FALLBACKS,
}


class AttributeCache:
    """Static span attributes per (operation, namespace), shared by a primitive and its views.

    Rebuilt when the backend's info object changes (e.g. a fallback degrades), and bounded:
    a process with many scoped namespaces keeps at most ``MAX`` entries.
    """

    MAX = 4096
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[tuple[str, Namespace], tuple[BackendInfo, dict[str, AttributeValue]]]
        self._entries = {}

    def get(
        self,
        kind: str,
        namespace: Namespace,
        info: BackendInfo,
        build: Callable[[], dict[str, Any]],
    ) -> dict[str, AttributeValue]:
        key = (kind, namespace)
        found = self._entries.get(key)
        if found is None or found[0] is not info:
            if len(self._entries) >= self.MAX:
                self._entries.clear()
            found = (info, build())
            self._entries[key] = found
        return found[1]


class MemoryInstrumentation:
    """Describes one primitive's memory operations on spans and metrics.

    Args:
        handles: The primitive's tracer and meter resolution.
        name: ``workflow.primitive.name``.
        primitive_type: ``workflow.primitive.type``.
        capture_content: Record query text and records (``gen_ai.memory.query.text``,
            ``gen_ai.memory.records`` and OpenInference's retrieval documents).
        capture_keys: Record the key as ``gen_ai.memory.record.id``.
        cache: Static attributes, shared with scoped views.
    """

    __slots__ = ("_cache", "_handles", "_type", "capture_content", "capture_keys", "name")

    def __init__(
        self,
        handles: TelemetryHandles,
        name: str,
        primitive_type: str,
        *,
        capture_content: bool,
        capture_keys: bool,
        cache: AttributeCache,
    ) -> None:
        self._handles = handles
        self.name = name
        self._type = primitive_type
        self.capture_content = capture_content
        self.capture_keys = capture_keys
        self._cache = cache

    # -- span start -------------------------------------------------------------------------

    @staticmethod
    def span_name(kind: str) -> str:
        return A.GEN_AI_OPERATION_NAMES[kind]

    @staticmethod
    def span_kind(info: BackendInfo) -> SpanKind:
        return SpanKind.CLIENT if info.remote else SpanKind.INTERNAL

    def span_attributes(
        self,
        kind: str,
        namespace: Namespace,
        info: BackendInfo,
        context: WorkflowContext,
        *,
        key: object = None,
        query: object = None,
        limit: object = None,
    ) -> dict[str, AttributeValue]:
        """The attributes a memory span starts with (called only when the span records)."""

        def build() -> dict[str, Any]:
            static: dict[str, Any] = {
                A.ATTR_PRIMITIVE_NAME: self.name,
                A.ATTR_PRIMITIVE_TYPE: self._type,
                A.ATTR_GEN_AI_OPERATION_NAME: A.GEN_AI_OPERATION_NAMES[kind],
                A.ATTR_GEN_AI_PROVIDER_NAME: info.name,
                A.ATTR_GEN_AI_MEMORY_STORE_ID: store_id(namespace),
                A.ATTR_MEMORY_BACKEND: info.name,
                **info.attributes,
            }
            if info.remote:
                static[A.ATTR_DB_OPERATION_NAME] = kind
            if kind == "search":
                static[A.ATTR_OPENINFERENCE_SPAN_KIND] = "RETRIEVER"
            return static

        attrs = dict(self._cache.get(kind, namespace, info, build))
        add_context_attributes(attrs, context)
        if kind == "search":
            if type(limit) is int:
                attrs[A.ATTR_MEMORY_SEARCH_LIMIT] = attribute_int(limit)
            if self.capture_content and isinstance(query, str):
                attrs[A.ATTR_GEN_AI_MEMORY_QUERY_TEXT] = truncate(query)
                attrs[A.ATTR_OPENINFERENCE_INPUT_VALUE] = truncate(query)
        if self.capture_keys and isinstance(key, str):
            attrs[A.ATTR_GEN_AI_MEMORY_RECORD_ID] = attribute_text(key)
        return attrs

    def metric_attributes(self, kind: str, info: BackendInfo) -> dict[str, AttributeValue]:
        return {
            A.ATTR_GEN_AI_OPERATION_NAME: A.GEN_AI_OPERATION_NAMES[kind],
            A.ATTR_MEMORY_BACKEND: info.name,
        }

    def duration_histogram(self) -> metrics.Histogram | None:
        hist: metrics.Histogram | None = self._handles.instrument(
            A.METRIC_MEMORY_DURATION, _histogram
        )
        return hist

    # -- what an operation learned -----------------------------------------------------------

    def count(self, metric: str, n: int, info: BackendInfo) -> None:
        """Add ``n`` to one of the memory counters (nothing without a meter SDK)."""
        if n and not self._handles.disabled():
            counter = self._handles.instrument(metric, _COUNTERS[metric])
            if counter is not None:
                counter.add(n, {A.ATTR_MEMORY_BACKEND: info.name})

    def read(self, span: trace.Span, found: int, wanted: int, info: BackendInfo) -> None:
        """A read of ``wanted`` keys found ``found`` records: hit attribute and counters."""
        if span is not NO_SPAN:
            if wanted == 1:
                span.set_attribute(A.ATTR_MEMORY_HIT, found == 1)
            else:
                span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, found)
        self.count(A.METRIC_MEMORY_HITS, found, info)
        self.count(A.METRIC_MEMORY_MISSES, wanted - found, info)

    def evicted(self, span: trace.Span, n: int, info: BackendInfo) -> None:
        if n:
            span.set_attribute(A.ATTR_MEMORY_EVICTED, n)
            self.count(A.METRIC_MEMORY_EVICTIONS, n, info)

    @staticmethod
    def record_count(span: trace.Span, n: int) -> None:
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, n)

    @staticmethod
    def search_mode(span: trace.Span, mode: str) -> None:
        span.set_attribute(A.ATTR_MEMORY_SEARCH_MODE, mode)

    def search_phases(self, span: trace.Span) -> SearchSpans | None:
        """What a search's phases report to while ``span`` records (None otherwise: the
        search then runs each phase directly, at no cost)."""
        if not span.is_recording():
            return None
        tracer = self._handles.tracer()
        return None if tracer is None else SearchSpans(tracer)

    @staticmethod
    def degraded(span: trace.Span) -> None:
        span.set_attribute(A.ATTR_MEMORY_DEGRADED, True)

    def records(
        self,
        span: trace.Span,
        records: Iterable[tuple[str, str, float | None, Mapping[str, Any] | None]],
        *,
        retrieval: bool = False,
    ) -> None:
        """Opt-in content: ``(key, payload JSON, score, metadata)`` of records written or read.

        ``gen_ai.memory.records`` gets them as a JSON list; with ``retrieval`` (search) they
        also go to OpenInference's ``retrieval.documents.<i>.document.*``, which Phoenix lists.
        """
        if not self.capture_content or not span.is_recording():
            return
        items: list[dict[str, Any]] = []
        for i, (key, payload, score, metadata) in enumerate(records):
            item: dict[str, Any] = {"id": attribute_text(key), "content": truncate(payload)}
            if score is not None:
                item["score"] = round(score, 6)
            if metadata:
                item["metadata"] = metadata
            items.append(item)
            if retrieval:
                prefix = f"{A.OPENINFERENCE_DOCUMENT_PREFIX}{i}.document."
                span.set_attribute(prefix + "id", attribute_text(key))
                if score is not None:
                    span.set_attribute(prefix + "score", score)
                span.set_attribute(prefix + "content", truncate(payload))
        # Each content is truncated, never the JSON itself, so the attribute always parses.
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORDS, json.dumps(items, ensure_ascii=False))

    def fallback_activated(self, info: BackendInfo) -> None:
        self.count(A.METRIC_MEMORY_FALLBACKS, 1, info)


class SearchSpans:
    """The :class:`~.search.PhaseObserver` of a traced search: each phase (``keyword``,
    ``vector``, ``fuse``) is a child span ``memory.search.<phase>`` of the current span, with
    the number of hits it gave in ``gen_ai.memory.record.count``."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def phase(self, name: str, run: Callable[[], list[Scored]]) -> list[Scored]:
        with self._tracer.start_as_current_span(f"memory.search.{name}") as span:
            hits = run()
            span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(hits))
            return hits


class StreamOperation:
    """The span and duration of an operation that runs across its caller's awaits.

    An export is an async iterator: the consumer's code runs between its records, so its span
    cannot be the current span throughout. It is started at once (the child of the span
    current then), made current only around the operation's own backend calls
    (:meth:`active`), and ended by :meth:`finish`. With nothing recording, every method does
    nothing.
    """

    __slots__ = ("_attrs", "_hist", "_span", "_start")

    def __init__(
        self,
        span: trace.Span = NO_SPAN,
        hist: metrics.Histogram | None = None,
        metric_attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        self._span = span
        self._hist = hist
        self._attrs = dict(metric_attributes or {})
        self._start = time.perf_counter()

    @property
    def span(self) -> trace.Span:
        return self._span

    def active(self) -> AbstractContextManager[Any]:
        """Make the span current for the ``with`` block (exceptions are recorded by finish)."""
        if self._span is NO_SPAN:
            return contextlib.nullcontext()
        return trace.use_span(
            self._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def finish(
        self,
        attributes: Mapping[str, AttributeValue],
        exc: BaseException | None = None,
        *,
        degraded: bool = False,
    ) -> None:
        """Set ``attributes`` (and the error, if any) on the span, end it, record the
        duration."""
        span = self._span
        err = None if exc is None else error_type(exc)
        if span is not NO_SPAN:
            if span.is_recording():
                span.set_attributes(attributes)
                if degraded:
                    span.set_attribute(A.ATTR_MEMORY_DEGRADED, True)
                if exc is not None and err is not None:
                    span.set_attribute(A.ATTR_ERROR_TYPE, err)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{err}: {exc}"))
            span.end()
        if self._hist is not None:
            attrs = dict(self._attrs)
            attrs[A.ATTR_WORKFLOW_OUTCOME] = "success" if exc is None else "error"
            if err is not None:
                attrs[A.ATTR_ERROR_TYPE] = err
            self._hist.record(time.perf_counter() - self._start, attrs)
