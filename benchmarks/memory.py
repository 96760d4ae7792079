"""Process memory per record: in memory, and as a Redis process's local search index.

    python -m benchmarks.memory [--records 100000] [--where memory,redis] [--trace]

Each figure comes from a fresh process, so nothing else is counted. The process imports the
library and makes the engine benchmark's corpus (12-word records, 384-d unit float32
vectors), reads its RSS (the **baseline**), then:

* ``memory``: ``MemoryPrimitive(embedder=...)``, ``add_many`` of every record, one keyword and
  one hybrid search (the index is built);
* ``redis``: the records were written to a private server by another process; a fresh
  ``RedisBackend`` makes one search, which loads the namespace's index into this process;

then frees its own copy of the vectors and reads RSS again. **held** is that RSS less the
baseline; the **floor** is the float32 vectors alone (N x 384 x 4 bytes), which any exact
in-process semantic search holds. ``--trace`` also runs each under ``tracemalloc`` and prints
what the library holds by source line (slower; the totals are exact and repeatable, unlike
RSS on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .servers import ServerUnavailable, start_server

_CHILD = r"""
import asyncio, gc, json, sys, tracemalloc
import numpy as np
from benchmarks.engine import DIMS, corpus, vectors
from tta_dev_primitives import CallableEmbedder, MemoryPrimitive, RedisBackend
from tta_dev_primitives.memory.records import Entry, SearchQuery
from tta_dev_primitives.memory import codec

n, where, url, trace = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"


def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def write():
    texts = corpus(n)
    matrix = vectors(n)
    backend = RedisBackend.from_url(url, max_size=None, socket_timeout=60.0)
    entries = [
        Entry(f"r{i}", codec.encode_snapshot(t)[0], None, None, matrix[i],
              space=("fixed", DIMS))
        for i, t in enumerate(texts)
    ]
    for i in range(0, n, 10_000):
        await backend.put_many(("bench", "memory"), entries[i : i + 10_000])
    await backend.aclose()


async def measure():
    texts = corpus(n)
    gc.collect()
    out = {"baseline_mb": rss_mb()}
    matrix = vectors(n)
    rows = {t: i for i, t in enumerate(texts)}
    if trace:
        tracemalloc.start(1)
    if where == "memory":
        fn = lambda batch: matrix[[rows.get(t, 0) for t in batch]]
        emb = CallableEmbedder(fn, name="fixed", dimensions=DIMS, batch_size=4096)
        memory = MemoryPrimitive(max_size=None, embedder=emb)
        await memory.add_many([(f"r{i}", t) for i, t in enumerate(texts)])
        await memory.search("agent memory search", mode="keyword")
        await memory.search("agent memory search", mode="hybrid", limit=10)
        keep = memory
    else:
        backend = RedisBackend.from_url(url, max_size=None, socket_timeout=60.0)
        await backend.search(("bench", "memory"), SearchQuery("agent memory search", 10))
        keep = backend
    del rows, texts
    matrix = None
    gc.collect()
    out["rss_mb"] = rss_mb()
    if trace:
        snap = tracemalloc.take_snapshot()
        out["traced_mb"] = sum(s.size for s in snap.statistics("filename")) / 2**20
        top = snap.statistics("lineno")[:25]
        out["top"] = [
            [f"{s.traceback[0].filename.split('src/')[-1]}:{s.traceback[0].lineno}",
             round(s.size / 2**20, 1), s.count]
            for s in top
        ]
    out["keep"] = bool(keep)
    print(json.dumps(out))


asyncio.run(write() if where == "write" else measure())
"""


def _child(n: int, where: str, url: str = "", trace: bool = False) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), where, url, "1" if trace else "0"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=1800,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    if where == "write":
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(n: int, wheres: list[str], trace: bool) -> dict[str, Any]:
    """``{where: {...}}``: held and baseline RSS (MB) of each, plus the floor."""
    floor = n * 384 * 4 / 2**20
    results: dict[str, Any] = {"records": n, "floor_mb": floor}
    for where in wheres:
        server = None
        url = ""
        if where == "redis":
            try:
                server = start_server("redis")
            except ServerUnavailable as exc:
                print(f"redis: skipped ({exc})")
                continue
            url = server.url()
            _child(n, "write", url)
        try:
            row = _child(n, where, url)
            if trace:
                traced = _child(n, where, url, trace=True)
                row["traced_mb"] = traced["traced_mb"]
                row["top"] = traced["top"]
        finally:
            if server is not None:
                server.stop()
        row["held_mb"] = row["rss_mb"] - row["baseline_mb"]
        row["ratio"] = row["held_mb"] / floor
        results[where] = row
    return results


def render(results: dict[str, Any]) -> str:
    n = results["records"]
    floor = results["floor_mb"]
    lines = [
        f"{n:,} records with 384-d vectors; floor (the float32 vectors alone) {floor:.0f} MB",
        "",
        "| where | held (RSS - baseline) | per 100k | / floor | process RSS "
        "| traced (tracemalloc) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for where in ("memory", "redis"):
        row = results.get(where)
        if row is None:
            continue
        traced = f"{row['traced_mb']:.0f} MB" if "traced_mb" in row else "-"
        lines.append(
            f"| {where} | {row['held_mb']:.0f} MB | {row['held_mb'] * 1e5 / n:.0f} MB "
            f"| {row['ratio']:.2f}x | {row['rss_mb']:.0f} MB | {traced} |"
        )
    for where in ("memory", "redis"):
        row = results.get(where)
        if row and "top" in row:
            lines += ["", f"tracemalloc, {where}, largest holders (MB, blocks):"]
            lines += [f"  {name:60s} {mb:8.1f} {count:9d}" for name, mb, count in row["top"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--where", default="memory,redis")
    parser.add_argument("--trace", action="store_true", help="also run under tracemalloc")
    parser.add_argument("--json", default="", help="write the raw figures here")
    args = parser.parse_args(argv)
    results = measure(args.records, args.where.split(","), args.trace)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(render(results))


if __name__ == "__main__":
    main()
