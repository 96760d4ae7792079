"""Per-operation timings of the in-memory MemoryPrimitive at N records (no SDK configured).

    .venv/bin/python scripts/inmemory_timings.py [N]

Prints the median and p95 of add, get and keyword search over repeated rounds. The
benchmark harness in benchmarks/ compares these against peers; this script is the quick
check for the in-memory path alone.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time

from tta_dev_primitives import MemoryPrimitive

WORDS = [
    "agent",
    "memory",
    "redis",
    "python",
    "trace",
    "span",
    "vector",
    "search",
    "cache",
    "user",
    "session",
    "task",
    "plan",
    "tool",
    "call",
    "answer",
    "question",
    "context",
    "model",
    "prompt",
    "token",
    "retrieve",
    "store",
    "recall",
    "note",
    "idea",
    "bug",
    "fix",
    "deploy",
    "test",
    "review",
    "merge",
    "branch",
    "commit",
    "release",
    "metric",
    "latency",
    "error",
    "retry",
    "timeout",
    "budget",
]


def turn(rng: random.Random) -> dict[str, object]:
    return {
        "role": rng.choice(["user", "assistant"]),
        "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))),
    }


async def measure(n: int, rounds: int = 2000) -> dict[str, list[float]]:
    rng = random.Random(42)
    memory = MemoryPrimitive(max_size=None)
    await memory.add_many([(f"turn:{i}", turn(rng)) for i in range(n)])
    timings: dict[str, list[float]] = {"add": [], "get": [], "search": []}
    keys = [f"turn:{rng.randrange(n)}" for _ in range(rounds)]
    values = [turn(rng) for _ in range(rounds)]
    queries = [rng.choice(WORDS) + " " + rng.choice(WORDS) for _ in range(rounds // 10)]
    clock = time.perf_counter
    for i in range(rounds):
        t0 = clock()
        await memory.add(f"new:{i}", values[i])
        t1 = clock()
        await memory.get(keys[i])
        t2 = clock()
        timings["add"].append(t1 - t0)
        timings["get"].append(t2 - t1)
        if i % 10 == 0:
            t3 = clock()
            await memory.search(queries[i // 10], limit=5)
            timings["search"].append(clock() - t3)
    return timings


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    timings = asyncio.run(measure(n))
    print(f"in-memory MemoryPrimitive, {n} records, no SDK")
    for op, values in timings.items():
        values.sort()
        p95 = values[int(len(values) * 0.95)]
        print(
            f"  {op:6s} median {statistics.median(values) * 1e6:8.1f} us   p95 {p95 * 1e6:8.1f} us"
        )


if __name__ == "__main__":
    main()
