"""A fixed loop of in-memory get or add, to count its instructions under callgrind.

Instruction counts do not depend on what else the machine runs, so two versions of the
library can be compared on a busy machine. Per-operation cost = (count(OP) - count(none)) / N::

    for op in none get add; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python scripts/op_instructions.py $op 20000 2>&1 | grep Collected
    done

Prefix ``PYTHONPATH=<other checkout>/src`` to measure another version with the same venv.
LangGraph's ``InMemoryStore`` (``bench`` extra) the same way: ops ``lgnone``, ``aget``, ``aput``.
"""

from __future__ import annotations

import asyncio
import sys

from tta_dev_primitives import MemoryPrimitive

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}


async def langgraph(op: str, n: int) -> None:
    """LangGraph's ``InMemoryStore`` (the ``bench`` extra), no index: ``aget``/``aput``."""
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore()
    await store.aput(("ns",), "k", VALUE)
    if op == "aget":
        for _ in range(n):
            await store.aget(("ns",), "k")
    elif op == "aput":
        for i in range(n):
            await store.aput(("ns",), f"k{i % 1000}", VALUE)


async def main(op: str, n: int) -> None:
    if op in ("lgnone", "aget", "aput"):
        await langgraph(op, n)
        return
    memory = MemoryPrimitive(max_size=None)
    await memory.add("k", VALUE)
    if op == "get":
        for _ in range(n):
            await memory.get("k")
    elif op == "add":
        for i in range(n):
            await memory.add(f"k{i % 1000}", VALUE)
    elif op != "none":
        raise SystemExit(f"unknown operation {op!r}: none, get or add")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
