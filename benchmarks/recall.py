"""``make bench-recall`` (``python -m benchmarks.recall``): recall on long conversations.

Retrieval only, no LLM. LoCoMo (snap-research/LoCoMo on GitHub, ``data/locomo10.json``, CC
BY-NC 4.0: used to evaluate, never shipped or committed) holds long two-person conversations
and questions whose evidence is a few dialog turns. Each turn is stored as one record
(``{"text": "<speaker>: <text> [image: <caption>]", "session": n, "date": ...}``) with
``add_many``, one namespace per conversation, and each question of categories 1-4 is asked
with ``search(question, limit=10)``: recall@k is the share of a question's evidence turns in
the top k, hit@k whether any is, MRR@10 and NDCG@10 as usual.

Measured in one run: every mode of ours, bm25s and brute-force dense retrieval with the same
embedder (the baselines), conversation context (each turn stored with the previous turn of
its session in a ``context`` field of its value, so both retrievers see it, or given as
``add_many(..., index_text=)``, the value unchanged; ``--context`` compares more kinds of
context: previous and next turn, the session date), ``min_score``,
an optional reranking stage, query latency (p50/p95, query embedding included) at 10k
records and add throughput.

The data: ``--data PATH`` (a file or a directory holding ``locomo_dev.json`` or
``locomo10.json``), else ``$TTA_LOCOMO``, else ``../shared/datasets/locomo`` next to the
repository. Document embeddings are cached under ``~/.cache/tta-recall`` (or
``$TTA_RECALL_CACHE``), never in the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tta_dev_primitives import MemoryPrimitive

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets" / "locomo"
OFFICIAL = "snap-research/LoCoMo on GitHub, data/locomo10.json"
FILES = ("locomo_dev.json", "locomo10.json")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
MODES = ("keyword", "semantic", "hybrid")
K = 10


@dataclass
class Question:
    text: str
    category: int
    evidence: frozenset[str]


@dataclass
class Conversation:
    name: str
    turns: list[tuple[str, dict[str, Any]]]
    questions: list[Question] = field(default_factory=list)


def find_data(arg: str | None = None) -> Path:
    """The LoCoMo file: ``arg``, else ``$TTA_LOCOMO``, else the shared development half.

    Raises:
        FileNotFoundError: None is there; the message says where the data is published.
    """
    for candidate in (arg, os.environ.get("TTA_LOCOMO"), str(SHARED)):
        if not candidate:
            continue
        path = Path(candidate).expanduser()
        if path.is_dir():
            for name in FILES:
                if (path / name).is_file():
                    return path / name
        elif path.is_file():
            return path
        if candidate is arg or candidate == os.environ.get("TTA_LOCOMO"):
            raise FileNotFoundError(f"no LoCoMo file at {path}")
    raise FileNotFoundError(
        "LoCoMo not found: pass --data PATH or set TTA_LOCOMO to the JSON file of "
        f"{OFFICIAL} (CC BY-NC 4.0; keep it out of the repository)"
    )


def turn_text(turn: dict[str, Any]) -> str:
    """``"<speaker>: <text>"`` plus ``" [image: <caption>]"`` when the turn shares one."""
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [image: {turn['blip_caption']}]"
    return text


def conversations(raw: Sequence[dict[str, Any]]) -> list[Conversation]:
    """The conversations of a LoCoMo file, turns in order, questions of categories 1-4."""
    out = []
    for item in raw:
        conv = item["conversation"]
        sessions = sorted(
            int(k.split("_")[1])
            for k in conv
            if k.startswith("session_") and not k.endswith("date_time")
        )
        turns = []
        for n in sessions:
            date = conv.get(f"session_{n}_date_time", "")
            for turn in conv[f"session_{n}"]:
                turns.append(
                    (turn["dia_id"], {"text": turn_text(turn), "session": n, "date": date})
                )
        known = {key for key, _ in turns}
        questions = []
        for qa in item["qa"]:
            evidence = frozenset(e.strip() for e in qa.get("evidence", []) if e.strip() in known)
            if qa.get("category") in CATEGORIES and evidence:
                questions.append(Question(qa["question"], qa["category"], evidence))
        out.append(Conversation(item.get("sample_id", f"conv-{len(out)}"), turns, questions))
    return out


def load(path: Path) -> list[Conversation]:
    return conversations(json.loads(path.read_text(encoding="utf-8")))


def with_context(turns: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The turns, each value with a ``context`` field: the previous turn of its session
    (empty for a session's first turn)."""
    out = []
    for i, (key, value) in enumerate(turns):
        prev = turns[i - 1][1] if i else None
        context = prev["text"] if prev is not None and prev["session"] == value["session"] else ""
        out.append((key, {**value, "context": context}))
    return out


CONTEXTS = {
    "previous": "previous turn",
    "previous+next": "previous and next turn",
    "date": "session date",
    "previous+date": "previous turn and session date",
}


def index_texts(turns: Sequence[tuple[str, dict[str, Any]]], kind: str) -> dict[str, str]:
    """``add_many(..., index_text=)`` for the turns: per turn the context ``kind`` names (see
    :data:`CONTEXTS`), the neighbouring turns of its own session only; the value unchanged."""
    out = {}
    for i, (key, value) in enumerate(turns):
        parts = []
        if "previous" in kind and i and turns[i - 1][1]["session"] == value["session"]:
            parts.append(turns[i - 1][1]["text"])
        if "next" in kind and i + 1 < len(turns) and turns[i + 1][1]["session"] == value["session"]:
            parts.append(turns[i + 1][1]["text"])
        if "date" in kind and value.get("date"):
            parts.append(value["date"])
        if parts:
            out[key] = "\n".join(parts)
    return out


# -- metrics -----------------------------------------------------------------------------


def scores(ranked: Sequence[str], evidence: frozenset[str]) -> dict[str, float]:
    """recall@5/@10, hit@5/@10, MRR@10 and NDCG@10 of one ranking."""
    top = list(ranked[:K])
    found = [key in evidence for key in top]
    first = next((i for i, ok in enumerate(found) if ok), None)
    dcg = sum(1.0 / math.log2(i + 2) for i, ok in enumerate(found) if ok)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(evidence), K)))
    return {
        "recall@5": sum(found[:5]) / len(evidence),
        "recall@10": sum(found) / len(evidence),
        "hit@5": float(any(found[:5])),
        "hit@10": float(any(found)),
        "mrr@10": 0.0 if first is None else 1.0 / (first + 1),
        "ndcg@10": dcg / ideal,
    }


METRICS = ("recall@5", "recall@10", "hit@5", "hit@10", "mrr@10", "ndcg@10")


def mean_scores(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(rows)
    if not rows:
        return dict.fromkeys(METRICS, 0.0)
    return {m: statistics.fmean(r[m] for r in rows) for m in METRICS}


# -- embeddings cache --------------------------------------------------------------------


def cache_dir() -> Path:
    path = Path(os.environ.get("TTA_RECALL_CACHE", "~/.cache/tta-recall")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


class CachedEmbedder:
    """An embedder whose document and query vectors are cached on disk by text (outside the
    repository), under the inner embedder's name, so a rerun embeds nothing twice."""

    def __init__(self, inner: Any, directory: Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        slug = hashlib.sha256(self.name.encode()).hexdigest()[:12]
        self._file = (directory or cache_dir()) / f"vectors-{slug}.npz"
        self._vectors: dict[tuple[str, str], np.ndarray] = {}
        self._dirty = False
        if self._file.is_file():
            with np.load(self._file, allow_pickle=False) as data:
                kinds, texts, rows = data["kinds"], data["texts"], data["rows"]
                for kind, text, row in zip(kinds.tolist(), texts.tolist(), rows, strict=True):
                    self._vectors[(kind, text)] = row
        for attr in ("semantic_weight",):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def save(self) -> None:
        if not self._dirty:
            return
        keys = list(self._vectors)
        np.savez(
            self._file,
            kinds=np.array([k for k, _ in keys]),
            texts=np.array([t for _, t in keys]),
            rows=np.stack([self._vectors[k] for k in keys]).astype(np.float32),
        )
        self._dirty = False

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if ("d", t) not in self._vectors))
        if missing:
            rows = await self.inner.embed_documents(missing)
            for text, row in zip(missing, rows, strict=True):
                self._vectors[("d", text)] = np.asarray(row, dtype=np.float32)
            self._dirty = True
        return np.stack([self._vectors[("d", t)] for t in texts])

    async def embed_query(self, text: str) -> np.ndarray:
        row = self._vectors.get(("q", text))
        if row is None:
            row = np.asarray(await self.inner.embed_query(text), dtype=np.float32)
            self._vectors[("q", text)] = row
            self._dirty = True
        return row


# -- the runs ----------------------------------------------------------------------------

Ranker = Callable[[Conversation, Question], Any]


async def run_ours(
    convs: Sequence[Conversation],
    embedder: Any,
    *,
    context: bool = False,
    index_text: str | None = None,
    reranker: Any = None,
    min_score: float | None = None,
    modes: Sequence[str] = MODES,
    **search: Any,
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """{mode: {category name or "all": [per-question scores]}} for our search (``search``:
    more arguments of every search, e.g. ``fusion``; ``context``: the previous turn in each
    value; ``index_text``: a :data:`CONTEXTS` kind given as ``add_many(..., index_text=)``)."""
    out: dict[str, dict[str, list[dict[str, float]]]] = {m: {} for m in modes}
    for conv in convs:
        memory = MemoryPrimitive(embedder=embedder, max_size=None, namespace=conv.name)
        texts = None if index_text is None else index_texts(conv.turns, index_text)
        await memory.add_many(with_context(conv.turns) if context else conv.turns, index_text=texts)
        for q in conv.questions:
            for mode in modes:
                extra: dict[str, Any] = dict(search)
                if reranker is not None:
                    extra["reranker"] = reranker
                if min_score is not None:
                    extra["min_score"] = min_score
                hits = await memory.search(q.text, limit=K, mode=mode, **extra)  # type: ignore[arg-type]
                row = scores([h.key for h in hits], q.evidence)
                out[mode].setdefault("all", []).append(row)
                out[mode].setdefault(CATEGORIES[q.category], []).append(row)
        await memory.aclose()
    return out


def run_bm25s(convs: Sequence[Conversation]) -> dict[str, list[dict[str, float]]]:
    """bm25s (its defaults, English stop words removed) over each turn's text and date."""
    import bm25s

    out: dict[str, list[dict[str, float]]] = {}
    for conv in convs:
        corpus = [f"{v['text']} {v['date']}" for _, v in conv.turns]
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )
        keys = [k for k, _ in conv.turns]
        for q in conv.questions:
            tokens = bm25s.tokenize([q.text], stopwords="en", show_progress=False)
            docs, _ = retriever.retrieve(tokens, k=min(K, len(keys)), show_progress=False)
            row = scores([keys[i] for i in docs[0].tolist()], q.evidence)
            out.setdefault("all", []).append(row)
            out.setdefault(CATEGORIES[q.category], []).append(row)
    return out


async def run_dense(
    convs: Sequence[Conversation], embedder: Any
) -> dict[str, list[dict[str, float]]]:
    """Brute-force cosine over the same texts our semantic mode embeds."""
    out: dict[str, list[dict[str, float]]] = {}
    for conv in convs:
        texts = [f"{v['text']} {v['date']}" for _, v in conv.turns]
        rows = np.asarray(await embedder.embed_documents(texts), dtype=np.float32)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        keys = [k for k, _ in conv.turns]
        for q in conv.questions:
            vec = np.asarray(await embedder.embed_query(q.text), dtype=np.float32)
            order = np.argsort(-(rows @ vec), kind="stable")[:K]
            row = scores([keys[i] for i in order.tolist()], q.evidence)
            out.setdefault("all", []).append(row)
            out.setdefault(CATEGORIES[q.category], []).append(row)
    return out


async def latency(
    convs: Sequence[Conversation], cached: CachedEmbedder, size: int = 10_000, n: int = 200
) -> dict[str, dict[str, float]]:
    """Search p50/p95 in ms at ``size`` records (the turns repeated under new keys; document
    vectors from the cache), with the query embedded for real by the inner model; add
    throughput (records/s) of ``add_many`` with and without the model."""
    turns = [t for c in convs for t in c.turns]
    questions = [q.text for c in convs for q in c.questions][:n]
    out: dict[str, dict[str, float]] = {}
    from tta_dev_primitives import InMemoryBackend

    backend = InMemoryBackend(None)
    memory = MemoryPrimitive(backend, embedder=cached, namespace="latency")
    batch = [(f"{i}:{turns[i % len(turns)][0]}", turns[i % len(turns)][1]) for i in range(size)]
    await memory.add_many(batch)
    # The same records, searched with the model itself (the query embedded for real), and
    # with the query's vector from the cache (the search alone). The model's primitive is
    # made anew for each mode, so its query-embedding cache never answers a timed search.
    for label in ("search", "search without embedding"):
        for mode in MODES:
            if label != "search" and mode == "keyword":
                continue
            searcher = memory
            if label == "search":
                searcher = MemoryPrimitive(backend, embedder=cached.inner, namespace="latency")
            for text in questions:  # warm (and fill the cache for the second pass)
                await memory.search(text, limit=K, mode=mode)
            await searcher.search("a warm-up question", limit=K, mode=mode)
            times = []
            for text in questions:
                started = time.perf_counter()
                await searcher.search(text, limit=K, mode=mode)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out[f"{label} {mode}"] = {
                "p50": times[len(times) // 2],
                "p95": times[int(len(times) * 0.95)],
            }
    await memory.aclose()
    sample = [(f"t{i}", turns[i][1]) for i in range(min(500, len(turns)))]
    for label, emb in (("add_many, model", cached.inner), ("add_many, keyword only", None)):
        fresh = MemoryPrimitive(embedder=emb, max_size=None, namespace="adds")
        started = time.perf_counter()
        for start in range(0, len(sample), 100):
            await fresh.add_many(sample[start : start + 100])
        elapsed = time.perf_counter() - started
        out[label] = {"records/s": len(sample) / elapsed}
        await fresh.aclose()
    return out


def neighbour_reranker(convs: Sequence[Conversation], embedder: Any) -> Any:
    """The reranker measured here: each hit rescored by its fused score plus the cosine of
    the query with the hit read together with its neighbours (previous and next turn of the
    session), with the same embedder: a local stand-in for a cross-encoder or an LLM judge."""
    texts: dict[str, str] = {}
    for conv in convs:
        for i, (key, value) in enumerate(conv.turns):
            parts = [
                conv.turns[j][1]["text"]
                for j in (i - 1, i, i + 1)
                if 0 <= j < len(conv.turns) and conv.turns[j][1]["session"] == value["session"]
            ]
            texts[key] = "\n".join(parts)

    async def rerank(query: str, hits: list[Any]) -> list[float]:
        q = np.asarray(await embedder.embed_query(query), dtype=np.float32)
        rows = np.asarray(
            await embedder.embed_documents([texts.get(h.key, "") for h in hits]), dtype=np.float32
        )
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        return [float(h.score) + float(c) for h, c in zip(hits, rows @ q, strict=True)]

    return rerank


def table(results: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    lines = [
        "| method | "
        + " | ".join(METRICS)
        + " | "
        + " | ".join(f"recall@10 {c}" for c in CATEGORIES.values())
        + " |",
        "| --- |" + " ---: |" * (len(METRICS) + len(CATEGORIES)),
    ]
    for method, by_cat in results.items():
        overall = mean_scores(by_cat.get("all", []))
        cats = [mean_scores(by_cat.get(c, []))["recall@10"] for c in CATEGORIES.values()]
        lines.append(
            f"| {method} | "
            + " | ".join(f"{overall[m]:.3f}" for m in METRICS)
            + " | "
            + " | ".join(f"{v:.3f}" for v in cats)
            + " |"
        )
    return "\n".join(lines)


def plot(results: dict[str, dict[str, list[dict[str, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results)
    r5 = [mean_scores(results[m]["all"])["recall@5"] for m in methods]
    r10 = [mean_scores(results[m]["all"])["recall@10"] for m in methods]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(methods) + 1.2))
    y = np.arange(len(methods))
    ax.barh(y - 0.2, r10, 0.4, label="recall@10")
    ax.barh(y + 0.2, r5, 0.4, label="recall@5")
    for yy, v in zip(y, r10, strict=True):
        ax.text(v + 0.005, yy - 0.2, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, methods, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of evidence turns found (LoCoMo, questions of categories 1-4)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


START, END = "<!-- recall:start -->", "<!-- recall:end -->"


def write_section(path: Path, body: str) -> None:
    """Replace the section between the recall markers of ``path`` (append it when absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{START}\n{body.rstrip()}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def make_embedder(name: str) -> Any:
    if name == "hashing":
        from tta_dev_primitives import HashingEmbedder

        return HashingEmbedder(256)
    from tta_dev_primitives.memory.embeddings import default_embedder

    return default_embedder()


async def measure(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from tta_dev_primitives.memory.search import MIN_RELEVANT_SCORE

    path = find_data(args.data)
    convs = load(path)
    if args.conversations:
        convs = convs[: args.conversations]
    cached = CachedEmbedder(make_embedder(args.embedder))
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    results["bm25s"] = run_bm25s(convs)
    results["dense brute force"] = await run_dense(convs, cached)
    search: dict[str, Any] = {}
    if args.fusion:
        search["fusion"] = args.fusion
    if args.semantic_weight is not None:
        search["semantic_weight"] = args.semantic_weight
    if args.context:  # the ways to give a turn its context, keyword and hybrid only
        pair = ("keyword", "hybrid")
        rows = {"no context": await run_ours(convs, cached, modes=pair)}
        rows["previous turn in the value"] = await run_ours(convs, cached, context=True, modes=pair)
        for kind, label in CONTEXTS.items():
            rows[f"index_text = {label}"] = await run_ours(
                convs, cached, index_text=kind, modes=pair
            )
        cached.save()
        results = {f"ours {m}, {label}": r[m] for m in pair for label, r in rows.items()}
        return table(results), {"results": results, "variant": True}
    if search:  # a variant of ours only: the baselines and options are the default's
        ours = await run_ours(convs, cached, **search)
        cached.save()
        results = {f"ours {m} ({search})": ours[m] for m in MODES}
        return table(results), {"results": results, "variant": True}
    ours = await run_ours(convs, cached)
    for mode in MODES:
        label = f"ours {mode}" + (" (default)" if mode == "hybrid" else "")
        results[label] = ours[mode]
    strict = await run_ours(convs, cached, min_score=MIN_RELEVANT_SCORE, modes=("hybrid",))
    results[f"ours hybrid, min_score={MIN_RELEVANT_SCORE}"] = strict["hybrid"]
    context = await run_ours(convs, cached, context=True, modes=("keyword", "hybrid"))
    results["ours keyword, previous turn in the value"] = context["keyword"]
    results["ours hybrid, previous turn in the value"] = context["hybrid"]
    context = await run_ours(convs, cached, index_text="previous", modes=("keyword", "hybrid"))
    results["ours keyword, previous turn as index_text"] = context["keyword"]
    results["ours hybrid, previous turn as index_text"] = context["hybrid"]
    started = time.perf_counter()
    reranked = await run_ours(
        convs, cached, reranker=neighbour_reranker(convs, cached), modes=("hybrid",)
    )
    rerank_s = time.perf_counter() - started
    results["ours hybrid + neighbour reranker (top 20)"] = reranked["hybrid"]
    cached.save()
    timing = {} if args.no_latency else await latency(convs, cached, size=args.size)
    n_q = sum(len(c.questions) for c in convs)
    meta = {
        "file": path.name,
        "conversations": len(convs),
        "turns": sum(len(c.turns) for c in convs),
        "questions": n_q,
        "embedder": cached.name,
        "timing": timing,
        "rerank_ms_per_query": rerank_s * 1000 / max(n_q, 1),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1, 5, 15 min; 2 cores)",
    }
    return table(results), {"results": results, **meta}


def render(tab: str, meta: dict[str, Any], plot_path: str) -> str:
    lines = [
        "## Recall on long conversations (LoCoMo)",
        "",
        f"`make bench-recall` on `{meta['file']}`: {meta['conversations']} conversations, "
        f"{meta['turns']} turns stored one record each, {meta['questions']} questions of "
        f"categories 1-4, embedder `{meta['embedder']}`. Retrieval only: recall@k is the "
        "share of a question's evidence turns in the top k, hit@k whether any is there. "
        "bm25s and the dense brute force run in the same process on the same texts.",
        "",
        tab,
        "",
        f"![recall@5 and recall@10 per method]({plot_path})",
        "",
    ]
    if meta["timing"]:
        lines += [
            "| at 10k records | p50 ms | p95 ms | records/s |",
            "| --- | ---: | ---: | ---: |",
        ]
        for label, row in meta["timing"].items():
            lines.append(
                f"| {label} | {row.get('p50', float('nan')):.2f} | "
                f"{row.get('p95', float('nan')):.2f} | {row.get('records/s', float('nan')):.0f} |"
            )
        lines += [
            "",
            "`search` includes embedding the query with the model (no cache), `search without "
            "embedding` takes the query's vector from a cache; add throughput is `add_many` of "
            "100 turns at a time into an empty namespace, the model embedding each turn. "
            f"Load average while measuring: {meta['load']}.",
            f"The reranker run took about {meta['rerank_ms_per_query']:.0f} ms per question, "
            "its neighbourhood vectors read from the embedding cache when warm (a first run "
            "embeds 20 neighbourhoods per question).",
            "",
        ]
    return "\n".join(lines).replace("nan", "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recall", description=__doc__)
    parser.add_argument("--data", help="LoCoMo JSON file or a directory holding it")
    parser.add_argument("--embedder", choices=("local", "hashing"), default="local")
    parser.add_argument("--conversations", type=int, default=0, help="only the first N")
    parser.add_argument("--size", type=int, default=10_000, help="records for the latency run")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file to update")
    parser.add_argument("--plot", default="docs/images/bench-recall.png")
    parser.add_argument("--json", help="also write the summary here (keep it out of the repo)")
    parser.add_argument(
        "--fusion",
        choices=("convex", "rrf", "minmax"),
        help="only our modes with this fusion, printed (no report written)",
    )
    parser.add_argument("--semantic-weight", type=float, help="the same, with this weight")
    parser.add_argument(
        "--context",
        action="store_true",
        help="only the conversation-context variants (value vs index_text), printed",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tab, meta = asyncio.run(measure(args))
    print(tab)
    if meta.get("variant"):
        return
    plot(meta["results"], Path(args.plot))
    rel = os.path.relpath(Path(args.plot), Path(args.out).parent)
    body = render(tab, meta, rel)
    print(body)
    write_section(Path(args.out), body)
    if args.json:
        summary = {k: v for k, v in meta.items() if k != "results"}
        summary["methods"] = {m: mean_scores(r["all"]) for m, r in meta["results"].items()}
        Path(args.json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
