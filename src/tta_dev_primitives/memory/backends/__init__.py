"""Storage strategies for :class:`~tta_dev_primitives.memory.MemoryPrimitive`."""

from __future__ import annotations

from .base import BackendInfo, Entry, MemoryBackend, Namespace, Record, SearchQuery, SearchResult
from .in_memory import InMemoryBackend

__all__ = [
    "BackendInfo",
    "Entry",
    "InMemoryBackend",
    "MemoryBackend",
    "Namespace",
    "Record",
    "SearchQuery",
    "SearchResult",
]
