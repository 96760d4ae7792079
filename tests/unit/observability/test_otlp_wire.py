"""Spans and metrics leave the process over real OTLP/HTTP and arrive as one well-formed tree.

A small OTLP/HTTP receiver (``tests/support/otlp.py``) runs inside the test on a free
loopback port; the traced code runs in a subprocess (a process can install its global tracer
provider only once) that exports to it. The receiver decodes the protobuf requests with
``opentelemetry-proto``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tta_dev_primitives.core.telemetry import DURATION_BUCKETS
from tta_dev_primitives.observability import attributes as attrs

from tests.support.otlp import OtlpReceiver, decode_attributes
from tests.support.paths import ROOT
from tests.support.subproc import run_code, run_python


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A running OTLP/HTTP receiver on a free loopback port."""
    with OtlpReceiver() as r:
        yield r


PIPELINE = """
    import asyncio
    from tta_dev_primitives import LambdaPrimitive, WorkflowContext
    from tta_dev_primitives.observability import setup_tracing

    setup_tracing("wire-test"{args})

    async def fetch(query, ctx):
        return [query, query.upper()]

    def boom(x, ctx):
        raise ValueError("bad")

    guarded = LambdaPrimitive(boom, name="boom")

    async def answer(docs, ctx):
        try:
            await guarded.execute(docs, ctx)
        except ValueError:
            pass
        return " / ".join(docs)

    pipeline = LambdaPrimitive(fetch, name="fetch") >> LambdaPrimitive(answer, name="answer")
    print(asyncio.run(pipeline.execute("hi", WorkflowContext("wf-7", session_id="s-7"))))
"""


def test_pipeline_spans_arrive_as_one_tree(receiver: OtlpReceiver) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT routes a pipeline's spans, flushed at exit, as one tree."""
    out = run_code(PIPELINE.format(args=""), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url)
    assert out.strip() == "hi / HI"

    spans = {s.name: s for s in receiver.wait_for_spans(4)}
    assert set(spans) == {"fetch>>answer", "fetch", "answer", "boom"}
    assert set(receiver.paths) == {"/v1/traces"}
    assert len({s.trace_id for s in spans.values()}) == 1
    root = spans["fetch>>answer"]
    assert root.parent_span_id == ""
    assert spans["fetch"].parent_span_id == root.span_id
    assert spans["answer"].parent_span_id == root.span_id
    assert spans["boom"].parent_span_id == spans["answer"].span_id

    assert root.attributes[attrs.ATTR_PRIMITIVE_TYPE] == "sequence"
    assert root.attributes[attrs.ATTR_OPENINFERENCE_SPAN_KIND] == "CHAIN"
    assert spans["fetch"].attributes[attrs.ATTR_STEP_INDEX] == 0
    assert spans["answer"].attributes[attrs.ATTR_STEP_INDEX] == 1
    assert attrs.ATTR_STEP_INDEX not in spans["boom"].attributes
    for span in spans.values():
        assert span.attributes[attrs.ATTR_WORKFLOW_ID] == "wf-7"
        assert span.attributes[attrs.ATTR_WORKFLOW_SESSION_ID] == "s-7"
        assert span.scope == "tta_dev_primitives"
        assert span.resource["service.name"] == "wire-test"

    boom = spans["boom"]
    assert boom.status_code == 2  # STATUS_CODE_ERROR
    assert boom.attributes[attrs.ATTR_ERROR_TYPE] == "ValueError"
    assert boom.events == ["exception"]
    assert spans["answer"].status_code == 0  # the error was handled inside "answer"


def test_traces_endpoint_variable_is_used_as_is(receiver: OtlpReceiver) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is a full URL and wins over the base endpoint."""
    run_code(
        PIPELINE.format(args=""),
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.base_url}/custom/traces",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert len(receiver.wait_for_spans(4)) == 4
    assert set(receiver.paths) == {"/custom/traces"}


def test_explicit_base_endpoint_gets_signal_path(receiver: OtlpReceiver) -> None:
    """setup_tracing(endpoint=<base URL>) selects OTLP and posts to <base>/v1/traces."""
    run_code(PIPELINE.format(args=f", endpoint={receiver.base_url!r}"))
    assert len(receiver.wait_for_spans(4)) == 4
    assert set(receiver.paths) == {"/v1/traces"}


def test_service_name_variable_and_resource_attributes(receiver: OtlpReceiver) -> None:
    """OTEL_SERVICE_NAME overrides the argument; OTEL_RESOURCE_ATTRIBUTES lands on the resource."""
    run_code(
        PIPELINE.format(args=", exporter='otlp'"),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url,
        OTEL_SERVICE_NAME="renamed-by-env",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=ci",
    )
    spans = receiver.wait_for_spans(4)
    assert {s.resource["service.name"] for s in spans} == {"renamed-by-env"}
    assert {s.resource["deployment.environment.name"] for s in spans} == {"ci"}


def test_metrics_arrive_with_advised_buckets(receiver: OtlpReceiver) -> None:
    """setup_metrics over OTLP delivers the duration histogram in seconds with 0.001…10 buckets."""
    run_code(
        """
        import asyncio
        from tta_dev_primitives import LambdaPrimitive
        from tta_dev_primitives.observability import setup_metrics

        provider = setup_metrics("wire-metrics", exporter="otlp")
        step = LambdaPrimitive(lambda x, c: x + 1, name="inc")
        asyncio.run(step.execute(1))
        provider.force_flush()
        """,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url,
    )
    assert set(receiver.paths) == {"/v1/metrics"}
    metric = receiver.metrics()[attrs.METRIC_PRIMITIVE_DURATION]
    assert metric.unit == "s"
    (point,) = metric.histogram.data_points
    assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
    assert point.count == 1
    labels = decode_attributes(point.attributes)
    assert labels[attrs.ATTR_PRIMITIVE_NAME] == "inc"
    assert labels[attrs.ATTR_WORKFLOW_OUTCOME] == "success"


EXAMPLE = ROOT / "examples" / "tracing_pipeline.py"


def run_example(*args: str, **env: str) -> str:
    return run_python(str(EXAMPLE), *args, **env)


@pytest.mark.parametrize("capture_content", [False, True], ids=["default", "capture-content"])
def test_example_trace_arrives_over_otlp(receiver: OtlpReceiver, capture_content: bool) -> None:
    """The example's retrieve/answer/remember run arrives as one trace with GenAI attributes."""
    args = ["--capture-content"] if capture_content else []
    out = run_example(*args, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url)
    printed = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert printed["remembered"] == "True"

    received = receiver.wait_for_spans(8)
    assert set(receiver.paths) == {"/v1/traces"}
    root = next(s for s in received if s.name == "answer_question")
    assert root.parent_span_id == ""
    assert root.trace_id == printed["trace id"]
    run = {s.name: s for s in received if s.trace_id == root.trace_id}
    assert set(run) == {
        "answer_question",
        "search_step",
        "search_memory",
        "answer",
        "add_step",
        "upsert_memory",
    }
    for index, name in enumerate(["search_step", "answer", "add_step"]):
        assert run[name].parent_span_id == root.span_id
        assert run[name].attributes[attrs.ATTR_STEP_INDEX] == index
    assert run["search_memory"].parent_span_id == run["search_step"].span_id
    assert run["upsert_memory"].parent_span_id == run["add_step"].span_id
    for span in run.values():
        assert span.resource["service.name"] == "tracing-pipeline"
        assert span.attributes[attrs.ATTR_WORKFLOW_ID] == "run-1"
        assert span.attributes[attrs.ATTR_WORKFLOW_SESSION_ID] == "session-1"
        assert span.status_code == 0  # UNSET: nothing failed

    search = run["search_memory"].attributes
    assert search[attrs.ATTR_GEN_AI_OPERATION_NAME] == "search_memory"
    assert search[attrs.ATTR_GEN_AI_MEMORY_STORE_ID] == "notes"
    assert search[attrs.ATTR_GEN_AI_MEMORY_RECORD_COUNT] == 3
    assert search[attrs.ATTR_OPENINFERENCE_SPAN_KIND] == "RETRIEVER"
    assert search[attrs.ATTR_MEMORY_SEARCH_LIMIT] == 3
    assert search[attrs.ATTR_MEMORY_BACKEND]
    add = run["upsert_memory"].attributes
    assert add[attrs.ATTR_GEN_AI_OPERATION_NAME] == "upsert_memory"
    assert add[attrs.ATTR_GEN_AI_MEMORY_STORE_ID] == "notes"

    (get,) = [s for s in received if s.name == "get_memory"]
    assert get.attributes[attrs.ATTR_MEMORY_HIT] is True
    assert get.attributes[attrs.ATTR_GEN_AI_OPERATION_NAME] == "get_memory"

    if capture_content:
        assert search[attrs.ATTR_GEN_AI_MEMORY_QUERY_TEXT] == printed["question"]
        (written,) = json.loads(add[attrs.ATTR_GEN_AI_MEMORY_RECORDS])
        assert printed["answer"] in written["content"]
        found = json.loads(search[attrs.ATTR_GEN_AI_MEMORY_RECORDS])
        assert len(found) == 3
        assert all(item["score"] > 0 for item in found)
    else:
        assert attrs.ATTR_GEN_AI_MEMORY_QUERY_TEXT not in search
        for span in received:
            assert attrs.ATTR_GEN_AI_MEMORY_RECORDS not in span.attributes
