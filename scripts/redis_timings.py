"""Per-call cost of add and get on Redis, through the primitive, no SDK.

    .venv/bin/python scripts/redis_timings.py [--kind redis|valkey] [--n 5000]

Starts a private server on a free loopback port (benchmarks/servers.py), then times, best of
5 batches (wall time, and the client's own CPU time, which other load on the machine
disturbs less): ``add``/``get`` on ``RedisBackend`` alone, the same behind the fallback
(``MemoryPrimitive(redis_url=...)``), and a raw redis-py ``SET``/``GET`` with JSON as the
floor. Compare two checkouts by running it in each; the raw row is the baseline to compare
ratios against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import start_server

from tta_dev_primitives import MemoryPrimitive, RedisBackend

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}


async def best(n: int, op: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Best wall time and best client CPU time per call, microseconds."""
    wall = cpu = float("inf")
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await op(i)
        wall = min(wall, (time.perf_counter() - start) / n * 1e6)
        cpu = min(cpu, (time.process_time() - start_cpu) / n * 1e6)
    return wall, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="redis", choices=["redis", "valkey"])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    server = start_server(args.kind)
    try:
        url = server.url()
        raw = aioredis.from_url(url)
        plain = MemoryPrimitive(backend=RedisBackend.from_url(url, max_size=None), namespace="p")
        fallback = MemoryPrimitive(redis_url=url, max_size=None, namespace="f")
        keys = [f"k{i % 1000}" for i in range(args.n)]
        rows = [
            ("raw add (SET)", await best(args.n, lambda i: raw.set(keys[i], json.dumps(VALUE)))),
            ("raw get (GET)", await best(args.n, lambda i: _raw_get(raw, keys[i]))),
            ("redis add", await best(args.n, lambda i: plain.add(keys[i], VALUE))),
            ("redis get", await best(args.n, lambda i: plain.get(keys[i]))),
            ("fallback add", await best(args.n, lambda i: fallback.add(keys[i], VALUE))),
            ("fallback get", await best(args.n, lambda i: fallback.get(keys[i]))),
        ]
        base = {"add": rows[0][1], "get": rows[1][1]}
        print(f"{args.kind} {server.version}, best of 5 x {args.n} calls, no SDK")
        for name, (us, cpu) in rows:
            op = "add" if "add" in name else "get"
            ratio, cpu_ratio = us / base[op][0], cpu / base[op][1]
            print(
                f"  {name:14} {us:7.1f} us/call ({ratio:.2f}x raw), "
                f"client CPU {cpu:6.1f} us ({cpu_ratio:.2f}x raw)"
            )
        await raw.aclose()
        await plain.aclose()
        await fallback.aclose()
    finally:
        server.stop()


async def _raw_get(client: aioredis.Redis, key: str) -> Any:
    data = await client.get(key)
    return None if data is None else json.loads(data)


if __name__ == "__main__":
    asyncio.run(main())
