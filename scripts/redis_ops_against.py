"""``add``/``get`` on Redis next to another version of the library, in one process.

    .venv/bin/python scripts/redis_ops_against.py REV [--kind redis|valkey] [--rounds 40]

Extracts the package as it was at git revision ``REV`` (``git archive``) into a temporary
directory under another name, imports both versions, and times them against one private
server (benchmarks/servers.py) in interleaved rounds of 200 calls each: raw redis-py
(``SET``/``GET`` of the JSON), the other version, this one, round after round, so that
whatever else the machine runs weighs on all three alike. Each backend is built by
``RedisBackend.from_url(url, max_size=None)`` with no tracing SDK; the records already exist
(an ``add`` rewrites one). Prints per-call medians, each version's ratio to raw redis-py
(median over rounds of the round's ratio) and this version's ratio to the other.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import start_server

import tta_dev_primitives as current

ROOT = Path(__file__).resolve().parent.parent

VALUE = {"role": "user", "content": "hello world, this is a turn of an agent conversation"}
BATCH = 200
KEYS = [f"k{i}" for i in range(1000)]


def other_version(rev: str, into: Path) -> Any:
    """Import the package as of ``rev`` as ``tta_other``."""
    tar = subprocess.run(
        ["git", "archive", rev, "src/tta_dev_primitives"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    (into / "src" / "tta_dev_primitives").rename(into / "tta_other")
    sys.path.insert(0, str(into))
    return importlib.import_module("tta_other")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare with (e.g. a release)")
    parser.add_argument("--kind", default="redis", choices=["redis", "valkey"])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = other_version(args.rev, Path(tmp))
        server = start_server(args.kind)
        try:
            await compare(server.url(), other, args.rounds, f"{args.kind} {server.version}")
        finally:
            server.stop()


async def compare(url: str, other: Any, rounds: int, label: str) -> None:
    raw = aioredis.from_url(url)
    then = other.MemoryPrimitive(
        backend=other.RedisBackend.from_url(url, max_size=None), namespace="then"
    )
    now = current.MemoryPrimitive(
        backend=current.RedisBackend.from_url(url, max_size=None), namespace="now"
    )
    for key in KEYS:
        await then.add(key, VALUE)
        await now.add(key, VALUE)
        await raw.set(key, json.dumps(VALUE))

    async def raw_get(key: str) -> Any:
        data = await raw.get(key)
        return None if data is None else json.loads(data)

    ops: dict[str, Callable[[str], Awaitable[Any]]] = {
        "raw add": lambda k: raw.set(k, json.dumps(VALUE)),
        "other add": lambda k: then.add(k, VALUE),
        "this add": lambda k: now.add(k, VALUE),
        "raw get": raw_get,
        "other get": then.get,
        "this get": now.get,
    }
    times: dict[str, list[float]] = {name: [] for name in ops}
    for r in range(rounds):
        for name, op in ops.items():
            start = time.perf_counter()
            for i in range(BATCH):
                await op(KEYS[(r * BATCH + i) % len(KEYS)])
            times[name].append((time.perf_counter() - start) / BATCH * 1e6)
    print(f"{label}, {rounds} interleaved rounds of {BATCH} calls, no SDK")
    for what in ("add", "get"):
        base = times[f"raw {what}"]
        for who in ("other", "this"):
            own = times[f"{who} {what}"]
            ratio = statistics.median(a / b for a, b in zip(own, base, strict=True))
            print(
                f"  {who:5} {what}: {statistics.median(own):6.1f} us/call, "
                f"{ratio:.3f}x raw redis-py ({statistics.median(base):.1f} us)"
            )
        pairs = zip(times[f"this {what}"], times[f"other {what}"], strict=True)
        print(f"  this/other {what}: {statistics.median(a / b for a, b in pairs):.3f}")
    await raw.aclose()
    await then.aclose()
    await now.aclose()


if __name__ == "__main__":
    asyncio.run(main())
