"""Storage strategies for :class:`~tta_dev_primitives.memory.MemoryPrimitive`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..records import Entry, Namespace, Record, SearchQuery, SearchResult
from .base import BackendInfo, MemoryBackend
from .fallback import FallbackBackend, RefusedOperation
from .in_memory import InMemoryBackend

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    # The Redis backend loads redis.asyncio and its Lua scripts: only when it is asked for,
    # so an in-process MemoryPrimitive() never imports redis.
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
