"""The pipeline steps of :class:`~.primitive.MemoryPrimitive`: what each step does per run.

The primitive's ``get_step``, ``add_step``, ``search_step`` and ``compact_step`` (their
arguments and docs are there) wrap the step functions built here in a ``LambdaPrimitive``.
Every step works on the memory its ``namespace`` names (this one, a fixed view, or one per
run) and reaches it through the public API only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ..core.context import WorkflowContext

if TYPE_CHECKING:
    from ..core.base import WorkflowPrimitive
    from .primitive import MemoryPrimitive

__all__ = [
    "StepNamespace",
    "add_step",
    "check_state_key",
    "compact_step",
    "get_step",
    "search_step",
    "step_namespace",
]

StepNamespace: TypeAlias = (
    "str | Sequence[str] | Callable[[Any, WorkflowContext], str | Sequence[str]] | None"
)
"""A step's ``namespace=``: sub-namespace parts, or a callable of ``(input, context)``."""

StepFunction: TypeAlias = Callable[[Any, WorkflowContext], Awaitable[Any]]
Where: TypeAlias = Callable[[Any, WorkflowContext], "MemoryPrimitive"]
Read: TypeAlias = Callable[["MemoryPrimitive", Any, Any, WorkflowContext], Awaitable[Any]]


def resolve(arg: Any, input_data: Any, context: WorkflowContext) -> Any:
    """A step argument: a callable of ``(input, context)`` is called, a constant is itself."""
    return arg(input_data, context) if callable(arg) else arg


def check_state_key(state_key: str | None) -> str | None:
    if state_key is not None and (not isinstance(state_key, str) or not state_key):
        raise TypeError("state_key must be a non-empty str or None")
    return state_key


def step_namespace(memory: MemoryPrimitive, namespace: StepNamespace) -> Where:
    """The memory a step works on, per run: ``memory``, a fixed view, or the run's."""
    if namespace is None:
        return lambda _input, _context: memory
    if callable(namespace):
        pick = namespace
        return lambda input_data, context: _view(memory, pick(input_data, context))
    view = _view(memory, namespace)
    return lambda _input, _context: view


def _view(memory: MemoryPrimitive, parts: object) -> MemoryPrimitive:
    if isinstance(parts, str):
        return memory.scoped(parts)
    if isinstance(parts, Sequence) and parts:
        return memory.scoped(*parts)
    if isinstance(parts, Sequence):
        raise ValueError("namespace of a step must have at least one part")
    raise TypeError(
        "namespace of a step must be a str, a sequence of str, or a callable of "
        f"(input, context) returning one; got {type(parts).__name__}"
    )


def _reading_step(
    memory: MemoryPrimitive,
    namespace: StepNamespace,
    state_key: str | None,
    arg: Any,
    read: Read,
) -> StepFunction:
    """A step that reads ``read(target, arg, input, context)`` (``arg`` resolved, the input if
    None) and outputs the result, or (with ``state_key``) keeps it there and outputs its input."""
    where = step_namespace(memory, namespace)
    keep = check_state_key(state_key)

    async def step(input_data: Any, context: WorkflowContext) -> Any:
        target = where(input_data, context)
        a = input_data if arg is None else resolve(arg, input_data, context)
        result = await read(target, a, input_data, context)
        if keep is None:
            return result
        context.state[keep] = result
        return input_data

    return step


def get_step(
    memory: MemoryPrimitive,
    key: Any,
    default: Any,
    namespace: StepNamespace,
    state_key: str | None,
) -> StepFunction:

    async def get(target: MemoryPrimitive, k: Any, _input: Any, context: WorkflowContext) -> Any:
        return await target.get(k, default, context=context)

    return _reading_step(memory, namespace, state_key, key, get)


def add_step(
    memory: MemoryPrimitive,
    key: Any,
    value: Any,
    ttl: float | None,
    metadata: Any,
    namespace: StepNamespace,
    index_text: Any = None,
) -> StepFunction:
    where = step_namespace(memory, namespace)

    async def add_step(input_data: Any, context: WorkflowContext) -> Any:
        target = where(input_data, context)
        v = input_data if value is None else resolve(value, input_data, context)
        await target.add(
            resolve(key, input_data, context),
            v,
            ttl=ttl,
            metadata=resolve(metadata, input_data, context),
            index_text=resolve(index_text, input_data, context),
            context=context,
        )
        return input_data

    return add_step


def search_step(
    memory: MemoryPrimitive,
    query: Any,
    filter: Any,
    namespace: StepNamespace,
    state_key: str | None,
    options: Mapping[str, Any],
) -> StepFunction:
    """``options``: the search's other arguments (``limit``, ``mode``, ...), constants."""

    async def search(
        target: MemoryPrimitive, q: Any, input_data: Any, context: WorkflowContext
    ) -> Any:
        return await target.search(
            q, filter=resolve(filter, input_data, context), context=context, **options
        )

    return _reading_step(memory, namespace, state_key, query, search)


def compact_step(
    memory: MemoryPrimitive,
    summarizer: WorkflowPrimitive[Any, Any] | None,
    filter: Any,
    summary_key: Any,
    namespace: StepNamespace,
    state_key: str,
    options: Mapping[str, Any],
) -> StepFunction:
    """``options``: the compaction's other arguments (``keep_last``, ...), constants."""
    where = step_namespace(memory, namespace)
    if not isinstance(state_key, str) or not state_key:
        raise TypeError("state_key must be a non-empty str")
    keep = state_key

    async def compact_step(input_data: Any, context: WorkflowContext) -> Any:
        report = await where(input_data, context).compact(
            summarizer,
            filter=resolve(filter, input_data, context),
            summary_key=resolve(summary_key, input_data, context),
            context=context,
            **options,
        )
        context.state[keep] = report
        return input_data

    return compact_step
