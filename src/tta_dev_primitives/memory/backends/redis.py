"""``RedisBackend``: records in Redis (or Valkey), shared by processes, with atomic Lua steps.

Usage::

    backend = RedisBackend.from_url("redis://localhost:6379/0", max_size=10_000)
    memory = MemoryPrimitive(backend=backend)

or simply ``MemoryPrimitive(redis_url="redis://localhost:6379/0")``, which also puts an
in-memory :class:`~tta_dev_primitives.memory.backends.fallback.FallbackBackend` in front.

Every operation is one ``EVALSHA`` round trip (``search`` is two: candidates, then the
payloads of the hits), each an atomic Lua script over one namespace: value, LRU order, TTL
index, search index and eviction change together or not at all. Key layout and the scripts
are described in :mod:`~tta_dev_primitives.memory.backends.redis_scripts`. Needs plain Redis
>= 7.0 or Valkey, no modules.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import codec
from ..errors import MemoryBackendError
from ..search import (
    Candidate,
    Document,
    KeywordQuery,
    Scored,
    prepare_query,
    rank_by_mode,
    rank_keyword,
    rank_semantic,
)
from ..store import validate_max_size
from . import redis_scripts as lua
from .base import BackendInfo, Entry, Namespace, Record, SearchQuery, SearchResult

__all__ = ["RedisBackend"]

_BATCH = 1000  # keys per script call / commands per pipeline flush
_FAILURES = (RedisError, OSError)  # OSError covers the builtin TimeoutError/ConnectionError

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


def _ttl_ms(ttl: float | None) -> int:
    return 0 if ttl is None else max(1, round(ttl * 1000))


def _metadata(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else codec.decode(_s(data))


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
        self._client = client
        self._close_client = close_client
        self._closed = False
        self._max_arg = b"0" if self.max_size is None else str(self.max_size).encode()
        self._bases: dict[Namespace, bytes] = {}
        host, port = _address(client)
        self._where = f"{host}:{port}" if port is not None else str(host)
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
        **client_options: Any,
    ) -> RedisBackend:
        """Build a backend with its own client for ``url`` (``redis://``, ``rediss://``,
        ``unix://``), closed by :meth:`aclose`.

        The client retries connection errors and timeouts ``retries`` times with exponential
        backoff and full jitter (``backoff_base * 2**n``, at most ``backoff_cap`` seconds),
        so the worst case before :class:`MemoryBackendError` is bounded: about
        ``(retries + 1) * socket_timeout`` plus the backoff.

        Args:
            url: The server URL, credentials included (``redis://user:pass@host:6379/0``).
            prefix: First part of every key.
            max_size: Most records per namespace (None = unbounded).
            socket_timeout: Seconds to wait for a reply.
            socket_connect_timeout: Seconds to wait for a connection.
            retries: Retries after a connection error or timeout (0 = none).
            backoff_base: First backoff, seconds.
            backoff_cap: Longest backoff, seconds.
            health_check_interval: Seconds of idleness after which a pooled connection is
                checked with PING before use.
            client_options: More ``redis.asyncio.from_url`` options (``ssl_ca_certs``, ...).

        Raises:
            ValueError: ``url`` is not a Redis URL.
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        retry = Retry(
            ExponentialWithJitterBackoff(cap=backoff_cap, base=backoff_base),
            retries,
            supported_errors=(RedisConnectionError, RedisTimeoutError, OSError),  # type: ignore[arg-type]
        )
        client = aioredis.from_url(
            url,
            retry=retry,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=health_check_interval,
            decode_responses=False,
            **client_options,
        )
        return cls(client, prefix=prefix, max_size=max_size, close_client=True)

    # -- helpers ------------------------------------------------------------------------------

    def _base(self, namespace: Namespace) -> bytes:
        base = self._bases.get(namespace)
        if base is None:
            base = _b(f"{self.prefix}:{{{namespace_tag(namespace)}}}:")
            self._bases[namespace] = base
        return base

    def key_prefix(self, namespace: Namespace) -> str:
        """The prefix every Redis key of ``namespace`` starts with (``tta:{default}:``)."""
        return _s(self._base(namespace))

    def _error(self, operation: str, exc: BaseException) -> MemoryBackendError:
        if isinstance(exc, AuthenticationError | AuthorizationError) or (
            isinstance(exc, ResponseError)
            and str(exc).startswith(("NOAUTH", "WRONGPASS", "NOPERM"))
        ):
            why = f"authentication failed (check the user name and password): {exc}"
        elif isinstance(exc, RedisTimeoutError | TimeoutError):
            why = f"timed out: {exc}"
        elif isinstance(exc, RedisConnectionError | OSError):
            why = f"cannot connect: {exc}"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return MemoryBackendError(
            f"Redis at {self._where}, {operation}: {why}", backend="redis", operation=operation
        )

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise MemoryBackendError("RedisBackend is closed", backend="redis", operation=operation)

    async def _eval(self, script: lua.Script, base: bytes, *args: Any) -> Any:
        client = self._client
        try:
            return await client.execute_command(
                "EVALSHA", script.sha, 1, base + b"lru", base, *args
            )
        except NoScriptError:
            # The server restarted or ran SCRIPT FLUSH: load once and run again.
            await client.script_load(script.source)
            return await client.execute_command(
                "EVALSHA", script.sha, 1, base + b"lru", base, *args
            )

    async def _eval_many(
        self, script: lua.Script, base: bytes, calls: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """Run ``script`` once per argument tuple, pipelined, in order."""
        results: list[Any] = []
        start = 0
        loaded = False
        while start < len(calls):
            chunk = calls[start : start + _BATCH]
            pipe = self._client.pipeline(transaction=False)
            for args in chunk:
                pipe.execute_command("EVALSHA", script.sha, 1, base + b"lru", base, *args)
            replies = await pipe.execute(raise_on_error=False)
            missing = next((i for i, r in enumerate(replies) if isinstance(r, NoScriptError)), None)
            if missing is not None and not loaded:
                # Keep what ran; load the script and go on from the first call that did not.
                results.extend(replies[:missing])
                await self._client.script_load(script.source)
                loaded = True
                start += missing
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            results.extend(replies)
            start += len(chunk)
        return results

    # -- MemoryBackend ------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        return self._info

    async def ping(self) -> None:
        """Check the server answers.

        Raises:
            MemoryBackendError: It does not.
        """
        self._check_open("ping")
        try:
            await self._client.ping()
        except _FAILURES as exc:
            raise self._error("ping", exc) from exc

    def _put_args(self, entry: Entry) -> tuple[Any, ...]:
        doc = entry.document
        meta = entry.metadata
        return (
            self._max_arg,
            _b(entry.key),
            _b(entry.payload),
            b"" if meta is None else _b(codec.encode(meta, None)),
            _ttl_ms(entry.ttl),
            doc.length,
            _terms_arg(doc),
            _leaves_arg(doc),
            _vector_arg(doc.vector),
        )

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        self._check_open("add")
        try:
            return int(await self._eval(lua.PUT, self._base(namespace), *self._put_args(entry)))
        except _FAILURES as exc:
            raise self._error("add", exc) from exc

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        self._check_open("add_many")
        if not entries:
            return 0
        calls = [self._put_args(entry) for entry in entries]
        try:
            replies = await self._eval_many(lua.PUT, self._base(namespace), calls)
        except _FAILURES as exc:
            raise self._error("add_many", exc) from exc
        return sum(int(r) for r in replies)

    async def _get(
        self, namespace: Namespace, keys: Sequence[str], touch: bytes, op: str
    ) -> list[Record | None]:
        self._check_open(op)
        base = self._base(namespace)
        encoded = [_b(k) for k in keys]
        try:
            if len(encoded) <= _BATCH:
                replies = [await self._eval(lua.GET, base, touch, *encoded)]
            else:
                calls = [(touch, *encoded[i : i + _BATCH]) for i in range(0, len(encoded), _BATCH)]
                replies = await self._eval_many(lua.GET, base, calls)
        except _FAILURES as exc:
            raise self._error(op, exc) from exc
        flat = [item for reply in replies for item in reply]
        out: list[Record | None] = []
        for i, key in enumerate(keys):
            payload, meta, seq = flat[3 * i : 3 * i + 3]
            out.append(
                None if payload is None else Record(key, _s(payload), _metadata(meta), int(seq))
            )
        return out

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        return (await self._get(namespace, (key,), b"1", "get"))[0]

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[Record | None]:
        if not keys:
            return []
        return await self._get(namespace, keys, b"1", "get_many")

    async def delete(self, namespace: Namespace, key: str) -> bool:
        self._check_open("delete")
        try:
            return bool(await self._eval(lua.REMOVE, self._base(namespace), _b(key)))
        except _FAILURES as exc:
            raise self._error("delete", exc) from exc

    async def clear(self, namespace: Namespace) -> int:
        self._check_open("clear")
        try:
            return int(await self._eval(lua.CLEAR, self._base(namespace)))
        except _FAILURES as exc:
            raise self._error("clear", exc) from exc

    async def keys(self, namespace: Namespace) -> list[str]:
        self._check_open("keys")
        try:
            reply = await self._eval(lua.LIST, self._base(namespace), b"keys")
        except _FAILURES as exc:
            raise self._error("keys", exc) from exc
        return [_s(k) for k in reply]

    async def size(self, namespace: Namespace) -> int:
        self._check_open("size")
        try:
            return int(await self._eval(lua.LIST, self._base(namespace), b"size"))
        except _FAILURES as exc:
            raise self._error("size", exc) from exc

    async def search(self, namespace: Namespace, query: SearchQuery) -> list[SearchResult]:
        self._check_open("search")
        prepared = prepare_query(query.text)
        if prepared is None:
            return []
        base = self._base(namespace)
        try:
            keyword: list[Scored] | None = None
            semantic: list[Scored] | None = None
            if query.mode != "semantic":
                keyword = await self._keyword(base, prepared, query)
            if query.mode != "keyword" and query.vector is not None:
                semantic = await self._semantic(base, query)
            scored = rank_by_mode(
                query.mode,
                query.limit,
                lambda _limit: keyword or [],
                lambda _limit: semantic or [],
            )
            if not scored:
                return []
            reply = await self._eval(lua.GET, base, b"0", *(_b(key) for _, _, key in scored))
        except _FAILURES as exc:
            raise self._error("search", exc) from exc
        results = []
        for i, (score, _, key) in enumerate(scored):
            payload, meta = reply[3 * i], reply[3 * i + 1]
            if payload is not None:  # gone since ranking (a concurrent delete)
                results.append(SearchResult(key, _s(payload), score, _metadata(meta)))
        return results

    async def _keyword(
        self, base: bytes, prepared: KeywordQuery, query: SearchQuery
    ) -> list[Scored]:
        terms = prepared.terms
        longest = max(terms, key=len) if terms else ""
        # A one-word query that is the word itself is held by every record containing a
        # word that contains it: no need to read their leaves.
        all_hold = b"1" if terms == (prepared.text,) else b"0"
        with_meta = bool(query.filter)
        reply = await self._eval(
            lua.KEYWORD,
            base,
            all_hold,
            _b(prepared.text),
            _b(longest),
            b"1" if with_meta else b"0",
            *(_b(t) for t in terms),
        )
        n_docs, total, df_blob, nums_blob, keys_blob, metas_blob = reply
        df = dict(zip(terms, map(int, df_blob.split()), strict=True))
        nums = list(map(int, nums_blob.split()))
        width = 4 + len(terms) + with_meta
        holding = (prepared.text,)
        candidates: list[Candidate] = []
        kpos = mpos = 0
        for row in range(0, len(nums), width):
            klen, seq, length, held = nums[row : row + 4]
            key = _s(keys_blob[kpos : kpos + klen])
            kpos += klen
            tfs = {
                t: tf
                for t, tf in zip(terms, nums[row + 4 : row + 4 + len(terms)], strict=True)
                if tf
            }
            metadata = None
            if with_meta:
                mlen = nums[row + width - 1]
                if mlen >= 0:
                    metadata = _metadata(metas_blob[mpos : mpos + mlen])
                    mpos += mlen
            doc = Document(tfs, length, holding if held else ())
            candidates.append((key, seq, doc, metadata))
        limit = query.limit if query.mode == "keyword" else None
        return rank_keyword(prepared, candidates, df, int(n_docs), int(total), limit, query.filter)

    async def _semantic(self, base: bytes, query: SearchQuery) -> list[Scored]:
        assert query.vector is not None
        keys = await self._eval(lua.LIST, base, b"keys")
        with_meta = b"1" if query.filter else b"0"
        calls = [(with_meta, *keys[i : i + _BATCH]) for i in range(0, len(keys), _BATCH)]
        replies = await self._eval_many(lua.VECTORS, base, calls) if calls else []
        candidates: list[Candidate] = []
        for chunk, reply in zip(
            (keys[i : i + _BATCH] for i in range(0, len(keys), _BATCH)), replies, strict=True
        ):
            for i, key in enumerate(chunk):
                doc, vec, meta = reply[3 * i : 3 * i + 3]
                if doc is None or vec is None:
                    continue
                seq = int(doc.split(b" ", 1)[0])
                candidates.append(
                    (_s(key), seq, Document({}, 0, (), _vector(vec)), _metadata(meta))
                )
        limit = query.limit if query.mode == "semantic" else None
        return rank_semantic(query.vector, candidates, limit, query.filter)

    async def aclose(self) -> None:
        """Close the client if this backend built it (:meth:`from_url`); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self._client.aclose()


def _address(client: RedisClient) -> tuple[str, int | None]:
    if isinstance(client, aioredis.RedisCluster):
        node = client.get_default_node() or next(iter(client.get_nodes()), None)
        if node is not None:
            return str(node.host), int(node.port)
        return "unknown", None
    kwargs: Mapping[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"]), None
    return str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379))
