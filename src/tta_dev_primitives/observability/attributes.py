"""Span and metric attribute names used by the library, in one place.

Workflow attributes are our own (``workflow.*``); memory attributes follow the OpenTelemetry
GenAI memory conventions (``gen_ai.*``) and the database client conventions (``db.*``,
``server.*``, ``error.type``), with our extensions under ``memory.*``.
"""

from __future__ import annotations

from ..core.instrumented import (
    ATTR_BRANCH_COUNT,
    ATTR_ERROR_TYPE,
    ATTR_OPENINFERENCE_KIND,
    ATTR_PRIMITIVE_NAME,
    ATTR_PRIMITIVE_TYPE,
    ATTR_STEP_COUNT,
    ATTR_STEP_INDEX,
    ATTR_WORKFLOW_ID,
    ATTR_WORKFLOW_OUTCOME,
    ATTR_WORKFLOW_SESSION_ID,
    METRIC_PRIMITIVE_DURATION,
)

__all__ = [
    "ATTR_BRANCH_COUNT",
    "ATTR_DB_OPERATION_NAME",
    "ATTR_DB_SYSTEM_NAME",
    "ATTR_ERROR_TYPE",
    "ATTR_GEN_AI_MEMORY_QUERY_TEXT",
    "ATTR_GEN_AI_MEMORY_RECORD_COUNT",
    "ATTR_GEN_AI_MEMORY_RECORD_ID",
    "ATTR_GEN_AI_MEMORY_STORE_ID",
    "ATTR_GEN_AI_OPERATION_NAME",
    "ATTR_MEMORY_BACKEND",
    "ATTR_MEMORY_CONTENT",
    "ATTR_MEMORY_DEGRADED",
    "ATTR_MEMORY_EVICTED",
    "ATTR_MEMORY_HIT",
    "ATTR_MEMORY_SEARCH_LIMIT",
    "ATTR_MEMORY_SEARCH_MODE",
    "ATTR_OPENINFERENCE_INPUT_VALUE",
    "ATTR_OPENINFERENCE_KIND",
    "ATTR_OPENINFERENCE_SPAN_KIND",
    "ATTR_PRIMITIVE_NAME",
    "ATTR_PRIMITIVE_TYPE",
    "ATTR_SERVER_ADDRESS",
    "ATTR_SERVER_PORT",
    "ATTR_STEP_COUNT",
    "ATTR_STEP_INDEX",
    "ATTR_WORKFLOW_ID",
    "ATTR_WORKFLOW_OUTCOME",
    "ATTR_WORKFLOW_SESSION_ID",
    "GEN_AI_OPERATION_NAMES",
    "METRIC_MEMORY_DURATION",
    "METRIC_MEMORY_EVICTIONS",
    "METRIC_MEMORY_FALLBACKS",
    "METRIC_MEMORY_HITS",
    "METRIC_MEMORY_MISSES",
    "METRIC_PRIMITIVE_DURATION",
]

# OpenTelemetry GenAI memory conventions.
ATTR_GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
ATTR_GEN_AI_MEMORY_STORE_ID = "gen_ai.memory.store.id"
ATTR_GEN_AI_MEMORY_RECORD_ID = "gen_ai.memory.record.id"
ATTR_GEN_AI_MEMORY_RECORD_COUNT = "gen_ai.memory.record.count"
ATTR_GEN_AI_MEMORY_QUERY_TEXT = "gen_ai.memory.query.text"

# Database client conventions (set on spans of remote backends such as Redis).
ATTR_DB_SYSTEM_NAME = "db.system.name"
ATTR_DB_OPERATION_NAME = "db.operation.name"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_SERVER_PORT = "server.port"

# OpenInference span kind, so Phoenix shows RETRIEVER / CHAIN badges; input value and
# retrieval.documents.<i>.document.{id,score,content} (set only with capture_content=True).
ATTR_OPENINFERENCE_SPAN_KIND = ATTR_OPENINFERENCE_KIND
ATTR_OPENINFERENCE_INPUT_VALUE = "input.value"

# Our extensions.
ATTR_MEMORY_BACKEND = "memory.backend"
ATTR_MEMORY_HIT = "memory.hit"
ATTR_MEMORY_DEGRADED = "memory.degraded"
ATTR_MEMORY_EVICTED = "memory.evicted"
ATTR_MEMORY_SEARCH_MODE = "memory.search.mode"
ATTR_MEMORY_SEARCH_LIMIT = "memory.search.limit"
ATTR_MEMORY_CONTENT = "memory.content"

# gen_ai.operation.name per memory operation. "get_memory" is our extension: the convention
# defines no single-record read.
GEN_AI_OPERATION_NAMES = {
    "add": "upsert_memory",
    "add_many": "upsert_memory",
    "get": "get_memory",
    "get_many": "get_memory",
    "search": "search_memory",
    "delete": "delete_memory",
    "clear": "delete_memory_store",
    "keys": "list_memory",
    "size": "count_memory",
}

METRIC_MEMORY_DURATION = "memory.operation.duration"
METRIC_MEMORY_HITS = "memory.hits"
METRIC_MEMORY_MISSES = "memory.misses"
METRIC_MEMORY_EVICTIONS = "memory.evictions"
METRIC_MEMORY_FALLBACKS = "memory.fallback.activations"
