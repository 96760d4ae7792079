"""Test helpers for users' own tests: capture the spans and metrics primitives produce.

Usage::

    from tta_dev_primitives.testing import capture_telemetry

    with capture_telemetry() as captured:
        memory = MemoryPrimitive(tracer_provider=captured.tracer_provider)
        await memory.add("k", "v")
    assert [s.name for s in captured.spans()] == ["upsert_memory"]

Needs ``opentelemetry-sdk`` (the ``otel`` or ``dev`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["CapturedTelemetry", "capture_spans", "capture_telemetry"]


@dataclass
class CapturedTelemetry:
    """Providers to hand to primitives, and what they recorded."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError if not exactly one)."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> data points collected so far."""
        out: dict[str, list[Any]] = {}
        data = self.metric_reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()


def _require_sdk() -> None:
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised without the SDK only
        raise ImportError(
            "tta_dev_primitives.testing needs opentelemetry-sdk: "
            "pip install 'tta-dev-primitives[otel]'"
        ) from exc


@contextmanager
def capture_telemetry() -> Iterator[CapturedTelemetry]:
    """Capture spans (synchronously exported) and metrics of the primitives given its providers.

    Yields:
        A :class:`CapturedTelemetry` whose providers you pass as ``tracer_provider=`` /
        ``meter_provider=``. The global providers are left untouched.
    """
    _require_sdk()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        yield CapturedTelemetry(tracer_provider, meter_provider, exporter, reader)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


capture_spans = capture_telemetry
