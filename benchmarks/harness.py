"""The timing harness: interleaved rounds over every system, after a warm-up round.

For each store size the harness fills every system with the same records (untimed), then
runs rounds. In a round every system, in an order that rotates from round to round, runs each
operation on the round's plan (the same work for all). Each call is timed on its own with
``time.perf_counter`` (the cost of reading the clock, calibrated in the same run, is
subtracted), so medians and p95s are per-operation latencies. The first round is a warm-up
and is not recorded. Operations a system lacks are skipped; an operation whose calls exceed
their time budget gets fewer calls (at least one per round).

After loading, ``gc.freeze()`` moves the loaded records out of the collector's reach: a real
process holds one store, not a dozen, and full collections over every system's data would
otherwise land on whichever system happened to allocate at that moment. The garbage
collector stays on while timing.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .servers import Server, ServerUnavailable, start_server
from .systems import OPERATIONS, Adapter, Environment, Operation, SystemSpec, all_systems
from .workload import Workload

__all__ = ["Config", "Results", "SizePlan", "run"]


@dataclass(frozen=True)
class SizePlan:
    """How much work to do at one store size."""

    size: int
    rounds: int
    per_round: int
    queries: int
    op_budget: float = 6.0  # seconds one (system, operation) may spend over all rounds
    skip: tuple[str, ...] = ()  # systems (keys or key prefixes) not measured at this size


@dataclass(frozen=True)
class Config:
    """A benchmark run."""

    sizes: tuple[SizePlan, ...] = (
        SizePlan(1_000, rounds=12, per_round=200, queries=20),
        SizePlan(10_000, rounds=10, per_round=200, queries=10),
        # At 100k, only one mode of each path is measured (tracing and fallback=False are
        # shown at 1k and 10k): loading 100k records through Redis scripts takes a while.
        SizePlan(
            100_000,
            rounds=6,
            per_round=100,
            queries=3,
            op_budget=5.0,
            skip=(
                "ours-redis-sdk",
                "ours-valkey-sdk",
                "ours-redis-direct",
                "raw-redis-span",
                "raw-valkey-span",
            ),
        ),
    )
    bulk: int = 1000
    warmup_rounds: int = 1
    seed: int = 20240611
    systems: tuple[str, ...] | None = None  # keys or key prefixes; None = every system

    def selected(self) -> list[SystemSpec]:
        specs = all_systems()
        if self.systems is None:
            return specs
        return [s for s in specs if any(s.key == k or s.key.startswith(k) for k in self.systems)]


QUICK = Config(
    sizes=(
        SizePlan(200, rounds=2, per_round=20, queries=3, op_budget=1.0),
        SizePlan(600, rounds=2, per_round=20, queries=3, op_budget=1.0),
    ),
    bulk=50,
)


@dataclass
class Results:
    """What a run measured; ``samples[size][system][op]`` are seconds per record."""

    config: dict[str, Any]
    systems: list[dict[str, Any]]
    skipped: dict[str, str]
    servers: dict[str, str]
    timer_overhead: float
    samples: dict[int, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    load_seconds: dict[int, dict[str, float]] = field(default_factory=dict)
    span_cost: dict[int, list[float]] = field(default_factory=dict)
    # The first call of each operation after loading a size (warm-up, seconds per record).
    first_call: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)  # filled by the caller
    # Median of each measured round (index = round), None where the round skipped it.
    round_medians: dict[int, dict[str, dict[str, list[float | None]]]] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def median(self, size: int, system: str, op: str) -> float | None:
        data = self.samples.get(size, {}).get(system, {}).get(op)
        return statistics.median(data) if data else None

    def p95(self, size: int, system: str, op: str) -> float | None:
        data = self.samples.get(size, {}).get(system, {}).get(op)
        return percentile(data, 95) if data else None

    def ratio(
        self, size: int, system: str, op: str, base: str, base_op: str | None = None
    ) -> float | None:
        """``system``'s cost over ``base``'s: the median of the per-round ratios.

        Both ran in the same rounds, so pairing them round by round cancels what changed
        between rounds (other load on the machine); the ratio of the overall medians is the
        fallback when no round has both.
        """
        base_op = base_op or op
        rounds = self.round_medians.get(size, {})
        a = rounds.get(system, {}).get(op, [])
        b = rounds.get(base, {}).get(base_op, [])
        paired = [x / y for x, y in zip(a, b, strict=False) if x is not None and y]
        if paired:
            return statistics.median(paired)
        num, den = self.median(size, system, op), self.median(size, base, base_op)
        if num is None or not den:
            return None
        return num / den

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        data = dict(data)
        data["samples"] = {int(k): v for k, v in data["samples"].items()}
        data["load_seconds"] = {int(k): v for k, v in data["load_seconds"].items()}
        data["span_cost"] = {int(k): v for k, v in data["span_cost"].items()}
        data["first_call"] = {int(k): v for k, v in data.get("first_call", {}).items()}
        data["round_medians"] = {int(k): v for k, v in data.get("round_medians", {}).items()}
        return cls(**data)


def percentile(data: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(data)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def timer_overhead(samples: int = 20_000) -> float:
    """Median cost of the two clock reads around each timed call."""
    pc = time.perf_counter
    out = []
    for _ in range(samples):
        t0 = pc()
        t1 = pc()
        out.append(t1 - t0)
    return statistics.median(out)


def _time_sync(fn: Callable[..., Any], calls: list[tuple[Any, ...]], budget: float) -> list[float]:
    pc = time.perf_counter
    out: list[float] = []
    deadline = pc() + budget
    for args in calls:
        t0 = pc()
        fn(*args)
        t1 = pc()
        out.append(t1 - t0)
        if t1 > deadline:
            break
    return out


async def _time_async(
    fn: Callable[..., Any], calls: list[tuple[Any, ...]], budget: float
) -> list[float]:
    pc = time.perf_counter
    out: list[float] = []
    deadline = pc() + budget
    for args in calls:
        t0 = pc()
        await fn(*args)
        t1 = pc()
        out.append(t1 - t0)
        if t1 > deadline:
            break
    return out


class _Runner:
    """Times one system's operations; remembers which ones are coroutines."""

    def __init__(self, spec: SystemSpec, adapter: Adapter) -> None:
        self.spec = spec
        self.adapter = adapter
        self.is_async: dict[str, bool] = {}
        self.spent: dict[str, float] = {}
        self.loaded = 0  # records 0 .. loaded-1 are stored
        self.first_call: dict[str, float] = {}

    async def run_op(
        self, op: Operation, plan: Any, budget: float, overhead: float, *, warmup: bool = False
    ) -> list[float] | None:
        """Time the round's calls of ``op``; seconds per record, or None if unsupported.

        In a warm-up round the first call is timed on its own and kept in ``first_call`` (it
        pays for whatever the system deferred, e.g. indexing what was just loaded).
        """
        fn = getattr(self.adapter, op.name, None)
        if fn is None:
            return None
        calls = op.calls(self.adapter, plan)
        items = op.items(plan)
        start = time.perf_counter()
        kind = self.is_async.get(op.name)
        if warmup or kind is None:
            t0 = time.perf_counter()
            result = fn(*calls[0])
            kind = self.is_async[op.name] = hasattr(result, "__await__")
            if kind:
                await result
            self.first_call[op.name] = (time.perf_counter() - t0) / items
            calls = calls[1:]
        if kind:
            raw = await _time_async(fn, calls, budget)
        else:
            raw = _time_sync(fn, calls, budget)
        if op.after is not None:
            await op.after(self.adapter, plan)
        self.spent[op.name] = self.spent.get(op.name, 0.0) + time.perf_counter() - start
        return [max(t - overhead, 0.0) / items for t in raw]


async def _span_cost(env: Environment, calls: int = 200) -> list[float]:
    """Per-span cost of the SDK setup used by the traced modes, with no work inside."""
    tracer = env.tracer_provider().get_tracer("benchmarks")
    pc = time.perf_counter
    out = []
    for _ in range(calls):
        t0 = pc()
        with tracer.start_as_current_span("bench.span"):
            pass
        out.append(pc() - t0)
    return out


def _machine_servers(servers: dict[str, Server]) -> dict[str, str]:
    return {kind: server.version for kind, server in servers.items()}


async def run(
    config: Config, *, log: Callable[[str], None] = print, want_span_cost: bool = True
) -> Results:
    """Run the benchmark described by ``config`` and return every sample."""
    wall = time.perf_counter()
    specs = config.selected()
    skipped: dict[str, str] = {}
    ready: list[SystemSpec] = []
    for spec in specs:
        reason = spec.unavailable()
        if reason:
            skipped[spec.key] = reason
        else:
            ready.append(spec)

    servers: dict[str, Server] = {}
    for kind in sorted({s.where for s in ready} - {"memory"}):
        try:
            servers[kind] = start_server(kind)
            log(f"started {kind}-server {servers[kind].version} on a free loopback port")
        except ServerUnavailable as exc:
            for spec in ready:
                if spec.where == kind:
                    skipped[spec.key] = str(exc)
    ready = [s for s in ready if s.key not in skipped]
    env = Environment({kind: server.url for kind, server in servers.items()})
    sdk_available = (
        want_span_cost
        and all(s.unavailable() is None for s in ready if s.tracing)
        and any(s.tracing for s in ready)
    )

    overhead = timer_overhead()
    results = Results(
        config=asdict(config),
        systems=[
            {
                "key": s.key,
                "label": s.label,
                "group": s.group,
                "where": s.where,
                "tracing": s.tracing,
                "note": s.note,
            }
            for s in ready
        ],
        skipped=skipped,
        servers=_machine_servers(servers),
        timer_overhead=overhead,
    )
    for key, reason in skipped.items():
        log(f"skipping {key}: {reason}")

    runners: list[_Runner] = []
    try:
        for spec in ready:
            runners.append(_Runner(spec, await spec.make(env)))
        workload = Workload(config.seed)
        for plan in config.sizes:
            results.load_seconds[plan.size] = {}
            active = [r for r in runners if not _skipped(r.spec, plan)]
            start = min((r.loaded for r in active), default=plan.size)
            records = workload.records(start, plan.size)
            for runner in active:
                t0 = time.perf_counter()
                await runner.adapter.load(records[runner.loaded - start :])
                results.load_seconds[plan.size][runner.spec.key] = time.perf_counter() - t0
                runner.loaded = plan.size
            del records
            gc.collect()
            gc.freeze()
            log(f"size {plan.size}: loaded; {plan.rounds} rounds")
            await _run_size(config, plan, active, workload, results, env, overhead, sdk_available)
    finally:
        for runner in runners:
            try:
                await runner.adapter.aclose()
            except Exception as exc:  # a failing close must not lose the results
                log(f"closing {runner.spec.key} failed: {exc!r}")
        env.shutdown()
        for server in servers.values():
            server.stop()
        gc.unfreeze()
    results.wall_seconds = time.perf_counter() - wall
    return results


def _skipped(spec: SystemSpec, plan: SizePlan) -> bool:
    return any(spec.key == k or spec.key.startswith(k) for k in plan.skip)


async def _run_size(
    config: Config,
    plan: SizePlan,
    runners: list[_Runner],
    workload: Workload,
    results: Results,
    env: Environment,
    overhead: float,
    span_cost: bool,
) -> None:
    size_samples: dict[str, dict[str, list[float]]] = {r.spec.key: {} for r in runners}
    results.samples[plan.size] = size_samples
    size_rounds: dict[str, dict[str, list[float | None]]] = {r.spec.key: {} for r in runners}
    results.round_medians[plan.size] = size_rounds
    first_calls: dict[str, dict[str, float]] = {}
    results.first_call[plan.size] = first_calls
    for runner in runners:
        runner.spent = {}
        runner.first_call = {}
    total_rounds = config.warmup_rounds + plan.rounds
    budget = plan.op_budget / max(1, plan.rounds)
    for round_no in range(total_rounds):
        recorded = round_no >= config.warmup_rounds
        if round_no == config.warmup_rounds:
            for runner in runners:  # what the warm-up spent does not count
                runner.spent = {}
        work = workload.round_plan(plan.size, round_no, plan.per_round, plan.queries, config.bulk)
        shift = round_no % max(1, len(runners))
        order = runners[shift:] + runners[:shift]
        for runner in order:
            for op in OPERATIONS:
                spent = runner.spent.get(op.name, 0.0)
                if recorded and spent > plan.op_budget:
                    continue
                samples = await runner.run_op(op, work, budget, overhead, warmup=round_no == 0)
                if samples is None:
                    continue
                if recorded:
                    size_samples[runner.spec.key].setdefault(op.name, []).extend(samples)
                    per_round = size_rounds[runner.spec.key].setdefault(op.name, [])
                    per_round.extend([None] * (round_no - config.warmup_rounds - len(per_round)))
                    per_round.append(statistics.median(samples) if samples else None)
            if round_no == 0:
                first_calls[runner.spec.key] = dict(runner.first_call)
            if not recorded:
                await _check(runner, work, results)
        if span_cost and recorded:
            results.span_cost.setdefault(plan.size, []).extend(
                max(t - overhead, 0.0) for t in await _span_cost(env)
            )
        await asyncio.sleep(0)


async def _check(runner: _Runner, work: Any, results: Results) -> None:
    """Sanity-check a system during warm-up: a stored key reads back."""
    adapter = runner.adapter
    if adapter.get is None or runner.spec.key in results.checks:
        return
    got = adapter.get(*adapter.key_args(work.existing[0]))
    if hasattr(got, "__await__"):
        got = await got
    results.checks[runner.spec.key] = "ok" if got is not None else "get returned None"
