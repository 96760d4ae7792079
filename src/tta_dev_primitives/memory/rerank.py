"""An optional reranking stage for search: rescore the best hits of any mode.

A reranker scores ``(query, hits)``: it gets the query and the retrieval's best
``RERANK_DEPTH`` hits (at least ``limit``), returns one score per hit (higher is better), and
the hits are reordered by it, best first (ties keep the retrieval's order), before the best
``limit`` are kept. It may be:

* a function ``fn(query, hits) -> scores``, sync (run in a worker thread: rerankers are
  CPU-bound or block on I/O) or async, e.g. a local cross-encoder or an LLM judge;
* a :class:`~tta_dev_primitives.core.base.WorkflowPrimitive` whose input is the pair
  ``(query, hits)`` and whose output is the scores, so a traced pipeline can judge.

Usage::

    def judge(query: str, hits: list[SearchHit]) -> list[float]:
        return [my_model.score(query, str(h.value)) for h in hits]

    memory = MemoryPrimitive(embedder="local", reranker=judge)
    hits = await memory.search("where did we go in May?")   # reranked top 20

A reranked hit's ``score`` is the reranker's; ``min_score`` applies to the calibrated
retrieval score, before reranking.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeAlias, cast

from ..core.base import WorkflowPrimitive
from .records import SearchHit

__all__ = ["RERANK_DEPTH", "Reranker", "rerank", "validate_reranker"]

RERANK_DEPTH = 20
"""How many of the retrieval's best hits a reranker sees (at least the search's ``limit``)."""

RerankFn: TypeAlias = Callable[[str, list[SearchHit]], Sequence[float] | Awaitable[Sequence[float]]]
Reranker: TypeAlias = RerankFn | WorkflowPrimitive[Any, Any]
"""A function ``(query, hits) -> scores`` (sync or async) or a primitive of that pair."""


def validate_reranker(reranker: object, arg: str = "reranker") -> Reranker | None:
    """Return ``reranker`` if it is None, a primitive or a callable.

    Raises:
        TypeError: Anything else, naming ``arg``.
    """
    if reranker is None or isinstance(reranker, WorkflowPrimitive) or callable(reranker):
        return reranker
    raise TypeError(
        f"{arg} must be a callable (query, hits) -> scores or a WorkflowPrimitive, "
        f"got {type(reranker).__name__}"
    )


async def rerank(
    reranker: Reranker, query: str, hits: list[SearchHit], limit: int
) -> list[SearchHit]:
    """``hits`` reordered by ``reranker``'s scores, best first, at most ``limit``.

    Raises:
        ValueError: The reranker returned a different number of scores than hits, or a
            score that is not a finite number.
    """
    if not hits:
        return []
    if isinstance(reranker, WorkflowPrimitive):
        result: Any = await reranker.execute((query, list(hits)))
    elif inspect.iscoroutinefunction(reranker) or inspect.iscoroutinefunction(
        getattr(reranker, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        result = await cast(Awaitable[Sequence[float]], reranker(query, list(hits)))
    else:
        result = await asyncio.to_thread(reranker, query, list(hits))
        if inspect.isawaitable(result):
            result = await result
    scores = [float(s) for s in result]
    if len(scores) != len(hits):
        raise ValueError(f"reranker returned {len(scores)} scores for {len(hits)} hits")
    if not all(math.isfinite(s) for s in scores):
        raise ValueError("reranker returned a score that is not a finite number")
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [replace(hits[i], score=scores[i]) for i in order[:limit]]
