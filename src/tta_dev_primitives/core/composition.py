"""Sequential, parallel and function-wrapping primitives."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast, overload

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from .base import InT, OutT, WorkflowPrimitive
from .context import WorkflowContext
from .instrumented import InstrumentedPrimitive, end_step, run_as_step
from .names import ATTR_BRANCH_COUNT, ATTR_OPENINFERENCE_KIND, ATTR_STEP_COUNT

__all__ = ["LambdaPrimitive", "ParallelPrimitive", "SequentialPrimitive"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


def _check_steps(steps: Sequence[object], what: str) -> list[WorkflowPrimitive[Any, Any]]:
    items = list(steps)
    if not items:
        raise ValueError(f"{what} needs at least one primitive")
    for i, step in enumerate(items):
        if not isinstance(step, WorkflowPrimitive):
            raise TypeError(f"{what}[{i}] is {type(step).__name__}, not a WorkflowPrimitive")
    return cast(list[WorkflowPrimitive[Any, Any]], items)


_NAME_LIMIT = 200  # characters of a name derived from the parts


class _Composite(InstrumentedPrimitive[InT, OutT]):
    """What sequences and parallels share: flattening, a name derived from the parts, and the
    span attributes of a CHAIN."""

    _separator: ClassVar[str]
    _count_attribute: ClassVar[str]
    _flattenable: bool

    def __init__(
        self,
        parts: Sequence[WorkflowPrimitive[Any, Any]],
        what: str,
        *,
        name: str | None,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        flat: list[WorkflowPrimitive[Any, Any]] = []
        for part in _check_steps(parts, what):
            if type(part) is type(self) and cast(_Composite[Any, Any], part)._flattenable:
                flat.extend(cast(_Composite[Any, Any], part)._parts)
            else:
                flat.append(part)
        self._parts: tuple[WorkflowPrimitive[Any, Any], ...] = tuple(flat)
        super().__init__(
            name if name is not None else self._derived_name(),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        # A composite the user named (or gave its own providers) is a unit of its own and is
        # kept as one part; one named after its parts flattens.
        self._flattenable = name is None and tracer_provider is None and meter_provider is None

    def _derived_name(self) -> str:
        """The parts' names joined by the operator (``a>>b>>c``, ``a|b``), nested ones in
        parentheses, cut to ``_NAME_LIMIT`` characters."""
        names = []
        for part in self._parts:
            nested = isinstance(part, _Composite) and part._flattenable
            names.append(f"({part.name})" if nested else part.name)
        name = self._separator.join(names)
        return name if len(name) <= _NAME_LIMIT else name[: _NAME_LIMIT - 1] + "…"

    def _span_attributes(
        self, input_data: InT, context: WorkflowContext
    ) -> dict[str, AttributeValue]:
        attrs = super()._span_attributes(input_data, context)
        attrs[self._count_attribute] = len(self._parts)
        attrs[ATTR_OPENINFERENCE_KIND] = "CHAIN"
        return attrs


class SequentialPrimitive(_Composite[InT, OutT]):
    """Runs steps one after another, each step's output the next step's input.

    Nested sequences flatten: ``(a >> b) >> c`` and ``a >> (b >> c)`` both hold three steps.
    The same :class:`WorkflowContext` object is passed to every step.

    Args:
        steps: The primitives to run, in order.
        name: Span name; by default the steps' names joined by ``>>``
            (``search_step>>answer>>add_step``).
    """

    primitive_type = "sequence"
    _separator = ">>"
    _count_attribute = ATTR_STEP_COUNT

    def __init__(
        self,
        steps: Sequence[WorkflowPrimitive[Any, Any]],
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        super().__init__(
            steps,
            "steps",
            name=name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    @property
    def steps(self) -> tuple[WorkflowPrimitive[Any, Any], ...]:
        """The steps, in order (nested unnamed sequences flattened)."""
        return self._parts

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        value: Any = input_data
        for index, step in enumerate(self.steps):
            token = run_as_step(index)
            try:
                value = await step.execute(value, context)
            finally:
                end_step(token)
        return cast(OutT, value)


class ParallelPrimitive(_Composite[InT, OutT]):
    """Runs branches concurrently on the same input; returns their outputs in branch order.

    If a branch raises, the other branches are cancelled and the parallel raises that
    exception (the first to fail), not an ``ExceptionGroup``.

    Args:
        branches: The primitives to run at once.
        name: Span name; by default the branches' names joined by ``|``.
    """

    primitive_type = "parallel"
    _separator = "|"
    _count_attribute = ATTR_BRANCH_COUNT

    def __init__(
        self,
        branches: Sequence[WorkflowPrimitive[Any, Any]],
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        super().__init__(
            branches,
            "branches",
            name=name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    @property
    def branches(self) -> tuple[WorkflowPrimitive[Any, Any], ...]:
        """The branches, in order (nested unnamed parallels flattened)."""
        return self._parts

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        tasks = [
            asyncio.create_task(branch.execute(input_data, context)) for branch in self.branches
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            # We were cancelled ourselves: take the branches down with us.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if pending:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Raise the exception of the first failed branch in branch order among those done.
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise cast(BaseException, task.exception())
        return cast(OutT, [task.result() for task in tasks])


class LambdaPrimitive(InstrumentedPrimitive[InT, OutT], Generic[InT, OutT]):
    """Wraps a sync or async function ``fn(input, context)`` as a primitive.

    Args:
        fn: The function; its return value (awaited if it is awaitable) is the output.
        name: Span name; the function's ``__name__`` by default.
    """

    primitive_type = "lambda"

    @overload
    def __init__(
        self: LambdaPrimitive[I, O],
        fn: Callable[[I, WorkflowContext], Awaitable[O]],
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: LambdaPrimitive[I, O],
        fn: Callable[[I, WorkflowContext], O],
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None: ...

    def __init__(
        self,
        fn: Callable[[Any, WorkflowContext], Any],
        *,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        fn_name = getattr(fn, "__name__", None)
        if name is None and isinstance(fn_name, str) and fn_name and fn_name != "<lambda>":
            name = fn_name
        super().__init__(name, tracer_provider=tracer_provider, meter_provider=meter_provider)
        self.fn = fn

    async def _execute_impl(self, input_data: InT, context: WorkflowContext) -> OutT:
        result = self.fn(input_data, context)
        if inspect.isawaitable(result):
            result = await result
        return cast(OutT, result)
