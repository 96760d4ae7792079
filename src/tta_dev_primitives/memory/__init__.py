"""Memory for agent workflows: ``MemoryPrimitive``, its backends, search and helpers.

Usage::

    from tta_dev_primitives import MemoryPrimitive

    memory = MemoryPrimitive()                      # in process, zero setup
    await memory.add("user:1", {"name": "Ada", "likes": "python"})
    hits = await memory.search("python")            # ranked keyword search
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backends import (
    BackendInfo,
    FallbackBackend,
    InMemoryBackend,
    MemoryBackend,
    RefusedOperation,
)
from .compaction import CompactionPolicy, CompactionReport, ExtractiveSummarizer
from .embeddings import (
    CallableEmbedder,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
)
from .errors import MemoryBackendError
from .history import ForgetReport, ResolverInput
from .keys import create_memory_key
from .primitive import MemoryOperation, MemoryPrimitive
from .records import NO_EXPIRY, MemoryPage, MemoryRecord, SearchHit
from .store import InMemoryStore
from .sync import SyncMemory
from .transfer import (
    CheckedRecords,
    ImportConflictError,
    ImportIncompleteError,
    ImportReport,
    check_records,
    read_jsonl,
    write_jsonl,
)

if TYPE_CHECKING:
    from .backends.redis import RedisBackend

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
    "MemoryPage",
    "MemoryPrimitive",
    "MemoryRecord",
    "ForgetReport",
    "ResolverInput",
    "NO_EXPIRY",
    "RedisBackend",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "SyncMemory",
    "check_records",
    "create_memory_key",
    "default_embedder",
    "read_jsonl",
    "write_jsonl",
]


def __getattr__(name: str) -> Any:
    # RedisBackend is loaded on first use: an in-process MemoryPrimitive() never imports redis.
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
