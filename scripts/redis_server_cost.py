"""Server-side cost of a Redis ``add``/``get`` through the primitive against a raw ``SET``/
``GET`` of the same JSON: ``INFO commandstats`` (microseconds per call, each command the
scripts run listed apart), on a private server (benchmarks/servers.py).

    .venv/bin/python scripts/redis_server_cost.py [--n 3000]

The client side is in scripts/redis_op_instructions.py; this is the rest of a round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import start_server

from tta_dev_primitives import MemoryPrimitive

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}


def _show(label: str, stats: dict[str, Any], n: int) -> None:
    rows = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
    # EVALSHA's time includes the commands its script runs (listed under it).
    total = rows[0][1]["usec"] / n
    print(f"{label}: {total:.2f} us per operation on the server")
    for name, v in rows:
        if v["calls"] >= n:
            per = v["usec_per_call"]
            print(f"  {name[8:]:10s} {v['calls'] / n:4.1f} calls  {per:7.2f} us/call")


async def main(url: str, n: int) -> None:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(url)
    memory = MemoryPrimitive(redis_url=url, max_size=None)
    await memory.add("k", VALUE)
    await memory.get("k")
    await raw.set("raw:k0", json.dumps(VALUE))
    runs = {
        "add": lambda i: memory.add(f"k{i % 100}", VALUE),
        "get": lambda i: memory.get("k"),
        "raw SET": lambda i: raw.set(f"raw:k{i % 100}", json.dumps(VALUE)),
        "raw GET": lambda i: raw.get("raw:k0"),
    }
    for label, run in runs.items():
        await raw.config_resetstat()
        for i in range(n):
            await run(i)
        _show(label, await raw.info("commandstats"), n)
    await memory.aclose()
    await raw.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    server = start_server("redis")
    try:
        asyncio.run(main(server.url(), args.n))
    finally:
        server.stop()
