"""The old import path of :mod:`.redis.query_engine`, kept working."""

from __future__ import annotations

from .redis.query_engine import (
    DEFAULT_QUERY_ENGINE_MIN_RECORDS,
    SEARCH_ENGINES,
    LexicalStats,
    QueryEngine,
    SearchEngine,
    validate_search_engine,
)

__all__ = [
    "DEFAULT_QUERY_ENGINE_MIN_RECORDS",
    "LexicalStats",
    "QueryEngine",
    "SEARCH_ENGINES",
    "SearchEngine",
    "validate_search_engine",
]
