"""``MemoryPrimitive``: a traced, composable memory step with a pluggable storage backend."""

from __future__ import annotations

import builtins
import math
import re
import threading
import warnings
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, cast

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from ..core.base import WorkflowPrimitive
from ..core.composition import LambdaPrimitive
from ..core.context import WorkflowContext
from ..core.instrumented import InstrumentedPrimitive
from ..observability import attributes as A
from . import codec, transfer, tree
from .backends.base import MemoryBackend, SyncMemoryBackend, VectorBackend
from .backends.fallback import FallbackBackend
from .backends.in_memory import InMemoryBackend
from .compaction import (
    AutoCompactor,
    CompactionPolicy,
    CompactionReport,
    CompactionRequest,
    run_compaction,
)
from .embeddings import (
    Embedder,
    default_embedder,
    embed_documents,
    embed_query,
    embedder_space,
    refuse_zero_vectors,
)
from .errors import MemoryBackendError
from .history import (
    DEFAULT_TOMBSTONE_TTL,
    ForgetReport,
    ForgetRequest,
    check_as_of,
    check_history,
    check_supersedes,
    history_backend,
    list_as_of,
    resolve,
    run_forget,
    run_get_as_of,
    run_history,
    search_as_of,
)
from .instrumentation import (
    NO_SPAN,
    UNTRACED,
    AttributeCache,
    MemoryInstrumentation,
    StreamOperation,
    content_capture_default,
    store_id,
)
from .query_cache import QueryVectorCache
from .records import (
    NO_EXPIRY,
    Entry,
    ListQuery,
    MemoryPage,
    MemoryRecord,
    Namespace,
    RecordUpdate,
    SearchHit,
    SearchQuery,
    memory_record,
)
from .rerank import RERANK_DEPTH, Reranker, rerank, validate_reranker
from .search import (
    Fusion,
    SearchMode,
    indexed_value,
    normalize_vector,
    string_leaves,
    validate_filter,
    validate_fusion,
    validate_semantic_weight,
)

if TYPE_CHECKING:
    from .sync import LoopThread, SyncMemory

__all__ = ["MemoryOperation", "MemoryPrimitive", "OperationKind", "StepNamespace"]

OperationKind: TypeAlias = Literal[
    "add",
    "get",
    "search",
    "delete",
    "clear",
    "keys",
    "size",
    "add_many",
    "get_many",
    "get_record",
    "update",
    "list",
    "delete_where",
    "namespaces",
    "compact",
    "import",
    "add_versioned",
    "get_as_of",
    "get_record_as_of",
    "history",
    "forget",
]
_ORDERS = ("newest", "oldest")


class _Keep:
    """The default of :meth:`MemoryPrimitive.update`'s arguments: keep what is stored."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


_KEEP: Any = _Keep()
_MODES = ("keyword", "semantic", "hybrid")
_MIRROR_MAX_SIZE = 10_000  # records per namespace the Redis fallback mirrors


class MemoryOperation(NamedTuple):
    """One memory operation, the input of :meth:`MemoryPrimitive.execute`.

    Build it with the class methods (``MemoryOperation.add(...)``, ``.get(...)``,
    ``.search(...)``, ``.delete(...)``, ...); arguments are validated when it runs. A named
    tuple: immutable, and the cheapest record Python builds, on the path of every operation.
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
    semantic_weight: Any = None
    fusion: Any = None
    items: Any = None
    keys: Any = None
    merge_metadata: Any = True
    cursor: Any = None
    order: Any = "newest"
    prefix: Any = ()
    recency_half_life: Any = None
    subtree: Any = False
    suffix: Any = None
    max_depth: Any = None
    embed: Any = True
    min_score: Any = None
    reranker: Any = None
    index_text: Any = None

    @classmethod
    def add(
        cls,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        embed: bool | str = True,
        index_text: str | None = None,
    ) -> MemoryOperation:
        """Store ``value`` under ``key``."""
        return cls(
            "add",
            key=key,
            value=value,
            ttl=ttl,
            metadata=metadata,
            embed=embed,
            index_text=index_text,
        )

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
        semantic_weight: float | None = None,
        fusion: Fusion | None = None,
        recency_half_life: float | None = None,
        subtree: bool = False,
        min_score: float | None = None,
        reranker: Reranker | None = None,
    ) -> MemoryOperation:
        """Search for ``query``."""
        return cls(
            "search",
            query=query,
            limit=limit,
            mode=mode,
            filter=filter,
            semantic_weight=semantic_weight,
            fusion=fusion,
            recency_half_life=recency_half_life,
            subtree=subtree,
            min_score=min_score,
            reranker=reranker,
        )

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
        index_text: Mapping[str, str] | None = None,
    ) -> MemoryOperation:
        """Store several ``(key, value)`` pairs in one batch."""
        return cls("add_many", items=items, ttl=ttl, metadata=metadata, index_text=index_text)

    @classmethod
    def get_many(cls, keys: Iterable[str]) -> MemoryOperation:
        """Read several keys in one batch."""
        return cls("get_many", keys=keys)

    @classmethod
    def compact(cls, summarizer: Any, **options: Any) -> MemoryOperation:
        """Compact the namespace (the options of :meth:`MemoryPrimitive.compact`)."""
        return cls("compact", value=CompactionRequest(summarizer, **options))

    @classmethod
    def get_record(cls, key: str) -> MemoryOperation:
        """Read the record under ``key`` with its metadata and timestamps."""
        return cls("get_record", key=key)

    @classmethod
    def update(
        cls,
        key: str,
        *,
        value: Any = _KEEP,
        metadata: Mapping[str, Any] | None = _KEEP,
        ttl: Any = _KEEP,
        merge_metadata: bool = True,
        index_text: str | None = _KEEP,
    ) -> MemoryOperation:
        """Change what is given of the record under ``key``."""
        return cls(
            "update",
            key=key,
            value=value,
            metadata=metadata,
            ttl=ttl,
            merge_metadata=merge_metadata,
            index_text=index_text,
        )

    @classmethod
    def list(
        cls,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        order: str = "newest",
        subtree: bool = False,
    ) -> MemoryOperation:
        """One page of the namespace's records by write order."""
        return cls("list", filter=filter, limit=limit, cursor=cursor, order=order, subtree=subtree)

    @classmethod
    def delete_where(cls, filter: Mapping[str, Any]) -> MemoryOperation:
        """Delete the records whose metadata matches ``filter``."""
        return cls("delete_where", filter=filter)

    @classmethod
    def namespaces(
        cls,
        prefix: Sequence[str] = (),
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
    ) -> MemoryOperation:
        """The sub-namespaces matching ``prefix`` and ``suffix`` that hold records."""
        return cls("namespaces", prefix=prefix, suffix=suffix, max_depth=max_depth)


class _Shared:
    """State shared by a primitive and its scoped views."""

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
        # MemoryPrimitive._warn_if_vectors), as dict keys; bounded.
        self.vectors_checked: dict[Namespace, None] = {}


_UNSET: Any = object()
_RUNNER_LOCK = threading.Lock()
_VECTORS_CHECKED_MAX = 4096
# The hottest operations build their MemoryOperation with tuple.__new__ (half the cost of the
# named tuple's keyword-aware constructor); the tails are the remaining fields' defaults.
_op = tuple.__new__
_REST_ADD = MemoryOperation("add")[5:]
_REST_GET = MemoryOperation("get")[6:]


def _closed_error(operation: str, backend: str) -> MemoryBackendError:
    return MemoryBackendError(
        f"closed: this MemoryPrimitive was closed (aclose() or the end of `async with`); "
        f"{operation} needs a new MemoryPrimitive",
        backend=backend,
        operation=operation,
        transient=False,
    )


def _resolve(arg: Any, input_data: Any, context: WorkflowContext) -> Any:
    """A step argument: a callable of ``(input, context)`` is called, a constant is itself."""
    return arg(input_data, context) if callable(arg) else arg


StepNamespace: TypeAlias = (
    "str | Sequence[str] | Callable[[Any, WorkflowContext], str | Sequence[str]] | None"
)
"""A step's ``namespace=``: sub-namespace parts, or a callable of ``(input, context)``."""


def _step_state_key(state_key: str | None) -> str | None:
    if state_key is not None and (not isinstance(state_key, str) or not state_key):
        raise TypeError("state_key must be a non-empty str or None")
    return state_key


def _validate_part(part: object, arg: str) -> str:
    if not isinstance(part, str):
        raise TypeError(f"{arg} must be a str, got {type(part).__name__}")
    if not part:
        raise ValueError(f"{arg} must not be empty")
    return part


def _check_embedder(embedder: object) -> None:
    if embedder is not None and not (
        callable(getattr(embedder, "embed", None))
        or (
            callable(getattr(embedder, "embed_documents", None))
            and callable(getattr(embedder, "embed_query", None))
        )
    ):
        raise TypeError(
            "embedder must have async embed_documents(texts) and embed_query(text) "
            "methods, or an async embed(texts) method"
        )


class MemoryPrimitive(InstrumentedPrimitive[MemoryOperation, Any]):
    """Memory for agent workflows: in process by default, Redis when given a URL.

    Every operation is a span named after it (``upsert_memory``, ``get_memory``,
    ``search_memory``, ... as the OpenTelemetry GenAI memory conventions name them) that
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
            (``hybrid`` becomes the default mode). ``"local"``: the shipped local model
            (:func:`~.embeddings.default_embedder`, the ``embeddings`` extra).
        semantic_weight: Weight of semantic scores in hybrid search, in [0, 1] (default:
            what the embedder advises in its ``semantic_weight`` attribute, else 0.5).
        fusion: How hybrid search fuses keyword and semantic hits: ``"convex"`` (calibrated
            scores, weighted), ``"rrf"`` (reciprocal rank fusion) or ``"minmax"`` (per-query
            min-max normalized scores, weighted).
        reranker: Rerank the best hits of every search (see :mod:`~.memory.rerank`): a
            function ``(query, hits) -> scores``, sync or async, or a primitive of that pair.
        fallback: With ``redis_url``, serve from memory while Redis is down and replay the
            writes when it is back. False raises :class:`MemoryBackendError` instead.
        max_value_bytes: Largest accepted value, as UTF-8 JSON (default 1 MiB).
        capture_content: Record query text and records on spans (``gen_ai.memory.query.text``,
            ``gen_ai.memory.records``). None (the default) follows the standard
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` switch and is off
            otherwise: content may be sensitive.
        capture_keys: Record the key as ``gen_ai.memory.record.id`` on spans.
        tracer_provider: Tracer provider instead of the global one.
        meter_provider: Meter provider instead of the global one.
        name: The primitive's name (``workflow.primitive.name``); ``"memory"`` by default.
        auto_compact: Compact each namespace in the background once adds take it past the
            policy's ``max_records`` (see :class:`CompactionPolicy`).
        history: Earlier versions kept per key (0, the default: none, an ``add`` over a key
            replaces it). With N > 0, an ``add`` or ``update`` of a live key keeps the
            version it replaces (:meth:`history`, ``as_of=`` reads); see
            ``docs/memory/history.md``. The backend must keep history (``HistoryBackend``).
        resolver: A primitive that decides what each ``add`` supersedes: it gets a
            :class:`ResolverInput` (the new record and the ``resolver_candidates`` current
            records most similar to it) and returns keys among the candidates (an LLM call
            fits there). It runs before the write's atomic step (not at all when no record
            is similar), as a child span of the add; if it fails (raises, or returns
            something else) nothing is written.
        resolver_candidates: How many similar records the resolver sees (default 5).

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
        embedder: Embedder | Literal["local"] | None = None,
        semantic_weight: float | None = None,
        fusion: Fusion = "convex",
        reranker: Reranker | None = None,
        fallback: bool = True,
        max_value_bytes: int = codec.DEFAULT_MAX_VALUE_BYTES,
        capture_content: bool | None = None,
        capture_keys: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        name: str | None = None,
        auto_compact: CompactionPolicy | None = None,
        history: int = 0,
        resolver: WorkflowPrimitive[Any, Any] | None = None,
        resolver_candidates: int = 5,
    ) -> None:
        super().__init__(name, tracer_provider=tracer_provider, meter_provider=meter_provider)
        self._history = check_history(history)
        if resolver is not None and not isinstance(resolver, WorkflowPrimitive):
            raise TypeError(
                "resolver must be a WorkflowPrimitive taking a ResolverInput and returning "
                f"keys (wrap a function in LambdaPrimitive), got {type(resolver).__name__}"
            )
        if isinstance(resolver_candidates, bool) or not isinstance(resolver_candidates, int):
            raise TypeError("resolver_candidates must be an int")
        if resolver_candidates < 1:
            raise ValueError(f"resolver_candidates must be >= 1, got {resolver_candidates}")
        self._resolver = resolver
        self._resolver_k = resolver_candidates
        # One flag for add's hot path: a plain write unless history or a resolver is on.
        self._versioned = bool(self._history) or resolver is not None
        if auto_compact is not None and not isinstance(auto_compact, CompactionPolicy):
            raise TypeError("auto_compact must be a CompactionPolicy or None")
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
        if isinstance(embedder, str):
            if embedder != "local":
                raise ValueError(f"embedder must be an embedder, 'local' or None, got {embedder!r}")
            embedder = cast(Embedder, default_embedder())
        _check_embedder(embedder)
        if semantic_weight is None:
            advised = getattr(embedder, "semantic_weight", None)
            semantic_weight = 0.5 if advised is None else advised
        self._semantic_weight = validate_semantic_weight(semantic_weight)
        self._fusion = validate_fusion(fusion)
        self._reranker = validate_reranker(reranker)
        self._max_value_bytes = max_value_bytes
        self._embedder = embedder
        # Query texts embedded in the last minutes (shared by scoped views, as the embedder).
        self._query_vectors = QueryVectorCache()
        self._namespace: Namespace = parts
        self._store_id = store_id(parts)
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
        if auto_compact is not None:
            self._shared.compactor = AutoCompactor(auto_compact)
        if self._history or resolver is not None:
            history_backend(self, "history")  # raises TypeError before any use
        self._is_view = False
        self._inst = MemoryInstrumentation(
            self._telemetry,
            self.name,
            self._type,
            capture_content=(
                content_capture_default() if capture_content is None else bool(capture_content)
            ),
            capture_keys=bool(capture_keys),
            cache=self._shared.attributes,
        )

    @staticmethod
    def _redis_backend(url: str, max_size: int | None, fallback: bool) -> MemoryBackend:
        if not isinstance(url, str) or not url:
            raise TypeError("redis_url must be a non-empty str")
        from .backends.redis import RedisBackend  # loads redis only when a URL is given

        try:
            primary = RedisBackend.from_url(url, max_size=max_size)
        except ValueError as exc:
            raise ValueError(f"redis_url is not a usable Redis URL: {exc}") from exc
        if not fallback:
            return primary
        # The mirror serves reads during an outage; it is bounded even when Redis is not,
        # so the process never holds a copy of a large store.
        mirror = _MIRROR_MAX_SIZE if max_size is None else min(max_size, _MIRROR_MAX_SIZE)
        return FallbackBackend(primary, InMemoryBackend(mirror, max_total=_MIRROR_MAX_SIZE))

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
        view._store_id = store_id(view._namespace)
        view._is_view = True
        return view

    def with_embedder(self, embedder: Embedder | None) -> MemoryPrimitive:
        """A view of this primitive that embeds with ``embedder`` (None: no embedder).

        It shares everything else (backend, namespace, settings, telemetry, the
        :meth:`sync` loop); closing it closes nothing. The LangGraph store uses it to apply
        an ``index`` config to a given memory. A namespace keeps the vectors of one
        embedder: writing another's is refused.

        Raises:
            TypeError: ``embedder`` has neither ``embed_documents``/``embed_query`` nor
                ``embed``.
        """
        _check_embedder(embedder)
        view = object.__new__(MemoryPrimitive)
        view.__dict__.update(self.__dict__)
        view._embedder = embedder
        advised = getattr(embedder, "semantic_weight", None)
        if advised is not None:
            view._semantic_weight = validate_semantic_weight(advised)
        view._is_view = True
        return view

    def sync(self) -> SyncMemory:
        """A blocking facade of this primitive: the same operations, each a blocking call
        (see :mod:`.sync`), safe from threads and from inside a running event loop.

        Every facade of the primitive and of its scoped views runs on one private event
        loop thread, started on the first call; ``close()`` on any of them closes the
        primitive (as :meth:`aclose`: a scoped view's closes nothing) and stops that thread.
        """
        from .sync import LoopThread, SyncMemory

        shared = self._shared
        with _RUNNER_LOCK:
            if shared.runner is None or shared.runner.closed:
                if shared.closed:
                    raise _closed_error("sync", shared.backend.info().name)
                shared.runner = LoopThread()
            return SyncMemory(self, shared.runner)

    def as_retriever(
        self,
        *,
        mode: SearchMode | None = None,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        subtree: bool = False,
    ) -> Any:
        """A LangChain retriever over this memory (needs the ``langchain`` extra).

        See :func:`tta_dev_primitives.integrations.langchain.MemoryRetriever`.
        """
        from ..integrations.langchain import MemoryRetriever

        return MemoryRetriever.for_memory(
            self, mode=mode, k=k, filter=filter, min_score=min_score, subtree=subtree
        )

    def as_runnable(self) -> Any:
        """This primitive as a LangChain ``Runnable`` taking a :class:`MemoryOperation`
        (needs the ``langchain`` extra); see
        :func:`tta_dev_primitives.integrations.langchain.as_runnable`."""
        from ..integrations.langchain import as_runnable

        return as_runnable(self)

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

    # Public methods build their operation and await InstrumentedPrimitive._start (what
    # execute() awaits, without execute()'s check of a caller-built operation): one path per
    # operation, whose span and metric work is skipped there, cheaply, when nothing records.
    _run = InstrumentedPrimitive._start

    async def add(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        supersedes: Iterable[str] | None = None,
        embed: bool | str = True,
        index_text: str | None = None,
        context: WorkflowContext | None = None,
    ) -> None:
        """Store a JSON value under ``key``, replacing any previous one.

        Args:
            key: Non-empty str of at most 1024 UTF-8 bytes; any characters.
            value: A JSON value (dict, list, str, int, float, bool, None).
            ttl: Seconds until it expires (float, > 0); ``default_ttl`` when None.
            metadata: JSON mapping stored with the record, matched by ``search(filter=)``.
            supersedes: Keys of records this one replaces: in the same atomic step they
                leave the live records (``get``, ``search``, ``list``) and, with
                ``history``, stay in :meth:`history` and ``as_of`` reads, ended now.
            embed: With an embedder: True (the default) embeds the text of the value's
                string leaves; a str embeds that text instead (e.g. chosen fields); False
                stores no vector (semantic search does not find the record; keyword search
                and ``list`` do). Without an embedder it changes nothing.
            index_text: Extra text indexed with the record but not part of its value, e.g.
                the neighbouring turns of a conversation, its session's date or a title:
                keyword search sees it as part of the record's text and, with ``embed=True``,
                it is embedded together with the value's text. ``get`` returns the value
                unchanged; ``get_record``, ``list`` and ``history`` show it as
                ``MemoryRecord.index_text``. A str of at most ``max_value_bytes`` UTF-8
                bytes; None or ``""``: none.
            context: The workflow context, so the span joins the caller's trace.

        Raises:
            TypeError: A non-str key, a non-JSON value or metadata, a non-numeric ttl, a
                non-str index_text.
            ValueError: An empty or over-long key, ttl <= 0, a value or index_text over
                max_value_bytes.
            MemoryBackendError: The backend could not store it.
        """
        if supersedes is None and not self._versioned:
            if embed is True and index_text is None:
                op = _op(MemoryOperation, ("add", key, value, ttl, metadata, *_REST_ADD))
            else:
                op = MemoryOperation.add(
                    key, value, ttl=ttl, metadata=metadata, embed=embed, index_text=index_text
                )
            await self._run(op, context)
            return
        # The superseded keys ride in ``keys``: MemoryOperation keeps the fields it had, so
        # the plain operations' tuples cost what they did.
        op = MemoryOperation(
            "add_versioned",
            key,
            value,
            ttl,
            metadata,
            keys=supersedes or (),
            embed=embed,
            index_text=index_text,
        )
        await self._run(op, context)

    async def get(
        self,
        key: str,
        default: Any = None,
        *,
        as_of: float | datetime | None = None,
        context: WorkflowContext | None = None,
    ) -> Any:
        """The value under ``key`` (a fresh copy), or ``default``; refreshes its recency.

        With ``as_of`` (epoch seconds or an aware ``datetime``): the value that was current
        then (see :meth:`history`; recency untouched).
        """
        if as_of is None:
            op = _op(MemoryOperation, ("get", key, None, None, None, default, *_REST_GET))
        else:
            op = MemoryOperation("get_as_of", key, as_of, default=default)
        return await self._run(op, context)

    async def search(
        self,
        query: str,
        *,
        limit: int = 5,
        mode: SearchMode | None = None,
        filter: Mapping[str, Any] | None = None,
        semantic_weight: float | None = None,
        fusion: Fusion | None = None,
        recency_half_life: float | None = None,
        as_of: float | datetime | None = None,
        subtree: bool = False,
        min_score: float | None = None,
        reranker: Reranker | None = None,
        context: WorkflowContext | None = None,
    ) -> builtins.list[SearchHit]:
        """Ranked records for ``query``, best first (never refreshes recency).

        Args:
            query: The text to find; empty or blank returns ``[]``.
            limit: Most hits (>= 1).
            mode: ``keyword`` (default without an embedder), ``semantic`` or ``hybrid``
                (default with an embedder).
            filter: A metadata filter (see :meth:`list`): only matching records are found.
            semantic_weight: Hybrid weight of semantic scores for this search, in [0, 1]
                (default: the primitive's).
            fusion: ``"convex"`` or ``"rrf"`` for this search (default: the primitive's).
            recency_half_life: Seconds: multiply each hit's score by
                ``0.5 ** (age / recency_half_life)``, ``age`` being the seconds since the
                record's ``updated_at``, before the best ``limit`` are kept (every mode).
            as_of: Search the versions current then (epoch seconds or an aware
                ``datetime``; see :meth:`history`), ranked the same way.
                record's ``updated_at``, before the best ``limit`` are kept (every mode;
                not with ``subtree=True`` in hybrid mode).
            subtree: Search this namespace and every namespace below it as one: BM25
                statistics of the union, hits ranked together, each hit's ``namespace``
                saying where it is (relative to this one). See :mod:`.tree`.
            min_score: Keep only hits scoring at least this. Scores are calibrated, in
                (0, 1), and mean the same across queries in every mode (not with ``rrf``):
                ``MIN_RELEVANT_SCORE`` (:mod:`~.memory.search`) is the line of "relevant",
                so an unrelated query returns ``[]``.
            reranker: Rerank the best ``max(limit, RERANK_DEPTH)`` hits with it (default:
                the primitive's); a child span ``memory.search.rerank``.
            context: The workflow context.

        Raises:
            ValueError: A malformed filter or an unknown operator (before any I/O), a bad
                mode, limit or half-life.
        """
        op = MemoryOperation.search(
            query,
            limit=limit,
            mode=mode,
            filter=filter,
            semantic_weight=semantic_weight,
            fusion=fusion,
            recency_half_life=recency_half_life,
            subtree=subtree,
            min_score=min_score,
            reranker=reranker,
        )
        if as_of is not None:
            op = op._replace(value=as_of)  # a search has no value: as_of rides there
        return cast(builtins.list[SearchHit], await self._run(op, context))

    async def delete(self, key: str, *, context: WorkflowContext | None = None) -> bool:
        """Delete ``key``; True if a record was deleted."""
        return cast(bool, await self._run(MemoryOperation("delete", key), context))

    async def clear(self, *, context: WorkflowContext | None = None) -> int:
        """Delete every record of this namespace (only this one); return how many."""
        return cast(int, await self._run(MemoryOperation("clear"), context))

    async def keys(self, *, context: WorkflowContext | None = None) -> builtins.list[str]:
        """This namespace's keys, least recently used first."""
        return cast(builtins.list[str], await self._run(MemoryOperation("keys"), context))

    async def size(self, *, context: WorkflowContext | None = None) -> int:
        """Number of live records in this namespace."""
        return cast(int, await self._run(MemoryOperation("size"), context))

    async def get_record(
        self,
        key: str,
        *,
        as_of: float | datetime | None = None,
        context: WorkflowContext | None = None,
    ) -> MemoryRecord | None:
        """The record under ``key`` (value, metadata, timestamps), or None; refreshes its
        recency like :meth:`get`. With ``as_of``: the version current then, with its
        ``valid_from``/``valid_to``."""
        if as_of is None:
            op = MemoryOperation.get_record(key)
        else:
            op = MemoryOperation("get_record_as_of", key, as_of)
        return cast("MemoryRecord | None", await self._run(op, context))

    async def forget(
        self,
        key: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        summarizer: WorkflowPrimitive[Any, Any] | None = None,
        tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL,
        context: WorkflowContext | None = None,
    ) -> ForgetReport:
        """Forget for good: the record under ``key`` (or every record any version of which
        matches ``filter``), all its earlier versions, and the compaction summaries built
        from it (``memory.replaced``, through roll-ups).

        Unlike :meth:`delete`, which removes the live record only, ``forget`` also leaves a
        tombstone per forgotten key (for ``tombstone_ttl`` seconds, at most 10,000 per
        namespace), so an import of an old export, the fallback's replay or its mirror
        cannot bring the record back, nor a summary that names it.

        Args:
            key: The key to forget.
            filter: Instead of a key: forget every key with a version whose metadata
                matches (the filter language of :meth:`list`; not empty).
            summarizer: Rebuild each summary built from a forgotten record instead of
                removing it: it gets the summary as one :class:`MemoryRecord` with the
                sentences found in the forgotten records' text taken out, and returns the
                new summary (nothing left, or an empty answer: the summary is removed). A
                summary whose forgotten record's text is no longer known (compacted away,
                no version of it kept) is removed all the same.
            tombstone_ttl: Seconds the tombstones last (default 30 days).
            context: The workflow context.

        Raises:
            TypeError: The backend keeps no history (see ``HistoryBackend``).
            ValueError: Both or neither of ``key`` and ``filter``, an empty filter.
        """
        request = ForgetRequest(key, filter, summarizer, tombstone_ttl)
        op = MemoryOperation("forget", value=request)
        return cast(ForgetReport, await self._run(op, context))

    async def history(
        self, key: str, *, context: WorkflowContext | None = None
    ) -> builtins.list[MemoryRecord]:
        """The versions of ``key``, newest first: the current one (``valid_to`` None) and
        the earlier ones kept with ``history=N``, each with ``valid_from`` and ``valid_to``.

        Raises:
            TypeError: The backend keeps no history (see ``HistoryBackend``).
        """
        op = MemoryOperation("history", key)
        return cast(builtins.list[MemoryRecord], await self._run(op, context))

    async def update(
        self,
        key: str,
        *,
        value: Any = _KEEP,
        metadata: Mapping[str, Any] | None = _KEEP,
        ttl: Any = _KEEP,
        merge_metadata: bool = True,
        index_text: str | None = _KEEP,
        context: WorkflowContext | None = None,
    ) -> MemoryRecord:
        """Change the given parts of the live record under ``key``; keep the rest.

        Atomic on every backend (on Redis one script: two concurrent updates of different
        metadata keys both land). The record counts as written now: new ``updated_at``,
        newest in :meth:`list` order, recency refreshed; ``created_at`` is kept.

        Args:
            key: The record's key.
            value: The new value (omitted: keep the stored one). ``None`` is a value.
            metadata: Metadata to merge into the stored metadata key by key (or, with
                ``merge_metadata=False``, to replace it); omitted: keep it.
            ttl: Seconds from now until it expires; ``None`` applies ``default_ttl`` (never
                without one); :data:`NO_EXPIRY` never expires; omitted: keep the expiry.
            merge_metadata: Merge (True, the default) or replace (False) the metadata.
            index_text: The record's new index text (see :meth:`add`); None or ``""``
                removes it; omitted: keep it. With an embedder, a new value is embedded
                with the index text the record has after the update; an update of the index
                text alone keeps the stored vector.
            context: The workflow context.

        Returns:
            The record as updated.

        Raises:
            KeyError: No live record under ``key`` (nothing is written).
            TypeError, ValueError: Bad arguments, as for :meth:`add` (nothing is written).
        """
        op = MemoryOperation.update(
            key,
            value=value,
            metadata=metadata,
            ttl=ttl,
            merge_metadata=merge_metadata,
            index_text=index_text,
        )
        return cast(MemoryRecord, await self._run(op, context))

    async def list(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        order: Literal["newest", "oldest"] = "newest",
        as_of: float | datetime | None = None,
        subtree: bool = False,
        context: WorkflowContext | None = None,
    ) -> MemoryPage:
        """One page of this namespace's records, by write time (never refreshes recency).

        Walk every page by passing each page's ``next_cursor`` back until it is None. While
        others write, a walk never returns a record twice and never misses one that lived,
        unchanged, from its first page to its last (records written or rewritten during the
        walk may be left out).

        Args:
            filter: Only records whose metadata matches: ``{"field": value}`` for equality,
                operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists`` in a field's
                condition (``{"n": {"$gt": 3}}``), ``$and``/``$or`` (lists of filters) and
                ``$not`` (a filter) at the top. Order operators compare numbers with numbers
                and strings with strings; a type mismatch matches nothing.
            limit: Most records on the page (>= 1).
            cursor: ``next_cursor`` of the previous page (None: the first page).
            order: ``"newest"`` (last written first, the default) or ``"oldest"``.
            as_of: List the versions current then (epoch seconds or an aware ``datetime``;
                see :meth:`history`), by write order, with ``valid_from``/``valid_to``.
            subtree: Walk this namespace and every namespace below it: namespace by
                namespace in sorted order (this one first), each in write order; each
                record's ``namespace`` says where it is (relative to this one).
            context: The workflow context.

        Raises:
            ValueError: A malformed filter, an unknown operator, a bad order, or a cursor
                that is not a ``next_cursor`` of a walk in this order (before any I/O).
        """
        op = MemoryOperation.list(
            filter=filter, limit=limit, cursor=cursor, order=order, subtree=subtree
        )
        if as_of is not None:
            op = op._replace(value=as_of)  # a list has no value: as_of rides there
        return cast(MemoryPage, await self._run(op, context))

    async def delete_where(
        self, filter: Mapping[str, Any], *, context: WorkflowContext | None = None
    ) -> int:
        """Delete the records whose metadata matches ``filter`` (see :meth:`list`); how many.

        Raises:
            ValueError: An empty filter (use :meth:`clear` to delete everything), a
                malformed one or an unknown operator (before any I/O).
        """
        op = MemoryOperation.delete_where(filter)
        return cast(int, await self._run(op, context))

    async def namespaces(
        self,
        prefix: Sequence[str] = (),
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        *,
        context: WorkflowContext | None = None,
    ) -> builtins.list[tuple[str, ...]]:
        """The sub-namespaces of this one, below ``prefix``, that hold live records.

        Each is given relative to this primitive's namespace (``memory.scoped(*ns)`` reaches
        it), sorted; ``prefix`` itself is included when it holds records. This namespace's
        own records, and other primitives' namespaces outside it, are never listed.

        Args:
            prefix: Parts the namespace starts with; ``"*"`` matches any one part.
            suffix: Parts the namespace ends with; ``"*"`` matches any one part.
            max_depth: Cut each namespace to its first ``max_depth`` parts (duplicates
                dropped), e.g. 1 for the top level.
            context: The workflow context.

        Raises:
            TypeError: A str instead of a tuple of parts, a part that is not a str.
            ValueError: An empty part, ``max_depth < 1``.
        """
        op = MemoryOperation.namespaces(prefix, suffix, max_depth)
        return cast("builtins.list[tuple[str, ...]]", await self._run(op, context))

    async def add_many(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        index_text: Mapping[str, str] | None = None,
        context: WorkflowContext | None = None,
    ) -> None:
        """Store several ``(key, value)`` pairs in one batch (validated before any is stored).

        ``index_text`` maps keys of ``items`` to their index text (see :meth:`add`); a key
        it names that is not in ``items`` is a ValueError.
        """
        op = MemoryOperation.add_many(items, ttl=ttl, metadata=metadata, index_text=index_text)
        await self._run(op, context)

    async def get_many(
        self, keys: Iterable[str], *, context: WorkflowContext | None = None
    ) -> dict[str, Any]:
        """``{key: value}`` for the keys that exist (missing keys are left out)."""
        op = MemoryOperation.get_many(keys)
        return cast(dict[str, Any], await self._run(op, context))

    async def compact(
        self,
        summarizer: WorkflowPrimitive[Any, Any] | None,
        *,
        keep_last: int = 20,
        filter: Mapping[str, Any] | None = None,
        max_records: int | None = None,
        merge_duplicates: float | None = None,
        summarizer_timeout: float | None = None,
        ttl: float | None = None,
        summary_key: str | None = None,
        context: WorkflowContext | None = None,
    ) -> CompactionReport:
        """Replace the namespace's old records by one summary (see :mod:`.compaction`).

        Args:
            summarizer: A primitive taking a list of :class:`MemoryRecord` (oldest first) and
                returning text or a JSON value; None to only merge duplicates.
            keep_last: Newest records left as they are.
            filter: Compact only the records whose metadata matches it.
            max_records: Most records one summary replaces (the oldest; None = all).
            merge_duplicates: Similarity in (0, 1] at which near-duplicates merge into the
                newest of them (by vector with an embedder, by shared words without).
            summarizer_timeout: Seconds the summarizer may take (None = no limit).
            ttl: The summary's ttl (``default_ttl`` when None).
            summary_key: The summary's key (a fresh ``summary:<hex>`` when None).
            context: The workflow context (the summarizer runs with it).

        Returns:
            What was replaced, merged and left alone.

        Raises:
            TypeError, ValueError: Bad arguments (nothing read or changed).
            ValueError: The summarizer returned nothing (every record left in place).
            TimeoutError: The summarizer took longer than ``summarizer_timeout`` (nothing
                changed).
            MemoryBackendError: The backend failed; or a fallback backend is serving from
                its secondary (compaction waits for the primary).
        """
        request = CompactionRequest(
            summarizer,
            keep_last,
            filter,
            max_records,
            merge_duplicates,
            summarizer_timeout,
            ttl,
            summary_key,
            context,
        )
        op = MemoryOperation("compact", value=request)
        return cast(CompactionReport, await self._run(op, context))

    async def wait_compactions(self) -> None:
        """Wait until the background compactions of ``auto_compact`` have finished."""
        if self._shared.compactor is not None:
            await self._shared.compactor.wait()

    def export(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        vectors: bool = False,
        history: bool = False,
        context: WorkflowContext | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream the records of this namespace and the namespaces below it.

        Each item is one record object of the JSON Lines format of
        :mod:`tta_dev_primitives.memory.transfer` (namespace parts relative to this one, key,
        value, metadata, ``created_at``/``updated_at``, absolute expiry, and with
        ``vectors=True`` the stored vector); write them with
        :func:`~tta_dev_primitives.memory.transfer.write_jsonl`. Reads one page of the
        backend's ``list`` at a time (oldest first), so any number of records costs the
        memory of one page; expired records are left out. The whole walk is one
        ``export_memory`` span, ended when the iterator is exhausted or closed.

        Args:
            filter: Export only records whose metadata matches it (the filter language of
                :meth:`list`).
            vectors: Include each record's stored vector with its embedder's name and
                dimensions (where the backend can read vectors back: a
                :class:`~tta_dev_primitives.memory.backends.base.VectorBackend`), so an
                import with the same embedder need not embed again.
            history: Also export earlier versions (``MemoryPrimitive(history=N)``): after
                each namespace's records, one object per earlier version with its
                ``valid_to`` (format version 2), which an import with history adds back.
            context: The workflow context (its ids go on the span).

        Raises:
            TypeError, ValueError: A malformed filter or a non-bool ``vectors``, raised here,
                before anything is read.
            MemoryBackendError: The primitive is closed, or the backend failed (while
                iterating).
        """
        self._check_open("export")
        return transfer.export_records(
            self, filter=filter, vectors=vectors, history=history, context=context
        )

    async def import_(
        self,
        records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
        *,
        on_conflict: transfer.OnConflict = "replace",
        progress: Callable[[int], None] | None = None,
        context: WorkflowContext | None = None,
    ) -> transfer.ImportReport:
        """Write exported records (e.g. ``read_jsonl(file)`` or another memory's ``export()``).

        Every record is read and checked first (fields, times, value size; see
        :func:`~tta_dev_primitives.memory.transfer.check_records`), so a malformed record
        anywhere writes nothing; with ``on_conflict="error"`` every key is looked up before
        the first write too. Records then land in this namespace plus each record's relative
        ``namespace``, in batched writes, keeping their metadata, absolute expiry and
        ``created_at``/``updated_at``; already expired ones are skipped. An exported vector
        is reused when this memory's embedder has its name and dimensions; otherwise the
        value is embedded again. Without an embedder no vector is kept: the report counts
        them (``vectors_dropped``) and a ``UserWarning`` names their embedder. One
        ``import_memory`` span.

        Args:
            records: Record objects, sync or async, or
                :class:`~tta_dev_primitives.memory.transfer.CheckedRecords` (not checked
                again). Read in full before the first write; held in a temporary file, not
                in memory.
            on_conflict: An existing key is ``"replace"``d (default), ``"skip"``ped, or an
                ``"error"`` (:class:`~tta_dev_primitives.memory.transfer.ImportConflictError`,
                nothing imported).
            progress: Called with the number of records handled so far after each batch.
            context: The workflow context.

        Returns:
            The :class:`~tta_dev_primitives.memory.transfer.ImportReport`.

        Raises:
            ValueError: A malformed record (named by its file line, or its position), or a
                bad ``on_conflict``; nothing was written.
            ImportIncompleteError: The backend failed part way (a
                :class:`MemoryBackendError`): it says how many records were written and the
                ``on_conflict`` with which importing the same records again finishes.
        """
        op = MemoryOperation("import", value=transfer.ImportRequest(records, on_conflict, progress))
        return cast(transfer.ImportReport, await self._run(op, context))

    def _check_open(self, kind: str) -> None:
        if self._shared.closed:
            raise _closed_error(kind, self._shared.backend.info().name)

    def _stream_operation(self, kind: str, context: WorkflowContext | None) -> StreamOperation:
        """The span (child of the current one) and duration of a streamed operation."""
        telemetry = self._telemetry
        if telemetry.disabled():
            return StreamOperation()
        info = self._shared.backend.info()
        inst = self._inst
        tracer = telemetry.tracer()
        span: trace.Span = NO_SPAN
        if tracer is not None:
            span = tracer.start_span(inst.span_name(kind), kind=inst.span_kind(info))
            if span.is_recording():
                ctx = WorkflowContext() if context is None else context
                span.set_attributes(inst.span_attributes(kind, self._namespace, info, ctx))
        return StreamOperation(span, inst.duration_histogram(), inst.metric_attributes(kind, info))

    async def aclose(self) -> None:
        """Close the primitive, and its backend if it built it; scoped views close nothing.

        After it, every operation (of the primitive and of its scoped views) raises
        :class:`MemoryBackendError` ("closed"), on every backend; closing twice is harmless.
        """
        shared = self._shared
        if self._is_view or shared.closed:
            return
        shared.closed = True
        if shared.compactor is not None:
            await shared.compactor.aclose()
        if shared.owns_backend:
            await shared.backend.aclose()

    async def __aenter__(self) -> MemoryPrimitive:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- pipeline steps -----------------------------------------------------------------------
    #
    # Every step takes the options of its operation, typed, plus ``namespace`` (a sub-namespace
    # of this one, constant or taken from the run, so one pipeline serves many users) and,
    # for steps that output what they read, ``state_key`` (keep the input flowing and put the
    # result in ``context.state[state_key]`` instead). Arguments that may be callables of
    # ``(input, context)`` are resolved on every run.

    def get_step(
        self,
        key: str | Callable[[Any, WorkflowContext], str] | None = None,
        *,
        default: Any = None,
        namespace: StepNamespace = None,
        state_key: str | None = None,
    ) -> LambdaPrimitive[Any, Any]:
        """A step that outputs the value under ``key`` (the step's input when None).

        Args:
            key: The key, or a callable of ``(input, context)``; None: the input is the key.
            default: What a missing key gives.
            namespace: Read from this sub-namespace of this one (see :meth:`scoped`): parts
                (a str is one part), or a callable of ``(input, context)`` returning them.
            state_key: Put the value in ``context.state[state_key]`` and output the step's
                input unchanged (None: output the value).

        Raises:
            TypeError, ValueError: A constant ``namespace`` or a ``state_key`` that is not
                valid (when the step is built); a callable's result when the step runs.
        """
        where = self._step_namespace(namespace)
        keep = _step_state_key(state_key)

        async def get_step(input_data: Any, context: WorkflowContext) -> Any:
            memory = where(input_data, context)
            k = input_data if key is None else _resolve(key, input_data, context)
            value = await memory.get(k, default, context=context)
            if keep is None:
                return value
            context.state[keep] = value
            return input_data

        return self._step(get_step, "get_step")

    def add_step(
        self,
        key: str | Callable[[Any, WorkflowContext], str],
        value: Any | Callable[[Any, WorkflowContext], Any] = None,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | Callable[[Any, WorkflowContext], Any] | None = None,
        namespace: StepNamespace = None,
    ) -> LambdaPrimitive[Any, Any]:
        """A step that stores ``value`` (the step's input when None) and passes its input on.

        Args:
            key: The key, or a callable of ``(input, context)``.
            value: The value, or a callable of ``(input, context)``; None: the input.
            ttl: Seconds the record lives (as in :meth:`add`; ``NO_EXPIRY`` never expires).
            metadata: Metadata, or a callable of ``(input, context)``.
            namespace: Write to this sub-namespace of this one (see :meth:`get_step`).
        """
        where = self._step_namespace(namespace)

        async def add_step(input_data: Any, context: WorkflowContext) -> Any:
            memory = where(input_data, context)
            v = input_data if value is None else _resolve(value, input_data, context)
            await memory.add(
                _resolve(key, input_data, context),
                v,
                ttl=ttl,
                metadata=_resolve(metadata, input_data, context),
                context=context,
            )
            return input_data

        return self._step(add_step, "add_step")

    def search_step(
        self,
        limit: int = 5,
        query: str | Callable[[Any, WorkflowContext], str] | None = None,
        *,
        mode: SearchMode | None = None,
        filter: Mapping[str, Any] | Callable[[Any, WorkflowContext], Any] | None = None,
        semantic_weight: float | None = None,
        fusion: Fusion | None = None,
        recency_half_life: float | None = None,
        min_score: float | None = None,
        reranker: Reranker | None = None,
        subtree: bool = False,
        namespace: StepNamespace = None,
        state_key: str | None = None,
    ) -> LambdaPrimitive[Any, Any]:
        """A step that searches for ``query`` (the step's input when None).

        It outputs the hits, or, with ``state_key``, puts them in
        ``context.state[state_key]`` and outputs its input unchanged, so the question and
        the hits both reach the next step::

            recall = memory.search_step(
                limit=3,
                namespace=lambda question, ctx: ("users", ctx.session_id),
                state_key="hits",
            )
            pipeline = recall >> answer >> memory.add_step(key=..., namespace=...)

        Args:
            limit: Most hits (>= 1).
            query: The query, or a callable of ``(input, context)``; None: the input.
            mode: ``keyword``, ``semantic`` or ``hybrid`` (see :meth:`search`).
            filter: A metadata filter, or a callable of ``(input, context)`` returning one.
            semantic_weight: Hybrid weight of semantic scores, in [0, 1].
            fusion: ``"convex"``, ``"rrf"`` or ``"minmax"``.
            recency_half_life: Seconds; favours recently written records (see :meth:`search`).
            min_score: Keep only hits scoring at least this (see :meth:`search`).
            reranker: Rerank the best hits with it (see :meth:`search`).
            subtree: Search the namespace and every namespace below it (see :meth:`search`).
            namespace: Search this sub-namespace of this one (see :meth:`get_step`).
            state_key: Where in ``context.state`` the hits go (None: the step outputs them).

        Raises:
            TypeError, ValueError: A constant ``namespace`` or a ``state_key`` that is not
                valid (when the step is built); bad search arguments (when it runs).
        """
        where = self._step_namespace(namespace)
        keep = _step_state_key(state_key)

        async def search_step(input_data: Any, context: WorkflowContext) -> Any:
            memory = where(input_data, context)
            q = input_data if query is None else _resolve(query, input_data, context)
            hits = await memory.search(
                q,
                limit=limit,
                mode=mode,
                filter=_resolve(filter, input_data, context),
                semantic_weight=semantic_weight,
                fusion=fusion,
                recency_half_life=recency_half_life,
                min_score=min_score,
                reranker=reranker,
                subtree=subtree,
                context=context,
            )
            if keep is None:
                return hits
            context.state[keep] = hits
            return input_data

        return self._step(search_step, "search_step")

    def compact_step(
        self,
        summarizer: WorkflowPrimitive[Any, Any] | None,
        *,
        keep_last: int = 20,
        filter: Mapping[str, Any] | Callable[[Any, WorkflowContext], Any] | None = None,
        max_records: int | None = None,
        merge_duplicates: float | None = None,
        summarizer_timeout: float | None = None,
        ttl: float | None = None,
        summary_key: str | Callable[[Any, WorkflowContext], str | None] | None = None,
        namespace: StepNamespace = None,
        state_key: str = "memory.compaction",
    ) -> LambdaPrimitive[Any, Any]:
        """A step that compacts the namespace (see :meth:`compact`) and passes its input on.

        The :class:`CompactionReport` goes to ``context.state[state_key]``
        (``"memory.compaction"`` by default).

        Args:
            summarizer: A primitive taking the records (oldest first) and returning the
                summary; None to only merge duplicates.
            keep_last: Newest records left as they are.
            filter: Compact only matching records; or a callable of ``(input, context)``.
            max_records: Most records one summary replaces (None = all).
            merge_duplicates: Similarity in (0, 1] at which near-duplicates merge.
            summarizer_timeout: Seconds the summarizer may take (None = no limit).
            ttl: The summary's ttl.
            summary_key: The summary's key, or a callable of ``(input, context)``.
            namespace: Compact this sub-namespace of this one (see :meth:`get_step`).
            state_key: Where in ``context.state`` the report goes.
        """
        where = self._step_namespace(namespace)
        if not isinstance(state_key, str) or not state_key:
            raise TypeError("state_key must be a non-empty str")
        keep = state_key

        async def compact_step(input_data: Any, context: WorkflowContext) -> Any:
            memory = where(input_data, context)
            report = await memory.compact(
                summarizer,
                keep_last=keep_last,
                filter=_resolve(filter, input_data, context),
                max_records=max_records,
                merge_duplicates=merge_duplicates,
                summarizer_timeout=summarizer_timeout,
                ttl=ttl,
                summary_key=_resolve(summary_key, input_data, context),
                context=context,
            )
            context.state[keep] = report
            return input_data

        return self._step(compact_step, "compact_step")

    def _step_namespace(
        self, namespace: StepNamespace
    ) -> Callable[[Any, WorkflowContext], MemoryPrimitive]:
        """The memory a step works on, per run: this one, a fixed view, or the run's."""
        if namespace is None:
            return lambda _input, _context: self
        if callable(namespace):
            pick = namespace
            return lambda input_data, context: self._step_view(pick(input_data, context))
        view = self._step_view(namespace)
        return lambda _input, _context: view

    def _step_view(self, parts: object) -> MemoryPrimitive:
        if isinstance(parts, str):
            return self.scoped(parts)
        if isinstance(parts, Sequence) and parts:
            return self.scoped(*parts)
        if isinstance(parts, Sequence):
            raise ValueError("namespace of a step must have at least one part")
        raise TypeError(
            "namespace of a step must be a str, a sequence of str, or a callable of "
            f"(input, context) returning one; got {type(parts).__name__}"
        )

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
        return self._inst.span_name(input_data.kind)

    def _span_kind(self, input_data: MemoryOperation) -> SpanKind:
        return self._inst.span_kind(self._shared.backend.info())

    def _span_attributes(
        self, input_data: MemoryOperation, context: WorkflowContext
    ) -> dict[str, AttributeValue]:
        return self._inst.span_attributes(
            input_data.kind,
            self._namespace,
            self._shared.backend.info(),
            context,
            key=input_data.key,
            query=input_data.query,
            limit=input_data.limit,
        )

    def _metric_attributes(self, input_data: MemoryOperation) -> dict[str, AttributeValue]:
        return self._inst.metric_attributes(input_data.kind, self._shared.backend.info())

    def _duration_instrument(self) -> metrics.Histogram | None:
        return self._inst.duration_histogram()

    async def execute(
        self, input_data: MemoryOperation, context: WorkflowContext | None = None
    ) -> Any:
        """Run one :class:`MemoryOperation` as a traced step (a span named after it).

        Raises:
            TypeError: ``input_data`` is not a :class:`MemoryOperation` (nothing runs).
            ValueError: Its kind is not an operation this primitive knows.
        """
        if not isinstance(input_data, MemoryOperation):
            raise TypeError(
                f"MemoryPrimitive.execute takes a MemoryOperation, got {type(input_data).__name__}"
            )
        if input_data.kind not in _HANDLERS:
            raise ValueError(f"unknown memory operation {input_data.kind!r}")
        return await self._run(input_data, context)

    def _handler(
        self, kind: str
    ) -> Callable[[MemoryPrimitive, MemoryOperation, trace.Span], Awaitable[Any]]:
        if self._shared.closed:
            raise _closed_error(kind, self._shared.backend.info().name)
        return _HANDLERS[kind]

    def _execute_untraced(
        self, input_data: MemoryOperation, context: WorkflowContext | None
    ) -> Awaitable[Any]:
        # Nothing records: the operation's handler alone (the context only feeds span
        # attributes, and a switch to the fallback is counted only where a meter exists).
        if self._shared.closed:
            raise _closed_error(input_data.kind, self._shared.backend.info().name)
        return _HANDLERS[input_data.kind](self, input_data, NO_SPAN)

    async def _execute_impl(self, input_data: MemoryOperation, context: WorkflowContext) -> Any:
        shared = self._shared
        span = trace.get_current_span() if self._telemetry.tracer() is not None else UNTRACED
        try:
            return await self._handler(input_data.kind)(self, input_data, span)
        finally:
            info = shared.backend.info()
            if info.degraded:
                self._inst.degraded(span)
            if info.degraded != shared.degraded:
                shared.degraded = info.degraded
                if info.degraded:
                    self._inst.fallback_activated(info)

    # -- operation handlers: validation, encoding and the backend call, once per operation -----

    def _record_settings(self, ttl: Any, metadata: Any) -> tuple[float | None, Any]:
        """The validated ttl (``default_ttl`` when None, None for NO_EXPIRY) and metadata of
        records to write."""
        # The common ttl=None inline: this runs on every add.
        ttl = self._default_ttl if ttl is None else self._ttl(ttl)
        return ttl, None if metadata is None else codec.validate_metadata(metadata)

    def _ttl(self, ttl: Any) -> float | None:
        if ttl is None:
            return self._default_ttl
        if ttl is NO_EXPIRY:
            return None
        return codec.validate_ttl(ttl)

    @staticmethod
    def _filter(filter_: Any) -> dict[str, Any] | None:
        """A validated copy of a filter (None for none or ``{}``); raises before any I/O."""
        if filter_ is None:
            return None
        if not isinstance(filter_, Mapping):
            raise TypeError(f"filter must be a mapping or None, got {type(filter_).__name__}")
        return validate_filter(codec.validate_metadata(filter_, "filter"))

    def _entry(
        self,
        key: Any,
        value: Any,
        ttl: float | None,
        meta: Any,
        item: int | None = None,
        index_text: Any = None,
    ) -> Entry:
        """Validate and encode one record to write (raises before anything is stored).

        ``add`` and ``add_many`` both build their entries here; ``item`` is the index of an
        ``add_many`` item, which errors name.
        """
        if item is None:
            key = codec.validate_key(key)
            payload, snap = codec.encode_snapshot(value, self._max_value_bytes)
        else:
            key = codec.validate_key(key, f"items[{item}] key")
            payload, snap = codec.encode_snapshot(
                value, self._max_value_bytes, f"items[{item}] value"
            )
        if index_text is None:
            return Entry(key, payload, meta, ttl, snapshot=snap)
        arg = "index_text" if item is None else f"index_text[{key!r}]"
        text = codec.validate_index_text(index_text, self._max_value_bytes, arg)
        return Entry(key, payload, meta, ttl, snapshot=snap, index_text=text)

    async def _embedded(
        self, entries: builtins.list[Entry], values: Sequence[Any]
    ) -> builtins.list[Entry]:
        """``entries`` with the embedder's vectors of ``values`` (as is without an embedder)."""
        if self._embedder is None:
            return entries
        vectors = await self._embed(values)
        return [
            Entry(
                e.key,
                e.payload,
                e.metadata,
                e.ttl,
                v,
                snapshot=e.snapshot,
                space=self._space(v),
                index_text=e.index_text,
            )
            for e, v in zip(entries, vectors, strict=True)
        ]

    async def _embed(self, values: Sequence[Any]) -> builtins.list[Any]:
        """Unit float32 vectors of the values' text, one embedder call for all of them
        (normalized here once: normalize_vector leaves them as they are after)."""
        if self._embedder is None:
            return [None] * len(values)
        texts = [" ".join(string_leaves(v)) for v in values]
        vectors = await embed_documents(self._embedder, texts)
        if len(vectors) != len(texts):
            raise ValueError("embedder returned a different number of vectors than texts")
        out = [normalize_vector(v) for v in vectors]
        refuse_zero_vectors(self._embedder, texts, out)
        return out

    def _space(self, vector: Any) -> tuple[str, int] | None:
        return None if vector is None else embedder_space(self._embedder, len(vector))

    async def _embed_query(self, query: str, span: trace.Span) -> Any:
        cache = self._query_vectors
        if not span.is_recording():
            return await cache.vector(query, lambda: self._query_vector(query))
        tracer = self._telemetry.tracer()
        assert tracer is not None
        with tracer.start_as_current_span("memory.search.embed_query") as child:
            misses = cache.misses
            vector = await cache.vector(query, lambda: self._query_vector(query))
            child.set_attribute("memory.search.query_cached", cache.misses == misses)
            return vector

    async def _query_vector(self, query: str) -> Any:
        vector = normalize_vector(await embed_query(self._embedder, query))
        refuse_zero_vectors(self._embedder, (query,), (vector,), query=True)
        return vector

    async def _warn_if_vectors(self, namespace: Namespace) -> None:
        """Once per namespace: warn when this memory, which has no embedder, writes into a
        namespace whose records carry vectors (what it writes has none, so semantic search
        never finds it)."""
        checked = self._shared.vectors_checked
        backend = self._shared.backend
        if namespace in checked or not isinstance(backend, VectorBackend):
            return
        try:
            space = (await backend.get_vectors(namespace, [])).space
        except MemoryBackendError:
            return  # the write itself will say what failed
        if len(checked) >= _VECTORS_CHECKED_MAX:
            checked.clear()
        checked[namespace] = None
        if space is not None:
            warnings.warn(
                f"namespace {'/'.join(namespace)!r} holds records with vectors of embedder "
                f"{space[0]!r} ({space[1]} dimensions), but this MemoryPrimitive has no "
                "embedder: the records it writes there carry no vector, so semantic search "
                f"never finds them; pass embedder= (the {space[0]!r} one)",
                UserWarning,
                stacklevel=2,
            )

    async def _op_add(self, op: MemoryOperation, span: trace.Span) -> None:
        ttl, meta = self._record_settings(op.ttl, op.metadata)
        entry = self._entry(op.key, op.value, ttl, meta, index_text=op.index_text)
        embed = op.embed
        if embed is not True and not isinstance(embed, str) and embed is not False:
            raise TypeError(f"embed must be True, False or a str, got {type(embed).__name__}")
        if self._embedder is not None:
            if embed is not False:
                text = indexed_value(op.value, entry.index_text) if embed is True else embed
                (entry,) = await self._embedded([entry], (text,))
        elif self._namespace not in self._shared.vectors_checked:
            await self._warn_if_vectors(self._namespace)
        shared = self._shared
        if span is not NO_SPAN:
            self._inst.records(span, ((entry.key, entry.payload, None, entry.metadata),))
        sync = shared.sync
        if sync is not None:
            evicted = sync.put_now(self._namespace, entry)
        else:
            evicted = await shared.backend.put(self._namespace, entry)
        if evicted:
            self._inst.evicted(span, evicted, shared.backend.info())
        if shared.compactor is not None:
            shared.compactor.added(self, 1)

    async def _op_add_versioned(self, op: MemoryOperation, span: trace.Span) -> None:
        """``add`` with ``history`` or ``supersedes``: one versioned write."""
        ttl, meta = self._record_settings(op.ttl, op.metadata)
        entry = self._entry(op.key, op.value, ttl, meta, index_text=op.index_text)
        supersedes = check_supersedes(op.keys, entry.key)
        embed = op.embed
        if embed is not True and not isinstance(embed, str) and embed is not False:
            raise TypeError(f"embed must be True, False or a str, got {type(embed).__name__}")
        backend = history_backend(self, "add")
        if self._resolver is not None:
            found = await resolve(self, entry, op.value, span)
            supersedes = tuple(dict.fromkeys((*supersedes, *found)))
        if self._embedder is not None and embed is not False:
            text = indexed_value(op.value, entry.index_text) if embed is True else embed
            (entry,) = await self._embedded([entry], (text,))
        if span is not NO_SPAN:
            self._inst.records(span, ((entry.key, entry.payload, None, entry.metadata),))
            if supersedes:
                span.set_attribute(A.ATTR_MEMORY_SUPERSEDED_COUNT, len(supersedes))
        evicted = await backend.put_versioned(self._namespace, entry, self._history, supersedes)
        if evicted:
            self._inst.evicted(span, evicted, self._shared.backend.info())
        if self._shared.compactor is not None:
            self._shared.compactor.added(self, 1)

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
        ttl, meta = self._record_settings(op.ttl, op.metadata)
        texts = _index_texts(op.index_text, pairs)
        entries = [
            self._entry(k, v, ttl, meta, i, texts.get(k) if texts else None)
            for i, (k, v) in enumerate(pairs)
        ]
        inst = self._inst
        inst.record_count(span, len(entries))
        if not entries:
            return
        if self._embedder is None:
            await self._warn_if_vectors(self._namespace)
        values = [v for _, v in pairs]
        if texts:
            values = [indexed_value(v, e.index_text) for v, e in zip(values, entries, strict=True)]
        entries = await self._embedded(entries, values)
        if span is not NO_SPAN:
            inst.records(span, ((e.key, e.payload, None, e.metadata) for e in entries))
        evicted = await self._shared.backend.put_many(self._namespace, entries)
        if evicted:
            inst.evicted(span, evicted, self._shared.backend.info())
        if self._shared.compactor is not None:
            self._shared.compactor.added(self, len(entries))

    async def _op_get(self, op: MemoryOperation, span: trace.Span) -> Any:
        key = codec.validate_key(op.key)
        shared = self._shared
        sync = shared.sync
        if sync is not None:
            record = sync.get_now(self._namespace, key)
        else:
            record = await shared.backend.get(self._namespace, key)
        if span is not NO_SPAN:
            self._inst.read(span, record is not None, 1, shared.backend.info())
            if record is not None:
                self._inst.records(span, ((key, record.payload, None, record.metadata),))
        if record is None:
            return op.default
        return codec.value_of(record.payload, record.snapshot)

    async def _op_get_many(self, op: MemoryOperation, span: trace.Span) -> dict[str, Any]:
        raw = op.keys
        if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
            raise TypeError("keys must be an iterable of str")
        keys = [codec.validate_key(k, f"keys[{i}]") for i, k in enumerate(raw)]
        if not keys:
            return {}
        records = await self._shared.backend.get_many(self._namespace, keys)
        found = [(k, r) for k, r in zip(keys, records, strict=True) if r is not None]
        self._inst.read(span, len(found), len(set(keys)), self._shared.backend.info())
        self._inst.records(span, ((k, r.payload, None, r.metadata) for k, r in found))
        return {k: codec.value_of(r.payload, r.snapshot) for k, r in found}

    async def _op_search(self, op: MemoryOperation, span: trace.Span) -> builtins.list[SearchHit]:
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
        filter_ = self._filter(op.filter)
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
        inst = self._inst
        inst.search_mode(span, mode)
        if not query.strip():
            inst.record_count(span, 0)
            return []
        weight = self._semantic_weight
        if op.semantic_weight is not None:
            weight = validate_semantic_weight(op.semantic_weight)
        fusion = self._fusion if op.fusion is None else validate_fusion(op.fusion)
        min_score = op.min_score
        if min_score is not None:
            if isinstance(min_score, bool) or not isinstance(min_score, int | float):
                raise TypeError(
                    f"min_score must be a number or None, got {type(min_score).__name__}"
                )
            if math.isnan(min_score):
                raise ValueError("min_score must be a number, got NaN")
        reranker = self._reranker if op.reranker is None else validate_reranker(op.reranker)
        vector = None
        if mode != "keyword":
            vector = await self._embed_query(query, span)
        request = SearchQuery(
            query,
            limit if reranker is None else max(limit, RERANK_DEPTH),
            cast(SearchMode, mode),
            filter_,
            vector,
            space=self._space(vector),
            fusion=fusion,
            semantic_weight=weight,
            tracer=self._telemetry.tracer() if span.is_recording() else None,
            recency_half_life=half_life,
        )
        if op.value is not None:  # as_of
            if op.subtree:
                raise ValueError("as_of does not combine with subtree=True (yet)")
            hits = await search_as_of(self, request, check_as_of(op.value))
            if min_score is not None:
                hits = [h for h in hits if h.score >= min_score]
            inst.record_count(span, len(hits))
            return hits[:limit]
        backend = self._shared.backend
        if op.subtree:
            found = await backend.namespaces(self._namespace)
            n = len(self._namespace)
            pairs = [(found[i][n:], r) for i, r in await tree.search_tree(backend, found, request)]
        else:
            pairs = [((), r) for r in await backend.search(self._namespace, request)]
        if min_score is not None:
            pairs = [(ns, r) for ns, r in pairs if r.score >= min_score]
        hits = [
            SearchHit(
                r.key,
                codec.decode(r.payload),
                r.score,
                codec.copy_metadata(r.metadata) or {},
                ns,
            )
            for ns, r in pairs
        ]
        if reranker is not None and hits:
            if span.is_recording():
                tracer = self._telemetry.tracer()
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

    async def _op_get_record(self, op: MemoryOperation, span: trace.Span) -> MemoryRecord | None:
        key = codec.validate_key(op.key)
        shared = self._shared
        record = await shared.backend.get(self._namespace, key)
        if span is not NO_SPAN:
            self._inst.read(span, record is not None, 1, shared.backend.info())
            if record is not None:
                self._inst.records(span, ((key, record.payload, None, record.metadata),))
        return None if record is None else memory_record(record)

    async def _op_update(self, op: MemoryOperation, span: trace.Span) -> MemoryRecord:
        key = codec.validate_key(op.key)
        if not isinstance(op.merge_metadata, bool):
            raise TypeError("merge_metadata must be True or False")
        payload = None
        snapshot: Any = codec.NO_SNAPSHOT
        vector = None
        set_text = op.index_text is not _KEEP
        text = codec.validate_index_text(op.index_text, self._max_value_bytes) if set_text else None
        if op.value is not _KEEP:
            payload, snapshot = codec.encode_snapshot(op.value, self._max_value_bytes)
            if self._embedder is not None:
                embedded = text
                if not set_text:  # embedded with the index text the record keeps
                    stored = await self._shared.backend.get(self._namespace, key)
                    embedded = None if stored is None else stored.index_text
                value = indexed_value(op.value, embedded)
                (entry,) = await self._embedded([Entry(key, payload, None, None)], (value,))
                vector = entry.vector
            else:
                await self._warn_if_vectors(self._namespace)
        metadata: dict[str, Any] | None = None
        if op.metadata is not _KEEP:
            if op.metadata is None:
                if not op.merge_metadata:
                    metadata = {}  # replace with nothing
            else:
                metadata = codec.validate_metadata(op.metadata)
        set_ttl = op.ttl is not _KEEP
        ttl = self._ttl(op.ttl) if set_ttl else None
        change = RecordUpdate(
            payload, snapshot, vector, metadata, op.merge_metadata, set_ttl, ttl, set_text, text
        )
        if self._history:
            backend = history_backend(self, "update")
            record = await backend.update_versioned(self._namespace, key, change, self._history)
        else:
            record = await self._shared.backend.update(self._namespace, key, change)
        if record is None:
            raise KeyError(key)
        if span is not NO_SPAN:
            self._inst.records(span, ((key, record.payload, None, record.metadata),))
        return memory_record(record)

    async def _op_list(self, op: MemoryOperation, span: trace.Span) -> MemoryPage:
        filter_ = self._filter(op.filter)
        limit = codec.validate_limit(op.limit)
        order = op.order
        if order not in _ORDERS:
            raise ValueError(f"order must be 'newest' or 'oldest', got {order!r}")
        if not isinstance(op.subtree, bool):
            raise TypeError(f"subtree must be True or False, got {type(op.subtree).__name__}")
        if op.subtree:
            if op.value is not None:
                raise ValueError("as_of does not combine with subtree=True (yet)")
            return await self._list_tree(op, ListQuery(filter_, limit, order), span)
        horizon = after = None
        if op.cursor is not None:
            horizon, after = _decode_cursor(op.cursor, order)
        query = ListQuery(filter_, limit, order, after, horizon)
        if op.value is not None:  # as_of
            found, last = await list_as_of(self, query, check_as_of(op.value))
            self._inst.record_count(span, len(found))
            cursor = None if last is None else _encode_cursor(order, 0, last)
            return MemoryPage(found, cursor)
        result = await self._shared.backend.list(self._namespace, query)
        records = result.records
        self._inst.record_count(span, len(records))
        next_cursor = None
        if result.more and records:
            next_cursor = _encode_cursor(order, result.horizon, records[-1].seq)
        return MemoryPage([memory_record(r) for r in records], next_cursor)

    async def _list_tree(
        self, op: MemoryOperation, query: ListQuery, span: trace.Span
    ) -> MemoryPage:
        start = None
        if op.cursor is not None:
            if not isinstance(op.cursor, str):
                raise TypeError(f"cursor must be a str or None, got {type(op.cursor).__name__}")
            start = tree.decode_tree_cursor(op.cursor, query.order)
        backend = self._shared.backend
        found = await backend.namespaces(self._namespace)
        page, cursor = await tree.list_tree(backend, self._namespace, found, query, start)
        self._inst.record_count(span, len(page))
        return MemoryPage([memory_record(r, ns) for ns, r in page], cursor)

    async def _op_delete_where(self, op: MemoryOperation, span: trace.Span) -> int:
        if op.filter is None:
            raise TypeError("delete_where needs a filter (use clear() to delete everything)")
        filter_ = self._filter(op.filter)
        if filter_ is None:
            raise ValueError(
                "delete_where needs a non-empty filter: use clear() to delete everything"
            )
        count = await self._shared.backend.delete_where(self._namespace, filter_)
        self._inst.record_count(span, count)
        return count

    async def _op_namespaces(
        self, op: MemoryOperation, span: trace.Span
    ) -> builtins.list[Namespace]:
        prefix = _parts(op.prefix, "prefix")
        suffix = None if op.suffix is None else _parts(op.suffix, "suffix")
        depth = op.max_depth
        if depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int):
                raise TypeError(f"max_depth must be an int or None, got {type(depth).__name__}")
            if depth < 1:
                raise ValueError(f"max_depth must be >= 1, got {depth}")
        own = self._namespace
        found = await self._shared.backend.namespaces(own + tree.literal_prefix(prefix))
        n = len(own)
        rel = [ns[n:] for ns in found if len(ns) > n]
        out = tree.match_namespaces(rel, prefix, suffix, depth)
        self._inst.record_count(span, len(out))
        return out

    async def _op_delete(self, op: MemoryOperation, span: trace.Span) -> bool:
        key = codec.validate_key(op.key)
        return await self._shared.backend.delete(self._namespace, key)

    async def _op_clear(self, op: MemoryOperation, span: trace.Span) -> int:
        count = await self._shared.backend.clear(self._namespace)
        self._inst.record_count(span, count)
        return count

    async def _op_keys(self, op: MemoryOperation, span: trace.Span) -> builtins.list[str]:
        keys = await self._shared.backend.keys(self._namespace)
        self._inst.record_count(span, len(keys))
        return keys

    async def _op_size(self, op: MemoryOperation, span: trace.Span) -> int:
        size = await self._shared.backend.size(self._namespace)
        self._inst.record_count(span, size)
        return size


async def _op_import(
    memory: MemoryPrimitive, op: MemoryOperation, span: trace.Span
) -> transfer.ImportReport:
    req = op.value
    if not isinstance(req, transfer.ImportRequest):
        raise TypeError("an import operation carries an ImportRequest (use import_())")
    try:
        report = await transfer.import_records(
            memory, req.records, on_conflict=req.on_conflict, progress=req.progress
        )
    except transfer.ImportConflictError as exc:
        if span.is_recording():
            span.set_attributes(transfer.import_attributes(exc.report))
        raise
    if span.is_recording():
        span.set_attributes(transfer.import_attributes(report))
    return report


def _index_texts(raw: object, pairs: builtins.list[tuple[Any, Any]]) -> dict[Any, Any] | None:
    """``add_many``'s ``index_text``: a mapping of keys of ``pairs`` to text (checked by
    ``_entry``), or None."""
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
    return tuple(_validate_part(p, f"{arg} part") for p in raw)


_CURSOR = re.compile(r"(n|o)([0-9]{1,19})\.([0-9]{1,19})")


def _encode_cursor(order: str, horizon: int, after: int) -> str:
    return f"{order[0]}{horizon}.{after}"


def _decode_cursor(cursor: object, order: str) -> tuple[int, int]:
    """(horizon, after) of a ``next_cursor`` of a walk in ``order``."""
    if not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str or None, got {type(cursor).__name__}")
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise ValueError(f"cursor {cursor[:40]!r} is not a next_cursor of list()")
    if found.group(1) != order[0]:
        raise ValueError(
            f"cursor {cursor!r} continues a walk in the other order; pass order= as before"
        )
    return int(found.group(2)), int(found.group(3))


_HANDLERS: dict[str, Callable[[MemoryPrimitive, MemoryOperation, trace.Span], Awaitable[Any]]] = {
    "add": MemoryPrimitive._op_add,
    "get": MemoryPrimitive._op_get,
    "search": MemoryPrimitive._op_search,
    "delete": MemoryPrimitive._op_delete,
    "clear": MemoryPrimitive._op_clear,
    "keys": MemoryPrimitive._op_keys,
    "size": MemoryPrimitive._op_size,
    "add_many": MemoryPrimitive._op_add_many,
    "get_many": MemoryPrimitive._op_get_many,
    "compact": run_compaction,
    "get_record": MemoryPrimitive._op_get_record,
    "update": MemoryPrimitive._op_update,
    "list": MemoryPrimitive._op_list,
    "delete_where": MemoryPrimitive._op_delete_where,
    "namespaces": MemoryPrimitive._op_namespaces,
    "import": _op_import,
    "add_versioned": MemoryPrimitive._op_add_versioned,
    "get_as_of": run_get_as_of,
    "get_record_as_of": run_get_as_of,
    "history": run_history,
    "forget": run_forget,
}
