"""Search on Redis (and Valkey) at the speed of memory: the Redis backend's targets.

    python -m benchmarks.redis_engine [--sizes 10000,100000] [--kinds redis,valkey]

Each kind runs on a private server (benchmarks/servers.py). Per size, N records of the
engine benchmark's common-word corpus with 384-d vectors are written by one backend (the
"other process"); then a fresh backend (empty index, as in a fresh process) makes its first
search, which loads the namespace: that time is shown next to the **reload floor**, the
same records fetched with the backend's pipelined FETCH calls and decoded, no index built.
Then medians of 30 keyword (common words), semantic and hybrid searches, next to the same
searches on the in-memory store in the same run (the floor: "the speed of memory").
``get``/``add`` are timed per call against one raw redis-py round trip (``HGET``/``HSET``)
on the same server, as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from tta_dev_primitives import RedisBackend
from tta_dev_primitives.memory import codec
from tta_dev_primitives.memory.backends import redis_scripts as lua
from tta_dev_primitives.memory.records import Entry, SearchQuery

from .engine import LIMIT, _store, corpus, queries, vectors
from .servers import ServerUnavailable, start_server


async def _median_ms(run: Any, count: int) -> float:
    times = []
    for i in range(count):
        start = time.perf_counter()
        await run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


async def measure(url: str, n: int, count: int = 30) -> dict[str, float]:
    texts = corpus(n)
    matrix = vectors(n)
    qs = queries(count)
    qvecs = vectors(count, seed=4)
    ns = ("bench", str(n))
    out: dict[str, float] = {}
    writer = RedisBackend.from_url(url, max_size=None, socket_timeout=30.0)
    entries = [
        Entry(f"r{i}", codec.encode_snapshot(t)[0], None, None, matrix[i])
        for i, t in enumerate(texts)
    ]
    start = time.perf_counter()
    for i in range(0, n, 10_000):
        await writer.put_many(ns, entries[i : i + 10_000])
    out["write_s"] = time.perf_counter() - start

    reader = RedisBackend.from_url(url, max_size=None, socket_timeout=30.0)
    start = time.perf_counter()
    await reader.search(ns, SearchQuery(qs[0], LIMIT))
    out["first_search_s"] = time.perf_counter() - start
    # The floor of a first search: fetching and decoding the records, no index.
    floor = RedisBackend.from_url(url, max_size=None, socket_timeout=30.0)
    space = floor._space(ns)
    start = time.perf_counter()
    keys = (await floor._eval(lua.LOAD, space))[5:]
    found = await floor._fetch(space, keys, vectors=True)
    for fields in found:
        codec.decode(fields[1].decode())
        np.frombuffer(fields[3], dtype="<f4")
    out["reload_floor_s"] = time.perf_counter() - start
    await floor.aclose()

    def search(mode: str) -> Any:
        async def run(i: int) -> Any:
            vec = None if mode == "keyword" else qvecs[i]
            return await reader.search(ns, SearchQuery(qs[i], LIMIT, mode, vector=vec))  # type: ignore[arg-type]

        return run

    for mode in ("keyword", "semantic", "hybrid"):
        out[f"redis_{mode}_ms"] = await _median_ms(search(mode), count)
    store = _store(texts, matrix)
    store.search_results(SearchQuery("warm", 1))
    for mode in ("keyword", "semantic", "hybrid"):
        times = []
        for i in range(count):
            vec = None if mode == "keyword" else qvecs[i]
            t0 = time.perf_counter()
            store.search_results(SearchQuery(qs[i], LIMIT, mode, vector=vec))  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
        out[f"memory_{mode}_ms"] = statistics.median(times) * 1e3

    # get/add per call, against one raw round trip on the same server.
    raw = aioredis.from_url(url)
    ops = 2000
    small = ("small",)
    await writer.put(small, Entry("k", '"value"'))
    await raw.hset("raw:k", mapping={"s": 1, "v": '"value"'})
    out["get_us"] = await _median_ms(lambda i: writer.get(small, "k"), ops) * 1e3
    out["raw_hget_us"] = await _median_ms(lambda i: raw.hget("raw:k", "v"), ops) * 1e3
    out["add_us"] = (
        await _median_ms(lambda i: writer.put(small, Entry(f"k{i % 100}", '"v"')), ops) * 1e3
    )
    out["raw_hset_us"] = (
        await _median_ms(lambda i: raw.hset(f"raw:k{i % 100}", "v", '"v"'), ops) * 1e3
    )
    await raw.aclose()
    await writer.clear(ns)
    await writer.aclose()
    await reader.aclose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--kinds", default="redis,valkey")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        try:
            server = start_server(kind)
        except ServerUnavailable as exc:
            print(f"{kind}: skipped ({exc})")
            continue
        try:
            for n in (int(s) for s in args.sizes.split(",")):
                row = asyncio.run(measure(server.url(), n))
                results[f"{kind} {server.version} {n}"] = row
                print(f"{kind} {n}: {json.dumps({k: round(v, 3) for k, v in row.items()})}")
        finally:
            server.stop()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
