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
