"""What Redis and the process keep for namespaces that hold nothing (issue #23, points 7-9).

    .venv/bin/python scripts/redis_leftovers.py [--kind redis|valkey] [--namespaces 1500]

On one private server (benchmarks/servers.py):

* ``expired``: ``--namespaces`` namespaces, each written like task memory (an ``add_many`` of
  4 records and 2 ``add``, ``ttl=1``), searched once; after every record expired and nothing
  touched them again, the keys (and bytes, ``MEMORY USAGE``) left under the prefix.
* ``ttl index``: 4,000 records with ``ttl=3600`` written into one namespace of ``max_size=50``,
  then the entries of its ``ttl`` index against its live records.
* ``process``: 20,000 reads (``get``, ``search``, ``list``) of distinct empty namespaces, then
  the bytes this process still holds for them (``tracemalloc``) and the search indexes kept.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import start_server

from tta_dev_primitives import MemoryPrimitive, RedisBackend


async def expired(url: str, namespaces: int) -> None:
    memory = MemoryPrimitive(redis_url=url, namespace="tasks", fallback=False)
    for i in range(namespaces):
        task = memory.scoped(f"task{i}")
        await task.add_many({f"step{j}": f"step {j} of task {i}" for j in range(4)}, ttl=1)
        await task.add("result", f"result of task {i}", ttl=1)
        await task.add("result", f"final result of task {i}", ttl=1)
        await task.search("result")
    await memory.aclose()
    await asyncio.sleep(3.5)  # every record expired; the keys' own expiry (if any) too
    client = aioredis.from_url(url)
    keys = [k async for k in client.scan_iter(match="tta:*", count=1000)]
    used = 0
    for key in keys:
        used += int(await client.memory_usage(key) or 0)
    await client.aclose()
    print(f"expired: {len(keys)} keys, {used / 1e6:.2f} MB left for {namespaces} namespaces")


async def ttl_index(url: str) -> None:
    backend = RedisBackend.from_url(url, max_size=50)
    memory = MemoryPrimitive(backend=backend, namespace="bounded")
    for i in range(0, 4000, 100):
        await memory.add_many({f"k{j}": j for j in range(i, i + 100)}, ttl=3600)
    client = aioredis.from_url(url)
    base = backend.key_prefix(("bounded",)).encode()
    entries = await client.zcard(base + b"ttl")
    live = await memory.size()
    await client.aclose()
    await memory.aclose()
    print(f"ttl index: {entries} entries for {live} live records")


async def process(url: str) -> None:
    backend = RedisBackend.from_url(url)
    memory = MemoryPrimitive(backend=backend, namespace="reads")
    await memory.get("warm")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(20_000):
        view = memory.scoped(f"empty{i}")
        kind = i % 3
        if kind == 0:
            await view.get("k")
        elif kind == 1:
            await view.search("anything")
        else:
            await view.list(limit=5)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(d.size_diff for d in after.compare_to(before, "filename"))
    print(
        f"process: {held / 1e6:.2f} MB held after 20,000 reads of empty namespaces, "
        f"{len(backend.indexes)} search indexes"
    )
    await memory.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="redis", choices=["redis", "valkey"])
    parser.add_argument("--namespaces", type=int, default=1500)
    args = parser.parse_args()
    server = start_server(args.kind)
    try:
        began = time.monotonic()
        await expired(server.url(0), args.namespaces)
        await ttl_index(server.url(1))
        await process(server.url(2))
        print(f"({args.kind} {server.version}, {time.monotonic() - began:.0f} s)")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
