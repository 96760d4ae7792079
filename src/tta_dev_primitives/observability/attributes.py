"""Every span, event and metric name the library records, in one place.

Workflow names are our own (``workflow.*``, defined in :mod:`tta_dev_primitives.core.names` and
re-exported here). Memory spans follow the OpenTelemetry GenAI memory conventions (span type
``gen_ai.memory.client``, status Development): the span name is the operation name
(``search_memory``, ``upsert_memory``, ...), with ``gen_ai.*`` attributes, plus the database
client conventions (``db.*``, ``server.*``, ``error.type``) on remote backends and our own
extensions under ``memory.*``. Phoenix reads the OpenInference attributes
(``openinference.span.kind``, ``input.value``, ``retrieval.documents.*``).
"""

from __future__ import annotations

from ..core.names import (
    ATTR_BRANCH_COUNT,
    ATTR_ERROR_TYPE,
    ATTR_FALLBACK_PATH,
    ATTR_OPENINFERENCE_KIND,
    ATTR_PRIMITIVE_NAME,
    ATTR_PRIMITIVE_TYPE,
    ATTR_RETRY_ATTEMPTS,
    ATTR_STEP_COUNT,
    ATTR_STEP_INDEX,
    ATTR_TIMEOUT_SECONDS,
    ATTR_WORKFLOW_ID,
    ATTR_WORKFLOW_OUTCOME,
    ATTR_WORKFLOW_SESSION_ID,
    EVENT_FALLBACK,
    EVENT_RETRY,
    METRIC_PRIMITIVE_DURATION,
)

__all__ = [
    "ATTR_BRANCH_COUNT",
    "ATTR_DB_OPERATION_NAME",
    "ATTR_DB_SYSTEM_NAME",
    "ATTR_ERROR_TYPE",
    "ATTR_FALLBACK_PATH",
    "ATTR_GEN_AI_MEMORY_QUERY_TEXT",
    "ATTR_GEN_AI_MEMORY_RECORDS",
    "ATTR_GEN_AI_MEMORY_RECORD_COUNT",
    "ATTR_GEN_AI_MEMORY_RECORD_ID",
    "ATTR_GEN_AI_MEMORY_STORE_ID",
    "ATTR_GEN_AI_OPERATION_NAME",
    "ATTR_GEN_AI_PROVIDER_NAME",
    "ATTR_MEMORY_BACKEND",
    "ATTR_MEMORY_COMPACTION_CONSIDERED",
    "ATTR_MEMORY_COMPACTION_KEPT",
    "ATTR_MEMORY_COMPACTION_MERGED",
    "ATTR_MEMORY_COMPACTION_REPLACED",
    "ATTR_MEMORY_DEGRADED",
    "ATTR_MEMORY_EVICTED",
    "ATTR_MEMORY_EXPORT_VECTORS",
    "ATTR_MEMORY_HIT",
    "ATTR_MEMORY_IMPORT_REEMBEDDED",
    "ATTR_MEMORY_IMPORT_VECTORS_DROPPED",
    "ATTR_MEMORY_IMPORT_SKIPPED_EXISTING",
    "ATTR_MEMORY_IMPORT_SKIPPED_EXPIRED",
    "ATTR_MEMORY_IMPORT_VECTORS_REUSED",
    "ATTR_MEMORY_SEARCH_LIMIT",
    "ATTR_MEMORY_SEARCH_MODE",
    "ATTR_OPENINFERENCE_INPUT_VALUE",
    "ATTR_OPENINFERENCE_KIND",
    "ATTR_OPENINFERENCE_SPAN_KIND",
    "ATTR_PRIMITIVE_NAME",
    "ATTR_PRIMITIVE_TYPE",
    "ATTR_RETRY_ATTEMPTS",
    "ATTR_SERVER_ADDRESS",
    "ATTR_SERVER_PORT",
    "ATTR_STEP_COUNT",
    "ATTR_STEP_INDEX",
    "ATTR_TIMEOUT_SECONDS",
    "ATTR_WORKFLOW_ID",
    "ATTR_WORKFLOW_OUTCOME",
    "ATTR_WORKFLOW_SESSION_ID",
    "CAPTURE_CONTENT_ENV",
    "EVENT_FALLBACK",
    "EVENT_RETRY",
    "ATTR_MEMORY_RESOLVER_SUPERSEDED_COUNT",
    "ATTR_MEMORY_SUPERSEDED_COUNT",
    "GEN_AI_OPERATION_NAMES",
    "METRIC_MEMORY_DURATION",
    "METRIC_MEMORY_EVICTIONS",
    "METRIC_MEMORY_FALLBACKS",
    "METRIC_MEMORY_HITS",
    "METRIC_MEMORY_MISSES",
    "METRIC_PRIMITIVE_DURATION",
    "OPENINFERENCE_DOCUMENT_PREFIX",
]

# OpenTelemetry GenAI memory conventions.
ATTR_GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
ATTR_GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
ATTR_GEN_AI_MEMORY_STORE_ID = "gen_ai.memory.store.id"
ATTR_GEN_AI_MEMORY_RECORD_ID = "gen_ai.memory.record.id"
ATTR_GEN_AI_MEMORY_RECORD_COUNT = "gen_ai.memory.record.count"
# Our extension: records an add superseded (add(..., supersedes=[...])).
ATTR_MEMORY_SUPERSEDED_COUNT = "memory.superseded.count"
# ... and how many of them the resolver chose (MemoryPrimitive(resolver=...)).
ATTR_MEMORY_RESOLVER_SUPERSEDED_COUNT = "memory.resolver.superseded.count"
# Opt-in content: the query text, and the records read or found (a JSON list of
# {"id", "content", "score", "metadata"} objects).
ATTR_GEN_AI_MEMORY_QUERY_TEXT = "gen_ai.memory.query.text"
ATTR_GEN_AI_MEMORY_RECORDS = "gen_ai.memory.records"
# The standard GenAI switch for content capture ("true" turns it on, like capture_content=True).
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Database client conventions (set on spans of remote backends such as Redis).
ATTR_DB_SYSTEM_NAME = "db.system.name"
ATTR_DB_OPERATION_NAME = "db.operation.name"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_SERVER_PORT = "server.port"

# OpenInference span kind, so Phoenix shows RETRIEVER / CHAIN badges; input value and
# retrieval.documents.<i>.document.{id,score,content} (set only when content is captured).
ATTR_OPENINFERENCE_SPAN_KIND = ATTR_OPENINFERENCE_KIND
ATTR_OPENINFERENCE_INPUT_VALUE = "input.value"
OPENINFERENCE_DOCUMENT_PREFIX = "retrieval.documents."

# Our extensions.
ATTR_MEMORY_BACKEND = "memory.backend"
ATTR_MEMORY_HIT = "memory.hit"
ATTR_MEMORY_DEGRADED = "memory.degraded"
ATTR_MEMORY_EVICTED = "memory.evicted"
ATTR_MEMORY_SEARCH_MODE = "memory.search.mode"
ATTR_MEMORY_SEARCH_LIMIT = "memory.search.limit"
# Compaction counts: records that matched, replaced by the summary, merged into a newer
# duplicate, left alone because another writer changed them meanwhile.
ATTR_MEMORY_COMPACTION_CONSIDERED = "memory.compaction.considered"
ATTR_MEMORY_COMPACTION_REPLACED = "memory.compaction.replaced"
ATTR_MEMORY_COMPACTION_MERGED = "memory.compaction.merged"
ATTR_MEMORY_COMPACTION_KEPT = "memory.compaction.kept"
# Export/import: records exported with their vector; records an import skipped (the key
# existed, or they had expired), kept the exported vector of, embedded again, or dropped the
# exported vector of (no embedder).
ATTR_MEMORY_EXPORT_VECTORS = "memory.export.vectors"
ATTR_MEMORY_IMPORT_SKIPPED_EXISTING = "memory.import.skipped_existing"
ATTR_MEMORY_IMPORT_SKIPPED_EXPIRED = "memory.import.skipped_expired"
ATTR_MEMORY_IMPORT_VECTORS_REUSED = "memory.import.vectors_reused"
ATTR_MEMORY_IMPORT_REEMBEDDED = "memory.import.reembedded"
ATTR_MEMORY_IMPORT_VECTORS_DROPPED = "memory.import.vectors_dropped"

# gen_ai.operation.name per memory operation, which is also the span name. The convention's
# names where it has one; get_memory, list_memory, count_memory, compact_memory,
# export_memory and import_memory are our extensions (it defines no read, listing, count,
# compaction or transfer).
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
    "compact": "compact_memory",
    "get_record": "get_memory",
    "update": "update_memory",
    "list": "list_memory",
    "delete_where": "delete_memory",
    "namespaces": "list_memory_namespaces",
    "export": "export_memory",
    "import": "import_memory",
    "add_versioned": "upsert_memory",
    "get_as_of": "get_memory",
    "get_record_as_of": "get_memory",
    "history": "get_memory_history",
    "forget": "delete_memory",
}

METRIC_MEMORY_DURATION = "memory.operation.duration"
METRIC_MEMORY_HITS = "memory.hits"
METRIC_MEMORY_MISSES = "memory.misses"
METRIC_MEMORY_EVICTIONS = "memory.evictions"
METRIC_MEMORY_FALLBACKS = "memory.fallback.activations"
