"""``python -m benchmarks``: run the side-by-side benchmark and write the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from . import engine, redis_engine, redis_stack_engine
from .harness import QUICK, Config, Results, SizePlan, run
from .report import machine_description, plot_search, render_markdown
from .systems import all_systems


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--sizes", help="comma-separated store sizes to run (default 1000,10000,100000)"
    )
    parser.add_argument(
        "--systems", help="comma-separated system keys or key prefixes (default: all)"
    )
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown report to write")
    parser.add_argument(
        "--plot", default="docs/images/bench-search.png", help="search-growth plot to write"
    )
    parser.add_argument(
        "--json", default="benchmarks/results/latest.json", help="raw samples to write"
    )
    parser.add_argument(
        "--from-json", help="re-render the report from a saved results file (no measuring)"
    )
    parser.add_argument(
        "--engine-sizes",
        default="10000,100000",
        help="record counts of the search-engine targets (benchmarks/engine.py)",
    )
    parser.add_argument("--no-engine", action="store_true", help="skip the search-engine targets")
    parser.add_argument(
        "--engine-only",
        action="store_true",
        help="run only the search-engine targets and replace their section of the report",
    )
    parser.add_argument("--engine-json", default="benchmarks/results/engine.json")
    parser.add_argument(
        "--no-redis-engine", action="store_true", help="skip the Redis search targets"
    )
    parser.add_argument(
        "--redis-only",
        action="store_true",
        help="run only the Redis search targets (benchmarks/redis_engine.py) and replace "
        "their section of the report",
    )
    parser.add_argument("--redis-json", default="benchmarks/results/redis_engine.json")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="only the Redis Cluster scaling run (1, 2, 3 masters; benchmarks/cluster.py), "
        "printed, not written to the report",
    )
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    config = QUICK if args.quick else Config()
    if args.sizes:
        wanted = [int(s) for s in args.sizes.split(",")]
        known = {plan.size: plan for plan in config.sizes}
        plans = tuple(
            known.get(size) or SizePlan(size, rounds=5, per_round=100, queries=5) for size in wanted
        )
        config = replace(config, sizes=plans)
    if args.systems:
        config = replace(config, systems=tuple(args.systems.split(",")))
    return config


def _command(argv: list[str]) -> str:
    """The command that reproduces the report (re-rendering options left out)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--from-json":
            skip = True
        elif not arg.startswith("--from-json="):
            kept.append(arg)
    extra = " ".join(kept)
    if not extra:
        return "make bench"
    return f"make bench BENCH_ARGS='{extra}'"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.cluster:
        from .cluster import ClusterConfig, run_cluster_bench

        quick = ClusterConfig(rounds=1, seconds=0.5, namespaces=4)
        print(run_cluster_bench(quick if args.quick else ClusterConfig()))
        return 0
    if args.list:
        for spec in all_systems():
            reason = spec.unavailable()
            print(f"{spec.key:24} {spec.label:44} {reason or 'available'}")
        return 0
    if args.engine_only:
        section = _engine_section(args, measure=True)
        out = Path(args.out)
        out.write_text(engine.splice(out.read_text(encoding="utf-8"), section), encoding="utf-8")
        print(f"wrote the search engine section of {out}")
        return 0
    if args.redis_only:
        out = Path(args.out)
        section = _redis_section(args, measure=True)
        out.write_text(
            redis_engine.splice(out.read_text(encoding="utf-8"), section), encoding="utf-8"
        )
        print(f"wrote the Redis search section of {out}")
        return 0
    if args.from_json:
        results = Results.from_json(json.loads(Path(args.from_json).read_text()))
    else:
        results = asyncio.run(run(_config(args)))
        results.machine = machine_description()  # the code and machine that were measured
        json_path = Path(args.json)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results.to_json()))
    out = Path(args.out)
    plot = Path(args.plot)
    plotted = plot_search(results, plot)
    relative = None
    if plotted:
        try:
            relative = plot.resolve().relative_to(out.resolve().parent).as_posix()
        except ValueError:
            relative = plot.as_posix()
    command = _command(sys.argv[1:] if argv is None else argv)
    text = render_markdown(results, command=command, machine=machine_description(), plot=relative)
    if not args.no_engine:
        text = engine.splice(text, _engine_section(args, measure=not args.from_json))
    if not args.no_redis_engine:
        text = redis_engine.splice(text, _redis_section(args, measure=not args.from_json))
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    out.write_text(keep_blocks(previous, text), encoding="utf-8")
    print(f"wrote {out}" + (f" and {plot}" if plotted else " (no plot: matplotlib missing)"))
    return 0


_BLOCK = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->\n?", re.S)


def keep_blocks(previous: str, text: str) -> str:
    """``text`` with the marked blocks of ``previous`` it lacks appended, in their order.

    Sections other commands write (``make bench-recall``'s recall section, the memory and
    instruction-count sections of ``benchmarks.memory`` and ``scripts/op_instructions.py``)
    sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; a full run keeps them.
    """
    kept = [
        m.group(0) for m in _BLOCK.finditer(previous) if f"<!-- {m.group(1)}:start -->" not in text
    ]
    if not kept:
        return text
    return text.rstrip("\n") + "\n\n" + "\n".join(block.rstrip("\n") + "\n" for block in kept)


def _redis_section(args: argparse.Namespace, *, measure: bool) -> str:
    path = Path(args.redis_json)
    if measure:
        sizes = [int(n) for n in args.engine_sizes.split(",")]
        results = redis_engine.run(sizes, KINDS)
        results["stack"] = redis_stack_engine.run(sizes)  # {} without Redis Stack
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    elif path.exists():
        results = json.loads(path.read_text(encoding="utf-8"))
    else:
        return ""
    stack = results.pop("stack", {})
    section = redis_engine.render(
        results, f"make bench BENCH_ARGS='--redis-only --engine-sizes {args.engine_sizes}'"
    )
    return section + redis_stack_engine.render(stack)


KINDS = ["redis", "valkey"]


def _engine_section(args: argparse.Namespace, *, measure: bool) -> str:
    path = Path(args.engine_json)
    if measure:
        results = engine.run([int(n) for n in args.engine_sizes.split(",")])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results))
    elif path.exists():
        results = json.loads(path.read_text())
    else:
        return ""
    return engine.render(
        results, f"make bench BENCH_ARGS='--engine-only --engine-sizes {args.engine_sizes}'"
    )


if __name__ == "__main__":
    raise SystemExit(main())
