"""Tight-loop cost of get and add on one key: ours in memory vs LangGraph's InMemoryStore.

    .venv/bin/python scripts/hot_path.py        (LangGraph is in the ``bench`` extra)

Best of 7 batches of 20k calls, no SDK. This isolates the per-call work of each library;
``make bench`` measures random keys over large stores, where memory-cache misses add to both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tta_dev_primitives import MemoryPrimitive

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}
N = 20_000


async def best(op: Callable[[int], Awaitable[Any]]) -> float:
    result = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for i in range(N):
            await op(i)
        result = min(result, (time.perf_counter() - start) / N * 1e6)
    return result


async def main() -> None:
    memory = MemoryPrimitive(max_size=None)
    await memory.add("k", VALUE)
    rows = [
        ("ours get", await best(lambda i: memory.get("k"))),
        ("ours add", await best(lambda i: memory.add(f"k{i}", VALUE))),
    ]
    try:
        from langgraph.store.memory import InMemoryStore
    except ImportError:
        print("(langgraph not installed: pip install -e '.[bench]' to compare)")
    else:
        store = InMemoryStore()
        await store.aput(("ns",), "k", VALUE)
        rows.append(("langgraph aget", await best(lambda i: store.aget(("ns",), "k"))))
        rows.append(("langgraph aput", await best(lambda i: store.aput(("ns",), f"k{i}", VALUE))))
    for name, micros in rows:
        print(f"{name:15s} {micros:6.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
