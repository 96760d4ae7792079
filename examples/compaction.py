"""Memory that stays small: old memories compacted into summaries, with or without a model.

Shows ``compact()`` with the built-in ``ExtractiveSummarizer`` (no model), the same with an
LLM-shaped async callable plugged in (a stand-in for a chat-completion call: it gets the
records, builds a prompt and returns text), duplicates merged, and ``auto_compact`` keeping a
namespace under a bound in the background. Run it with ``python examples/compaction.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tta_dev_primitives import (
    CompactionPolicy,
    ExtractiveSummarizer,
    LambdaPrimitive,
    MemoryPrimitive,
    MemoryRecord,
    WorkflowContext,
)

TURNS = [
    "Ada said she deploys the recommendation service on Fridays.",
    "Ada asked how to cache results in Redis. We discussed TTLs.",
    "The weather in Lisbon was sunny today.",
    "Ada said the recommendation service needs a Redis cache with TTLs.",
    "Ada prefers Helix as her editor.",
    "Ada asked for a checklist before deploying the recommendation service.",
    "Lunch was late.",
    "Ada wants the Friday deploy of the recommendation service automated.",
]


async def fake_llm(prompt: str) -> str:
    """Stands in for ``await client.chat.completions.create(...)``: any async callable works."""
    await asyncio.sleep(0)  # a real call waits on the network here
    lines = [line.removeprefix("- ") for line in prompt.splitlines() if line.startswith("- ")]
    return f"Summary of {len(lines)} memories: " + " / ".join(line[:40] for line in lines[:3])


async def llm_summarize(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
    prompt = "Summarize these memories of a user in three sentences:\n" + "\n".join(
        f"- {r.value}" for r in records
    )
    return await fake_llm(prompt)


async def main() -> None:
    # 1. No model: keep the most informative sentences.
    memory = MemoryPrimitive(namespace="ada")
    for i, turn in enumerate(TURNS):
        await memory.add(f"turn:{i}", turn, metadata={"user": "ada"})
    report = await memory.compact(ExtractiveSummarizer(max_sentences=3), keep_last=2)
    print(f"extractive: replaced {len(report.replaced)} records, {await memory.size()} left")
    print("summary:", await memory.get(str(report.summary_key)))
    hits = await memory.search("Redis cache", limit=1)
    print("search 'Redis cache' finds the summary:", hits[0].key == report.summary_key)

    # 2. An LLM-shaped async callable, wrapped as a primitive (its span nests under
    #    compact_memory in a trace).
    llm = LambdaPrimitive(llm_summarize, name="llm_summarizer")
    other = MemoryPrimitive(namespace="ada-llm")
    for i, turn in enumerate(TURNS):
        await other.add(f"turn:{i}", turn)
    report = await other.compact(llm, keep_last=3, summarizer_timeout=30)
    print("llm:", await other.get(str(report.summary_key)))

    # 3. Duplicates collapse into the newest (metadata merged).
    notes = MemoryPrimitive(namespace="notes")
    await notes.add("n1", "Ada prefers Helix as her editor", metadata={"source": "chat"})
    await notes.add("n2", "Ada prefers Helix as her editor.", metadata={"confirmed": True})
    report = await notes.compact(None, merge_duplicates=0.9, keep_last=0)
    (kept,) = await notes.search("Helix")
    print(f"merged {list(report.merged)} into {kept.key}: {kept.metadata}")

    # 4. A bound kept in the background: adds never wait for the summarizer.
    policy = CompactionPolicy(max_records=20, keep_last=5, summarizer=ExtractiveSummarizer())
    async with MemoryPrimitive(namespace="chat", auto_compact=policy) as chat:
        for i in range(60):
            await chat.add(f"turn:{i}", f"Turn {i}: Ada talked about topic {i % 4}.")
        await chat.wait_compactions()
        print("auto-compacted chat holds", await chat.size(), "records (bound 20)")


if __name__ == "__main__":
    asyncio.run(main())
