"""setup_tracing()/setup_metrics(): SDK wiring, idempotence, respect for existing providers.

Each test that installs a global provider does so in a fresh interpreter: a process can set its
global tracer and meter providers only once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tta_dev_primitives.observability import setup_metrics, setup_tracing

from tests.support.subproc import run_code

BLOCK = """
import sys
class Block:
    def __init__(self, *prefixes):
        self.prefixes = prefixes
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in self.prefixes):
            raise ImportError("blocked: " + name)
        return None
"""


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The JSON span objects the console exporter printed, in order."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    pos = 0
    while (start := stdout.find("{", pos)) != -1:
        obj, pos = decoder.raw_decode(stdout, start)
        spans.append(obj)
    return spans


def test_without_sdk_import_is_cheap_and_setup_names_the_extra() -> None:
    """With only the API, the helpers import, and calling one raises an ImportError naming otel."""
    out = run_code(
        BLOCK
        + """
sys.meta_path.insert(0, Block("opentelemetry.sdk"))
from opentelemetry import metrics, trace
from tta_dev_primitives.observability import setup_metrics, setup_tracing
assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules)
for fn in (setup_tracing, setup_metrics):
    try:
        fn("svc")
    except ImportError as exc:
        assert "'otel' extra" in str(exc) and "tta-dev-primitives[otel]" in str(exc), exc
        print("import-error-ok")
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
"""
    )
    assert out.split() == ["import-error-ok", "import-error-ok"]


def test_otlp_without_exporter_package_names_the_extra() -> None:
    """exporter='otlp' needs the OTLP exporter package; console export still works without it."""
    out = run_code(
        BLOCK
        + """
sys.meta_path.insert(0, Block("opentelemetry.exporter"))
from opentelemetry import trace
from tta_dev_primitives.observability import setup_tracing
try:
    setup_tracing("svc", exporter="otlp")
except ImportError as exc:
    assert "'otel' extra" in str(exc), exc
    print("import-error-ok")
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
assert type(setup_tracing("svc", exporter="console")).__module__.startswith("opentelemetry.sdk")
print("console-ok")
"""
    )
    assert out.split() == ["import-error-ok", "console-ok"]


def test_console_exporter_prints_each_span_once_and_setup_is_idempotent() -> None:
    """A second call returns the first provider and adds no exporter: each span prints once."""
    out = run_code(
        """
        import asyncio
        from opentelemetry import trace
        from tta_dev_primitives import LambdaPrimitive
        from tta_dev_primitives.observability import setup_tracing

        first = setup_tracing("console-svc")
        assert setup_tracing("console-svc") is first
        assert setup_tracing("other", exporter="console") is first
        assert trace.get_tracer_provider() is first
        step = LambdaPrimitive(lambda x, c: x + 1, name="inc")
        pipeline = step >> LambdaPrimitive(lambda x, c: x * 2, name="dbl")
        asyncio.run(pipeline.execute(1))
        """
    )
    spans = console_spans(out)
    assert [s["name"] for s in spans] == ["inc", "dbl", "inc>>dbl"]
    resources = [s["resource"] for s in spans]
    assert all(r["attributes"]["service.name"] == "console-svc" for r in resources)


def test_never_replaces_a_provider_the_user_installed() -> None:
    """A user's own tracer and meter providers stay global and are returned unchanged."""
    out = run_code(
        """
        import asyncio
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from tta_dev_primitives import LambdaPrimitive
        from tta_dev_primitives.observability import setup_metrics, setup_tracing

        mine_t, mine_m = TracerProvider(), MeterProvider()
        trace.set_tracer_provider(mine_t)
        metrics.set_meter_provider(mine_m)
        assert setup_tracing("svc", exporter="console") is mine_t
        assert setup_metrics("svc", exporter="console") is mine_m
        assert trace.get_tracer_provider() is mine_t
        assert metrics.get_meter_provider() is mine_m
        asyncio.run(LambdaPrimitive(lambda x, c: x, name="mine").execute(1))
        mine_t.force_flush()
        mine_m.force_flush()
        print("kept")
        """
    )
    # Had a console exporter been added to the user's providers, spans/metrics would print.
    assert out.split() == ["kept"]


def test_sdk_disabled_installs_nothing() -> None:
    """OTEL_SDK_DISABLED=true leaves the no-op providers in place and prints nothing."""
    out = run_code(
        """
        import asyncio
        from opentelemetry import metrics, trace
        from tta_dev_primitives import LambdaPrimitive
        from tta_dev_primitives.observability import setup_metrics, setup_tracing

        assert setup_tracing("svc") is trace.get_tracer_provider()
        assert setup_metrics("svc") is metrics.get_meter_provider()
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        asyncio.run(LambdaPrimitive(lambda x, c: x, name="quiet").execute(1))
        """,
        OTEL_SDK_DISABLED="true",
    )
    assert out == ""


def test_setup_metrics_feeds_the_given_reader() -> None:
    """setup_metrics(readers=[InMemoryMetricReader()]) records primitive durations in seconds."""
    out = run_code(
        """
        import asyncio, json
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from tta_dev_primitives import LambdaPrimitive
        from tta_dev_primitives.observability import setup_metrics

        reader = InMemoryMetricReader()
        provider = setup_metrics("metrics-svc", exporter="none", readers=[reader])
        assert metrics.get_meter_provider() is provider
        assert setup_metrics("metrics-svc", readers=[InMemoryMetricReader()]) is provider

        def fail(x, c):
            raise KeyError(x)

        asyncio.run(LambdaPrimitive(lambda x, c: x, name="ok").execute(1))
        try:
            asyncio.run(LambdaPrimitive(fail, name="bad").execute(1))
        except KeyError:
            pass
        data = reader.get_metrics_data()
        (rm,) = data.resource_metrics
        found = {}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    found.setdefault(m.name, []).append({
                        "unit": m.unit,
                        "bounds": list(p.explicit_bounds),
                        "count": p.count,
                        "attrs": dict(p.attributes),
                    })
        print(json.dumps({"service": rm.resource.attributes["service.name"], "found": found}))
        """
    )
    result = json.loads(out)
    assert result["service"] == "metrics-svc"
    points = result["found"]["workflow.primitive.duration"]
    assert {p["unit"] for p in points} == {"s"}
    assert all(p["bounds"][0] == 0.001 and p["bounds"][-1] == 10.0 for p in points)
    by_name = {p["attrs"]["workflow.primitive.name"]: p for p in points}
    assert by_name["ok"]["attrs"]["workflow.outcome"] == "success"
    assert by_name["bad"]["attrs"]["workflow.outcome"] == "error"
    assert by_name["bad"]["attrs"]["error.type"] == "KeyError"
    assert by_name["ok"]["count"] == by_name["bad"]["count"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exporter": "jaeger"}, "exporter must be one of"),
        ({"exporter": "console", "endpoint": "http://127.0.0.1:4318"}, "endpoint is only used"),
    ],
)
def test_bad_arguments_are_refused_before_any_change(kwargs: dict[str, str], message: str) -> None:
    """An unknown exporter, or an endpoint without OTLP, is a ValueError naming the argument."""
    for fn in (setup_tracing, setup_metrics):
        with pytest.raises(ValueError, match=message):
            fn("svc", **kwargs)  # type: ignore[arg-type]


def test_bad_export_interval_is_refused() -> None:
    """export_interval_seconds must be positive."""
    with pytest.raises(ValueError, match="export_interval_seconds"):
        setup_metrics("svc", exporter="console", export_interval_seconds=0)


def test_setup_metrics_collects_memory_metrics() -> None:
    """A MemoryPrimitive built before setup_metrics reports durations, hits and misses to it."""
    out = run_code(
        """
        import asyncio, json
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from tta_dev_primitives import MemoryPrimitive
        from tta_dev_primitives.observability import setup_metrics

        memory = MemoryPrimitive()
        reader = InMemoryMetricReader()
        setup_metrics("memory-svc", exporter="none", readers=[reader])

        async def run():
            await memory.add("k", {"v": 1})
            await memory.get("k")
            await memory.get("missing")

        asyncio.run(run())
        found = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.data.data_points:
                        entry = found.setdefault(m.name, {"unit": m.unit, "points": []})
                        entry["points"].append({
                            "attrs": dict(p.attributes),
                            "value": getattr(p, "value", None),
                            "count": getattr(p, "count", None),
                            "bounds": list(getattr(p, "explicit_bounds", []) or []),
                        })
        print(json.dumps(found))
        """
    )
    found = json.loads(out)
    duration = found["memory.operation.duration"]
    assert duration["unit"] == "s"
    ops = {p["attrs"]["gen_ai.operation.name"]: p for p in duration["points"]}
    assert ops["upsert_memory"]["count"] == 1
    assert ops["get_memory"]["count"] == 2
    assert ops["get_memory"]["bounds"][0] == 0.001
    assert ops["get_memory"]["bounds"][-1] == 10.0
    assert sum(p["value"] for p in found["memory.hits"]["points"]) == 1
    assert sum(p["value"] for p in found["memory.misses"]["points"]) == 1
