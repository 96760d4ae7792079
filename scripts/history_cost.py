"""What history costs: the add/get path with history=0, and a versioned add.

``python scripts/history_cost.py count N`` runs N in-memory ``add`` then N ``get`` with
``history=0`` (for instruction counts: run it under ``valgrind --tool=callgrind`` with N and
with 0, against this tree and the tree before history, and divide the difference by N; set
``OPENBLAS_NUM_THREADS=1 PYTHONHASHSEED=0``, or numpy's idle BLAS threads add noise).
``python scripts/history_cost.py ratios [REDIS_URL]`` prints interleaved wall-clock medians
of ``add`` with ``history=0`` against ``history=10`` (in memory, and on Redis with a URL).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from tta_dev_primitives import MemoryPrimitive


async def count(n: int) -> None:
    memory = MemoryPrimitive(max_size=None)
    for i in range(n):
        await memory.add(f"k{i % 1000}", "a value of some words")
    for i in range(n):
        await memory.get(f"k{i % 1000}")


async def _per_op(memory: MemoryPrimitive, n: int, key: str) -> float:
    start = time.perf_counter()
    for i in range(n):
        await memory.add(f"{key}{i % 100}", "a value of some words")
    return (time.perf_counter() - start) / n * 1e6


async def ratios(url: str | None) -> None:
    for label, make in (
        ("in memory", lambda h: MemoryPrimitive(max_size=None, history=h)),
        *(
            (("redis", lambda h: MemoryPrimitive(redis_url=url, fallback=False, history=h)),)
            if url
            else ()
        ),
    ):
        plain, versioned = make(0), make(10)
        n = 2000 if label == "in memory" else 300
        a: list[float] = []
        b: list[float] = []
        for r in range(15):  # interleaved rounds: the load of the machine hits both alike
            a.append(await _per_op(plain, n, f"p{r}:"))
            b.append(await _per_op(versioned, n, f"v{r}:"))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{label}: add history=0 {ma:.1f} us, history=10 {mb:.1f} us ({mb / ma:.2f}x)")
        await plain.clear()
        await versioned.clear()
        await plain.aclose()
        await versioned.aclose()


if __name__ == "__main__":
    if sys.argv[1] == "count":
        asyncio.run(count(int(sys.argv[2])))
    else:
        asyncio.run(ratios(sys.argv[2] if len(sys.argv) > 2 else None))
