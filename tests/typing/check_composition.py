"""Checked by mypy in ``make test``: composition keeps static input and output types."""

from __future__ import annotations

from typing import Any, assert_type

from tta_dev_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
)


def to_len(text: str, ctx: WorkflowContext) -> int:
    return len(text)


async def to_float(n: int, ctx: WorkflowContext) -> float:
    return n / 2


def to_str(x: float, ctx: WorkflowContext) -> str:
    return str(x)


a = LambdaPrimitive(to_len)
b = LambdaPrimitive(to_float)
c = LambdaPrimitive(to_str)

assert_type(a, LambdaPrimitive[str, int])
assert_type(b, LambdaPrimitive[int, float])
assert_type(a >> b, SequentialPrimitive[str, float])
assert_type(a >> b >> c, SequentialPrimitive[str, str])
assert_type(a | a, ParallelPrimitive[str, list[Any]])
