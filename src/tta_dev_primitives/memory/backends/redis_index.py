"""The old import path of :mod:`.redis.index`, kept working."""

from __future__ import annotations

from .redis.index import (
    DEFAULT_INDEX_BUDGET,
    ChurnedError,
    LoadableIndex,
    LocalIndexes,
    NamespaceIndex,
    OldLayoutError,
)

__all__ = [
    "ChurnedError",
    "DEFAULT_INDEX_BUDGET",
    "LoadableIndex",
    "LocalIndexes",
    "NamespaceIndex",
    "OldLayoutError",
]
