"""Throughput of many concurrent namespaces on a Redis Cluster of 1, 2 and 3 masters.

``make bench BENCH_ARGS='--cluster'`` (or ``python -m benchmarks --cluster``) starts three
private clusters at once (1, 2 and 3 masters, no replicas, loopback, persistence off), then
runs interleaved rounds: in each, for each cluster (in an order that rotates), ``--procs``
client processes each drive ``--namespaces`` namespaces concurrently (one asyncio task per
namespace, an ``add`` then a ``get`` on a working set of 200 keys) for ``--seconds``, after
a short untimed warm-up. Throughput is operations a second summed over the processes; the
ratio to 1 master is taken round by round (median over rounds), so load that comes and
goes on the machine cancels out.

The caveat that decides the numbers: client processes and every ``redis-server`` share the
machine's cores. On 2 cores, more masters cannot make more CPU; a cluster helps when its
masters run on their own cores (machines), which this benchmark cannot show.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

__all__ = ["ClusterConfig", "run_cluster_bench"]

_WORKING_SET = 200


@dataclass(frozen=True)
class ClusterConfig:
    masters: tuple[int, ...] = (1, 2, 3)
    rounds: int = 5
    seconds: float = 2.0
    procs: int = 2
    namespaces: int = 32  # per process


def _names(proc: int, count: int) -> list[str]:
    return [f"bench-p{proc}-n{i}" for i in range(count)]


async def _drive(url: str, names: Sequence[str], seconds: float) -> tuple[int, float]:
    from tta_dev_primitives import MemoryPrimitive, RedisBackend

    backend = RedisBackend.from_url(url, max_size=1000)
    memory = MemoryPrimitive(backend=backend)
    views = [memory.scoped(n) for n in names]
    value = {"text": "a conversation turn of some twenty words about deploys on Fridays"}

    async def one(view: MemoryPrimitive, until: float, counts: list[int]) -> None:
        i = 0
        while time.perf_counter() < until:
            await view.add(f"k{i % _WORKING_SET}", value)
            await view.get(f"k{(i * 7) % _WORKING_SET}")
            i += 1
        counts.append(2 * i)

    try:
        warm: list[int] = []
        await asyncio.gather(*(one(v, time.perf_counter() + 0.3, warm) for v in views))
        counts: list[int] = []
        start = time.perf_counter()
        await asyncio.gather(*(one(v, start + seconds, counts) for v in views))
        return sum(counts), time.perf_counter() - start
    finally:
        await backend.aclose()


def _proc(url: str, names: list[str], seconds: float, out: multiprocessing.Queue[float]) -> None:
    ops, elapsed = asyncio.run(_drive(url, names, seconds))
    out.put(ops / elapsed)


def _measure(url: str, config: ClusterConfig) -> float:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[float] = ctx.Queue()
    procs = [
        ctx.Process(target=_proc, args=(url, _names(p, config.namespaces), config.seconds, out))
        for p in range(config.procs)
    ]
    for proc in procs:
        proc.start()
    rates = [out.get(timeout=60 + 5 * config.seconds) for _ in procs]
    for proc in procs:
        proc.join(30)
    return sum(rates)


def run_cluster_bench(config: ClusterConfig) -> str:
    """Run the benchmark; return its report (Markdown)."""
    from tests.support.cluster import running_cluster

    samples: dict[int, list[float]] = {m: [] for m in config.masters}
    with ExitStack() as stack:
        urls = {m: stack.enter_context(running_cluster(m, 0)).url for m in config.masters}
        for r in range(config.rounds):
            order = list(config.masters)
            order = order[r % len(order) :] + order[: r % len(order)]
            for masters in order:
                samples[masters].append(_measure(urls[masters], config))
    base = config.masters[0]
    lines = [
        f"Concurrent namespaces on Redis Cluster: {config.procs} client processes x "
        f"{config.namespaces} namespaces, add+get, {config.rounds} rounds of "
        f"{config.seconds:g} s, {os.cpu_count()} cores shared by clients and servers.",
        "",
        f"| masters | ops/s (median) | min - max | vs {base} master |",
        "|---:|---:|---:|---:|",
    ]
    for masters in config.masters:
        rates = samples[masters]
        ratio = statistics.median(a / b for a, b in zip(rates, samples[base], strict=True))
        lines.append(
            f"| {masters} | {statistics.median(rates):,.0f} | "
            f"{min(rates):,.0f} - {max(rates):,.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)
