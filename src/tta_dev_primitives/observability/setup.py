"""One-call OpenTelemetry SDK set-up for applications, examples and notebooks.

A library must not configure the SDK, so the primitives only use the OpenTelemetry API. An
application calls these helpers once at start-up (they need the ``otel`` extra)::

    from tta_dev_primitives.observability import setup_metrics, setup_tracing

    setup_tracing("my-agent")                   # spans to the console
    setup_tracing("my-agent", exporter="otlp")  # spans to OTLP/HTTP (localhost:4318 by default)
    setup_tracing("my-agent", endpoint="http://127.0.0.1:6006/v1/traces")  # e.g. Phoenix
    setup_metrics("my-agent", exporter="otlp")

Both honour the standard variables: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_SDK_DISABLED``. Both are idempotent and never replace
a provider that is already installed (by the user, by ``opentelemetry-instrument``, or by an
earlier call): they return the installed one instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

from opentelemetry import metrics, trace

from ..core.telemetry import is_noop_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource

__all__ = ["ExporterName", "setup_metrics", "setup_tracing"]

ExporterName = Literal["console", "otlp", "none"]
"""Where telemetry goes: printed to stdout, sent over OTLP/HTTP, or nowhere (readers only)."""

_EXPORTERS: tuple[str, ...] = ("console", "otlp", "none")
_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_SIGNAL_ENDPOINT_ENV = {
    "traces": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
}
_EXTRA_HINT = "pip install 'tta-dev-primitives[otel]'"

_logger = logging.getLogger(__name__)
# Check-then-set of a global provider must not race between threads.
_LOCK = threading.Lock()

_P = TypeVar("_P")


def setup_tracing(
    service_name: str | None = None,
    *,
    exporter: ExporterName | None = None,
    endpoint: str | None = None,
) -> trace.TracerProvider:
    """Install a global SDK tracer provider that exports every span, unless one is installed.

    Console export uses a simple (synchronous) processor so spans print as they end; OTLP export
    uses a batch processor, flushed when the provider shuts down (at interpreter exit, or call
    ``force_flush()``/``shutdown()`` on the returned provider).

    Args:
        service_name: The ``service.name`` resource attribute. ``OTEL_SERVICE_NAME``, when set,
            overrides it, so a deployment can rename a service without a code change.
        exporter: ``"console"`` (stdout), ``"otlp"`` (OTLP over HTTP/protobuf) or ``"none"``.
            By default ``"otlp"`` when ``endpoint`` or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variable is given, else ``"console"``.
        endpoint: OTLP/HTTP URL. A bare base URL such as ``http://127.0.0.1:4318`` gets
            ``/v1/traces`` appended; a URL with a path is used as is. When None, the exporter
            reads ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (as is), then
            ``OTEL_EXPORTER_OTLP_ENDPOINT`` (plus ``/v1/traces``), then uses
            ``http://localhost:4318/v1/traces``.

    Returns:
        The global tracer provider: the new SDK provider, or the one already installed.

    Raises:
        ImportError: The ``otel`` extra (OpenTelemetry SDK, OTLP exporter) is not installed.
        ValueError: ``exporter`` is not one of the names above, or ``endpoint`` is given with
            an exporter other than ``"otlp"``.
    """
    kind = _exporter_kind(exporter, endpoint, "traces")
    _require("setup_tracing", otlp=kind == "otlp")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    def build() -> trace.TracerProvider:
        provider = TracerProvider(resource=_resource(service_name))
        if kind == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            url = _signal_url(endpoint, "traces")
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        return provider

    return _install("tracer", trace.get_tracer_provider, build, trace.set_tracer_provider)


def setup_metrics(
    service_name: str | None = None,
    *,
    exporter: ExporterName | None = None,
    endpoint: str | None = None,
    export_interval_seconds: float | None = None,
    readers: Sequence[MetricReader] = (),
) -> metrics.MeterProvider:
    """Install a global SDK meter provider that exports every metric, unless one is installed.

    The primitives' duration histograms advise the buckets 0.001 … 10 seconds, which the SDK
    applies without any view.

    Args:
        service_name: The ``service.name`` resource attribute (``OTEL_SERVICE_NAME`` overrides).
        exporter: ``"console"``, ``"otlp"`` or ``"none"`` (only ``readers``). By default
            ``"otlp"`` when ``endpoint`` or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
            ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` variable is given, else ``"console"``.
        endpoint: OTLP/HTTP URL; a bare base URL gets ``/v1/metrics`` appended. When None the
            standard variables apply, as for :func:`setup_tracing`.
        export_interval_seconds: How often the exporter is fed; by default
            ``OTEL_METRIC_EXPORT_INTERVAL`` or 60 seconds.
        readers: Extra metric readers to attach, e.g. an ``InMemoryMetricReader`` in tests.

    Returns:
        The global meter provider: the new SDK provider, or the one already installed.

    Raises:
        ImportError: The ``otel`` extra is not installed.
        ValueError: ``exporter`` is not one of the names above, ``endpoint`` is given with an
            exporter other than ``"otlp"``, or the interval is not > 0.
    """
    kind = _exporter_kind(exporter, endpoint, "metrics")
    if export_interval_seconds is not None and not export_interval_seconds > 0:
        raise ValueError("export_interval_seconds must be > 0")
    _require("setup_metrics", otlp=kind == "otlp")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    def build() -> metrics.MeterProvider:
        all_readers: list[MetricReader] = list(readers)
        metric_exporter: MetricExporter | None = None
        if kind == "console":
            metric_exporter = ConsoleMetricExporter()
        elif kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            metric_exporter = OTLPMetricExporter(endpoint=_signal_url(endpoint, "metrics"))
        if metric_exporter is not None:
            interval = None if export_interval_seconds is None else export_interval_seconds * 1e3
            all_readers.append(
                PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval)
            )
        return MeterProvider(resource=_resource(service_name), metric_readers=all_readers)

    return _install("meter", metrics.get_meter_provider, build, metrics.set_meter_provider)


def _install(
    what: str, get: Callable[[], _P], build: Callable[[], _P], install: Callable[[_P], None]
) -> _P:
    """``build()`` installed as the global provider, unless an SDK one is installed already
    (or the SDK is disabled): then that one, untouched."""
    with _LOCK:
        current = get()
        if not is_noop_provider(current) or _sdk_disabled():
            _logger.debug("a %s provider is already installed (or the SDK is disabled)", what)
            return current
        provider = build()
        install(provider)
        return provider


def _exporter_kind(
    exporter: ExporterName | None, endpoint: str | None, signal: str
) -> ExporterName:
    if exporter is None:
        env_endpoint = os.environ.get(_SIGNAL_ENDPOINT_ENV[signal]) or os.environ.get(_ENDPOINT_ENV)
        return "otlp" if endpoint or env_endpoint else "console"
    if exporter not in _EXPORTERS:
        raise ValueError(f"exporter must be one of {_EXPORTERS}, got {exporter!r}")
    if endpoint is not None and exporter != "otlp":
        raise ValueError(f"endpoint is only used with exporter='otlp', not {exporter!r}")
    return exporter


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    """The exporter's URL for an explicit endpoint; None lets the exporter read the env."""
    if endpoint is None:
        return None
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return f"{endpoint.rstrip('/')}/v1/{signal}"


def _resource(service_name: str | None) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; attributes passed
    # to it would win over them, so the argument is passed only when the variable is unset.
    if service_name is None or os.environ.get("OTEL_SERVICE_NAME"):
        return Resource.create()
    return Resource.create({SERVICE_NAME: service_name})


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _require(what: str, *, otlp: bool) -> None:
    # Checked before any global state changes, so a missing extra leaves nothing half-done.
    try:
        import opentelemetry.sdk

        if otlp:
            import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the OpenTelemetry SDK and OTLP/HTTP exporter, which the 'otel' "
            f"extra installs: {_EXTRA_HINT}"
        ) from exc
