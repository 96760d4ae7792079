"""``RedisBackend``: records in Redis (or Valkey), shared by processes, with atomic Lua steps.

Usage::

    backend = RedisBackend.from_url("redis://localhost:6379/0", max_size=10_000)
    memory = MemoryPrimitive(backend=backend)

or simply ``MemoryPrimitive(redis_url="redis://localhost:6379/0")``, which also puts an
in-memory :class:`~tta_dev_primitives.memory.backends.fallback.FallbackBackend` in front.

Every operation is one ``EVALSHA`` round trip (batches: one per 1000 records, pipelined),
an atomic Lua script over one namespace: record, LRU order, TTL index, eviction and the
namespace's change log change together or not at all. Search runs in this process, in a
:class:`~tta_dev_primitives.memory.index.SearchIndex` of the namespace (the engine of every
backend) loaded on the namespace's first search and caught up before each search from the
change log, so a search sees every write acknowledged before it began, by any process: one
round trip when nothing changed, then one to read the hits' records
(:mod:`~tta_dev_primitives.memory.backends.redis_index`). Key layout and the scripts are
described in :mod:`~tta_dev_primitives.memory.backends.redis_scripts`. Needs plain Redis
>= 7.0 or Valkey, no modules.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import json
import logging
import re
import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar, cast

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    NoPermissionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import codec
from ..codec import validate_max_size
from ..errors import MemoryBackendError
from ..index import SearchIndex, check_space
from ..records import (
    Entry,
    ListQuery,
    ListResult,
    Namespace,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
)
from ..search import (
    CorpusStats,
    Vector,
    indexed_value,
    normalize_vector,
    prepare_query,
    recency_weight,
)
from . import redis_scripts as lua
from .base import MAX_TOMBSTONES, BackendInfo, CompactionPlan, StoredVectors, Version
from .redis_clients import ClientPerLoop, ServerCheck, fast_packing
from .redis_cluster import CLUSTER_SCHEMES, cluster_client
from .redis_index import (
    DEFAULT_INDEX_BUDGET,
    ChurnedError,
    LocalIndexes,
    NamespaceIndex,
    OldLayoutError,
)
from .redis_query_engine import QueryEngine, SearchEngine, validate_search_engine

__all__ = ["RedisBackend"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_BATCH = 1000  # keys per script call / commands per pipeline flush
_WRONGTYPE = "WRONGTYPE"
_SYNC_KEYS = 2000  # changed records brought by one catch-up round trip
# Records of one group of pipelined calls in an index load. Small groups keep the replies in
# flight small: with 10,000 a 100k-record load left about 45 MB of freed replies in the process.
_LOAD_GROUP = 2_000
_DEFAULT: Any = object()
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# OSError covers the builtin TimeoutError/ConnectionError; RedisClusterException (all nodes
# unreachable, slot not covered) does not derive from RedisError.
_FAILURES = (RedisError, OSError, RedisClusterException)
# Failures meaning "unavailable now, may answer later" (a fallback serves meanwhile); any other
# reply is the server refusing this operation.
_TRANSIENT = (
    ClusterError,  # too many redirections (a slot migrating), CLUSTERDOWN
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    RedisClusterException,
    ClusterDownError,
    ClusterError,
    ReadOnlyError,
    TryAgainError,
)

# What decoding a record another client wrote can raise (bad layout, UTF-8, JSON, base64,
# vector bytes, or nesting too deep for the decoder).
_GARBLED = (ValueError, UnicodeError, struct.error, binascii.Error, RecursionError, IndexError)
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")

RedisClient = aioredis.Redis | aioredis.RedisCluster


def _escape_part(part: str) -> str:
    # "%" first, so the escapes themselves stay unambiguous; ":" separates parts; braces
    # would end (or start) the hash tag. An empty part becomes a lone "%", which no escaped
    # text can be (every other "%" is followed by two hex digits).
    escaped = part.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")
    return escaped or "%"


@lru_cache(maxsize=1024)
def namespace_tag(namespace: Namespace) -> str:
    """The hash tag of ``namespace``: its parts escaped and joined by ``":"``.

    Injective (``("a", "b")`` -> ``a:b``, ``("a:b",)`` -> ``a%3Ab``), never empty and never
    holding a brace, so ``{tag}`` always is the whole hash tag.
    """
    if not namespace:
        return "%%"
    return ":".join(_escape_part(p) for p in namespace)


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _vector_arg(vector: Sequence[float] | Vector | None) -> bytes:
    """A vector as the record hash stores it: unit length, raw little-endian float32."""
    if vector is None:
        return b""
    return normalize_vector(vector).astype("<f4", copy=False).tobytes()


def _vector(data: bytes) -> Vector:
    """A stored vector as a new float32 array."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


_F32 = np.dtype("<f4")


def _vector_view(data: bytes) -> Vector:
    """A stored vector as a read-only view of ``data`` (the index copies it into its
    matrix): no copy of its own, which a load of 100k vectors would pay for each."""
    view = np.frombuffer(data, dtype=_F32)
    return view if view.dtype == np.float32 else view.astype(np.float32)


def _fields(header: bytes, body: bytes) -> builtins.list[bytes | None]:
    """Split strings packed end to end (``lua/fetch.lua``, ``lua/load.lua``): ``header``
    holds their int32 lengths (-1: absent), ``body`` the strings."""
    lens = np.frombuffer(header, dtype="<i4")
    ends = np.cumsum(np.maximum(lens, 0)).tolist()
    return [
        None if size < 0 else body[end - size : end]
        for size, end in zip(lens.tolist(), ends, strict=True)
    ]


def _unpack(header: bytes, body: bytes, width: int) -> builtins.list[tuple[bytes | None, ...]]:
    """The packed fields of records, ``width`` per record."""
    fields = _fields(header, body)
    return [tuple(fields[i : i + width]) for i in range(0, len(fields), width)]


def _record_fields(
    seq: bytes | None,
    value: bytes | None,
    r: bytes | None,
    vec: bytes | None,
    text: bytes | None = None,
) -> tuple[bytes | None, ...]:
    """A record's fields s, v, m, e, x, u, c, t from its hash's s, v, r, e and t
    (``lua/_write.lua`` packs m, x, u and c into r). A malformed r makes it "not a record"
    (s None, v why)."""
    if seq is None or r is None:
        if seq is not None:
            return (None, b"a record hash without its r field", None, None, None, None, None, None)
        return (None, value, None, None, None, None, None, None)
    try:
        created, updated, expires, _, _, meta = r.split(b" ", 5)
    except ValueError:
        why = b"a record hash whose r field is malformed"
        return (None, why, None, None, None, None, None, None)
    x = None if expires == b"-" else expires
    return (seq, value, meta or None, vec, x, updated, created, text)


def _text(data: bytes | None) -> str | None:
    """A record's index text as field ``t`` holds it (None: none)."""
    return None if not data else _s(data)


def _split(header: bytes, body: bytes) -> builtins.list[bytes]:
    """Packed strings none of which is absent (the live keys of ``lua/load.lua``)."""
    return cast(builtins.list[bytes], _fields(header, body))


def _space_arg(entry: Entry) -> bytes:
    """The embedder identity PUT records for a namespace ('' when the entry has none)."""
    space = entry.space
    if space is None or entry.vector is None:
        return b""
    return _b(f"{space[1]}:{space[0]}")


def _stored_space(data: bytes | str | None) -> tuple[str, int] | None:
    """A namespace's embedder as ST field ``sp`` holds it (``<dimensions>:<name>``)."""
    if not data:
        return None
    dims, _, name = (data if isinstance(data, str) else _s(data)).partition(":")
    return name, int(dims)


def _embedder_refused(exc: MemoryBackendError) -> bool:
    return "EMBEDDER " in str(exc)


def _ms(data: bytes | None) -> float | None:
    """Server milliseconds (as the scripts store them) as epoch seconds."""
    return None if data is None else int(data) / 1000


def _untag(tag: str) -> Namespace:
    """The namespace of a :func:`namespace_tag` (its inverse)."""
    if tag == "%%":
        return ()
    parts = []
    for part in tag.split(":"):
        if part == "%":
            parts.append("")
        else:
            text = part.replace("%3A", ":").replace("%7B", "{").replace("%7D", "}")
            parts.append(text.replace("%25", "%"))
    return tuple(parts)


def _ttl_ms(ttl: float | None) -> int:
    if ttl is None:
        return 0
    # Checked before the script runs: a PXAT Redis refuses would fail it after its first
    # writes, leaving a record half written.
    if not ttl <= codec.MAX_TTL_SECONDS:  # NaN fails this too
        raise ValueError(f"ttl must be at most {codec.MAX_TTL_SECONDS} seconds, got {ttl!r}")
    return max(1, round(ttl * 1000))


def _time_ms(t: float | None, arg: str) -> bytes:
    if t is None:
        return b"-"
    if not 0 <= t <= codec.MAX_EPOCH_SECONDS:
        raise ValueError(
            f"{arg} must be epoch seconds from 0 to {codec.MAX_EPOCH_SECONDS}, got {t!r}"
        )
    return b"%d" % round(t * 1000)


def _metadata(data: bytes | None) -> dict[str, Any] | None:
    return codec.decode(_s(data)) if data else None


def _metadata_arg(metadata: Mapping[str, Any] | None) -> bytes:
    # Validated by the primitive already: encode without checking again.
    return b"" if metadata is None else _b(_json(metadata))


class _Space:
    """The keys of one namespace: its base, record-key prefix and each script's declared keys."""

    __slots__ = ("_declared", "base", "rec")

    def __init__(self, base: bytes) -> None:
        self.base = base
        self.rec = base + b"h:"
        self._declared: dict[str, tuple[bytes, ...]] = {}

    def declared(self, script: lua.Script) -> tuple[bytes, ...]:
        keys = self._declared.get(script.name)
        if keys is None:
            keys = self._declared[script.name] = tuple(self.base + k for k in script.keys)
        return keys


class _MapFailures:
    """Context manager raising a client failure as :class:`MemoryBackendError` (from it).

    Stateless, so one instance per operation name serves every call (httpx's
    ``map_httpcore_exceptions`` is the model).
    """

    __slots__ = ("_backend", "_operation")

    def __init__(self, backend: RedisBackend, operation: str) -> None:
        self._backend = backend
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, _FAILURES):
            raise self._backend._error(self._operation, exc) from exc


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
            :mod:`~tta_dev_primitives.memory.backends.redis_query_engine`.

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
        self._first_client = client
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self._close_client = close_client
        self._timeout = timeout
        if search_timeout is not None and not search_timeout > 0:
            raise ValueError(f"search_timeout must be > 0 seconds or None, got {search_timeout!r}")
        # A search's script may run long over a large namespace: it gets its own deadline, so
        # that it is never mistaken for a hung server.
        self._search_timeout = (
            search_timeout
            if timeout is None or search_timeout is None
            else max(timeout, search_timeout)
        )
        self._closed = False
        self._max_arg = b"0" if self.max_size is None else str(self.max_size).encode()
        self._spaces: dict[Namespace, _Space] = {}
        self._mappers: dict[str, _MapFailures] = {}
        host, port = _address(client)
        self._where = f"{host}:{port}" if port is not None else str(host)
        self._clients = ClientPerLoop(client, None, owned=close_client, where=self._where)
        self._check = ServerCheck(self._where)
        # Most namespaces whose key names are kept (the cache is emptied when it is full):
        # a process reading many namespaces keeps a bounded few, not every one it read.
        self.namespace_cache_size = 1024
        self._garbled: set[tuple[bytes, str]] = set()  # undecodable records reported
        self._indexes = LocalIndexes(index_budget)
        self._loading: dict[tuple[asyncio.AbstractEventLoop, bytes], asyncio.Future[Any]] = {}
        # A cluster client fails a command past its connections per node: operations beyond
        # that many wait (per event loop) instead.
        self._cluster_limit = 0
        if isinstance(client, aioredis.RedisCluster):
            limit = client.nodes_manager.connection_kwargs.get("max_connections")
            self._cluster_limit = int(limit) if isinstance(limit, int) and limit > 0 else 100
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._query_engine = QueryEngine(self, validate_search_engine(search_engine), index_budget)
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
        retry = Retry(
            ExponentialWithJitterBackoff(cap=backoff_cap, base=backoff_base),
            retries,
            supported_errors=(RedisConnectionError,),
        )

        # The reply timeout is the backend's (one asyncio.timeout per round trip); the
        # client's own socket_timeout would wrap every write in asyncio.wait_for.
        options: dict[str, Any] = {
            "retry": retry,
            "socket_timeout": None,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            "decode_responses": False,
            **client_options,
        }

        def make_client() -> RedisClient:
            if url.startswith(CLUSTER_SCHEMES):
                # Per node; the backend also holds operations beyond it back (see _limited).
                return cluster_client(url, {"max_connections": max_connections, **options})
            # A blocking pool: past max_connections a command waits for a connection (its
            # wait bounded by the backend's per-call deadline) instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=None, **options
            )
            return aioredis.Redis.from_pool(fast_packing(pool))

        backend = cls(
            make_client(),
            prefix=prefix,
            max_size=max_size,
            close_client=True,
            timeout=socket_timeout,
            search_timeout=search_timeout,
            index_budget=index_budget,
            search_engine=search_engine,
        )
        # Each event loop that uses the backend gets its own client (see redis_clients).
        backend._clients = ClientPerLoop(
            backend._first_client, make_client, owned=True, where=backend._where
        )
        return backend

    @property
    def _client(self) -> RedisClient:
        """The client of the running event loop."""
        return self._clients.current()

    @property
    def server_check_interval(self) -> float:
        """Seconds between checks of the server's eviction policy and run_id (default 60)."""
        return self._check.interval

    @server_check_interval.setter
    def server_check_interval(self, seconds: float) -> None:
        self._check.interval = seconds

    @property
    def server_restarts(self) -> int:
        """How many times the server was seen to restart (its run_id changed), or on a
        Redis Cluster to fail over (another node answered the server check)."""
        return self._check.restarts

    async def _check_server(self) -> None:
        with self._failures("check"):
            await self._check.run(self._client, self._timeout)

    # -- helpers ------------------------------------------------------------------------------

    def _space(self, namespace: Namespace) -> _Space:
        space = self._spaces.get(namespace)
        if space is None:
            space = _Space(_b(f"{self.prefix}:{{{namespace_tag(namespace)}}}:"))
            if len(self._spaces) >= self.namespace_cache_size:
                self._spaces.clear()  # many namespaces: stay bounded (rebuilding one is cheap)
            self._spaces[namespace] = space
        return space

    def key_prefix(self, namespace: Namespace) -> str:
        """The prefix every Redis key of ``namespace`` starts with (``tta:{default}:``)."""
        return _s(self._space(namespace).base)

    def _error(self, operation: str, exc: BaseException) -> MemoryBackendError:
        text = str(exc)
        if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
            why = (
                "permission denied (the ACL user needs the scripting commands EVALSHA and "
                f"SCRIPT LOAD and read/write access to the prefix's keys): {text}"
            )
        elif isinstance(exc, AuthenticationError | AuthorizationError) or text.startswith(
            ("NOAUTH", "WRONGPASS", "invalid username-password")
        ):
            why = f"authentication failed (check the user name and password): {text}"
        elif isinstance(exc, RedisTimeoutError | TimeoutError):
            why = f"timed out: {text}"
        elif isinstance(exc, RedisConnectionError | OSError):
            why = f"cannot connect: {text}"
        else:
            why = f"{type(exc).__name__}: {text}"
        # BUSY (another client's long script), LOADING (a restart loading its data) and
        # MASTERDOWN answer "not now", like a lost connection: outages, not refusals.
        transient = isinstance(exc, _TRANSIENT) or text.startswith(_TRANSIENT_REPLIES)
        if transient:
            self._check.again()  # maybe another server now: check it before trusting it
        return MemoryBackendError(
            f"Redis at {self._where}, {operation}: {why}",
            backend="redis",
            operation=operation,
            transient=transient,
        )

    def _report_garbled(self, base: bytes, key: str, exc: BaseException) -> None:
        """Log once per record that search skipped one it cannot decode."""
        seen = self._garbled
        if (base, key) in seen:
            return
        if len(seen) >= 1024:
            seen.clear()
        seen.add((base, key))
        logger.warning(
            "Redis at %s: search skips the record under key %r (keys %s...), which is not "
            "one this library wrote (overwritten by another client, or garbled): %s: %s",
            self._where,
            key,
            _s(base),
            type(exc).__name__,
            exc,
        )

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise MemoryBackendError(
                "closed: this RedisBackend was closed (aclose()); build a new one",
                backend="redis",
                operation=operation,
                transient=False,  # not an outage: a fallback must not serve in its place
            )

    def _failures(self, operation: str) -> _MapFailures:
        """``with self._failures("add"):`` raises client failures as MemoryBackendError."""
        mapper = self._mappers.get(operation)
        if mapper is None:
            mapper = self._mappers[operation] = _MapFailures(self, operation)
        return mapper

    def _eval(
        self,
        script: lua.Script,
        space: _Space,
        *args: Any,
        keys: Sequence[bytes] = (),
        deadline: Any = _DEFAULT,
    ) -> Awaitable[Any]:
        """Run ``script`` on the namespace ``space``: its declared keys and then ``keys`` in
        ``KEYS``, the base (unless the script finds it in its keys) and then ``args`` in
        ``ARGV``.

        Returns the awaitable of :func:`lua.run` itself (no coroutine of its own: one frame
        less per operation), after the periodic server check when one is due.
        """
        declared = space.declared(script)
        if keys:
            declared = (*declared, *keys)
        timeout = self._timeout if deadline is _DEFAULT else deadline
        if script.base_arg:
            args = (space.base, *args)
        if self._check.due():
            call = self._checked_eval(script, declared, args, timeout)
        else:
            call = lua.run(self._client, script, declared, args, timeout)
        if self._cluster_limit:
            return self._limited(call)
        return call

    def _gated(self, call: Awaitable[_T]) -> Awaitable[_T]:
        """``call`` through :meth:`_limited` on a Redis Cluster (every command a backend
        sends outside its scripts goes through here, or it may find no free connection)."""
        return self._limited(call) if self._cluster_limit else call

    async def _limited(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` once fewer than ``max_connections`` cluster operations are in
        flight in this event loop: redis-py's cluster client refuses a command past its
        per-node connection limit (``MaxConnectionsError``) where a pool would wait."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self._cluster_limit)
        async with gate:
            return await call

    async def _checked_eval(
        self, script: lua.Script, keys: Sequence[bytes], args: Sequence[Any], deadline: Any
    ) -> Any:
        await self._check_server()
        return await lua.run(self._client, script, keys, args, deadline)

    async def _eval_many(
        self,
        script: lua.Script,
        calls: Sequence[tuple[Sequence[bytes], Sequence[Any]]],
        deadline: Any = _DEFAULT,
    ) -> builtins.list[Any]:
        """Run ``script`` once per ``(keys, args)`` call, pipelined, in order."""
        if self._check.due():
            await self._gated(self._check_server())
        timeout = self._timeout if deadline is _DEFAULT else deadline
        call = lua.run_many(self._client, script, calls, timeout)
        if self._cluster_limit:
            return await self._limited(call)  # type: ignore[no-any-return]
        return await call

    def _record(self, namespace: Namespace, key: str, packed: bytes, operation: str) -> Record:
        """The record read under ``key`` (as ``lua/get.lua`` packs it), decoded once (the
        value rides as the snapshot).

        Raises:
            MemoryBackendError: It is not a record this library wrote (another client
                overwrote the key, or it is garbled), naming the key.
        """
        try:
            if packed.startswith(b"! "):
                raise ValueError(f"not a record hash: {_s(packed[2:])}")
            seq, created, updated, expires, _, mlen, rest = packed.split(b" ", 6)
            m = int(mlen)
            index_text = None
            if b":" in seq:  # with an index text, between the metadata and the value
                seq, tlen = seq.split(b":")
                t = m + int(tlen)
                index_text, m = _s(rest[m:t]), t
            text = _s(rest[m:])
            return Record(
                key,
                text,
                _metadata(rest[: int(mlen)]),
                int(seq),
                codec.decode(text),
                int(created) / 1000,
                int(updated) / 1000,
                None if expires == b"-" else int(expires) / 1000,
                index_text,
            )
        except _GARBLED as exc:
            raise self._garbled_error(namespace, key, operation, exc) from exc

    def _garbled_error(
        self, namespace: Namespace, key: str, operation: str, exc: BaseException
    ) -> MemoryBackendError:
        return MemoryBackendError(
            f"Redis at {self._where}, {operation}: the record under key {key!r} of "
            f"namespace {namespace!r} is not one this library wrote (overwritten by "
            f"another client, or garbled): {type(exc).__name__}: {exc}",
            backend="redis",
            operation=operation,
            transient=False,
        )

    def _entry_fields(self, entry: Entry) -> tuple[bytes, bytes, bytes]:
        """A record's value, metadata and vector, as the record hash stores them."""
        return (_b(entry.payload), _metadata_arg(entry.metadata), _vector_arg(entry.vector))

    def _put_record(self, entry: Entry, meta: bytes | None = None) -> bytes:
        """One record's ``PUT`` argument (``lua/put.lua``): its times, the lengths of its
        metadata and vector (and index text), then metadata, vector (index text) and value
        end to end."""
        if meta is None:
            meta = _metadata_arg(entry.metadata)
        vector = _vector_arg(entry.vector)
        if entry.index_text is not None:
            text = _b(entry.index_text)
            return b"%s %s %d %d:%d %s%s%s%s" % (
                _time_ms(entry.created_at, "created_at"),
                _time_ms(entry.updated_at, "updated_at"),
                len(meta),
                len(vector),
                len(text),
                meta,
                vector,
                text,
                _b(entry.payload),
            )
        return b"%s %s %d %d %s%s%s" % (
            _time_ms(entry.created_at, "created_at"),
            _time_ms(entry.updated_at, "updated_at"),
            len(meta),
            len(vector),
            meta,
            vector,
            _b(entry.payload),
        )

    def _put_header(self, ttl: int, space: bytes) -> bytes:
        """``PUT``'s first argument: the bound, the TTL and the embedder of the vectors."""
        if not ttl and not space:
            return self._max_arg  # the bound alone
        return b"%s %d %s" % (self._max_arg, ttl, space)

    async def _read(
        self, space: _Space, keys: Sequence[bytes], touch: bytes
    ) -> builtins.list[bytes | None]:
        """The packed records (``lua/get.lua``) under ``keys``, chunked and pipelined."""
        rec = space.rec
        if len(keys) == 1:
            return [await self._eval(lua.GET, space, touch, keys[0], keys=(rec + keys[0],))]
        calls = [
            (
                tuple(rec + k for k in keys[i : i + _BATCH]),
                (touch, *keys[i : i + _BATCH]),
            )
            for i in range(0, len(keys), _BATCH)
        ]
        out: builtins.list[bytes | None] = []
        for (chunk, _), reply in zip(calls, await self._eval_many(lua.GET, calls), strict=True):
            out.extend(reply if len(chunk) > 1 else [reply])
        return out

    async def _fetch(
        self, space: _Space, keys: Sequence[bytes], vectors: bool
    ) -> builtins.list[Sequence[bytes | None]]:
        """The ``FETCH`` fields (s, v, m, e, x, u, c) of the records under ``keys``, recency
        untouched, chunked and pipelined."""
        if not keys:
            return []
        rec = space.rec
        flag = b"1" if vectors else b"0"
        calls = [
            (tuple(rec + k for k in keys[i : i + _BATCH]), (space.base, flag, b"0"))
            for i in range(0, len(keys), _BATCH)
        ]
        try:
            replies = await self._eval_many(lua.FETCH, calls, self._search_timeout)
        except ResponseError as exc:
            if _WRONGTYPE not in str(exc):
                raise
            # A key of another type among them: again, reporting it instead of failing.
            careful = [(keys, (base, flag, b"1")) for keys, (base, flag, _) in calls]
            replies = await self._eval_many(lua.FETCH, careful, self._search_timeout)
        out: builtins.list[Sequence[bytes | None]] = []
        for reply in replies:
            rows = _unpack(reply[0], reply[1], 4)
            if vectors:  # each vector came as a reply of its own (lua/fetch.lua)
                out.extend(
                    _record_fields(s, v, r, e, t)
                    for (s, v, r, t), e in zip(rows, reply[2:], strict=True)
                )
            else:
                out.extend(_record_fields(s, v, r, None, t) for s, v, r, t in rows)
        return out

    # -- MemoryBackend ------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        return self._info

    async def ping(self) -> None:
        """Check the server answers.

        Raises:
            MemoryBackendError: It does not.
        """
        self._check_open("ping")
        with self._failures("ping"):
            async with asyncio.timeout(self._timeout):
                if isinstance(self._client, aioredis.RedisCluster):
                    # Every master (redis-py asks one node), no replica: a replica down
                    # stops no namespace, a master down stops some.
                    await self._client.ping(target_nodes=aioredis.RedisCluster.PRIMARIES)
                else:
                    await self._client.ping()

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        if self._closed:
            self._check_open("add")
        space = self._spaces.get(namespace) or self._space(namespace)
        key = _b(entry.key)
        header = self._put_header(_ttl_ms(entry.ttl), _space_arg(entry))
        try:
            with self._failures("add"):
                evicted = await self._eval(
                    lua.PUT, space, header, self._put_record(entry), keys=(space.rec + key,)
                )
        except MemoryBackendError as exc:
            if _embedder_refused(exc) and entry.space is not None:
                await self._refuse_embedder(space, entry.space)
            raise
        return int(evicted)

    # -- HistoryBackend (lua/_archive.lua) -------------------------------------------------

    def _history_arg(self, keep: int, supersedes: int) -> bytes:
        return b"%d %s %d" % (keep, self._max_arg, supersedes)

    async def put_versioned(
        self, namespace: Namespace, entry: Entry, keep: int, supersedes: Sequence[str] = ()
    ) -> int:
        self._check_open("add")
        space = self._space(namespace)
        header = self._put_header(_ttl_ms(entry.ttl), _space_arg(entry))
        extra = (*(_b(k) for k in supersedes), self._history_arg(keep, len(supersedes)))
        try:
            with self._failures("add"):
                evicted = await self._eval(
                    lua.PUT_VERSIONED,
                    space,
                    header,
                    self._put_record(entry),
                    *extra,
                    keys=(space.rec + _b(entry.key),),
                )
        except MemoryBackendError as exc:
            if _embedder_refused(exc) and entry.space is not None:
                await self._refuse_embedder(space, entry.space)
            raise
        return int(evicted)

    async def update_versioned(
        self, namespace: Namespace, key: str, change: RecordUpdate, keep: int
    ) -> Record | None:
        return await self._update(namespace, key, change, keep)

    async def history(self, namespace: Namespace, key: str | None) -> builtins.list[Version]:
        self._check_open("history")
        space = self._space(namespace)
        with self._failures("history"):
            if key is None:
                current = await self.scan(namespace)
                reply = await self._eval(lua.HISTORY, space, b"", b"1")
            else:
                raw = _b(key)
                found = await self._read(space, [raw], b"0")
                packed = found[0]
                current = (
                    [] if packed is None else [self._record(namespace, key, packed, "history")]
                )
                reply = await self._eval(lua.HISTORY, space, raw, b"0")
        out = [Version(r) for r in current]
        now = int(reply[0])
        for i in range(1, len(reply), 2):
            to, packed = bytes(reply[i + 1]).split(b" ", 1)
            record = self._record(namespace, _s(reply[i]), packed, "history")
            if record.expires_at is None or record.expires_at * 1000 > now:
                out.append(Version(record, int(to) / 1000))
        return out

    async def forget(
        self, namespace: Namespace, keys: Sequence[str], tombstone_ttl: float | None
    ) -> int:
        self._check_open("forget")
        if not keys:
            return 0
        space = self._space(namespace)
        ttl = b"0" if tombstone_ttl is None else b"%d" % max(1, round(tombstone_ttl * 1000))
        cap = b"%d" % MAX_TOMBSTONES
        with self._failures("forget"):
            removed, emptied = await self._eval(
                lua.FORGET, space, ttl, cap, *(_b(k) for k in dict.fromkeys(keys))
            )
        if int(emptied):
            await self._emptied(space)
        return int(removed)

    async def restore(
        self, namespace: Namespace, versions: Sequence[tuple[Entry, float]], keep: int
    ) -> int:
        self._check_open("import")
        if not versions or keep < 1:
            return 0
        space = self._space(namespace)
        args: builtins.list[bytes] = [b"%d" % keep, self._max_arg]
        for entry, valid_to in versions:
            updated = time.time() if entry.updated_at is None else entry.updated_at
            created = updated if entry.created_at is None else entry.created_at
            args += [
                _b(entry.key),
                b"%d" % round(valid_to * 1000),
                b"%d" % round(created * 1000),
                b"%d" % round(updated * 1000),
                b"%d" % _ttl_ms(entry.ttl),
                _metadata_arg(entry.metadata),
                _b(entry.payload),
                b"" if entry.index_text is None else _b(entry.index_text),
            ]
        with self._failures("import"):
            return int(await self._eval(lua.RESTORE, space, *args))

    async def forgotten(self, namespace: Namespace) -> builtins.set[str]:
        self._check_open("forget")
        with self._failures("forget"):
            reply = await self._eval(lua.FORGOTTEN, self._space(namespace))
        return {_s(k) for k in reply}

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        self._check_open("add_many")
        if not entries:
            return 0
        space = self._space(namespace)
        declared = space.declared(lua.PUT)
        rec = space.rec
        # One script call per run of entries with the same TTL (at most _BATCH entries).
        calls: builtins.list[tuple[Sequence[bytes], Sequence[Any]]] = []
        ttl = _ttl_ms(entries[0].ttl)
        embedder = next((e for e in entries if e.space is not None), entries[0])
        space_arg = _space_arg(embedder)
        run: builtins.list[bytes] = [self._put_header(ttl, space_arg)]
        keys: builtins.list[bytes] = [*declared]
        # add_many gives its entries one metadata object: encode it once, not per record.
        last_meta: Any = _DEFAULT
        meta = b""
        for entry in entries:
            entry_ttl = _ttl_ms(entry.ttl)
            if entry_ttl != ttl or len(run) > _BATCH:
                calls.append((keys, run))
                ttl = entry_ttl
                run = [self._put_header(ttl, space_arg)]
                keys = [*declared]
            if entry.metadata is not last_meta:
                last_meta = entry.metadata
                meta = _metadata_arg(last_meta)
            run.append(self._put_record(entry, meta))
            keys.append(rec + _b(entry.key))
        calls.append((keys, run))
        try:
            with self._failures("add_many"):
                replies = await self._eval_many(lua.PUT, calls)
        except MemoryBackendError as exc:
            if _embedder_refused(exc) and embedder.space is not None:
                await self._refuse_embedder(space, embedder.space)
            raise
        return sum(int(r) for r in replies)

    async def _refuse_embedder(self, space: _Space, new: tuple[str, int]) -> None:
        """Raise the ValueError every backend raises for vectors of another embedder."""
        with self._failures("add"):
            async with asyncio.timeout(self._timeout):
                stored = await self._gated(self._client.hget(space.base + b"st", b"sp"))
        current = _stored_space(stored)
        if current is not None:
            check_space(current, new)  # raises the ValueError naming both

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if self._closed:
            self._check_open("get")
        space = self._spaces.get(namespace) or self._space(namespace)
        raw = _b(key)
        try:
            with self._failures("get"):
                packed = await self._eval(lua.GET, space, b"1", raw, keys=(space.rec + raw,))
        except MemoryBackendError as exc:
            if _WRONGTYPE in str(exc):  # the key holds another type: not a record
                raise self._garbled_error(namespace, key, "get", exc) from exc.__cause__
            raise
        if packed is None:
            return None
        return self._record(namespace, key, packed, "get")

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        self._check_open("get_many")
        if not keys:
            return []
        try:
            with self._failures("get_many"):
                found = await self._read(self._space(namespace), [_b(k) for k in keys], b"1")
        except MemoryBackendError as exc:
            if _WRONGTYPE not in str(exc):
                raise
            for key in keys:  # find the key that holds another type, and name it
                await self.get(namespace, key)
            raise
        out: builtins.list[Record | None] = []
        for key, packed in zip(keys, found, strict=True):
            if packed is None:
                out.append(None)
            else:
                out.append(self._record(namespace, key, packed, "get_many"))
        return out

    async def delete(self, namespace: Namespace, key: str) -> bool:
        self._check_open("delete")
        space = self._space(namespace)
        raw = _b(key)
        with self._failures("delete"):
            done = int(await self._eval(lua.REMOVE, space, raw, keys=(space.rec + raw,)))
        if done >= 2:
            await self._emptied(space)
        return bool(done & 1)

    async def _emptied(self, space: _Space) -> None:
        """A delete left the namespace without records: drop its Query Engine index too (an
        index per namespace ever emptied would grow with the history, not the live data)."""
        if self._query_engine.mode == "local":
            return
        try:
            await self._query_engine.forget(space)
        except MemoryBackendError as exc:  # the delete is done; the next start drops it
            logger.warning(
                "Redis at %s: dropping an emptied namespace's index: %s", self._where, exc
            )

    async def clear(self, namespace: Namespace) -> int:
        self._check_open("clear")
        space = self._space(namespace)
        if self._query_engine.mode != "local":
            # The FT index first: deleting 100k indexed hashes one by one takes minutes.
            await self._query_engine.forget(space)
        with self._failures("clear"):
            count = int(await self._eval(lua.CLEAR, space))
        state = self._indexes.get(space.base)
        if state is not None:
            state.reset(None, 0)
        return count

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        self._check_open("keys")
        with self._failures("keys"):
            reply = await self._eval(lua.LIST, self._space(namespace), b"keys")
        return [_s(k) for k in reply]

    async def size(self, namespace: Namespace) -> int:
        self._check_open("size")
        with self._failures("size"):
            return int(await self._eval(lua.LIST, self._space(namespace), b"size"))

    # -- search: this process's index of the namespace, caught up from its change log ---------

    @property
    def indexes(self) -> LocalIndexes:
        """The search indexes this backend holds in its process (see ``redis_index``)."""
        return self._indexes

    @property
    def query_engine(self) -> QueryEngine:
        """The Redis Query Engine search path (see ``redis_query_engine``)."""
        return self._query_engine

    def churned(self, operation: str, exc: ChurnedError) -> MemoryBackendError:
        """The error of an ``operation`` whose index load kept losing the race with writers:
        transient (try again, or let a fallback serve), never a refusal."""
        return MemoryBackendError(
            f"Redis at {self._where}, {operation}: namespace keys {_s(exc.base)}... changed "
            "faster than they could be loaded, three times (its change log was trimmed, or "
            "the server restarted, meanwhile); try again",
            backend="redis",
            operation=operation,
            transient=True,
        )

    def old_layout(self, operation: str, exc: OldLayoutError) -> MemoryBackendError:
        """The error of an ``operation`` on a namespace still in the 0.1.0 layout."""
        return MemoryBackendError(
            f"Redis at {self._where}, {operation}: namespace keys {_s(exc.base)}... have "
            "the layout of tta-dev-primitives 0.1.0; run `await backend.upgrade_layout()` "
            "once to convert them",
            backend="redis",
            operation=operation,
            transient=False,
        )

    async def _synced(
        self, space: _Space, operation: str = "search"
    ) -> tuple[NamespaceIndex, float]:
        """The namespace's index, caught up with every change acknowledged before the call
        began, and the server's clock (epoch seconds)."""
        try:
            state, now = await self._synced_index(space)
        except ChurnedError as exc:
            raise self.churned(operation, exc) from None
        except OldLayoutError as exc:
            raise self.old_layout(operation, exc) from None
        if state.incarnation is None:
            # No such namespace: holding its empty index would grow with every namespace
            # ever read, not with the live data (its next read loads it again, cheaply).
            self._indexes.drop(space.base)
        return state, now

    async def _synced_index(self, space: _Space) -> tuple[NamespaceIndex, float]:
        state = self._indexes.get(space.base)
        if state is not None and state.restarts != self._check.restarts:
            state = None  # the server restarted: writes may be lost that no log shows
        if state is not None:
            now = await self._catch_up(space, state)
            if now is not None:
                return state, now
        # Concurrent searches of a namespace that is not loaded share one load.
        key = (asyncio.get_running_loop(), space.base)
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(space))
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _catch_up(
        self, space: _Space, state: NamespaceIndex, into: LocalIndexes | None = None
    ) -> float | None:
        """Apply the change log to ``state`` (held by ``into``, this backend's indexes by
        default; round trips until none is left); the server clock, or None when the index
        must be reloaded."""
        changed = False
        while True:
            inc = state.incarnation or b""
            reply = await self._eval(
                lua.SYNC,
                space,
                inc,
                state.last,
                _SYNC_KEYS,
                state.version,
                deadline=self._search_timeout,
            )
            incarnation, upto, last, now_ms, status, embedder, version = reply[:7]
            now = int(now_ms) / 1000
            if status == b"empty":
                if state.incarnation is not None or len(state.index):
                    state.reset(None, 0)
                    changed = True
                break
            if status == b"reload":
                return None
            if status == b"reset":
                # Emptied and begun again since: its whole log follows, no reload needed.
                state.reset(incarnation, 0)
                changed = True
            state.space = _stored_space(embedder)
            if len(reply) > 7:
                rows = (
                    (reply[i], _record_fields(*reply[i + 1 : i + 6]))
                    for i in range(7, len(reply), 6)
                )
                self._apply(space, state, rows)
                changed = True
            state.last = int(upto)
            state.version = version or b""
            if state.last >= int(last):
                break
        if changed:
            (self._indexes if into is None else into).measure(space.base, state)
        return now

    def _apply(
        self,
        space: _Space,
        state: NamespaceIndex,
        rows: Iterable[tuple[bytes, Sequence[bytes | None]]],
    ) -> None:
        """Index ``(key, fields)`` rows, fields s, v, m, e, x, u, c, t (as ``SYNC`` and
        ``FETCH`` give them); s and v None: the key has no record."""
        index = state.index
        updated = state.updated
        batch = []
        for raw, fields in rows:
            seq, value, meta, vec, expires, when = fields[:6]
            key = _s(raw)
            if seq is None and value is None:
                index.remove(key)
                updated.pop(key, None)
                continue
            try:
                if seq is None or value is None:
                    raise ValueError("not a record hash" if value is None else _s(value))
                batch.append(
                    (
                        key,
                        int(seq),
                        indexed_value(codec.decode(_s(value)), _text(fields[7])),
                        _metadata(meta),
                        _ms(expires),
                        None if not vec else _vector_view(vec),
                    )
                )
            except _GARBLED as exc:
                self._report_garbled(space.base, key, exc)
                index.remove(key)
                updated.pop(key, None)
                continue
            updated[key] = int(when or 0) / 1000
        if batch:
            try:
                index.upsert_many(batch)
            except ValueError:  # vectors of another length than the index's: one by one
                for record in batch:
                    try:
                        index.upsert_many([record])
                    except ValueError as exc:
                        self._report_garbled(space.base, record[0], exc)
                        index.remove(record[0])

    async def _load_records(
        self, space: _Space, state: NamespaceIndex, keys: Sequence[bytes], vectors: bool
    ) -> None:
        """Fetch the records under ``keys`` into ``state``'s index, a group at a time: the
        next group's calls are sent before this one is indexed, so the server reads them
        while the client tokenizes (its time hidden behind the client's, not added)."""
        groups = [keys[i : i + _LOAD_GROUP] for i in range(0, len(keys), _LOAD_GROUP)]
        pending = asyncio.ensure_future(self._fetch(space, groups[0], vectors))
        try:
            for i, group in enumerate(groups):
                found = await pending
                if i + 1 < len(groups):
                    pending = asyncio.ensure_future(self._fetch(space, groups[i + 1], vectors))
                    await asyncio.sleep(0)  # let it send its calls before we index
                self._apply(space, state, zip(group, found, strict=True))
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def _load(
        self,
        space: _Space,
        attempts: int = 3,
        *,
        into: LocalIndexes | None = None,
        new_index: Callable[[], SearchIndex] = SearchIndex,
        vectors: bool = True,
    ) -> tuple[NamespaceIndex, float]:
        """Build the namespace's index (``new_index()``, held by ``into``: this backend's
        indexes by default) from a full load, then catch it up with the log, loading again
        (at most ``attempts`` times in all) when the log shows a gap."""
        into = self._indexes if into is None else into
        reply = await self._eval(lua.LOAD, space, deadline=self._search_timeout)
        incarnation, last, _, old, embedder = reply[:5]
        if int(old):
            raise OldLayoutError(space.base)
        keys = _split(reply[5], reply[6])
        state = NamespaceIndex(index=new_index(), incarnation=incarnation, last=int(last))
        state.version = reply[7] or b""
        state.space = _stored_space(embedder)
        state.restarts = self._check.restarts
        if keys:
            await self._load_records(space, state, keys, vectors)
        into.put(space.base, state)
        now = await self._catch_up(space, state, into)
        if now is None:
            # The log lost entries while the records were read (trimmed past a namespace
            # written faster than it loads, or another incarnation began): again.
            into.drop(space.base)
            if attempts <= 1:
                raise ChurnedError(space.base)
            return await self._load(
                space, attempts - 1, into=into, new_index=new_index, vectors=vectors
            )
        return state, now

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        self._check_open("search")
        prepared = prepare_query(query.text)
        if prepared is None:
            return []
        space = self._space(namespace)
        if self._query_engine.mode != "local":
            engine = await self._query_engine.search(space, prepared, query)
            if engine is not None:
                return engine
        with self._failures("search"):
            try:
                state, now = await self._synced(space)
            except TimeoutError as exc:
                # A load that outlasts its deadline is the search's cost, not a dead server
                # (which the next operation would find out): a refusal, never an outage.
                raise MemoryBackendError(
                    f"Redis at {self._where}, search: took longer than search_timeout="
                    f"{self._search_timeout}s (loading a large namespace's index); "
                    "not taken for an outage",
                    backend="redis",
                    operation="search",
                    transient=False,
                ) from exc
        index = state.index
        index.expire(now)
        vector = query.vector
        if vector is not None and query.space is not None and state.space is not None:
            check_space(state.space, query.space)  # another embedder's vectors: ValueError
        recency = None
        if query.recency_half_life is not None:
            half_life = query.recency_half_life
            updated = state.updated

            def recency(key: str) -> float:
                return recency_weight(now - updated.get(key, now), half_life)

        scored = index.rank(prepared, query, recency)
        if not scored:
            return []
        raws = [_b(key) for _, _, key in scored]
        with self._failures("search"):
            found = await self._fetch(space, raws, vectors=False)
        results = []
        for (score, _, key), fields in zip(scored, found, strict=True):
            seq, value, meta = fields[0], fields[1], fields[2]
            if seq is None or value is None:
                continue  # deleted since the index caught up
            try:
                text = _s(value)
                codec.decode(text)
                metadata = _metadata(meta)
            except _GARBLED as exc:
                self._report_garbled(space.base, key, exc)
                continue
            results.append(SearchResult(key, text, score, metadata))
        return results

    async def search_stats(self, namespace: Namespace, query: SearchQuery) -> CorpusStats:
        """The namespace's BM25 statistics for the query's words, from the statistics of the
        path that answers its searches (the Query Engine's, or the local index's)."""
        self._check_open("search")
        prepared = prepare_query(query.text)
        if prepared is None:
            return CorpusStats(0, 0, {})
        space = self._space(namespace)
        engine = await self._query_engine.corpus_stats(space, prepared)
        if engine is not None:
            return engine
        with self._failures("search"):
            state, now = await self._synced(space)
        state.index.expire(now)
        return state.index.corpus_stats(prepared)

    # -- compaction and the records API ---------------------------------------------------

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        """Every live record of ``namespace``, oldest write first (recency untouched)."""
        self._check_open("compact")
        space = self._space(namespace)
        with self._failures("compact"):
            keys = await self._eval(lua.LIST, space, b"keys")
            found = await self._fetch(space, keys, vectors=False)
        out = []
        for raw, fields in zip(keys, found, strict=True):
            record = self._fetched(namespace, _s(raw), fields, "compact")
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
        space = self._space(namespace)
        with self._failures("export"):
            found = await self._fetch(space, [_b(k) for k, _ in versions], vectors=True)
            async with asyncio.timeout(self._timeout):
                stored = await self._gated(self._client.hget(space.base + b"st", b"sp"))
        vectors: builtins.list[Vector | None] = []
        for (_, seq), fields in zip(versions, found, strict=True):
            have, vec = fields[0], fields[3]
            vectors.append(_vector(vec) if vec and have == b"%d" % seq else None)
        return StoredVectors(_stored_space(stored), vectors)

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        """Apply ``plan`` in one script (see ``lua/compact.lua``)."""
        self._check_open("compact")
        space = self._space(namespace)
        rec = space.rec
        delete = set(plan.delete)
        rewrite = {e.key: e for e in plan.rewrite}
        keys: builtins.list[bytes] = [*space.declared(lua.COMPACT)]
        args: builtins.list[Any] = [space.base, len(plan.expected)]
        for key, seq in plan.expected.items():
            keys.append(rec + _b(key))
            entry = rewrite.get(key)
            if entry is not None:
                args += (seq, b"w", *self._entry_fields(entry))
            else:
                args += (seq, b"d" if key in delete else b"-", b"", b"", b"")
        insert = plan.insert
        if insert is not None:
            keys.append(rec + _b(insert.key))
            args += (_ttl_ms(insert.ttl), *self._entry_fields(insert))
        # The script's work grows with the records it replaces.
        deadline = _index_timeout(self._timeout, 20 * len(keys))
        with self._failures("compact"):
            reply = await lua.run(self._client, lua.COMPACT, keys, args, deadline)
        return [_s(k) for k in reply]

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
        space = self._space(namespace)
        raw = _b(key)
        rkey = space.rec + raw
        for _ in range(100):
            with self._failures("update"):
                found = await self._fetch(space, [raw], vectors=False)
            seq, value, meta, text = found[0][0], found[0][1], found[0][2], found[0][7]
            if seq is None and value is None:
                return None
            try:
                if seq is None or value is None:
                    raise ValueError("not a record hash" if value is None else _s(value))
                stored = _s(value)
                codec.decode(stored)
                stored_meta = _metadata(meta)
            except _GARBLED as exc:
                raise self._garbled_error(namespace, key, "update", exc) from exc
            payload = stored if change.payload is None else change.payload
            merged = change.merged(stored_meta)
            if change.payload is None:
                vec_mode, vec = b"k", b""
            elif change.vector is None:
                vec_mode, vec = b"n", b""
            else:
                vec_mode, vec = b"s", _vector_arg(change.vector)
            expiry = str(_ttl_ms(change.ttl)).encode() if change.set_ttl else b"k"
            index_text = change.new_index_text(_text(text))
            text_arg = b"s" + _b(index_text or "") if change.set_index_text else b"k"
            with self._failures("update"):
                reply = await self._eval(
                    script,
                    space,
                    raw,
                    seq,
                    _b(payload),
                    _metadata_arg(merged),
                    vec_mode,
                    vec,
                    expiry,
                    text_arg,
                    *extra,
                    keys=(rkey,),
                )
            if reply is None:
                return None
            if reply == 0:
                continue  # rewritten meanwhile: read it again
            new_seq, created, updated, *rest = reply
            expires = rest[0] if rest else None
            snapshot = codec.decode(payload) if change.payload is None else change.snapshot
            return Record(
                key,
                payload,
                merged,
                int(new_seq),
                snapshot,
                int(created) / 1000,
                int(updated) / 1000,
                None if expires is None else int(expires) / 1000,
                index_text,
            )
        raise MemoryBackendError(
            f"Redis at {self._where}, update: the record under {key!r} kept changing",
            backend="redis",
            operation="update",
            transient=False,
        )

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        """A page in write order from this process's index of the namespace (caught up from
        the change log first, like a search), then the page's records from Redis: the
        namespace is read once (its index load), never per page."""
        self._check_open("list")
        space = self._space(namespace)
        with self._failures("list"):
            state, now = await self._synced(space, "list")
        index = state.index
        index.expire(now)
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
            with self._failures("list"):
                found = await self._fetch(space, [_b(k) for _, k in page], vectors=False)
            for (seq, key), fields in zip(page, found, strict=True):
                record = self._fetched(namespace, key, fields, "list")
                # None or another seq: deleted, or rewritten past the walk's horizon, since
                # the index caught up.
                if record is not None and record.seq == seq:
                    out.append(record)
            if len(out) == limit or not more:
                return ListResult(out, horizon, more)
            after = page[-1][0]

    def _fetched(
        self, namespace: Namespace, key: str, fields: Sequence[bytes | None], operation: str
    ) -> Record | None:
        """The record of ``FETCH`` fields (s, v, m, e, x, u, c, t), None when there is none;
        a record this library did not write is reported and skipped."""
        seq, value, meta, _, expires, updated, created, text = fields
        if seq is None and value is None:
            return None
        try:
            if seq is None or value is None:
                raise ValueError("not a record hash" if value is None else _s(value))
            return Record(
                key,
                _s(value),
                _metadata(meta),
                int(seq),
                codec.NO_SNAPSHOT,
                int(created or 0) / 1000,
                int(updated or 0) / 1000,
                _ms(expires),
                _text(text),
            )
        except _GARBLED as exc:
            self._report_garbled(self._space(namespace).base, key, exc)
            return None

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        """Delete the matching records found in this process's index of the namespace, each
        only if it still is the version indexed (a record rewritten meanwhile is judged by
        its new metadata at the next call, not deleted for its old one); pipelined."""
        self._check_open("delete_where")
        space = self._space(namespace)
        with self._failures("delete_where"):
            state, now = await self._synced(space, "delete_where")
        index = state.index
        index.expire(now)
        matching = index.matching(filter)
        if not matching:
            return 0
        declared = space.declared(lua.REMOVE)
        calls = [
            ((*declared, space.rec + _b(key)), (space.base, _b(key), seq)) for seq, key in matching
        ]
        with self._failures("delete_where"):
            replies = [int(r) for r in await self._eval_many(lua.REMOVE, calls)]
        if any(r >= 2 for r in replies):
            await self._emptied(space)
        return sum(r & 1 for r in replies)

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        # SCAN for the namespaces' LRU keys (O(keyspace); the prefix is glob-escaped).
        glob = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix)
        candidates: set[Namespace] = set()
        try:
            async for raw in self._client.scan_iter(match=f"{glob}:{{*}}:lru", count=1000):
                text = _s(raw)
                tag = text[len(self.prefix) + 2 : -len("}:lru")]
                ns = _untag(tag)
                if ns[: len(prefix)] == prefix:
                    candidates.add(ns)
        except _FAILURES as exc:
            raise self._error("namespaces", exc) from exc
        # Which of them hold live records: one size call each, concurrently (not in turn).
        listed = sorted(candidates)
        sizes = await asyncio.gather(*(self.size(ns) for ns in listed))
        return [ns for ns, size in zip(listed, sizes, strict=True) if size]

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
        glob = re.sub(rb"([*?\[\]\\])", rb"\\\1", _b(self.prefix))
        converted = records = 0
        with self._failures("upgrade"):
            bases = set()
            async for raw in self._client.scan_iter(match=glob + b":{*}:lru", count=1000):
                bases.add(bytes(raw)[: -len(b"lru")])
            for base in sorted(bases):
                count = await self._upgrade_namespace(base)
                if count >= 0:
                    converted += 1
                    records += count
        self._indexes.clear()
        return {"namespaces": converted, "records": records}

    async def _upgrade_namespace(self, base: bytes) -> int:
        """Convert one namespace; -1 when it is not in the old layout."""
        client: Any = self._client  # raw commands on bytes keys (redis-py's stubs want str)
        old_marks = await client.exists(base + b"q", base + b"d", base + b"voc")
        pairs = await client.zrange(base + b"lru", 0, -1, withscores=True)
        keys = [bytes(k) for k, _ in pairs]
        olds = []
        for i in range(0, len(keys), _BATCH):
            pipe = client.pipeline(transaction=False)
            for key in keys[i : i + _BATCH]:
                pipe.get(base + b"r:" + key)
                pipe.pexpiretime(base + b"r:" + key)
            replies = await pipe.execute()
            olds += [(replies[j], replies[j + 1]) for j in range(0, len(replies), 2)]
        if not old_marks and not any(rec for rec, _ in olds):
            return -1
        now = await client.time()
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
        count = 0
        for i in range(0, len(keys), _BATCH):
            pipe = client.pipeline(transaction=True)
            for key, (rec, at) in zip(keys[i : i + _BATCH], olds[i : i + _BATCH], strict=True):
                if rec is None:
                    continue
                seq, mlen, vlen, rest = bytes(rec).split(b":", 3)
                m, v = int(mlen), int(mlen) + int(vlen)
                expires = at is not None and int(at) >= 0
                fields: dict[bytes, bytes | int] = {
                    b"s": int(seq),
                    b"v": rest[v:],
                    # As lua/_write.lua packs it: times, expiry, vector or not, metadata.
                    b"r": b"%d %d %s %d %d %s"
                    % (now_ms, now_ms, b"%d" % int(at) if expires else b"-", v > m, m, rest[:m]),
                }
                if v > m:
                    raw = base64.b64decode(rest[m:v])
                    fields[b"e"] = _vector_arg(struct.unpack(f"<{len(raw) // 8}d", raw))
                pipe.delete(base + b"h:" + key)
                pipe.hset(base + b"h:" + key, mapping=fields)
                if expires:
                    pipe.pexpireat(base + b"h:" + key, int(at))
                pipe.delete(base + b"r:" + key)
                count += 1
            await pipe.execute()
        # The old search index: its fixed keys, then postings and trigram sets by vocabulary.
        vocab = [bytes(t) for t in await client.smembers(base + b"voc")]
        doomed = [base + k for k in (b"q", b"d", b"t", b"l", b"voc", b"long")]
        for term in vocab:
            doomed.append(base + b"p:" + term)
            if len(term) <= 64:
                doomed += [base + b"g:" + term[j : j + 3] for j in range(len(term) - 2)]
        for i in range(0, len(doomed), _BATCH):
            await client.unlink(*doomed[i : i + _BATCH])
        t = await client.time()
        pipe = client.pipeline(transaction=True)
        pipe.hdel(base + b"st", b"n", b"len")
        pipe.hset(base + b"st", mapping={b"i": f"{t[0]}.{t[1]}u", b"g": 1})
        pipe.delete(base + b"log")
        pipe.xadd(base + b"log", {b"u": b""}, id=b"1-0")
        await pipe.execute()
        return count

    async def aclose(self) -> None:
        """Close the client if this backend built it (:meth:`from_url`); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self._clients.aclose()


def _index_timeout(timeout: float | None, terms: int) -> float | None:
    # A script's work grows with what it touches: allow for it on top of the usual wait.
    return None if timeout is None else timeout + terms * 1e-5


def _address(client: RedisClient) -> tuple[str, int | None]:
    if isinstance(client, aioredis.RedisCluster):
        # Before the first command the cluster is not discovered yet: use a startup node.
        startup = client.nodes_manager.startup_nodes.values()
        node = client.get_default_node() or next(iter(startup), None)
        if node is not None:
            return str(node.host), int(node.port)
        return "unknown", None
    kwargs: Mapping[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"]), None
    return str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379))
