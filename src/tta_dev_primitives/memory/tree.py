"""Search, list and name the namespaces of a tree: a namespace and every one below it.

What ``search(..., subtree=True)``, ``list(..., subtree=True)`` and ``namespaces(prefix,
suffix, max_depth)`` of :class:`~tta_dev_primitives.memory.MemoryPrimitive` run, on any
backend, through the backend's own per-namespace operations:

* **Which namespaces.** ``backend.namespaces(root)``: the namespaces at or below ``root``
  that hold live records, sorted (as tuples of their parts).
* **Statistics.** Keyword and hybrid searches score every record with the BM25 statistics
  of the union of the tree's records: each namespace's record count, total length and
  per-word document frequencies (:class:`~.search.CorpusStats`, from a
  :class:`~.backends.base.StatsBackend`) are summed (integers: exact, in any order) and
  every namespace ranks its records with the sums. A record therefore scores exactly what
  it would if the whole tree were one namespace. Cosine scores need no statistics.
* **Merging.** Each namespace returns its best ``limit`` (hybrid: its best
  :func:`~.search.fusion_depth` of each side); the union is ordered by score, ties broken
  by namespace (sorted order) and then by the namespace's own order (newest write first),
  so the ranking is deterministic and the same on every backend. Hybrid mode fuses the
  merged keyword and semantic rankings once, with the union's keyword bound, exactly as a
  single namespace fuses its own.
* **Cost.** One ``namespaces`` walk, then two concurrent rounds over the tree's namespaces:
  statistics (keyword and hybrid modes), then the searches; on Redis each namespace's
  statistics and search are a round trip or two to the node holding its hash slot (a
  namespace's keys share one slot, so on a cluster a tree spans several nodes, and the
  rounds go to all of them at once).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from collections.abc import Sequence

from .backends.base import MemoryBackend, StatsBackend
from .records import ListQuery, ListResult, Namespace, Record, SearchQuery, SearchResult
from .search import (
    CorpusStats,
    Scored,
    fuse,
    fusion_depth,
    keyword_bound,
    merge_stats,
)

__all__ = [
    "WILDCARD",
    "TreeHit",
    "decode_tree_cursor",
    "encode_tree_cursor",
    "list_tree",
    "literal_prefix",
    "match_namespaces",
    "search_tree",
    "tree_stats",
]

WILDCARD = "*"
"""In ``namespaces(prefix=..., suffix=...)``, a part that matches any one part."""

TreeHit = tuple[int, SearchResult]
"""(index of the namespace in the tree's sorted list, the hit)."""


async def tree_stats(
    backend: MemoryBackend, namespaces: Sequence[Namespace], query: SearchQuery
) -> CorpusStats | None:
    """The union's BM25 statistics (None when the backend cannot tell them)."""
    if not isinstance(backend, StatsBackend):
        return None
    parts = await asyncio.gather(*(backend.search_stats(ns, query) for ns in namespaces))
    return merge_stats(parts)


def _merged(lists: Sequence[Sequence[SearchResult]], limit: int) -> list[TreeHit]:
    """The best ``limit`` of per-namespace rankings: score, then namespace, then its order."""
    flat = [
        (-hit.score, i, pos, hit) for i, hits in enumerate(lists) for pos, hit in enumerate(hits)
    ]
    flat.sort(key=lambda item: item[:3])
    return [(i, hit) for _, i, _, hit in flat[:limit]]


async def search_tree(
    backend: MemoryBackend, namespaces: Sequence[Namespace], query: SearchQuery
) -> list[TreeHit]:
    """Search every namespace of ``namespaces`` (sorted) as one: see the module docstring.

    ``query`` is validated; with ``mode="hybrid"`` it carries no ``recency_half_life``.
    """
    if not namespaces:
        return []
    if len(namespaces) == 1:  # one namespace: its own statistics are the union's
        return [(0, hit) for hit in await backend.search(namespaces[0], query)]
    stats = None
    if query.mode != "semantic":
        stats = await tree_stats(backend, namespaces, query)
    if query.mode != "hybrid":
        per_ns = dataclasses.replace(query, stats=stats)
        lists = await asyncio.gather(*(backend.search(ns, per_ns) for ns in namespaces))
        return _merged(lists, query.limit)
    depth = fusion_depth(query.limit)
    # Each side's own scores (BM25, cosine), fused once as a one-namespace hybrid search does.
    kw_query = dataclasses.replace(query, mode="keyword", limit=depth, stats=stats, raw=True)
    sem_query = dataclasses.replace(query, mode="semantic", limit=depth, raw=True)
    kw_lists, sem_lists = await asyncio.gather(
        asyncio.gather(*(backend.search(ns, kw_query) for ns in namespaces)),
        asyncio.gather(*(backend.search(ns, sem_query) for ns in namespaces)),
    )
    keyword = _merged(kw_lists, depth)
    semantic = _merged(sem_lists, depth)
    # Fusion ranks (score, seq, key) tuples, ties to the higher seq: a tree-wide id per hit,
    # and a seq that puts earlier namespaces, then each one's earlier hits, first.
    hits: dict[str, TreeHit] = {}
    order: dict[str, int] = {}
    stride = 2 * depth + 1
    positions = [0] * len(namespaces)

    def scored(ranking: list[TreeHit]) -> list[Scored]:
        out: list[Scored] = []
        for i, hit in ranking:
            tid = f"{i}:{hit.key}"
            if tid not in hits:
                hits[tid] = (i, hit)
                order[tid] = -(i * stride + positions[i])
                positions[i] += 1
            out.append((hit.score, order[tid], tid))
        return out

    kw_scored = scored(keyword)
    sem_scored = scored(semantic)
    bound = None
    prepared = query.prepared()
    if stats is not None and prepared is not None:
        bound = keyword_bound(prepared, stats.df, stats.n_docs)
    fused = fuse(
        kw_scored,
        sem_scored,
        query.limit,
        fusion=query.fusion,
        semantic_weight=query.semantic_weight,
        keyword_bound=bound,
        depth=depth,
    )
    out = []
    for score, _, tid in fused:
        i, hit = hits[tid]
        out.append((i, hit._replace(score=score)))
    return out


def encode_tree_cursor(
    order: str, namespace: Namespace, horizon: int | None, after: int | None
) -> str:
    """The ``next_cursor`` of a walk of a tree: where it goes on (namespace relative to the
    walk's root, and the page position within it)."""
    raw = json.dumps([order[0], list(namespace), horizon, after], separators=(",", ":"))
    return "t" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_tree_cursor(cursor: str, order: str) -> tuple[Namespace, int | None, int | None]:
    """(namespace, horizon, after) of a cursor from :func:`encode_tree_cursor`.

    Raises:
        ValueError: Not such a cursor, or one of a walk in the other order.
    """
    try:
        text = base64.urlsafe_b64decode(cursor[1:] + "=" * (-len(cursor[1:]) % 4)).decode()
        kind, parts, horizon, after = json.loads(text)
        if (
            not cursor.startswith("t")
            or kind not in ("n", "o")
            or not isinstance(parts, list)
            or not all(isinstance(p, str) and p for p in parts)
            or not all(v is None or (isinstance(v, int) and v >= 0) for v in (horizon, after))
        ):
            raise ValueError("malformed")
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError) as exc:
        raise ValueError(
            f"cursor {cursor[:40]!r} is not a next_cursor of list(subtree=True)"
        ) from exc
    if kind != order[0]:
        raise ValueError(
            f"cursor {cursor[:40]!r} continues a walk in the other order; pass order= as before"
        )
    return tuple(parts), horizon, after


async def list_tree(
    backend: MemoryBackend,
    root: Namespace,
    namespaces: Sequence[Namespace],
    query: ListQuery,
    start: tuple[Namespace, int | None, int | None] | None,
) -> tuple[list[tuple[Namespace, Record]], str | None]:
    """One page of the records of ``namespaces`` (sorted, absolute; every one at or below
    ``root``): namespace by namespace in sorted order, each in write order.

    ``start`` is a decoded cursor (namespace relative to ``root``, horizon, after); None
    starts at the first namespace. Returns the page as (relative namespace, record) pairs
    and the next cursor (None after the last record).
    """
    n = len(root)
    rel = [ns[n:] for ns in namespaces]
    first = 0
    horizon = after = None
    if start is not None:
        at, horizon, after = start
        while first < len(rel) and rel[first] < at:
            first += 1
        if first < len(rel) and rel[first] != at:
            horizon = after = None  # that namespace is gone: the next one, from its start
    out: list[tuple[Namespace, Record]] = []
    for i in range(first, len(rel)):
        want = query.limit - len(out)
        result: ListResult = await backend.list(
            namespaces[i], query._replace(limit=want, after=after, horizon=horizon)
        )
        out.extend((rel[i], record) for record in result.records)
        if len(out) >= query.limit:
            if result.more and result.records:
                cursor = encode_tree_cursor(
                    query.order, rel[i], result.horizon, result.records[-1].seq
                )
                return out, cursor
            if i + 1 < len(rel):
                return out, encode_tree_cursor(query.order, rel[i + 1], None, None)
            return out, None
        horizon = after = None
    return out, None


def _matches(parts: Namespace, pattern: Sequence[str]) -> bool:
    return all(p in (WILDCARD, q) for p, q in zip(pattern, parts, strict=False))


def match_namespaces(
    found: Sequence[Namespace],
    prefix: Sequence[str],
    suffix: Sequence[str] | None,
    max_depth: int | None,
) -> list[Namespace]:
    """``found`` (relative namespaces) that start with ``prefix`` and end with ``suffix``
    (``*`` matches any one part), cut to ``max_depth`` parts, without duplicates, sorted."""
    out: set[Namespace] = set()
    for ns in found:
        if len(ns) < len(prefix) or not _matches(ns, prefix):
            continue
        if suffix and (len(ns) < len(suffix) or not _matches(ns[len(ns) - len(suffix) :], suffix)):
            continue
        out.add(ns if max_depth is None else ns[:max_depth])
    return sorted(out)


def literal_prefix(prefix: Sequence[str]) -> Namespace:
    """The parts of ``prefix`` before its first wildcard (what a backend can narrow by)."""
    out: list[str] = []
    for part in prefix:
        if part == WILDCARD:
            break
        out.append(part)
    return tuple(out)
