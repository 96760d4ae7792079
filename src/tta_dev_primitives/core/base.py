"""The abstract workflow primitive and the ``>>`` / ``|`` composition operators."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .context import WorkflowContext

if TYPE_CHECKING:
    from .composition import ParallelPrimitive, SequentialPrimitive

__all__ = ["InT", "OutT", "WorkflowPrimitive"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")
NewT = TypeVar("NewT")


class WorkflowPrimitive(ABC, Generic[InT, OutT]):
    """An async step that turns an input into an output.

    ``a >> b`` runs ``a`` then feeds its output to ``b`` (a :class:`SequentialPrimitive`);
    ``a | b`` runs both on the same input at once and returns their outputs as a list in
    branch order (a :class:`ParallelPrimitive`). Both flatten: ``a >> b >> c`` is one sequence
    of three steps. Composing with anything that is not a primitive is a ``TypeError``.
    """

    name: str

    @abstractmethod
    async def execute(self, input_data: InT, context: WorkflowContext | None = None) -> OutT:
        """Run the step.

        Args:
            input_data: The step's input.
            context: The workflow context; a fresh one is created when None.

        Returns:
            The step's output.
        """

    def __rshift__(self, other: WorkflowPrimitive[OutT, NewT]) -> SequentialPrimitive[InT, NewT]:
        if not isinstance(other, WorkflowPrimitive):
            return NotImplemented
        from .composition import SequentialPrimitive

        return SequentialPrimitive([self, other])

    def __or__(self, other: WorkflowPrimitive[InT, Any]) -> ParallelPrimitive[InT, list[Any]]:
        if not isinstance(other, WorkflowPrimitive):
            return NotImplemented
        from .composition import ParallelPrimitive

        return ParallelPrimitive([self, other])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
