"""The writer seam: user input turned into what a backend stores.

One :class:`RecordWriter` per primitive (and per view with another embedder) validates and
encodes keys, values, ttls and metadata, and embeds values into unit float32 vectors
(normalized here, once: backends store them as given); filters are checked by the one
validator of the filter language, :func:`~tta_dev_primitives.memory.search.validate_filter`.
The primitive's handlers, compaction, history and import all write through it, so a
record is checked and embedded the same way whatever path writes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from . import codec
from .backends.base import MemoryBackend, VectorBackend
from .embeddings import Embedder, embed_documents, embedder_space, refuse_zero_vectors
from .errors import MemoryBackendError
from .records import NO_EXPIRY, Entry, Namespace
from .search import normalize_vector, string_leaves

__all__ = ["RecordWriter", "validate_part"]

_VECTORS_CHECKED_MAX = 4096


class RecordWriter:
    """Turns user input into validated :class:`Entry` objects, vectors and ttls.

    Args:
        embedder: The embedder of the records written (None: no vectors).
        max_value_bytes: Largest accepted value, as UTF-8 JSON.
        default_ttl: Seconds records live when no ttl is given (None: forever).
        vectors_checked: Namespaces already checked for another embedder's vectors (a dict
            used as a bounded set, shared by a primitive's views).
    """

    __slots__ = ("default_ttl", "embedder", "max_value_bytes", "vectors_checked")

    def __init__(
        self,
        embedder: Embedder | None,
        max_value_bytes: int,
        default_ttl: float | None,
        vectors_checked: dict[Namespace, None],
    ) -> None:
        self.embedder = embedder
        self.max_value_bytes = max_value_bytes
        self.default_ttl = default_ttl
        self.vectors_checked = vectors_checked

    def with_embedder(self, embedder: Embedder | None) -> RecordWriter:
        """The same writer with another embedder."""
        return RecordWriter(embedder, self.max_value_bytes, self.default_ttl, self.vectors_checked)

    def ttl(self, ttl: Any) -> float | None:
        """A validated ttl: ``default_ttl`` for None, None (never) for ``NO_EXPIRY``."""
        if ttl is None:
            return self.default_ttl
        if ttl is NO_EXPIRY:
            return None
        return codec.validate_ttl(ttl)

    def settings(self, ttl: Any, metadata: Any) -> tuple[float | None, Any]:
        """The validated ttl and metadata of records to write."""
        # The common ttl=None inline: this runs on every add.
        ttl = self.default_ttl if ttl is None else self.ttl(ttl)
        return ttl, None if metadata is None else codec.validate_metadata(metadata)

    def entry(
        self,
        key: Any,
        value: Any,
        ttl: float | None,
        meta: Any,
        item: int | None = None,
        index_text: Any = None,
    ) -> Entry:
        """Validate and encode one record to write (raises before anything is stored).

        ``item`` is the index of an ``add_many`` item, which errors name; ``index_text`` the
        record's extra indexed text (None: none).
        """
        if item is None:
            key = codec.validate_key(key)
            payload, snap = codec.encode_snapshot(value, self.max_value_bytes)
        else:
            key = codec.validate_key(key, f"items[{item}] key")
            payload, snap = codec.encode_snapshot(
                value, self.max_value_bytes, f"items[{item}] value"
            )
        if index_text is None:
            return Entry(key, payload, meta, ttl, snapshot=snap)
        arg = "index_text" if item is None else f"index_text[{key!r}]"
        text = self.index_text(index_text, arg)
        return Entry(key, payload, meta, ttl, snapshot=snap, index_text=text)

    def index_text(self, text: Any, arg: str = "index_text") -> str | None:
        """A validated index text (None: none; ``""`` is none too)."""
        return codec.validate_index_text(text, self.max_value_bytes, arg)

    def encode(self, value: Any, arg: str = "value") -> tuple[str, Any]:
        """A value's JSON payload and snapshot (raises when it is not JSON or too large)."""
        return codec.encode_snapshot(value, self.max_value_bytes, arg)

    async def embedded(self, entries: list[Entry], values: Sequence[Any]) -> list[Entry]:
        """``entries`` with the embedder's vectors of ``values`` (as is without an embedder)."""
        if self.embedder is None:
            return entries
        vectors = await self.embed(values)
        return [
            Entry(
                e.key,
                e.payload,
                e.metadata,
                e.ttl,
                v,
                snapshot=e.snapshot,
                space=self.space(v),
                index_text=e.index_text,
            )
            for e, v in zip(entries, vectors, strict=True)
        ]

    async def embed(self, values: Sequence[Any]) -> list[Any]:
        """Unit float32 vectors of the values' text, one embedder call for all of them
        (normalized here once: backends store them as given)."""
        if self.embedder is None:
            return [None] * len(values)
        texts = [" ".join(string_leaves(v)) for v in values]
        vectors = await embed_documents(self.embedder, texts)
        if len(vectors) != len(texts):
            raise ValueError("embedder returned a different number of vectors than texts")
        out = [normalize_vector(v) for v in vectors]
        refuse_zero_vectors(self.embedder, texts, out)
        return out

    def space(self, vector: Any) -> tuple[str, int] | None:
        """The (embedder name, dimensions) of a vector this writer made (None: no vector)."""
        return None if vector is None else embedder_space(self.embedder, len(vector))

    async def warn_if_vectors(self, backend: MemoryBackend, namespace: Namespace) -> None:
        """Once per namespace: warn when this writer, which has no embedder, writes into a
        namespace whose records carry vectors (what it writes has none, so semantic search
        never finds it)."""
        checked = self.vectors_checked
        if namespace in checked or not isinstance(backend, VectorBackend):
            return
        try:
            space = (await backend.get_vectors(namespace, [])).space
        except MemoryBackendError:
            return  # the write itself will say what failed
        if len(checked) >= _VECTORS_CHECKED_MAX:
            checked.clear()
        checked[namespace] = None
        if space is not None:
            warnings.warn(
                f"namespace {'/'.join(namespace)!r} holds records with vectors of embedder "
                f"{space[0]!r} ({space[1]} dimensions), but this MemoryPrimitive has no "
                "embedder: the records it writes there carry no vector, so semantic search "
                f"never finds them; pass embedder= (the {space[0]!r} one)",
                UserWarning,
                stacklevel=2,
            )


def validate_part(part: object, arg: str) -> str:
    """A namespace part: a non-empty str."""
    if not isinstance(part, str):
        raise TypeError(f"{arg} must be a str, got {type(part).__name__}")
    if not part:
        raise ValueError(f"{arg} must not be empty")
    return part
