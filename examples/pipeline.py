"""A small traced pipeline: normalize -> (word count | shout) -> summary, with a retry.

Run it with ``make demo`` or ``python examples/pipeline.py``; it needs no set-up.
"""

from __future__ import annotations

import asyncio

from tta_dev_primitives import LambdaPrimitive, RetryPrimitive, WorkflowContext


def normalize(text: str, ctx: WorkflowContext) -> str:
    ctx.state["original"] = text
    return " ".join(text.split())


def word_count(text: str, ctx: WorkflowContext) -> int:
    return len(text.split())


async def shout(text: str, ctx: WorkflowContext) -> str:
    await asyncio.sleep(0)
    return text.upper()


def summarize(results: list[object], ctx: WorkflowContext) -> str:
    count, loud = results
    return f"{count} words -> {loud!s} (original: {ctx.state['original']!r})"


async def main() -> str:
    pipeline = (
        LambdaPrimitive(normalize)
        >> (LambdaPrimitive(word_count) | RetryPrimitive(LambdaPrimitive(shout)))
        >> LambdaPrimitive(summarize)
    )
    result = await pipeline.execute("  hello   traced   world ", WorkflowContext("demo"))
    print(result)
    return result


if __name__ == "__main__":
    asyncio.run(main())
