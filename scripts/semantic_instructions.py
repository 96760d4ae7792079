"""Instructions of semantic search at scale (callgrind), ours and a numpy mat-vec, per query.

Instruction counts do not depend on what else the machine runs. Per-query cost =
(count(SYSTEM, Q) - count(SYSTEM, 0)) / Q over the engine benchmark's vectors
(benchmarks/engine.py: N unit float32 rows of 384 numbers), limit 10::

    for system in ours matvec einsum; do
      for q in 0 20; do
        OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
          .venv/bin/python scripts/semantic_instructions.py $system 100000 $q 2>&1 | grep Collected
      done
    done

``OPENBLAS_NUM_THREADS=1``: a BLAS thread pool's spinning would be counted too. ``einsum`` is
the same product by numpy's own loop (no BLAS, no threads). ``cpu N ROUNDS`` instead prints
process CPU times of ours, the BLAS mat-vec and einsum, interleaved query by query (medians)::

    .venv/bin/python scripts/semantic_instructions.py cpu 100000 5
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine import LIMIT, _store, corpus, vectors

from tta_dev_primitives.memory.records import SearchQuery


def main(system: str, n: int, count: int) -> None:
    texts = corpus(n)
    matrix = vectors(n)
    qvecs = vectors(30, seed=4)
    if system == "ours":
        store = _store(texts, matrix)
        store.search_results(SearchQuery("warm", 1, "semantic", vector=qvecs[0]))
        for i in range(count):
            store.search_results(SearchQuery("q", LIMIT, "semantic", vector=qvecs[i % 30]))
    elif system == "matvec":
        for i in range(count):
            matrix @ qvecs[i % 30]
    elif system == "einsum":
        for i in range(count):
            np.einsum("ij,j->i", matrix, qvecs[i % 30])
    elif system == "cpu":
        store = _store(texts, matrix)
        store.search_results(SearchQuery("warm", 1, "semantic", vector=qvecs[0]))
        runs = {
            "ours": lambda q: store.search_results(SearchQuery("q", LIMIT, "semantic", vector=q)),
            "matvec": lambda q: matrix @ q,
            "einsum": lambda q: np.einsum("ij,j->i", matrix, q),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(count):
            for q in qvecs:
                for name, run in runs.items():
                    start = time.process_time()
                    run(q)
                    times[name].append(time.process_time() - start)
        floor = statistics.median(times["matvec"])
        for name, spent in times.items():
            ms = statistics.median(spent) * 1e3
            print(f"{name:7s} {ms:7.2f} ms CPU per query, {ms / floor / 1e3:5.2f}x the mat-vec")
    else:
        raise SystemExit(f"unknown system {system!r}: ours, matvec, einsum or cpu")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
