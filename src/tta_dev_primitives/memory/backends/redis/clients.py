"""Which Redis client an operation uses, and what the backend checks of the server first.

Two concerns of :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend` that have
nothing to do with its data layout:

* **One client per event loop.** A ``redis.asyncio`` client's connections belong to the event
  loop that opened them; used from another loop (``asyncio.run`` per call, as scripts and
  notebooks do) they fail with ``RuntimeError``. A backend built by ``from_url`` therefore
  makes a client per loop, on first use in it, and closes it when that loop shuts down (an
  async generator parked in the loop is finalized by ``loop.shutdown_asyncgens()``, which
  ``asyncio.run`` calls). A client the caller passed in cannot be rebuilt: using it from a
  second loop is a clear :class:`MemoryBackendError` instead of a ``RuntimeError``.
* **Cheap commands.** redis-py packs each argument of a command in Python with several
  checks and a join of the growing buffer, which costs the client more per argument than
  a script pays to split a packed one. The connections of a ``from_url`` backend
  (:func:`fast_packing`) pack the arguments the library sends (``bytes``, ``str``, ``int``)
  into one buffer, byte for byte what redis-py would send; anything else goes the usual way.
* **The server check.** Before its first operation, again after any failure of the
  connection, and at most every :attr:`ServerCheck.interval` seconds, the backend reads
  ``INFO server memory``: an ``allkeys-*`` ``maxmemory-policy`` (which would let Redis evict
  the namespace's own index keys and corrupt it) is refused with a
  :class:`MemoryBackendError` naming the setting, and a changed ``run_id`` (the server
  restarted) is logged at ERROR, since what it had acknowledged may be gone. On a Redis
  Cluster the check asks one node; when another node answers it (a failover promoted a
  replica, or the client moved on), that is logged at WARNING as what it is, not as a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ...errors import MemoryBackendError
from .cluster import CLUSTER_SCHEMES, cluster_client

__all__ = ["ClientPerLoop", "ServerCheck", "client_factory", "fast_packing"]

logger = logging.getLogger(__package__)

RedisClient = aioredis.Redis | aioredis.RedisCluster


class _FastPacking:
    """``pack_command`` for the library's own connections (mixed into redis-py's class)."""

    encoder: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if type(name) is not str or " " in name:  # "SCRIPT LOAD" and the like: redis-py splits
            return super().pack_command(*args)  # type: ignore[misc,no-any-return]
        encoding, errors = self.encoder.encoding, self.encoder.encoding_errors
        parts = [b"*%d\r\n$%d\r\n%b\r\n" % (len(args), len(name), name.encode())]
        for arg in args[1:]:
            kind = type(arg)
            if kind is bytes:
                data = arg
            elif kind is str:
                data = arg.encode(encoding, errors)
            elif kind is int:
                data = b"%d" % arg
            else:  # floats, memoryviews, bools (refused): redis-py's own way
                return super().pack_command(*args)  # type: ignore[misc,no-any-return]
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        return [b"".join(parts)]


_FAST: dict[type, type] = {}


def fast_packing(pool: aioredis.ConnectionPool) -> aioredis.ConnectionPool:
    """Make ``pool``'s new connections pack commands with :class:`_FastPacking` (whatever
    their class: TCP, TLS or Unix socket). Returns ``pool``."""
    cls = pool.connection_class
    fast = _FAST.get(cls)
    if fast is None:
        fast = _FAST[cls] = type(f"Fast{cls.__name__}", (_FastPacking, cls), {})
    pool.connection_class = fast
    return pool


def client_factory(
    url: str,
    *,
    socket_connect_timeout: float,
    retries: int,
    backoff_base: float,
    backoff_cap: float,
    health_check_interval: float,
    max_connections: int,
    client_options: dict[str, Any],
) -> Callable[[], RedisClient]:
    """What builds ``RedisBackend.from_url``'s clients (one per event loop; see its
    arguments): a standalone client over a blocking pool, or a cluster client."""
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
            # Per node; the backend also holds operations beyond it back (Server.gated).
            return cluster_client(url, {"max_connections": max_connections, **options})
        # A blocking pool: past max_connections a command waits for a connection (its
        # wait bounded by the backend's per-call deadline) instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, **options
        )
        return aioredis.Redis.from_pool(fast_packing(pool))

    return make_client


async def _closes_with_loop(client: RedisClient) -> AsyncIterator[None]:
    # Parked at its first yield; the loop's shutdown_asyncgens() finalizes it, closing the
    # client while its loop still runs.
    try:
        yield
    finally:
        try:
            await client.aclose()
        except Exception:  # the loop is going away: nothing more to do  # pragma: no cover
            logger.debug("closing a Redis client at event loop shutdown failed", exc_info=True)


class ClientPerLoop:
    """The client to use in the running event loop.

    Args:
        first: The client given to (or built for) the backend; it serves the first loop.
        factory: Builds a new client (``from_url``); None when the caller passed the client,
            which then serves one loop only.
        owned: Whether the clients are ours to close.
        where: ``host:port``, for messages.
    """

    __slots__ = ("_clients", "_factory", "_first", "_guards", "_loop", "_owned", "_where", "now")

    def __init__(
        self,
        first: RedisClient,
        factory: Callable[[], RedisClient] | None,
        *,
        owned: bool,
        where: str,
    ) -> None:
        self._first: RedisClient | None = first
        self._factory = factory
        self._owned = owned
        self._where = where
        self._loop: asyncio.AbstractEventLoop | None = None
        self.now: RedisClient = first  # the client of self._loop
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisClient] = (
            weakref.WeakKeyDictionary()
        )
        self._guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> RedisClient:
        """The client for the running loop (``now`` when the loop did not change)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return self.now
        return self._switch(loop)

    def _switch(self, loop: asyncio.AbstractEventLoop) -> RedisClient:
        client = self._clients.get(loop)
        if client is None:
            if self._first is not None:
                client, self._first = self._first, None
            elif self._factory is not None:
                client = self._factory()
            else:
                raise MemoryBackendError(
                    f"Redis at {self._where}: this redis.asyncio client was first used in "
                    "another event loop, and a client cannot move between loops. Create the "
                    "client (and the RedisBackend) inside the loop that uses it, or build the "
                    "backend with RedisBackend.from_url(...), which makes a client per loop",
                    backend="redis",
                    transient=False,
                )
            self._clients[loop] = client
            if self._owned:
                guard = _closes_with_loop(client)
                self._guards[loop] = guard
                # Run it to its yield now: that registers it with the loop's asyncgen hooks.
                step: Any = guard.__anext__()
                with contextlib.suppress(StopIteration):
                    step.send(None)
        self._loop, self.now = loop, client
        return client

    async def aclose(self) -> None:
        """Close the clients of the running loop (the others went with their loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        guard = self._guards.pop(loop, None)
        if guard is not None:
            await guard.aclose()  # closes the client
        elif client is not None and self._owned:
            await client.aclose()
        elif self._first is not None and self._owned:
            await self._first.aclose()  # never used
        self._first = None


_ALLKEYS = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def _info_nodes(reply: Any) -> list[dict[str, str]]:
    """INFO fields per node: one dict for a server, one per node for a cluster."""
    if not isinstance(reply, dict):  # pragma: no cover - unexpected reply shape
        return []
    if reply and all(isinstance(v, dict) for v in reply.values()):  # a cluster, per node
        return [{str(k): str(v) for k, v in node.items()} for node in reply.values()]
    return [{str(k): str(v) for k, v in reply.items()}]


class ServerCheck:
    """What the backend verifies of the server before trusting it with a namespace.

    Attributes:
        interval: Seconds between checks while nothing fails (a failure makes the next
            operation check again).
        run_id: The server's ``run_id`` when last checked.
        restarts: How many times what the server acknowledged may have been lost since: its
            ``run_id`` changed (it restarted), or on a cluster another node answered (a
            failover). The backend reloads what it keeps of the server's state when it grows.
        node: On a cluster, the node (``host:port``) that answered the last check.
        node_changes: How many times another cluster node answered (failovers, mostly).
    """

    __slots__ = (
        "_due",
        "_policy_error",
        "_where",
        "interval",
        "node",
        "node_changes",
        "restarts",
        "run_id",
    )

    def __init__(self, where: str, interval: float = 60.0) -> None:
        self._where = where
        self.interval = interval
        self._due = 0.0  # monotonic time of the next check (0: before the first operation)
        self._policy_error: MemoryBackendError | None = None
        self.run_id: str | None = None
        self.restarts = 0
        self.node: str | None = None
        self.node_changes = 0

    def due(self) -> bool:
        """True when the next operation must check the server first."""
        return self._due <= time.monotonic()

    def again(self) -> None:
        """Check before the next operation (after a failure: maybe a new server)."""
        self._due = 0.0

    async def run(self, client: RedisClient, deadline: float | None) -> None:
        """Read INFO and apply the checks.

        Raises:
            MemoryBackendError: An ``allkeys-*`` eviction policy (not transient), or the
                server could not be asked (the caller maps client failures).
        """
        try:
            async with asyncio.timeout(deadline):
                reply = await client.info("server", "memory")
        except ResponseError as exc:
            # INFO refused (an ACL without it, a managed service hiding it): the checks
            # cannot run; say so once and go on without them.
            if self._due == 0.0:
                logger.warning(
                    "Redis at %s: INFO refused (%s); cannot check maxmemory-policy or detect "
                    "restarts",
                    self._where,
                    exc,
                )
            self._due = time.monotonic() + self.interval
            return
        nodes = _info_nodes(reply)
        # A restart is told by one server's run_id; a cluster's nodes each have theirs.
        run_id = nodes[0].get("run_id") if len(nodes) == 1 else None
        if isinstance(client, aioredis.RedisCluster):
            # INFO went to the client's default node: after a failover that is another node,
            # with a run_id of its own, which says nothing of a restart.
            answered = client.get_default_node()
            node = answered.name if answered is not None else None
            if node and self.node and node != self.node:
                self.node_changes += 1
                self.restarts += 1  # as after a restart: acknowledged writes may be gone
                logger.warning(
                    "Redis Cluster at %s: node %s answers now instead of %s (a failover "
                    "promoted a replica, or the old node became unreachable): writes a failed "
                    "master acknowledged but had not yet replicated may be lost; the fallback "
                    "journal covers only writes made while the cluster was unreachable",
                    self._where,
                    node,
                    self.node,
                )
                self.run_id = None  # a new node: compare its run_id from now on
            self.node = node or self.node
        if run_id and self.run_id and run_id != self.run_id:
            self.restarts += 1
            logger.error(
                "Redis at %s restarted (run_id %s -> %s): writes it acknowledged before the "
                "restart survive only if it persists them (appendonly yes); the fallback "
                "journal covers only writes made while it was unreachable",
                self._where,
                self.run_id,
                run_id,
            )
        if run_id:
            self.run_id = run_id
        policy = next((p for n in nodes if (p := n.get("maxmemory_policy", "")) in _ALLKEYS), "")
        if policy:
            self._policy_error = MemoryBackendError(
                f"Redis at {self._where}: maxmemory-policy is {policy}, which lets Redis evict "
                "any key, including a namespace's own index keys (records would then be listed "
                "but not found, survive clear(), or be found by a search for another value). "
                "Use noeviction or a volatile-* policy "
                "(CONFIG SET maxmemory-policy noeviction)",
                backend="redis",
                transient=False,
            )
        else:
            self._policy_error = None
        self._due = time.monotonic() + self.interval
        if self._policy_error is not None:
            self._due = 0.0  # check again next time, so fixing the setting is noticed at once
            raise self._policy_error
