"""Spans nest into one trace per pipeline run; errors and metrics are recorded once."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, StatusCode

from tta_dev_primitives import (
    LambdaPrimitive,
    RetryPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from tta_dev_primitives.core.telemetry import TelemetryHandles, is_noop_provider
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.subproc import run_code


def step(name: str, tp: trace.TracerProvider, fn=lambda x, c: x) -> LambdaPrimitive[int, int]:
    return LambdaPrimitive(fn, name=name, tracer_provider=tp)


async def test_pipeline_is_one_trace_with_sequence_parent(telemetry: CapturedTelemetry) -> None:
    """Each step span is a child of the sequence span, all in one trace, indices recorded."""
    tp = telemetry.tracer_provider
    pipeline = SequentialPrimitive(
        [step("a", tp), step("b", tp), step("c", tp)], name="pipe", tracer_provider=tp
    )
    ctx = WorkflowContext(workflow_id="wf-1", session_id="s-1")
    await pipeline.execute(1, ctx)

    spans = {s.name: s for s in telemetry.spans()}
    assert set(spans) == {"pipe", "a", "b", "c"}
    root = spans["pipe"]
    assert root.parent is None
    assert {s.context.trace_id for s in spans.values()} == {root.context.trace_id}
    for index, name in enumerate("abc"):
        child = spans[name]
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.attributes is not None
        assert child.attributes["workflow.step.index"] == index
        assert child.attributes["workflow.primitive.name"] == name
        assert child.attributes["workflow.primitive.type"] == "lambda"
        assert child.attributes["workflow.id"] == "wf-1"
        assert child.attributes["workflow.session.id"] == "s-1"
    assert root.attributes is not None
    assert root.attributes["workflow.primitive.type"] == "sequence"
    assert "workflow.step.index" not in root.attributes


async def test_primitives_called_inside_a_step_are_children_of_it(
    telemetry: CapturedTelemetry,
) -> None:
    """A primitive a step calls internally nests under the step, without a step index."""
    tp = telemetry.tracer_provider
    inner = step("inner", tp)

    async def outer_fn(x: int, ctx: WorkflowContext) -> int:
        return await inner.execute(x, ctx)

    pipeline = SequentialPrimitive(
        [step("first", tp), step("outer", tp, outer_fn)], name="p", tracer_provider=tp
    )
    await pipeline.execute(1)
    spans = {s.name: s for s in telemetry.spans()}
    assert spans["inner"].parent is not None
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert spans["inner"].attributes is not None
    assert "workflow.step.index" not in spans["inner"].attributes


async def test_parallel_branches_are_children_of_parallel(telemetry: CapturedTelemetry) -> None:
    """Branch spans nest under the parallel span even though they run in tasks."""
    tp = telemetry.tracer_provider
    from tta_dev_primitives import ParallelPrimitive

    par = ParallelPrimitive([step("x", tp), step("y", tp)], name="par", tracer_provider=tp)
    assert await par.execute(2) == [2, 2]
    spans = {s.name: s for s in telemetry.spans()}
    for name in "xy":
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == spans["par"].context.span_id


async def test_error_span_records_exception_once(telemetry: CapturedTelemetry) -> None:
    """A failing step: status ERROR, error.type set, exactly one exception event per span."""
    tp = telemetry.tracer_provider

    def fail(x: int, c: WorkflowContext) -> int:
        raise ValueError("bad input")

    pipeline = SequentialPrimitive(
        [step("ok", tp), step("fail", tp, fail)], name="p", tracer_provider=tp
    )
    with pytest.raises(ValueError, match="bad input"):
        await pipeline.execute(1)
    for name in ("fail", "p"):
        span = telemetry.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "ValueError"
        assert [e.name for e in span.events].count("exception") == 1
    assert telemetry.span("ok").status.status_code is StatusCode.UNSET


async def test_custom_exception_error_type_is_qualified(telemetry: CapturedTelemetry) -> None:
    """error.type is the fully qualified class name for non-builtin exceptions."""

    class Boom(Exception):
        pass

    def fail(x: int, c: WorkflowContext) -> int:
        raise Boom

    with pytest.raises(Boom):
        await step("f", telemetry.tracer_provider, fail).execute(1)
    attrs = telemetry.span("f").attributes
    assert attrs is not None
    assert str(attrs["error.type"]).endswith("Boom")
    assert "." in str(attrs["error.type"])


async def test_retry_attempt_spans_nest_under_retry(telemetry: CapturedTelemetry) -> None:
    """Each attempt is a child span of the retry span."""
    tp = telemetry.tracer_provider
    calls = 0

    def flaky(x: int, c: WorkflowContext) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError
        return x

    async def no_sleep(_: float) -> None:
        return None

    retry = RetryPrimitive(step("attempt", tp, flaky), sleep=no_sleep, tracer_provider=tp)
    await retry.execute(1)
    attempts = [s for s in telemetry.spans() if s.name == "attempt"]
    assert len(attempts) == 2
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == telemetry.span(retry.name).context.span_id


async def test_duration_histogram_recorded(telemetry: CapturedTelemetry) -> None:
    """Each execution records its duration in seconds with name, type and outcome."""
    p = LambdaPrimitive(lambda x, c: x, name="m", meter_provider=telemetry.meter_provider)
    await p.execute(1)
    await p.execute(2)
    points = telemetry.metrics()["workflow.primitive.duration"]
    assert len(points) == 1
    point = points[0]
    assert point.count == 2
    assert point.attributes["workflow.primitive.name"] == "m"
    assert point.attributes["workflow.outcome"] == "success"
    assert 0 <= point.sum < 1


async def test_noop_provider_does_no_span_work() -> None:
    """With a no-op or proxy provider, no tracer is resolved (the cheap path)."""
    assert is_noop_provider(NoOpTracerProvider())
    assert is_noop_provider(trace.ProxyTracerProvider())
    handles = TelemetryHandles(tracer_provider=NoOpTracerProvider())
    assert handles.tracer() is None
    p = LambdaPrimitive(lambda x, c: x + 1, tracer_provider=NoOpTracerProvider())
    assert await p.execute(1) == 2


def test_sdk_provider_is_not_noop(telemetry: CapturedTelemetry) -> None:
    """An SDK provider yields a real tracer."""
    assert not is_noop_provider(telemetry.tracer_provider)
    assert TelemetryHandles(telemetry.tracer_provider).tracer() is not None


async def test_plain_workflow_primitive_composes(telemetry: CapturedTelemetry) -> None:
    """A user subclass of WorkflowPrimitive (not instrumented) chains like any other."""

    class Double(WorkflowPrimitive[int, int]):
        name = "double"

        async def execute(self, input_data: int, context: WorkflowContext | None = None) -> int:
            return input_data * 2

    pipeline = Double() >> step("s", telemetry.tracer_provider)
    assert await pipeline.execute(3) == 6


def test_provider_installed_later_is_noticed() -> None:
    """Primitives built before any SDK start tracing once a global provider is installed."""
    out = run_code(
        """
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from tta_dev_primitives import LambdaPrimitive, MemoryPrimitive

        step = LambdaPrimitive(lambda x, c: x, name="step")
        memory = MemoryPrimitive()

        async def run():
            await step.execute(1)
            await memory.add("k", 1)
            await memory.get("k")

        asyncio.run(run())
        assert memory._telemetry.disabled()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert not memory._telemetry.disabled()
        asyncio.run(run())
        print(" ".join(s.name for s in exporter.get_finished_spans()))
        """
    )
    assert out.split() == ["step", "upsert_memory", "get_memory"]
