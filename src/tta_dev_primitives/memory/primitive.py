"""``MemoryPrimitive``: a traced, composable memory step with a pluggable storage backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from ..core.composition import LambdaPrimitive
from ..core.context import WorkflowContext
from ..core.instrumented import InstrumentedPrimitive, add_context_attributes
from ..core.telemetry import DURATION_BUCKETS, attribute_int, attribute_text
from ..observability import attributes as A
from . import codec
from .backends.base import BackendInfo, MemoryBackend
from .backends.fallback import FallbackBackend
from .backends.in_memory import InMemoryBackend
from .backends.redis import RedisBackend
from .embeddings import Embedder
from .errors import MemoryBackendError
from .records import Entry, Namespace, Record, SearchHit, SearchQuery
from .search import SearchMode, normalize_vector, string_leaves

__all__ = ["MemoryOperation", "MemoryPrimitive", "OperationKind"]

OperationKind: TypeAlias = Literal[
    "add", "get", "search", "delete", "clear", "keys", "size", "add_many", "get_many"
]
_MODES = ("keyword", "semantic", "hybrid")
_CONTENT_LIMIT = 1024  # characters of captured content per attribute
_MIRROR_MAX_SIZE = 10_000  # records per namespace the Redis fallback mirrors


@dataclass(slots=True)
class MemoryOperation:
    """One memory operation, the input of :meth:`MemoryPrimitive.execute`.

    Build it with the class methods (``MemoryOperation.add(...)``, ``.get(...)``,
    ``.search(...)``, ``.delete(...)``, ...); arguments are validated when it runs. Treat it
    as immutable (it is not frozen only because a frozen dataclass costs about 1 us more to
    build, on the hot path of every operation).
    """

    kind: OperationKind
    key: Any = None
    value: Any = None
    ttl: Any = None
    metadata: Any = None
    default: Any = None
    query: Any = None
    limit: Any = 5
    mode: Any = None
    filter: Any = None
    items: Any = None
    keys: Any = None

    @classmethod
    def add(
        cls,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> MemoryOperation:
        """Store ``value`` under ``key``."""
        return cls("add", key=key, value=value, ttl=ttl, metadata=metadata)

    @classmethod
    def get(cls, key: str, default: Any = None) -> MemoryOperation:
        """Read ``key`` (``default`` when missing)."""
        return cls("get", key=key, default=default)

    @classmethod
    def search(
        cls,
        query: str,
        *,
        limit: int = 5,
        mode: SearchMode | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> MemoryOperation:
        """Search for ``query``."""
        return cls("search", query=query, limit=limit, mode=mode, filter=filter)

    @classmethod
    def delete(cls, key: str) -> MemoryOperation:
        """Delete ``key``."""
        return cls("delete", key=key)

    @classmethod
    def clear(cls) -> MemoryOperation:
        """Delete every record of the namespace."""
        return cls("clear")

    @classmethod
    def list_keys(cls) -> MemoryOperation:
        """List the namespace's keys, least recently used first."""
        return cls("keys")

    @classmethod
    def size(cls) -> MemoryOperation:
        """Count the namespace's records."""
        return cls("size")

    @classmethod
    def add_many(
        cls,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> MemoryOperation:
        """Store several ``(key, value)`` pairs in one batch."""
        return cls("add_many", items=items, ttl=ttl, metadata=metadata)

    @classmethod
    def get_many(cls, keys: Iterable[str]) -> MemoryOperation:
        """Read several keys in one batch."""
        return cls("get_many", keys=keys)


class _Shared:
    """State shared by a primitive and its scoped views."""

    __slots__ = (
        "backend",
        "closed",
        "degraded",
        "get_now",
        "owns_backend",
        "put_now",
        "span_attrs",
    )

    def __init__(self, backend: MemoryBackend, owns_backend: bool) -> None:
        self.backend = backend
        self.owns_backend = owns_backend
        self.closed = False  # set by aclose(): every later operation raises
        self.degraded = False
        # Optional capability of in-process backends (see MemoryBackend): synchronous get and
        # put, used when there is no span or metric to record, to save a coroutine per call.
        self.get_now: Callable[[Namespace, str], Record | None] | None = getattr(
            backend, "get_now", None
        )
        self.put_now: Callable[[Namespace, Entry], int] | None = getattr(backend, "put_now", None)
        # (operation kind, namespace) -> (backend info, the span attributes that follow from
        # them), so a traced operation does not rebuild the same attributes every call.
        self.span_attrs: dict[
            tuple[str, Namespace], tuple[BackendInfo, dict[str, AttributeValue]]
        ] = {}


_UNSET: Any = object()
_NO_SPAN = trace.INVALID_SPAN


def _store_id(namespace: Namespace) -> str:
    # Parts joined by "/" with "%" and "/" escaped, so distinct namespaces read distinctly.
    return attribute_text("/".join(p.replace("%", "%25").replace("/", "%2F") for p in namespace))


def _closed_error(operation: str, backend: str) -> MemoryBackendError:
    return MemoryBackendError(
        f"closed: this MemoryPrimitive was closed (aclose() or the end of `async with`); "
        f"{operation} needs a new MemoryPrimitive",
        backend=backend,
        operation=operation,
        transient=False,
    )


def _validate_part(part: object, arg: str) -> str:
    if not isinstance(part, str):
        raise TypeError(f"{arg} must be a str, got {type(part).__name__}")
    if not part:
        raise ValueError(f"{arg} must not be empty")
    return part


def _truncate(text: str) -> str:
    return attribute_text(text if len(text) <= _CONTENT_LIMIT else text[:_CONTENT_LIMIT] + "…")


def _duration_histogram(meter: metrics.Meter) -> metrics.Histogram:
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


class MemoryPrimitive(InstrumentedPrimitive[MemoryOperation, Any]):
    """Memory for agent workflows: in process by default, Redis when given a URL.

    Every operation is a span (``memory.add``, ``memory.get``, ``memory.search``, ...) that
    joins the caller's trace, and the primitive composes with other primitives: either run
    it with a :class:`MemoryOperation`, or use :meth:`get_step`, :meth:`add_step` and
    :meth:`search_step` in a pipeline.

    Args:
        backend: Storage strategy (any :class:`MemoryBackend`); built from the other
            arguments when None.
        redis_url: Use Redis at this URL (behind an in-memory fallback unless
            ``fallback=False``).
        namespace: The namespace (a str, or a tuple of parts) this primitive reads and writes.
        max_size: Most records per namespace when the primitive builds its backend
            (default 1000; None = unbounded). Passing it with ``backend=`` is an error: a
            given backend carries its own bound.
        default_ttl: Seconds records live when ``add`` gets no ``ttl`` (None = forever).
        embedder: Turns text into vectors; enables ``semantic`` and ``hybrid`` search
            (``hybrid`` becomes the default mode).
        fallback: With ``redis_url``, serve from memory while Redis is down and replay the
            writes when it is back. False raises :class:`MemoryBackendError` instead.
        max_value_bytes: Largest accepted value, as UTF-8 JSON (default 1 MiB).
        capture_content: Record query text and values on spans (off by default: content may
            be sensitive).
        capture_keys: Record the key as ``gen_ai.memory.record.id`` on spans.
        tracer_provider: Tracer provider instead of the global one.
        meter_provider: Meter provider instead of the global one.
        name: The primitive's name (``workflow.primitive.name``); ``"memory"`` by default.

    Raises:
        ValueError: Both ``backend`` and ``redis_url``, or both ``backend`` and ``max_size``.
    """

    primitive_type = "memory"

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        redis_url: str | None = None,
        namespace: str | Sequence[str] = "default",
        max_size: int | None = _UNSET,
        default_ttl: float | None = None,
        embedder: Embedder | None = None,
        fallback: bool = True,
        max_value_bytes: int = codec.DEFAULT_MAX_VALUE_BYTES,
        capture_content: bool = False,
        capture_keys: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name, tracer_provider=tracer_provider, meter_provider=meter_provider)
        if backend is not None and redis_url is not None:
            raise ValueError("pass either backend= or redis_url=, not both")
        if backend is not None and max_size is not _UNSET:
            raise ValueError(
                "max_size belongs to the backend: pass it to the backend you inject, "
                "not with backend="
            )
        size = 1000 if max_size is _UNSET else max_size
        if isinstance(namespace, str):
            parts: tuple[str, ...] = (_validate_part(namespace, "namespace"),)
        elif isinstance(namespace, Sequence) and namespace:
            parts = tuple(_validate_part(p, "namespace part") for p in namespace)
        else:
            raise TypeError("namespace must be a non-empty str or a non-empty tuple of str")
        self._default_ttl = codec.validate_ttl(default_ttl, "default_ttl")
        if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
            raise TypeError("max_value_bytes must be an int")
        if max_value_bytes < 1:
            raise ValueError("max_value_bytes must be >= 1")
        if embedder is not None and not callable(getattr(embedder, "embed", None)):
            raise TypeError("embedder must have an async embed(texts) method")
        self._max_value_bytes = max_value_bytes
        self._embedder = embedder
        self._capture_content = bool(capture_content)
        self._capture_keys = bool(capture_keys)
        self._namespace: Namespace = parts
        self._store_id = _store_id(parts)
        if backend is None:
            built = (
                self._redis_backend(redis_url, size, fallback)
                if redis_url is not None
                else InMemoryBackend(size)
            )
            self._shared = _Shared(built, owns_backend=True)
        else:
            for method in ("info", "put", "get", "search", "delete"):
                if not callable(getattr(backend, method, None)):
                    raise TypeError(f"backend does not satisfy MemoryBackend: no {method}() method")
            self._shared = _Shared(backend, owns_backend=False)
        self._is_view = False

    @staticmethod
    def _redis_backend(url: str, max_size: int | None, fallback: bool) -> MemoryBackend:
        if not isinstance(url, str) or not url:
            raise TypeError("redis_url must be a non-empty str")
        try:
            primary = RedisBackend.from_url(url, max_size=max_size)
        except ValueError as exc:
            raise ValueError(f"redis_url is not a usable Redis URL: {exc}") from exc
        if not fallback:
            return primary
        # The mirror serves reads during an outage; it is bounded even when Redis is not,
        # so the process never holds a copy of a large store.
        mirror = _MIRROR_MAX_SIZE if max_size is None else min(max_size, _MIRROR_MAX_SIZE)
        return FallbackBackend(primary, InMemoryBackend(mirror))

    # -- introspection ------------------------------------------------------------------------

    @property
    def backend(self) -> MemoryBackend:
        """The storage strategy in use."""
        return self._shared.backend

    @property
    def namespace(self) -> Namespace:
        """This primitive's namespace, as the tuple of its parts."""
        return self._namespace

    def scoped(self, *parts: str) -> MemoryPrimitive:
        """A view on the sub-namespace ``namespace + parts``, sharing the backend.

        Namespaces are isolated: nothing read, searched, listed, counted or cleared crosses
        them, whatever characters the parts hold.
        """
        if not parts:
            raise ValueError("scoped() needs at least one namespace part")
        checked = tuple(_validate_part(p, "namespace part") for p in parts)
        view = object.__new__(MemoryPrimitive)
        view.__dict__.update(self.__dict__)
        view._namespace = self._namespace + checked
        view._store_id = _store_id(view._namespace)
        view._is_view = True
        return view

    def get_backend_info(self) -> dict[str, Any]:
        """Backend name, namespace, persistence and degradation (no I/O).

        After :meth:`aclose`, ``backend`` is ``"closed"``.
        """
        info = self._shared.backend.info()
        out: dict[str, Any] = {
            "backend": "closed" if self._shared.closed else info.name,
            "namespace": self._store_id,
            "persistent": info.persistent,
            "degraded": info.degraded,
        }
        out.update(info.attributes)
        return out

    def is_using_redis(self) -> bool:
        """True while Redis is the active backend (no I/O; False once degraded or closed)."""
        info = self._shared.backend.info()
        return info.name == "redis" and not info.degraded and not self._shared.closed

    # -- public async API ---------------------------------------------------------------------

    async def add(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: WorkflowContext | None = None,
    ) -> None:
        """Store a JSON value under ``key``, replacing any previous one.

        Args:
            key: Non-empty str of at most 1024 UTF-8 bytes; any characters.
            value: A JSON value (dict, list, str, int, float, bool, None).
            ttl: Seconds until it expires (float, > 0); ``default_ttl`` when None.
            metadata: JSON mapping stored with the record, matched by ``search(filter=)``.
            context: The workflow context, so the span joins the caller's trace.

        Raises:
            TypeError: A non-str key, a non-JSON value or metadata, a non-numeric ttl.
            ValueError: An empty or over-long key, ttl <= 0, a value over max_value_bytes.
            MemoryBackendError: The backend could not store it.
        """
        if self._telemetry.disabled():
            # No SDK: execute() would do no span or metric work; skip building the operation.
            put_now = self._shared.put_now
            if put_now is not None and self._embedder is None:
                put_now(self._namespace, self._entry(key, value, ttl, metadata, None))
            else:
                await self._do_add(key, value, ttl, metadata, _NO_SPAN)
            return
        op = MemoryOperation("add", key=key, value=value, ttl=ttl, metadata=metadata)
        await self.execute(op, context)

    async def get(
        self, key: str, default: Any = None, *, context: WorkflowContext | None = None
    ) -> Any:
        """The value under ``key`` (a fresh copy), or ``default``; refreshes its recency."""
        if self._telemetry.disabled():
            get_now = self._shared.get_now
            if get_now is None:
                return await self._do_get(key, default, _NO_SPAN, metered=False)
            record = get_now(self._namespace, codec.validate_key(key))
            return default if record is None else codec.value_of(record.payload, record.snapshot)
        return await self.execute(MemoryOperation("get", key=key, default=default), context)

    async def search(
        self,
        query: str,
        *,
        limit: int = 5,
        mode: SearchMode | None = None,
        filter: Mapping[str, Any] | None = None,
        context: WorkflowContext | None = None,
    ) -> list[SearchHit]:
        """Ranked records for ``query``, best first (never refreshes recency).

        Args:
            query: The text to find; empty or blank returns ``[]``.
            limit: Most hits (>= 1).
            mode: ``keyword`` (default without an embedder), ``semantic`` or ``hybrid``
                (default with an embedder).
            filter: Metadata fields the records must equal.
            context: The workflow context.
        """
        op = MemoryOperation("search", query=query, limit=limit, mode=mode, filter=filter)
        return cast(list[SearchHit], await self.execute(op, context))

    async def delete(self, key: str, *, context: WorkflowContext | None = None) -> bool:
        """Delete ``key``; True if a record was deleted."""
        return cast(bool, await self.execute(MemoryOperation("delete", key=key), context))

    async def clear(self, *, context: WorkflowContext | None = None) -> int:
        """Delete every record of this namespace (only this one); return how many."""
        return cast(int, await self.execute(MemoryOperation("clear"), context))

    async def keys(self, *, context: WorkflowContext | None = None) -> list[str]:
        """This namespace's keys, least recently used first."""
        return cast(list[str], await self.execute(MemoryOperation("keys"), context))

    async def size(self, *, context: WorkflowContext | None = None) -> int:
        """Number of live records in this namespace."""
        return cast(int, await self.execute(MemoryOperation("size"), context))

    async def add_many(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: WorkflowContext | None = None,
    ) -> None:
        """Store several ``(key, value)`` pairs in one batch (validated before any is stored)."""
        op = MemoryOperation("add_many", items=items, ttl=ttl, metadata=metadata)
        await self.execute(op, context)

    async def get_many(
        self, keys: Iterable[str], *, context: WorkflowContext | None = None
    ) -> dict[str, Any]:
        """``{key: value}`` for the keys that exist (missing keys are left out)."""
        return cast(
            dict[str, Any], await self.execute(MemoryOperation("get_many", keys=keys), context)
        )

    async def aclose(self) -> None:
        """Close the primitive, and its backend if it built it; scoped views close nothing.

        After it, every operation (of the primitive and of its scoped views) raises
        :class:`MemoryBackendError` ("closed"), on every backend; closing twice is harmless.
        """
        shared = self._shared
        if self._is_view or shared.closed:
            return
        shared.closed = True
        shared.get_now = shared.put_now = None  # the fast paths then reach the closed check
        if shared.owns_backend:
            await shared.backend.aclose()

    async def __aenter__(self) -> MemoryPrimitive:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- pipeline steps -----------------------------------------------------------------------

    def get_step(
        self, key: str | Callable[[Any, WorkflowContext], str] | None = None
    ) -> LambdaPrimitive[Any, Any]:
        """A step that outputs the value under ``key`` (the step's input when None)."""

        async def get_step(input_data: Any, context: WorkflowContext) -> Any:
            k = input_data if key is None else key(input_data, context) if callable(key) else key
            return await self.get(k, context=context)

        return self._step(get_step, "memory.get_step")

    def add_step(
        self,
        key: str | Callable[[Any, WorkflowContext], str],
        value: Any | Callable[[Any, WorkflowContext], Any] = None,
        ttl: float | None = None,
    ) -> LambdaPrimitive[Any, Any]:
        """A step that stores ``value`` (the step's input when None) and passes its input on."""

        async def add_step(input_data: Any, context: WorkflowContext) -> Any:
            k = key(input_data, context) if callable(key) else key
            if value is None:
                v = input_data
            else:
                v = value(input_data, context) if callable(value) else value
            await self.add(k, v, ttl=ttl, context=context)
            return input_data

        return self._step(add_step, "memory.add_step")

    def search_step(
        self,
        limit: int = 5,
        query: str | Callable[[Any, WorkflowContext], str] | None = None,
        *,
        mode: SearchMode | None = None,
    ) -> LambdaPrimitive[Any, list[SearchHit]]:
        """A step that outputs the hits for ``query`` (the step's input when None)."""

        async def search_step(input_data: Any, context: WorkflowContext) -> list[SearchHit]:
            if query is None:
                q = input_data
            else:
                q = query(input_data, context) if callable(query) else query
            return await self.search(q, limit=limit, mode=mode, context=context)

        return self._step(search_step, "memory.search_step")

    def _step(
        self, fn: Callable[[Any, WorkflowContext], Any], name: str
    ) -> LambdaPrimitive[Any, Any]:
        return LambdaPrimitive(
            fn,
            name=name,
            tracer_provider=self._telemetry.tracer_provider,
            meter_provider=self._telemetry.meter_provider,
        )

    # -- the traced path ----------------------------------------------------------------------

    def _span_name(self, input_data: MemoryOperation) -> str:
        return "memory." + input_data.kind

    def _span_kind(self, input_data: MemoryOperation) -> SpanKind:
        return SpanKind.CLIENT if self._shared.backend.info().remote else SpanKind.INTERNAL

    def _span_attributes(
        self, input_data: MemoryOperation, context: WorkflowContext
    ) -> dict[str, AttributeValue]:
        kind = input_data.kind
        info = self._shared.backend.info()
        cache_key = (kind, self._namespace)
        cached = self._shared.span_attrs.get(cache_key)
        if cached is None or cached[0] is not info:
            static = {
                A.ATTR_PRIMITIVE_NAME: self.name,
                A.ATTR_PRIMITIVE_TYPE: self._type,
                A.ATTR_GEN_AI_OPERATION_NAME: A.GEN_AI_OPERATION_NAMES[kind],
                A.ATTR_GEN_AI_MEMORY_STORE_ID: self._store_id,
                A.ATTR_MEMORY_BACKEND: info.name,
                **info.attributes,
            }
            if info.remote:
                static[A.ATTR_DB_OPERATION_NAME] = kind
            if kind == "search":
                static[A.ATTR_OPENINFERENCE_SPAN_KIND] = "RETRIEVER"
            cached = (info, static)
            if len(self._shared.span_attrs) >= 4096:  # many scoped namespaces: stay bounded
                self._shared.span_attrs.clear()
            self._shared.span_attrs[cache_key] = cached
        attrs = dict(cached[1])
        add_context_attributes(attrs, context)
        if kind == "search":
            if isinstance(input_data.limit, int):
                attrs[A.ATTR_MEMORY_SEARCH_LIMIT] = attribute_int(input_data.limit)
            if self._capture_content and isinstance(input_data.query, str):
                attrs[A.ATTR_GEN_AI_MEMORY_QUERY_TEXT] = _truncate(input_data.query)
        if self._capture_keys and isinstance(input_data.key, str):
            attrs[A.ATTR_GEN_AI_MEMORY_RECORD_ID] = attribute_text(input_data.key)
        return attrs

    def _metric_attributes(self, input_data: MemoryOperation) -> dict[str, AttributeValue]:
        return {
            A.ATTR_GEN_AI_OPERATION_NAME: A.GEN_AI_OPERATION_NAMES[input_data.kind],
            A.ATTR_MEMORY_BACKEND: self._shared.backend.info().name,
        }

    def _duration_instrument(self) -> metrics.Histogram | None:
        hist: metrics.Histogram | None = self._telemetry.instrument(
            A.METRIC_MEMORY_DURATION, _duration_histogram
        )
        return hist

    def _count(
        self, factory: Callable[[metrics.Meter], metrics.Counter], name: str, n: int
    ) -> None:
        if n:
            counter = self._telemetry.instrument(name, factory)
            if counter is not None:
                counter.add(n, {A.ATTR_MEMORY_BACKEND: self._shared.backend.info().name})

    async def execute(
        self, input_data: MemoryOperation, context: WorkflowContext | None = None
    ) -> Any:
        """Run one :class:`MemoryOperation` as a traced step (``memory.<kind>`` span).

        Raises:
            TypeError: ``input_data`` is not a :class:`MemoryOperation` (nothing runs).
        """
        if type(input_data) is not MemoryOperation or input_data.kind not in _HANDLERS:
            if not isinstance(input_data, MemoryOperation):
                raise TypeError(
                    "MemoryPrimitive.execute takes a MemoryOperation, "
                    f"got {type(input_data).__name__}"
                )
            if input_data.kind not in _HANDLERS:
                raise ValueError(f"unknown memory operation {input_data.kind!r}")
        return await super().execute(input_data, context)

    async def _execute_impl(self, input_data: MemoryOperation, context: WorkflowContext) -> Any:
        handler = _HANDLERS[input_data.kind]
        shared = self._shared
        if shared.closed:
            raise _closed_error(input_data.kind, shared.backend.info().name)
        span = trace.get_current_span() if self._telemetry.tracer() is not None else _NO_SPAN
        try:
            return await handler(self, input_data, span)
        finally:
            info = shared.backend.info()
            if info.degraded != shared.degraded:
                shared.degraded = info.degraded
                if info.degraded:
                    self._count(_FALLBACKS, A.METRIC_MEMORY_FALLBACKS, 1)
            if info.degraded:
                span.set_attribute(A.ATTR_MEMORY_DEGRADED, True)

    # -- operation handlers (validation, encoding and the backend call) ------------------------

    async def _embed(self, values: Sequence[Any]) -> list[Any]:
        if self._embedder is None:
            return [None] * len(values)
        texts = [" ".join(string_leaves(v)) for v in values]
        vectors = await self._embedder.embed(texts)
        if len(vectors) != len(texts):
            raise ValueError("embedder returned a different number of vectors than texts")
        return list(vectors)

    async def _op_add(self, op: MemoryOperation, span: trace.Span) -> None:
        await self._do_add(op.key, op.value, op.ttl, op.metadata, span)

    def _entry(self, key: Any, value: Any, ttl: Any, metadata: Any, vector: Any) -> Entry:
        """Validate and encode one record (raises before anything is stored)."""
        key = codec.validate_key(key)
        ttl = codec.validate_ttl(ttl) if ttl is not None else self._default_ttl
        meta = None if metadata is None else codec.validate_metadata(metadata)
        payload, snap = codec.encode_snapshot(value, self._max_value_bytes)
        return Entry(key, payload, meta, ttl, vector, snapshot=snap)

    async def _do_add(
        self, key: Any, value: Any, ttl: Any, metadata: Any, span: trace.Span
    ) -> None:
        if self._shared.closed:
            raise _closed_error("add", self._shared.backend.info().name)
        entry = self._entry(key, value, ttl, metadata, None)
        if self._embedder is not None:
            (vector,) = await self._embed([value])
            entry = Entry(
                entry.key, entry.payload, entry.metadata, entry.ttl, vector, snapshot=entry.snapshot
            )
        payload = entry.payload
        if self._capture_content and span.is_recording():
            span.set_attribute(A.ATTR_MEMORY_CONTENT, _truncate(payload))
        evicted = await self._shared.backend.put(self._namespace, entry)
        if evicted:
            span.set_attribute(A.ATTR_MEMORY_EVICTED, evicted)
            self._count(_EVICTIONS, A.METRIC_MEMORY_EVICTIONS, evicted)

    async def _op_get(self, op: MemoryOperation, span: trace.Span) -> Any:
        return await self._do_get(op.key, op.default, span)

    async def _do_get(self, key: Any, default: Any, span: trace.Span, metered: bool = True) -> Any:
        if self._shared.closed:
            raise _closed_error("get", self._shared.backend.info().name)
        record = await self._shared.backend.get(self._namespace, codec.validate_key(key))
        if record is None:
            if span is not _NO_SPAN:
                span.set_attribute(A.ATTR_MEMORY_HIT, False)
            if metered:
                self._count(_MISSES, A.METRIC_MEMORY_MISSES, 1)
            return default
        if span is _NO_SPAN:
            if metered:
                self._count(_HITS, A.METRIC_MEMORY_HITS, 1)
            return codec.value_of(record.payload, record.snapshot)
        span.set_attribute(A.ATTR_MEMORY_HIT, True)
        self._count(_HITS, A.METRIC_MEMORY_HITS, 1)
        if self._capture_content and span.is_recording():
            span.set_attribute(A.ATTR_MEMORY_CONTENT, _truncate(record.payload))
        return codec.value_of(record.payload, record.snapshot)

    async def _op_search(self, op: MemoryOperation, span: trace.Span) -> list[SearchHit]:
        query = op.query
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        limit = codec.validate_limit(op.limit)
        mode = op.mode
        if mode is None:
            mode = "keyword" if self._embedder is None else "hybrid"
        elif mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        elif mode != "keyword" and self._embedder is None:
            raise ValueError(f"mode={mode!r} needs an embedder: MemoryPrimitive(embedder=...)")
        filter_ = op.filter
        if filter_ is not None:
            if not isinstance(filter_, Mapping):
                raise TypeError(f"filter must be a mapping or None, got {type(filter_).__name__}")
            filter_ = codec.validate_metadata(filter_, "filter")
        span.set_attribute(A.ATTR_MEMORY_SEARCH_MODE, mode)
        if not query.strip():
            span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, 0)
            return []
        vector = None
        if mode != "keyword":
            (raw,) = await self._embed([query])
            vector = normalize_vector(raw)
        request = SearchQuery(query, limit, cast(SearchMode, mode), filter_, vector)
        results = await self._shared.backend.search(self._namespace, request)
        hits = [
            SearchHit(
                r.key,
                codec.decode(r.payload),
                r.score,
                codec.copy_metadata(r.metadata),
            )
            for r in results
        ]
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(hits))
        if self._capture_content and span.is_recording():
            summary = [{"key": h.key, "score": round(h.score, 6)} for h in hits]
            span.set_attribute(A.ATTR_MEMORY_CONTENT, _truncate(json.dumps(summary)))
            # OpenInference retrieval attributes, so Phoenix lists the hits natively.
            span.set_attribute(A.ATTR_OPENINFERENCE_INPUT_VALUE, _truncate(query))
            for i, (hit, result) in enumerate(zip(hits, results, strict=True)):
                prefix = f"retrieval.documents.{i}.document."
                span.set_attribute(prefix + "id", hit.key)
                span.set_attribute(prefix + "score", hit.score)
                span.set_attribute(prefix + "content", _truncate(result.payload))
        return hits

    async def _op_delete(self, op: MemoryOperation, span: trace.Span) -> bool:
        key = codec.validate_key(op.key)
        return await self._shared.backend.delete(self._namespace, key)

    async def _op_clear(self, op: MemoryOperation, span: trace.Span) -> int:
        count = await self._shared.backend.clear(self._namespace)
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, count)
        return count

    async def _op_keys(self, op: MemoryOperation, span: trace.Span) -> list[str]:
        keys = await self._shared.backend.keys(self._namespace)
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(keys))
        return keys

    async def _op_size(self, op: MemoryOperation, span: trace.Span) -> int:
        size = await self._shared.backend.size(self._namespace)
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, size)
        return size

    async def _op_add_many(self, op: MemoryOperation, span: trace.Span) -> None:
        items = op.items
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
        ttl = codec.validate_ttl(op.ttl)
        if ttl is None:
            ttl = self._default_ttl
        meta = codec.validate_metadata(op.metadata)
        keys = [codec.validate_key(k, f"items[{i}] key") for i, (k, _) in enumerate(pairs)]
        payloads = [
            codec.encode(v, self._max_value_bytes, f"items[{i}] value")
            for i, (_, v) in enumerate(pairs)
        ]
        vectors = await self._embed([v for _, v in pairs])
        entries = [
            Entry(k, p, meta, ttl, vec) for k, p, vec in zip(keys, payloads, vectors, strict=True)
        ]
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, len(entries))
        if not entries:
            return
        evicted = await self._shared.backend.put_many(self._namespace, entries)
        if evicted:
            span.set_attribute(A.ATTR_MEMORY_EVICTED, evicted)
            self._count(_EVICTIONS, A.METRIC_MEMORY_EVICTIONS, evicted)

    async def _op_get_many(self, op: MemoryOperation, span: trace.Span) -> dict[str, Any]:
        raw = op.keys
        if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
            raise TypeError("keys must be an iterable of str")
        keys = [codec.validate_key(k, f"keys[{i}]") for i, k in enumerate(raw)]
        if not keys:
            return {}
        records = await self._shared.backend.get_many(self._namespace, keys)
        out = {k: codec.decode(r.payload) for k, r in zip(keys, records, strict=True) if r}
        hits = len(out)
        span.set_attribute(A.ATTR_GEN_AI_MEMORY_RECORD_COUNT, hits)
        self._count(_HITS, A.METRIC_MEMORY_HITS, hits)
        self._count(_MISSES, A.METRIC_MEMORY_MISSES, len(set(keys)) - hits)
        return out


_HANDLERS: dict[str, Callable[[MemoryPrimitive, MemoryOperation, trace.Span], Any]] = {
    "add": MemoryPrimitive._op_add,
    "get": MemoryPrimitive._op_get,
    "search": MemoryPrimitive._op_search,
    "delete": MemoryPrimitive._op_delete,
    "clear": MemoryPrimitive._op_clear,
    "keys": MemoryPrimitive._op_keys,
    "size": MemoryPrimitive._op_size,
    "add_many": MemoryPrimitive._op_add_many,
    "get_many": MemoryPrimitive._op_get_many,
}
