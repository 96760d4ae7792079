"""What a search of a namespace tree costs on Redis: round trips, and wall time.

    .venv/bin/python scripts/tree_search_cost.py [--kind redis|valkey] [--namespaces 1,10,50]

Starts a private server on a free loopback port (benchmarks/servers.py), writes 20 records
into each of N namespaces below one root, then, with every namespace's index warm, counts the
requests the client sends (each one round trip: a command, a script call or a pipeline)
and times the median of 20 calls of: a search of one namespace, a search of the
tree (``subtree=True``, keyword and ``namespaces()`` included), and ``namespaces()`` alone.
Each command is one round trip; a tree search sends its per-namespace commands concurrently
(statistics round, then search round), so its latency grows with the slowest namespace, not
with their sum, while the round trips grow with N.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import start_server

from tta_dev_primitives import MemoryPrimitive, RedisBackend

_SENT = [0]
_send = AbstractConnection.send_packed_command


async def _counting_send(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
    _SENT[0] += 1
    await _send(self, *args, **kwargs)


AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]


async def round_trips(run: Callable[[], Awaitable[Any]]) -> int:
    """Requests the client sent while ``run`` ran (a pipeline or a script call is one)."""
    before = _SENT[0]
    await run()
    return _SENT[0] - before


async def median_ms(run: Callable[[], Awaitable[Any]], n: int = 20) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _ops(memory: MemoryPrimitive) -> dict[str, Callable[[], Awaitable[Any]]]:
    one = memory.scoped("user0")
    return {
        "search one namespace": lambda: one.search("python redis", limit=5),
        "search tree": lambda: memory.search("python redis", limit=5, subtree=True),
        "namespaces()": lambda: memory.namespaces(),
    }


async def measure(url: str, sizes: list[int]) -> None:
    client = aioredis.from_url(url)
    print(f"{'namespaces':>10} {'op':<22} {'round trips':>11} {'median ms':>10}")
    for n in sizes:
        await client.flushall()
        memory = MemoryPrimitive(backend=RedisBackend.from_url(url), namespace="root")
        for i in range(n):
            await memory.scoped(f"user{i}").add_many(
                {f"k{j}": f"note {j} of user {i} about python and redis" for j in range(20)}
            )
        for name, op in _ops(memory).items():
            await op()  # warm: indexes loaded
            print(f"{n:>10} {name:<22} {await round_trips(op):>11} {await median_ms(op):>10.2f}")
        await memory.backend.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="redis", choices=["redis", "valkey"])
    parser.add_argument("--namespaces", default="1,10,50")
    args = parser.parse_args()
    server = start_server(args.kind)
    try:
        asyncio.run(measure(server.url(), [int(n) for n in args.namespaces.split(",")]))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
