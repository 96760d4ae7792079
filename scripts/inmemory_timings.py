"""Per-operation timings of the in-memory MemoryPrimitive at N records (no SDK configured).

    .venv/bin/python scripts/inmemory_timings.py [N]

Uses the benchmark harness's deterministic agent-memory workload (conversation turns of 8-40
words; a 2-word recall query and a natural-language question full of common words) and prints
the median and p95 of add, get and both searches. ``make bench`` compares these with peers;
this script is the quick check of the in-memory path alone.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.workload import Workload

from tta_dev_primitives import MemoryPrimitive


async def measure(n: int, rounds: int = 2000) -> dict[str, list[float]]:
    workload = Workload()
    rng = random.Random(42)
    memory = MemoryPrimitive(max_size=None)
    await memory.add_many([(r.key, r.value) for r in workload.records(0, n)])
    await memory.search("warm up the index")
    fresh = workload.records(n, n + rounds, prefix="new:")
    existing = [workload.record_key(rng.randrange(n)) for _ in range(rounds)]
    keyword = [workload.keyword_query(rng, n) for _ in range(rounds // 10)]
    question = [workload.question_query(rng, n) for _ in range(rounds // 10)]
    timings: dict[str, list[float]] = {"add": [], "get": [], "search": [], "search_question": []}
    clock = time.perf_counter
    for i in range(rounds):
        t0 = clock()
        await memory.add(fresh[i].key, fresh[i].value)
        t1 = clock()
        await memory.get(existing[i])
        t2 = clock()
        timings["add"].append(t1 - t0)
        timings["get"].append(t2 - t1)
        if i % 10 == 0:
            t3 = clock()
            await memory.search(keyword[i // 10], limit=5)
            t4 = clock()
            await memory.search(question[i // 10], limit=5)
            timings["search"].append(t4 - t3)
            timings["search_question"].append(clock() - t4)
    return timings


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    timings = asyncio.run(measure(n))
    print(f"in-memory MemoryPrimitive, {n} records, no SDK")
    for op, values in timings.items():
        values.sort()
        p95 = values[int(len(values) * 0.95)]
        median = statistics.median(values)
        print(f"  {op:16s} median {median * 1e6:9.1f} us   p95 {p95 * 1e6:9.1f} us")


if __name__ == "__main__":
    main()
