"""Modes and fusion: which rankings a search runs, and how hybrid search fuses them.

Search phases (the keyword and vector retrievals, the fusion) report to an optional
:class:`PhaseObserver`; without one nothing is observed and nothing is paid for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from .scoring import (
    Scored,
    keyword_evidence,
    relevance,
    semantic_evidence,
    top,
)

__all__ = [
    "DEFAULT_SEMANTIC_WEIGHT",
    "RRF_K",
    "Fusion",
    "PhaseObserver",
    "SearchMode",
    "fuse",
    "fuse_calibrated",
    "fuse_convex",
    "fuse_rrf",
    "fusion_depth",
    "keyword_confidence",
    "rank_by_mode",
    "validate_fusion",
    "validate_semantic_weight",
]


SearchMode = Literal["keyword", "semantic", "hybrid"]
Fusion = Literal["convex", "rrf", "minmax"]
RRF_K = 60
DEFAULT_SEMANTIC_WEIGHT = 0.5


def fusion_depth(limit: int) -> int:
    """How many hits of each retriever hybrid search fuses: ``max(50, 5 * limit)``."""
    return max(50, 5 * limit)


def fuse_rrf(
    rankings: Sequence[Sequence[Scored]], limit: int | None, k: int = RRF_K
) -> list[Scored]:
    """Reciprocal rank fusion: each ranking adds ``1 / (k + rank)`` (rank from 1) to a key."""
    fused: dict[str, list[float]] = {}
    seqs: dict[str, int] = {}
    for ranking in rankings:
        for rank, (_, seq, key) in enumerate(ranking, start=1):
            fused.setdefault(key, []).append(1.0 / (k + rank))
            seqs[key] = seq
    return top(((math.fsum(parts), seqs[key], key) for key, parts in fused.items()), limit)


# Keyword confidence (see fuse_convex): the best hit's share of keyword_bound below which
# keyword evidence counts for nothing, and the share from which it counts fully.
_CONFIDENCE_FLOOR = 0.1
_CONFIDENCE_FULL = 0.4


def keyword_confidence(best: float, bound: float | None) -> float:
    """How much a keyword ranking is worth in fusion, from 0 to 1 (1 without a ``bound``).

    ``best / bound`` is the share of the query's possible score the best hit reached; a
    paraphrase that shares only incidental words ("what", "my") with the records reaches a
    few percent, a query naming what a record holds reaches a third or more. The share is
    mapped linearly from [0.1, 0.4] to [0, 1] and squared, so weak, accidental keyword hits
    cannot reorder what the semantic side found.
    """
    if bound is None or bound <= 0.0:
        return 1.0
    share = (best / bound - _CONFIDENCE_FLOOR) / (_CONFIDENCE_FULL - _CONFIDENCE_FLOOR)
    return min(1.0, max(0.0, share)) ** 2


def fuse_convex(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
) -> list[Scored]:
    """Convex combination of per-query min-max normalized scores.

    Each ranking's scores are mapped to [0, 1] (best 1, worst 0; a ranking whose scores are
    all equal maps to 1), then a record scores ``(1 - w) * c * keyword + w * semantic``, 0 for
    a ranking it is not in, where ``c`` is :func:`keyword_confidence` of the best keyword
    score against ``keyword_bound`` (1 when no bound is given). Raw BM25 and cosine are never
    added: their scales differ per query.
    """
    w = semantic_weight
    confidence = keyword_confidence(keyword[0][0], keyword_bound) if keyword else 1.0
    fused: dict[str, float] = {}
    seqs: dict[str, int] = {}
    for ranking, weight in ((keyword, (1.0 - w) * confidence), (semantic, w)):
        if not ranking:
            continue
        hi = ranking[0][0]
        lo = min(s for s, _, _ in ranking)
        span = hi - lo
        for score, seq, key in ranking:
            part = weight * ((score - lo) / span if span > 0.0 else 1.0)
            fused[key] = fused.get(key, 0.0) + part
            seqs[key] = seq
    return top(((score, seqs[key], key) for key, score in fused.items()), limit)


# The calibrated fusion's keyword confidence: ``min(1, share / 0.15) ** 2`` of the best
# keyword hit's share of keyword_bound. A paraphrase shares only incidental words with the
# records ("what", "my") and reaches a few percent: its keyword evidence counts for little.
_EVIDENCE_FULL = 0.15


def fuse_calibrated(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
    depth: int | None = None,
) -> list[Scored]:
    """Convex combination of calibrated evidence: ``(1 - w) * c * k + w * s``, scored by
    :func:`relevance`.

    ``k`` is :func:`keyword_evidence` (against ``keyword_bound``; without one, the best keyword
    score stands for it) and ``s`` :func:`semantic_evidence`. Unlike per-query min-max, the
    evidence does not depend on the other hits, so the best hit of an unrelated query scores
    low. A record missing from a ranking gets the evidence of that ranking's last hit when the
    ranking was cut at ``depth`` (it scored at most that), else of a score of zero (it did
    not match at all). ``c`` is ``min(1, share / 0.15) ** 2``, ``share`` being the best
    keyword hit's share of the bound: words in common by accident, as in a paraphrase, reach
    a few percent and count for little; a query naming what a record holds counts fully.
    """
    w = semantic_weight
    bound = keyword_bound
    if bound is None or bound <= 0.0:
        bound = keyword[0][0] if keyword else 1.0
    share = keyword[0][0] / bound if keyword else 0.0
    c = min(1.0, share / _EVIDENCE_FULL) ** 2
    kw = {key: keyword_evidence(score, bound) for score, _, key in keyword}
    sem = {key: semantic_evidence(score) for score, _, key in semantic}
    seqs = {key: seq for _, seq, key in keyword}
    seqs.update((key, seq) for _, seq, key in semantic)
    cut = depth if depth is not None else math.inf
    kw_missing = min(kw.values()) if kw and len(kw) >= cut else keyword_evidence(0.0, bound)
    sem_missing = min(sem.values()) if sem and len(sem) >= cut else semantic_evidence(0.0)
    kw_weight = (1.0 - w) * c
    return top(
        (
            (
                relevance(kw_weight * kw.get(key, kw_missing) + w * sem.get(key, sem_missing)),
                seq,
                key,
            )
            for key, seq in seqs.items()
        ),
        limit,
    )


def _calibrate(ranked: list[Scored], evidence: Callable[[float], float]) -> list[Scored]:
    return [(relevance(evidence(s)), seq, key) for s, seq, key in ranked]


def fuse(
    keyword: Sequence[Scored],
    semantic: Sequence[Scored],
    limit: int | None,
    *,
    fusion: Fusion = "convex",
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    keyword_bound: float | None = None,
    depth: int | None = None,
) -> list[Scored]:
    """Fuse a keyword and a semantic ranking with the chosen method (``depth``: where each
    ranking was cut, see :func:`fuse_calibrated`)."""
    if fusion == "rrf":
        return fuse_rrf([keyword, semantic], limit)
    if fusion == "minmax":
        return fuse_convex(keyword, semantic, limit, semantic_weight, keyword_bound)
    return fuse_calibrated(keyword, semantic, limit, semantic_weight, keyword_bound, depth)


def validate_semantic_weight(weight: object, arg: str = "semantic_weight") -> float:
    """Return ``weight`` as a float if it is a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise TypeError(f"{arg} must be a number in [0, 1], got {type(weight).__name__}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{arg} must be in [0, 1], got {weight!r}")
    return float(weight)


def validate_fusion(fusion: object, arg: str = "fusion") -> Fusion:
    """Return ``fusion`` if it is ``"convex"``, ``"rrf"`` or ``"minmax"``."""
    if fusion == "convex" or fusion == "rrf" or fusion == "minmax":
        return fusion
    raise ValueError(f"{arg} must be 'convex', 'rrf' or 'minmax', got {fusion!r}")


class PhaseObserver(Protocol):
    """Where the phases of a search report: each phase runs inside :meth:`phase`.

    The phases are ``keyword``, ``vector`` and ``fuse``; ``run`` computes the phase's hits
    and the observer returns them (telemetry wraps it in a span, see
    :mod:`tta_dev_primitives.memory.instrumentation`). A search given no observer runs each
    phase directly: observing costs nothing when nobody listens.
    """

    def phase(self, name: str, run: Callable[[], list[Scored]]) -> list[Scored]:
        """Run one phase (``run``) and return its hits."""
        ...


class _Direct:
    """The observer of a search nobody observes: it runs each phase as it is."""

    __slots__ = ()

    def phase(self, name: str, run: Callable[[], list[Scored]]) -> list[Scored]:
        return run()


_DIRECT = _Direct()


def rank_by_mode(
    mode: SearchMode,
    limit: int,
    keyword: Callable[[int | None], list[Scored]],
    semantic: Callable[[int | None], list[Scored]],
    *,
    fusion: Fusion = "convex",
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    phases: PhaseObserver | None = None,
    keyword_bound: Callable[[], float] | None = None,
    recency: Callable[[str], float] | None = None,
    raw: bool = False,
) -> list[Scored]:
    """Run the ranking(s) a mode needs; hybrid fuses each retriever's best
    :func:`fusion_depth` hits (a retriever may return more: only that many are used).
    ``keyword_bound`` gives the query's :func:`~.scoring.keyword_bound` (after ``keyword``
    ran). Scores come out calibrated (:func:`~.scoring.relevance`), except with ``rrf``
    fusion.

    ``recency`` (a key's :func:`~.scoring.recency_weight`) multiplies each hit's final score
    before the best ``limit`` are kept: keyword and semantic mode weigh every hit, hybrid
    mode every fused hit (of the same :func:`fusion_depth` candidates as without it).

    With ``phases`` (pass one only while someone listens), each part of a semantic or hybrid
    search runs as a phase of it: ``keyword``, ``vector``, ``fuse`` (a keyword search has
    one part: no phase).

    ``raw`` (keyword and semantic mode, without ``recency``) leaves the retriever's own
    scores uncalibrated, for a caller that fuses rankings itself.
    """
    if raw and mode != "hybrid" and recency is None:
        if mode == "keyword":
            return keyword(limit)
        if phases is None:
            return semantic(limit)
        return phases.phase("vector", lambda: semantic(limit))
    if recency is not None:
        if mode == "keyword":
            ranked = _keyword_relevance(keyword(None), keyword_bound)
        elif mode == "semantic":
            ranked = _calibrate(semantic(None), semantic_evidence)
        else:
            ranked = _hybrid(
                limit, None, keyword, semantic, fusion, semantic_weight, phases, keyword_bound
            )
        return top(((s * recency(key), seq, key) for s, seq, key in ranked), limit)
    if mode == "keyword":
        return _keyword_relevance(keyword(limit), keyword_bound)  # one part: no phase
    if mode == "semantic":
        if phases is None:
            return _calibrate(semantic(limit), semantic_evidence)
        return _calibrate(phases.phase("vector", lambda: semantic(limit)), semantic_evidence)
    return _hybrid(limit, limit, keyword, semantic, fusion, semantic_weight, phases, keyword_bound)


def _keyword_relevance(
    ranked: list[Scored], keyword_bound: Callable[[], float] | None
) -> list[Scored]:
    if not ranked or keyword_bound is None:
        return ranked
    bound = keyword_bound()
    return _calibrate(ranked, lambda s: keyword_evidence(s, bound))


def _hybrid(
    limit: int,
    fused_limit: int | None,
    keyword: Callable[[int | None], list[Scored]],
    semantic: Callable[[int | None], list[Scored]],
    fusion: Fusion,
    semantic_weight: float,
    phases: PhaseObserver | None,
    keyword_bound: Callable[[], float] | None,
) -> list[Scored]:
    observer: PhaseObserver = _DIRECT if phases is None else phases  # closures: ~1 µs
    depth = fusion_depth(limit)
    kw = observer.phase("keyword", lambda: keyword(depth)[:depth])
    sem = observer.phase("vector", lambda: semantic(depth)[:depth])
    bound = None if keyword_bound is None else keyword_bound()
    return observer.phase(
        "fuse",
        lambda: fuse(
            kw,
            sem,
            fused_limit,
            fusion=fusion,
            semantic_weight=semantic_weight,
            keyword_bound=bound,
            depth=depth,
        ),
    )
