"""The Redis client's own cost, by reply parser and command packer: instructions and ratios.

    .venv/bin/python scripts/redis_client_cost.py [--ops 2000] [--records 20000] [--rounds 30]

Three client set-ups of ``RedisBackend.from_url`` against one private server
(benchmarks/servers.py):

* ``python+fast``: redis-py's pure-Python reply parser and the library's own command packer
  (``redis.clients.fast_packing``): what runs when ``hiredis`` is not installed;
* ``hiredis+fast``: hiredis parses the replies, the library's packer packs the commands;
* ``hiredis``: hiredis parses and packs (redis-py's ``HiredisRespSerializer``): no
  ``fast_packing``.

**Instructions** (``valgrind --tool=callgrind``, client process only: the server is not
traced): a child process runs ``OP`` N times, or a fresh backend's first search of a namespace
of ``--records`` records (the index load), and per-operation cost is ``(count(OP) -
count(none)) / N``; instruction counts do not depend on what else the machine runs.
**Wall time**: the three set-ups and raw redis-py (``SET``/``GET`` of the same JSON, same
parser as the set-up) in one process, interleaved rounds of 200 calls; medians of each
round's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import callgrind

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}
SETUPS = ("python+fast", "hiredis+fast", "hiredis")
NS = ("bench", "client")
LOAD_NS = ("bench", "load")


def _configure(setup: str) -> None:
    """Make this process's redis-py and backend use ``setup`` (before building backends)."""
    if setup == "python+fast":
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # as if not installed
    import redis.utils

    from tta_dev_primitives.memory.backends.redis import clients as backend_module

    if setup != "python+fast" and not redis.utils.HIREDIS_AVAILABLE:
        raise SystemExit("hiredis is not installed: pip install hiredis")
    if setup == "hiredis":
        backend_module.fast_packing = lambda pool: pool  # type: ignore[assignment]


async def _child(setup: str, op: str, n: int, url: str) -> None:
    _configure(setup)
    from tta_dev_primitives import RedisBackend
    from tta_dev_primitives.memory.records import Entry, SearchQuery

    # Long timeouts: under valgrind a call takes 50 times longer.
    backend = RedisBackend.from_url(url, max_size=None, socket_timeout=120.0, search_timeout=None)
    payload = json.dumps(VALUE, separators=(",", ":"))
    await backend.put(NS, Entry("k", payload))
    await backend.get(NS, "k")
    if op == "get":
        for _ in range(n):
            await backend.get(NS, "k")
    elif op == "add":
        for i in range(n):
            await backend.put(NS, Entry(f"k{i % 100}", payload))
    elif op == "load":
        await backend.search(LOAD_NS, SearchQuery("agent memory search", 10))
    elif op != "none":
        raise SystemExit(f"unknown operation {op!r}")
    await backend.aclose()


def _instructions(setup: str, op: str, n: int, url: str) -> int:
    return callgrind.instructions(__file__, "--child", setup, op, str(n), url)


async def _write_load(url: str, records: int) -> None:
    from benchmarks.engine import corpus, vectors

    from tta_dev_primitives import RedisBackend
    from tta_dev_primitives.memory import codec
    from tta_dev_primitives.memory.records import Entry

    texts = corpus(records)
    matrix = vectors(records)
    backend = RedisBackend.from_url(url, max_size=None, socket_timeout=60.0)
    await backend.clear(LOAD_NS)
    entries = [
        Entry(f"r{i}", codec.encode_snapshot(t)[0], None, None, matrix[i])
        for i, t in enumerate(texts)
    ]
    for i in range(0, records, 10_000):
        await backend.put_many(LOAD_NS, entries[i : i + 10_000])
    await backend.aclose()


def instructions(url: str, ops: int, records: int) -> dict[str, dict[str, float]]:
    asyncio.run(_write_load(url, records))
    out: dict[str, dict[str, float]] = {}
    for setup in SETUPS:
        base = _instructions(setup, "none", 0, url)
        row = {
            "get": (_instructions(setup, "get", ops, url) - base) / ops,
            "add": (_instructions(setup, "add", ops, url) - base) / ops,
            "load": (_instructions(setup, "load", 0, url) - base) / records,
        }
        out[setup] = row
        print(setup, {k: round(v) for k, v in row.items()}, flush=True)
    return out


async def _wall(url: str, rounds: int) -> dict[str, dict[str, float]]:
    """Interleaved wall time in one process: needs hiredis installed (the Python parser is
    then chosen per connection with ``parser_class``)."""
    import redis.asyncio as aioredis
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser

    from tta_dev_primitives import RedisBackend
    from tta_dev_primitives.memory.backends.redis import clients as backend_module
    from tta_dev_primitives.memory.records import Entry

    payload = json.dumps(VALUE, separators=(",", ":"))
    parsers = {"python+fast": _AsyncRESP3Parser, "hiredis+fast": _AsyncHiredisParser}
    parsers["hiredis"] = _AsyncHiredisParser
    backends: dict[str, Any] = {}
    raws: dict[str, Any] = {}
    fast = backend_module.fast_packing
    for setup in SETUPS:
        if setup == "hiredis":
            backend_module.fast_packing = lambda pool: pool  # type: ignore[assignment]
        backends[setup] = RedisBackend.from_url(url, max_size=None, parser_class=parsers[setup])
        backend_module.fast_packing = fast  # type: ignore[assignment]
        raws[setup] = aioredis.from_url(url, parser_class=parsers[setup])
        await backends[setup].put(NS, Entry("k", payload))
    await raws["hiredis"].set("raw:k", payload)
    samples: dict[str, dict[str, list[float]]] = {
        s: {"get": [], "add": [], "get_ratio": [], "add_ratio": []} for s in SETUPS
    }

    async def timed(call: Any) -> float:
        start = time.perf_counter()
        for i in range(200):
            await call(i)
        return (time.perf_counter() - start) / 200 * 1e6

    for r in range(rounds):
        order = SETUPS[r % 3 :] + SETUPS[: r % 3]
        for setup in order:
            backend, raw = backends[setup], raws[setup]
            raw_get = await timed(lambda i, raw=raw: raw.get("raw:k"))
            raw_set = await timed(lambda i, raw=raw: raw.set(f"raw:k{i % 100}", payload))
            get = await timed(lambda i, b=backend: b.get(NS, "k"))
            add = await timed(lambda i, b=backend: b.put(NS, Entry(f"k{i % 100}", payload)))
            row = samples[setup]
            row["get"].append(get)
            row["add"].append(add)
            row["get_ratio"].append(get / raw_get)
            row["add_ratio"].append(add / raw_set)
    for setup in SETUPS:
        await backends[setup].aclose()
        await raws[setup].aclose()
    return {s: {k: statistics.median(v) for k, v in row.items()} for s, row in samples.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        setup, op, n, url = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        asyncio.run(_child(setup, op, n, url))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--kind", default="redis")
    parser.add_argument("--no-instructions", action="store_true")
    parser.add_argument("--no-wall", action="store_true")
    args = parser.parse_args()
    from benchmarks.servers import start_server

    server = start_server(args.kind)
    try:
        url = server.url()
        print(f"{args.kind} {server.version}")
        if not args.no_instructions:
            counts = instructions(url, args.ops, args.records)
            ref = counts["python+fast"]
            print("\ninstructions per operation (client process), and / python+fast:")
            for setup, row in counts.items():
                print(
                    f"  {setup:13s} "
                    + "  ".join(f"{op} {v:9.0f} ({v / ref[op]:.2f}x)" for op, v in row.items())
                )
        if not args.no_wall:
            wall = asyncio.run(_wall(url, args.rounds))
            print("\nwall time per call (us, median of rounds) and / raw redis-py (same parser):")
            for setup, row in wall.items():
                print(
                    f"  {setup:13s} get {row['get']:6.1f} ({row['get_ratio']:.2f}x)  "
                    f"add {row['add']:6.1f} ({row['add_ratio']:.2f}x)"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
