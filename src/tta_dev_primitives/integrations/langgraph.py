"""``MemoryStore``: a LangGraph ``BaseStore`` over a :class:`MemoryPrimitive`.

Needs the ``langgraph`` extra (``pip install 'tta-dev-primitives[langgraph]'``). A drop-in
for ``langgraph.store.memory.InMemoryStore``::

    from tta_dev_primitives.integrations.langgraph import MemoryStore

    store = MemoryStore()                                   # in process
    store = MemoryStore(MemoryPrimitive(redis_url=url))     # plain Redis, Valkey, cluster,
                                                            # behind the fallback
    graph = builder.compile(store=store)

How LangGraph's model maps onto the memory:

* A LangGraph namespace ``("users", "42")`` is ``memory.scoped("users", "42")`` below the
  memory's own namespace (the root). Namespace rules are LangGraph's
  (``InvalidNamespaceError``: an empty namespace, an empty part, a part with a dot).
* An item is a record: the value is stored as it is, and its fields (nested ones under
  dotted names, ``"a.b"``) are also kept as the record's metadata, so a LangGraph
  ``filter`` (equality, nested equality, ``$eq $ne $gt $gte $lt $lte``) runs in the
  backend's filter index.
* ``search(prefix, query=...)`` is ``search(..., subtree=True)`` over the namespace tree:
  ``semantic`` with an ``index`` config (as ``InMemoryStore``), otherwise keyword (BM25;
  ``InMemoryStore`` ignores the query then). As in ``InMemoryStore``, when fewer items score
  than asked, the other items matching the filter follow, with ``score=None``. Without a
  query, items come namespace by namespace (sorted), oldest first.
* ``index={"dims", "embed", "fields"}``: ``embed`` is a LangChain ``Embeddings``, an
  embedding function, a ``"provider:model"`` string (as LangGraph resolves it) or one of
  this library's embedders. ``fields`` (and ``put(..., index=[...])``) choose the JSON paths
  embedded; their texts are joined into one vector per item (``InMemoryStore`` keeps one
  vector per path and scores the best). ``index=False`` stores no vector.
* ``ttl={"default_ttl": minutes, "refresh_on_read": bool}``: items expire; a read (get,
  search) with refresh pushes the expiry back by the item's TTL, which rewrites the record
  (its ``updated_at`` moves too).
* Each hit's ``created_at``/``updated_at`` is read with its record (one ``get_record`` per
  hit, concurrently).

Every operation, sync or async, runs on the memory's :meth:`~MemoryPrimitive.sync` loop
thread, so LangGraph's thread pools (sync nodes) and its event loop (async nodes) can share
the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..memory.embeddings import Embedder
from ..memory.primitive import MemoryPrimitive
from ..memory.records import MemoryRecord
from ..memory.search import SearchMode
from . import missing_extra

try:
    from langchain_core.embeddings import Embeddings
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        IndexConfig,
        InvalidNamespaceError,
        Item,
        ListNamespacesOp,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
    )
    from langgraph.store.base.embed import ensure_embeddings, get_text_at_path
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra("langgraph", "langgraph") from exc

__all__ = ["MemoryStore"]

_TTL_FIELD = "__langgraph_ttl__"  # metadata: the item's TTL in minutes, for refreshes
_PAGE = 100


class _LangChainEmbedder:
    """This library's embedder protocol over a LangChain ``Embeddings``."""

    def __init__(self, embeddings: Embeddings, dims: int | None) -> None:
        self._embeddings = embeddings
        self.name = f"langchain:{type(embeddings).__qualname__}"
        if dims is not None:
            self.dimensions = dims

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._embeddings.aembed_documents(list(texts))

    async def embed_query(self, text: str) -> list[float]:
        return await self._embeddings.aembed_query(text)


def _embedder(index: IndexConfig) -> Embedder:
    embed = index.get("embed")
    if embed is None:
        raise ValueError("index needs an 'embed': an Embeddings, a function or a model string")
    dims = index.get("dims")
    if isinstance(embed, Embeddings):
        return _LangChainEmbedder(embed, dims)
    ours = getattr(embed, "embed_documents", None) or getattr(embed, "embed", None)
    if ours is not None and inspect.iscoroutinefunction(ours):
        return embed  # type: ignore[return-value]
    return _LangChainEmbedder(ensure_embeddings(embed), dims)


def _validate_labels(namespace: object, empty_ok: bool) -> tuple[str, ...]:
    """LangGraph's namespace rules (``InvalidNamespaceError``)."""
    if not isinstance(namespace, tuple):
        raise InvalidNamespaceError(f"Namespace must be a tuple of str, got {namespace!r}")
    if not namespace and not empty_ok:
        raise InvalidNamespaceError("Namespace cannot be empty.")
    for label in namespace:
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"Invalid namespace label {label!r} found in {namespace}: labels must be str"
            )
        if not label:
            raise InvalidNamespaceError(f"Namespace labels cannot be empty strings: {namespace}")
        if "." in label:
            raise InvalidNamespaceError(
                f"Invalid namespace label {label!r} found in {namespace}: labels cannot "
                "contain periods ('.')"
            )
    return namespace


def _fields(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The value's fields as metadata: nested dicts' fields under dotted names."""
    out: dict[str, Any] = {}
    for name, field in value.items():
        if isinstance(field, dict) and field:
            out.update(_fields(field, f"{prefix}{name}."))
        else:
            out[prefix + name] = field
    return out


def _filter(filter: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any] | None:
    """A LangGraph filter on item values as a filter on the metadata of :func:`_fields`."""
    if not filter:
        return None
    out: dict[str, Any] = {}
    for name, condition in filter.items():
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            out[prefix + name] = dict(condition)
        elif isinstance(condition, dict) and condition:
            out.update(_filter(condition, f"{prefix}{name}.") or {})
        else:
            out[prefix + name] = condition
    return out


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _item(namespace: tuple[str, ...], record: MemoryRecord) -> Item:
    return Item(
        value=record.value,
        key=record.key,
        namespace=namespace,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
    )


def _search_item(namespace: tuple[str, ...], record: MemoryRecord, score: float | None) -> Any:
    return SearchItem(
        namespace=namespace,
        key=record.key,
        value=record.value,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
        score=score,
    )


class MemoryStore(BaseStore):
    """A LangGraph store over a :class:`MemoryPrimitive` (see the module docstring).

    Args:
        memory: The memory whose backend holds the items and whose namespace is the root
            of every LangGraph namespace. None: a new in-process memory (unbounded, like
            ``InMemoryStore``), closed by :meth:`close`.
        index: LangGraph's ``IndexConfig`` (``dims``, ``embed``, ``fields``): semantic
            search. None: the memory's own embedder, if any, and keyword search otherwise.
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` in minutes, ``refresh_on_read``).
        mode: Search mode for queries (default: ``semantic`` with ``index``, the memory's
            default otherwise).

    Raises:
        TypeError: ``memory`` is not a MemoryPrimitive.
        ValueError: An ``index`` without ``embed``.
    """

    supports_ttl = True

    def __init__(
        self,
        memory: MemoryPrimitive | None = None,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        mode: SearchMode | None = None,
    ) -> None:
        if memory is not None and not isinstance(memory, MemoryPrimitive):
            raise TypeError(f"memory must be a MemoryPrimitive, got {type(memory).__name__}")
        self._owned = memory is None
        base = MemoryPrimitive(max_size=None, name="langgraph_store") if memory is None else memory
        self._root = base
        self.index_config = None if index is None else dict(index)
        self.ttl_config = ttl
        self._fields: list[str] | None = None
        if index is not None:
            base = base.with_embedder(_embedder(index))
            fields = index.get("fields")
            self._fields = None if not fields or list(fields) == ["$"] else list(fields)
            mode = mode or "semantic"
        self._mode = mode
        self._memory = base
        self._sync = base.sync()

    @property
    def memory(self) -> MemoryPrimitive:
        """The memory the store reads and writes (its namespace is the root)."""
        return self._memory

    def close(self) -> None:
        """Close the in-process memory the store built (a given memory stays open)."""
        if self._owned:
            self._root.sync().close()

    # -- BaseStore -------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order, blocking (on the memory's loop thread)."""
        return self._sync.run(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order (on the memory's loop thread)."""
        return await self._sync.arun(self._batch(list(ops)))

    async def _batch(self, ops: list[Op]) -> list[Result]:
        for op in ops:  # every namespace is checked before anything runs
            if isinstance(op, GetOp):
                _validate_labels(op.namespace, empty_ok=True)
            elif isinstance(op, PutOp):
                _validate_labels(op.namespace, empty_ok=False)
            elif isinstance(op, SearchOp):
                _validate_labels(op.namespace_prefix, empty_ok=True)
            elif isinstance(op, ListNamespacesOp):
                for condition in op.match_conditions or ():
                    _validate_labels(tuple(p for p in condition.path if p != "*"), True)
            else:
                raise ValueError(f"Unknown operation type: {type(op).__name__}")
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, PutOp):
                await self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            else:
                results.append(await self._list_namespaces(op))
        return results

    # -- operations ------------------------------------------------------------------------

    def _view(self, namespace: tuple[str, ...]) -> MemoryPrimitive:
        return self._memory.scoped(*namespace) if namespace else self._memory

    async def _refresh(self, view: MemoryPrimitive, record: MemoryRecord) -> None:
        minutes = record.metadata.get(_TTL_FIELD)
        if isinstance(minutes, int | float) and not isinstance(minutes, bool):
            with contextlib.suppress(KeyError):  # deleted or expired meanwhile
                await view.update(record.key, ttl=float(minutes) * 60.0)

    def _refreshes(self, requested: bool) -> bool:
        if not requested:
            return False
        return True if self.ttl_config is None else self.ttl_config.get("refresh_on_read", True)

    async def _get(self, op: GetOp) -> Item | None:
        if not op.namespace:
            return None
        view = self._memory.scoped(*op.namespace)
        record = await view.get_record(op.key)
        if record is None:
            return None
        if self._refreshes(op.refresh_ttl):
            await self._refresh(view, record)
        return _item(op.namespace, record)

    async def _put(self, op: PutOp) -> None:
        view = self._memory.scoped(*op.namespace)
        if op.value is None:
            await view.delete(op.key)
            return
        if not isinstance(op.value, Mapping):
            raise TypeError(f"value must be a dict, got {type(op.value).__name__}")
        value = dict(op.value)
        metadata = _fields(value)
        seconds = None
        if op.ttl is not None:
            metadata[_TTL_FIELD] = op.ttl
            seconds = float(op.ttl) * 60.0
        await view.add(op.key, value, ttl=seconds, metadata=metadata, embed=self._embed(op, value))

    def _embed(self, op: PutOp, value: dict[str, Any]) -> bool | str:
        """What the memory embeds for a put: the item (True), chosen paths' text, or nothing."""
        if op.index is False:
            return False
        fields = self._fields if op.index is None else list(op.index)
        if fields is None or fields == ["$"]:
            return True
        texts = [text for path in fields for text in get_text_at_path(value, path)]
        return " ".join(texts) if texts else False

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = op.namespace_prefix
        view = self._view(prefix)
        filter_ = _filter(op.filter)
        want = op.offset + op.limit
        if want <= 0:
            return []
        found: list[tuple[tuple[str, ...], str, float | None]] = []
        seen: set[tuple[tuple[str, ...], str]] = set()
        if op.query:
            hits = await view.search(
                op.query, limit=want, mode=self._mode, filter=filter_, subtree=True
            )
            for hit in hits:
                found.append((hit.namespace, hit.key, hit.score))
                seen.add((hit.namespace, hit.key))
        cursor = None
        while len(found) < want:  # the rest, unscored: namespace by namespace, oldest first
            page = await view.list(
                filter=filter_, limit=_PAGE, cursor=cursor, order="oldest", subtree=True
            )
            for record in page.records:
                if (record.namespace, record.key) not in seen:
                    found.append((record.namespace, record.key, None))
                    if len(found) == want:
                        break
            cursor = page.next_cursor
            if cursor is None:
                break
        picked = found[op.offset : want]
        refresh = self._refreshes(op.refresh_ttl)

        async def read(ns: tuple[str, ...], key: str) -> MemoryRecord | None:
            sub = view.scoped(*ns) if ns else view
            record = await sub.get_record(key)
            if record is not None and refresh:
                await self._refresh(sub, record)
            return record

        records = await asyncio.gather(*(read(ns, key) for ns, key, _ in picked))
        return [
            _search_item(prefix + ns, record, score)
            for (ns, _, score), record in zip(picked, records, strict=True)
            if record is not None
        ]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = list(op.match_conditions or ())
        prefixes = [tuple(c.path) for c in conditions if c.match_type == "prefix"]
        suffixes = [tuple(c.path) for c in conditions if c.match_type == "suffix"]
        if len(prefixes) <= 1 and len(suffixes) <= 1:
            found = await self._memory.namespaces(
                prefixes[0] if prefixes else (),
                suffixes[0] if suffixes else None,
                op.max_depth,
            )
        else:  # several conditions of a kind: all must hold, then the depth cut
            from ..memory.tree import match_namespaces

            found = await self._memory.namespaces()
            for path in prefixes:
                found = match_namespaces(found, path, None, None)
            for path in suffixes:
                found = match_namespaces(found, (), path, None)
            found = match_namespaces(found, (), None, op.max_depth)
        return found[op.offset : op.offset + op.limit]
