"""The search indexes a :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend` keeps
in its process, one per searched namespace, and the memory budget that bounds them.

Redis holds the records; each process ranks a search in its own
:class:`~tta_dev_primitives.memory.search.SearchIndex` of the namespace (the engine every
backend uses, so rankings are the same everywhere), caught up before each search from the
namespace's change log (``lua/_log.lua``): one round trip when nothing changed, a few more
when something did. A namespace's index is built on its first search (a full load), reset
and caught up from the log's first entry when the namespace began again (cleared, emptied,
expired, flushed), and rebuilt whenever the log says entries were missed: entries trimmed
away before this process read them, or the last entry it applied lost or numbered anew (a
restart from an older snapshot, a failover).

The indexes held are bounded by :attr:`LocalIndexes.budget` bytes (by each index's own
estimate, :meth:`SearchIndex.memory_bytes`): past it, the least recently searched namespaces
are dropped (their next search loads them again). So a process serving many small
namespaces stays small, and one large namespace is kept as long as it fits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ...search import IndexRecord

__all__ = [
    "DEFAULT_INDEX_BUDGET",
    "ChurnedError",
    "LoadableIndex",
    "LocalIndexes",
    "NamespaceIndex",
    "OldLayoutError",
]


class LoadableIndex(Protocol):
    """What the change-log sync feeds: a :class:`~tta_dev_primitives.memory.search.SearchIndex`,
    or the Query Engine's word statistics (``LexicalStats``)."""

    def __len__(self) -> int: ...

    def upsert_many(self, records: Iterable[IndexRecord]) -> None: ...

    def remove(self, key: str) -> bool: ...

    def expire(self, now: float) -> int: ...

    def clear(self) -> None: ...

    def memory_bytes(self) -> int: ...


IndexT = TypeVar("IndexT", bound=LoadableIndex)

DEFAULT_INDEX_BUDGET = 512 * 1024 * 1024
"""Bytes of search indexes a backend keeps in its process by default (512 MiB)."""


class ChurnedError(Exception):
    """A namespace's index load lost the race with its writers, every attempt (internal: the
    backend raises it as a transient :class:`MemoryBackendError` naming the operation).

    Attributes:
        base: The namespace's key base.
    """

    def __init__(self, base: bytes) -> None:
        super().__init__(base)
        self.base = base


class OldLayoutError(Exception):
    """A namespace still in the layout of 0.1.0, found by an index load (internal: the
    backend raises it as a :class:`MemoryBackendError` naming the operation).

    Attributes:
        base: The namespace's key base.
    """

    def __init__(self, base: bytes) -> None:
        super().__init__(base)
        self.base = base


@dataclass(slots=True, eq=False)
class NamespaceIndex(Generic[IndexT]):
    """One namespace's index in this process, and how far it has read the change log.

    Attributes:
        index: The namespace's search index (live records as of ``last``).
        incarnation: The namespace's incarnation the index holds (``None``: the namespace
            did not exist at the last sync).
        last: The last change-log entry applied.
        version: That entry's version as read (``b""``: unknown), which the catch-up checks
            it still has: a namespace rolled back (a restart from an older snapshot, a
            failover that lost writes) is reloaded, never taken for the one indexed.
        updated: Key -> ``updated_at`` (epoch seconds), for recency-weighted searches.
        restarts: The backend's count of server restarts when the index was loaded (a
            restart may lose writes the log never shows: the index is then rebuilt).
        size: The index's memory estimate when last measured, bytes.
        space: The namespace's embedder identity ``(name, dimensions)`` as Redis keeps it
            (None: no vectors yet).
    """

    index: IndexT
    incarnation: bytes | None = None
    last: int = 0
    version: bytes = b""
    updated: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    size: int = 0
    space: tuple[str, int] | None = None

    def reset(self, incarnation: bytes | None, last: int) -> None:
        """Forget every record (the namespace is gone, or being reloaded)."""
        self.index.clear()
        self.updated.clear()
        self.incarnation = incarnation
        self.last = last
        self.version = b""


class LocalIndexes(Generic[IndexT]):
    """The namespaces' indexes of one backend, least recently searched first, within a budget.

    Args:
        budget: Most bytes of indexes kept (by their estimates); the index just searched
            is always kept, even alone over the budget.

    Raises:
        ValueError: ``budget`` is not a positive int.
    """

    def __init__(self, budget: int = DEFAULT_INDEX_BUDGET) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ValueError(f"index_budget must be a positive int (bytes), got {budget!r}")
        self.budget = budget
        self._held: OrderedDict[bytes, NamespaceIndex[IndexT]] = OrderedDict()
        self._total = 0
        self.dropped = 0  # indexes dropped to stay within the budget

    def __len__(self) -> int:
        return len(self._held)

    @property
    def total(self) -> int:
        """Bytes held by the indexes (the sum of their last estimates)."""
        return self._total

    def get(self, base: bytes) -> NamespaceIndex[IndexT] | None:
        """The index of the namespace whose keys start with ``base``, marked as just used."""
        state = self._held.get(base)
        if state is not None:
            self._held.move_to_end(base)
        return state

    def put(self, base: bytes, state: NamespaceIndex[IndexT]) -> None:
        """Hold ``state`` as the namespace's index (replacing any), then :meth:`measure` it."""
        old = self._held.pop(base, None)
        if old is not None:
            self._total -= old.size
        state.size = 0
        self._held[base] = state
        self.measure(base, state)

    def measure(self, base: bytes, state: NamespaceIndex[IndexT]) -> None:
        """Take ``state``'s new size into account; drop the least recently used over budget."""
        if self._held.get(base) is not state:
            return
        size = state.index.memory_bytes() + 120 * len(state.updated)
        self._total += size - state.size
        state.size = size
        while self._total > self.budget and len(self._held) > 1:
            victim, dropped = next(iter(self._held.items()))
            if dropped is state:
                break
            del self._held[victim]
            self._total -= dropped.size
            self.dropped += 1

    def drop(self, base: bytes) -> None:
        """Forget the namespace's index (it is loaded again by its next search)."""
        old = self._held.pop(base, None)
        if old is not None:
            self._total -= old.size

    def clear(self) -> None:
        """Forget every index."""
        self._held.clear()
        self._total = 0
