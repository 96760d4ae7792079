"""Tracer and instrument resolution shared by every instrumented primitive.

The OpenTelemetry API costs a few microseconds per span even when no SDK is installed
(context attach/detach through the proxy tracer). Primitives therefore ask, per call and
cheaply, whether a real provider is configured, and skip all span and metric work when not.
A user may install a provider after the primitive was built; the check notices that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_internal

from .._version import __version__

__all__ = [
    "DURATION_BUCKETS",
    "INSTRUMENTATION_NAME",
    "TelemetryHandles",
    "attribute_int",
    "attribute_text",
    "error_type",
    "is_noop_provider",
]

INSTRUMENTATION_NAME = "tta_dev_primitives"

# Advised histogram buckets for operation durations, in seconds.
DURATION_BUCKETS: Sequence[float] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_API_MODULES = ("opentelemetry.trace", "opentelemetry.metrics")


def is_noop_provider(provider: object) -> bool:
    """True for the API's own proxy and no-op providers (no SDK behind them)."""
    # The SDK's providers live in opentelemetry.sdk.*; the API's proxy/no-op classes live in
    # the API packages. Checking the module avoids importing private proxy classes.
    return type(provider).__module__.startswith(_API_MODULES)


# get_tracer_provider()/get_meter_provider() look up an environment variable on every call
# (about 0.6 us each), which is most of the cost of a no-SDK operation. When the API still
# keeps its globals where we expect them and no provider is configured through the
# environment, read the globals directly; otherwise fall back to the public getters.
_FAST_TRACE = hasattr(trace, "_TRACER_PROVIDER") and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
_FAST_METRICS = (
    hasattr(_metrics_internal, "_METER_PROVIDER") and "OTEL_PYTHON_METER_PROVIDER" not in os.environ
)
_NO_PROVIDER = trace.ProxyTracerProvider()


def _global_tracer_provider() -> object:
    if _FAST_TRACE:
        provider = trace._TRACER_PROVIDER
        return _NO_PROVIDER if provider is None else provider
    return trace.get_tracer_provider()


def _global_meter_provider() -> object:
    if _FAST_METRICS:
        provider = _metrics_internal._METER_PROVIDER
        return _NO_PROVIDER if provider is None else provider
    return metrics.get_meter_provider()


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def attribute_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so OTLP (UTF-8) can carry it.

    The OTLP encoder drops an attribute whose string does not encode as UTF-8; user input
    (keys, namespaces, workflow ids, queries, values) may hold lone surrogates.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def attribute_int(value: int) -> int:
    """``value`` clamped to int64, the range of an OTLP int attribute (else it is dropped)."""
    return value if _INT64_MIN <= value <= _INT64_MAX else max(_INT64_MIN, min(value, _INT64_MAX))


def error_type(exc: BaseException) -> str:
    """The ``error.type`` value for an exception: its fully qualified class name."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class TelemetryHandles:
    """Resolves a tracer and metric instruments for one primitive, cached per provider.

    Args:
        tracer_provider: Provider to use; the global one (looked up per call) when None.
        meter_provider: Provider to use; the global one (looked up per call) when None.
    """

    __slots__ = (
        "_instruments",
        "_lock",
        "_meter",
        "_meter_for",
        "_meter_provider",
        "_tracer",
        "_tracer_for",
        "_tracer_provider",
        "global_only",
    )

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer_for: object = None
        self._tracer: trace.Tracer | None = None
        self._meter_for: object = None
        self._meter: metrics.Meter | None = None
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()
        # True when both providers are the API's globals, readable directly: then "nothing
        # records" is two global reads (see disabled(); InstrumentedPrimitive inlines them).
        self.global_only = (
            _FAST_TRACE and _FAST_METRICS and tracer_provider is None and meter_provider is None
        )

    @property
    def tracer_provider(self) -> trace.TracerProvider | None:
        """The injected tracer provider (None = the global one)."""
        return self._tracer_provider

    @property
    def meter_provider(self) -> metrics.MeterProvider | None:
        """The injected meter provider (None = the global one)."""
        return self._meter_provider

    def tracer(self) -> trace.Tracer | None:
        """The tracer to use now, or None when no SDK provider is configured."""
        provider: Any = self._tracer_provider
        if provider is None:
            provider = _global_tracer_provider()
        if provider is self._tracer_for:
            return self._tracer
        tracer = (
            None
            if is_noop_provider(provider)
            else provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        )
        self._tracer, self._tracer_for = tracer, provider
        return tracer

    def disabled(self) -> bool:
        """True when neither a tracer nor a meter SDK provider is configured right now."""
        if (  # the common no-SDK case, checked with two global reads
            self.global_only
            and trace._TRACER_PROVIDER is None
            and _metrics_internal._METER_PROVIDER is None
        ):
            return True
        return self.tracer() is None and self.meter() is None

    def meter(self) -> metrics.Meter | None:
        """The meter to use now, or None when no SDK meter provider is configured."""
        provider: Any = self._meter_provider
        if provider is None:
            provider = _global_meter_provider()
        if provider is self._meter_for:
            return self._meter
        with self._lock:
            meter = (
                None
                if is_noop_provider(provider)
                else provider.get_meter(INSTRUMENTATION_NAME, __version__)
            )
            self._instruments = {}
            self._meter, self._meter_for = meter, provider
        return meter

    def instrument(self, name: str, factory: Callable[[metrics.Meter], Any]) -> Any:
        """A metric instrument created once per meter by ``factory``; None without an SDK."""
        meter = self.meter()
        if meter is None:
            return None
        inst = self._instruments.get(name)
        if inst is None:
            inst = _shared_instrument(meter, name, factory)
            self._instruments[name] = inst
        return inst


# Instruments are shared by every primitive that uses the same meter, so that creating many
# primitives does not register the same instrument many times.
_SHARED: dict[tuple[int, str], tuple[metrics.Meter, Any]] = {}
_SHARED_LOCK = threading.Lock()


def _shared_instrument(
    meter: metrics.Meter, name: str, factory: Callable[[metrics.Meter], Any]
) -> Any:
    key = (id(meter), name)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is not None and found[0] is meter:
            return found[1]
        inst = factory(meter)
        _SHARED[key] = (meter, inst)
        return inst
