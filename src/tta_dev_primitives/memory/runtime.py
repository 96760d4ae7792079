"""What a primitive's operations run with: its backend, namespace, settings and telemetry.

:class:`Runtime` is the public seam between :class:`~.primitive.MemoryPrimitive` and the
modules that do its work (the handlers, compaction, export and import, history): they read
the primitive's state here instead of its private attributes. A scoped view or a view with
another embedder has a runtime of its own; :class:`Shared` is what they all share.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from ..core.context import WorkflowContext
from .backends.base import MemoryBackend, SyncMemoryBackend
from .errors import MemoryBackendError
from .instrumentation import NO_SPAN, AttributeCache, MemoryInstrumentation, StreamOperation
from .records import Namespace

if TYPE_CHECKING:
    from ..core.base import WorkflowPrimitive
    from ..core.telemetry import TelemetryHandles
    from .compaction import AutoCompactor
    from .primitive import MemoryPrimitive
    from .query_cache import QueryVectorCache
    from .rerank import Reranker
    from .search import Fusion
    from .sync import LoopThread
    from .writes import RecordWriter

__all__ = ["Runtime", "Shared", "closed_error"]


class Shared:
    """State shared by a primitive and its views."""

    __slots__ = (
        "attributes",
        "backend",
        "closed",
        "compactor",
        "degraded",
        "owns_backend",
        "runner",
        "sync",
        "vectors_checked",
    )

    def __init__(self, backend: MemoryBackend, owns_backend: bool) -> None:
        self.backend = backend
        self.compactor: AutoCompactor | None = None
        self.owns_backend = owns_backend
        self.closed = False  # set by aclose(): every later operation raises
        self.degraded = False
        # A backend that never waits (SyncMemoryBackend) is called without a coroutine.
        self.sync: SyncMemoryBackend | None = (
            backend if isinstance(backend, SyncMemoryBackend) else None
        )
        self.attributes = AttributeCache()
        self.runner: LoopThread | None = None  # the loop thread of sync(), once started
        # Namespaces a write without an embedder has checked for vectors (see
        # RecordWriter.warn_if_vectors), as dict keys; bounded.
        self.vectors_checked: dict[Namespace, None] = {}


def closed_error(operation: str, backend: str) -> MemoryBackendError:
    """The error of an operation on a closed primitive."""
    return MemoryBackendError(
        f"closed: this MemoryPrimitive was closed (aclose() or the end of `async with`); "
        f"{operation} needs a new MemoryPrimitive",
        backend=backend,
        operation=operation,
        transient=False,
    )


class Runtime:
    """One primitive's (or view's) state, as its operations read it."""

    __slots__ = (
        "embedder",
        "fusion",
        "history",
        "inst",
        "memory",
        "namespace",
        "query_vectors",
        "reranker",
        "resolver",
        "resolver_k",
        "semantic_weight",
        "shared",
        "telemetry",
        "writer",
    )

    def __init__(
        self,
        *,
        memory: MemoryPrimitive,
        namespace: Namespace,
        shared: Shared,
        inst: MemoryInstrumentation,
        telemetry: TelemetryHandles,
        writer: RecordWriter,
        embedder: Any,
        semantic_weight: float,
        fusion: Fusion,
        reranker: Reranker | None,
        history: int,
        resolver: WorkflowPrimitive[Any, Any] | None,
        resolver_k: int,
        query_vectors: QueryVectorCache,
    ) -> None:
        self.memory = memory  # the primitive (or view) whose operations run with this
        self.namespace = namespace
        self.shared = shared
        self.inst = inst
        self.telemetry = telemetry
        self.writer = writer  # the writer seam: entries, vectors, ttls, filters
        self.embedder = embedder
        self.semantic_weight = semantic_weight
        self.fusion = fusion
        self.reranker = reranker
        self.history = history  # versions kept per key (0: none)
        self.resolver = resolver
        self.resolver_k = resolver_k
        self.query_vectors = query_vectors

    def replace(self, **changes: Any) -> Runtime:
        """A copy with ``changes``."""
        out = copy.copy(self)
        for name, value in changes.items():
            setattr(out, name, value)
        return out

    @property
    def backend(self) -> MemoryBackend:
        return self.shared.backend

    def check_open(self, kind: str) -> None:
        """Raise the "closed" error when the primitive is closed."""
        if self.shared.closed:
            raise closed_error(kind, self.shared.backend.info().name)

    def stream_operation(self, kind: str, context: WorkflowContext | None) -> StreamOperation:
        """The span (child of the current one) and duration of a streamed operation."""
        telemetry = self.telemetry
        if telemetry.disabled():
            return StreamOperation()
        info = self.shared.backend.info()
        inst = self.inst
        tracer = telemetry.tracer()
        span: trace.Span = NO_SPAN
        if tracer is not None:
            span = tracer.start_span(inst.span_name(kind), kind=inst.span_kind(info))
            if span.is_recording():
                ctx = WorkflowContext() if context is None else context
                span.set_attributes(inst.span_attributes(kind, self.namespace, info, ctx))
        return StreamOperation(span, inst.duration_histogram(), inst.metric_attributes(kind, info))

    def added(self, count: int) -> None:
        """Tell auto-compaction that ``count`` records were written."""
        compactor = self.shared.compactor
        if compactor is not None:
            compactor.added(self.memory, count)
