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
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from tta_dev_primitives import RedisBackend
from tta_dev_primitives.memory import codec
from tta_dev_primitives.memory.backends.redis import scripts as lua
from tta_dev_primitives.memory.backends.redis.wire import split
from tta_dev_primitives.memory.records import Entry, SearchQuery

from . import engine
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
    space = floor._keys(ns)
    start = time.perf_counter()
    reply = await floor._server.eval(lua.LOAD, space)
    keys = split(reply[5], reply[6])
    found = await floor._server.fetch(space, keys, vectors=True)
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
    floor: list[float] = []
    for i in range(count):
        t0 = time.perf_counter()
        matrix @ qvecs[i]
        floor.append(time.perf_counter() - t0)
    out["floor_matvec_ms"] = statistics.median(floor) * 1e3
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


SECTION = "## Redis search targets"


def run(sizes: list[int], kinds: list[str]) -> dict[str, Any]:
    """Measure every kind at every size; rows keyed ``"<kind> <version> <n>"``."""
    results: dict[str, Any] = {}
    for kind in kinds:
        try:
            server = start_server(kind)
        except ServerUnavailable as exc:
            print(f"{kind}: skipped ({exc})")
            continue
        try:
            for n in sizes:
                row = asyncio.run(measure(server.url(), n))
                row.update({"kind": kind, "version": server.version, "n": n})
                results[f"{kind} {server.version} {n}"] = row
                shown = {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}
                print(f"{kind} {n}: {json.dumps(shown)}", flush=True)
        finally:
            server.stop()
    return results


def render(results: dict[str, Any], command: str) -> str:
    lines = [
        SECTION + " (local index and change log)",
        "",
        f"Measured by `{command}` (`benchmarks/redis_engine.py`): the engine benchmark's "
        "common-word corpus with 384-d vectors, written by one backend; a fresh backend's "
        "first search loads the namespace (next to the **reload floor**: fetching and "
        "decoding the same records, no index); then medians of 30 searches, next to the same "
        "searches on the in-memory store in the same run and one numpy float32 matrix-vector "
        "product (the floor of any exact semantic search); `get`/`add` per call next to one "
        "raw redis-py `HGET`/`HSET` round trip on the same server.",
        "",
        "| server | records | keyword | in memory | semantic | in memory | mat-vec floor "
        "| hybrid | in memory | first search | reload floor | get / raw | add / raw |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for row in results.values():
        get_ratio = row["get_us"] / row["raw_hget_us"]
        add_ratio = row["add_us"] / row["raw_hset_us"]
        lines.append(
            f"| {row['kind']} {row['version']} | {row['n']:,} "
            f"| {row['redis_keyword_ms']:.2f} ms | {row['memory_keyword_ms']:.2f} ms "
            f"| {row['redis_semantic_ms']:.2f} ms | {row['memory_semantic_ms']:.2f} ms "
            f"| {row.get('floor_matvec_ms', float('nan')):.2f} ms "
            f"| {row['redis_hybrid_ms']:.2f} ms | {row['memory_hybrid_ms']:.2f} ms "
            f"| {row['first_search_s']:.2f} s | {row['reload_floor_s']:.2f} s "
            f"| {get_ratio:.2f}x | {add_ratio:.2f}x |"
        )
    lines += ["", "| target (100k records) | figure | verdict |", "| --- | --- | --- |"]
    big = [r for r in results.values() if r["n"] == 100_000]
    if not big:
        lines.append("| all | not measured (run with `--sizes 100000`) | n/a |")
    for row in big:
        name = f"{row['kind']}"
        checks = [
            ("keyword (common words) under 10 ms", f"{row['redis_keyword_ms']:.1f} ms",
             row["redis_keyword_ms"] < 10),
            ("semantic under 10 ms", f"{row['redis_semantic_ms']:.1f} ms "
             f"(the mat-vec floor alone: {row.get('floor_matvec_ms', float('nan')):.1f} ms)",
             row["redis_semantic_ms"] < 10),
            ("hybrid under 30 ms", f"{row['redis_hybrid_ms']:.1f} ms",
             row["redis_hybrid_ms"] < 30),
            ("fresh process's first search under 5 s", f"{row['first_search_s']:.2f} s",
             row["first_search_s"] < 5),
        ]  # fmt: skip
        for label, figure, ok in checks:
            verdict = "**met**" if ok else "**missed**"
            lines.append(f"| {name}: {label} | {figure} | {verdict} |")
    return "\n".join(lines) + "\n"


def splice(report: str, section: str) -> str:
    """``report`` with its Redis search section replaced by ``section``."""
    return engine.splice(report, section, SECTION)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--kinds", default="redis,valkey")
    parser.add_argument("--json", default="benchmarks/results/redis_engine.json")
    parser.add_argument("--out", default="", help="splice the section into this report")
    args = parser.parse_args(argv)
    results = run([int(s) for s in args.sizes.split(",")], args.kinds.split(","))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    text = render(results, f"python -m benchmarks.redis_engine --sizes {args.sizes}")
    print(text)
    if args.out:
        out = Path(args.out)
        out.write_text(splice(out.read_text(encoding="utf-8"), text), encoding="utf-8")


if __name__ == "__main__":
    main()
