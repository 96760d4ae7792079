"""Recovery primitives: retry, timeout and fallback around any other primitive."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from opentelemetry import metrics, trace

from .base import InT, OutT, WorkflowPrimitive
from .context import WorkflowContext
from .instrumented import InstrumentedPrimitive
from .names import (
    ATTR_ERROR_TYPE,
    ATTR_FALLBACK_PATH,
    ATTR_RETRY_ATTEMPTS,
    ATTR_TIMEOUT_SECONDS,
    EVENT_FALLBACK,
    EVENT_RETRY,
)
from .telemetry import error_type

__all__ = ["FallbackPrimitive", "RetryPrimitive", "TimeoutPrimitive"]


def _check_primitive(value: object, arg: str) -> None:
    if not isinstance(value, WorkflowPrimitive):
        raise TypeError(f"{arg} must be a WorkflowPrimitive, got {type(value).__name__}")


def _check_number(value: object, arg: str, kind: Literal["count", "seconds"]) -> None:
    """A count is an int >= 0, seconds a number > 0 (not NaN); a bool is neither."""
    count = kind == "count"
    if isinstance(value, bool) or not isinstance(value, int if count else int | float):
        raise TypeError(f"{arg} must be {'an int' if count else 'a number'}")
    if not (value >= 0 if count else value > 0):
        raise ValueError(f"{arg} must be {'>= 0' if count else '> 0'}")


class RetryPrimitive(InstrumentedPrimitive[InT, OutT]):
    """Runs a primitive again when it raises, with exponential backoff and jitter.

    Args:
        primitive: The primitive to run.
        max_retries: Retries after the first attempt (so ``max_retries + 1`` attempts at most).
        backoff_base: Delay before the first retry, in seconds; doubles each retry.
        backoff_max: Upper bound of one delay, in seconds.
        jitter: Draw each delay uniformly from ``[0, delay]`` ("full jitter") when True.
        retry_on: Exception classes that are retried; anything else is raised at once.
        sleep: The sleep coroutine (injectable so tests need not wait).

    Raises:
        The last attempt's exception once the retries are used up.
    """

    primitive_type = "retry"

    def __init__(
        self,
        primitive: WorkflowPrimitive[InT, OutT],
        max_retries: int = 3,
        backoff_base: float = 0.1,
        *,
        backoff_max: float = 10.0,
        jitter: bool = True,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        _check_primitive(primitive, "primitive")
        self.primitive = primitive
        _check_number(max_retries, "max_retries", "count")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")
        if not retry_on or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in retry_on
        ):
            raise TypeError("retry_on must be a non-empty tuple of exception classes")
        super().__init__(
            name or f"retry.{self.primitive.name}",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.retry_on = retry_on
        self._sleep = sleep

    def delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (0-based), in seconds."""
        delay = min(self.backoff_max, self.backoff_base * (2**retry))
        return random.uniform(0, delay) if self.jitter else delay

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        span = trace.get_current_span()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.primitive.execute(input_data, context)
            except self.retry_on as exc:
                if attempt > self.max_retries:
                    span.set_attribute(ATTR_RETRY_ATTEMPTS, attempt)
                    raise
                if span.is_recording():
                    span.add_event(
                        EVENT_RETRY, {"attempt": attempt, ATTR_ERROR_TYPE: error_type(exc)}
                    )
                await self._sleep(self.delay(attempt - 1))
            else:
                span.set_attribute(ATTR_RETRY_ATTEMPTS, attempt)
                return result


class TimeoutPrimitive(InstrumentedPrimitive[InT, OutT]):
    """Cancels a primitive that runs longer than ``timeout_seconds``.

    Args:
        primitive: The primitive to run.
        timeout_seconds: The limit, in seconds (> 0).

    Raises:
        TimeoutError: The builtin, when the limit is reached (the inner work is cancelled).
    """

    primitive_type = "timeout"

    def __init__(
        self,
        primitive: WorkflowPrimitive[InT, OutT],
        timeout_seconds: float,
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        _check_primitive(primitive, "primitive")
        self.primitive = primitive
        _check_number(timeout_seconds, "timeout_seconds", "seconds")
        super().__init__(
            name or f"timeout.{self.primitive.name}",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.timeout_seconds = float(timeout_seconds)

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        trace.get_current_span().set_attribute(ATTR_TIMEOUT_SECONDS, self.timeout_seconds)
        async with asyncio.timeout(self.timeout_seconds):
            return await self.primitive.execute(input_data, context)


class FallbackPrimitive(InstrumentedPrimitive[InT, OutT]):
    """Runs ``fallback`` on the same input when ``primary`` raises.

    The span records which path produced the output in ``workflow.fallback.path``
    (``"primary"`` or ``"fallback"``). If the fallback raises too, its exception propagates
    (chained to the primary's).

    Args:
        primary: The primitive tried first.
        fallback: The primitive run when the primary raises one of ``catch``.
        catch: Exception classes that trigger the fallback.
    """

    primitive_type = "fallback"

    def __init__(
        self,
        primary: WorkflowPrimitive[InT, OutT],
        fallback: WorkflowPrimitive[InT, OutT],
        *,
        catch: tuple[type[BaseException], ...] = (Exception,),
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        _check_primitive(primary, "primary")
        _check_primitive(fallback, "fallback")
        self.primary, self.fallback = primary, fallback
        super().__init__(
            name or f"fallback.{self.primary.name}",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.catch = catch

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        span = trace.get_current_span()
        try:
            result = await self.primary.execute(input_data, context)
        except self.catch as exc:
            span.set_attribute(ATTR_FALLBACK_PATH, "fallback")
            if span.is_recording():
                span.add_event(EVENT_FALLBACK, {ATTR_ERROR_TYPE: error_type(exc)})
            try:
                return await self.fallback.execute(input_data, context)
            except Exception as fallback_exc:
                raise fallback_exc from exc
        span.set_attribute(ATTR_FALLBACK_PATH, "primary")
        return result
