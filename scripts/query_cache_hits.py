"""Hit rate of the query-embedding cache in a chat-like workload.

    .venv/bin/python scripts/query_cache_hits.py [--sessions 200] [--seed 1]

A chat agent over ``MemoryPrimitive(embedder=...)`` (the stdlib ``HashingEmbedder``, counted),
session after session of the benchmark workload's conversations (benchmarks/workload.py,
20 turns each). Per user turn, on a simulated clock that advances 5-40 s a turn:

1. the user says the turn's text, or with probability ``--short`` one of a dozen short
   replies ("ok", "thanks", "go on", ...);
2. the retrieval step searches memory for it (hybrid);
3. with probability ``--recall`` a recall tool searches the same text again (semantic);
4. the turn and the assistant's answer are added (document embeddings, not queries).

Prints the cache's hits and misses, and how many embedder query calls it saved. The rate is
a property of this workload's assumptions (printed with it), not of every agent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.workload import TURNS_PER_SESSION, Workload

from tta_dev_primitives import HashingEmbedder, MemoryPrimitive
from tta_dev_primitives.memory.query_cache import QueryVectorCache

SHORT = [
    "ok", "thanks", "thank you", "yes", "no", "go on", "continue", "sounds good",
    "why?", "can you explain", "sure", "what else?",
]  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counting(HashingEmbedder):
    """HashingEmbedder that counts its query calls."""

    def __init__(self) -> None:
        super().__init__(256)
        self.query_calls = 0

    async def embed_query(self, text: str) -> Any:
        self.query_calls += 1
        return await super().embed_query(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short", type=float, default=0.15, help="share of short replies")
    parser.add_argument("--recall", type=float, default=0.3, help="share of recall-tool calls")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workload = Workload()
    clock = Clock()
    embedder = Counting()
    memory = MemoryPrimitive(embedder=embedder, max_size=None)
    cache = QueryVectorCache(clock=clock)
    memory._query_vectors = cache  # the same cache, on the simulated clock
    searches = 0
    for session in range(args.sessions):
        view = memory.scoped(f"s{session}")
        for turn in range(0, TURNS_PER_SESSION, 2):
            clock.now += rng.uniform(5, 40)
            user = workload.record(session * TURNS_PER_SESSION + turn)
            answer = workload.record(session * TURNS_PER_SESSION + turn + 1)
            text = rng.choice(SHORT) if rng.random() < args.short else user.value["content"]
            await view.search(text, mode="hybrid")
            searches += 1
            if rng.random() < args.recall:
                await view.search(text, mode="semantic")
                searches += 1
            await view.add_many([(user.key, user.value), (answer.key, answer.value)])
    print(
        f"{args.sessions} sessions, {searches} searches; short replies {args.short:.0%} of "
        f"user turns, recall tool on {args.recall:.0%} of turns, 5-40 s between turns; cache "
        f"{cache.max_entries} texts, {cache.ttl:.0f} s"
    )
    print(
        f"hits {cache.hits}, misses {cache.misses}: hit rate {cache.hit_rate:.1%}; embedder "
        f"query calls {embedder.query_calls} for {searches} searches "
        f"({1 - embedder.query_calls / searches:.1%} saved)"
    )


if __name__ == "__main__":
    asyncio.run(main())
