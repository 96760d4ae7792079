"""Render results: the Markdown report, the target verdicts and the search-growth plot."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import math
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import Results
from .systems import OPERATIONS

X = "\u00d7"  # the multiplication sign of ratios

__all__ = ["Target", "evaluate_targets", "machine_description", "plot_search", "render_markdown"]

OP_TITLES = {
    "add": "add",
    "get": "get",
    "search": "search (keywords)",
    "search_question": "search (question)",
    "delete": "delete",
    "add_many": "add_many / record",
}
PACKAGES = (
    "tta-dev-primitives",
    "redis",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "langgraph",
    "aiocache",
    "cachetools",
)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f} µs"
    if us < 1000:
        return f"{us:.1f} µs"
    ms = us / 1000
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:.0f} ms"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f}{X}" if ratio < 100 else f"{ratio:.0f}{X}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "?"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{rev}{' + uncommitted changes in src/' if dirty else ''}"


def machine_description() -> dict[str, str]:
    """What ran the benchmark (no paths, no host names)."""
    versions = []
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores",
        "memory": _memory_gib(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
        "revision": _git_revision(),
    }


# --- targets --------------------------------------------------------------------------------


@dataclass
class Target:
    """One target of the issue, with what was measured."""

    name: str
    measured: str
    met: bool | None  # None: could not be measured in this run


def _sizes(results: Results) -> list[int]:
    return sorted(results.samples)


def _has(results: Results, system: str) -> bool:
    return any(system in results.samples[size] for size in results.samples)


def _ratio_target(
    results: Results, name: str, ours: str, base: str, op: str, base_op: str, limit: float
) -> Target:
    if not (_has(results, ours) and _has(results, base)):
        return Target(name, "not measured (system unavailable)", None)
    parts, ok = [], True
    for size in _sizes(results):
        ratio = results.ratio(size, ours, op, base, base_op)
        if ratio is None:
            continue
        parts.append(f"{size:,}: {fmt_ratio(ratio)}")
        ok = ok and ratio <= limit
    if not parts:
        return Target(name, "not measured", None)
    return Target(name, ", ".join(parts), ok)


def slope(results: Results, system: str, op: str, lo: int, hi: int) -> float | None:
    """Log-log slope of the median between two sizes (1 = linear growth)."""
    a, b = results.median(lo, system, op), results.median(hi, system, op)
    if not a or not b or lo == hi:
        return None
    return math.log(b / a) / math.log(hi / lo)


def evaluate_targets(results: Results) -> list[Target]:
    """Every target of the issue, evaluated on medians measured in this run."""
    targets: list[Target] = []
    mem = "ours-memory-nosdk"
    targets.append(
        _ratio_target(
            results, f"in-memory get ≤ 1.0{X} LangGraph aget", mem, "langgraph", "get", "get", 1.0
        )
    )
    targets.append(
        _ratio_target(
            results, f"in-memory add ≤ 1.0{X} LangGraph aput", mem, "langgraph", "add", "add", 1.0
        )
    )
    for op in ("get", "add"):
        targets.append(
            _ratio_target(
                results,
                f"in-memory {op} ahead of aiocache (< 1.0{X})",
                mem,
                "aiocache",
                op,
                op,
                0.999,
            )
        )
    for where, label in (("redis", "Redis"), ("valkey", "Valkey")):
        ours, raw = f"ours-{where}-nosdk", f"raw-{where}"
        targets.append(
            _ratio_target(
                results, f"{label} get ≤ 1.2{X} redis-py GET+JSON", ours, raw, "get", "get", 1.2
            )
        )
        targets.append(
            _ratio_target(
                results, f"{label} add ≤ 1.3{X} redis-py SET+JSON", ours, raw, "add", "add", 1.3
            )
        )
        targets.append(_add_many_target(results, ours, label))
    targets.append(_search_target(results, mem, "in-memory", 1e-3))
    for where, label in (("redis", "Redis"), ("valkey", "Valkey")):
        targets.append(_search_target(results, f"ours-{where}-nosdk", label, 25e-3))
    for where, label in (("redis", "Redis"), ("valkey", "Valkey")):
        targets.append(_tracing_target(results, where, label))
    targets.append(_span_cost_target(results))
    targets.append(_growth_target(results, mem))
    return targets


def _add_many_target(results: Results, ours: str, label: str) -> Target:
    name = f"{label} add_many of 1k ≥ 10{X} the throughput of sequential adds"
    if not _has(results, ours):
        return Target(name, "not measured (system unavailable)", None)
    parts, ok = [], True
    for size in _sizes(results):
        speedup = results.ratio(size, ours, "add", ours, "add_many")
        if speedup is None:
            continue
        parts.append(f"{size:,}: {speedup:.2f}{X}")
        ok = ok and speedup >= 10
    if not parts:
        return Target(name, "not measured (no add_many)", None)
    return Target(name, ", ".join(parts), ok)


def _search_target(results: Results, system: str, label: str, limit: float) -> Target:
    name = f"{label} keyword search at 10k records ≤ {fmt_time(limit)} median"
    value = results.median(10_000, system, "search")
    if value is None:
        return Target(name, "not measured", None)
    question = results.median(10_000, system, "search_question")
    extra = f" (question: {fmt_time(question)})" if question is not None else ""
    return Target(name, f"{fmt_time(value)}{extra}", value <= limit)


def _tracing_target(results: Results, where: str, label: str) -> Target:
    name = f"{label}: recording spans with the SDK ≤ 1.5{X} the no-SDK cost"
    on, off = f"ours-{where}-sdk", f"ours-{where}-nosdk"
    if not (_has(results, on) and _has(results, off)):
        return Target(name, "not measured (system unavailable)", None)
    worst: tuple[float, str] | None = None
    for size in _sizes(results):
        for op in ("add", "get", "delete", "search"):
            ratio = results.ratio(size, on, op, off)
            if ratio is not None and (worst is None or ratio > worst[0]):
                worst = (ratio, f"{op} at {size:,}")
    if worst is None:
        return Target(name, "not measured", None)
    text = f"worst {fmt_ratio(worst[0])} ({worst[1]})"
    floor = _worst_ratio(results, f"raw-{where}-span", f"raw-{where}", ("add", "get", "delete"))
    if floor is not None:
        text += f"; a bare span around redis-py alone: up to {fmt_ratio(floor)}"
    return Target(name, text, worst[0] <= 1.5)


def _worst_ratio(results: Results, a: str, b: str, ops: Iterable[str]) -> float | None:
    ratios = [results.ratio(size, a, op, b) for size in _sizes(results) for op in ops]
    found = [r for r in ratios if r is not None]
    return max(found) if found else None


def _span_cost_target(results: Results) -> Target:
    name = f"in-memory: recording adds no more than the SDK's own span cost (≤ 1.5{X} a bare span)"
    on, off = "ours-memory-sdk", "ours-memory-nosdk"
    if not (_has(results, on) and _has(results, off) and results.span_cost):
        return Target(name, "not measured", None)
    parts, ok = [], True
    for size in _sizes(results):
        bare = _median(results.span_cost.get(size))
        for op in ("get", "add"):
            a, b = results.median(size, on, op), results.median(size, off, op)
            if a is None or b is None or not bare:
                continue
            parts.append(f"{op}@{size:,}: +{fmt_time(a - b)} vs span {fmt_time(bare)}")
            ok = ok and (a - b) <= 1.5 * bare
    if not parts:
        return Target(name, "not measured", None)
    return Target(name, "; ".join(parts), ok)


def _growth_target(results: Results, system: str) -> Target:
    name = (
        "in-memory keyword search does not grow linearly with records "
        "(log-log slope 10k→100k < 0.8; a scan of every record measures ≈1)"
    )
    value = slope(results, system, "search", 10_000, 100_000)
    if value is None:
        return Target(name, "not measured (needs 10k and 100k)", None)
    parts = [f"slope {value:.2f}"]
    question = slope(results, system, "search_question", 10_000, 100_000)
    if question is not None:
        parts.append(f"question queries {question:.2f}")
    scan = slope(results, "dict", "search", 10_000, 100_000)
    if scan is not None:
        parts.append(f"dict scan {scan:.2f}")
    return Target(name, "; ".join(parts), value < 0.8)


def _median(data: Iterable[float] | None) -> float | None:
    if not data:
        return None
    ordered = sorted(data)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --- Markdown -------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _systems(results: Results) -> list[dict[str, Any]]:
    return results.systems


def _label(results: Results, key: str) -> str:
    for s in results.systems:
        if s["key"] == key:
            return str(s["label"])
    return key


def _peer_baselines(system: dict[str, Any]) -> list[tuple[str, str]]:
    """(baseline key, short name) pairs an entry of ours is compared with."""
    if system["where"] == "memory":
        return [("dict", "dict"), ("langgraph", "LangGraph"), ("aiocache", "aiocache")]
    return [(f"raw-{system['where']}", "redis-py")]


def render_markdown(
    results: Results, *, command: str, machine: dict[str, str], plot: str | None
) -> str:
    """The whole ``docs/benchmarks.md``."""
    ops = [op.name for op in OPERATIONS]
    sizes = _sizes(results)
    out: list[str] = [
        "# Benchmarks: the memory primitive side by side with its peers",
        "",
        "<!-- Generated by `make bench` (benchmarks/report.py); edits are overwritten. -->",
        "",
        "Every number on this page comes from one run, in one process, on one machine: the",
        "floors (`dict`, `cachetools.LRUCache`, raw redis-py + JSON), the peers (LangGraph",
        "`InMemoryStore`, aiocache `SimpleMemoryCache`) and this library (in memory, on Redis and",
        "on Valkey, with tracing off and on) did the same work, in interleaved rounds.",
        "",
        "Reproduce it with:",
        "",
        "```sh",
        command,
        "```",
        "",
        "## Machine",
        "",
    ]
    machine = results.machine or machine
    servers = ", ".join(f"{k}-server {v}" for k, v in sorted(results.servers.items())) or "none"
    out += [
        f"- CPU: {machine['cpu']}; memory: {machine['memory']}",
        f"- OS: {machine['os']}; {machine['python']}",
        f"- Servers (private, loopback, persistence off): {servers}",
        f"- Packages: {machine['packages']}",
        f"- Code measured: revision {machine['revision']}",
        f"- Whole run: {results.wall_seconds / 60:.1f} min",
        "",
        "## Method",
        "",
        "- Data: deterministic (seeded) agent memory: conversation turns of 8-40 words in",
        "  sessions of 20 turns, each with metadata (user, session, turn, topic, timestamp); the",
        "  vocabulary grows with the store (each session names its own people and places).",
        "- Each size is loaded untimed, then every system runs one warm-up round and the",
        "  measured rounds; in a round every system (in an order that rotates) runs every",
        "  operation on the same keys and queries. Each call is timed alone with",
        f"  `perf_counter` (clock overhead, {results.timer_overhead * 1e9:.0f} ns, subtracted):",
        "  medians and p95s are per-operation latencies. `add` writes new keys that `delete`",
        "  removes in the same round; `add_many` writes a batch of "
        f"{results.config['bulk']} new records (cost shown per record), removed untimed.",
        "- Ratios pair the two systems round by round (the median over rounds of the ratio of",
        "  their medians in that round), so load that comes and goes on the machine during",
        "  the run cancels out; the tables of medians pool every call of every round.",
        "- Searches: *keywords* is a 2-word recall query (a topic word and a name from one",
        "  stored session); *question* is a natural-language question around them, full of",
        "  common words. Limit 5.",
        '- Ours runs with `max_size=None` (unbounded), `namespace="bench"`, defaults otherwise',
        "  (Redis modes use the default fallback to memory unless marked `fallback=False`).",
        "  *SDK* modes pass a `TracerProvider` with a `BatchSpanProcessor` to a no-op exporter;",
        "  *no SDK* modes have no provider at all. Each Redis-backed system has its own database",
        "  on the same private server; every client is redis-py asyncio on one connection.",
        "- Loaded records are frozen out of the garbage collector (`gc.freeze()`) so one",
        "  system's allocations do not pay for collecting every other system's data; the",
        "  collector stays on while timing.",
        "",
        "## Targets",
        "",
    ]
    rows = []
    for target in evaluate_targets(results):
        verdict = {True: "met", False: "**missed**", None: "not measured"}[target.met]
        rows.append([target.name, target.measured, verdict])
    out += _table(["target", "measured (ratios from the same run)", "verdict"], rows)
    out += ["", "## Medians (p95) per operation", ""]
    for size in sizes:
        out += [f"### {size:,} records", ""]
        rows = []
        for system in _systems(results):
            key = system["key"]
            row = [system["label"]]
            for op in ops:
                med, p95 = results.median(size, key, op), results.p95(size, key, op)
                row.append("—" if med is None else f"{fmt_time(med)} ({fmt_time(p95)})")
            if any(cell != "—" for cell in row[1:]):  # not measured at this size: left out
                rows.append(row)
        out += _table(["system"] + [OP_TITLES.get(op, op) for op in ops], rows)
        out.append("")
    out += [
        "## Ratios of ours to the floors and peers",
        "",
        "Cost of ours over the cost of the same operation of the system named, at the same",
        "size in the same run: the median over rounds of the ratio of the two systems'",
        f"medians in that round (below 1.00{X} is faster).",
        "",
    ]
    for size in sizes:
        out += [f"### {size:,} records", ""]
        rows = []
        for system in _systems(results):
            if system["group"] != "ours":
                continue
            for base, short in _peer_baselines(system):
                if not any(s["key"] == base for s in results.systems):
                    continue
                row = [f"{system['label']} / {short}"]
                for op in ops:
                    row.append(fmt_ratio(results.ratio(size, system["key"], op, base)))
                if any(cell != "—" for cell in row[1:]):
                    rows.append(row)
        out += _table(["ours / baseline"] + [OP_TITLES.get(op, op) for op in ops], rows)
        out.append("")
    out += _growth_section(results, plot)
    out += _tracing_section(results)
    out += _bulk_section(results)
    out += ["## Notes", ""]
    for system in _systems(results):
        if system["note"]:
            out.append(f"- {system['label']}: {system['note']}.")
    for key, reason in sorted(results.skipped.items()):
        out.append(f"- `{key}` was not measured: {reason}.")
    for key, verdict in sorted(results.checks.items()):
        if verdict != "ok":
            out.append(f"- Sanity check failed for `{key}`: {verdict}.")
    out.append("")
    return "\n".join(out)


def _growth_section(results: Results, plot: str | None) -> list[str]:
    sizes = _sizes(results)
    out = [
        "## How search cost grows with the store",
        "",
        "Median search latency per size and the log-log slope between sizes (1.0 = linear",
        "growth, as a scan of every record; an index should stay well below it).",
        "",
    ]
    if plot:
        out += [f"![search latency vs records]({plot})", ""]
    header = ["system", "query"] + [f"{s:,}" for s in sizes]
    header += [f"slope {a:,}→{b:,}" for a, b in itertools.pairwise(sizes)]
    rows = []
    for system in _systems(results):
        for op, title in (("search", "keywords"), ("search_question", "question")):
            meds = [results.median(size, system["key"], op) for size in sizes]
            if all(m is None for m in meds):
                continue
            row = [system["label"], title] + [fmt_time(m) for m in meds]
            for a, b in itertools.pairwise(sizes):
                value = slope(results, system["key"], op, a, b)
                row.append("—" if value is None else f"{value:.2f}")
            rows.append(row)
    out += _table(header, rows)
    out.append("")
    out += [
        "The first search after loading a size pays for what the store deferred (both our",
        "backends index new records at the next search, so writes stay cheap); it is not in",
        "the medians above. Its latency, per system:",
        "",
    ]
    rows = []
    for system in _systems(results):
        firsts = [
            results.first_call.get(size, {}).get(system["key"], {}).get("search") for size in sizes
        ]
        if any(f is not None for f in firsts):
            rows.append([system["label"]] + [fmt_time(f) for f in firsts])
    out += _table(["system"] + [f"after loading {s:,}" for s in sizes], rows)
    out.append("")
    return out


def _tracing_section(results: Results) -> list[str]:
    sizes = _sizes(results)
    out = [
        "## Cost of recording spans",
        "",
        "Ours with an SDK provider (batch processor, no-op exporter) against ours with none:",
        "the ratio, and the added time per operation. The redis-py rows put each raw call",
        "inside one bare span of the same set-up: the least any traced client pays here.",
    ]
    if results.span_cost:
        bare = ", ".join(
            f"{size:,}: {fmt_time(_median(results.span_cost.get(size)))}" for size in sizes
        )
        out += [
            f"A bare span of the same SDK set-up (`start_as_current_span`, no attributes, no work)"
            f" costs {bare}.",
        ]
    out.append("")
    ops = ("add", "get", "search", "delete", "add_many")
    rows = []
    pairs = [
        (f"ours-{w}-sdk", f"ours-{w}-nosdk", f"ours ({_WHERE[w]})")
        for w in ("memory", "redis", "valkey")
    ]
    pairs += [
        (f"raw-{w}-span", f"raw-{w}", f"redis-py + bare span ({_WHERE[w]})")
        for w in ("redis", "valkey")
    ]
    for on, off, title in pairs:
        if not (_has(results, on) and _has(results, off)):
            continue
        for size in sizes:
            row = [title, f"{size:,}"]
            for op in ops:
                a, b = results.median(size, on, op), results.median(size, off, op)
                if a is None or b is None:
                    row.append("—")
                    continue
                ratio = results.ratio(size, on, op, off)
                row.append(f"{fmt_ratio(ratio)} (+{fmt_time(max(a - b, 0.0))})")
            if any(cell != "—" for cell in row[2:]):
                rows.append(row)
    out += _table(["ours", "records"] + [OP_TITLES[op] for op in ops], rows)
    out.append("")
    return out


def _bulk_section(results: Results) -> list[str]:
    sizes = _sizes(results)
    out = [
        "## add_many against sequential adds",
        "",
        "Throughput of one `add_many` call relative to the same number of sequential `add`",
        "calls (sequential add median / add_many median per record), and the untimed",
        "bulk-load time of each size for reference.",
        "",
    ]
    rows = []
    for system in _systems(results):
        key = system["key"]
        row = [system["label"]]
        for size in sizes:
            speedup = results.ratio(size, key, "add", key, "add_many")
            row.append("—" if speedup is None else f"{speedup:.1f}{X}")
        for size in sizes:
            load = results.load_seconds.get(size, {}).get(key)
            row.append("—" if load is None else f"{load:.2f} s")
        rows.append(row)
    header = ["system"] + [f"speed-up at {s:,}" for s in sizes]
    header += [f"load to {s:,}" for s in sizes]
    out += _table(header, rows)
    out.append("")
    return out


# --- plot -----------------------------------------------------------------------------------

_STYLE = {"floor": "--", "peer": ":", "ours": "-"}
_WHERE = {"memory": "in-memory", "redis": "Redis", "valkey": "Valkey"}


def plot_search(results: Results, path: Path) -> bool:
    """Search latency vs records, log-log, one line per system/mode; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = _sizes(results)
    palette = plt.get_cmap("tab20").colors
    colors = {s["key"]: palette[i % len(palette)] for i, s in enumerate(_systems(results))}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, (op, title) in zip(
        axes,
        (("search", "keyword recall query"), ("search_question", "natural-language question")),
        strict=True,
    ):
        for system in _systems(results):
            xs, ys = [], []
            for size in sizes:
                med = results.median(size, system["key"], op)
                if med is not None:
                    xs.append(size)
                    ys.append(med * 1e3)
            if not xs:
                continue
            label = system["label"]
            if system["key"] == "langgraph":
                label += " (query ignored: no keyword index)"
            ax.plot(
                xs,
                ys,
                _STYLE.get(system["group"], "-"),
                color=colors[system["key"]],
                marker="s" if system.get("tracing") else "o",
                markersize=4,
                label=label,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records in the store")
        ax.set_title(f"search: {title}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median latency (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Search latency vs records (log-log; dashed: floors, dotted: peers, solid: ours)")
    fig.tight_layout(rect=(0, 0.16, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
