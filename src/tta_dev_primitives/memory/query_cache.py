"""``QueryVectorCache``: each query text is embedded once within a short window.

An agent often searches its memory with the same text more than once in a turn (a retrieval
step, then a tool that recalls what the user just said), and short replies ("ok", "thanks")
come back again and again. A query embedding costs a model call (milliseconds locally, a
network round trip for a hosted model), so :class:`MemoryPrimitive` keeps the vectors of
recent query texts: a search whose text was embedded less than ``ttl`` seconds ago reuses
that vector, and concurrent searches of one text share the one embedder call in flight.
At most ``max_entries`` texts are kept (least recently used dropped first), so the cache is
small and bounded: 256 vectors of 384 float32 numbers are about 400 KB.

The vectors handed out are read-only copies: neither the embedder (which may reuse its
buffers) nor a caller can change a cached vector.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_QUERY_CACHE_SIZE", "DEFAULT_QUERY_CACHE_TTL", "QueryVectorCache"]

DEFAULT_QUERY_CACHE_SIZE = 256
"""Query texts whose vectors a primitive keeps."""

DEFAULT_QUERY_CACHE_TTL = 300.0
"""Seconds a query's vector is reused for."""

_Vector = npt.NDArray[np.float32]


class QueryVectorCache:
    """Recently embedded query texts and their unit vectors (bounded, expiring).

    Args:
        max_entries: Most texts kept (least recently used dropped first).
        ttl: Seconds a vector is reused for, counted from when it was computed.
        clock: Monotonic clock in seconds (inject a fake one in tests).

    Attributes:
        hits: Searches served without an embedder call (a kept vector, or a call in flight).
        misses: Searches that called the embedder.

    Raises:
        ValueError: ``max_entries`` < 1 or ``ttl`` <= 0.
    """

    __slots__ = ("_clock", "_entries", "_inflight", "hits", "max_entries", "misses", "ttl")

    def __init__(
        self,
        max_entries: int = DEFAULT_QUERY_CACHE_SIZE,
        ttl: float = DEFAULT_QUERY_CACHE_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        self.max_entries = max_entries
        self.ttl = float(ttl)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[_Vector, float]] = OrderedDict()
        # (event loop, text) -> the embedder call in flight for it (a task of that loop).
        self._inflight: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[_Vector]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)`` (0.0 before the first search)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def clear(self) -> None:
        """Forget every kept vector (calls in flight still finish for their waiters)."""
        self._entries.clear()

    async def vector(self, text: str, embed: Callable[[], Awaitable[Any]]) -> _Vector:
        """The vector of ``text``: kept, in flight, or ``await embed()`` (a unit vector)."""
        entries = self._entries
        found = entries.get(text)
        if found is not None:
            if self._clock() - found[1] < self.ttl:
                entries.move_to_end(text)
                self.hits += 1
                return found[0]
            del entries[text]
        key = (asyncio.get_running_loop(), text)
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        started = self._clock()
        task = asyncio.ensure_future(self._embed(embed))
        # Its failure is seen by its waiters; with none left (cancelled), it is dropped here.
        task.add_done_callback(_retrieve)
        self._inflight[key] = task
        try:
            vector = await asyncio.shield(task)
        finally:
            if self._inflight.get(key) is task:
                del self._inflight[key]
        entries[text] = (vector, started)
        entries.move_to_end(text)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        return vector

    @staticmethod
    async def _embed(embed: Callable[[], Awaitable[Any]]) -> _Vector:
        vector = np.array(await embed(), dtype=np.float32)  # a copy the embedder cannot touch
        vector.setflags(write=False)
        return vector


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
