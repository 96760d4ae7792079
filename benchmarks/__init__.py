"""Side-by-side benchmarks of the memory primitive and its peers, measured in one run.

Run ``make bench`` (or ``python -m benchmarks --help``). The pieces:

* :mod:`benchmarks.workload` makes realistic agent memory deterministically (seeded):
  conversation turns of 8-40 words with metadata, and recall queries.
* :mod:`benchmarks.servers` starts private ``redis-server`` / ``valkey-server`` processes on
  free loopback ports (never a server the machine already runs).
* :mod:`benchmarks.systems` is the registry: every system or mode measured is one
  :class:`~benchmarks.systems.SystemSpec` entry, and every operation one
  :class:`~benchmarks.systems.Operation` entry, so a new mode is one more entry.
* :mod:`benchmarks.harness` times operations in interleaved rounds after a warm-up round.
* :mod:`benchmarks.report` writes the Markdown report, the target verdicts and the plot.
"""
