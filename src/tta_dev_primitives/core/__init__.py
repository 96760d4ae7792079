"""Workflow primitives: context, composition, instrumentation and recovery."""

from __future__ import annotations

from .base import WorkflowPrimitive
from .composition import LambdaPrimitive, ParallelPrimitive, SequentialPrimitive
from .context import WorkflowContext
from .instrumented import InstrumentedPrimitive
from .recovery import FallbackPrimitive, RetryPrimitive, TimeoutPrimitive

__all__ = [
    "FallbackPrimitive",
    "InstrumentedPrimitive",
    "LambdaPrimitive",
    "ParallelPrimitive",
    "RetryPrimitive",
    "SequentialPrimitive",
    "TimeoutPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
]
