"""``MemoryPrimitive``: a traced, composable memory step with a pluggable storage backend.

This module holds the constructor, the public API and the tracing hooks; it is past 700
lines because the public methods carry the documentation users read (their arguments,
errors and examples), which is kept beside the signatures. The work is elsewhere: the
operations in :mod:`.operations`, their handlers in :mod:`.handlers`, the writer seam in
:mod:`.writes`, the steps in :mod:`.steps`, the list cursor in :mod:`.cursor`.
"""

from __future__ import annotations

import builtins
import threading
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
from typing import TYPE_CHECKING, Any, Literal, cast

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from ..core.base import WorkflowPrimitive
from ..core.composition import LambdaPrimitive
from ..core.context import WorkflowContext
from ..core.instrumented import InstrumentedPrimitive
from . import codec, steps
from .backends.base import BackendInfo, MemoryBackend
from .backends.fallback import FallbackBackend
from .backends.in_memory import InMemoryBackend
from .compaction import (
    AutoCompactor,
    CompactionPolicy,
    CompactionReport,
    CompactionRequest,
)
from .embeddings import Embedder, default_embedder
from .exporting import export_records
from .handlers import HANDLERS
from .history import (
    DEFAULT_TOMBSTONE_TTL,
    ForgetReport,
    ForgetRequest,
    check_history,
    history_backend,
)
from .instrumentation import (
    NO_SPAN,
    UNTRACED,
    MemoryInstrumentation,
    content_capture_default,
    store_id,
)
from .operations import (
    KEEP,
    AddOp,
    AddVersionedOp,
    ClearOp,
    CompactOp,
    DeleteOp,
    ForgetOp,
    GetAsOfOp,
    GetOp,
    GetRecordAsOfOp,
    GetRecordOp,
    HistoryOp,
    ImportOp,
    KeysOp,
    ListOp,
    MemoryOperation,
    OperationKind,
    SearchOp,
    SizeOp,
)
from .query_cache import QueryVectorCache
from .records import MemoryPage, MemoryRecord, Namespace, SearchHit
from .rerank import Reranker, validate_reranker
from .runtime import Runtime, Shared, closed_error
from .search import Fusion, SearchMode, validate_fusion, validate_semantic_weight
from .steps import StepNamespace
from .transfer import ImportReport, ImportRequest, OnConflict
from .writes import RecordWriter, validate_part

if TYPE_CHECKING:
    from .sync import SyncMemory

__all__ = ["MemoryOperation", "MemoryPrimitive", "OperationKind", "StepNamespace"]

_MIRROR_MAX_SIZE = 10_000  # records per namespace the Redis fallback mirrors
_UNSET: Any = object()
_RUNNER_LOCK = threading.Lock()
# The hottest operations build their operation with tuple.__new__ (cheaper than the named
# tuple's constructor, which takes keywords).
_op = tuple.__new__


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
        history = check_history(history)
        if resolver is not None and not isinstance(resolver, WorkflowPrimitive):
            raise TypeError(
                "resolver must be a WorkflowPrimitive taking a ResolverInput and returning "
                f"keys (wrap a function in LambdaPrimitive), got {type(resolver).__name__}"
            )
        if isinstance(resolver_candidates, bool) or not isinstance(resolver_candidates, int):
            raise TypeError("resolver_candidates must be an int")
        if resolver_candidates < 1:
            raise ValueError(f"resolver_candidates must be >= 1, got {resolver_candidates}")
        # One flag for add's hot path: a plain write unless history or a resolver is on.
        self._versioned = bool(history) or resolver is not None
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
            parts: tuple[str, ...] = (validate_part(namespace, "namespace"),)
        elif isinstance(namespace, Sequence) and namespace:
            parts = tuple(validate_part(p, "namespace part") for p in namespace)
        else:
            raise TypeError("namespace must be a non-empty str or a non-empty tuple of str")
        default_ttl = codec.validate_ttl(default_ttl, "default_ttl")
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
        semantic_weight = validate_semantic_weight(semantic_weight)
        fusion = validate_fusion(fusion)
        reranker = validate_reranker(reranker)
        self._store_id = store_id(parts)
        if backend is None:
            built = (
                self._redis_backend(redis_url, size, fallback)
                if redis_url is not None
                else InMemoryBackend(size)
            )
            shared = Shared(built, owns_backend=True)
        else:
            for method in ("info", "put", "get", "search", "delete"):
                if not callable(getattr(backend, method, None)):
                    raise TypeError(f"backend does not satisfy MemoryBackend: no {method}() method")
            shared = Shared(backend, owns_backend=False)
        if auto_compact is not None:
            shared.compactor = AutoCompactor(auto_compact)
        self._is_view = False
        inst = MemoryInstrumentation(
            self._telemetry,
            self.name,
            self._type,
            capture_content=(
                content_capture_default() if capture_content is None else bool(capture_content)
            ),
            capture_keys=bool(capture_keys),
            cache=shared.attributes,
        )
        self._shared = shared
        self._info: BackendInfo = shared.backend.info()
        self._rt = Runtime(
            memory=self,
            namespace=parts,
            shared=shared,
            inst=inst,
            telemetry=self._telemetry,
            writer=RecordWriter(embedder, max_value_bytes, default_ttl, shared.vectors_checked),
            embedder=embedder,
            semantic_weight=semantic_weight,
            fusion=fusion,
            reranker=reranker,
            history=history,
            resolver=resolver,
            resolver_k=resolver_candidates,
            # Query texts embedded in the last minutes (shared by views, as the embedder).
            query_vectors=QueryVectorCache(),
        )
        if history or resolver is not None:
            history_backend(self._rt, "history")  # raises TypeError before any use

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
        return self._rt.namespace

    def scoped(self, *parts: str) -> MemoryPrimitive:
        """A view on the sub-namespace ``namespace + parts``, sharing the backend.

        Namespaces are isolated: nothing read, searched, listed, counted or cleared crosses
        them, whatever characters the parts hold.
        """
        if not parts:
            raise ValueError("scoped() needs at least one namespace part")
        checked = tuple(validate_part(p, "namespace part") for p in parts)
        namespace = self._rt.namespace + checked
        return self._view(namespace=namespace, store_id=store_id(namespace))

    def with_embedder(self, embedder: Embedder | None) -> MemoryPrimitive:
        """A view of this primitive that embeds with ``embedder`` (None: no embedder).

        It shares everything else (backend, namespace, settings, telemetry, the
        :meth:`sync` loop) but the cache of query vectors, which are its embedder's;
        closing it closes nothing. The LangGraph store uses it to apply
        an ``index`` config to a given memory. A namespace keeps the vectors of one
        embedder: writing another's is refused.

        Raises:
            TypeError: ``embedder`` has neither ``embed_documents``/``embed_query`` nor
                ``embed``.
        """
        _check_embedder(embedder)
        rt = self._rt
        advised = getattr(embedder, "semantic_weight", None)
        weight = rt.semantic_weight if advised is None else validate_semantic_weight(advised)
        writer = rt.writer.with_embedder(embedder)
        # Its own query-vector cache: the cache holds one embedder's vectors of a text.
        return self._view(
            embedder=embedder,
            semantic_weight=weight,
            writer=writer,
            query_vectors=QueryVectorCache(),
        )

    def _view(self, store_id: str | None = None, **changes: Any) -> MemoryPrimitive:
        """A view sharing everything with this primitive but ``changes`` to its runtime."""
        view = object.__new__(MemoryPrimitive)
        view.__dict__.update(self.__dict__)
        view._rt = self._rt.replace(memory=view, **changes)
        if store_id is not None:
            view._store_id = store_id
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
                    raise closed_error("sync", shared.backend.info().name)
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
            if embed is True:
                op: MemoryOperation = _op(AddOp, (key, value, ttl, metadata, True, index_text))
            else:
                op = AddOp(key, value, ttl, metadata, embed, index_text)
            await self._run(op, context)
            return
        op = AddVersionedOp(key, value, ttl, metadata, supersedes or (), embed, index_text)
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
            op: MemoryOperation = _op(GetOp, (key, default))
        else:
            op = GetAsOfOp(key, as_of, default)
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
            as_of=as_of,
        )
        return cast(builtins.list[SearchHit], await self._run(op, context))

    async def delete(self, key: str, *, context: WorkflowContext | None = None) -> bool:
        """Delete ``key``; True if a record was deleted."""
        return cast(bool, await self._run(DeleteOp(key), context))

    async def clear(self, *, context: WorkflowContext | None = None) -> int:
        """Delete every record of this namespace (only this one); return how many."""
        return cast(int, await self._run(ClearOp(), context))

    async def keys(self, *, context: WorkflowContext | None = None) -> builtins.list[str]:
        """This namespace's keys, least recently used first."""
        return cast(builtins.list[str], await self._run(KeysOp(), context))

    async def size(self, *, context: WorkflowContext | None = None) -> int:
        """Number of live records in this namespace."""
        return cast(int, await self._run(SizeOp(), context))

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
        op: MemoryOperation = GetRecordOp(key) if as_of is None else GetRecordAsOfOp(key, as_of)
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
        op = ForgetOp(request)
        return cast(ForgetReport, await self._run(op, context))

    async def history(
        self, key: str, *, context: WorkflowContext | None = None
    ) -> builtins.list[MemoryRecord]:
        """The versions of ``key``, newest first: the current one (``valid_to`` None) and
        the earlier ones kept with ``history=N``, each with ``valid_from`` and ``valid_to``.

        Raises:
            TypeError: The backend keeps no history (see ``HistoryBackend``).
        """
        op = HistoryOp(key)
        return cast(builtins.list[MemoryRecord], await self._run(op, context))

    async def update(
        self,
        key: str,
        *,
        value: Any = KEEP,
        metadata: Mapping[str, Any] | None = KEEP,
        ttl: Any = KEEP,
        merge_metadata: bool = True,
        index_text: str | None = KEEP,
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
        op = ListOp(filter, limit, cursor, order, subtree, as_of)
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
        op = CompactOp(request)
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
        self._rt.check_open("export")
        return export_records(
            self._rt, filter=filter, vectors=vectors, history=history, context=context
        )

    async def import_(
        self,
        records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
        *,
        on_conflict: OnConflict = "replace",
        progress: Callable[[int], None] | None = None,
        context: WorkflowContext | None = None,
    ) -> ImportReport:
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
            The :class:`~tta_dev_primitives.memory.ImportReport`.

        Raises:
            ValueError: A malformed record (named by its file line, or its position), or a
                bad ``on_conflict``; nothing was written.
            ImportIncompleteError: The backend failed part way (a
                :class:`MemoryBackendError`): it says how many records were written and the
                ``on_conflict`` with which importing the same records again finishes.
        """
        op = ImportOp(ImportRequest(records, on_conflict, progress))
        return cast(ImportReport, await self._run(op, context))

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
        fn = steps.get_step(self, key, default, namespace, state_key)
        return self._step(fn, "get_step")

    def add_step(
        self,
        key: str | Callable[[Any, WorkflowContext], str],
        value: Any | Callable[[Any, WorkflowContext], Any] = None,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | Callable[[Any, WorkflowContext], Any] | None = None,
        namespace: StepNamespace = None,
        index_text: str | Callable[[Any, WorkflowContext], str | None] | None = None,
    ) -> LambdaPrimitive[Any, Any]:
        """A step that stores ``value`` (the step's input when None) and passes its input on.

        Args:
            key: The key, or a callable of ``(input, context)``.
            value: The value, or a callable of ``(input, context)``; None: the input.
            ttl: Seconds the record lives (as in :meth:`add`; ``NO_EXPIRY`` never expires).
            metadata: Metadata, or a callable of ``(input, context)``.
            namespace: Write to this sub-namespace of this one (see :meth:`get_step`).
            index_text: Extra text indexed with the record (see :meth:`add`), or a callable
                of ``(input, context)`` returning it; None: none.
        """
        fn = steps.add_step(self, key, value, ttl, metadata, namespace, index_text)
        return self._step(fn, "add_step")

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
        options = {
            "limit": limit,
            "mode": mode,
            "semantic_weight": semantic_weight,
            "fusion": fusion,
            "recency_half_life": recency_half_life,
            "min_score": min_score,
            "reranker": reranker,
            "subtree": subtree,
        }
        fn = steps.search_step(self, query, filter, namespace, state_key, options)
        return self._step(fn, "search_step")

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
        options = {
            "keep_last": keep_last,
            "max_records": max_records,
            "merge_duplicates": merge_duplicates,
            "summarizer_timeout": summarizer_timeout,
            "ttl": ttl,
        }
        fn = steps.compact_step(
            self, summarizer, filter, summary_key, namespace, state_key, options
        )
        return self._step(fn, "compact_step")

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
    #
    # The backend's info is read twice per traced operation: once when its span starts (the
    # span's kind and attributes) and once when it ends (degradation, the metric's
    # attributes). Each hook pair runs with no await between them, so the info read first is
    # kept in ``_info`` for the second.

    def _span_name(self, input_data: MemoryOperation) -> str:
        return self._rt.inst.span_name(input_data.kind)

    def _span_kind(self, input_data: MemoryOperation) -> SpanKind:
        self._info = info = self._shared.backend.info()
        return self._rt.inst.span_kind(info)

    def _span_attributes(
        self, input_data: MemoryOperation, context: WorkflowContext
    ) -> dict[str, AttributeValue]:
        rt = self._rt
        kind = input_data.kind
        query = limit = None
        if isinstance(input_data, SearchOp):
            query, limit = input_data.query, input_data.limit
        return rt.inst.span_attributes(
            kind,
            rt.namespace,
            self._info,
            context,
            key=getattr(input_data, "key", None),
            query=query,
            limit=limit,
        )

    def _metric_attributes(self, input_data: MemoryOperation) -> dict[str, AttributeValue]:
        return self._rt.inst.metric_attributes(input_data.kind, self._info)

    def _duration_instrument(self) -> metrics.Histogram | None:
        return self._rt.inst.duration_histogram()

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
        if input_data.kind not in HANDLERS:
            raise ValueError(f"unknown memory operation {input_data.kind!r}")
        return await self._run(input_data, context)

    def _execute_untraced(
        self, input_data: MemoryOperation, context: WorkflowContext | None
    ) -> Awaitable[Any]:
        # Nothing records: the operation's handler alone (the context only feeds span
        # attributes, and a switch to the fallback is counted only where a meter exists).
        if self._shared.closed:
            raise closed_error(input_data.kind, self._shared.backend.info().name)
        return HANDLERS[input_data.kind](self._rt, input_data, NO_SPAN)

    async def _execute_impl(self, input_data: MemoryOperation, context: WorkflowContext) -> Any:
        rt = self._rt
        shared = rt.shared
        span = trace.get_current_span() if rt.telemetry.tracer() is not None else UNTRACED
        try:
            if shared.closed:
                raise closed_error(input_data.kind, shared.backend.info().name)
            return await HANDLERS[input_data.kind](rt, input_data, span)
        finally:
            self._info = info = shared.backend.info()
            if info.degraded:
                rt.inst.degraded(span)
            if info.degraded != shared.degraded:
                shared.degraded = info.degraded
                if info.degraded:
                    rt.inst.fallback_activated(info)
