"""Timings of compaction: one compact() over N records, and what auto_compact adds to add().

Usage::

    .venv/bin/python scripts/compaction_timings.py [N] [redis://host:port/db]

Prints, for the in-memory backend (and Redis when a URL is given): the median time of one
``compact(ExtractiveSummarizer(), keep_last=20)`` over N records (split into the time of the
summarizer and the rest), the same with ``merge_duplicates=0.9``, and the median cost of an
``add`` with and without an ``auto_compact`` policy whose threshold is never reached (the
per-add bookkeeping), as a ratio measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

from tta_dev_primitives import (
    CompactionPolicy,
    ExtractiveSummarizer,
    MemoryPrimitive,
    RedisBackend,
)

TOPICS = ["invoices", "deploys", "the editor", "Redis caching", "lunch", "the weekly report"]


def turn(i: int) -> str:
    return (
        f"Turn {i}. Ada asked about {TOPICS[i % len(TOPICS)]}. "
        f"She mentioned ticket {i * 7 % 101} and said it was {'urgent' if i % 3 else 'minor'}."
    )


async def fill(memory: MemoryPrimitive, n: int) -> None:
    await memory.add_many({f"t{i}": turn(i) for i in range(n)})


class TimedSummarizer(ExtractiveSummarizer):
    """ExtractiveSummarizer that records how long each summary took."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def summarize(self, records: Any) -> str:
        start = time.perf_counter()
        out = super().summarize(records)
        self.seconds.append(time.perf_counter() - start)
        return out


async def time_compact(make: Any, n: int, runs: int, **options: Any) -> tuple[float, float]:
    totals, summarizing = [], []
    for _ in range(runs):
        memory = make()
        await fill(memory, n)
        summarizer = TimedSummarizer()
        start = time.perf_counter()
        await memory.compact(summarizer, keep_last=20, **options)
        totals.append(time.perf_counter() - start)
        summarizing.append(summarizer.seconds[0] if summarizer.seconds else 0.0)
        await memory.clear()
        await memory.aclose()
    return statistics.median(totals), statistics.median(summarizing)


async def time_adds(make: Any, n: int) -> float:
    memory = make()
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await memory.add(f"a{i}", turn(i))
        samples.append(time.perf_counter() - start)
    await memory.clear()
    await memory.aclose()
    return statistics.median(samples)


async def report(label: str, make: Any, make_policy: Any, n: int) -> None:
    runs = 5
    total, summ = await time_compact(make, n, runs)
    print(f"{label}: compact {n} records: {total * 1e3:.1f} ms (summarizer {summ * 1e3:.1f} ms)")
    total, summ = await time_compact(make, n, runs, merge_duplicates=0.9)
    print(f"{label}: compact {n} records with merge_duplicates=0.9: {total * 1e3:.1f} ms")
    plain = await time_adds(make, 2000)
    policed = await time_adds(make_policy, 2000)
    print(
        f"{label}: add median {plain * 1e6:.1f} us, with auto_compact {policed * 1e6:.1f} us "
        f"(ratio {policed / plain:.2f})"
    )


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    url = sys.argv[2] if len(sys.argv) > 2 else None
    policy = CompactionPolicy(max_records=10**9, keep_last=20, summarizer=ExtractiveSummarizer())
    await report(
        "in_memory",
        lambda: MemoryPrimitive(max_size=None),
        lambda: MemoryPrimitive(max_size=None, auto_compact=policy),
        n,
    )
    if url:

        def redis(**kw: Any) -> MemoryPrimitive:
            backend = RedisBackend.from_url(url, max_size=None)
            return MemoryPrimitive(backend=backend, namespace=f"bench-{uuid.uuid4().hex}", **kw)

        await report("redis", redis, lambda: redis(auto_compact=policy), n)


if __name__ == "__main__":
    asyncio.run(main())
