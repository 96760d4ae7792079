"""tta-dev-primitives: traced, composable workflow primitives with a memory you can trust.

Quick start::

    from tta_dev_primitives import LambdaPrimitive, MemoryPrimitive

    memory = MemoryPrimitive()                       # zero setup, in process
    await memory.add("turn:1", "I love python")
    answer = LambdaPrimitive(lambda hits, ctx: hits[0].value if hits else "?")
    pipeline = memory.search_step(limit=3) >> answer
    print(await pipeline.execute("python"))          # I love python
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
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
from .memory import (
    NO_EXPIRY,
    BackendInfo,
    CallableEmbedder,
    CheckedRecords,
    CompactionPolicy,
    CompactionReport,
    Embedder,
    ExtractiveSummarizer,
    FallbackBackend,
    ForgetReport,
    HashingEmbedder,
    ImportConflictError,
    ImportIncompleteError,
    ImportReport,
    InMemoryBackend,
    InMemoryStore,
    MemoryBackend,
    MemoryBackendError,
    MemoryOperation,
    MemoryPage,
    MemoryPrimitive,
    MemoryRecord,
    MiniLMEmbedder,
    RefusedOperation,
    ResolverInput,
    SearchHit,
    SentenceTransformerEmbedder,
    SyncMemory,
    check_records,
    create_memory_key,
    default_embedder,
    read_jsonl,
    write_jsonl,
)

if TYPE_CHECKING:
    from .memory.backends.redis import RedisBackend

__all__ = [
    "BackendInfo",
    "CallableEmbedder",
    "CheckedRecords",
    "CompactionPolicy",
    "CompactionReport",
    "Embedder",
    "ExtractiveSummarizer",
    "FallbackBackend",
    "RefusedOperation",
    "FallbackPrimitive",
    "HashingEmbedder",
    "ImportConflictError",
    "ImportIncompleteError",
    "ImportReport",
    "MiniLMEmbedder",
    "InMemoryBackend",
    "InMemoryStore",
    "MemoryBackend",
    "MemoryBackendError",
    "MemoryOperation",
    "MemoryPrimitive",
    "MemoryRecord",
    "ForgetReport",
    "ResolverInput",
    "RedisBackend",
    "SearchHit",
    "NO_EXPIRY",
    "MemoryPage",
    "SentenceTransformerEmbedder",
    "SyncMemory",
    "check_records",
    "create_memory_key",
    "default_embedder",
    "read_jsonl",
    "write_jsonl",
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


def __getattr__(name: str) -> Any:
    # RedisBackend is loaded on first use: an in-process MemoryPrimitive() never imports redis.
    if name == "RedisBackend":
        from .memory.backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
