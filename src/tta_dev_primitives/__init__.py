"""tta-dev-primitives: traced, composable workflow primitives with a memory you can trust.

Quick start::

    from tta_dev_primitives import LambdaPrimitive

    shout = LambdaPrimitive(lambda text, ctx: text.upper())
    pipeline = shout >> LambdaPrimitive(lambda text, ctx: text + "!")
    print(await pipeline.execute("hello"))  # HELLO!
"""

from __future__ import annotations

__version__ = "0.1.0"

from .core import (
    FallbackPrimitive,
    InstrumentedPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    RetryPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

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
    "__version__",
]
