"""The context object that flows through every step of a workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkflowContext"]


@dataclass
class WorkflowContext:
    """Per-run context shared by every step of a workflow.

    The same object is handed to each step (never copied), so ``state`` written by one step
    of a sequence is visible to the next, and parallel branches share it too.

    Attributes:
        workflow_id: Identifier of the workflow run; recorded on spans as ``workflow.id``.
        session_id: Identifier of the user session; recorded as ``workflow.session.id``.
        metadata: Free-form, read-mostly information about the run.
        state: Mutable scratch space that steps use to hand data to each other.
        tags: Small string labels, e.g. ``{"env": "prod"}``.
    """

    workflow_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
