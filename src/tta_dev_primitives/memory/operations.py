"""The memory operations: one typed, immutable operation per kind.

:class:`MemoryOperation` is the public name: its class methods (``MemoryOperation.add(...)``,
``.get(...)``, ``.search(...)``, ...) build the operation of each kind, every one of which is
a :class:`MemoryOperation` (``isinstance`` holds) and says its ``kind``. Each kind is a named
tuple of its own fields (as LangGraph's ``GetOp``/``PutOp``/``SearchOp``), so mypy checks
what each operation carries, and building one costs one small tuple, on the path of every
``get`` and ``add``. Arguments are validated when the operation runs, not when it is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from ..core.base import WorkflowPrimitive
    from .compaction import CompactionRequest
    from .history import ForgetRequest
    from .rerank import Reranker
    from .search import Fusion, SearchMode
    from .transfer import ImportRequest

__all__ = [
    "KEEP",
    "AddManyOp",
    "AddOp",
    "AddVersionedOp",
    "ClearOp",
    "CompactOp",
    "DeleteOp",
    "DeleteWhereOp",
    "ForgetOp",
    "GetAsOfOp",
    "GetManyOp",
    "GetOp",
    "GetRecordAsOfOp",
    "GetRecordOp",
    "HistoryOp",
    "ImportOp",
    "KeysOp",
    "ListOp",
    "MemoryOperation",
    "NamespacesOp",
    "OperationKind",
    "SearchOp",
    "SizeOp",
    "UpdateOp",
]

OperationKind: TypeAlias = Literal[
    "add",
    "get",
    "search",
    "delete",
    "clear",
    "keys",
    "size",
    "add_many",
    "get_many",
    "get_record",
    "update",
    "list",
    "delete_where",
    "namespaces",
    "compact",
    "import",
    "add_versioned",
    "get_as_of",
    "get_record_as_of",
    "history",
    "forget",
]

AsOf: TypeAlias = "float | datetime"


class _Keep:
    """The default of :meth:`MemoryPrimitive.update`'s arguments: keep what is stored."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


class MemoryOperation:
    """One memory operation, the input of :meth:`MemoryPrimitive.execute`.

    Build it with the class methods (``MemoryOperation.add(...)``, ``.get(...)``,
    ``.search(...)``, ``.delete(...)``, ...); arguments are validated when it runs. Every
    operation is an immutable named tuple of its kind's fields (:class:`AddOp`,
    :class:`GetOp`, :class:`SearchOp`, ...) and a ``MemoryOperation``; ``op.kind`` names it.
    ``MemoryOperation(kind, *fields, **fields)`` builds the operation of ``kind`` too.

    Raises:
        ValueError: ``MemoryOperation(kind, ...)`` with a kind no operation has.
    """

    __slots__ = ()
    kind: ClassVar[OperationKind]

    def __new__(cls, kind: str, *args: Any, **kwargs: Any) -> MemoryOperation:
        op_type = OPERATION_TYPES.get(kind)
        if op_type is None:
            raise ValueError(f"unknown memory operation {kind!r}")
        built: MemoryOperation = op_type(*args, **kwargs)
        return built

    @staticmethod
    def add(
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        embed: bool | str = True,
        index_text: str | None = None,
    ) -> AddOp:
        """Store ``value`` under ``key``."""
        return AddOp(key, value, ttl, metadata, embed, index_text)

    @staticmethod
    def get(key: str, default: Any = None) -> GetOp:
        """Read ``key`` (``default`` when missing)."""
        return GetOp(key, default)

    @staticmethod
    def search(
        query: str,
        *,
        limit: int = 5,
        mode: SearchMode | None = None,
        filter: Mapping[str, Any] | None = None,
        semantic_weight: float | None = None,
        fusion: Fusion | None = None,
        recency_half_life: float | None = None,
        subtree: bool = False,
        min_score: float | None = None,
        reranker: Reranker | None = None,
        as_of: AsOf | None = None,
    ) -> SearchOp:
        """Search for ``query`` (as it was at ``as_of`` when given)."""
        return SearchOp(
            query,
            limit,
            mode,
            filter,
            semantic_weight,
            fusion,
            recency_half_life,
            subtree,
            min_score,
            reranker,
            as_of,
        )

    @staticmethod
    def delete(key: str) -> DeleteOp:
        """Delete ``key``."""
        return DeleteOp(key)

    @staticmethod
    def clear() -> ClearOp:
        """Delete every record of the namespace."""
        return ClearOp()

    @staticmethod
    def list_keys() -> KeysOp:
        """List the namespace's keys, least recently used first."""
        return KeysOp()

    @staticmethod
    def size() -> SizeOp:
        """Count the namespace's records."""
        return SizeOp()

    @staticmethod
    def add_many(
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        index_text: Mapping[str, str] | None = None,
    ) -> AddManyOp:
        """Store several ``(key, value)`` pairs in one batch."""
        return AddManyOp(items, ttl, metadata, index_text)

    @staticmethod
    def get_many(keys: Iterable[str]) -> GetManyOp:
        """Read several keys in one batch."""
        return GetManyOp(keys)

    @staticmethod
    def compact(summarizer: WorkflowPrimitive[Any, Any] | None, **options: Any) -> CompactOp:
        """Compact the namespace (the options of :meth:`MemoryPrimitive.compact`)."""
        from .compaction import CompactionRequest

        return CompactOp(CompactionRequest(summarizer, **options))

    @staticmethod
    def get_record(key: str) -> GetRecordOp:
        """Read the record under ``key`` with its metadata and timestamps."""
        return GetRecordOp(key)

    @staticmethod
    def update(
        key: str,
        *,
        value: Any = KEEP,
        metadata: Mapping[str, Any] | None = KEEP,
        ttl: Any = KEEP,
        merge_metadata: bool = True,
        index_text: str | None = KEEP,
    ) -> UpdateOp:
        """Change what is given of the record under ``key``."""
        return UpdateOp(key, value, metadata, ttl, merge_metadata, index_text)

    @staticmethod
    def list(
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        order: Literal["newest", "oldest"] = "newest",
        subtree: bool = False,
    ) -> ListOp:
        """One page of the namespace's records by write order."""
        return ListOp(filter, limit, cursor, order, subtree)

    @staticmethod
    def delete_where(filter: Mapping[str, Any]) -> DeleteWhereOp:
        """Delete the records whose metadata matches ``filter``."""
        return DeleteWhereOp(filter)

    @staticmethod
    def namespaces(
        prefix: Sequence[str] = (),
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
    ) -> NamespacesOp:
        """The sub-namespaces matching ``prefix`` and ``suffix`` that hold records."""
        return NamespacesOp(prefix, suffix, max_depth)


# Each kind: its fields (a named tuple) and the operation class (fields + MemoryOperation).
# The fields are typed as the public methods take them; the handlers validate them.


class _AddFields(NamedTuple):
    key: str
    value: Any
    ttl: float | None = None
    metadata: Mapping[str, Any] | None = None
    embed: bool | str = True
    index_text: str | None = None


class AddOp(_AddFields, MemoryOperation):
    """``add(key, value, ttl=, metadata=, embed=, index_text=)``."""

    __slots__ = ()
    kind: ClassVar[Literal["add"]] = "add"


class _AddVersionedFields(NamedTuple):
    key: str
    value: Any
    ttl: float | None = None
    metadata: Mapping[str, Any] | None = None
    supersedes: Iterable[str] = ()
    embed: bool | str = True
    index_text: str | None = None


class AddVersionedOp(_AddVersionedFields, MemoryOperation):
    """``add`` with ``history`` or ``supersedes``: one versioned write."""

    __slots__ = ()
    kind: ClassVar[Literal["add_versioned"]] = "add_versioned"


class _GetFields(NamedTuple):
    key: str
    default: Any = None


class GetOp(_GetFields, MemoryOperation):
    """``get(key, default)``."""

    __slots__ = ()
    kind: ClassVar[Literal["get"]] = "get"


class _GetAsOfFields(NamedTuple):
    key: str
    as_of: AsOf
    default: Any = None


class GetAsOfOp(_GetAsOfFields, MemoryOperation):
    """``get(key, default, as_of=t)``."""

    __slots__ = ()
    kind: ClassVar[Literal["get_as_of"]] = "get_as_of"


class _KeyFields(NamedTuple):
    key: str


class GetRecordOp(_KeyFields, MemoryOperation):
    """``get_record(key)``."""

    __slots__ = ()
    kind: ClassVar[Literal["get_record"]] = "get_record"


class DeleteOp(_KeyFields, MemoryOperation):
    """``delete(key)``."""

    __slots__ = ()
    kind: ClassVar[Literal["delete"]] = "delete"


class HistoryOp(_KeyFields, MemoryOperation):
    """``history(key)``."""

    __slots__ = ()
    kind: ClassVar[Literal["history"]] = "history"


class _GetRecordAsOfFields(NamedTuple):
    key: str
    as_of: AsOf


class GetRecordAsOfOp(_GetRecordAsOfFields, MemoryOperation):
    """``get_record(key, as_of=t)``."""

    __slots__ = ()
    kind: ClassVar[Literal["get_record_as_of"]] = "get_record_as_of"


class _SearchFields(NamedTuple):
    query: str
    limit: int = 5
    mode: SearchMode | None = None
    filter: Mapping[str, Any] | None = None
    semantic_weight: float | None = None
    fusion: Fusion | None = None
    recency_half_life: float | None = None
    subtree: bool = False
    min_score: float | None = None
    reranker: Reranker | None = None
    as_of: AsOf | None = None


class SearchOp(_SearchFields, MemoryOperation):
    """``search(query, ...)``."""

    __slots__ = ()
    kind: ClassVar[Literal["search"]] = "search"


class _NoFields(NamedTuple):
    pass


class ClearOp(_NoFields, MemoryOperation):
    """``clear()``."""

    __slots__ = ()
    kind: ClassVar[Literal["clear"]] = "clear"


class KeysOp(_NoFields, MemoryOperation):
    """``keys()``."""

    __slots__ = ()
    kind: ClassVar[Literal["keys"]] = "keys"


class SizeOp(_NoFields, MemoryOperation):
    """``size()``."""

    __slots__ = ()
    kind: ClassVar[Literal["size"]] = "size"


class _AddManyFields(NamedTuple):
    items: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ttl: float | None = None
    metadata: Mapping[str, Any] | None = None
    index_text: Mapping[str, str] | None = None


class AddManyOp(_AddManyFields, MemoryOperation):
    """``add_many(items, ttl=, metadata=, index_text=)``."""

    __slots__ = ()
    kind: ClassVar[Literal["add_many"]] = "add_many"


class _GetManyFields(NamedTuple):
    keys: Iterable[str]


class GetManyOp(_GetManyFields, MemoryOperation):
    """``get_many(keys)``."""

    __slots__ = ()
    kind: ClassVar[Literal["get_many"]] = "get_many"


class _UpdateFields(NamedTuple):
    key: str
    value: Any = KEEP
    metadata: Mapping[str, Any] | None = KEEP
    ttl: Any = KEEP
    merge_metadata: bool = True
    index_text: str | None = KEEP


class UpdateOp(_UpdateFields, MemoryOperation):
    """``update(key, value=, metadata=, ttl=, merge_metadata=, index_text=)``."""

    __slots__ = ()
    kind: ClassVar[Literal["update"]] = "update"


class _ListFields(NamedTuple):
    filter: Mapping[str, Any] | None = None
    limit: int = 100
    cursor: str | None = None
    order: Literal["newest", "oldest"] = "newest"
    subtree: bool = False
    as_of: AsOf | None = None


class ListOp(_ListFields, MemoryOperation):
    """``list(filter=, limit=, cursor=, order=, subtree=, as_of=)``."""

    __slots__ = ()
    kind: ClassVar[Literal["list"]] = "list"


class _DeleteWhereFields(NamedTuple):
    filter: Mapping[str, Any]


class DeleteWhereOp(_DeleteWhereFields, MemoryOperation):
    """``delete_where(filter)``."""

    __slots__ = ()
    kind: ClassVar[Literal["delete_where"]] = "delete_where"


class _NamespacesFields(NamedTuple):
    prefix: Sequence[str] = ()
    suffix: Sequence[str] | None = None
    max_depth: int | None = None


class NamespacesOp(_NamespacesFields, MemoryOperation):
    """``namespaces(prefix, suffix, max_depth)``."""

    __slots__ = ()
    kind: ClassVar[Literal["namespaces"]] = "namespaces"


class _CompactFields(NamedTuple):
    request: CompactionRequest


class CompactOp(_CompactFields, MemoryOperation):
    """``compact(summarizer, ...)``: its arguments in one :class:`CompactionRequest`."""

    __slots__ = ()
    kind: ClassVar[Literal["compact"]] = "compact"


class _ImportFields(NamedTuple):
    request: ImportRequest


class ImportOp(_ImportFields, MemoryOperation):
    """``import_(records, ...)``: its arguments in one ``ImportRequest``."""

    __slots__ = ()
    kind: ClassVar[Literal["import"]] = "import"


class _ForgetFields(NamedTuple):
    request: ForgetRequest


class ForgetOp(_ForgetFields, MemoryOperation):
    """``forget(key or filter, ...)``: its arguments in one ``ForgetRequest``."""

    __slots__ = ()
    kind: ClassVar[Literal["forget"]] = "forget"


OPERATION_TYPES: dict[str, type[MemoryOperation]] = {
    t.kind: t
    for t in (
        AddOp,
        AddVersionedOp,
        GetOp,
        GetAsOfOp,
        GetRecordOp,
        GetRecordAsOfOp,
        SearchOp,
        DeleteOp,
        ClearOp,
        KeysOp,
        SizeOp,
        AddManyOp,
        GetManyOp,
        UpdateOp,
        ListOp,
        DeleteWhereOp,
        NamespacesOp,
        CompactOp,
        ImportOp,
        HistoryOp,
        ForgetOp,
    )
}
"""Every operation class by its kind."""
