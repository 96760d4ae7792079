"""MemoryPrimitive on a real multi-node Redis Cluster: URLs, key layout, failover, resharding.

The conformance suite runs on the session's shared cluster (``tests/conftest.py``); this
module checks what only a cluster can break: that every key of a namespace stays in the
namespace's hash slot, that namespaces spread over every master, and that killing a master
or moving slots under a concurrent workload loses no acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from tta_dev_primitives import (
    FallbackBackend,
    HashingEmbedder,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    RedisBackend,
)

from tests.support.cluster import TestCluster, running_cluster, shared_cluster
from tests.support.paths import ROOT
from tests.support.subproc import run_code

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> TestCluster:
    """The session's shared cluster (3 masters, 3 replicas); tests must not hurt it."""
    return shared_cluster(request.config)


@pytest.fixture
def own_cluster() -> Iterator[TestCluster]:
    """A cluster of this test's own (3 masters, 3 replicas), to kill nodes or move slots."""
    with running_cluster(3, 1) as cluster:
        yield cluster


def all_keys(cluster: TestCluster) -> dict[bytes, int]:
    """Every key on every master (but the prefix's namespace registry, which namespaces()
    reads), with the port of the master holding it."""
    out: dict[bytes, int] = {}
    for master in cluster.masters():
        for key in cluster.admin(master.port).scan_iter(count=1000):
            if b"{%registry}" not in key:
                out[key] = master.port
    return out


def namespace_slot(cluster: TestCluster, backend: RedisBackend, memory: MemoryPrimitive) -> int:
    """The hash slot of ``memory``'s namespace (of its first key, the tag decides)."""
    return cluster.keyslot(backend.key_prefix(memory.namespace) + "lru")


# -- URLs and clients ---------------------------------------------------------------------------


async def test_cluster_url_reaches_the_cluster(cluster: TestCluster) -> None:
    """`redis_url="redis+cluster://..."` stores in the cluster, behind the fallback."""
    memory = MemoryPrimitive(redis_url=cluster.url, namespace="url-test")
    async with memory:
        assert isinstance(memory.backend, FallbackBackend)
        primary = memory.backend.primary
        assert isinstance(primary, RedisBackend)
        assert isinstance(primary._server.client, RedisCluster)
        await memory.add("greeting", {"text": "hello cluster"})
        assert memory.is_using_redis()
        assert await memory.get("greeting") == {"text": "hello cluster"}
        info = memory.get_backend_info()
        assert info["backend"] == "redis"
        assert not info["degraded"]
        assert await memory.clear() == 1


async def test_cluster_url_with_several_nodes(cluster: TestCluster) -> None:
    """A cluster URL may name several nodes; a dead first node is skipped at discovery."""
    dead = f"127.0.0.1:{_closed_port()}"
    nodes = ",".join([dead, *(f"127.0.0.1:{p}" for p in cluster.ports[:2])])
    backend = RedisBackend.from_url(f"redis+cluster://{nodes}/0", max_size=None)
    memory = MemoryPrimitive(backend=backend, namespace="several")
    async with memory:
        await memory.add("k", 1)
        assert await memory.get("k") == 1
        await memory.clear()
    await backend.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:notaport",
        "redis+cluster://127.0.0.1:7000/3",
        "redis+cluster://:7000",
        "redis+cluster://127.0.0.1:99999",
    ],
)
def test_bad_cluster_url_is_a_value_error(url: str) -> None:
    """A cluster URL with a bad port, a database other than 0 or no host is refused."""
    with pytest.raises(ValueError, match="URL"):
        MemoryPrimitive(redis_url=url)


async def test_a_ready_cluster_client_is_accepted(cluster: TestCluster) -> None:
    """`RedisBackend(RedisCluster(...))` works, and closing the backend leaves the client."""
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    backend = RedisBackend(client, max_size=None)
    memory = MemoryPrimitive(backend=backend, namespace="ready")
    await memory.add("k", "v")
    assert await memory.get("k") == "v"
    await memory.clear()
    await backend.aclose()
    assert await client.ping()  # still ours to use
    await client.aclose()


def test_docs_example_runs(cluster: TestCluster) -> None:
    """The example at the top of docs/memory/cluster.md runs against a cluster."""
    text = (ROOT / "docs" / "memory" / "cluster.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_code(code, REDIS_CLUSTER_URL=cluster.url)
    assert out.splitlines() == [
        "I deploy with Kubernetes on Fridays",
        "['turn:1']",
        "redis True",
    ]


async def test_cluster_benchmark_driver_runs(cluster: TestCluster) -> None:
    """The cluster benchmark's client loop does its adds and gets on a real cluster."""
    from benchmarks.cluster import _drive

    ops, elapsed = await _drive(cluster.url, ["bench-smoke-a", "bench-smoke-b"], 0.2)
    assert ops > 0
    assert elapsed >= 0.2
    backend = RedisBackend.from_url(cluster.url)
    try:
        assert len(await backend.keys(("default", "bench-smoke-a"))) > 0
        for name in ("bench-smoke-a", "bench-smoke-b"):
            await backend.clear(("default", name))
    finally:
        await backend.aclose()


# -- key layout ---------------------------------------------------------------------------------


async def test_every_key_of_a_namespace_shares_its_slot(cluster: TestCluster) -> None:
    """After every kind of operation, each namespace's keys all hash to the namespace's slot,
    and 30 namespaces land on every master."""
    backend = RedisBackend.from_url(cluster.url, max_size=20)
    memory = MemoryPrimitive(backend=backend, embedder=HashingEmbedder(16))
    names = [("layout", f"n{i}", "a:{b}*") for i in range(30)]
    for parts in names:
        view = memory.scoped(*parts)
        await view.add_many({f"k{j}{{x}}": f"alpha beta {j} {parts[1]}" for j in range(25)})
        await view.add("ttl", "gamma alpha", ttl=30, metadata={"kind": "t"})
        await view.get_many(["k21{x}", "missing"])
        for mode in ("keyword", "semantic", "hybrid"):
            assert await view.search("alpha", mode=mode, limit=3)  # type: ignore[arg-type]
        await view.search("beta", filter={"kind": "t"})
        await view.delete("k22{x}")
        assert await view.size() == 19
        assert len(await view.keys()) == 19
    keys = all_keys(cluster)
    where: dict[tuple[str, ...], set[int]] = {}
    for parts in names:
        view = memory.scoped(*parts)
        prefix = backend.key_prefix(view.namespace).encode()
        mine = [k for k in keys if k.startswith(prefix)]
        assert len(mine) > 5
        assert prefix + b"log" in mine  # the change log lives in the namespace's slot too
        assert {cluster.keyslot(k) for k in mine} == {namespace_slot(cluster, backend, view)}
        where[parts] = {keys[k] for k in mine}
        assert len(where[parts]) == 1
    masters = {m.port for m in cluster.masters()}
    assert set().union(*where.values()) == masters, "namespaces did not spread over the masters"
    for parts in names:
        assert await memory.scoped(*parts).clear() == 19
    await memory.aclose()
    await backend.aclose()


async def test_valkey_cluster_serves_the_same_contract() -> None:
    """A 3-master Valkey cluster: writes, reads, every search mode, list, delete_where and
    clear work, every key of a namespace (its change log included) in one slot."""
    with running_cluster(3, 0, flavour="valkey") as cluster:
        backend = RedisBackend.from_url(cluster.url, max_size=None)
        memory = MemoryPrimitive(backend=backend, embedder=HashingEmbedder(16))
        try:
            for n in range(6):
                view = memory.scoped("valkey", str(n))
                await view.add_many(
                    {f"k{i}": f"alpha beta {i}" for i in range(20)}, metadata={"n": n}
                )
                assert await view.get("k3") == "alpha beta 3"
                for mode in ("keyword", "semantic", "hybrid"):
                    hits = await view.search("alpha", mode=mode, limit=5)  # type: ignore[arg-type]
                    assert len(hits) == 5
                page = await view.list(limit=7)
                assert len(page.records) == 7
                assert page.next_cursor is not None
                assert await view.delete_where({"n": n}) == 20
                await view.add("x", "gamma")
                prefix = backend.key_prefix(view.namespace).encode()
                mine = [k for k in all_keys(cluster) if k.startswith(prefix)]
                assert prefix + b"log" in mine
                slot = namespace_slot(cluster, backend, view)
                assert {cluster.keyslot(k) for k in mine} == {slot}
                assert await view.clear() == 1
        finally:
            await memory.aclose()
            await backend.aclose()


async def test_ask_redirections_are_followed() -> None:
    """While a namespace's slot is migrating (every key already on the target, the slot not
    yet handed over), reads, overwrites and deletes follow the ASK to the target; writes of
    new keys (which Redis may hold back with TRYAGAIN until the hand-over) complete once it
    is done, pipelined batches included; nothing is lost."""
    with running_cluster(3, 0) as cluster:
        backend = RedisBackend.from_url(cluster.url, max_size=None, socket_timeout=5.0)
        memory = MemoryPrimitive(backend=backend)
        try:
            # Several pooled connections per node: redis-py sends ASKING on one of them and
            # the command on another, so its own ASK handling fails here.
            await asyncio.gather(*(memory.scoped(f"warm{i}").add("k", i) for i in range(60)))
            view = memory.scoped("moving")
            await view.add_many({f"k{i}": f"old record {i}" for i in range(10)})
            slot = namespace_slot(cluster, backend, view)
            source = cluster.master_of_slot(slot).port
            target = next(m.port for m in cluster.masters() if m.port != source)
            cluster.begin_migration(slot, target)
            assert cluster.move_keys(slot, target) > 10
            assert await view.get("k3") == "old record 3"
            await view.add("k1", "old record 1 again")
            assert await view.delete("k0")
            assert await view.size() == 9
            hits = await view.search("old", limit=20)
            assert sorted(h.key for h in hits) == sorted(f"k{i}" for i in range(1, 10))
            writes = asyncio.gather(
                view.add("new", "new record"),
                view.add_many({f"b{i}": f"batch record {i}" for i in range(2500)}),
            )
            await asyncio.sleep(0.3)
            await asyncio.to_thread(cluster.end_migration, slot, target)
            await writes
            assert cluster.master_of_slot(slot).port == target
            assert await view.size() == 2510
            assert await view.get("new") == "new record"
            assert await view.get("k1") == "old record 1 again"
            assert await view.get("b2499") == "batch record 2499"
            on_source = cluster.admin(source).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            assert on_source == 0
        finally:
            await backend.aclose()


# -- faults -------------------------------------------------------------------------------------


class Workload:
    """Concurrent writers, one per namespace, each adding keys k0, k1, ... until stopped.

    ``acked[ns]`` lists the keys whose ``add`` returned (acknowledged); ``degraded_acks``
    counts those acknowledged while the fallback was serving.
    """

    def __init__(self, memory: MemoryPrimitive, names: list[str]) -> None:
        self.memory = memory
        self.names = names
        self.acked: dict[str, list[str]] = {n: [] for n in names}
        self.degraded_acks = 0
        self.searches = 0
        self._stop = asyncio.Event()
        self._warm = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(n)) for n in self.names]
        self._tasks.append(asyncio.create_task(self._searcher()))

    async def _writer(self, name: str) -> None:
        view = self.memory.scoped(name)
        i = 0
        while not self._stop.is_set():
            key = f"k{i}"
            await view.add(key, {"text": f"record {i} of {name} shared"})
            self.acked[name].append(key)
            if i == 20 and min(len(v) for v in self.acked.values()) >= 20:
                self._warm.set()
            if not self.memory.is_using_redis():
                self.degraded_acks += 1
            i += 1
            # About 200 writes a second each: enough to be mid-write at any moment, few
            # enough that replaying an outage's journal takes a fraction of a second.
            await asyncio.sleep(0.005)

    async def _searcher(self) -> None:
        # Searches run throughout (served by whichever backend is active); their results are
        # checked after recovery, against the cluster.
        while not self._stop.is_set():
            view = self.memory.scoped(self.names[0])
            hits = await view.search("shared", limit=5)
            assert all(h.value["text"].endswith("shared") for h in hits)
            self.searches += 1
            await asyncio.sleep(0.01)

    async def warmed_up(self) -> None:
        """Wait (10 s at most) until every writer has 20 acknowledged writes."""
        async with asyncio.timeout(10):
            await self._warm.wait()

    async def stop(self) -> None:
        """Stop the writers; raise the first error one of them met."""
        self._stop.set()
        errors = [e for e in await asyncio.gather(*self._tasks, return_exceptions=True) if e]
        self._tasks = []
        if errors:
            raise errors[0]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


def names_on_every_master(
    cluster: TestCluster, backend: RedisBackend, memory: MemoryPrimitive, per_master: int
) -> list[str]:
    """Names of ``memory.scoped(name)`` namespaces, ``per_master`` on each master."""
    by_master: dict[int, list[str]] = {m.port: [] for m in cluster.masters()}
    i = 0
    while any(len(v) < per_master for v in by_master.values()):
        name = f"w{i}"
        port = cluster.master_of_slot(namespace_slot(cluster, backend, memory.scoped(name))).port
        if len(by_master[port]) < per_master:
            by_master[port].append(name)
        i += 1
    return [n for names in by_master.values() for n in names]


async def wait_recovered(fallback: FallbackBackend) -> None:
    """Wait (15 s at most) until the fallback has replayed its journal to the primary."""
    for _ in range(300):
        if await fallback.recover():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the primary did not come back within 15 s")


async def check_nothing_lost(url: str, workload: Workload) -> None:
    """Every acknowledged write is in the cluster, and searches find exactly them."""
    checker = RedisBackend.from_url(url, max_size=None)
    memory = MemoryPrimitive(backend=checker)
    try:
        for name, acked in workload.acked.items():
            view = memory.scoped(name)
            stored = set(await view.keys())
            lost = [k for k in acked if k not in stored]
            assert not lost, f"{len(lost)} acknowledged writes lost in {name}: {lost[:5]}"
            assert stored == set(acked)
            got = await view.get_many(acked)
            assert all(got[k] == {"text": f"record {k[1:]} of {name} shared"} for k in acked), name
            hits = await view.search("shared", limit=len(acked) + 5)
            assert {h.key for h in hits} == set(acked)
            last = acked[-1]
            best = await view.search(f"record {last[1:]} of {name}", limit=1)
            assert [h.key for h in best] == [last]
    finally:
        await memory.aclose()
        await checker.aclose()


@pytest.fixture
async def workload(own_cluster: TestCluster) -> AsyncIterator[Workload]:
    """Writers on 6 namespaces (2 on each master) of a MemoryPrimitive over the test's own
    cluster, behind a fallback that probes every 0.1 s; not started yet."""
    primary = RedisBackend.from_url(own_cluster.url, max_size=None, socket_timeout=1.0)
    fallback = FallbackBackend(primary, InMemoryBackend(None), probe_interval=0.1)
    memory = MemoryPrimitive(backend=fallback)
    workload = Workload(memory, names_on_every_master(own_cluster, primary, memory, 2))
    yield workload
    with contextlib.suppress(Exception):
        await workload.stop()
    await memory.aclose()
    await fallback.aclose()


async def test_a_dead_replica_does_not_fail_the_probe(own_cluster: TestCluster) -> None:
    """With a replica killed (its master still serving), ping() answers and operations run,
    so a fallback's probe brings the cluster back rather than waiting for the replica."""
    cluster = own_cluster
    # No retries: a probe that asked the dead replica would fail, not retry elsewhere.
    backend = RedisBackend.from_url(cluster.url, max_size=None, retries=0)
    try:
        await backend.ping()  # the client now knows every node, the replicas included
        replica = next(n for n in cluster.nodes() if n.role == "slave")
        cluster.kill(replica.port)
        await backend.ping()
        memory = MemoryPrimitive(backend=backend, namespace="replica-down")
        await memory.add("k", "v")
        assert await memory.get("k") == "v"
        await memory.clear()
    finally:
        await backend.aclose()


@pytest.mark.slow
async def test_master_killed_under_load_loses_nothing(
    own_cluster: TestCluster, workload: Workload
) -> None:
    """SIGKILL a master mid-workload: its replica is promoted, the fallback serves meanwhile
    and replays, and every acknowledged write is in the cluster afterwards."""
    cluster = own_cluster
    memory = workload.memory
    fallback = memory.backend
    assert isinstance(fallback, FallbackBackend)
    primary = fallback.primary
    assert isinstance(primary, RedisBackend)
    names = workload.names
    victim = cluster.master_of_slot(namespace_slot(cluster, primary, memory.scoped(names[0])))
    heir = cluster.replica_of(victim)
    workload.start()
    await workload.warmed_up()
    before = workload.total
    cluster.kill(victim.port)
    await asyncio.to_thread(cluster.wait_promoted, heir.port)
    await asyncio.sleep(0.3)
    await workload.stop()
    await wait_recovered(fallback)
    assert fallback.pending == 0
    assert fallback.fallback_activations >= 1
    assert workload.degraded_acks > 0, "the fallback never served"
    assert workload.total > before > 0
    promoted = next(n for n in cluster.nodes() if n.port == heir.port)
    assert promoted.role == "master"
    assert promoted.slots
    await check_nothing_lost(cluster.url, workload)


@pytest.mark.slow
async def test_slots_move_under_load_lose_nothing(
    own_cluster: TestCluster, workload: Workload
) -> None:
    """Move the slots of busy namespaces to another master (MIGRATING/IMPORTING + MIGRATE,
    then `redis-cli --cluster reshard`) mid-workload: redirections are followed, nothing is
    lost, no operation fails, and searches stay correct."""
    cluster = own_cluster
    memory = workload.memory
    fallback = memory.backend
    assert isinstance(fallback, FallbackBackend)
    primary = fallback.primary
    assert isinstance(primary, RedisBackend)
    names = workload.names
    workload.start()
    await workload.warmed_up()
    masters = [m.port for m in cluster.masters()]
    # A bulk reshard first (redis-cli picks the slots), then single slots of four namespaces
    # (so each one's final master is known).
    await asyncio.to_thread(cluster.reshard, masters[0], masters[1], 200)
    moved = []
    for name in names[:4]:
        slot = namespace_slot(cluster, primary, memory.scoped(name))
        source = cluster.master_of_slot(slot).port
        target = next(p for p in masters if p != source)
        keys = await asyncio.to_thread(cluster.migrate_slot, slot, target, 3)
        moved.append((name, source, target, keys))
        await asyncio.sleep(0.05)
    assert all(keys > 0 for *_, keys in moved)
    await asyncio.sleep(0.2)
    await workload.stop()
    assert fallback.fallback_activations == 0, "a redirection was taken for an outage"
    for name, _, target, _ in moved:
        assert (
            cluster.master_of_slot(namespace_slot(cluster, primary, memory.scoped(name))).port
            == target
        )
    await check_nothing_lost(cluster.url, workload)


def _closed_port() -> int:
    from tests.support.redis_servers import free_port

    return free_port()


def test_fixture_cluster_enforces_slots(cluster: TestCluster) -> None:
    """The fixture's cluster refuses a multi-key command across slots."""
    port = cluster.master_of_slot(cluster.keyslot("a")).port
    with pytest.raises(redis.ResponseError, match="same slot"):
        cluster.admin(port).execute_command("MGET", "a", "b")


async def test_more_concurrent_operations_than_connections_per_node(cluster: TestCluster) -> None:
    """300 concurrent operations through a cluster client allowed 10 connections per node:
    the backend holds those past the limit back instead of failing them (redis-py's cluster
    client raises MaxConnectionsError where a pool would wait)."""
    backend = RedisBackend.from_url(cluster.url, max_size=None, max_connections=10)
    memory = MemoryPrimitive(backend=backend)
    try:
        views = [memory.scoped("many", str(i % 30)) for i in range(300)]
        await asyncio.gather(*(v.add(f"k{i}", i) for i, v in enumerate(views)))
        got = await asyncio.gather(*(v.get(f"k{i}") for i, v in enumerate(views)))
        assert got == list(range(300))
        for n in range(30):
            assert await memory.scoped("many", str(n)).clear() == 10
        # The server check and the first write's embedder lookup are commands of their own,
        # outside the scripts: they wait for a connection too.
        backend.server_check_interval = 0.0
        fresh = [memory.scoped("more", str(i % 60)) for i in range(300)]
        await asyncio.gather(*(v.add_many({f"m{i}": i}) for i, v in enumerate(fresh)))
        got = await asyncio.gather(*(v.get(f"m{i}") for i, v in enumerate(fresh)))
        assert got == list(range(300))
    finally:
        await memory.aclose()
        await backend.aclose()


@pytest.mark.slow
async def test_a_failover_is_logged_as_a_failover_not_a_restart(
    own_cluster: TestCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Killing the master the server check asks: the promoted replica answering is logged at
    WARNING as a failover, never at ERROR as a restart, and the backend reloads what it
    keeps of the namespace (acknowledged writes may be gone, as after a restart)."""
    cluster = own_cluster
    backend = RedisBackend.from_url(cluster.url, max_size=None, socket_timeout=1.0)
    backend.server_check_interval = 0.0  # check before every operation
    memory = MemoryPrimitive(backend=backend, namespace="failover-log")
    try:
        await memory.add("k", "v")
        client = backend._server.client
        assert isinstance(client, RedisCluster)
        asked = client.get_default_node()
        assert asked is not None
        victim = next(n for n in cluster.nodes() if n.port == asked.port)
        assert victim.role == "master"
        heir = cluster.replica_of(victim)
        before = backend.server_restarts
        caplog.set_level("WARNING", logger="tta_dev_primitives.memory.backends.redis")
        cluster.kill(victim.port)
        await asyncio.to_thread(cluster.wait_promoted, heir.port)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await memory.add("k2", "v2")
                break
            except MemoryBackendError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
        assert await memory.get("k2") == "v2"
        records = [r for r in caplog.records if r.name.endswith("backends.redis")]
        assert not [r for r in records if r.levelname == "ERROR"], [r.message for r in records]
        failover = [r for r in records if "answers now instead of" in r.message]
        assert len(failover) == 1
        assert failover[0].levelname == "WARNING"
        assert f":{victim.port}" in failover[0].message
        assert backend.server_restarts == before + 1
    finally:
        await memory.aclose()
        await backend.aclose()
