"""The server as the Redis backend's parts see it: the client of the running event loop, the
deadlines, the server check, the one way a script runs, and the exception map.

:class:`~tta_dev_primitives.memory.backends.redis.RedisBackend`, its change-log sync and its
Query Engine path each reach Redis through one :class:`Server`, by its public methods.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import scripts as lua
from .clients import ClientPerLoop, ServerCheck
from .errors import ErrorMap, GarbledLog
from .layout import NamespaceKeys
from .wire import BATCH, RawFields, record_fields, unpack

__all__ = ["RedisClient", "Server"]

_T = TypeVar("_T")
_DEFAULT: Any = object()
_WRONGTYPE = "WRONGTYPE"

RedisClient = aioredis.Redis | aioredis.RedisCluster


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


class Server:
    """One Redis server (or cluster) and how the backend talks to it.

    Args:
        client: The first client (serves the first event loop).
        owned: Whether the clients are the backend's to close.
        timeout: Seconds a round trip may take (None: the client's own).
        search_timeout: Seconds a round trip of an index load or catch-up may take.

    Attributes:
        host, port: The server's address (port None for a Unix socket).
        where: ``host:port``, for messages.
        timeout, search_timeout: As given.
        failures: The exception map (``with server.failures("add"):``).
        garbled: Where records skipped as undecodable are reported.
        clients: The client per event loop.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        owned: bool,
        timeout: float | None,
        search_timeout: float | None,
    ) -> None:
        self.host, self.port = _address(client)
        self.where = f"{self.host}:{self.port}" if self.port is not None else str(self.host)
        self.timeout = timeout
        self.search_timeout = search_timeout
        self.clients = ClientPerLoop(client, None, owned=owned, where=self.where)
        self.check = ServerCheck(self.where)
        self.failures = ErrorMap(self.where, self.check.again)
        self.garbled = GarbledLog(self.where)
        # A cluster client fails a command past its connections per node: operations beyond
        # that many wait (per event loop) instead.
        self._cluster_limit = 0
        if isinstance(client, aioredis.RedisCluster):
            limit = client.nodes_manager.connection_kwargs.get("max_connections")
            self._cluster_limit = int(limit) if isinstance(limit, int) and limit > 0 else 100
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def client(self) -> RedisClient:
        """The client of the running event loop."""
        return self.clients.current()

    @property
    def restarts(self) -> int:
        """Server restarts (or cluster failovers) seen so far."""
        return self.check.restarts

    async def check_server(self) -> None:
        """Run the server check now (see :class:`ServerCheck`)."""
        with self.failures("check"):
            await self.check.run(self.client, self.timeout)

    def eval(
        self,
        script: lua.Script,
        ns: NamespaceKeys,
        *args: Any,
        keys: Sequence[bytes] = (),
        deadline: Any = _DEFAULT,
    ) -> Awaitable[Any]:
        """Run ``script`` on the namespace whose keys are ``ns``: its declared keys and then
        ``keys`` in ``KEYS``, the base (unless the script finds it in its keys) and then
        ``args`` in ``ARGV``.

        Returns the awaitable of :func:`lua.run` itself (no coroutine of its own: one frame
        less per operation), after the periodic server check when one is due.
        """
        declared = ns.declared(script)
        if keys:
            declared = (*declared, *keys)
        timeout = self.timeout if deadline is _DEFAULT else deadline
        if script.base_arg:
            args = (ns.base, *args)
        if self.check.due():
            call = self._checked_eval(script, declared, args, timeout)
        else:
            call = lua.run(self.client, script, declared, args, timeout)
        if self._cluster_limit:
            return self._limited(call)
        return call

    def gated(self, call: Awaitable[_T]) -> Awaitable[_T]:
        """``call``, held back on a Redis Cluster while ``max_connections`` operations are in
        flight in this event loop (every command sent outside the scripts goes through here,
        or it may find no free connection)."""
        return self._limited(call) if self._cluster_limit else call

    async def _limited(self, call: Awaitable[Any]) -> Any:
        # redis-py's cluster client refuses a command past its per-node connection limit
        # (MaxConnectionsError) where a pool would wait.
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self._cluster_limit)
        async with gate:
            return await call

    async def _checked_eval(
        self, script: lua.Script, keys: Sequence[bytes], args: Sequence[Any], deadline: Any
    ) -> Any:
        await self.check_server()
        return await lua.run(self.client, script, keys, args, deadline)

    async def eval_many(
        self,
        script: lua.Script,
        calls: Sequence[tuple[Sequence[bytes], Sequence[Any]]],
        deadline: Any = _DEFAULT,
    ) -> list[Any]:
        """Run ``script`` once per ``(keys, args)`` call, pipelined, in order."""
        if self.check.due():
            await self.gated(self.check_server())
        timeout = self.timeout if deadline is _DEFAULT else deadline
        call = lua.run_many(self.client, script, calls, timeout)
        if self._cluster_limit:
            return await self._limited(call)  # type: ignore[no-any-return]
        return await call

    async def hget(self, key: bytes, field: bytes) -> Any:
        """One field of a hash, within the deadline."""
        async with asyncio.timeout(self.timeout):
            return await self.gated(self.client.hget(key, field))

    async def read(self, ns: NamespaceKeys, raws: Sequence[bytes], touch: bytes) -> list[Any]:
        """The packed records (``lua/get.lua``) under the record keys ``raws``, chunked and
        pipelined."""
        rec = ns.rec
        if len(raws) == 1:
            return [await self.eval(lua.GET, ns, touch, raws[0], keys=(rec + raws[0],))]
        calls = [
            (tuple(rec + k for k in raws[i : i + BATCH]), (touch, *raws[i : i + BATCH]))
            for i in range(0, len(raws), BATCH)
        ]
        out: list[Any] = []
        for (chunk, _), reply in zip(calls, await self.eval_many(lua.GET, calls), strict=True):
            out.extend(reply if len(chunk) > 1 else [reply])
        return out

    async def fetch(
        self, ns: NamespaceKeys, raws: Sequence[bytes], vectors: bool
    ) -> list[RawFields]:
        """The ``FETCH`` fields (s, v, m, e, x, u, c, t) of the records under ``raws``, recency
        untouched, chunked and pipelined (decode them with :func:`wire.decode_fields`)."""
        if not raws:
            return []
        rec = ns.rec
        flag = b"1" if vectors else b"0"
        calls = [
            (tuple(rec + k for k in raws[i : i + BATCH]), (ns.base, flag, b"0"))
            for i in range(0, len(raws), BATCH)
        ]
        try:
            replies = await self.eval_many(lua.FETCH, calls, self.search_timeout)
        except ResponseError as exc:
            if _WRONGTYPE not in str(exc):
                raise
            # A key of another type among them: again, reporting it instead of failing.
            careful = [(ks, (base, flag, b"1")) for ks, (base, flag, _) in calls]
            replies = await self.eval_many(lua.FETCH, careful, self.search_timeout)
        out: list[RawFields] = []
        for reply in replies:
            rows = unpack(reply[0], reply[1], 4)
            if vectors:  # each vector came as a reply of its own (lua/fetch.lua)
                out.extend(
                    record_fields(s, v, r, e, t)
                    for (s, v, r, t), e in zip(rows, reply[2:], strict=True)
                )
            else:
                out.extend(record_fields(s, v, r, None, t) for s, v, r, t in rows)
        return out
