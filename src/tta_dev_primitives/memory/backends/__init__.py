"""Storage strategies for :class:`~tta_dev_primitives.memory.MemoryPrimitive`."""

from __future__ import annotations

from ..records import Entry, Namespace, Record, SearchQuery, SearchResult
from .base import BackendInfo, MemoryBackend
from .fallback import FallbackBackend, RefusedOperation
from .in_memory import InMemoryBackend
from .redis import RedisBackend

__all__ = [
    "BackendInfo",
    "Entry",
    "FallbackBackend",
    "InMemoryBackend",
    "MemoryBackend",
    "Namespace",
    "Record",
    "RedisBackend",
    "RefusedOperation",
    "SearchQuery",
    "SearchResult",
]
