"""Memory operations are spans (and metrics) that join the caller's trace."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tta_dev_primitives import (
    LambdaPrimitive,
    MemoryOperation,
    MemoryPrimitive,
    SequentialPrimitive,
    WorkflowContext,
)
from tta_dev_primitives.testing import CapturedTelemetry


def traced(telemetry: CapturedTelemetry, **kwargs: object) -> MemoryPrimitive:
    return MemoryPrimitive(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_operation_spans_carry_conventions(telemetry: CapturedTelemetry) -> None:
    """add/get/search/delete/clear spans have GenAI memory attributes and no content."""
    memory = traced(telemetry, namespace="notes")
    await memory.add("k1", "secret python note")
    await memory.get("k1")
    await memory.get("missing")
    await memory.search("python")
    await memory.delete("k1")
    await memory.clear()
    spans = telemetry.spans()
    assert [s.name for s in spans] == [
        "upsert_memory",
        "get_memory",
        "get_memory",
        "search_memory",
        "delete_memory",
        "delete_memory_store",
    ]
    ops = [s.attributes["gen_ai.operation.name"] for s in spans if s.attributes]
    assert ops == [
        "upsert_memory",
        "get_memory",
        "get_memory",
        "search_memory",
        "delete_memory",
        "delete_memory_store",
    ]
    for span in spans:
        attrs = span.attributes
        assert attrs is not None
        assert attrs["gen_ai.memory.store.id"] == "notes"
        assert attrs["memory.backend"] == "in_memory"
        assert span.kind is SpanKind.INTERNAL
        assert "gen_ai.memory.records" not in attrs
        assert "gen_ai.memory.query.text" not in attrs
        assert not any(name.startswith(("retrieval.", "input.")) for name in attrs)
        assert "db.system.name" not in attrs
    get_hit, get_miss = spans[1], spans[2]
    assert get_hit.attributes is not None
    assert get_miss.attributes is not None
    assert get_hit.attributes["memory.hit"] is True
    assert get_miss.attributes["memory.hit"] is False
    assert get_hit.attributes["gen_ai.memory.record.id"] == "k1"
    search = spans[3].attributes
    assert search is not None
    assert search["gen_ai.memory.record.count"] == 1
    assert search["openinference.span.kind"] == "RETRIEVER"
    assert search["memory.search.mode"] == "keyword"


async def test_content_capture_is_opt_in(telemetry: CapturedTelemetry) -> None:
    """capture_content=True records query text and (truncated) records as JSON."""
    memory = traced(telemetry, capture_content=True, capture_keys=False)
    await memory.add("k", "x" * 5000, metadata={"role": "user"})
    await memory.get("k")
    await memory.search("xx")
    add, get, search = telemetry.spans()
    assert add.attributes is not None
    assert get.attributes is not None
    assert search.attributes is not None
    (written,) = json.loads(str(add.attributes["gen_ai.memory.records"]))
    assert written["id"] == "k"
    assert written["content"].startswith('"xxx')
    assert len(written["content"]) <= 1025
    assert written["metadata"] == {"role": "user"}
    (read,) = json.loads(str(get.attributes["gen_ai.memory.records"]))
    assert read["id"] == "k"
    (found,) = json.loads(str(search.attributes["gen_ai.memory.records"]))
    assert found["id"] == "k"
    assert found["score"] > 0
    assert search.attributes["gen_ai.memory.query.text"] == "xx"
    assert search.attributes["input.value"] == "xx"
    assert search.attributes["retrieval.documents.0.document.id"] == "k"
    assert float(search.attributes["retrieval.documents.0.document.score"]) > 0
    assert "gen_ai.memory.record.id" not in add.attributes


async def test_memory_spans_nest_under_pipeline_steps(telemetry: CapturedTelemetry) -> None:
    """search_step >> answer >> add_step: one trace, memory spans children of their steps."""
    memory = traced(telemetry)
    await memory.add("fact", "the sky is blue")
    telemetry.clear()
    answer = LambdaPrimitive(
        lambda hits, ctx: hits[0].value if hits else "unknown",
        name="answer",
        tracer_provider=telemetry.tracer_provider,
    )
    pipeline = SequentialPrimitive(
        [memory.search_step(limit=3), answer, memory.add_step(key="last-answer")],
        name="rag",
        tracer_provider=telemetry.tracer_provider,
    )
    assert await pipeline.execute("sky", WorkflowContext(workflow_id="wf")) == "the sky is blue"
    assert await memory.get("last-answer") == "the sky is blue"
    spans = {s.name: s for s in telemetry.spans()}
    root = spans["rag"]
    assert {s.context.trace_id for s in telemetry.spans() if s.name != "get_memory"} == {
        root.context.trace_id
    }
    for step, op in (("search_step", "search_memory"), ("add_step", "upsert_memory")):
        assert spans[step].parent is not None
        assert spans[step].parent.span_id == root.context.span_id
        assert spans[op].parent is not None
        assert spans[op].parent.span_id == spans[step].context.span_id
    assert spans["search_memory"].attributes is not None
    assert spans["search_memory"].attributes["workflow.id"] == "wf"


async def test_execute_with_memory_operation(telemetry: CapturedTelemetry) -> None:
    """The primitive itself runs MemoryOperations through the same traced path."""
    memory = traced(telemetry)
    await memory.execute(MemoryOperation.add("k", {"v": 1}, metadata={"m": 1}))
    assert await memory.execute(MemoryOperation.get("k")) == {"v": 1}
    hits = await memory.execute(MemoryOperation.search("anything"))
    assert hits == []
    assert await memory.execute(MemoryOperation.list_keys()) == ["k"]
    assert await memory.execute(MemoryOperation.size()) == 1
    await memory.execute(MemoryOperation.add_many({"a": 1}))
    assert await memory.execute(MemoryOperation.get_many(["a", "k"])) == {"a": 1, "k": {"v": 1}}
    assert await memory.execute(MemoryOperation.delete("k")) is True
    assert await memory.execute(MemoryOperation.clear()) == 1
    names = [s.name for s in telemetry.spans()]
    assert names == [
        "upsert_memory",
        "get_memory",
        "search_memory",
        "list_memory",
        "count_memory",
        "upsert_memory",
        "get_memory",
        "delete_memory",
        "delete_memory_store",
    ]


async def test_execute_refuses_other_inputs(telemetry: CapturedTelemetry) -> None:
    """execute() with something other than a MemoryOperation is a TypeError; nothing runs."""
    memory = traced(telemetry)
    with pytest.raises(TypeError, match="MemoryOperation"):
        await memory.execute("get k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown memory operation"):
        await memory.execute(MemoryOperation("upsert"))  # type: ignore[arg-type]
    assert telemetry.spans() == []


async def test_bad_input_span_is_error(telemetry: CapturedTelemetry) -> None:
    """A refused add is an ERROR span with error.type and one exception event."""
    memory = traced(telemetry)
    with pytest.raises(TypeError):
        await memory.add("k", {1, 2})
    span = telemetry.span("upsert_memory")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "TypeError"
    assert [e.name for e in span.events] == ["exception"]


async def test_memory_metrics(telemetry: CapturedTelemetry) -> None:
    """Duration histogram per operation; hit, miss and eviction counters."""
    memory = traced(telemetry, max_size=2)
    for key in "abc":
        await memory.add(key, key)
    await memory.get("c")
    await memory.get("a")
    await memory.get_many(["b", "c", "zz"])
    metrics = telemetry.metrics()
    durations = {
        p.attributes["gen_ai.operation.name"]: p.count for p in metrics["memory.operation.duration"]
    }
    assert durations == {"upsert_memory": 3, "get_memory": 3}
    assert sum(p.value for p in metrics["memory.hits"]) == 3
    assert sum(p.value for p in metrics["memory.misses"]) == 2
    assert sum(p.value for p in metrics["memory.evictions"]) == 1


async def test_no_sdk_memory_path_skips_spans() -> None:
    """Without an SDK provider the primitive works and resolves no tracer."""
    memory = MemoryPrimitive()
    await memory.add("k", 1)
    assert await memory.get("k") == 1
    assert memory._telemetry.tracer() is None


async def test_standard_content_switch_turns_capture_on(
    telemetry: CapturedTelemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true captures; an explicit False wins."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    await traced(telemetry).search("hello")
    await traced(telemetry, capture_content=False).search("hello")
    on, off = telemetry.spans()
    assert on.attributes is not None
    assert off.attributes is not None
    assert on.attributes["gen_ai.memory.query.text"] == "hello"
    assert "gen_ai.memory.query.text" not in off.attributes


async def test_memory_spans_are_named_after_the_operation(telemetry: CapturedTelemetry) -> None:
    """Span name == gen_ai.operation.name, with gen_ai.provider.name set (GenAI conventions)."""
    memory = traced(telemetry)
    await memory.add("k", "v")
    await memory.execute(MemoryOperation.get("k"))
    for span in telemetry.spans():
        assert span.attributes is not None
        assert span.name == span.attributes["gen_ai.operation.name"]
        assert span.attributes["gen_ai.provider.name"] == "in_memory"


async def test_untraced_and_traced_paths_agree(telemetry: CapturedTelemetry) -> None:
    """The same operations give the same results with and without an SDK (one handler each)."""

    async def run(memory: MemoryPrimitive) -> list[object]:
        await memory.add("a", {"t": "red apple"}, metadata={"c": 1})
        await memory.add_many({"b": "green apple", "c": "blue sky"})
        return [
            await memory.get("a"),
            await memory.get("zz", default="none"),
            [h.key for h in await memory.search("apple")],
            await memory.get_many(["a", "b", "missing"]),
            await memory.keys(),
            await memory.size(),
            await memory.delete("a"),
            await memory.clear(),
        ]

    assert await run(MemoryPrimitive()) == await run(traced(telemetry))
