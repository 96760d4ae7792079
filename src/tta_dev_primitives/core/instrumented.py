"""``InstrumentedPrimitive``: the one place where primitives are traced and measured."""

from __future__ import annotations

import contextvars
import re
import time
from abc import abstractmethod
from collections.abc import Awaitable
from typing import ClassVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_internal
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from .base import InT, OutT, WorkflowPrimitive
from .context import WorkflowContext
from .names import (
    ATTR_ERROR_TYPE,
    ATTR_PRIMITIVE_NAME,
    ATTR_PRIMITIVE_TYPE,
    ATTR_STEP_INDEX,
    ATTR_WORKFLOW_ID,
    ATTR_WORKFLOW_OUTCOME,
    ATTR_WORKFLOW_SESSION_ID,
    METRIC_PRIMITIVE_DURATION,
)
from .telemetry import DURATION_BUCKETS, TelemetryHandles, attribute_text, error_type

__all__ = ["InstrumentedPrimitive"]

# Set by a sequence (only while its span records) right before it runs a step; the step's
# span consumes it, so a step's own inner primitives never inherit the index.
_STEP_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "tta_step_index", default=None
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _default_type(cls: type) -> str:
    base = cls.__name__.removesuffix("Primitive") or cls.__name__
    return _CAMEL.sub("_", base).lower()


def _duration_histogram(meter: metrics.Meter) -> metrics.Histogram:
    return meter.create_histogram(
        METRIC_PRIMITIVE_DURATION,
        unit="s",
        description="Duration of workflow primitive executions.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )


class InstrumentedPrimitive(WorkflowPrimitive[InT, OutT]):
    """A primitive whose every execution is a span and a duration measurement.

    Subclasses implement :meth:`_execute_impl`. :meth:`execute` runs it inside
    ``tracer.start_as_current_span``, so spans nest: one pipeline run is one trace, a sequence
    span is the parent of its step spans, and anything a step calls is a child of the step.
    With no OpenTelemetry SDK configured, no span or metric work is done at all.

    Args:
        name: The primitive's name (span name and ``workflow.primitive.name``); defaults to
            the primitive type.
        tracer_provider: Tracer provider to use instead of the global one.
        meter_provider: Meter provider to use instead of the global one.
    """

    primitive_type: ClassVar[str] = ""

    def __init__(
        self,
        name: str | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError("name must be a non-empty str or None")
        self._type = self.primitive_type or _default_type(type(self))
        self.name = name or self._type
        self._telemetry = TelemetryHandles(tracer_provider, meter_provider)

    @abstractmethod
    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        """Do the primitive's work (called inside its span)."""

    # Hooks a subclass may override to shape its span without touching span code.
    def _span_name(self, input_data: InT) -> str:
        return self.name

    def _span_kind(self, input_data: InT) -> SpanKind:
        return SpanKind.INTERNAL

    def _span_attributes(
        self, input_data: InT, context: WorkflowContext
    ) -> dict[str, AttributeValue]:
        """Attributes set when the span starts (only called when the span records)."""
        attrs: dict[str, AttributeValue] = {
            ATTR_PRIMITIVE_NAME: self.name,
            ATTR_PRIMITIVE_TYPE: self._type,
        }
        add_context_attributes(attrs, context)
        return attrs

    def _metric_attributes(self, input_data: InT) -> dict[str, AttributeValue]:
        return {ATTR_PRIMITIVE_NAME: self.name, ATTR_PRIMITIVE_TYPE: self._type}

    def _duration_instrument(self) -> metrics.Histogram | None:
        hist: metrics.Histogram | None = self._telemetry.instrument(
            METRIC_PRIMITIVE_DURATION, _duration_histogram
        )
        return hist

    async def execute(self, input_data: InT, context: WorkflowContext | None = None) -> OutT:
        """Run the primitive inside its span.

        Args:
            input_data: The primitive's input.
            context: The workflow context; a fresh one is created when None.

        Returns:
            What :meth:`_execute_impl` returns.
        """
        return await self._start(input_data, context)

    def _start(self, input_data: InT, context: WorkflowContext | None) -> Awaitable[OutT]:
        """The awaitable of one execution: untraced when nothing records, traced otherwise.

        The one place that decides, cheaply and per call, whether anything records (a
        provider may be installed after the primitive was built). A subclass's own public
        methods may await it directly instead of :meth:`execute`, saving a coroutine.
        """
        tel = self._telemetry
        if (  # TelemetryHandles.disabled(), its common case inlined: two global reads
            tel.global_only
            and trace._TRACER_PROVIDER is None
            and _metrics_internal._METER_PROVIDER is None
        ) or tel.disabled():  # no SDK: no span, no metric, nothing to build
            return self._execute_untraced(input_data, context)
        return self._execute_recorded(input_data, context)

    async def _execute_recorded(self, input_data: InT, context: WorkflowContext | None) -> OutT:
        if context is None:
            context = WorkflowContext()
        tracer = self._telemetry.tracer()
        hist = self._duration_instrument()
        if tracer is None and hist is None:
            return await self._execute_impl(input_data, context)
        return await self._execute_traced(tracer, hist, input_data, context)

    def _execute_untraced(
        self, input_data: InT, context: WorkflowContext | None
    ) -> Awaitable[OutT]:
        """The awaitable that runs the primitive when nothing records (no SDK at all).

        :meth:`_execute_impl`'s coroutine by default. A subclass whose work never reads the
        context may override this to skip building one; it must do the same work as
        :meth:`_execute_impl`. Returned, not awaited, so it adds no coroutine of its own.
        """
        return self._execute_impl(input_data, WorkflowContext() if context is None else context)

    async def _execute_traced(
        self,
        tracer: trace.Tracer | None,
        hist: metrics.Histogram | None,
        input_data: InT,
        context: WorkflowContext,
    ) -> OutT:
        start = time.perf_counter()
        outcome = "success"
        err: str | None = None
        step_index = _STEP_INDEX.get()
        token = _STEP_INDEX.set(None) if step_index is not None else None
        try:
            if tracer is None:
                return await self._execute_impl(input_data, context)
            with tracer.start_as_current_span(
                self._span_name(input_data),
                kind=self._span_kind(input_data),
                record_exception=True,
                set_status_on_exception=True,
            ) as span:
                if span.is_recording():
                    attrs = self._span_attributes(input_data, context)
                    if step_index is not None:
                        attrs[ATTR_STEP_INDEX] = step_index
                    span.set_attributes(attrs)
                try:
                    return await self._execute_impl(input_data, context)
                except BaseException as exc:
                    # The context manager records the exception event and ERROR status once.
                    span.set_attribute(ATTR_ERROR_TYPE, error_type(exc))
                    raise
        except BaseException as exc:
            outcome, err = "error", error_type(exc)
            raise
        finally:
            if token is not None:
                _STEP_INDEX.reset(token)
            if hist is not None:
                mattrs = self._metric_attributes(input_data)
                mattrs[ATTR_WORKFLOW_OUTCOME] = outcome
                if err is not None:
                    mattrs[ATTR_ERROR_TYPE] = err
                hist.record(time.perf_counter() - start, mattrs)


def _text(value: AttributeValue) -> AttributeValue:
    return attribute_text(value) if isinstance(value, str) else value


def add_context_attributes(attrs: dict[str, AttributeValue], context: WorkflowContext) -> None:
    """Add the workflow and session ids of ``context`` (when set) to span attributes."""
    if context.workflow_id is not None:
        attrs[ATTR_WORKFLOW_ID] = _text(context.workflow_id)
    if context.session_id is not None:
        attrs[ATTR_WORKFLOW_SESSION_ID] = _text(context.session_id)


def run_as_step(index: int) -> contextvars.Token[int | None] | None:
    """Mark the next primitive started in this context as step ``index`` of a sequence."""
    if not trace.get_current_span().is_recording():
        return None
    return _STEP_INDEX.set(index)


def end_step(token: contextvars.Token[int | None] | None) -> None:
    if token is not None:
        _STEP_INDEX.reset(token)
