"""Profile one operation of one registered system: where does its time go?

    python -m benchmarks.profile ours-memory-nosdk get --size 10000
    python -m benchmarks.profile ours-redis-nosdk add --size 10000 --profiler pyinstrument

Builds the system from the registry (starting a private server when it needs one), loads
``--size`` records, runs the operation's calls of several rounds (the same plans as the
benchmark, so ``delete`` follows ``add`` and ``search``) and prints the median latency, a
profile of the timed calls only (cProfile by default; pyinstrument or a py-spy flame graph
on request) and, for Redis-backed systems, the server's own time per command
(from its slow log, per Lua script), which tells client cost from server cost.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import time
from typing import Any

from .harness import timer_overhead
from .servers import start_server
from .systems import OPERATIONS, Environment, Operation, all_systems
from .workload import Workload


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("system", help="a system key (python -m benchmarks --list)")
    parser.add_argument("op", choices=[op.name for op in OPERATIONS])
    parser.add_argument("--size", type=int, default=10_000, help="records loaded first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=500)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument(
        "--profiler", choices=["cprofile", "pyinstrument", "none"], default="cprofile"
    )
    parser.add_argument("--top", type=int, default=30, help="cProfile rows to print")
    return parser.parse_args(argv)


async def _server_time_by_script(url: str) -> list[str]:
    """Server time per command (per Lua script for EVALSHA), from the slow log."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=120)
    try:
        entries = await client.slowlog_get(200_000)
    finally:
        await client.aclose()
    names = _script_names()
    groups: dict[str, list[int]] = {}
    for entry in entries:
        command = entry["command"]
        if isinstance(command, bytes):
            command = command.decode(errors="replace")
        words = command.split()
        name = words[0].upper() if words else "?"
        if name in ("EVALSHA", "EVALSHA_RO") and len(words) > 1:
            name = f"EVALSHA {names.get(words[1], words[1][:10])}"
        groups.setdefault(name, []).append(int(entry["duration"]))
    return [
        f"{name}: {len(d)} calls, median {statistics.median(d):.0f} µs, "
        f"mean {statistics.fmean(d):.0f} µs"
        for name, d in sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    ]


def _script_names() -> dict[str, str]:
    """sha -> name of the library's Lua scripts (when it has any)."""
    try:
        from tta_dev_primitives.memory.backends.redis import scripts as redis_scripts
    except ImportError:
        return {}
    out = {}
    for name in dir(redis_scripts):
        sha = getattr(getattr(redis_scripts, name), "sha", None)
        if isinstance(sha, str):
            out[sha] = name
    return out


async def _start_slowlog(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.config_set("slowlog-log-slower-than", 0)
        await client.config_set("slowlog-max-len", 200_000)
        await client.slowlog_reset()
    finally:
        await client.aclose()


async def profile(args: argparse.Namespace) -> None:
    spec = next((s for s in all_systems() if s.key == args.system), None)
    if spec is None:
        raise SystemExit(f"unknown system {args.system!r}")
    reason = spec.unavailable()
    if reason:
        raise SystemExit(f"{spec.key} is not available: {reason}")
    server = start_server(spec.where) if spec.where != "memory" else None
    env = Environment({spec.where: server.url} if server else {})
    adapter = await spec.make(env)
    try:
        workload = Workload()
        t0 = time.perf_counter()
        await adapter.load(workload.records(0, args.size))
        print(f"{spec.label}: loaded {args.size:,} records in {time.perf_counter() - t0:.2f} s")
        ops = {op.name: op for op in OPERATIONS}
        target = ops[args.op]
        # Run the ops before the target in each round (untimed), as the benchmark does.
        before = list(OPERATIONS[: OPERATIONS.index(target)])
        after = list(OPERATIONS[OPERATIONS.index(target) + 1 :])
        overhead = timer_overhead()
        samples: list[float] = []
        profiler: Any = None
        if args.profiler == "cprofile":
            profiler = cProfile.Profile()
        elif args.profiler == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
        if server is not None:
            await _start_slowlog(server.url(0))
        for round_no in range(args.rounds + 1):
            plan = workload.round_plan(args.size, round_no, args.per_round, args.queries, bulk=1000)
            for op in before:
                await _run(adapter, op, plan, None, None)
            measured = round_no > 0  # round 0 warms up
            out: list[float] = []
            await _run(adapter, target, plan, profiler if measured else None, out)
            if measured:
                samples.extend(max(t - overhead, 0.0) / target.items(plan) for t in out)
            for op in after:
                await _run(adapter, op, plan, None, None)
        print(
            f"{args.op}: median {statistics.median(samples) * 1e6:.2f} µs over "
            f"{len(samples)} calls (per record)"
        )
        if args.profiler == "cprofile":
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(args.top)
            print(stream.getvalue())
        elif args.profiler == "pyinstrument":
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        if server is not None:
            print("server time per command or script (slow log, every op of the rounds):")
            for line in (await _server_time_by_script(server.url(0)))[:10]:
                print(f"  {line}")
    finally:
        await adapter.aclose()
        env.shutdown()
        if server is not None:
            server.stop()


async def _run(
    adapter: Any, op: Operation, plan: Any, profiler: Any, out: list[float] | None
) -> None:
    fn = getattr(adapter, op.name, None)
    if fn is None:
        return
    pc = time.perf_counter
    for args in op.calls(adapter, plan):
        if profiler is not None:
            profiler.start() if hasattr(profiler, "output_text") else profiler.enable()
        t0 = pc()
        result = fn(*args)
        if hasattr(result, "__await__"):
            await result
        t1 = pc()
        if profiler is not None:
            profiler.stop() if hasattr(profiler, "output_text") else profiler.disable()
        if out is not None:
            out.append(t1 - t0)
    if op.after is not None:
        await op.after(adapter, plan)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(profile(_parse(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
