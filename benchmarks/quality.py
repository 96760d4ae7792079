"""``python -m benchmarks.quality``: search quality on the project's evaluation set.

Stores the memories of ``benchmarks/data/memory_eval.json`` in a ``MemoryPrimitive`` with the
local model (``MiniLMEmbedder``, the ``embeddings`` extra) or ``--embedder hashing``, asks
every question in keyword, semantic and hybrid mode, and prints recall@1, recall@5 and MRR@10
per question kind (paraphrase, keyword) as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tta_dev_primitives import HashingEmbedder, MemoryPrimitive

DATA = Path(__file__).resolve().parent / "data" / "memory_eval.json"
MODES = ("keyword", "semantic", "hybrid")


def load(path: Path = DATA) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _embedder(name: str) -> Any:
    if name == "hashing":
        return HashingEmbedder(256)
    from tta_dev_primitives import MiniLMEmbedder

    return MiniLMEmbedder()


async def evaluate(
    embedder: Any, data: dict[str, Any], **search: Any
) -> dict[tuple[str, str], dict[str, float]]:
    """{(kind, mode): {"r@1", "r@5", "mrr@10", "n"}} over the set's questions."""
    memory = MemoryPrimitive(embedder=embedder, max_size=None)
    await memory.add_many([(m["id"], m["text"]) for m in data["memories"]])
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for question in data["questions"]:
        for mode in MODES:
            hits = await memory.search(question["question"], limit=10, mode=mode, **search)
            keys = [h.key for h in hits]
            rank = keys.index(question["answer"]) + 1 if question["answer"] in keys else 0
            row = sums.setdefault(
                (question["kind"], mode), {"r@1": 0.0, "r@5": 0.0, "mrr@10": 0.0, "n": 0.0}
            )
            row["r@1"] += rank == 1
            row["r@5"] += 0 < rank <= 5
            row["mrr@10"] += 1.0 / rank if rank else 0.0
            row["n"] += 1
    for row in sums.values():
        for metric in ("r@1", "r@5", "mrr@10"):
            row[metric] /= row["n"]
    return sums


def table(results: dict[tuple[str, str], dict[str, float]]) -> str:
    lines = [
        "| questions | mode | recall@1 | recall@5 | MRR@10 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for kind in ("paraphrase", "keyword"):
        for mode in MODES:
            row = results[(kind, mode)]
            lines.append(
                f"| {kind} ({int(row['n'])}) | {mode} | {row['r@1']:.3f} | {row['r@5']:.3f} "
                f"| {row['mrr@10']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--embedder", choices=("minilm", "hashing"), default="minilm")
    parser.add_argument("--fusion", choices=("convex", "rrf", "minmax"), default=None)
    parser.add_argument("--semantic-weight", type=float, default=None)
    args = parser.parse_args(argv)
    data = load()
    search: dict[str, Any] = {}
    if args.fusion:
        search["fusion"] = args.fusion
    if args.semantic_weight is not None:
        search["semantic_weight"] = args.semantic_weight
    started = time.perf_counter()
    results = asyncio.run(evaluate(_embedder(args.embedder), data, **search))
    n_mem, n_q = len(data["memories"]), len(data["questions"])
    print(f"{n_mem} memories, {n_q} questions, embedder {args.embedder}, {search or 'defaults'}")
    print(table(results))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
