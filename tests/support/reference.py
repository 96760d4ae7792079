"""An independent reference memory: the documented semantics, by brute force.

It shares no storage, index or backend code with the library: records live in an
``OrderedDict`` (LRU order, ``get`` refreshes, ``max_size`` evicts the least recently used),
and every search scores every live record one at a time with the pure scoring functions of
:mod:`tta_dev_primitives.memory.search` (the definition of the ranking). The conformance
suite compares every backend with it, the in-memory backend included.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from tta_dev_primitives import SearchHit
from tta_dev_primitives.memory import search as S


class ReferenceMemory:
    """What a namespace of any backend must answer, for records written in the same order."""

    def __init__(self, max_size: int | None = None, embedder: Any = None) -> None:
        self.max_size = max_size
        self.embedder = embedder
        self._records: OrderedDict[str, tuple[Any, dict[str, Any] | None, int, S.Document]] = (
            OrderedDict()
        )
        self._seq = itertools.count(1)

    async def _vector(self, text: str) -> Any:
        if self.embedder is None:
            return None
        (vector,) = await self.embedder.embed([text])
        return vector

    async def add(self, key: str, value: Any, metadata: Mapping[str, Any] | None = None) -> None:
        vector = await self._vector(" ".join(S.string_leaves(value)))
        doc = S.make_document(value, vector)
        meta = None if metadata is None else copy.deepcopy(dict(metadata))
        self._records.pop(key, None)
        self._records[key] = (copy.deepcopy(value), meta, next(self._seq), doc)
        while self.max_size is not None and len(self._records) > self.max_size:
            self._records.popitem(last=False)

    def get(self, key: str) -> Any:
        if key not in self._records:
            return None
        self._records.move_to_end(key)
        return copy.deepcopy(self._records[key][0])

    def delete(self, key: str) -> bool:
        return self._records.pop(key, None) is not None

    def keys(self) -> list[str]:
        return list(self._records)

    async def search(
        self,
        query: str,
        *,
        limit: int = 5,
        mode: S.SearchMode = "keyword",
        filter: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        prepared = S.prepare_query(query)
        if prepared is None:
            return []
        candidates = [(key, seq, doc, meta) for key, (_, meta, seq, doc) in self._records.items()]
        n_docs = len(candidates)
        total = sum(doc.length for _, _, doc, _ in candidates)
        df = {
            term: sum(1 for _, _, doc, _ in candidates if term in doc.terms)
            for term in prepared.terms
        }
        qvec = await self._vector(query) if mode != "keyword" else None

        def keyword(limit: int | None) -> list[S.Scored]:
            return S.rank_keyword(prepared, candidates, df, n_docs, total, limit, filter)

        def semantic(limit: int | None) -> list[S.Scored]:
            if qvec is None:
                return []
            return S.rank_semantic(S.normalize_vector(qvec), candidates, limit, filter)

        # Hybrid: the embedder's advised weight, and the keyword confidence of the query.
        weight = getattr(self.embedder, "semantic_weight", S.DEFAULT_SEMANTIC_WEIGHT)
        ranked = S.rank_by_mode(
            mode,
            limit,
            keyword,
            semantic,
            semantic_weight=weight,
            keyword_bound=lambda: S.keyword_bound(prepared, df, n_docs),
        )
        return [
            SearchHit(key, copy.deepcopy(self._records[key][0]), score, self._records[key][1])
            for score, _, key in ranked
        ]


_ABSENT = object()


def reference_matches(metadata: dict[str, Any] | None, filter: dict[str, Any]) -> bool:
    """An independent evaluator of the filter language (written from the docs, not the code)."""
    meta = metadata or {}

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        return bool(a == b)

    def ordered(a: Any, b: Any, op: str) -> bool:
        numeric = (int, float)
        if isinstance(b, str):
            if not isinstance(a, str):
                return False
        elif isinstance(a, bool) or not isinstance(a, numeric):
            return False
        return {
            "$gt": a > b,
            "$gte": a >= b,
            "$lt": a < b,
            "$lte": a <= b,
        }[op]

    def field_ok(value: Any, cond: Any) -> bool:
        is_ops = isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)
        if not is_ops:
            return value is not _ABSENT and same(value, cond)
        results = []
        for op, arg in cond.items():
            if op == "$eq":
                results.append(value is not _ABSENT and same(value, arg))
            elif op == "$ne":
                results.append(value is _ABSENT or not same(value, arg))
            elif op == "$in":
                results.append(value is not _ABSENT and any(same(value, x) for x in arg))
            elif op == "$nin":
                results.append(value is _ABSENT or not any(same(value, x) for x in arg))
            elif op == "$exists":
                results.append((value is not _ABSENT) is arg)
            elif op == "$not":
                results.append(not field_ok(value, arg))
            else:
                results.append(value is not _ABSENT and ordered(value, arg, op))
        return all(results)

    verdicts = []
    for key, cond in filter.items():
        if key == "$and":
            verdicts.append(all(reference_matches(meta, f) for f in cond))
        elif key == "$or":
            verdicts.append(any(reference_matches(meta, f) for f in cond))
        elif key == "$not":
            verdicts.append(not reference_matches(meta, cond))
        else:
            verdicts.append(field_ok(meta.get(key, _ABSENT), cond))
    return all(verdicts)
