"""``RedisBackend``: records in Redis (or Valkey), shared by processes, with atomic Lua steps.

Usage::

    backend = RedisBackend.from_url("redis://localhost:6379/0", max_size=10_000)
    memory = MemoryPrimitive(backend=backend)

or simply ``MemoryPrimitive(redis_url="redis://localhost:6379/0")``, which also puts an
in-memory :class:`~tta_dev_primitives.memory.backends.fallback.FallbackBackend` in front.

Every operation is one ``EVALSHA`` round trip (batches: one per 1000 records, pipelined),
an atomic Lua script over one namespace: value, LRU order, TTL index, eviction and search
bookkeeping change together or not at all. Writes cost O(1) commands on the server; the
search index catches up at the next search, which hands the records written since to the
client to tokenize with the shared search module and indexes them before it ranks (one
extra round trip per 200 such records). Key layout and the scripts are described in
:mod:`~tta_dev_primitives.memory.backends.redis_scripts`. Needs plain Redis >= 7.0 or
Valkey, no modules.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import json
import logging
import re
import struct
from collections.abc import Awaitable, Mapping, Sequence
from functools import lru_cache
from types import TracebackType
from typing import Any

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
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import codec
from ..codec import validate_max_size
from ..errors import MemoryBackendError
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
    BM25_B,
    BM25_K1,
    SUBSTRING_BONUS,
    Candidate,
    Document,
    KeywordQuery,
    Scored,
    keyword_bound,
    make_document,
    matches_filter,
    normalize_vector,
    prepare_query,
    rank_by_mode,
    rank_keyword,
    rank_semantic,
)
from . import redis_scripts as lua
from .base import BackendInfo, CompactionPlan
from .redis_clients import ClientPerLoop, ServerCheck
from .redis_cluster import CLUSTER_SCHEMES, cluster_client

__all__ = ["RedisBackend"]

logger = logging.getLogger(__name__)

_BATCH = 1000  # keys per script call / commands per pipeline flush
_INDEX_TERMS = 20_000  # terms indexed per script call (about 0.1 s of server time)
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


@lru_cache(maxsize=4096)
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


def _terms_arg(doc: Document) -> bytes:
    return _b(" ".join([f"{term} {tf}" for term, tf in doc.terms.items()]))


def _parse(rec: bytes) -> tuple[int, bytes, bytes, bytes]:
    """Split a stored record into (seq, metadata JSON, base64 vector, payload JSON)."""
    seq, mlen, vlen, rest = rec.split(b":", 3)
    m = int(mlen)
    v = m + int(vlen)
    return int(seq), rest[:m], rest[m:v], rest[v:]


def _leaves_arg(doc: Document) -> bytes:
    parts = []
    for leaf in doc.leaves:
        if leaf:
            data = _b(leaf)
            parts.append(b"%d:%s" % (len(data), data))
    return b"".join(parts)


def _vector_arg(vector: Sequence[float] | None) -> bytes:
    if vector is None:
        return b""
    return base64.b64encode(struct.pack(f"<{len(vector)}d", *vector))


def _vector(data: bytes) -> tuple[float, ...]:
    raw = base64.b64decode(data)
    return struct.unpack(f"<{len(raw) // 8}d", raw)


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
    return 0 if ttl is None else max(1, round(ttl * 1000))


def _metadata(data: bytes) -> dict[str, Any] | None:
    return codec.decode(_s(data)) if data else None


def _metadata_arg(metadata: Mapping[str, Any] | None) -> bytes:
    # Validated by the primitive already: encode without checking again.
    return b"" if metadata is None else _b(_json(metadata))


class _Space:
    """The keys of one namespace: its base, record-key prefix and each script's declared keys."""

    __slots__ = ("_declared", "base", "rec")

    def __init__(self, base: bytes) -> None:
        self.base = base
        self.rec = base + b"r:"
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
        search_timeout: Seconds a search's script call may take (default 30; at least
            ``timeout``). A search past it raises a non-transient :class:`MemoryBackendError`:
            a slow search is never taken for an outage.

    Raises:
        TypeError: ``client`` is not a redis.asyncio client, or ``prefix`` is not a str.
        ValueError: ``prefix`` is empty or holds a brace; the client decodes responses.
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
        # Most namespaces whose key names are kept (the cache is emptied when it is full).
        self.namespace_cache_size = 4096
        self._garbled: set[tuple[bytes, str]] = set()  # undecodable records reported
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
            search_timeout: Seconds a search's script call may take (see the class).
            max_connections: Most connections open at once (standalone servers; a cluster
                client opens what it needs per node). More
                concurrent operations than this wait for a free connection, within their own
                ``socket_timeout``, rather than fail (redis-py's default pool refuses the
                101st concurrent command with "Too many connections").
            client_options: More ``redis.asyncio.from_url`` options (``ssl_ca_certs``, ...).

        Raises:
            TypeError: ``url`` is not a str.
            ValueError: ``url`` is not a Redis URL.
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
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
                return cluster_client(url, options)
            # A blocking pool: past max_connections a command waits for a connection (its
            # wait bounded by the backend's per-call deadline) instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=None, **options
            )
            return aioredis.Redis.from_pool(pool)

        backend = cls(
            make_client(),
            prefix=prefix,
            max_size=max_size,
            close_client=True,
            timeout=socket_timeout,
            search_timeout=search_timeout,
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
        """How many times the server was seen to restart (its run_id changed)."""
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

    def _record(self, namespace: Namespace, key: str, rec: bytes, operation: str) -> Record:
        """The record read under ``key``, decoded once (the value rides as the snapshot).

        Raises:
            MemoryBackendError: It is not a record this library wrote (another client
                overwrote the key, or it is garbled), naming the key.
        """
        try:
            seq, meta, _, payload = _parse(rec)
            text = _s(payload)
            return Record(key, text, _metadata(meta), seq, codec.decode(text))
        except _GARBLED as exc:
            raise MemoryBackendError(
                f"Redis at {self._where}, {operation}: the record under key {key!r} of "
                f"namespace {namespace!r} is not one this library wrote (overwritten by "
                f"another client, or garbled): {type(exc).__name__}: {exc}",
                backend="redis",
                operation=operation,
                transient=False,
            ) from exc

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
        deadline: Any = _DEFAULT,
    ) -> Awaitable[Any]:
        """Run ``script`` on the namespace ``space`` (its declared keys, then ``args``).

        Returns the awaitable of :func:`lua.run` itself (no coroutine of its own: one frame
        less per operation), after the periodic server check when one is due.
        """
        keys = space.declared(script)
        timeout = self._timeout if deadline is _DEFAULT else deadline
        if self._check.due():
            return self._checked_eval(script, keys, (space.base, *args), timeout)
        return lua.run(self._client, script, keys, (space.base, *args), timeout)

    async def _checked_eval(
        self, script: lua.Script, keys: Sequence[bytes], args: Sequence[Any], deadline: Any
    ) -> Any:
        await self._check_server()
        return await lua.run(self._client, script, keys, args, deadline)

    async def _eval_many(
        self, script: lua.Script, calls: Sequence[tuple[Sequence[bytes], Sequence[Any]]]
    ) -> builtins.list[Any]:
        """Run ``script`` once per ``(keys, args)`` call, pipelined, in order."""
        if self._check.due():
            await self._check_server()
        return await lua.run_many(self._client, script, calls, self._timeout)

    def _body(self, entry: Entry, meta: bytes | None = None) -> bytes:
        if meta is None:
            meta = _metadata_arg(entry.metadata)
        vector = entry.vector
        vec = b"" if vector is None else _vector_arg(normalize_vector(vector).tolist())
        return b"%d:%d:%s%s%s" % (len(meta), len(vec), meta, vec, _b(entry.payload))

    async def _records(
        self, space: _Space, keys: Sequence[bytes], touch: bytes
    ) -> builtins.list[bytes | None]:
        """The raw records under ``keys`` (GET script, chunked and pipelined)."""
        if len(keys) == 1:
            return [await self._eval(lua.GET, space, touch, keys[0])]
        declared = space.declared(lua.GET)
        calls = [
            (declared, (space.base, touch, *keys[i : i + _BATCH]))
            for i in range(0, len(keys), _BATCH)
        ]
        out: builtins.list[bytes | None] = []
        replies = await self._eval_many(lua.GET, calls)
        for (_, args), reply in zip(calls, replies, strict=True):
            out.extend(reply if len(args) > 3 else [reply])
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
        body = self._body(entry)
        with self._failures("add"):
            ttl = _ttl_ms(entry.ttl)
            evicted = await self._eval(lua.PUT, space, self._max_arg, ttl, _b(entry.key), body)
        return int(evicted)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        self._check_open("add_many")
        if not entries:
            return 0
        space = self._space(namespace)
        declared = space.declared(lua.PUT)
        # One script call per run of entries with the same TTL (at most _BATCH entries).
        calls: builtins.list[tuple[Sequence[bytes], Sequence[Any]]] = []
        run: builtins.list[bytes] = []
        ttl = _ttl_ms(entries[0].ttl)
        # add_many gives its entries one metadata object: encode it once, not per record.
        last_meta: Any = _DEFAULT
        meta = b""
        for entry in entries:
            entry_ttl = _ttl_ms(entry.ttl)
            if entry_ttl != ttl or len(run) >= 2 * _BATCH:
                calls.append((declared, (space.base, self._max_arg, ttl, *run)))
                run = []
                ttl = entry_ttl
            if entry.metadata is not last_meta:
                last_meta = entry.metadata
                meta = _metadata_arg(last_meta)
            run += (_b(entry.key), self._body(entry, meta))
        calls.append((declared, (space.base, self._max_arg, ttl, *run)))
        with self._failures("add_many"):
            replies = await self._eval_many(lua.PUT, calls)
        return sum(int(r) for r in replies)

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        if self._closed:
            self._check_open("get")
        space = self._spaces.get(namespace) or self._space(namespace)
        with self._failures("get"):
            rec = await self._eval(lua.GET, space, b"1", _b(key))
        if rec is None:
            return None
        return self._record(namespace, key, rec, "get")

    async def get_many(
        self, namespace: Namespace, keys: Sequence[str]
    ) -> builtins.list[Record | None]:
        self._check_open("get_many")
        if not keys:
            return []
        with self._failures("get_many"):
            recs = await self._records(self._space(namespace), [_b(k) for k in keys], b"1")
        out: builtins.list[Record | None] = []
        for key, rec in zip(keys, recs, strict=True):
            if rec is None:
                out.append(None)
            else:
                out.append(self._record(namespace, key, rec, "get_many"))
        return out

    async def delete(self, namespace: Namespace, key: str) -> bool:
        self._check_open("delete")
        with self._failures("delete"):
            return bool(await self._eval(lua.REMOVE, self._space(namespace), _b(key)))

    async def clear(self, namespace: Namespace) -> int:
        self._check_open("clear")
        with self._failures("clear"):
            return int(await self._eval(lua.CLEAR, self._space(namespace)))

    async def keys(self, namespace: Namespace) -> builtins.list[str]:
        self._check_open("keys")
        with self._failures("keys"):
            reply = await self._eval(lua.LIST, self._space(namespace), b"keys")
        return [_s(k) for k in reply]

    async def size(self, namespace: Namespace) -> int:
        self._check_open("size")
        with self._failures("size"):
            return int(await self._eval(lua.LIST, self._space(namespace), b"size"))

    async def search(self, namespace: Namespace, query: SearchQuery) -> builtins.list[SearchResult]:
        self._check_open("search")
        prepared = prepare_query(query.text)
        if prepared is None:
            return []
        space = self._space(namespace)
        base = space.base
        mode = query.mode
        records: dict[str, bytes] = {}
        with self._failures("search"):
            try:
                keyword: builtins.list[Scored] = []
                bound: builtins.list[float] = []  # the query's keyword_bound, for hybrid fusion
                semantic: builtins.list[Scored] = []
                if mode != "semantic":
                    keyword = await self._keyword(space, prepared, query, records, bound)
                if mode != "keyword" and query.vector is not None:
                    semantic = await self._semantic(space, query, records)
                scored = rank_by_mode(
                    mode,
                    query.limit,
                    lambda _: keyword,
                    lambda _: semantic,
                    fusion=query.fusion,
                    semantic_weight=query.semantic_weight,
                    keyword_bound=lambda: bound[0],
                )
                missing = [_b(key) for _, _, key in scored if key not in records]
                if missing:  # hybrid: a keyword hit the semantic scan did not see
                    found = await self._records(space, missing, b"0")
                    for raw, rec in zip(missing, found, strict=True):
                        if rec is not None:
                            records[_s(raw)] = rec
            except TimeoutError as exc:
                # A search that outlasts its deadline is the search's cost, not a dead server
                # (which the next operation would find out): a refusal, never an outage.
                raise MemoryBackendError(
                    f"Redis at {self._where}, search: took longer than search_timeout="
                    f"{self._search_timeout}s (a broad query over a large namespace); "
                    "not taken for an outage",
                    backend="redis",
                    operation="search",
                    transient=False,
                ) from exc
        results = []
        for score, _, key in scored:
            rec = records.get(key)
            if rec is not None:  # None: deleted since it was ranked
                try:
                    _, meta, _, payload = _parse(rec)
                    text = _s(payload)
                    codec.decode(text)
                    metadata = _metadata(meta)
                except _GARBLED as exc:
                    self._report_garbled(base, key, exc)
                    continue
                results.append(SearchResult(key, text, score, metadata))
        return results

    async def _keyword(
        self,
        space: _Space,
        prepared: KeywordQuery,
        query: SearchQuery,
        records: dict[str, bytes],
        bound: builtins.list[float],
    ) -> builtins.list[Scored]:
        terms = prepared.terms
        # Without a filter, keyword mode needs only the records that can reach the top
        # `limit`; hybrid fuses the whole ranking.
        only_top = query.mode == "keyword" and not query.filter
        with_records = query.mode == "keyword" or bool(query.filter)
        fixed = (
            str(query.limit).encode() if only_top else b"0",
            b"1" if only_top else b"0",
            b"1" if with_records else b"0",
            # A one-word query that is the word itself is held by every record containing a
            # word that contains it: no need to read their leaves.
            b"1" if terms == (prepared.text,) else b"0",
        )
        tail = (
            repr(BM25_K1),
            repr(BM25_B),
            repr(SUBSTRING_BONUS),
            _b(prepared.text),
            _b(max(terms, key=len) if terms else ""),
            len(terms),
            *(_b(t) for t in terms),
        )
        groups: builtins.list[Any] = []
        horizon = b""
        timeout = self._search_timeout
        while True:
            reply = await self._eval(
                lua.SEARCH, space, *fixed, horizon, b"0", *tail, *groups, deadline=timeout
            )
            if reply[0] != b"index":
                break
            # Records written since the last search (and before this one began): tokenize
            # them here, where the shared tokenizer runs, and send the result back. Each call
            # indexes at most _INDEX_TERMS terms (unless one record has more), so no script
            # holds the server long; the deadline grows with the work sent.
            horizon = reply[1]
            groups = []
            work = 0
            for i in range(2, len(reply), 3):
                try:
                    doc = make_document(codec.decode(_s(reply[i + 2])))
                except _GARBLED as exc:
                    # Index it as an empty document: never found, and never handed back for
                    # indexing again (nor does it fail every search of the namespace).
                    self._report_garbled(space.base, _s(reply[i]), exc)
                    doc = make_document(None)
                if groups and work + len(doc.terms) > _INDEX_TERMS:
                    await self._eval(
                        lua.SEARCH,
                        space,
                        *fixed,
                        horizon,
                        b"1",
                        *tail,
                        *groups,
                        deadline=_index_timeout(self._search_timeout, work),
                    )
                    groups = []
                    work = 0
                groups += (reply[i], reply[i + 1], doc.length, _terms_arg(doc), _leaves_arg(doc))
                work += len(doc.terms)
            timeout = _index_timeout(self._search_timeout, work)
        _, n_docs, total, df_blob, rows_blob, keys_blob, recs_blob = reply
        df = dict(zip(terms, map(int, df_blob.split()), strict=True))
        nums = rows_blob.split()
        width = 5 + len(terms)
        holding = (prepared.text,)
        candidates: builtins.list[Candidate] = []
        kpos = rpos = 0
        for row in range(0, len(nums), width):
            klen = int(nums[row])
            key = _s(keys_blob[kpos : kpos + klen])
            kpos += klen
            rlen = int(nums[row + 4])
            metadata = None
            if rlen >= 0:
                rec = recs_blob[rpos : rpos + rlen]
                rpos += rlen
                records[key] = rec
                if query.filter:
                    metadata = _metadata(_parse(rec)[1])
            elif with_records:
                continue  # indexed but gone (evicted behind our back)
            tfs = {}
            for term, tf in zip(terms, nums[row + 5 : row + width], strict=True):
                if tf != b"0":
                    tfs[term] = int(tf)
            doc = Document(tfs, int(nums[row + 2]), holding if nums[row + 3] == b"1" else ())
            candidates.append((key, int(nums[row + 1]), doc, metadata))
        limit = query.limit if query.mode == "keyword" else None
        bound.append(keyword_bound(prepared, df, int(n_docs)))
        return rank_keyword(prepared, candidates, df, int(n_docs), int(total), limit, query.filter)

    async def _semantic(
        self, space: _Space, query: SearchQuery, records: dict[str, bytes]
    ) -> builtins.list[Scored]:
        assert query.vector is not None
        keys = await self._eval(lua.LIST, space, b"keys")
        candidates: builtins.list[Candidate] = []
        if keys:
            for raw, rec in zip(keys, await self._records(space, keys, b"0"), strict=True):
                if rec is None:
                    continue
                key = _s(raw)
                records[key] = rec
                seq, meta, vec, _ = _parse(rec)
                if vec:
                    metadata = _metadata(meta) if query.filter else None
                    candidates.append((key, seq, Document({}, 0, (), _vector(vec)), metadata))
        limit = query.limit if query.mode == "semantic" else None
        return rank_semantic(query.vector, candidates, limit, query.filter)

    async def scan(self, namespace: Namespace) -> builtins.list[Record]:
        """Every live record of ``namespace``, oldest write first (recency untouched)."""
        self._check_open("compact")
        space = self._space(namespace)
        with self._failures("compact"):
            keys = await self._eval(lua.LIST, space, b"keys")
            recs = await self._records(space, keys, b"0") if keys else []
        out = []
        for raw, rec in zip(keys, recs, strict=True):
            if rec is not None:  # None: deleted between the two calls
                seq, meta, _, payload = _parse(rec)
                out.append(Record(_s(raw), _s(payload), _metadata(meta), seq))
        out.sort(key=lambda r: r.seq)
        return out

    async def apply_compaction(
        self, namespace: Namespace, plan: CompactionPlan
    ) -> builtins.list[str]:
        """Apply ``plan`` in one script (see ``COMPACT`` in ``redis_scripts``)."""
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
                args += (seq, b"w", self._body(entry))
            else:
                args += (seq, b"d" if key in delete else b"-", b"")
        insert = plan.insert
        if insert is not None:
            keys.append(rec + _b(insert.key))
            args += (_ttl_ms(insert.ttl), self._body(insert))
        # The script's work grows with the records it replaces.
        deadline = _index_timeout(self._timeout, 20 * len(keys))
        with self._failures("compact"):
            reply = await lua.run(self._client, lua.COMPACT, keys, args, deadline)
        return [_s(k) for k in reply]

    # -- the records API: update, list, delete_where, namespaces ------------------------------
    # Built on scan (the namespace's own index) and on the COMPACT script's compare-and-set;
    # records carry no timestamps on Redis yet (created_at/updated_at 0.0).

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        for _ in range(100):
            current = await self.get(namespace, key)
            if current is None:
                return None
            payload = current.payload if change.payload is None else change.payload
            meta = change.merged(current.metadata)
            if change.set_ttl:
                # A new expiry: one write (not compare-and-set: COMPACT keeps expiries).
                entry = Entry(key, payload, meta, change.ttl, change.vector)
                await self.put(namespace, entry)
                return await self.get(namespace, key)
            entry = Entry(key, payload, meta, None, change.vector)
            plan = CompactionPlan({key: current.seq}, [], [entry], None)
            if not await self.apply_compaction(namespace, plan):
                return await self.get(namespace, key)
        raise MemoryBackendError(
            f"Redis at {self._where}, update: the record under {key!r} kept changing",
            backend="redis",
            operation="update",
            transient=False,
        )

    async def list(self, namespace: Namespace, query: ListQuery) -> ListResult:
        records = await self.scan(namespace)
        horizon = query.horizon
        if horizon is None:
            horizon = max((r.seq for r in records), default=0)
        after = query.after
        newest = query.order == "newest"
        chosen = [
            r
            for r in records
            if r.seq <= horizon
            and (after is None or (r.seq < after if newest else r.seq > after))
            and (not query.filter or matches_filter(r.metadata, query.filter))
        ]
        chosen.sort(key=lambda r: r.seq, reverse=newest)
        return ListResult(chosen[: query.limit], horizon, len(chosen) > query.limit)

    async def delete_where(self, namespace: Namespace, filter: Mapping[str, Any]) -> int:
        records = await self.scan(namespace)
        count = 0
        for r in records:
            if matches_filter(r.metadata, filter) and await self.delete(namespace, r.key):
                count += 1
        return count

    async def namespaces(self, prefix: Namespace) -> builtins.list[Namespace]:
        # SCAN for the namespaces' LRU keys (O(keyspace); the prefix is glob-escaped).
        glob = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix)
        found: set[Namespace] = set()
        try:
            async for raw in self._client.scan_iter(match=f"{glob}:{{*}}:lru", count=1000):
                text = _s(raw)
                tag = text[len(self.prefix) + 2 : -len("}:lru")]
                ns = _untag(tag)
                if ns[: len(prefix)] == prefix and await self.size(ns):
                    found.add(ns)
        except _FAILURES as exc:
            raise self._error("namespaces", exc) from exc
        return sorted(found)

    async def aclose(self) -> None:
        """Close the client if this backend built it (:meth:`from_url`); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self._clients.aclose()


def _index_timeout(timeout: float | None, terms: int) -> float | None:
    # Indexing costs the server about 10 us a term: allow for it on top of the usual wait.
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
