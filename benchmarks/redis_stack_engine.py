"""The Redis Query Engine search path next to the local index, on a real Redis Stack.

    python -m benchmarks.redis_stack_engine [--sizes 10000]

A Redis Stack (Redis 7.4 + RediSearch 2.10) is started on a free port by
``../shared/redis-stack/redis-stack.sh`` (relative to the repository root, or
``TTA_REDIS_STACK_SCRIPT``). Per size, N records of the engine benchmark's common-word corpus
with 384-d vectors are written; then a ``search_engine="query-engine"`` backend and a
``"local"`` one (both fresh) search the same namespace on the same server, in the same run:
their first search (for the Query Engine: its index built over what exists, and the BM25
statistics loaded), their memory in process, medians of 30 searches per mode, and recall@10
of the Query Engine's hits against the local (exact) ones: keyword, semantic with random
query vectors (the hard case for HNSW: every record about as far), semantic with queries near
a record (its vector plus noise, as a paraphrase is) and hybrid. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
from typing import Any

import numpy as np

from tta_dev_primitives import RedisBackend
from tta_dev_primitives.memory import codec
from tta_dev_primitives.memory.records import Entry, SearchQuery

from .engine import LIMIT, corpus, queries, vectors
from .redis_engine import _median_ms
from .servers import ServerUnavailable, _free_port

_STACK_SCRIPT = os.path.join("..", "shared", "redis-stack", "redis-stack.sh")


class _Stack:
    """A Redis Stack on a free port, through the helper script."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        script = os.environ.get("TTA_REDIS_STACK_SCRIPT") or os.path.join(root, _STACK_SCRIPT)
        if not os.path.isfile(script):
            raise ServerUnavailable(f"no Redis Stack helper script at {_STACK_SCRIPT}")
        self.script = script
        self.port = _free_port()
        try:
            done = subprocess.run(
                ["bash", script, "start", str(self.port)],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.CalledProcessError as exc:
            raise ServerUnavailable(f"redis-stack did not start: {exc.stderr[-500:]}") from exc
        self._url = done.stdout.strip().splitlines()[-1]
        self.version = "7.4+search"

    def url(self) -> str:
        return self._url

    def stop(self) -> None:
        subprocess.run(["bash", self.script, "stop", str(self.port)], check=False, timeout=30)


def _recall(got: list[Any], want: list[Any]) -> float:
    exact = {h.key for h in want}
    return len(exact & {h.key for h in got}) / len(exact) if exact else 1.0


async def measure_stack(url: str, n: int, count: int = 30) -> dict[str, float]:
    """The Query Engine path next to the local index on one Redis Stack (see the docstring)."""
    texts = corpus(n)
    matrix = vectors(n)
    qs = queries(count)
    random_q = vectors(count, seed=4)
    rng = np.random.default_rng(5)
    picks = rng.integers(0, n, count)
    near = matrix[picks] + 0.5 * vectors(count, seed=6)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    ns = ("bench-qe", str(n))
    out: dict[str, float] = {}
    writer = RedisBackend.from_url(url, max_size=None, socket_timeout=30.0, search_engine="local")
    entries = [
        Entry(f"r{i}", codec.encode_snapshot(t)[0], None, None, matrix[i])
        for i, t in enumerate(texts)
    ]
    for i in range(0, n, 10_000):
        await writer.put_many(ns, entries[i : i + 10_000])
    # The first search waits for the server to index what exists (minutes at 100k).
    engine = RedisBackend.from_url(
        url, max_size=None, socket_timeout=30.0, search_timeout=3600.0, search_engine="query-engine"
    )
    local = RedisBackend.from_url(url, max_size=None, socket_timeout=30.0, search_engine="local")
    start = time.perf_counter()
    await engine.search(ns, SearchQuery(qs[0], LIMIT, "semantic", vector=random_q[0]))
    out["qe_first_search_s"] = time.perf_counter() - start
    start = time.perf_counter()
    await local.search(ns, SearchQuery(qs[0], LIMIT))
    out["local_first_search_s"] = time.perf_counter() - start
    out["qe_stats_mib"] = engine.query_engine.stats.total / 2**20
    out["local_index_mib"] = local.indexes.total / 2**20

    cases: dict[str, tuple[str, Any]] = {
        "keyword": ("keyword", None),
        "semantic": ("semantic", random_q),
        "semantic_near": ("semantic", near),
        "hybrid": ("hybrid", near),
    }
    for name, (mode, qvecs) in cases.items():

        def run(backend: RedisBackend, mode: str = mode, qvecs: Any = qvecs) -> Any:
            async def one(j: int) -> Any:
                vec = None if qvecs is None else qvecs[j]
                return await backend.search(ns, SearchQuery(qs[j], LIMIT, mode, vector=vec))  # type: ignore[arg-type]

            return one

        out[f"qe_{name}_ms"] = await _median_ms(run(engine), count)
        out[f"local_{name}_ms"] = await _median_ms(run(local), count)
        recalls = [_recall(await run(engine)(i), await run(local)(i)) for i in range(count)]
        out[f"qe_{name}_recall10"] = statistics.fmean(recalls)
    await engine.clear(ns)  # drops the FT index before the records
    for backend in (writer, engine, local):
        await backend.aclose()
    return out


def run(sizes: list[int]) -> dict[str, Any]:
    """Measure at every size on one Redis Stack; {} when none can be started."""
    try:
        server = _Stack()
    except ServerUnavailable as exc:
        print(f"redis-stack: skipped ({exc})")
        return {}
    results: dict[str, Any] = {}
    try:
        for n in sizes:
            row = asyncio.run(measure_stack(server.url(), n))
            row["n"] = n
            results[f"redis-stack {n}"] = row
            shown = {k: round(v, 3) for k, v in row.items()}
            print(f"redis-stack {n}: {json.dumps(shown)}", flush=True)
    finally:
        server.stop()
    return results


def render(results: dict[str, Any]) -> str:
    """The Query Engine rows of the Redis search section (empty without results)."""
    if not results:
        return ""
    lines = [
        "",
        'Redis Stack 7.4 (RediSearch 2.10), `search_engine="query-engine"` next to '
        '`"local"` on the same server and records (`benchmarks/redis_stack_engine.py`); '
        "recall@10 of the Query Engine's hits against the exact local ones:",
        "",
        "| records | keyword QE / local | recall | semantic QE / local | recall (random / near) "
        "| hybrid QE / local | recall | first search QE / local | memory QE / local |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results.values():
        lines.append(
            f"| {int(row['n']):,} "
            f"| {row['qe_keyword_ms']:.1f} / {row['local_keyword_ms']:.1f} ms "
            f"| {row['qe_keyword_recall10']:.3f} "
            f"| {row['qe_semantic_ms']:.1f} / {row['local_semantic_ms']:.1f} ms "
            f"| {row['qe_semantic_recall10']:.3f} / {row['qe_semantic_near_recall10']:.3f} "
            f"| {row['qe_hybrid_ms']:.1f} / {row['local_hybrid_ms']:.1f} ms "
            f"| {row['qe_hybrid_recall10']:.3f} "
            f"| {row['qe_first_search_s']:.1f} / {row['local_first_search_s']:.1f} s "
            f"| {row['qe_stats_mib']:.1f} / {row['local_index_mib']:.1f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    try:
        server = _Stack()
    except ServerUnavailable as exc:
        print(f"redis-stack: skipped ({exc})")
        return
    results: dict[str, Any] = {}
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            row = asyncio.run(measure_stack(server.url(), n))
            results[f"redis-stack {n}"] = row
            print(f"redis-stack {n}: {json.dumps({k: round(v, 3) for k, v in row.items()})}")
    finally:
        server.stop()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
