"""The record types every layer shares: what is written, read back and found.

They sit below the backends, the store and the primitive, so each of those imports them from
here and none imports another for its types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .codec import NO_SNAPSHOT, decode
from .search import DEFAULT_SEMANTIC_WEIGHT, Document, Fusion, SearchMode, Vector, make_document

__all__ = [
    "Entry",
    "MemoryRecord",
    "Namespace",
    "Record",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
]

Namespace = tuple[str, ...]
"""A namespace is the tuple of its parts; ``("a", "b")`` and ``("a:b",)`` never meet."""


class Entry:
    """One validated record to write.

    Attributes:
        key: The record's key within its namespace.
        payload: The value's JSON text.
        metadata: Validated metadata (JSON-able) or None; backends must not keep this object
            itself (copy or encode it).
        ttl: Seconds until the record expires (None = never).
        vector: The value's unit embedding, when the primitive has an embedder.
        snapshot: A cheap copy of the value (see
            :func:`~tta_dev_primitives.memory.codec.encode_snapshot`) that an in-process
            backend may hand back instead of decoding ``payload``.
        document: The value's search document (words, lengths, string leaves, vector),
            computed from the payload the first time it is read, so a backend that indexes
            lazily does not pay for tokenizing on the write path.
        space: ``(embedder name, dimensions)`` of ``vector``, so a namespace can refuse
            vectors of another embedder.
    """

    __slots__ = ("_document", "key", "metadata", "payload", "snapshot", "space", "ttl", "vector")

    def __init__(
        self,
        key: str,
        payload: str,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        vector: Sequence[float] | None = None,
        *,
        document: Document | None = None,
        snapshot: Any = NO_SNAPSHOT,
        space: tuple[str, int] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.space = space
        self.key = key
        self.payload = payload
        self.metadata = metadata
        self.ttl = ttl
        self.vector = vector
        self._document = document

    @property
    def document(self) -> Document:
        doc = self._document
        if doc is None:
            snap = self.snapshot
            value = decode(self.payload) if snap is NO_SNAPSHOT else snap
            doc = self._document = make_document(value, self.vector)
        return doc

    def __repr__(self) -> str:
        return f"Entry(key={self.key!r}, payload={self.payload[:40]!r}, ttl={self.ttl!r})"


class Record(NamedTuple):
    """One stored record as read back: JSON payload, metadata and write sequence number.

    A named tuple rather than a dataclass: it is built on every read, and a tuple is the
    cheapest immutable record Python has.
    """

    key: str
    payload: str
    metadata: Mapping[str, Any] | None = None
    seq: int = 0
    # An in-process backend may keep the entry's snapshot (see codec.encode_snapshot) so a read can
    # skip decoding the payload; NO_SNAPSHOT otherwise.
    snapshot: Any = NO_SNAPSHOT


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search request, already validated by the primitive.

    Attributes:
        text: The query text (non-blank).
        limit: Maximum number of hits (>= 1).
        mode: ``keyword``, ``semantic`` or ``hybrid``.
        filter: Metadata equality filter, or None.
        vector: The query's unit embedding (semantic and hybrid modes).
        space: ``(embedder name, dimensions)`` of ``vector``.
        fusion: How hybrid mode fuses its rankings: ``convex`` or ``rrf``.
        semantic_weight: Weight of the semantic side in ``convex`` fusion, in [0, 1].
        tracer: Set only while the search span is recording: a backend may trace the parts
            of the search (keyword, vector, fuse) as child spans with it.
    """

    text: str
    limit: int
    mode: SearchMode = "keyword"
    filter: Mapping[str, Any] | None = None
    vector: Sequence[float] | Vector | None = None
    space: tuple[str, int] | None = None
    fusion: Fusion = "convex"
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT
    tracer: Any = None


class SearchResult(NamedTuple):
    """One hit as a backend returns it (the primitive decodes the payload)."""

    key: str
    payload: str
    score: float
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result, best first in a result list.

    Attributes:
        key: The record's key.
        value: The stored value (a fresh copy).
        score: Relevance; higher is better. Comparable within one result list only.
        metadata: The record's metadata, or None.
    """

    key: str
    value: Any
    score: float
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One stored record as a user reads it: value, metadata and times.

    Attributes:
        key: The record's key.
        value: The stored value (a fresh copy).
        metadata: The record's metadata (``{}`` when none).
        created_at: Epoch seconds of the first write, from the backend's clock (None where
            the backend keeps no times).
        updated_at: Epoch seconds of the last write (None likewise).
        expires_at: Epoch seconds of its expiry, or None.
    """

    key: str
    value: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    expires_at: float | None = None
