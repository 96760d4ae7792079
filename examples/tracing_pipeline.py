"""Retrieve -> answer -> remember over ``MemoryPrimitive``, traced end to end.

The pipeline is ``memory.search_step(limit=3) >> answer >> memory.add_step(key=...)``: it finds
notes relevant to a question, answers from them (a deterministic function standing in for a
model call), and remembers the answer. One run is one trace::

    answer_question                    (the pipeline)
    ├── search_step                    step 0
    │   └── search_memory              gen_ai.operation.name=search_memory, record.count=3
    ├── answer                         step 1
    └── add_step                       step 2
        └── upsert_memory              gen_ai.operation.name=upsert_memory

Run it::

    python examples/tracing_pipeline.py                  # spans printed to the console
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006 \\
        python examples/tracing_pipeline.py              # spans sent to Phoenix (OTLP/HTTP)
    python examples/tracing_pipeline.py --capture-content   # also record query text/values

Needs the ``otel`` extra (``pip install 'tta-dev-primitives[otel]'``). See docs/tracing.md.
"""

from __future__ import annotations

import argparse
import asyncio

from opentelemetry import trace

from tta_dev_primitives import (
    LambdaPrimitive,
    MemoryPrimitive,
    SearchHit,
    SequentialPrimitive,
    WorkflowContext,
)
from tta_dev_primitives.observability import setup_tracing

NOTES = {
    "note:redis": "MemoryPrimitive keeps memory in Redis when it is given a redis_url.",
    "note:fallback": "When Redis goes away, memory is served in process and writes are replayed.",
    "note:tracing": "Every memory operation is a span, a child of the pipeline step calling it.",
    "note:search": "Keyword search ranks memory records with BM25, best first.",
    "note:setup": "MemoryPrimitive() works at once, in memory, with no server to run.",
}
QUESTION = "How is a memory operation traced?"


async def answer(hits: list[SearchHit], ctx: WorkflowContext) -> str:
    """Answer from the best hit, citing every hit: deterministic, no model needed."""
    ctx.state["trace_id"] = trace.format_trace_id(
        trace.get_current_span().get_span_context().trace_id
    )
    await asyncio.sleep(0.02)  # stands in for the latency of a model call
    question = ctx.state["question"]
    if not hits:
        return f"{question} I do not know yet."
    sources = ", ".join(hit.key for hit in hits)
    return f"{hits[0].value} [sources: {sources}]"


def answer_key(answer_text: str, ctx: WorkflowContext) -> str:
    return f"answer:{ctx.session_id}:{ctx.workflow_id}"


def build_pipeline(memory: MemoryPrimitive) -> SequentialPrimitive[str, str]:
    """retrieve -> answer -> remember, as one named pipeline (the root span of each run)."""
    return SequentialPrimitive(
        [
            memory.search_step(limit=3),
            LambdaPrimitive(answer, name="answer"),
            memory.add_step(key=answer_key),
        ],
        name="answer_question",
    )


async def main(capture_content: bool = False) -> str:
    # OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, else console.
    setup_tracing("tracing-pipeline")
    async with MemoryPrimitive(namespace="notes", capture_content=capture_content) as memory:
        await memory.add_many(NOTES)  # one memory.add_many span, its own small trace
        ctx = WorkflowContext(
            workflow_id="run-1", session_id="session-1", state={"question": QUESTION}
        )
        result: str = await build_pipeline(memory).execute(QUESTION, ctx)
        remembered = await memory.get(answer_key(result, ctx))
    print(f"question: {QUESTION}")
    print(f"answer: {result}")
    print(f"remembered: {remembered == result}")
    print(f"trace id: {ctx.state['trace_id']}")
    # The SDK provider flushes its batch of spans when the interpreter exits.
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--capture-content",
        action="store_true",
        help="record query text and stored values on memory spans",
    )
    asyncio.run(main(parser.parse_args().capture_content))
