"""Instructions of keyword search at scale (callgrind), ours and bm25s, per query.

Instruction counts do not depend on what else the machine runs. Per-query cost =
(count(SYSTEM, Q) - count(SYSTEM, 0)) / Q over the engine benchmark's common-word corpus
(benchmarks/engine.py) of N records::

    for system in ours bm25s; do
      for q in 0 90; do
        valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
          .venv/bin/python scripts/search_instructions.py $system 100000 $q 2>&1 | grep Collected
      done
    done

Prefix ``PYTHONPATH=<other checkout>/src`` to measure another version with the same venv.
``cpu N`` instead prints process CPU times in one process: the first search after the bulk
load, and ours against bm25s query by query, interleaved (medians and their ratio)::

    .venv/bin/python scripts/search_instructions.py cpu 100000 5
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine import LIMIT, _store, corpus, queries

from tta_dev_primitives.memory.records import SearchQuery


def main(system: str, n: int, count: int) -> None:
    texts = corpus(n)
    qs = queries(30)
    if system == "ours":
        store = _store(texts, None)
        store.search_results(SearchQuery("warm", 1))  # the index is built
        for i in range(count):
            store.search_results(SearchQuery(qs[i % len(qs)], LIMIT))
    elif system == "bm25s":
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False
        )
        tokenized = [bm25s.tokenize([q], stopwords=None, show_progress=False) for q in qs]
        for i in range(count):
            retriever.retrieve(tokenized[i % len(qs)], k=LIMIT, show_progress=False)
    elif system == "cpu":
        cpu(texts, qs, count)
    else:
        raise SystemExit(f"unknown system {system!r}: ours, bm25s or cpu")


def cpu(texts: list[str], qs: list[str], rounds: int) -> None:
    import bm25s

    clock = time.process_time
    store = _store(texts, None)
    start = clock()
    store.search_results(SearchQuery("warm", 1))
    first = clock() - start
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False)
    tokenized = [bm25s.tokenize([q], stopwords=None, show_progress=False) for q in qs]
    ours, floor = [], []
    for _ in range(rounds):
        for q, tokens in zip(qs, tokenized, strict=True):
            start = clock()
            store.search_results(SearchQuery(q, LIMIT))
            ours.append(clock() - start)
            start = clock()
            retriever.retrieve(tokens, k=LIMIT, show_progress=False)
            floor.append(clock() - start)
    o, f = statistics.median(ours) * 1e3, statistics.median(floor) * 1e3
    print(
        f"first search after the bulk load {first:.2f} s CPU; keyword ours {o:.2f} ms, "
        f"bm25s {f:.2f} ms: {o / f:.2f}x"
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
