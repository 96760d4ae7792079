"""Retry, timeout and fallback primitives."""

from __future__ import annotations

import asyncio

import pytest

from tta_dev_primitives import (
    FallbackPrimitive,
    LambdaPrimitive,
    RetryPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
)
from tta_dev_primitives.testing import CapturedTelemetry


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns its input."""

    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.calls = 0
        self.exc = exc

    def __call__(self, x: int, ctx: WorkflowContext) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"fail {self.calls}")
        return x


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retry_succeeds_after_failures_with_backoff() -> None:
    """Two failures then success: three attempts, exponential delays without jitter."""
    flaky, sleeps = Flaky(2), Sleeps()
    retry = RetryPrimitive(
        LambdaPrimitive(flaky), max_retries=3, backoff_base=0.5, jitter=False, sleep=sleeps
    )
    assert await retry.execute(7) == 7
    assert flaky.calls == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_retry_gives_up_with_last_exception() -> None:
    """After max_retries the last attempt's exception propagates."""
    flaky, sleeps = Flaky(10), Sleeps()
    retry = RetryPrimitive(LambdaPrimitive(flaky), max_retries=2, sleep=sleeps)
    with pytest.raises(ConnectionError, match="fail 3"):
        await retry.execute(1)
    assert flaky.calls == 3
    assert all(0 <= d <= 0.1 * 2**i for i, d in enumerate(sleeps.delays))


async def test_retry_only_retries_listed_exceptions() -> None:
    """An exception outside retry_on is raised at once."""
    flaky, sleeps = Flaky(1, exc=ValueError), Sleeps()
    retry = RetryPrimitive(LambdaPrimitive(flaky), retry_on=(ConnectionError,), sleep=sleeps)
    with pytest.raises(ValueError, match="fail 1"):
        await retry.execute(1)
    assert flaky.calls == 1


def test_retry_delay_is_capped() -> None:
    """Backoff never exceeds backoff_max."""
    retry = RetryPrimitive(LambdaPrimitive(Flaky(0)), backoff_base=1, backoff_max=3, jitter=False)
    assert [retry.delay(i) for i in range(4)] == [1, 2, 3, 3]


def test_retry_validates_arguments() -> None:
    """Bad arguments name themselves."""
    p = LambdaPrimitive(Flaky(0))
    with pytest.raises(ValueError, match="max_retries"):
        RetryPrimitive(p, max_retries=-1)
    with pytest.raises(TypeError, match="primitive"):
        RetryPrimitive("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_on"):
        RetryPrimitive(p, retry_on=("x",))  # type: ignore[arg-type]


async def test_retry_records_attempts_on_span(telemetry: CapturedTelemetry) -> None:
    """The retry span carries the attempt count and one event per retry."""
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(2)),
        sleep=Sleeps(),
        tracer_provider=telemetry.tracer_provider,
    )
    await retry.execute(1)
    span = telemetry.span(retry.name)
    assert span.attributes is not None
    assert span.attributes["workflow.retry.attempts"] == 3
    assert [e.name for e in span.events] == ["retry", "retry"]


async def test_timeout_raises_builtin_and_cancels_inner() -> None:
    """Past the limit the inner work is cancelled and the builtin TimeoutError raised."""
    cancelled = asyncio.Event()

    async def slow(x: int, ctx: WorkflowContext) -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    with pytest.raises(TimeoutError):
        await TimeoutPrimitive(LambdaPrimitive(slow), 0.05).execute(1)
    assert cancelled.is_set()


async def test_timeout_passes_result_through() -> None:
    """Fast work returns normally."""
    assert await TimeoutPrimitive(LambdaPrimitive(lambda x, c: x + 1), 5).execute(1) == 2


def test_timeout_validates_seconds() -> None:
    """timeout_seconds must be a positive number."""
    p = LambdaPrimitive(lambda x, c: x)
    with pytest.raises(ValueError, match="timeout_seconds"):
        TimeoutPrimitive(p, 0)
    with pytest.raises(TypeError, match="timeout_seconds"):
        TimeoutPrimitive(p, "1")  # type: ignore[arg-type]


async def test_fallback_runs_on_failure_and_records_path(telemetry: CapturedTelemetry) -> None:
    """A failing primary hands over to the fallback; the span says which path ran."""
    tp = telemetry.tracer_provider
    fb = FallbackPrimitive(
        LambdaPrimitive(Flaky(1)),
        LambdaPrimitive(lambda x, c: -x, name="backup"),
        tracer_provider=tp,
    )
    assert await fb.execute(3) == -3
    assert await fb.execute(3) == 3  # Flaky now succeeds
    paths = [
        s.attributes["workflow.fallback.path"]
        for s in telemetry.spans()
        if s.name == fb.name and s.attributes
    ]
    assert paths == ["fallback", "primary"]


async def test_fallback_failure_propagates_chained() -> None:
    """If the fallback fails too, its exception propagates with the primary's as cause."""
    fb = FallbackPrimitive(LambdaPrimitive(Flaky(5)), LambdaPrimitive(Flaky(5, exc=KeyError)))
    with pytest.raises(KeyError) as info:
        await fb.execute(1)
    assert isinstance(info.value.__cause__, ConnectionError)
