"""Composition: flattening, type errors, state flow, parallel concurrency and failure."""

from __future__ import annotations

import asyncio

import pytest

from tta_dev_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


def add(n: int) -> LambdaPrimitive[int, int]:
    return LambdaPrimitive(lambda x, ctx: x + n, name=f"add{n}")


async def test_sequence_runs_in_order() -> None:
    """a >> b feeds a's output into b."""
    pipeline = add(1) >> LambdaPrimitive(lambda x, ctx: x * 10)
    assert await pipeline.execute(2) == 30


def test_sequences_flatten() -> None:
    """a >> b >> c and a >> (b >> c) are one sequence of three steps."""
    a, b, c = add(1), add(2), add(3)
    left = a >> b >> c
    right = a >> (b >> c)
    assert isinstance(left, SequentialPrimitive)
    assert left.steps == (a, b, c)
    assert right.steps == (a, b, c)


def test_named_sequence_is_kept_as_a_unit() -> None:
    """A sequence the user named is not flattened into an outer one."""
    a, b, c = add(1), add(2), add(3)
    inner = SequentialPrimitive([a, b], name="inner")
    outer = inner >> c
    assert outer.steps == (inner, c)


def test_parallels_flatten() -> None:
    """a | b | c is one parallel of three branches."""
    a, b, c = add(1), add(2), add(3)
    par = a | b | c
    assert isinstance(par, ParallelPrimitive)
    assert par.branches == (a, b, c)


@pytest.mark.parametrize("other", [lambda x: x, 3, "step", None])
def test_composing_with_non_primitive_is_type_error(other: object) -> None:
    """>> and | refuse anything that is not a primitive, in either position."""
    p = add(1)
    with pytest.raises(TypeError):
        p >> other  # type: ignore[operator]
    with pytest.raises(TypeError):
        other >> p  # type: ignore[operator]
    with pytest.raises(TypeError):
        p | other  # type: ignore[operator]


def test_constructors_refuse_non_primitives() -> None:
    """SequentialPrimitive and ParallelPrimitive name the offending item."""
    with pytest.raises(TypeError, match=r"steps\[1\]"):
        SequentialPrimitive([add(1), "nope"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        ParallelPrimitive([])
    with pytest.raises(TypeError, match="callable"):
        LambdaPrimitive(42)  # type: ignore[call-overload]


async def test_none_context_gives_fresh_context() -> None:
    """execute(x) without a context hands each run a new WorkflowContext."""
    seen: list[WorkflowContext] = []
    p = LambdaPrimitive(lambda x, ctx: seen.append(ctx))
    await p.execute(1)
    await p.execute(2)
    assert isinstance(seen[0], WorkflowContext)
    assert seen[0] is not seen[1]


async def test_state_flows_between_steps() -> None:
    """State written by one step is seen by the next, and by the caller afterwards."""

    def write(x: int, ctx: WorkflowContext) -> int:
        ctx.state["seen"] = x
        ctx.state.setdefault("log", []).append("write")
        return x + 1

    def read(x: int, ctx: WorkflowContext) -> tuple[int, int]:
        ctx.state["log"].append("read")
        return x, ctx.state["seen"]

    ctx = WorkflowContext(workflow_id="wf")
    pipeline = LambdaPrimitive(write) >> LambdaPrimitive(read)
    assert await pipeline.execute(5, ctx) == (6, 5)
    assert ctx.state["log"] == ["write", "read"]


async def test_async_lambda_is_awaited() -> None:
    """LambdaPrimitive awaits an async function's result."""

    async def double(x: int, ctx: WorkflowContext) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert await LambdaPrimitive(double).execute(4) == 8


async def test_parallel_runs_branches_concurrently_in_branch_order() -> None:
    """Every branch is running at the same time (a barrier all must reach), outputs in order."""
    n = 3
    arrived = 0
    all_here = asyncio.Event()

    def branch(i: int) -> LambdaPrimitive[str, str]:
        async def run(x: str, ctx: WorkflowContext) -> str:
            nonlocal arrived
            arrived += 1
            if arrived == n:
                all_here.set()
            # Would deadlock (and time out) if branches ran one after another.
            await asyncio.wait_for(all_here.wait(), timeout=5)
            await asyncio.sleep(0.01 * (n - i))  # finish in reverse order
            return f"{x}{i}"

        return LambdaPrimitive(run, name=f"b{i}")

    par = branch(0) | branch(1) | branch(2)
    assert await par.execute("x") == ["x0", "x1", "x2"]


async def test_parallel_failure_raises_that_exception_and_cancels_others() -> None:
    """One failing branch fails the parallel with its own exception; the others are cancelled."""
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def slow(x: int, ctx: WorkflowContext) -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    async def boom(x: int, ctx: WorkflowContext) -> int:
        await started.wait()
        raise KeyError("boom")

    par = LambdaPrimitive(slow) | LambdaPrimitive(boom)
    with pytest.raises(KeyError, match="boom"):
        await par.execute(1)
    assert cancelled.is_set()


async def test_parallel_shares_context() -> None:
    """Branches see the same context object."""
    ctx = WorkflowContext()
    par = LambdaPrimitive(lambda x, c: id(c)) | LambdaPrimitive(lambda x, c: id(c))
    assert await par.execute(0, ctx) == [id(ctx), id(ctx)]


def test_primitive_is_abstract() -> None:
    """WorkflowPrimitive cannot be instantiated without execute."""
    with pytest.raises(TypeError):
        WorkflowPrimitive()  # type: ignore[abstract]


def test_unnamed_composites_are_named_after_their_parts() -> None:
    """a >> b >> c is "a>>b>>c", a | b is "a|b", a nested one in parentheses; names win."""
    a, b, c = (LambdaPrimitive(lambda x, ctx: x, name=n) for n in "abc")
    assert (a >> b >> c).name == "a>>b>>c"
    assert (a | b).name == "a|b"
    assert (a >> (b | c)).name == "a>>(b|c)"
    assert SequentialPrimitive([a, b], name="mine").name == "mine"
    assert (SequentialPrimitive([a, b], name="mine") >> c).name == "mine>>c"
    long = SequentialPrimitive([LambdaPrimitive(lambda x, ctx: x, name="s" * 60)] * 5)
    assert len(long.name) == 200
    assert long.name.endswith("…")
