"""What a blocking call through ``memory.sync()`` costs, next to the alternatives.

    .venv/bin/python scripts/sync_overhead.py [--n 2000]

In memory, best of 5 batches of ``get`` (microseconds per call): through the facade (a hand-off
to its loop thread and back), ``asyncio.run(memory.get(...))`` per call (what synchronous code
did before), and ``await memory.get(...)`` on one loop (the floor). The facade's cost is the
thread hand-off, so it is the same on any backend; on Redis it adds to the round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tta_dev_primitives import MemoryPrimitive


def best(n: int, call: Callable[[], object]) -> float:
    """Best of 5 batches of ``n`` calls, microseconds per call."""
    out = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            call()
        out.append((time.perf_counter() - start) / n * 1e6)
    return min(out)


async def awaited(memory: MemoryPrimitive, n: int) -> float:
    out = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await memory.get("k")
        out.append((time.perf_counter() - start) / n * 1e6)
    return min(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    memory = MemoryPrimitive()
    with memory.sync() as mem:
        mem.add("k", "v")
        print(f"memory.sync().get:        {best(n, lambda: mem.get('k')):8.1f} us")
    plain = MemoryPrimitive()
    asyncio.run(plain.add("k", "v"))
    per_run = best(max(1, n // 10), lambda: asyncio.run(plain.get("k")))
    print(f"asyncio.run(get) a call:  {per_run:8.1f} us")
    print(f"await get, one loop:      {asyncio.run(awaited(plain, n)):8.1f} us")


if __name__ == "__main__":
    main()
