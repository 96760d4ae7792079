"""What :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend` needs for Redis Cluster.

* **Cluster URLs.** ``redis+cluster://`` and ``rediss+cluster://`` name one node or several,
  comma-separated (``redis+cluster://user:pass@10.0.0.1:7000,10.0.0.2:7000``); the client
  discovers the rest of the cluster from the first node that answers.
* **ASK redirections.** While a slot migrates, the source master answers ``ASK`` for a
  command whose keys are not all there, and the target serves it only after ``ASKING`` *on
  the same connection*. redis-py's asyncio cluster client sends ``ASKING`` and the command
  through its node's pool separately, so with more than one pooled connection they usually
  travel on different ones: the target answers ``MOVED`` back to the source, and the client
  ping-pongs until it gives up (``ClusterError: TTL exhausted``). :func:`run_redirected`
  follows the redirections itself, sending ``ASKING`` and the command in one pipeline.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

__all__ = ["CLUSTER_SCHEMES", "cluster_client", "is_redirection", "run_redirected"]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_NON_LOCAL = "non local key"
_ATTEMPTS = 40  # with the backoff below, about 3.5 s of a slot in migration


def cluster_client(url: str, options: dict[str, Any]) -> aioredis.RedisCluster:
    """A ``RedisCluster`` for a cluster URL naming one or more nodes.

    Raises:
        ValueError: A node has no host or a bad port, or the URL names a database other
            than 0 (a cluster has only database 0).
    """
    scheme, _, rest = url.partition("+cluster://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:cut].rpartition("@")
    nodes = []
    for host in hosts.split(","):
        parts = urlsplit(f"//{host}")
        try:
            port = parts.port or 6379
        except ValueError as exc:  # not a number, or out of range
            raise ValueError(f"bad cluster node {host!r} in the URL: {exc}") from None
        if not parts.hostname:
            raise ValueError(f"bad cluster node {host!r} in the URL: no host")
        nodes.append((parts.hostname, port))
    first = hosts.split(",")[0]
    # A MOVED patches the slot map; redis-py's default also drops every pooled connection of
    # every node at each 5th MOVED, which a slot migration (ASK/MOVED ping-pong) triggers.
    options = {"reinitialize_steps": 0, **options}
    try:
        return aioredis.RedisCluster.from_url(
            f"{scheme}://{userinfo}{at}{first}{rest[cut:]}",
            startup_nodes=[ClusterNode(host, port) for host, port in nodes[1:]],
            **options,
        )
    except RedisClusterException as exc:  # a database number, a unix socket
        raise ValueError(str(exc)) from None


def is_redirection(exc: object) -> bool:
    """Whether ``exc`` says the command did not run because its slot is moving.

    That includes a script that touched a key it does not declare (an expired record, the
    ttl index) which the migration moved already, or which does not exist: Redis fails it
    at that access, and every script reads such keys before it writes anything, so it
    changed nothing and can run again.
    """
    return (
        type(exc) is ClusterError
        or isinstance(exc, AskError | TryAgainError)
        or (isinstance(exc, ResponseError) and _NON_LOCAL in str(exc))
    )


async def run_redirected(
    client: aioredis.RedisCluster,
    key: bytes,
    args: tuple[Any, ...],
    *,
    bounded: bool = True,
) -> Any:
    """Run the command ``args`` (whose first key is ``key``) on the master of ``key``'s slot,
    following ``MOVED`` and ``ASK`` (with ``ASKING`` on the command's own connection) and
    waiting out ``TRYAGAIN``.

    With ``bounded=False`` it keeps trying until the caller's own deadline (an
    ``asyncio.timeout`` around the call) cancels it: a script declaring a key that does not
    exist yet (a new record) gets ``TRYAGAIN`` until the migration's hand-over, however long
    the operator takes.

    Raises:
        ClusterError: Still redirected after about 3.5 s (``bounded``).
        RedisError: Any other failure of the command (it is not retried).
    """
    delay = 0.005
    attempt = 0
    while not bounded or attempt < _ATTEMPTS:
        attempt += 1
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        try:
            return await node.execute_command(*args)
        except MovedError as exc:  # the slot has moved: patch the map, go there
            await client.nodes_manager.move_slot(exc)
            continue
        except AskError as exc:
            target = client.get_node(host=exc.host, port=exc.port)
            if target is None:
                await client.nodes_manager.initialize()
                continue
            call = PipelineCommand(1, *args)
            await target.execute_pipeline([PipelineCommand(0, "ASKING"), call])
            result = call.result
            if not isinstance(result, Exception):
                return result
            if not is_redirection(result):
                raise result from None
        except TryAgainError:  # a multi-key command while the keys are split between masters
            pass
        except ResponseError as exc:
            if not is_redirection(exc):
                raise
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.1)
    raise ClusterError(f"the slot of {key!r} was still moving after {_ATTEMPTS} attempts")
