"""Span, event and metric names of the core primitives (``workflow.*``), in one place.

:mod:`tta_dev_primitives.observability.attributes` re-exports them beside the memory names, so
users read every name the library records from one module.
"""

from __future__ import annotations

__all__ = [
    "ATTR_BRANCH_COUNT",
    "ATTR_ERROR_TYPE",
    "ATTR_FALLBACK_PATH",
    "ATTR_OPENINFERENCE_KIND",
    "ATTR_PRIMITIVE_NAME",
    "ATTR_PRIMITIVE_TYPE",
    "ATTR_RETRY_ATTEMPTS",
    "ATTR_STEP_COUNT",
    "ATTR_STEP_INDEX",
    "ATTR_TIMEOUT_SECONDS",
    "ATTR_WORKFLOW_ID",
    "ATTR_WORKFLOW_OUTCOME",
    "ATTR_WORKFLOW_SESSION_ID",
    "EVENT_FALLBACK",
    "EVENT_RETRY",
    "METRIC_PRIMITIVE_DURATION",
]

ATTR_PRIMITIVE_NAME = "workflow.primitive.name"
ATTR_PRIMITIVE_TYPE = "workflow.primitive.type"
ATTR_WORKFLOW_ID = "workflow.id"
ATTR_WORKFLOW_SESSION_ID = "workflow.session.id"
ATTR_STEP_INDEX = "workflow.step.index"
ATTR_STEP_COUNT = "workflow.step.count"
ATTR_BRANCH_COUNT = "workflow.branch.count"
ATTR_WORKFLOW_OUTCOME = "workflow.outcome"
ATTR_RETRY_ATTEMPTS = "workflow.retry.attempts"
ATTR_TIMEOUT_SECONDS = "workflow.timeout.seconds"
ATTR_FALLBACK_PATH = "workflow.fallback.path"
# The general OpenTelemetry error attribute, and OpenInference's span kind (Phoenix badges).
ATTR_ERROR_TYPE = "error.type"
ATTR_OPENINFERENCE_KIND = "openinference.span.kind"

EVENT_RETRY = "retry"
EVENT_FALLBACK = "fallback"

METRIC_PRIMITIVE_DURATION = "workflow.primitive.duration"
