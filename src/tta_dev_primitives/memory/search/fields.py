"""The metadata of a :class:`~.index.SearchIndex`: each slot's metadata, and an index of
metadata values (one set of slots per field value) that answers a filter's equality, ``$eq``
and ``$in`` conditions with a lookup instead of a scan."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from .filters import filter_anchors, filter_key, is_equality_filter, matches_filter

__all__ = ["MetadataFields"]


class MetadataFields:
    """Per-slot metadata (``meta``) and the slots of each field value (``values``)."""

    __slots__ = ("meta", "values")

    def __init__(self) -> None:
        self.meta: list[Mapping[str, Any] | None] = []
        self.values: dict[str, dict[Hashable, set[int]]] = {}

    def extend(self, count: int) -> None:
        """Room for ``count`` more slots."""
        self.meta.extend([None] * count)

    def add(self, slot: int, metadata: Mapping[str, Any] | None) -> None:
        """Index ``slot``'s metadata (a free slot's: nothing indexed yet)."""
        if metadata:
            self.meta[slot] = metadata
            values = self.values
            for field, value in metadata.items():
                values.setdefault(field, {}).setdefault(filter_key(value), set()).add(slot)

    def remove(self, slot: int) -> None:
        """Forget ``slot``'s metadata."""
        metadata = self.meta[slot]
        if metadata:
            self.meta[slot] = None
            index = self.values
            for field, value in metadata.items():
                values = index[field]
                fkey = filter_key(value)
                slots = values[fkey]
                slots.discard(slot)
                if not slots:
                    del values[fkey]
                    if not values:
                        del index[field]

    def matching(self, filter: Mapping[str, Any], live: Iterable[int]) -> list[int]:
        """The slots whose metadata matches a validated, non-empty ``filter``.

        Equality, ``$eq`` and ``$in`` conditions are looked up in the index of metadata
        values; only the slots they leave are tested with :func:`~.filters.matches_filter`
        (every ``live`` slot when the filter has no such condition).
        """
        anchors = filter_anchors(filter)
        found: set[int] | None = None
        index = self.values
        for field, values in anchors:
            by_value = index.get(field)
            slots: set[int] = set()
            if by_value:
                for value in values:
                    hit = by_value.get(filter_key(value))
                    if hit:
                        slots |= hit
            found = slots if found is None else found & slots
            if not found:
                return []
        if found is not None and is_equality_filter(filter):
            return list(found)
        cands: Iterable[int] = found if found is not None else live
        meta = self.meta
        return [slot for slot in cands if matches_filter(meta[slot], filter)]
