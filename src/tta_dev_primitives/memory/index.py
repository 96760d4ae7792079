"""The search index's former home: :class:`SearchIndex` lives in :mod:`.search.index`."""

from __future__ import annotations

from .search.index import IndexRecord, SearchIndex, check_space

__all__ = ["IndexRecord", "SearchIndex", "check_space"]
