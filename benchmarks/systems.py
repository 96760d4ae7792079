"""The registry: every measured system/mode and every operation is one entry.

A system is a :class:`SystemSpec` whose ``make`` builds an :class:`Adapter`: a uniform face
with one callable per operation (``None`` when the system has no such operation). A new mode
(semantic search, another server, another configuration of ours) is one more entry in
:func:`all_systems`; a new operation is one more :class:`Operation` in :data:`OPERATIONS`
plus the matching attribute on the adapters that support it.

Every adapter is given the operation's arguments already in its own native form (built
outside the timed region), so what is timed is the call a user of that system would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import importlib.util
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .workload import Record, RoundPlan

__all__ = [
    "OPERATIONS",
    "Adapter",
    "Environment",
    "Operation",
    "SystemSpec",
    "all_systems",
]

NAMESPACE = "bench"
SEARCH_LIMIT = 5
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads

Op = Callable[..., Any]


class Adapter:
    """One system as the harness sees it.

    Each operation attribute is a callable (sync or async) taking the arguments built by
    the matching ``*_args`` method, or None when the system cannot do that operation.
    """

    add: Op | None = None
    get: Op | None = None
    delete: Op | None = None
    search: Op | None = None
    search_question: Op | None = None
    add_many: Op | None = None
    notes: dict[str, str]

    def __init__(self) -> None:
        self.notes = {}

    # Argument builders (not timed): the native form of each call's input.
    def add_args(self, record: Record) -> tuple[Any, ...]:
        return (record.key, {"value": record.value, "metadata": record.metadata})

    def key_args(self, key: str) -> tuple[Any, ...]:
        return (key,)

    def search_args(self, query: str) -> tuple[Any, ...]:
        return (query,)

    def add_many_args(self, records: Sequence[Record]) -> tuple[Any, ...]:
        return ([(r.key, {"value": r.value, "metadata": r.metadata}) for r in records],)

    async def load(self, records: Sequence[Record]) -> None:
        """Store ``records`` (not timed); bulk when the system can."""
        if self.add_many is not None:
            for start in range(0, len(records), 1000):
                await _maybe_await(
                    self.add_many(*self.add_many_args(records[start : start + 1000]))
                )
            return
        assert self.add is not None
        for record in records:
            await _maybe_await(self.add(*self.add_args(record)))

    async def remove(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` (not timed): cleanup after ``add_many`` rounds."""
        assert self.delete is not None
        for key in keys:
            await _maybe_await(self.delete(*self.key_args(key)))

    async def aclose(self) -> None:
        return None


async def _maybe_await(result: Any) -> Any:
    if hasattr(result, "__await__"):
        return await result
    return result


@dataclass(frozen=True)
class Operation:
    """One measured operation.

    Attributes:
        name: Adapter attribute and column name.
        label: Human description for the report.
        calls: The argument tuples of one round's calls for one adapter.
        items: How many records one call handles (per-record cost = call time / items).
        after: Untimed cleanup after the round (e.g. deleting what ``add_many`` wrote).
    """

    name: str
    label: str
    calls: Callable[[Adapter, RoundPlan], list[tuple[Any, ...]]]
    items: Callable[[RoundPlan], int] = lambda plan: 1
    after: Callable[[Adapter, RoundPlan], Awaitable[None]] | None = None


async def _remove_bulk(adapter: Adapter, plan: RoundPlan) -> None:
    await adapter.remove(r.key for r in plan.bulk)


# Order matters: ``delete`` removes what ``add`` wrote in the same round, so the store keeps
# its size from round to round.
OPERATIONS: tuple[Operation, ...] = (
    Operation("add", "add one new record", lambda a, p: [a.add_args(r) for r in p.fresh]),
    Operation("get", "get an existing key", lambda a, p: [a.key_args(k) for k in p.existing]),
    Operation(
        "search",
        "keyword search, 2-word recall query, limit 5",
        lambda a, p: [a.search_args(q) for q in p.keyword_queries],
    ),
    Operation(
        "search_question",
        "keyword search, natural-language question (common words), limit 5",
        lambda a, p: [a.search_args(q) for q in p.question_queries],
    ),
    Operation(
        "delete", "delete an existing key", lambda a, p: [a.key_args(r.key) for r in p.fresh]
    ),
    Operation(
        "add_many",
        "add_many of a batch of new records (per record)",
        lambda a, p: [a.add_many_args(p.bulk)],
        items=lambda p: len(p.bulk),
        after=_remove_bulk,
    ),
)


class Environment:
    """What adapters may ask the harness for: server URLs and a tracer provider."""

    def __init__(self, urls: dict[str, Callable[[int], str]]) -> None:
        self._urls = urls
        self._next_db: dict[str, int] = {}
        self._tracer_provider: Any = None

    def has_server(self, kind: str) -> bool:
        return kind in self._urls

    def url(self, kind: str) -> str:
        """A URL to a fresh database of the ``kind`` server (one database per system)."""
        db = self._next_db.get(kind, 0) + 1
        self._next_db[kind] = db
        return self._urls[kind](db)

    def tracer_provider(self) -> Any:
        """An SDK tracer provider exporting through a batch processor to a no-op exporter."""
        if self._tracer_provider is None:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )

            class NoOpExporter(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
            self._tracer_provider = provider
        return self._tracer_provider

    def shutdown(self) -> None:
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
            self._tracer_provider = None


@dataclass(frozen=True)
class SystemSpec:
    """One measured system or mode.

    Attributes:
        key: Stable identifier (results, ``--systems`` filter).
        label: Row name in the report.
        group: ``floor`` (the least any store must pay), ``peer`` or ``ours``.
        where: ``memory`` (in process), ``redis`` or ``valkey``.
        make: Builds the adapter (servers and tracing come from the environment).
        requires: Modules that must be importable.
        tracing: For ours: True when an SDK tracer provider records spans.
        note: A footnote for the report.
    """

    key: str
    label: str
    group: str
    where: str
    make: Callable[[Environment], Awaitable[Adapter]]
    requires: tuple[str, ...] = ()
    tracing: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def unavailable(self) -> str | None:
        """Why this system cannot run here, or None."""
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                return f"{module} is not installed (pip install -e '.[bench]')"
        if self.group == "ours" and _memory_primitive() is None:
            return "MemoryPrimitive is not available yet"
        if self.group == "ours" and self.where != "memory" and not _has_redis_backend():
            return "the Redis backend is not available yet"
        return None


# --- floors: plain Python containers --------------------------------------------------------


def scan_search(
    items: Iterable[tuple[str, Any]], query: str, limit: int = SEARCH_LIMIT
) -> list[str]:
    """Keyword search without an index: score every record by the query words it contains."""
    terms = query.lower().split()
    scored = []
    for seq, (key, record) in enumerate(items):
        text = record["value"]["content"].lower()
        score = sum(term in text for term in terms)
        if score:
            scored.append((score, seq, key))
    return [key for _, _, key in heapq.nlargest(limit, scored)]


class MappingAdapter(Adapter):
    """A synchronous mutable mapping (``dict``, ``cachetools.LRUCache``)."""

    def __init__(self, mapping: Any) -> None:
        super().__init__()
        self.mapping = mapping
        self.add = mapping.__setitem__
        self.get = mapping.get
        self.delete = self._pop
        self.search = self._search
        self.search_question = self._search
        self.add_many = mapping.update

    def _pop(self, key: str) -> Any:
        return self.mapping.pop(key, None)

    def _search(self, query: str) -> list[str]:
        return scan_search(self.mapping.items(), query)


async def _make_dict(env: Environment) -> Adapter:
    return MappingAdapter({})


async def _make_lru(env: Environment) -> Adapter:
    from cachetools import LRUCache

    return MappingAdapter(LRUCache(maxsize=10**9))


# --- peers ----------------------------------------------------------------------------------


class LangGraphAdapter(Adapter):
    """LangGraph ``InMemoryStore`` (``aput``/``aget``/``adelete``/``asearch``/``abatch``)."""

    def __init__(self) -> None:
        super().__init__()
        from langgraph.store.base import PutOp
        from langgraph.store.memory import InMemoryStore

        self._put_op = PutOp
        self.store = store = InMemoryStore()
        ns = (NAMESPACE,)
        self.ns = ns
        self.add = store.aput
        self.get = store.aget
        self.delete = store.adelete
        self.search = self.search_question = self._search
        self.add_many = store.abatch

    async def _search(self, ns: tuple[str, ...], query: str, limit: int) -> Any:
        return await self.store.asearch(ns, query=query, limit=limit)

    def add_args(self, record: Record) -> tuple[Any, ...]:
        return (self.ns, record.key, {"value": record.value, "metadata": record.metadata})

    def key_args(self, key: str) -> tuple[Any, ...]:
        return (self.ns, key)

    def search_args(self, query: str) -> tuple[Any, ...]:
        return (self.ns, query, SEARCH_LIMIT)

    def add_many_args(self, records: Sequence[Record]) -> tuple[Any, ...]:
        return (
            [
                self._put_op(self.ns, r.key, {"value": r.value, "metadata": r.metadata})
                for r in records
            ],
        )


async def _make_langgraph(env: Environment) -> Adapter:
    return LangGraphAdapter()


class AiocacheAdapter(Adapter):
    """aiocache ``SimpleMemoryCache`` with its defaults (no search)."""

    def __init__(self) -> None:
        super().__init__()
        from aiocache import SimpleMemoryCache

        self.cache = cache = SimpleMemoryCache()
        self.add = cache.set
        self.get = cache.get
        self.delete = cache.delete
        self.add_many = cache.multi_set

    async def aclose(self) -> None:
        await self.cache.close()


async def _make_aiocache(env: Environment) -> Adapter:
    return AiocacheAdapter()


class RawRedisAdapter(Adapter):
    """redis-py asyncio, GET/SET of the record as JSON on one client (the floor for Redis)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self.client = client = aioredis.Redis.from_url(url)
        self.delete = client.delete
        self.search_question = self.search = self._search

    async def add(self, key: str, record: Any) -> Any:  # type: ignore[override]
        return await self.client.set(key, _dumps(record))

    async def get(self, key: str) -> Any:  # type: ignore[override]
        raw = await self.client.get(key)
        return None if raw is None else _loads(raw)

    async def add_many(self, pairs: Sequence[tuple[str, Any]]) -> None:  # type: ignore[override]
        async with self.client.pipeline(transaction=False) as pipe:
            for key, record in pairs:
                pipe.set(key, _dumps(record))
            await pipe.execute()

    async def _search(self, query: str) -> list[str]:
        # No modules: fetch every record (SCAN + MGET) and scan it client-side.
        items: list[tuple[str, Any]] = []
        async for keys in _scan_batches(self.client):
            values = await self.client.mget(keys)
            items.extend(
                (k.decode(), _loads(v)) for k, v in zip(keys, values, strict=True) if v is not None
            )
        return scan_search(items, query)

    async def remove(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            await self.client.delete(*keys)

    async def aclose(self) -> None:
        await self.client.flushdb()
        await self.client.aclose()


async def _scan_batches(client: Any, count: int = 1000) -> Any:
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, count=count)
        if keys:
            yield keys
        if cursor == 0:
            return


def _spanned(fn: Op, tracer: Any, name: str) -> Op:
    async def call(*args: Any) -> Any:
        with tracer.start_as_current_span(name):
            return await fn(*args)

    return call


def _raw_redis(kind: str, spanned: bool = False) -> Callable[[Environment], Awaitable[Adapter]]:
    async def make(env: Environment) -> Adapter:
        adapter = RawRedisAdapter(env.url(kind))
        await adapter.client.flushdb()
        if spanned:
            # The floor of recording: each call inside one bare span of the same SDK set-up.
            tracer = env.tracer_provider().get_tracer("benchmarks")
            for name in ("add", "get", "delete", "add_many"):
                setattr(adapter, name, _spanned(getattr(adapter, name), tracer, f"bench.{name}"))
            adapter.search = adapter.search_question = None
        return adapter

    return make


# --- ours -----------------------------------------------------------------------------------


def _memory_primitive() -> Any:
    try:
        module = importlib.import_module("tta_dev_primitives")
    except ImportError:
        return None
    return getattr(module, "MemoryPrimitive", None)


def _has_redis_backend() -> bool:
    try:
        module = importlib.import_module("tta_dev_primitives")
    except ImportError:
        return False
    return getattr(module, "RedisBackend", None) is not None


class OursAdapter(Adapter):
    """``MemoryPrimitive`` through its public async API."""

    def __init__(self, memory: Any, *, remote: bool = False) -> None:
        super().__init__()
        self.memory = memory
        self.remote = remote
        self.get = memory.get
        self.delete = memory.delete
        self.add = self._add
        self.search = self.search_question = self._search
        if hasattr(memory, "add_many"):
            self.add_many = memory.add_many

    def _add(self, key: str, value: Any, metadata: Any) -> Any:
        return self.memory.add(key, value, metadata=metadata)

    def _search(self, query: str) -> Any:
        return self.memory.search(query, limit=SEARCH_LIMIT)

    def add_args(self, record: Record) -> tuple[Any, ...]:
        return (record.key, record.value, record.metadata)

    def add_many_args(self, records: Sequence[Record]) -> tuple[Any, ...]:
        # add_many takes (key, value) pairs and one metadata mapping for the whole batch, so
        # per-record metadata cannot go with it: the batch is stored without metadata.
        return ([(r.key, r.value) for r in records],)

    async def load(self, records: Sequence[Record]) -> None:
        # add_many takes one metadata mapping per batch, so loading goes through add, which
        # keeps each record's own metadata as in every other system. Against a server, a few
        # adds run concurrently (the server, not the client, is what loading waits for).
        add = self.memory.add
        if not self.remote:
            for r in records:
                await add(r.key, r.value, metadata=r.metadata)
            return
        for start in range(0, len(records), 64):
            await asyncio.gather(
                *(add(r.key, r.value, metadata=r.metadata) for r in records[start : start + 64])
            )

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.memory.clear()
        await self.memory.aclose()


def _ours(where: str, tracing: bool, **options: Any) -> Callable[[Environment], Awaitable[Adapter]]:
    async def make(env: Environment) -> Adapter:
        memory_cls = _memory_primitive()
        provider = env.tracer_provider() if tracing else None
        kwargs: dict[str, Any] = {
            "namespace": NAMESPACE,
            "max_size": None,
            "tracer_provider": provider,
            **options,
        }
        if where != "memory":
            kwargs["redis_url"] = env.url(where)
        memory = memory_cls(**kwargs)
        adapter = OursAdapter(memory, remote=where != "memory")
        if where != "memory":
            await memory.clear()
        return adapter

    return make


# --- the registry ---------------------------------------------------------------------------

_WHERE_LABEL = {"memory": "in-memory", "redis": "Redis", "valkey": "Valkey"}


def all_systems() -> list[SystemSpec]:
    """Every system and mode, floors and peers first; the report keeps this order."""
    systems = [
        SystemSpec(
            "dict",
            "dict",
            "floor",
            "memory",
            _make_dict,
            note="search: linear scan scoring every record by the query words it contains",
        ),
        SystemSpec(
            "lru",
            "cachetools.LRUCache",
            "floor",
            "memory",
            _make_lru,
            requires=("cachetools",),
            note="search: the same linear scan as dict",
        ),
        SystemSpec(
            "langgraph",
            "LangGraph InMemoryStore",
            "peer",
            "memory",
            _make_langgraph,
            requires=("langgraph",),
            note=(
                "asearch without an embedding index ignores the query text: it lists the "
                "namespace (no keyword ranking), shown for its growth only"
            ),
        ),
        SystemSpec(
            "aiocache",
            "aiocache SimpleMemoryCache",
            "peer",
            "memory",
            _make_aiocache,
            requires=("aiocache",),
            note="no search",
        ),
    ]
    for where in ("redis", "valkey"):
        systems.append(
            SystemSpec(
                f"raw-{where}",
                f"redis-py + JSON ({_WHERE_LABEL[where]})",
                "floor",
                where,
                _raw_redis(where),
                requires=("redis",),
                note="search: SCAN + MGET of every record, then the dict linear scan",
            )
        )
    for where in ("redis", "valkey"):
        systems.append(
            SystemSpec(
                f"raw-{where}-span",
                f"redis-py + JSON + bare span ({_WHERE_LABEL[where]})",
                "floor",
                where,
                _raw_redis(where, spanned=True),
                requires=("redis", "opentelemetry.sdk"),
                tracing=True,
                note=(
                    "each call inside one bare SDK span (batch processor, no-op exporter): "
                    "what recording a span costs around a round trip here, nothing of ours"
                ),
            )
        )
    for where in ("memory", "redis", "valkey"):
        for tracing in (False, True):
            mode = "SDK" if tracing else "no SDK"
            systems.append(
                SystemSpec(
                    f"ours-{where}-{'sdk' if tracing else 'nosdk'}",
                    f"ours ({_WHERE_LABEL[where]}, {mode})",
                    "ours",
                    where,
                    _ours(where, tracing),
                    requires=("opentelemetry.sdk",) if tracing else (),
                    tracing=tracing,
                )
            )
    systems.append(
        SystemSpec(
            "ours-redis-direct",
            "ours (Redis, no SDK, fallback=False)",
            "ours",
            "redis",
            _ours("redis", False, fallback=False),
            note="without the fallback to memory (no in-process mirror of writes)",
        )
    )
    return systems
