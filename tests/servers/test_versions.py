"""Versions never repeat: a (key, version) pair never names two different writes.

The tests taking ``memory_backend`` or ``make_memory`` are part of the conformance suite (in
memory, Redis, Valkey, the cluster, the fallback, ...). The others need Redis itself: a
restart that rolls a namespace back, compare-and-set scripts run with an old version, and
other processes emptying and refilling a namespace while this one reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    LambdaPrimitive,
    MemoryBackendError,
    MemoryPrimitive,
    MemoryRecord,
    RedisBackend,
    WorkflowContext,
)
from tta_dev_primitives.memory.backends.redis import scripts as lua
from tta_dev_primitives.memory.backends.redis.index import ChurnedError
from tta_dev_primitives.memory.records import Entry, ListQuery, Namespace, SearchQuery

from tests.support.backends import BackendHarness
from tests.support.clock import FakeClock
from tests.support.redis_servers import FLAVOURS, RedisServer, flush, running_server
from tests.support.subproc import clean_env

MakeMemory = Callable[..., Awaitable[MemoryPrimitive]]


def entry(key: str, value: Any, ttl: float | None = None, meta: Any = None) -> Entry:
    return Entry(key, json.dumps(value), meta, ttl, None)


async def version(backend: Any, namespace: Namespace, key: str) -> int:
    record = await backend.get(namespace, key)
    assert record is not None
    return int(record.seq)


# -- every backend --------------------------------------------------------------------------


async def test_versions_never_repeat_after_emptying(memory_backend: BackendHarness) -> None:
    """A key written again after its namespace was cleared, emptied by a delete or by
    delete_where, or imported again, gets a version above every one it had before."""
    backend = await memory_backend.make(None)
    memory_backend.created.append(backend)
    ns: Namespace = ("versions", memory_backend.name)
    await backend.clear(ns)
    seen = []
    await backend.put(ns, entry("k", 1, meta={"tag": "a"}))
    seen.append(await version(backend, ns, "k"))
    await backend.clear(ns)
    await backend.put(ns, entry("k", 2, meta={"tag": "a"}))
    seen.append(await version(backend, ns, "k"))
    assert await backend.delete(ns, "k")  # the namespace's last record
    await backend.put(ns, entry("k", 3, meta={"tag": "a"}))
    seen.append(await version(backend, ns, "k"))
    assert await backend.delete_where(ns, {"tag": "a"}) == 1
    await backend.put(ns, entry("k", 4))
    seen.append(await version(backend, ns, "k"))
    memory = MemoryPrimitive(backend=backend, namespace=ns)
    exported = [r async for r in memory.export()]
    await backend.clear(ns)
    await memory.import_(exported)  # an import writes: new versions
    seen.append(await version(backend, ns, "k"))
    assert seen == sorted(set(seen)), seen
    await backend.clear(ns)


async def test_list_walk_never_repeats_across_emptying(make_memory: MakeMemory) -> None:
    """A walk whose namespace is emptied and refilled between pages never returns a key
    twice: the refilled records are past its horizon."""
    memory = await make_memory()
    for i in range(4):
        await memory.add(f"k{i}", i)
    page = await memory.list(limit=2, order="oldest")
    assert [r.key for r in page.records] == ["k0", "k1"]
    await memory.clear()
    for i in reversed(range(4)):  # the same keys, in the other order
        await memory.add(f"k{i}", i + 10)
    rest = await memory.list(limit=10, order="oldest", cursor=page.next_cursor)
    assert [r.key for r in rest.records] == []
    assert [r.key for r in (await memory.list(order="oldest")).records] == [
        "k3",
        "k2",
        "k1",
        "k0",
    ]


async def test_compaction_keeps_records_rewritten_after_a_clear(make_memory: MakeMemory) -> None:
    """Another writer clears the namespace and rewrites the same keys while the summarizer
    runs: compaction replaces none of the new records."""
    memory = await make_memory()
    for i in range(8):
        await memory.add(f"k{i}", f"memory number {i}")

    async def racing(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        await memory.clear()
        for i in range(8):
            await memory.add(f"k{i}", f"rewritten {i}")
        return "summary of " + ", ".join(r.key for r in records)

    report = await memory.compact(LambdaPrimitive(racing), keep_last=0)
    assert report.replaced == ()
    assert report.summary_key is None
    assert await memory.get_many([f"k{i}" for i in range(8)]) == {
        f"k{i}": f"rewritten {i}" for i in range(8)
    }


async def test_many_tasks_with_clears_and_a_small_bound(make_memory: MakeMemory) -> None:
    """Tasks adding, reading, deleting, searching, listing and clearing one small namespace
    at once: no call fails."""
    memory = await make_memory(max_size=8)

    async def worker(task: int) -> None:
        for n in range(8):
            key = f"k{(task + n) % 12}"
            roll = (task * 7 + n) % 6
            if roll == 0:
                await memory.add(key, f"task {task} step {n} words", metadata={"t": task % 3})
            elif roll == 1:
                await memory.get(key)
            elif roll == 2:
                await memory.delete(key)
            elif roll == 3:
                await memory.search("words", limit=3)
            elif roll == 4:
                await memory.list(filter={"t": task % 3}, limit=3)
                await memory.delete_where({"t": 99})
            else:
                await memory.clear()

    await asyncio.gather(*(worker(t) for t in range(100)))
    assert await memory.size() <= 8


# -- Redis: versions across restarts and compare-and-set ----------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_version_is_not_given_out_again_after_a_restart_lost_writes(flavour: str) -> None:
    """A server restarted from a snapshot older than its last writes does not give their
    versions out again to new writes."""
    with running_server(flavour) as server:
        backend = RedisBackend.from_url(server.url)
        ns: Namespace = ("restart",)
        await backend.put(ns, entry("k", "saved"))
        client = aioredis.from_url(server.url)
        await client.save()
        await client.aclose()
        await backend.put(ns, entry("k", "lost in the restart"))
        lost = await unread_version(backend, ns)
        await backend.aclose()
        await asyncio.to_thread(server.restart)  # SIGKILL: no save, back to the snapshot
        backend = RedisBackend.from_url(server.url)
        await backend.put(ns, entry("k", "after the restart"))
        assert await unread_version(backend, ns) > lost
        await backend.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_an_index_is_never_caught_up_from_a_rolled_back_log(flavour: str) -> None:
    """A process's index that applied change-log entries a restart then lost (and other
    writes numbered again) is reloaded at its next read, before any restart check: its list
    and search show Redis as it is."""
    with running_server(flavour) as server:
        reader = RedisBackend.from_url(server.url, max_size=None)
        writer = RedisBackend.from_url(server.url, max_size=None)
        ns: Namespace = ("rollback",)
        await writer.put_many(ns, [entry("a", "alpha words"), entry("b", "beta words")])
        client = aioredis.from_url(server.url)
        await client.save()
        await client.aclose()
        await writer.put(ns, entry("c", "gamma words"))
        await writer.put(ns, entry("d", "delta words"))
        assert await listed(reader, ns) == ["a", "b", "c", "d"]
        reader.server_check_interval = 3600  # only the log can tell it
        await writer.aclose()
        await asyncio.to_thread(server.restart)  # back to the snapshot: a, b
        writer = RedisBackend.from_url(server.url, max_size=None)
        for key in ("e", "f", "g"):  # numbered as c and d's entries were, and one more
            await writer.put(ns, entry(key, f"{key} words"))
        assert await listed(reader, ns) == ["a", "b", "e", "f", "g"]
        hits = await reader.search(ns, SearchQuery("words", 10))
        assert sorted(h.key for h in hits) == ["a", "b", "e", "f", "g"]
        assert reader.server_restarts == 0
        await reader.aclose()
        await writer.aclose()


async def listed(backend: RedisBackend, ns: Namespace) -> list[str]:
    page = await backend.list(ns, ListQuery(limit=100, order="oldest"))
    return [r.key for r in page.records]


async def unread_version(backend: RedisBackend, ns: Namespace) -> int:
    """The version of ``k``, read without refreshing its recency (which takes a number of
    the namespace's counter too)."""
    page = await backend.list(ns, ListQuery(filter=None))
    (record,) = [r for r in page.records if r.key == "k"]
    return int(record.seq)


@pytest.mark.redis
async def test_compare_and_set_with_an_old_version_changes_nothing(
    redis_backend: RedisBackend,
) -> None:
    """update's and delete_where's scripts, given the version of a record since deleted (its
    namespace emptied) and written again, change nothing."""
    ns: Namespace = ("cas",)
    space = redis_backend._keys(ns)
    await redis_backend.put(ns, entry("k", "old", meta={"tag": "old"}))
    old = await version(redis_backend, ns, "k")
    assert await redis_backend.delete(ns, "k")
    await redis_backend.put(ns, entry("k", "new", meta={"tag": "new"}))
    rkey = space.rec + b"k"
    removed = await redis_backend._server.eval(lua.REMOVE, space, b"k", old, keys=(rkey,))
    assert removed == 0
    args = (b"k", old, b'"stale"', b"", b"k", b"", b"k")
    assert await redis_backend._server.eval(lua.UPDATE, space, *args, keys=(rkey,)) == 0
    record = await redis_backend.get(ns, "k")
    assert record is not None
    assert (json.loads(record.payload), record.metadata) == ("new", {"tag": "new"})


# -- Redis: other processes emptying and refilling a namespace ------------------------------

CHURN = """
    import asyncio, sys, time
    from tta_dev_primitives import MemoryPrimitive

    async def main(url, seconds):
        memory = MemoryPrimitive(redis_url=url, namespace="churn", fallback=False)
        await memory.size()
        print("go", flush=True)
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            await memory.add_many({f"k{i}": f"churned words {n}" for i in range(6)},
                                  metadata={"tag": "old"})
            await memory.delete_where({"tag": "old"})
            await memory.add("note", f"kept words {n}", metadata={"tag": "new"})
            await memory.clear()
        await memory.aclose()
        print(n)

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def python_process(code: str, *args: str) -> subprocess.Popen[str]:
    """Another Python process running ``code`` (dedented) with ``args``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def churners(url: str, count: int, seconds: float) -> list[subprocess.Popen[str]]:
    return [python_process(CHURN, url, str(seconds)) for _ in range(count)]


@pytest.mark.redis
@pytest.mark.slow
async def test_reads_do_not_fail_while_other_processes_empty_and_refill(
    redis_server: RedisServer,
) -> None:
    """search, list and delete_where keep answering (never "changed faster than they could be
    loaded") while two other processes empty and refill the namespace as fast as they can."""
    await flush(redis_server)
    procs = churners(redis_server.url, 2, 3.0)
    memory = MemoryPrimitive(redis_url=redis_server.url, namespace="churn", fallback=False)
    calls = failures = 0
    errors: list[str] = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert await asyncio.to_thread(p.stdout.readline) == "go\n"
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.0
        while loop.time() < end:
            for call in (
                memory.search("words", limit=3),
                memory.list(limit=3),
                memory.delete_where({"tag": "never"}),
            ):
                calls += 1
                try:
                    await call
                except MemoryBackendError as exc:
                    failures += 1
                    errors.append(str(exc))
    finally:
        await memory.aclose()
        outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    rounds = sum(int(out.split()[-1]) for out, _ in outs)
    assert rounds > 20, outs  # the namespace really was emptied and refilled, often
    assert calls > 30
    assert failures == 0, errors[:3]


WRITER = """
    import asyncio, sys, time
    from tta_dev_primitives import MemoryPrimitive

    async def main(url, seconds):
        memory = MemoryPrimitive(redis_url=url, namespace="cas", fallback=False)
        await memory.size()
        print("go", flush=True)
        end = time.monotonic() + seconds
        rounds = wrong = 0
        while time.monotonic() < end:
            rounds += 1
            await memory.add("k", {"n": rounds, "was": "old"}, metadata={"tag": "old"})
            await asyncio.sleep(0.001)
            await memory.delete("k")  # the namespace's last record: emptied
            await memory.add("k", {"n": rounds}, metadata={"tag": "new"})
            await asyncio.sleep(0.001)
            record = await memory.get_record("k")
            if record is None or record.value != {"n": rounds} or record.metadata["tag"] != "new":
                wrong += 1
            await memory.delete("k")
        await memory.aclose()
        print(rounds, wrong)

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


@pytest.mark.redis
@pytest.mark.slow
async def test_update_and_delete_where_never_act_on_a_newer_write(
    redis_server: RedisServer,
) -> None:
    """While another process writes a key, empties its namespace and writes the key again,
    this process's metadata-only updates never write the old value back over the new one,
    and delete_where({"tag": "old"}) never deletes the record tagged "new"."""
    await flush(redis_server)
    proc = python_process(WRITER, redis_server.url, "3.0")
    memory = MemoryPrimitive(redis_url=redis_server.url, namespace="cas", fallback=False)
    try:
        assert proc.stdout is not None
        assert await asyncio.to_thread(proc.stdout.readline) == "go\n"
        i = 0
        while proc.poll() is None:
            i += 1
            await memory.delete_where({"tag": "old"})
            with contextlib.suppress(KeyError):
                await memory.update("k", metadata={"seen": i})
    finally:
        await memory.aclose()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rounds, wrong = (int(n) for n in out.split())
    assert rounds > 50
    assert wrong == 0, f"{wrong} of {rounds} rounds lost the newer write"


# -- the fallback's journal: acknowledged order ---------------------------------------------


@pytest.mark.redis
async def test_journal_replays_in_acknowledged_order(fresh_server: RedisServer) -> None:
    """update, delete_where and update again during an outage replay in that order: the
    record the first update took out of the filter's reach survives the replay."""
    backend = FallbackBackend(
        RedisBackend.from_url(
            fresh_server.url, socket_timeout=0.5, socket_connect_timeout=0.5, retries=1
        ),
        InMemoryBackend(None),
        probe_interval=3600,
    )
    memory = MemoryPrimitive(backend=backend, namespace="journal")
    await memory.add("note", "the note", metadata={"tag": "draft"})
    await memory.add("other", "a draft", metadata={"tag": "draft"})
    await asyncio.to_thread(fresh_server.kill)
    await memory.update("note", metadata={"tag": "final"})
    assert backend.degraded
    assert await memory.delete_where({"tag": "draft"}) == 1
    await memory.update("note", metadata={"reviewed": True})
    assert (await memory.get_record("note")).metadata == {"tag": "final", "reviewed": True}  # type: ignore[union-attr]
    await asyncio.to_thread(fresh_server.restart)
    assert await backend.recover()
    assert backend.pending == 0
    record = await memory.get_record("note")
    assert record is not None
    assert (record.value, record.metadata) == ("the note", {"tag": "final", "reviewed": True})
    assert await memory.get("other") is None
    await memory.aclose()


class Switchable(InMemoryBackend):
    """An in-memory primary whose writes fail while ``down`` (for the journal's unit tests;
    the outage on a real server is test_journal_replays_in_acknowledged_order)."""

    down = False

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        if self.down:
            raise MemoryBackendError("down", backend="switchable", transient=True)
        return await super().put(namespace, entry)


async def test_journal_merges_a_key_only_where_equivalent() -> None:
    """Writes of one key with nothing of its namespace's in between merge into one entry; a
    delete_where or clear between them keeps both, in order."""
    primary = Switchable(None)
    backend = FallbackBackend(primary, InMemoryBackend(None), probe_interval=3600)
    ns: Namespace = ("merge",)
    primary.down = True
    await backend.put(ns, entry("a", 1, meta={"tag": "x"}))
    await backend.put(("elsewhere",), entry("b", 1))
    await backend.put(ns, entry("a", 2, meta={"tag": "x"}))
    assert backend.pending == 2  # the first write of "a" merged away
    await backend.delete_where(ns, {"tag": "x"})
    await backend.put(ns, entry("a", 3, meta={"tag": "y"}))
    assert backend.pending == 4  # the write after the delete_where is a new entry
    primary.down = False
    assert await backend.recover()
    record = await primary.get(ns, "a")
    assert record is not None
    assert json.loads(record.payload) == 3
    page = await primary.list(ns, ListQuery())
    assert [r.key for r in page.records] == ["a"]
    await backend.aclose()


# -- Redis: bookkeeping bounded by the live records ---------------------------------------


async def namespace_keys(client: aioredis.Redis, prefix: str) -> list[bytes]:
    return sorted([k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)])


@pytest.mark.redis
async def test_expired_namespaces_leave_no_key_behind(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Namespaces whose records all expired (written by add, add_many and update, with
    evictions) disappear from Redis though nothing touches them again; one that holds a
    record without expiry keeps its keys."""
    backend = RedisBackend.from_url(redis_server.url, prefix="gone", max_size=3)
    for i in range(20):
        ns: Namespace = (f"task{i}",)
        await backend.put(ns, entry("a", "one", ttl=0.4))
        await backend.put_many(ns, [entry(f"b{j}", j, ttl=0.5) for j in range(4)])
        await backend.put(ns, entry("a", "again", ttl=0.4))
        await backend.search(ns, SearchQuery("one", 5))
    last = [k.split(b":")[-1] for k in await namespace_keys(redis_client, "gone:{task19}")]
    assert {b"lru", b"st", b"log", b"ttl"} <= set(last), last
    kept: Namespace = ("kept",)
    await backend.put(kept, entry("short", 1, ttl=0.4))
    await backend.put(kept, entry("forever", 2))
    await asyncio.sleep(1.3)  # past every record's expiry, and the bookkeeping's after it
    left = await namespace_keys(redis_client, "gone")
    assert [k for k in left if b"{kept}" not in k] == []
    assert await backend.keys(kept) == ["forever"]
    await backend.aclose()


@pytest.mark.redis
async def test_ttl_index_holds_only_live_records(redis_client: aioredis.Redis) -> None:
    """Evicted, deleted and rewritten-without-expiry records leave no entry in the ttl index."""
    backend = RedisBackend(redis_client, max_size=50)
    ns: Namespace = ("ttl",)
    for i in range(0, 400, 20):
        await backend.put_many(ns, [entry(f"k{j}", j, ttl=60) for j in range(i, i + 20)])
    for j in range(350, 360):
        assert await backend.delete(ns, f"k{j}")
    for j in range(360, 365):
        await backend.put(ns, entry(f"k{j}", "no expiry"))
    base = backend._keys(ns).base
    assert await redis_client.zcard(base + b"lru") == 40
    assert await redis_client.zcard(base + b"ttl") == 35
    await backend.aclose()


@pytest.mark.redis
async def test_reading_many_empty_namespaces_holds_nothing_for_them(
    redis_backend: RedisBackend,
) -> None:
    """Searching and listing thousands of namespaces that hold nothing keeps no index of
    them, and the cached key names stay bounded."""
    for i in range(1500):
        ns: Namespace = ("empty", str(i))
        await redis_backend.search(ns, SearchQuery("anything", 5))
        await redis_backend.list(ns, ListQuery())
    assert len(redis_backend.indexes) == 0
    assert len(redis_backend._namespace_keys) <= redis_backend.namespace_cache_size


@pytest.mark.parametrize("operation", ["search", "list", "delete_where"])
def test_a_load_lost_to_writers_is_transient_and_names_its_operation(operation: str) -> None:
    """The error of a load that kept losing the race names the operation and is transient,
    so a fallback serves the call instead of failing it."""
    backend = RedisBackend(aioredis.Redis(), prefix="p")
    exc = backend._server.failures.error(operation, ChurnedError(b"p:{ns}:"))
    assert exc.transient
    assert f", {operation}:" in str(exc)
    assert "search" not in str(exc) or operation == "search"


async def test_in_memory_namespace_emptied_keeps_nothing() -> None:
    """A namespace emptied by delete or delete_where keeps no store in the process; written
    again, its versions are still above the ones it had."""
    backend = InMemoryBackend(None)
    ns: Namespace = ("emptied",)
    await backend.put(ns, entry("k", 1, meta={"tag": "a"}))
    first = await version(backend, ns, "k")
    assert await backend.delete(ns, "k")
    assert ns not in backend._stores
    await backend.put(ns, entry("k", 2, meta={"tag": "a"}))
    assert await version(backend, ns, "k") > first
    assert await backend.delete_where(ns, {"tag": "a"}) == 1
    assert ns not in backend._stores
    assert await backend.namespaces(()) == []


@pytest.mark.redis
async def test_a_read_of_a_record_whose_namespace_keys_are_gone_leaves_none(
    redis_client: aioredis.Redis,
) -> None:
    """A get of a record whose namespace's own keys were evicted (a volatile-* policy) makes
    no key of its own for the recency it cannot record."""
    backend = RedisBackend(redis_client)
    ns: Namespace = ("evicted",)
    await backend.put_many(ns, [entry("a", 1, ttl=60), entry("b", 2, ttl=60)])
    base = backend._keys(ns).base
    await redis_client.delete(base + b"lru", base + b"st", base + b"log", base + b"ttl")
    assert (await backend.get(ns, "a")) is not None
    assert [r is not None for r in await backend.get_many(ns, ["a", "b"])] == [True, True]
    assert await redis_client.exists(base + b"st") == 0


async def test_in_memory_namespaces_whose_records_expired_do_not_add_up() -> None:
    """Task memory in process: namespaces nobody touches again after their records expired
    are dropped as new namespaces are written, so the stores held follow the live ones."""
    clock = FakeClock()
    backend = InMemoryBackend(None, clock=clock)
    for round_ in range(5):
        for i in range(200):
            await backend.put((f"task{round_}-{i}",), entry("step", i, ttl=1.0))
        clock.advance(2.0)  # every record of the round expired
    assert len(backend._stores) <= 200 + 2
    assert await backend.namespaces(()) == []
