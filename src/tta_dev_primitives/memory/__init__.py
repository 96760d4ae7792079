"""Memory for agent workflows: ``MemoryPrimitive``, its backends, search and helpers.

Usage::

    from tta_dev_primitives import MemoryPrimitive

    memory = MemoryPrimitive()                      # in process, zero setup
    await memory.add("user:1", {"name": "Ada", "likes": "python"})
    hits = await memory.search("python")            # ranked keyword search
"""

from __future__ import annotations

from .backends import (
    BackendInfo,
    FallbackBackend,
    InMemoryBackend,
    MemoryBackend,
    RedisBackend,
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
from .keys import create_memory_key
from .primitive import MemoryOperation, MemoryPrimitive
from .records import NO_EXPIRY, MemoryPage, MemoryRecord, SearchHit
from .store import InMemoryStore
from .transfer import ImportConflictError, ImportReport, read_jsonl, write_jsonl

__all__ = [
    "BackendInfo",
    "CallableEmbedder",
    "CompactionPolicy",
    "CompactionReport",
    "Embedder",
    "ExtractiveSummarizer",
    "FallbackBackend",
    "RefusedOperation",
    "HashingEmbedder",
    "ImportConflictError",
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
    "NO_EXPIRY",
    "RedisBackend",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "create_memory_key",
    "default_embedder",
    "read_jsonl",
    "write_jsonl",
]
