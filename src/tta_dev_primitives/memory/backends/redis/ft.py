"""The Redis Query Engine's commands as the backend sends them, and its replies read (RESP2
lists or RESP3 maps); see :mod:`~tta_dev_primitives.memory.backends.redis.query_engine`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "aggregate_keys",
    "best",
    "indexed",
    "knn",
    "newest",
    "pairs",
    "search_ids",
    "TEXT_FIELD",
    "has_text_field",
    "unknown_index",
    "variants",
    "vector_dims",
    "vector_field",
]


def knn(name: bytes, k: int, ef: int, blob: bytes, ms: int) -> tuple[Any, ...]:
    """The ``k`` nearest records to the float32 vector ``blob`` (keys only)."""
    return (
        "FT.SEARCH", name, f"*=>[KNN {k} @e $q EF_RUNTIME {ef}]", "PARAMS", 2, "q", blob,
        "NOCONTENT", "LIMIT", 0, k, "TIMEOUT", ms, "DIALECT", 2,
    )  # fmt: skip


def best(name: bytes, text: str, width: int, ms: int) -> tuple[Any, ...]:
    # FT.SEARCH breaks score ties oldest first; the shared engine breaks them newest first
    # (higher write sequence): sort by score, then by s, and load only the keys kept.
    return (
        "FT.AGGREGATE", name, text, "ADDSCORES", "SCORER", "BM25STD",
        "SORTBY", 4, "@__score", "DESC", "@s", "DESC", "MAX", width,
        "LOAD", 1, "@__key", "TIMEOUT", ms, "DIALECT", 2,
    )  # fmt: skip


def newest(name: bytes, text: str, width: int, ms: int) -> tuple[Any, ...]:
    return (
        "FT.SEARCH", name, text, "NOCONTENT", "SORTBY", "s", "DESC",
        "LIMIT", 0, width, "TIMEOUT", ms, "DIALECT", 2,
    )  # fmt: skip


# A record's index text (extra text indexed with it, not part of its value), found like it.
TEXT_FIELD = ("t", "TEXT", "NOSTEM")


def has_text_field(info: Mapping[bytes, Any]) -> bool:
    """Whether the index has the index-text field ``t``."""
    return any(b"t" in list(_flatten(a)) for a in info.get(b"attributes", []))


def vector_field(dims: int) -> list[Any]:
    return [
        "e", "VECTOR", "HNSW", 10, "TYPE", "FLOAT32", "DIM", dims,
        "DISTANCE_METRIC", "COSINE", "M", 16, "EF_CONSTRUCTION", 200,
    ]  # fmt: skip


def variants(terms: Iterable[str]) -> list[str]:
    """Query words as the Query Engine may have indexed them (it folds ASCII case only)."""
    out: dict[str, None] = {}
    for term in terms:
        out[term] = None
        if not term.isascii():
            out[term.upper()] = None
            out[term.capitalize()] = None
    return list(out)


def pairs(reply: Any) -> dict[bytes, Any]:
    """A RESP3 map or a RESP2 flat list of pairs, as a dict."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=False))


def _flatten(item: Any) -> Iterable[Any]:
    if isinstance(item, dict):
        for k, v in item.items():
            yield k
            yield from _flatten(v)
    elif isinstance(item, list | tuple):
        for v in item:
            yield from _flatten(v)
    else:
        yield item


def vector_dims(info: Mapping[bytes, Any]) -> int | None:
    """The dimension of the index's vector field, None without one."""
    for attribute in info.get(b"attributes", []):
        flat = list(_flatten(attribute))
        if b"VECTOR" in flat:
            for i, item in enumerate(flat[:-1]):
                if item in (b"dim", b"DIM"):
                    return int(flat[i + 1])
            return -1  # a vector field whose dimension this version does not show
    return None


def indexed(info: Mapping[bytes, Any]) -> bool:
    indexing = info.get(b"indexing", 0)
    percent = info.get(b"percent_indexed", 1)
    return int(float(indexing)) == 0 and math.isclose(float(percent), 1.0)


def search_ids(reply: Any) -> tuple[int, list[bytes]]:
    """(total, ids) of an ``FT.SEARCH ... NOCONTENT`` reply (RESP3 map or RESP2 list)."""
    if isinstance(reply, dict):
        return int(reply[b"total_results"]), [r[b"id"] for r in reply[b"results"]]
    return int(reply[0]), list(reply[1:])


def aggregate_keys(reply: Any) -> tuple[int, list[bytes]]:
    """(total, keys) of an ``FT.AGGREGATE ... LOAD 1 @__key`` reply (RESP3 or RESP2)."""
    # A row loads nothing (no attributes) when its record expired or went meanwhile.
    if isinstance(reply, dict):
        rows = [r.get(b"extra_attributes") or {} for r in reply[b"results"]]
        return int(reply[b"total_results"]), [r[b"__key"] for r in rows if b"__key" in r]
    keys = []
    for row in reply[1:]:
        fields = pairs(row or [])
        if b"__key" in fields:
            keys.append(fields[b"__key"])
    return int(reply[0]), keys


def unknown_index(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unknown index" in text or "no such index" in text or "not found" in text
