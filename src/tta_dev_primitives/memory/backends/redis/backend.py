"""``RedisBackend``: records in Redis (or Valkey), shared by processes, with atomic Lua steps.

Usage::

    backend = RedisBackend.from_url("redis://localhost:6379/0", max_size=10_000)
    memory = MemoryPrimitive(backend=backend)

or simply ``MemoryPrimitive(redis_url="redis://localhost:6379/0")``, which also puts an
in-memory :class:`~tta_dev_primitives.memory.backends.fallback.FallbackBackend` in front.

Every operation is one ``EVALSHA`` round trip (batches: one per 1000 records, pipelined),
an atomic Lua script over one namespace: record, LRU order, TTL index, eviction and the
namespace's change log change together or not at all. Search runs in this process, in a
:class:`~tta_dev_primitives.memory.search.SearchIndex` of the namespace (the engine of every
backend) loaded on the namespace's first search and caught up before each search from the
change log, so a search sees every write acknowledged before it began, by any process: one
round trip when nothing changed, then one to read the hits' records
(:mod:`~tta_dev_primitives.memory.backends.redis.sync`). Key layout and the scripts are
described in :mod:`~tta_dev_primitives.memory.backends.redis.scripts`. Needs plain Redis
>= 7.0 or Valkey, no modules.
"""

# One piece at about 840 lines (155 of them docstrings): the one class that implements the
# MemoryBackend protocol and its optional capabilities (history, compaction, vectors, the
# records API). Each method is a short composition of the package's parts (layout, wire,
# server, sync, query_engine); splitting the class would scatter one protocol's
# implementation over mixins that share its state.

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from ... import codec
from ...codec import validate_max_size
from ...errors import MemoryBackendError
from ...records import (
    Entry,
    ListQuery,
    ListResult,
    Namespace,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
)
from ...search import CorpusStats, SearchIndex, Vector, check_space, recency_weights
from ..base import MAX_TOMBSTONES, BackendInfo, CompactionPlan, StoredVectors, Version
from . import scripts as lua
from .clients import ClientPerLoop, client_factory
from .errors import closed, garbled, refusal
from .index import DEFAULT_INDEX_BUDGET, LocalIndexes
from .layout import NamespaceKeys, namespace_glob, untag
from .query_engine import QueryEngine, SearchEngine, validate_search_engine
from .server import RedisClient, Server
from .sync import ChangeLogSync
from .upgrade import upgrade_prefix
from .wire import (
    GarbledRecord,
    compaction_call,
    decode_fields,
    decode_packed,
    decode_text,
    embedder_arg,
    encode_text,
    put_calls,
    put_header,
    put_record,
    restore_args,
    stored_embedder,
    ttl_ms,
    update_args,
    vector_copy,
)

__all__ = ["RedisBackend"]

logger = logging.getLogger(__package__)

_WRONGTYPE = "WRONGTYPE"


def _script_deadline(timeout: float | None, terms: int) -> float | None:
    # A script's work grows with what it touches: allow for it on top of the usual wait.
    return None if timeout is None else timeout + terms * 1e-5


class RedisBackend:
    """Keeps each namespace in Redis under ``prefix:{namespace}:...``.

    Works with any ``redis.asyncio`` client (standalone or cluster) created with
    ``decode_responses=False`` (the default). Records outlive the process and are shared by
    every process using the same server and prefix; each namespace holds at most
    ``max_size`` records (least recently used evicted). Failures of the client (connection
    refused or lost, timeouts, authentication, server errors) raise
    :class:`MemoryBackendError`, never a ``redis`` exception.

    Args:
        client: A ready ``redis.asyncio.Redis`` or ``RedisCluster``.
        prefix: First part of every key (no braces), to share a server between apps.
        max_size: Most records per namespace (None = unbounded).
        close_client: Whether :meth:`aclose` closes ``client`` (:meth:`from_url` sets it).
        timeout: Seconds each round trip to the server may take (None = the client's own
            socket timeout only). Enforced with ``asyncio.timeout`` around the call, which on
            Python 3.11 is much cheaper than redis-py's ``socket_timeout`` (a task per write).
        search_timeout: Seconds each round trip of a search's index load or catch-up may
            take (default 30; at least ``timeout``). A search past it raises a non-transient
            :class:`MemoryBackendError`: a slow search is never taken for an outage.
        index_budget: Most bytes of search indexes kept in this process (default 512 MiB,
            by the indexes' own estimates); the least recently searched namespaces' indexes
            are dropped past it and loaded again by their next search.
        search_engine: ``"auto"`` (default): the Redis Query Engine (``FT.*``) answers
            searches of namespaces too large to hold in process, when the server has it;
            ``"local"``: never; ``"query-engine"``: always (a server without it is a
            :class:`MemoryBackendError`). See
            :mod:`~tta_dev_primitives.memory.backends.redis.query_engine`.

    Raises:
        TypeError: ``client`` is not a redis.asyncio client, or ``prefix`` is not a str.
        ValueError: ``prefix`` is empty or holds a brace; the client decodes responses;
            ``index_budget`` is not a positive int; ``search_engine`` is not one of the
            three.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "tta",
        max_size: int | None = 1000,
        close_client: bool = False,
        timeout: float | None = None,
        search_timeout: float | None = 30.0,
        index_budget: int = DEFAULT_INDEX_BUDGET,
        search_engine: SearchEngine = "auto",
    ) -> None:
        if not isinstance(client, aioredis.Redis | aioredis.RedisCluster):
            raise TypeError(
                f"client must be a redis.asyncio.Redis or RedisCluster, got {type(client).__name__}"
            )
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be a non-empty str without '{' or '}'")
        if client.get_encoder().decode_responses:
            raise ValueError("RedisBackend needs a client with decode_responses=False")
        self.max_size = validate_max_size(max_size)
        self.prefix = prefix
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self._close_client = close_client
        if search_timeout is not None and not search_timeout > 0:
            raise ValueError(f"search_timeout must be > 0 seconds or None, got {search_timeout!r}")
        # A search's script may run long over a large namespace: it gets its own deadline, so
        # that it is never mistaken for a hung server.
        if timeout is not None and search_timeout is not None:
            search_timeout = max(timeout, search_timeout)
        self._server = Server(
            client, owned=close_client, timeout=timeout, search_timeout=search_timeout
        )
        self._closed = False
        self._max_arg = b"0" if self.max_size is None else str(self.max_size).encode()
        self._namespace_keys: dict[Namespace, NamespaceKeys] = {}
        # Most namespaces whose key names are kept (the cache is emptied when it is full):
        # a process reading many namespaces keeps a bounded few, not every one it read.
        self.namespace_cache_size = 1024
        self._indexes = LocalIndexes[SearchIndex](index_budget)
        self._sync = ChangeLogSync(self._server, self._indexes)
        self._query_engine = QueryEngine(
            self._server, self._sync, prefix, validate_search_engine(search_engine), index_budget
        )
        host, port = self._server.host, self._server.port
        attributes: dict[str, str | int] = {"db.system.name": "redis", "server.address": host}
        if port is not None:
            attributes["server.port"] = port
        self._info = BackendInfo(name="redis", persistent=True, remote=True, attributes=attributes)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "tta",
        max_size: int | None = 1000,
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
        retries: int = 2,
        backoff_base: float = 0.05,
        backoff_cap: float = 0.5,
        health_check_interval: float = 15.0,
        search_timeout: float | None = 30.0,
        max_connections: int = 100,
        index_budget: int = DEFAULT_INDEX_BUDGET,
        search_engine: SearchEngine = "auto",
        **client_options: Any,
    ) -> RedisBackend:
        """Build a backend with its own client for ``url`` (``redis://``, ``rediss://``,
        ``unix://``; ``redis+cluster://`` or ``rediss+cluster://`` for Redis Cluster), closed
        by :meth:`aclose`.

        A cluster URL names one node or several, comma-separated
        (``redis+cluster://user:pass@10.0.0.1:7000,10.0.0.2:7000``): the client discovers
        the rest of the cluster from the first that answers, and follows failovers and
        resharding (``MOVED``/``ASK``).

        The client retries a lost or refused connection ``retries`` times with exponential
        backoff and jitter (a random wait up to ``backoff_base * 2**n``, at most
        ``backoff_cap`` seconds), which rides through a restart or failover. A timeout is not
        retried (a server too busy or hung to answer in ``socket_timeout`` will not answer
        sooner when asked again), so a hung server costs one ``socket_timeout`` before
        :class:`MemoryBackendError` (or the fallback), never a hang.

        Args:
            url: The server URL, credentials included (``redis://user:pass@host:6379/0``,
                ``redis+cluster://host:7000``).
            prefix: First part of every key.
            max_size: Most records per namespace (None = unbounded).
            socket_timeout: Seconds a round trip may take before it fails as timed out.
            socket_connect_timeout: Seconds to wait for a connection.
            retries: Retries after a lost or refused connection (0 = none).
            backoff_base: Backoff scale, seconds.
            backoff_cap: Longest backoff, seconds.
            health_check_interval: Seconds of idleness after which a pooled connection is
                checked with PING before use.
            search_timeout: Seconds a search's round trip may take (see the class).
            index_budget: Most bytes of search indexes kept in this process (see the class).
            search_engine: ``"auto"``, ``"local"`` or ``"query-engine"`` (see the class).
            max_connections: Most connections open at once (standalone servers; per node of
                a cluster, where the backend also keeps at most that many operations in
                flight per event loop). More
                concurrent operations than this wait for a free connection, within their own
                ``socket_timeout``, rather than fail (redis-py's default pool refuses the
                101st concurrent command with "Too many connections").
            client_options: More ``redis.asyncio.from_url`` options (``ssl_ca_certs``, ...).

        Raises:
            TypeError: ``url`` is not a str.
            ValueError: ``url`` is not a Redis URL, or ``search_engine`` is not one of the
                three.
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        validate_search_engine(search_engine)
        make_client = client_factory(
            url,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            health_check_interval=health_check_interval,
            max_connections=max_connections,
            client_options=client_options,
        )
        first = make_client()
        backend = cls(
            first,
            prefix=prefix,
            max_size=max_size,
            close_client=True,
            timeout=socket_timeout,
            search_timeout=search_timeout,
            index_budget=index_budget,
            search_engine=search_engine,
        )
        # Each event loop that uses the backend gets its own client (see clients).
        server = backend._server
        server.clients = ClientPerLoop(first, make_client, owned=True, where=server.where)
        return backend

    @property
    def server_check_interval(self) -> float:
        """Seconds between checks of the server's eviction policy and run_id (default 60)."""
        return self._server.check.interval

    @server_check_interval.setter
    def server_check_interval(self, seconds: float) -> None:
        self._server.check.interval = seconds

    @property
    def server_restarts(self) -> int:
        """How many times the server was seen to restart (its run_id changed), or on a
        Redis Cluster to fail over (another node answered the server check)."""
        return self._server.restarts

    @property
    def indexes(self) -> LocalIndexes[SearchIndex]:
        """The search indexes this backend holds in its process (see ``redis.index``)."""
        return self._indexes

    @property
    def query_engine(self) -> QueryEngine:
        """The Redis Query Engine search path (see ``redis.query_engine``)."""
        return self._query_engine

    # -- helpers ------------------------------------------------------------------------------

    def _keys(self, namespace: Namespace) -> NamespaceKeys:
        ns = self._namespace_keys.get(namespace)
        if ns is None:
            ns = NamespaceKeys.of(self.prefix, namespace)
            if len(self._namespace_keys) >= self.namespace_cache_size:
                self._namespace_keys.clear()  # many namespaces: stay bounded (cheap to rebuild)
            self._namespace_keys[namespace] = ns
        return ns

    def key_prefix(self, namespace: Namespace) -> str:
        """The prefix every Redis key of ``namespace`` starts with (``tta:{default}:``)."""
        return decode_text(self._keys(namespace).base)

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise closed(operation)

    def _decoded(self, namespace: Namespace, key: str, packed: bytes, operation: str) -> Record:
        """The record ``lua/get.lua`` packed for ``key``.

        Raises:
            MemoryBackendError: It is not a record this library wrote, naming the key.
        """
        try:
            return decode_packed(key, packed)
        except GarbledRecord as exc:
            raise garbled(self._server.where, namespace, operation, exc) from exc

    def _listed(self, ns: NamespaceKeys, key: str, fields: Sequence[bytes | None]) -> Record | None:
        """The record of ``FETCH`` fields, None when there is none; a record this library
        did not write is reported and skipped."""
        try:
            found = decode_fields(key, fields)
        except GarbledRecord as exc:
            self._server.garbled.skipped(ns.base, exc)
            return None
        if found is None:
            return None
        return Record(
            key,
            found.text,
            found.metadata,
            found.seq,
            codec.NO_SNAPSHOT,
            found.created_at,
            found.updated_at,
            found.expires_at,
            found.index_text,
        )

    async def _refused(
        self, ns: NamespaceKeys, exc: MemoryBackendError, new: tuple[str, int] | None
    ) -> None:
        """A write failed with ``exc``: when the namespace refused vectors of another
        embedder identity (``new``), raise the ValueError every backend raises for it."""
        if "EMBEDDER " not in str(exc) or new is None:
            return
        with self._server.failures("add"):
            stored = await self._server.hget(ns.stats, b"sp")
        current = stored_embedder(stored)
        if current is not None:
            check_space(current, new)  # raises the ValueError naming both

    # -- MemoryBackend ------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        return self._info

    async def ping(self) -> None:
        """Check the server answers.

        Raises:
            MemoryBackendError: It does not.
        """
        self._check_open("ping")
        server = self._server
        with server.failures("ping"):
            client = server.client
            async with asyncio.timeout(server.timeout):
                if isinstance(client, aioredis.RedisCluster):
                    # Every master (redis-py asks one node), no replica: a replica down
                    # stops no namespace, a master down stops some.
                    await client.ping(target_nodes=aioredis.RedisCluster.PRIMARIES)
                else:
                    await client.ping()

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        if self._closed:
            self._check_open("add")
        ns = self._namespace_keys.get(namespace) or self._keys(namespace)
        header = put_header(self._max_arg, ttl_ms(entry.ttl), embedder_arg(entry))
        try:
            with self._server.failures("add"):
                evicted = await self._server.eval(
                    lua.PUT, ns, header, put_record(entry), keys=(ns.rec + encode_text(entry.key),)
                )
        except MemoryBackendError as exc:
            await self._refused(ns, exc, entry.space)
            raise
        return int(evicted)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        self._check_open("add_many")
        if not entries:
            return 0
        ns = self._keys(namespace)
        embedder = next((e for e in entries if e.space is not None), entries[0])
        calls = put_calls(ns.declared(lua.PUT), ns.rec, entries, embedder, self._max_arg)
        try:
            with self._server.failures("add_many"):
                replies = await self._server.eval_many(lua.PUT, calls)
        except MemoryBackendError as exc:
            await self._refused(ns, exc, embedder.space)
            raise
        return sum(int(r) for r in replies)

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if self._closed:
            self._check_open("get")
        ns = self._namespace_keys.get(namespace) or self._keys(namespace)
        raw = encode_text(key)
        try:
            with self._server.failures("get"):
                packed = await self._server.eval(lua.GET, ns, b"1", raw, keys=(ns.rec + raw,))
        except MemoryBackendError as exc:
            if _WRONGTYPE in str(exc):  # the key holds another type: not a record
                error = garbled(self._server.where, namespace, "get", GarbledRecord(key, exc))
                raise error from exc.__cause__
            raise
        if packed is None:
            return None
        try:  # not through _decoded: the hot path, one call less
            return decode_packed(key, packed)
        except GarbledRecord as exc:
            raise garbled(self._server.where, namespace, "get", exc) from exc

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        self._check_open("get_many")
        if not keys:
            return []
        try:
            with self._server.failures("get_many"):
                found = await self._server.read(
                    self._keys(namespace), [encode_text(k) for k in keys], b"1"
                )
        except MemoryBackendError as exc:
            if _WRONGTYPE not in str(exc):
                raise
            for key in keys:  # find the key that holds another type, and name it
                await self.get(namespace, key)
            raise
        return [
            None if packed is None else self._decoded(namespace, key, packed, "get_many")
            for key, packed in zip(keys, found, strict=True)
        ]

    async def delete(self, namespace: Namespace, key: str) -> bool:
        self._check_open("delete")
        ns = self._keys(namespace)
        raw = encode_text(key)
        with self._server.failures("delete"):
            done = int(await self._server.eval(lua.REMOVE, ns, raw, keys=(ns.rec + raw,)))
        if done >= 2:
            await self._emptied(ns)
        return bool(done & 1)

    async def _emptied(self, ns: NamespaceKeys) -> None:
        """A delete left the namespace without records: drop its Query Engine index too (an
        index per namespace ever emptied would grow with the history, not the live data)."""
        if self._query_engine.mode == "local":
            return
        try:
            await self._query_engine.forget(ns)
        except MemoryBackendError as exc:  # the delete is done; the next start drops it
            logger.warning(
                "Redis at %s: dropping an emptied namespace's index: %s", self._server.where, exc
            )

    async def clear(self, namespace: Namespace) -> int:
        self._check_open("clear")
        ns = self._keys(namespace)
        if self._query_engine.mode != "local":
            # The FT index first: deleting 100k indexed hashes one by one takes minutes.
            await self._query_engine.forget(ns)
        with self._server.failures("clear"):
            count = int(await self._server.eval(lua.CLEAR, ns))
        state = self._indexes.get(ns.base)
        if state is not None:
            state.reset(None, 0)
        return count

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        self._check_open("keys")
        with self._server.failures("keys"):
            reply = await self._server.eval(lua.LIST, self._keys(namespace), b"keys")
        return [decode_text(k) for k in reply]

    async def size(self, namespace: Namespace) -> int:
        self._check_open("size")
        with self._server.failures("size"):
            return int(await self._server.eval(lua.LIST, self._keys(namespace), b"size"))

    # -- search: this process's index of the namespace, caught up from its change log ---------

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        self._check_open("search")
        prepared = query.prepared()
        if prepared is None:
            return []
        ns = self._keys(namespace)
        if self._query_engine.mode != "local":
            engine = await self._query_engine.search(ns, prepared, query)
            if engine is not None:
                return engine
        state, now = await self._sync.fresh(ns, "search", slow=True)
        if query.vector is not None and query.space is not None and state.space is not None:
            check_space(state.space, query.space)  # another embedder's vectors: ValueError
        recency = recency_weights(query.recency_half_life, now, state.updated.get)
        scored = state.index.rank(prepared, query, recency)
        if not scored:
            return []
        with self._server.failures("search"):
            found = await self._server.fetch(
                ns, [encode_text(key) for _, _, key in scored], vectors=False
            )
        results = []
        for (score, _, key), fields in zip(scored, found, strict=True):
            try:
                hit = decode_fields(key, fields, parse=True)
            except GarbledRecord as exc:
                self._server.garbled.skipped(ns.base, exc)
                continue
            if hit is not None:  # None: deleted since the index caught up
                results.append(SearchResult(key, hit.text, score, hit.metadata, hit.value))
        return results

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        """The namespace's BM25 statistics for the query's words, from the statistics of the
        path that answers its searches (the Query Engine's, or the local index's)."""
        self._check_open("search")
        prepared = query.prepared()
        if prepared is None:
            return CorpusStats(0, 0, {})
        ns = self._keys(namespace)
        engine = await self._query_engine.corpus_stats(ns, prepared)
        if engine is not None:
            return engine
        state, _ = await self._sync.fresh(ns, "search")
        return state.index.corpus_stats(prepared)

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        """A page in write order from this process's index of the namespace (caught up from
        the change log first, like a search), then the page's records from Redis: the
        namespace is read once (its index load), never per page."""
        self._check_open("list")
        ns = self._keys(namespace)
        state, _ = await self._sync.fresh(ns, "list")
        index = state.index
        horizon = index.last_seq() if query.horizon is None else query.horizon
        newest = query.order == "newest"
        after = query.after
        limit = query.limit
        out: builtins.list[Record] = []
        while True:
            want = limit - len(out)
            picked = index.page(
                query.filter, horizon=horizon, after=after, newest=newest, limit=want + 1
            )
            page, more = picked[:want], len(picked) > want
            if not page:
                return ListResult(out, horizon, False)
            with self._server.failures("list"):
                found = await self._server.fetch(ns, [encode_text(k) for _, k in page], False)
            for (seq, key), fields in zip(page, found, strict=True):
                record = self._listed(ns, key, fields)
                # None or another seq: deleted, or rewritten past the walk's horizon, since
                # the index caught up.
                if record is not None and record.seq == seq:
                    out.append(record)
            if len(out) == limit or not more:
                return ListResult(out, horizon, more)
            after = page[-1][0]

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        """Delete the matching records found in this process's index of the namespace, each
        only if it still is the version indexed (a record rewritten meanwhile is judged by
        its new metadata at the next call, not deleted for its old one); pipelined."""
        self._check_open("delete_where")
        ns = self._keys(namespace)
        state, _ = await self._sync.fresh(ns, "delete_where")
        matching = state.index.matching(filter)
        if not matching:
            return 0
        declared = ns.declared(lua.REMOVE)
        calls = []
        for seq, key in matching:
            raw = encode_text(key)
            calls.append(((*declared, ns.rec + raw), (ns.base, raw, seq)))
        with self._server.failures("delete_where"):
            replies = [int(r) for r in await self._server.eval_many(lua.REMOVE, calls)]
        if any(r >= 2 for r in replies):
            await self._emptied(ns)
        return sum(r & 1 for r in replies)

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        # SCAN for the namespaces' LRU keys (O(keyspace); the prefix is glob-escaped).
        candidates: set[Namespace] = set()
        start = len(self.prefix) + 2
        with self._server.failures("namespaces"):
            client = self._server.client
            async for raw in client.scan_iter(match=namespace_glob(self.prefix), count=1000):
                found = untag(decode_text(raw)[start : -len("}:lru")])
                if found[: len(prefix)] == prefix:
                    candidates.add(found)
        # Which of them hold live records: one size call each, concurrently (not in turn).
        listed = sorted(candidates)
        sizes = await asyncio.gather(*(self.size(ns) for ns in listed))
        return [ns for ns, size in zip(listed, sizes, strict=True) if size]

    # -- HistoryBackend (lua/_archive.lua) -------------------------------------------------

    def _history_arg(self, keep: int, supersedes: int) -> bytes:
        return b"%d %s %d" % (keep, self._max_arg, supersedes)

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        self._check_open("add")
        ns = self._keys(namespace)
        header = put_header(self._max_arg, ttl_ms(entry.ttl), embedder_arg(entry))
        extra = (*(encode_text(k) for k in supersedes), self._history_arg(keep, len(supersedes)))
        try:
            with self._server.failures("add"):
                evicted = await self._server.eval(
                    lua.PUT_VERSIONED,
                    ns,
                    header,
                    put_record(entry),
                    *extra,
                    keys=(ns.rec + encode_text(entry.key),),
                )
        except MemoryBackendError as exc:
            await self._refused(ns, exc, entry.space)
            raise
        return int(evicted)

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        return await self._update(namespace, key, change, keep)

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        self._check_open("history")
        ns = self._keys(namespace)
        server = self._server
        with server.failures("history"):
            if key is None:
                current = await self.scan(namespace)
                reply = await server.eval(lua.HISTORY, ns, b"", b"1")
            else:
                raw = encode_text(key)
                packed = (await server.read(ns, [raw], b"0"))[0]
                current = (
                    [] if packed is None else [self._decoded(namespace, key, packed, "history")]
                )
                reply = await server.eval(lua.HISTORY, ns, raw, b"0")
        out = [Version(r) for r in current]
        now = int(reply[0])
        for i in range(1, len(reply), 2):
            to, packed = bytes(reply[i + 1]).split(b" ", 1)
            record = self._decoded(namespace, decode_text(reply[i]), packed, "history")
            if record.expires_at is None or record.expires_at * 1000 > now:
                out.append(Version(record, int(to) / 1000))
        return out

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        self._check_open("forget")
        if not keys:
            return 0
        ns = self._keys(namespace)
        ttl = b"0" if tombstone_ttl is None else b"%d" % max(1, round(tombstone_ttl * 1000))
        cap = b"%d" % MAX_TOMBSTONES
        with self._server.failures("forget"):
            removed, emptied = await self._server.eval(
                lua.FORGET, ns, ttl, cap, *(encode_text(k) for k in dict.fromkeys(keys))
            )
        if int(emptied):
            await self._emptied(ns)
        return int(removed)

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        self._check_open("import")
        if not versions or keep < 1:
            return 0
        args = restore_args(versions, keep, self._max_arg)
        with self._server.failures("import"):
            return int(await self._server.eval(lua.RESTORE, self._keys(namespace), *args))

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        self._check_open("forget")
        with self._server.failures("forget"):
            reply = await self._server.eval(lua.FORGOTTEN, self._keys(namespace))
        return {decode_text(k) for k in reply}

    # -- compaction and the records API ---------------------------------------------------

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        """Every live record of ``namespace``, oldest write first (recency untouched)."""
        self._check_open("compact")
        ns = self._keys(namespace)
        with self._server.failures("compact"):
            keys = await self._server.eval(lua.LIST, ns, b"keys")
            found = await self._server.fetch(ns, keys, vectors=False)
        out = []
        for raw, fields in zip(keys, found, strict=True):
            record = self._listed(ns, decode_text(raw), fields)
            if record is not None:  # None: deleted between the two calls
                out.append(record)
        out.sort(key=lambda r: r.seq)
        return out

    async def get_vectors(
        self, namespace: Namespace, versions: Sequence[tuple[str, int]]
    ) -> StoredVectors:
        """The vectors stored with the records named by ``(key, write sequence)`` (None where
        the record has none, is gone, or was rewritten since), recency untouched."""
        self._check_open("export")
        ns = self._keys(namespace)
        with self._server.failures("export"):
            found = await self._server.fetch(ns, [encode_text(k) for k, _ in versions], True)
            stored = await self._server.hget(ns.stats, b"sp")
        vectors: builtins.list[Vector | None] = []
        for (_, seq), fields in zip(versions, found, strict=True):
            have, vec = fields[0], fields[3]
            vectors.append(vector_copy(vec) if vec and have == b"%d" % seq else None)
        return StoredVectors(stored_embedder(stored), vectors)

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        """Apply ``plan`` in one script (see ``lua/compact.lua``)."""
        self._check_open("compact")
        ns = self._keys(namespace)
        keys, args = compaction_call(ns.declared(lua.COMPACT), ns.base, ns.rec, plan)
        # The script's work grows with the records it replaces.
        deadline = _script_deadline(self._server.timeout, 20 * len(keys))
        with self._server.failures("compact"):
            reply = await lua.run(self._server.client, lua.COMPACT, keys, args, deadline)
        return [decode_text(k) for k in reply]

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        """A compare-and-set on the record's write sequence (``lua/update.lua``), retried
        while another writer changes the record between the read and the write."""
        return await self._update(namespace, key, change, None)

    async def _update(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int | None
    ) -> Record | None:
        """``update``; with ``keep``, versioned (``lua/update_versioned.lua``)."""
        self._check_open("update")
        script, extra = lua.UPDATE, cast(tuple[bytes, ...], ())
        if keep is not None:
            script, extra = lua.UPDATE_VERSIONED, (self._history_arg(keep, 0),)
        ns = self._keys(namespace)
        server = self._server
        raw = encode_text(key)
        for _ in range(100):
            with server.failures("update"):
                fields = (await server.fetch(ns, [raw], vectors=False))[0]
            try:
                stored = decode_fields(key, fields, parse=True)
            except GarbledRecord as exc:
                raise garbled(server.where, namespace, "update", exc) from exc
            if stored is None:
                return None
            payload = stored.text if change.payload is None else change.payload
            merged = change.merged(stored.metadata)
            args = update_args(change, payload, merged)
            with server.failures("update"):
                reply = await server.eval(
                    script, ns, raw, fields[0], *args, *extra, keys=(ns.rec + raw,)
                )
            if reply is None:
                return None
            if reply == 0:
                continue  # rewritten meanwhile: read it again
            new_seq, created, updated, *rest = reply
            expires = rest[0] if rest else None
            snapshot = stored.value if change.payload is None else change.snapshot
            return Record(
                key,
                payload,
                merged,
                int(new_seq),
                snapshot,
                int(created) / 1000,
                int(updated) / 1000,
                None if expires is None else int(expires) / 1000,
                change.new_index_text(stored.index_text),
            )
        raise refusal(server.where, "update", f"the record under {key!r} kept changing")

    # -- the 0.1.0 layout, and closing ----------------------------------------------------

    async def upgrade_layout(self) -> dict[str, int]:
        """Convert every namespace of this backend's prefix still in the layout of 0.1.0 (one
        string ``P r:<key>`` per record and a server-side search index) to this one, once.

        Stop every 0.1.0 process writing under the prefix first: a record it writes during
        the upgrade may be left in the old layout (run the upgrade again to convert it).
        Each record keeps its value, metadata, vector (as float32), expiry, write sequence
        and recency; its created and updated times become the time of the upgrade (0.1.0
        kept none). The old search index keys are deleted. Safe to run again: namespaces in
        the new layout are left alone.

        Returns:
            ``{"namespaces": converted, "records": converted}``.

        Raises:
            MemoryBackendError: The server failed, or refused a command (SCAN included).
        """
        self._check_open("upgrade")
        with self._server.failures("upgrade"):
            done = await upgrade_prefix(self._server.client, self.prefix)
        self._indexes.clear()
        return done

    async def aclose(self) -> None:
        """Close the client if this backend built it (:meth:`from_url`); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self._server.clients.aclose()
