"""The search engine's targets, against floors measured in the same run.

    python -m benchmarks.engine [--sizes 10000,100000] [--out docs/benchmarks-engine.md]

(``make bench`` runs it after the side-by-side benchmark and adds its section to
docs/benchmarks.md; ``make bench BENCH_ARGS='--engine-only'`` runs only this and replaces that
section.) Workloads:

* **common words**: records of 12 words drawn from a 30-word vocabulary, so every query word
  is in about a third of the records, and 3-word queries: the case where inverted indexes
  with selective queries look fast and real agent queries are not. Floor: ``bm25s``
  (sparse-matrix BM25, top 10) over the same corpus.
* **vectors**: 384-dimensional unit float32 vectors. Floor: one numpy float32
  matrix-vector product over the same matrix.
* **hybrid**: both at once (limit 10, the default fusion).
* **memory**: RSS of a fresh process holding N records with 384-d vectors after its first
  searches, less the benchmark's own copy of the vectors (freed before reading RSS; the peak,
  with that copy and the batch in flight, is shown too).
* **first search**: the first keyword search after ``add_many`` of N records (the bulk
  load of the index).

Ours is measured through the in-memory backend's store (``InMemoryStore.search_results``),
which is what ``MemoryPrimitive`` calls, without the primitive's validation.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tta_dev_primitives import InMemoryStore
from tta_dev_primitives.memory import codec
from tta_dev_primitives.memory.records import Entry, SearchQuery

VOCAB = [
    "agent", "memory", "search", "trace", "span", "model", "query", "record", "store", "index",
    "token", "vector", "answer", "prompt", "context", "tool", "plan", "step", "user", "task",
    "value", "cache", "event", "graph", "node", "time", "state", "file", "code", "data",
]  # fmt: skip
WORDS_PER_RECORD = 12
DIMS = 384
LIMIT = 10


def corpus(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCAB, k=WORDS_PER_RECORD)) for _ in range(n)]


def queries(count: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(VOCAB, 3)) for _ in range(count)]


def vectors(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, DIMS)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def _median_ms(run: Callable[[int], Any], count: int) -> float:
    return _paired_median_ms(run, None, count)[0]


def _paired_median_ms(
    run: Callable[[int], Any], floor: Callable[[int], Any] | None, count: int
) -> tuple[float, float]:
    """Medians (ms) of ``run`` and of its ``floor``, called alternately query by query, so
    a burst of load on a shared machine falls on both and not on one side of the ratio."""
    times: list[float] = []
    floors: list[float] = []
    for i in range(count):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
        if floor is not None:
            start = time.perf_counter()
            floor(i)
            floors.append(time.perf_counter() - start)
    return (
        statistics.median(times) * 1e3,
        statistics.median(floors) * 1e3 if floors else float("nan"),
    )


def _store(texts: list[str], matrix: np.ndarray | None) -> InMemoryStore:
    store = InMemoryStore(max_size=None, max_value_bytes=None)
    for i, text in enumerate(texts):
        payload, snap = codec.encode_snapshot(text)
        vec = None if matrix is None else matrix[i]
        store.put(Entry(f"r{i}", payload, None, None, vec, snapshot=snap))
    return store


def measure_size(n: int, count: int) -> dict[str, float]:
    texts = corpus(n)
    qs = queries(count)
    matrix = vectors(n)
    qvecs = vectors(count, seed=4)
    out: dict[str, float] = {}

    store = _store(texts, matrix)
    start = time.perf_counter()
    store.search_results(SearchQuery("warm", 1))
    out["index_build_s"] = time.perf_counter() - start

    def keyword(i: int) -> Any:
        return store.search_results(SearchQuery(qs[i], LIMIT))

    try:
        import bm25s
    except ImportError:
        out["ours_keyword_ms"] = _median_ms(keyword, count)
        out["floor_bm25s_ms"] = float("nan")
    else:
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False
        )
        tokenized = [bm25s.tokenize([q], stopwords=None, show_progress=False) for q in qs]
        out["ours_keyword_ms"], out["floor_bm25s_ms"] = _paired_median_ms(
            keyword,
            lambda i: retriever.retrieve(tokenized[i], k=LIMIT, show_progress=False),
            count,
        )
    out["ours_semantic_ms"], out["floor_matvec_ms"] = _paired_median_ms(
        lambda i: store.search_results(SearchQuery(qs[i], LIMIT, "semantic", vector=qvecs[i])),
        lambda i: matrix @ qvecs[i],
        count,
    )
    out["ours_hybrid_ms"] = _median_ms(
        lambda i: store.search_results(SearchQuery(qs[i], LIMIT, "hybrid", vector=qvecs[i])),
        count,
    )
    return out


_CHILD = """
import asyncio, json, resource, sys, time
import numpy as np
from benchmarks.engine import corpus, vectors, DIMS
from tta_dev_primitives import CallableEmbedder, MemoryPrimitive

n = int(sys.argv[1])
texts = corpus(n)
matrix = vectors(n)
rows = {t: i for i, t in enumerate(texts)}
fn = lambda batch: matrix[[rows.get(t, 0) for t in batch]]
async def main():
    out = {}
    if sys.argv[2] == "plain":
        memory = MemoryPrimitive(max_size=None)
        await memory.add_many([(f"r{i}", t) for i, t in enumerate(texts)])
        start = time.perf_counter()
        await memory.search("agent memory search")
        out["first_search_s"] = time.perf_counter() - start
    else:
        emb = CallableEmbedder(fn, name="fixed", dimensions=DIMS, batch_size=4096)
        memory = MemoryPrimitive(max_size=None, embedder=emb)
        await memory.add_many([(f"r{i}", t) for i, t in enumerate(texts)])
        start = time.perf_counter()
        await memory.search("agent memory search", mode="keyword")
        out["first_search_vectors_s"] = time.perf_counter() - start
        await memory.search("agent memory search", mode="hybrid")
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        global matrix
        matrix = None  # the benchmark's own copy of the vectors (the embedder's source)
        import gc
        gc.collect()
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
    print(json.dumps(out))
asyncio.run(main())
"""


def measure_process(n: int) -> dict[str, float]:
    """First-search time and memory, in a fresh process (so nothing else is counted)."""
    root = Path(__file__).resolve().parents[1]
    result: dict[str, float] = {}
    for kind in ("plain", "vectors"):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), kind],
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
            timeout=900,
        )
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def run(sizes: list[int], count: int = 30) -> dict[str, Any]:
    results: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        row = measure_size(n, count)
        row.update(measure_process(n))
        results["sizes"][str(n)] = row
        print(f"{n}: {json.dumps({k: round(v, 3) for k, v in row.items()})}", flush=True)
    return results


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def render(results: dict[str, Any], command: str) -> str:
    lines = [
        SECTION + " (common-word workload, vectors)",
        "",
        f"Measured by `{command}` ({WORDS_PER_RECORD}-word records over a {len(VOCAB)}-word "
        f"vocabulary, 3-word queries, limit {LIMIT}, {DIMS}-d vectors; medians). Floors are "
        "measured in the same run, query by query alternately with ours: `bm25s` for "
        "keyword, one numpy float32 matrix-vector product for semantic. Memory and first "
        "search in a fresh process (`benchmarks/engine.py`).",
        "",
        "| records | keyword ours | bm25s | ratio | semantic ours | mat-vec | ratio "
        "| hybrid | first search | first search (with vectors) | RSS | peak RSS |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, row in results["sizes"].items():
        kw = row["ours_keyword_ms"] / row["floor_bm25s_ms"]
        sem = row["ours_semantic_ms"] / row["floor_matvec_ms"]
        lines.append(
            f"| {int(n):,} | {row['ours_keyword_ms']:.2f} ms | {row['floor_bm25s_ms']:.2f} ms "
            f"| {kw:.1f}x | {row['ours_semantic_ms']:.2f} ms | {row['floor_matvec_ms']:.2f} ms "
            f"| {sem:.1f}x | {row['ours_hybrid_ms']:.2f} ms | {row['first_search_s']:.2f} s "
            f"| {row['first_search_vectors_s']:.2f} s | {row['rss_mb']:.0f} MB "
            f"| {row['peak_rss_mb']:.0f} MB |"
        )
    big = results["sizes"].get("100000")
    lines += ["", "| target (100k records) | figure | verdict |", "| --- | --- | --- |"]
    if big is None:
        lines.append("| all | not measured (run with `--sizes 100000`) | n/a |")
    else:
        kw = big["ours_keyword_ms"] / big["floor_bm25s_ms"]
        sem = big["ours_semantic_ms"] / big["floor_matvec_ms"]
        rows = [
            ("keyword, common words, within 3x of bm25s", f"{kw:.1f}x", kw <= 3),
            ("semantic 384-d within 1.5x of numpy mat-vec", f"{sem:.1f}x", sem <= 1.5),
            ("hybrid under 30 ms", f"{big['ours_hybrid_ms']:.1f} ms", big["ours_hybrid_ms"] < 30),
            ("process memory with 384-d vectors at most 300 MB", f"{big['rss_mb']:.0f} MB",
             big["rss_mb"] <= 300),
            ("first search after add_many at most 0.5 s", f"{big['first_search_s']:.2f} s",
             big["first_search_s"] <= 0.5),
        ]  # fmt: skip
        for label, figure, ok in rows:
            lines.append(f"| {label} | {figure} | {_verdict(ok)} |")
    return "\n".join(lines) + "\n"


SECTION = "## Search engine targets"


def splice(report: str, section: str, heading: str = SECTION) -> str:
    """``report`` with its section under ``heading`` (the search-engine one by default)
    replaced by ``section`` (placed before ``## Notes``, or at the end, when it has none
    yet)."""
    if not section:
        return report
    start = report.find(heading)
    if start >= 0:
        end = report.find("\n## ", start + len(heading))
        end = len(report) if end < 0 else end + 1
        return report[:start] + section + "\n" + report[end:]
    notes = report.find("\n## Notes")
    if notes >= 0:
        return report[: notes + 1] + section + "\n" + report[notes + 1 :]
    return report.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--json", default="benchmarks/results/engine.json")
    parser.add_argument("--out", default="", help="also write the Markdown section here")
    args = parser.parse_args(argv)
    results = run([int(s) for s in args.sizes.split(",")], args.queries)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    text = render(results, f"python -m benchmarks.engine --sizes {args.sizes}")
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
