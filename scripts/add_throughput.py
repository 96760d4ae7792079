"""Add throughput with the shipped local model (issue 22): ``add_many`` of N short
conversation-like turns into a ``MemoryPrimitive(embedder="local")``, each embedded by the
model, after one warm-up batch. Needs the ``embeddings`` extra::

    .venv/bin/python scripts/add_throughput.py 640

Prints records per second (wall clock) and the process's CPU time per record.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from tta_dev_primitives import MemoryPrimitive

_WORDS = [
    "the",
    "a",
    "we",
    "went",
    "to",
    "lake",
    "trip",
    "amazing",
    "yes",
    "dog",
    "cat",
    "paint",
    "work",
    "school",
    "friend",
    "family",
    "music",
    "yesterday",
    "weekend",
    "camping",
    "sister",
    "book",
    "new",
    "job",
    "adopted",
    "painting",
    "concert",
]


async def _main(n: int) -> None:
    rng = random.Random(1)
    texts = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30))) for _ in range(n)]
    memory = MemoryPrimitive(embedder="local")
    await memory.add_many([(f"warm{i}", {"text": t}) for i, t in enumerate(texts[:32])])
    wall, cpu = time.perf_counter(), time.process_time()
    await memory.add_many([(f"turn{i}", {"text": t}) for i, t in enumerate(texts)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"add_many of {n} turns with embedder='local': {n / wall:.0f} records/s, "
        f"{cpu / n * 1000:.2f} ms of CPU per record"
    )


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 640))
