"""The record types every layer shares: what is written, read back and found.

They sit below the backends, the store and the primitive, so each of those imports them from
here and none imports another for its types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

from .codec import NO_SNAPSHOT, copy_metadata, decode, value_of
from .search import (
    DEFAULT_SEMANTIC_WEIGHT,
    CorpusStats,
    Document,
    Fusion,
    KeywordQuery,
    PhaseObserver,
    SearchMode,
    Vector,
    indexed_value,
    make_document,
    prepare_query,
)

__all__ = [
    "memory_record",
    "NO_EXPIRY",
    "Entry",
    "ListQuery",
    "ListResult",
    "MemoryPage",
    "MemoryRecord",
    "Namespace",
    "Record",
    "RecordUpdate",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
]

Namespace = tuple[str, ...]
"""A namespace is the tuple of its parts; ``("a", "b")`` and ``("a:b",)`` never meet."""


class _NoExpiry:
    """The type of :data:`NO_EXPIRY` (one instance)."""

    __slots__ = ()
    _instance: _NoExpiry | None = None

    def __new__(cls) -> _NoExpiry:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_EXPIRY"

    def __reduce__(self) -> str:
        return "NO_EXPIRY"


NO_EXPIRY: Final = _NoExpiry()
"""``ttl=NO_EXPIRY``: the record never expires, even when the primitive has a ``default_ttl``
(``ttl=None`` means "use the default")."""


class Entry:
    """One validated record to write.

    Attributes:
        key: The record's key within its namespace.
        payload: The value's JSON text.
        metadata: Validated metadata (JSON-able) or None; backends must not keep this object
            itself (copy or encode it).
        ttl: Seconds until the record expires (None = never).
        vector: The value's embedding, when the primitive has an embedder: a unit-length
            float32 vector, normalized once by the primitive's writer, so a backend stores
            it as given and never normalizes it again.
        snapshot: A cheap copy of the value (see
            :func:`~tta_dev_primitives.memory.codec.encode_snapshot`) that an in-process
            backend may hand back instead of decoding ``payload``.
        document: The value's search document (words, lengths, string leaves, vector),
            computed from the payload the first time it is read, so a backend that indexes
            lazily does not pay for tokenizing on the write path.
        space: ``(embedder name, dimensions)`` of ``vector``, so a namespace can refuse
            vectors of another embedder.
        created_at: When set (epoch seconds), the record's ``created_at`` instead of the
            backend's clock, even over a live record: an import restores the time a record
            was first written. None (the default): now, or the live record's own.
        updated_at: When set (epoch seconds), the record's ``updated_at`` instead of now.
            Either way the write takes the next write sequence (``list`` order is write
            order) and any ``ttl`` counts from now. A backend that cannot set record times
            ignores both (Redis, for now).
        index_text: Extra text indexed with the record (keyword search sees it as one more
            string leaf of the value) but not part of its value; None: none. Validated by
            the primitive; the backend stores it with the record and reads it back.
    """

    __slots__ = (
        "_document",
        "created_at",
        "index_text",
        "key",
        "metadata",
        "payload",
        "snapshot",
        "space",
        "ttl",
        "updated_at",
        "vector",
    )

    def __init__(
        self,
        key: str,
        payload: str,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        vector: Sequence[float] | Vector | None = None,
        *,
        document: Document | None = None,
        snapshot: Any = NO_SNAPSHOT,
        space: tuple[str, int] | None = None,
        created_at: float | None = None,
        updated_at: float | None = None,
        index_text: str | None = None,
    ) -> None:
        self.index_text = index_text
        self.snapshot = snapshot
        self.space = space
        self.created_at = created_at
        self.updated_at = updated_at
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
            doc = self._document = make_document(indexed_value(value, self.index_text), self.vector)
        return doc

    def __repr__(self) -> str:
        return f"Entry(key={self.key!r}, payload={self.payload[:40]!r}, ttl={self.ttl!r})"


class Record(NamedTuple):
    """One stored record as read back: JSON payload, metadata and write sequence number.

    ``seq`` is the record's version: (``key``, ``seq``) names this write and no other, ever
    (see *Versions* in :class:`~tta_dev_primitives.memory.backends.base.MemoryBackend`).

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
    # Epoch seconds from the backend's clock: first written (kept by update), last written,
    # and when it expires (None = never).
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    # Extra text indexed with the record, not part of its value (see Entry.index_text).
    index_text: str | None = None


class RecordUpdate(NamedTuple):
    """What :meth:`MemoryBackend.update` changes in a stored record (validated already).

    Attributes:
        payload: The new value's JSON text, or None to keep the stored value (and vector).
        snapshot: The new value's snapshot (see ``Entry.snapshot``), with ``payload``.
        vector: The new value's embedding, with ``payload`` (None: no vector); unit float32,
            as ``Entry.vector``.
        metadata: Metadata to merge into (or, without ``merge_metadata``, to replace) the
            stored metadata; None keeps it.
        merge_metadata: Merge ``metadata`` key by key (True) or replace it (False).
        set_ttl: Change the expiry to ``ttl``; False keeps the stored expiry.
        ttl: Seconds from now until the record expires (None = never), with ``set_ttl``.
        set_index_text: Change the record's index text to ``index_text``; False keeps it.
        index_text: The new index text (None: none), with ``set_index_text``.
    """

    payload: str | None = None
    snapshot: Any = NO_SNAPSHOT
    vector: Sequence[float] | Vector | None = None
    metadata: Mapping[str, Any] | None = None
    merge_metadata: bool = True
    set_ttl: bool = False
    ttl: float | None = None
    set_index_text: bool = False
    index_text: str | None = None

    def new_index_text(self, stored: str | None) -> str | None:
        """The index text after this update, given the stored one."""
        return self.index_text if self.set_index_text else stored

    def merged(self, stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The metadata after this update, given the stored metadata (a new dict)."""
        if self.metadata is None:
            return None if stored is None else dict(stored)
        if self.merge_metadata and stored:
            out = dict(stored)
            out.update(self.metadata)
            return out
        return dict(self.metadata)


ListOrder = Literal["newest", "oldest"]


class ListQuery(NamedTuple):
    """A page request for :meth:`MemoryBackend.list`, validated by the primitive.

    Attributes:
        filter: A filter checked by :func:`~.search.validate_filter`, or None.
        limit: Most records on the page (>= 1).
        order: ``newest`` (highest write sequence first) or ``oldest``.
        after: The write sequence of the last record of the previous page (None: first page);
            the page holds only records beyond it in ``order``.
        horizon: The backend's write sequence when the walk began (None: first page, the
            backend answers with its current one); records written later are left out, so a
            record rewritten during the walk is never returned twice.
    """

    filter: Mapping[str, Any] | None = None
    limit: int = 100
    order: ListOrder = "newest"
    after: int | None = None
    horizon: int | None = None


class ListResult(NamedTuple):
    """A page as a backend returns it: the records, the walk's horizon, whether more follow."""

    records: list[Record]
    horizon: int
    more: bool


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search request, already validated by the primitive.

    Attributes:
        text: The query text (the primitive sends no blank one; a backend used bare may get
            one, and :meth:`prepared` makes it match nothing).
        limit: Maximum number of hits (>= 1).
        mode: ``keyword``, ``semantic`` or ``hybrid``.
        filter: Metadata equality filter, or None.
        vector: The query's unit embedding (semantic and hybrid modes).
        space: ``(embedder name, dimensions)`` of ``vector``.
        fusion: How hybrid mode fuses its rankings: ``convex`` or ``rrf``.
        semantic_weight: Weight of the semantic side in ``convex`` fusion, in [0, 1].
        phases: Set only while the search span is recording: a backend passes it to
            :func:`~.search.rank_by_mode`, which reports the parts of the search (keyword,
            vector, fuse) to it (see :class:`~.search.PhaseObserver`).
        recency_half_life: When set, each hit's score is multiplied by
            ``0.5 ** (age / recency_half_life)``, ``age`` being seconds since the record's
            ``updated_at`` (see :func:`~.search.rank_by_mode`).
        stats: BM25 statistics to score with instead of the namespace's own (a search over
            a namespace tree passes the union's, see :class:`~.search.CorpusStats`).
        raw: Keyword and semantic mode only: scores as the retriever computes them (BM25,
            cosine), not calibrated, for a caller that fuses rankings itself (a hybrid
            search over a namespace tree).
        keywords: ``text`` prepared (see :func:`~.search.prepare_query`) by the primitive,
            which thereby checked once that it is not blank; None when the query was built
            elsewhere (see :meth:`prepared`).
    """

    text: str
    limit: int
    mode: SearchMode = "keyword"
    filter: Mapping[str, Any] | None = None
    vector: Sequence[float] | Vector | None = None
    space: tuple[str, int] | None = None
    fusion: Fusion = "convex"
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT
    phases: PhaseObserver | None = None
    recency_half_life: float | None = None
    stats: CorpusStats | None = None
    raw: bool = False
    keywords: KeywordQuery | None = None

    def prepared(self) -> KeywordQuery | None:
        """The prepared keyword query: the primitive's, else ``text`` prepared now (None for
        a blank text, which matches nothing)."""
        k = self.keywords
        return prepare_query(self.text) if k is None else k


class SearchResult(NamedTuple):
    """One hit as a backend returns it (the primitive decodes the payload, unless the backend
    decoded it already for this hit alone: ``snapshot``, else NO_SNAPSHOT)."""

    key: str
    payload: str
    score: float
    metadata: Mapping[str, Any] | None = None
    snapshot: Any = NO_SNAPSHOT


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result, best first in a result list.

    Attributes:
        key: The record's key.
        value: The stored value (a fresh copy).
        score: Relevance; higher is better. Calibrated, in (0, 1), and comparable across
            queries (see ``MIN_RELEVANT_SCORE``), except with ``fusion="rrf"`` or a reranker
            (its own scores).
        metadata: The record's metadata (``{}`` when it has none).
        namespace: The namespace holding the record, relative to the searching primitive's
            (``()``: its own; ``memory.scoped(*hit.namespace)`` reaches the others, which
            ``search(..., subtree=True)`` finds).
    """

    key: str
    value: Any
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    namespace: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One stored record with what is known of it, as ``get_record``, ``update`` and ``list``
    return it.

    Attributes:
        key: The record's key.
        value: The stored value (a fresh copy).
        metadata: The record's metadata (``{}`` when it has none; a fresh copy).
        created_at: When the key was first written (kept by ``update``), epoch seconds from
            the backend's clock (the server's on Redis).
        updated_at: When the record was last written (``add`` or ``update``), epoch seconds.
        expires_at: When it expires, epoch seconds; None when it never does.
        namespace: The namespace holding the record, relative to the primitive's (``()``:
            its own; others come from ``list(..., subtree=True)``).
        valid_from: When this version became current (its ``updated_at``), set on the
            versions :meth:`~tta_dev_primitives.memory.MemoryPrimitive.history` and
            ``as_of`` reads return; None elsewhere.
        valid_to: When this version stopped being current (written over, updated or
            superseded), epoch seconds; None while it is current.
        index_text: The extra text indexed with the record (``add(..., index_text=)``),
            not part of its value; None when it has none.
    """

    key: str
    value: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    namespace: tuple[str, ...] = ()
    valid_from: float | None = None
    valid_to: float | None = None
    index_text: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryPage:
    """One page of :meth:`~tta_dev_primitives.memory.MemoryPrimitive.list`.

    Attributes:
        records: The page's records, in the order asked for.
        next_cursor: Pass it as ``cursor=`` for the next page; None on the last page.
    """

    records: list[MemoryRecord]
    next_cursor: str | None = None


def memory_record(record: Record, namespace: Namespace = ()) -> MemoryRecord:
    """What the primitive hands users for a backend ``record``: the value thawed (never the
    stored object), metadata copied (always a dict), the record's times."""
    return MemoryRecord(
        record.key,
        value_of(record.payload, record.snapshot),
        copy_metadata(record.metadata) or {},
        record.created_at,
        record.updated_at,
        record.expires_at,
        namespace,
        index_text=record.index_text,
    )
