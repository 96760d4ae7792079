"""Query latency with the shipped local model (issue 22): the query embedding alone, and a
search at N records with the query embedded for real.

Needs the ``embeddings`` extra. ``THREADS`` is ``MiniLMEmbedder(threads=...)``: a number, or
``ort`` for ONNX Runtime's own default (a spinning pool of one thread per core)::

    .venv/bin/python scripts/query_latency.py embed 1 20       # query embedding, 20 rounds
    .venv/bin/python scripts/query_latency.py embed ort 20
    .venv/bin/python scripts/query_latency.py search 1 200 10000   # 200 searches, 10k records

``embed`` prints wall-clock p50/p95 and the CPU time of the process per query (every thread
of it: a pool that spins shows there). ``search`` stores N records under the model's name
with random unit vectors (document embedding is not what is measured), then times
``search(text, limit=10)`` in semantic and hybrid mode over distinct question texts, so the
query cache never answers and each search embeds its query. Run the variants one after the
other, twice, on a shared machine: only what repeats is a finding.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory.embeddings import MiniLMEmbedder

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "John", "Maria", "Tim", "Audrey", "Nate", "Joanna"]
ASKS = [
    "When did {} go to the support group?",
    "What fields would {} be likely to pursue in her education?",
    "What did {} paint recently?",
    "How long has {} had her current group of friends for?",
    "Where did {} move from four years ago?",
    "What activities does {} partake in on weekends?",
    "Which book did {} recommend last month?",
    "Why did {} decide to start a new business?",
    "What did {} and her kids do at the beach?",
    "What instrument does {} play?",
    "Who gave {} the necklace?",
    "What did {} say about the camping trip?",
    "ok {}",
    "Does {} like hiking?",
    "What is {}'s favourite food and where does she eat it?",
    "How did {} feel after the race?",
    "When is {}'s birthday party?",
    "What pet does {} have?",
    "What happened at {}'s job interview?",
    "What did {} learn at the pottery class?",
]


def questions(count: int) -> list[str]:
    texts = [ask.format(name) for ask, name in itertools.product(ASKS, NAMES)]
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" ({i})") for i in range(count)]


def model(threads: str) -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=None if threads == "ort" else int(threads))


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    return f"p50 {times[len(times) // 2]:7.2f} ms  p95 {times[int(len(times) * 0.95)]:7.2f} ms"


def embed(threads: str, rounds: int) -> None:
    emb = model(threads)
    qs = questions(20)
    emb.encode(qs[:3])
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        for q in qs:
            start, started = time.perf_counter(), time.process_time()
            emb.encode([q])
            wall.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - started) * 1e3)
    print(f"query embedding, threads={threads}: wall {percentiles(wall)}; CPU {percentiles(cpu)}")


class _RandomDocuments:
    """The model's name and query embedding; random unit vectors for the records."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self._rng = np.random.default_rng(3)

    async def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = self._rng.standard_normal((len(texts), self.dimensions)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return await self.inner.embed_query(text)


async def search(threads: str, count: int, size: int) -> None:
    from benchmarks.engine import corpus

    memory = MemoryPrimitive(embedder=_RandomDocuments(model(threads)), max_size=None)
    texts = corpus(size)
    for start in range(0, size, 5000):
        await memory.add_many([(f"r{i}", texts[i]) for i in range(start, min(size, start + 5000))])
    qs = questions(2 * count + 1)
    await memory.search(qs[-1], limit=10, mode="hybrid")
    for offset, mode in ((0, "semantic"), (count, "hybrid")):
        times = []
        for text in qs[offset : offset + count]:
            start = time.perf_counter()
            await memory.search(text, limit=10, mode=mode)
            times.append((time.perf_counter() - start) * 1e3)
        print(f"search {mode:8s} at {size} records, threads={threads}: {percentiles(times)}")
    await memory.aclose()


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    if sys.argv[1] == "embed":
        embed(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "search":
        asyncio.run(search(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}: embed or search")
