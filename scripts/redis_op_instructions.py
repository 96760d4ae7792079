"""Instructions of a Redis ``add``/``get`` through the primitive against a raw redis-py
``SET``/``GET`` of the same JSON (issue 27), client process only, and where ours go.

    .venv/bin/python scripts/redis_op_instructions.py [--n 2000] [--profile]

Starts a private server (benchmarks/servers.py) and runs, each in a child under
``valgrind --tool=callgrind``, N calls of one operation: ``rawset``/``rawget`` (redis-py's
asyncio client, ``json.dumps``/``json.loads`` of the value), ``add``/``get`` on the
primitive over the Redis backend behind the fallback (what ``redis_url=`` builds) and
``add-nofb``/``get-nofb`` (``fallback=False``), no SDK, with a 120 s round-trip timeout.
Per-call cost = ``(count(OP) - count(start)) / N``, ``start`` the same process without the
loop (``none`` for redis-py, ``pnone`` for ours); instruction counts do not depend on what
else the machine runs. ``--profile`` also prints each operation's own time by function
(cProfile, not under valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
from pathlib import Path
from typing import Any

import callgrind

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}
OPS = ("none", "rawset", "rawget", "pnone", "add", "get", "pnone-nofb", "add-nofb", "get-nofb")


async def _run(op: str, n: int, url: str) -> None:
    if op.startswith("raw") or op == "none":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, socket_timeout=120.0)
        await client.set("raw:k", json.dumps(VALUE, separators=(",", ":")))
        json.loads(await client.get("raw:k"))
        if op == "rawset":
            for i in range(n):
                await client.set(f"raw:k{i % 100}", json.dumps(VALUE, separators=(",", ":")))
        elif op == "rawget":
            for _ in range(n):
                json.loads(await client.get("raw:k"))
        await client.aclose()
        return
    from tta_dev_primitives import FallbackBackend, InMemoryBackend, MemoryPrimitive, RedisBackend

    # What MemoryPrimitive(redis_url=url, fallback=...) builds, with a round trip's timeout
    # long enough for valgrind (at the default 2 s a slow call would switch the fallback to
    # its in-memory mirror, and the loop would never reach Redis).
    backend: Any = RedisBackend.from_url(url, max_size=None, socket_timeout=120.0)
    if not op.endswith("-nofb"):
        backend = FallbackBackend(backend, InMemoryBackend(10_000, max_total=10_000))
    memory = MemoryPrimitive(backend)
    await memory.add("k", VALUE)
    await memory.get("k")
    if op.startswith("add"):
        for i in range(n):
            await memory.add(f"k{i % 100}", VALUE)
    elif op.startswith("get"):
        for _ in range(n):
            await memory.get("k")
    await memory.aclose()


def _instructions(op: str, n: int, url: str) -> int:
    return callgrind.instructions(__file__, "--child", op, str(n), url)


def _profile(op: str, n: int, url: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_run(op, n, url))
    profiler.disable()
    print(f"--- {op}: own time by function")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        op, n, url = args.child
        asyncio.run(_run(op, int(n), url))
        return
    from benchmarks.servers import start_server

    server = start_server("redis")
    try:
        url = server.url()
        counts = {op: _instructions(op, args.n, url) for op in OPS}
        # Each side less its own start (imports, connection, one add and get): the library's
        # imports are not a per-call cost.
        per = {}
        for op, count in counts.items():
            if op.startswith("raw"):
                per[op] = (count - counts["none"]) / args.n
            elif not op.endswith("none"):
                start = counts["pnone-nofb" if op.endswith("-nofb") else "pnone"]
                per[op] = (count - start) / args.n
        for op, cost in per.items():
            floor = per["rawset"] if op.startswith("add") or op == "rawset" else per["rawget"]
            print(f"{op:9s} {cost:10.0f} instructions/call  {cost / floor:5.2f}x raw")
        if args.profile:
            for op in ("rawset", "add", "rawget", "get"):
                _profile(op, args.n, url)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
