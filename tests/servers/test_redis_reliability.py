"""Never lose an acknowledged write, never serve a wrong answer: real servers that are full,
busy, misconfigured, tampered with, restarted, or used from several event loops.

Every server here is private to its test (``server`` below), so a test may change its
configuration (``maxmemory``, ``maxmemory-policy``, ...) or overwrite its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    RedisBackend,
)

from tests.support.redis_servers import FLAVOURS, RedisServer, running_server

pytestmark = [pytest.mark.redis]


@pytest.fixture(params=FLAVOURS)
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A private server for this test only (it may reconfigure or tamper with it)."""
    with running_server(request.param, ["--busy-reply-threshold", "50"]) as srv:
        yield srv


@pytest.fixture
async def raw(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw client of the private server (the "other client" of each scenario)."""
    client = aioredis.from_url(server.url, socket_timeout=5)
    yield client
    with contextlib.suppress(Exception):
        await client.config_set("maxmemory", "0")
    await client.aclose()


def quick(url: str, **options: Any) -> RedisBackend:
    """A RedisBackend that gives up quickly, so an outage is detected at once."""
    options.setdefault("socket_timeout", 0.3)
    options.setdefault("socket_connect_timeout", 0.3)
    return RedisBackend.from_url(url, retries=0, max_size=None, **options)


async def fill_up(raw: aioredis.Redis) -> None:
    """Make every further write refused: maxmemory below what is used, no eviction."""
    await raw.config_set("maxmemory-policy", "noeviction")
    await raw.config_set("maxmemory", "1")


@contextlib.asynccontextmanager
async def busy(server: RedisServer) -> AsyncIterator[None]:
    """Another client runs a script that never ends: the server answers BUSY meanwhile."""
    looper = aioredis.from_url(server.url, socket_timeout=10)
    killer = aioredis.from_url(server.url, socket_timeout=5)
    task = asyncio.create_task(looper.eval("while true do end", 0))
    await asyncio.sleep(0.15)  # past busy-reply-threshold (50 ms)
    try:
        yield
    finally:
        for _ in range(50):
            try:
                await killer.script_kill()
                break
            except Exception:  # not running yet, or already gone
                await asyncio.sleep(0.02)
        with contextlib.suppress(Exception):
            await task
        await looper.aclose()
        await killer.aclose()


async def close(memory: MemoryPrimitive) -> None:
    """Close the primitive and its backend (an injected backend is not the primitive's)."""
    await memory.aclose()
    await memory.backend.aclose()


async def redis_value(server: RedisServer, namespace: str, key: str) -> Any:
    """What Redis itself holds under ``key`` (through a fresh backend, no fallback)."""
    memory = MemoryPrimitive(redis_url=server.url, namespace=namespace, fallback=False)
    try:
        return await memory.get(key)
    finally:
        await memory.aclose()


# -- 1. replay refused is not lost ------------------------------------------------------------


async def test_replay_refused_by_a_full_server_is_kept_served_and_retried(
    server: RedisServer, raw: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes of an outage that a full Redis refuses on replay stay journaled, are still
    read back, are reported loudly, and reach Redis once it has room again."""
    backend = FallbackBackend(quick(server.url), InMemoryBackend(100), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="r")
    await memory.add("before", "b")
    server.pause()
    try:
        for i in range(10):
            await memory.add(f"k{i}", {"i": i})
    finally:
        server.resume()
    assert backend.degraded
    assert backend.pending == 10
    await fill_up(raw)
    with caplog.at_level(logging.ERROR):
        await backend.recover()
    assert backend.pending == 10, "refused writes must stay journaled"
    assert backend.replay_refusals == 10
    assert sorted(r.key for r in backend.replay_refused) == [f"k{i}" for i in range(10)]
    assert all(r.operation == "add" for r in backend.replay_refused)
    assert any(r.levelno == logging.ERROR and "refused" in r.getMessage() for r in caplog.records)
    # Acknowledged, so still served (Redis does not have them yet).
    assert await memory.get("k3") == {"i": 3}
    assert await memory.get_many(["k1", "k2", "before"]) == {
        "k1": {"i": 1},
        "k2": {"i": 2},
        "before": "b",
    }
    assert await redis_value(server, "r", "k3") is None
    await raw.config_set("maxmemory", "0")
    assert await backend.retry_refused() == 0
    assert backend.pending == 0
    assert backend.replay_refused == []
    assert await redis_value(server, "r", "k3") == {"i": 3}
    assert await memory.get("k9") == {"i": 9}
    await close(memory)


async def test_a_newer_write_supersedes_a_refused_one(
    server: RedisServer, raw: aioredis.Redis
) -> None:
    """A key written (and accepted) after its journaled write was refused is not rolled back."""
    backend = FallbackBackend(quick(server.url), InMemoryBackend(100), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="s")
    server.pause()
    try:
        await memory.add("k", "old")
    finally:
        server.resume()
    await fill_up(raw)
    await backend.recover()
    assert [r.key for r in backend.replay_refused] == ["k"]
    await raw.config_set("maxmemory", "0")
    await memory.add("k", "new")
    assert backend.replay_refused == []
    assert backend.pending == 0
    assert await backend.retry_refused() == 0
    assert await redis_value(server, "s", "k") == "new"
    assert await memory.get("k") == "new"
    await close(memory)


# -- 2. BUSY and LOADING are outages ----------------------------------------------------------


async def test_busy_server_is_served_by_the_fallback(server: RedisServer) -> None:
    """While another client's script keeps Redis BUSY, the fallback serves; nothing is lost."""
    backend = FallbackBackend(quick(server.url), InMemoryBackend(100), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="busy")
    await memory.add("before", 0)
    async with busy(server):
        await memory.add("during", 1)  # must not raise
        assert backend.degraded
        assert await memory.get("during") == 1
        assert await backend.recover() is False  # still busy: stays on the mirror
    assert await backend.recover() is True
    assert await redis_value(server, "busy", "during") == 1
    await close(memory)


async def test_busy_without_fallback_is_a_transient_error(server: RedisServer) -> None:
    """Without a fallback, BUSY is a MemoryBackendError marked transient."""
    memory = MemoryPrimitive(backend=quick(server.url), namespace="busy2")
    await memory.add("k", 1)
    async with busy(server):
        with pytest.raises(MemoryBackendError, match="BUSY") as info:
            await memory.get("k")
        assert info.value.transient is True
    await close(memory)


async def test_loading_server_is_served_by_the_fallback() -> None:
    """A server still loading its dataset (LOADING) is an outage, served by the fallback."""
    with running_server("redis", ["--appendonly", "yes"]) as srv:
        filler = aioredis.from_url(srv.url, socket_timeout=30)
        pipe = filler.pipeline(transaction=False)
        for i in range(5_000):
            pipe.set(f"filler:{i}", "x" * 10)
        await pipe.execute()
        await filler.aclose()
        srv.kill()
        srv.extra_args = [*srv.extra_args, "--key-load-delay", "200"]
        srv.start(until_loaded=False)
        backend = FallbackBackend(quick(srv.url), InMemoryBackend(100), probe_interval=3600)
        memory = MemoryPrimitive(backend=backend, namespace="load")
        await memory.add("k", "v")  # must not raise
        assert backend.degraded
        assert await memory.get("k") == "v"
        await close(memory)


# -- 3. reads work on a full server -----------------------------------------------------------


async def test_reads_work_when_redis_is_full(server: RedisServer, raw: aioredis.Redis) -> None:
    """At maxmemory with noeviction, get/get_many/keys/size still answer; a write is refused
    and stores nothing."""
    memory = MemoryPrimitive(redis_url=server.url, namespace="full", fallback=False)
    await memory.add_many({"a": "apple", "b": "banana"})
    await fill_up(raw)
    assert await memory.get("a") == "apple"
    assert await memory.get_many(["a", "b", "c"]) == {"a": "apple", "b": "banana"}
    assert sorted(await memory.keys()) == ["a", "b"]
    assert await memory.size() == 2
    with pytest.raises(MemoryBackendError, match="maxmemory") as info:
        await memory.add("c", "cherry")
    assert info.value.transient is False
    await raw.config_set("maxmemory", "0")
    assert await memory.get("c") is None
    assert await memory.size() == 2
    await close(memory)


# -- 4. allkeys-* eviction is refused ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
async def test_allkeys_eviction_policy_is_refused(
    server: RedisServer, raw: aioredis.Redis, policy: str
) -> None:
    """A server that may evict any key would corrupt a namespace: refuse it, naming the setting."""
    await raw.config_set("maxmemory-policy", policy)
    for fallback in (False, True):
        memory = MemoryPrimitive(redis_url=server.url, namespace="p", fallback=fallback)
        with pytest.raises(MemoryBackendError, match=f"maxmemory-policy.*{policy}") as info:
            await memory.add("k", 1)
        assert info.value.transient is False
        assert not memory.backend.info().degraded
        await close(memory)
    await raw.config_set("maxmemory-policy", "volatile-lru")
    memory = MemoryPrimitive(redis_url=server.url, namespace="p", fallback=False)
    await memory.add("k", 1)
    assert await memory.get("k") == 1
    await close(memory)
    assert await raw.keys("*") != []


async def test_policy_changed_while_running_is_noticed(
    server: RedisServer, raw: aioredis.Redis
) -> None:
    """A policy switched to allkeys-* after the backend connected is refused after an outage
    (the check runs again after every reconnection) and at the latest within the re-check
    interval."""
    backend = RedisBackend.from_url(server.url, max_size=None)
    backend.server_check_interval = 0.0  # check before every call, for the test
    memory = MemoryPrimitive(backend=backend, namespace="p2")
    await memory.add("k", 1)
    await raw.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(MemoryBackendError, match="maxmemory-policy"):
        await memory.get("k")
    await raw.config_set("maxmemory-policy", "noeviction")
    assert await memory.get("k") == 1
    await close(memory)


# -- 6. a refused write stores nothing ---------------------------------------------------------


@pytest.mark.parametrize("suffix", ["lru", "ttl", "st", "log", "h:c"])
async def test_write_refused_part_way_stores_nothing(
    server: RedisServer, raw: aioredis.Redis, suffix: str
) -> None:
    """When another client overwrote one of the namespace's own keys with the wrong type, a
    write fails with MemoryBackendError and leaves no record behind."""
    backend = RedisBackend.from_url(server.url, max_size=5)
    memory = MemoryPrimitive(backend=backend, namespace="six")
    await memory.add("a", "apple", ttl=60)
    key = backend.key_prefix(("six",)) + suffix
    await raw.delete(key)
    await raw.set(key, "not-what-the-library-wrote")
    for call in (
        lambda: memory.add("c", "cherry", ttl=10),
        lambda: memory.add_many({"c": 1, "d": 2}, ttl=10),
    ):
        with pytest.raises(MemoryBackendError, match=r"wrong|WRONGTYPE"):
            await call()
    await raw.delete(key)
    assert await memory.get_many(["b", "c", "d"]) == {}
    await close(memory)


# -- 7. foreign or garbled data ----------------------------------------------------------------


async def test_garbled_record_is_a_backend_error_naming_the_key(
    server: RedisServer, raw: aioredis.Redis
) -> None:
    """A record key overwritten by another client: get/get_many raise MemoryBackendError
    naming the key; other keys still work."""
    backend = RedisBackend.from_url(server.url)
    memory = MemoryPrimitive(backend=backend, namespace="seven")
    await memory.add_many({"a": "apple", "b": "banana"})
    key = backend.key_prefix(("seven",)) + "h:a"
    garbages: list[Any] = [
        b"garbage",  # a string, not a hash
        {"s": "1", "v": "{not json"},
        {"s": "1", "v": b"\xff\xfe"},
        {"s": "x1", "v": "1"},
        {"v": "1"},  # no write sequence
        {"s": "1"},  # no value
    ]
    for garbage in garbages:
        await raw.delete(key)
        if isinstance(garbage, bytes):
            await raw.set(key, garbage)
        else:
            await raw.hset(key, mapping=garbage)
        for call in (lambda: memory.get("a"), lambda: memory.get_many(["b", "a"])):
            with pytest.raises(MemoryBackendError, match="'a'") as info:
                await call()
            assert info.value.transient is False
        assert await memory.get("b") == "banana"
    await close(memory)


async def test_search_skips_a_garbled_record_and_reports_it_once(
    server: RedisServer, raw: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """One undecodable record (even one not indexed yet) does not fail the namespace's
    searches: it is skipped and reported once."""
    backend = RedisBackend.from_url(server.url)
    memory = MemoryPrimitive(backend=backend, namespace="seven2")
    await memory.add_many({"a": "apple pie", "b": "apple tart", "c": "apple cherry"})
    prefix = backend.key_prefix(("seven2",))
    await raw.hset(prefix + "h:b", "v", "{not json")  # our layout, not JSON
    await raw.delete(prefix + "h:c")
    await raw.set(prefix + "h:c", b"garbage")  # not our layout at all
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert [h.key for h in await memory.search("apple")] == ["a"]
    reports = [r for r in caplog.records if "'b'" in r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in caplog.records]
    await close(memory)


# -- 9, 10. several event loops ----------------------------------------------------------------


def test_redis_primitive_works_across_event_loops(server: RedisServer) -> None:
    """asyncio.run per call (scripts, notebooks): each loop gets its own connection."""
    memory = MemoryPrimitive(redis_url=server.url, namespace="loops", fallback=False)
    asyncio.run(memory.add("k", 1))
    assert asyncio.run(memory.get("k")) == 1
    asyncio.run(memory.add("k", 2))
    assert asyncio.run(memory.search("x")) == []

    async def last() -> Any:
        try:
            return await memory.get("k")
        finally:
            await close(memory)

    assert asyncio.run(last()) == 2


def test_injected_client_from_another_loop_is_a_clear_error(server: RedisServer) -> None:
    """A client the caller made cannot be rebuilt per loop: a clear MemoryBackendError."""
    client = aioredis.from_url(server.url)
    memory = MemoryPrimitive(backend=RedisBackend(client), namespace="loops2")

    async def first() -> None:
        await memory.add("k", 1)
        await client.connection_pool.disconnect()  # so nothing of this loop outlives it

    asyncio.run(first())

    async def second() -> None:
        with pytest.raises(MemoryBackendError, match="another event loop") as info:
            await memory.get("k")
        assert info.value.transient is False
        await client.aclose()

    asyncio.run(second())


def test_degraded_fallback_recovers_in_a_later_event_loop(server: RedisServer) -> None:
    """An outage that began in one event loop ends in the next: the probe runs there too."""
    backend = FallbackBackend(quick(server.url), InMemoryBackend(100), probe_interval=0.05)
    memory = MemoryPrimitive(backend=backend, namespace="loops3")
    server.pause()
    try:
        asyncio.run(memory.add("k", "during"))
    finally:
        server.resume()
    assert backend.degraded

    async def later() -> bool:
        await memory.add("k2", "later")
        for _ in range(100):
            if not backend.degraded:
                return True
            await asyncio.sleep(0.02)
        return False

    assert asyncio.run(later()) is True

    async def check() -> list[Any]:
        try:
            return [await redis_value(server, "loops3", k) for k in ("k", "k2")]
        finally:
            await close(memory)

    assert asyncio.run(check()) == ["during", "later"]


# -- 11. recovery under a tight write loop -----------------------------------------------------


async def test_recovery_catches_up_under_a_tight_write_loop(server: RedisServer) -> None:
    """Writes that never pause do not keep the fallback from switching back."""
    backend = FallbackBackend(quick(server.url), InMemoryBackend(None), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="tight")
    server.pause()
    try:
        for i in range(300):
            await memory.add(f"pre{i}", i)
    finally:
        server.resume()
    stop = False
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop:
            await memory.add(f"w{written}", written)
            written += 1
            if written % 20 == 0:
                await asyncio.sleep(0)

    async def recovered_within(seconds: float) -> bool:
        # A replayed call that outlasts the 0.3 s socket timeout on a loaded machine makes one
        # recover() return False (the primary looked down); what must never happen is that
        # the writer keeps the fallback from ever catching up.
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if await backend.recover():
                return True
        return False

    task = asyncio.create_task(writer())
    try:
        recovered = await asyncio.wait_for(recovered_within(20), 25)
    finally:
        stop = True
        await task
    assert recovered is True
    assert not backend.degraded
    assert backend.pending == 0
    check = MemoryPrimitive(redis_url=server.url, namespace="tight", fallback=False, max_size=None)
    got = await check.get_many([f"w{i}" for i in range(written)] + ["pre0", "pre299"])
    await check.aclose()
    assert len(got) == written + 2
    await close(memory)


# -- 17. process memory is bounded across namespaces --------------------------------------------


async def test_mirror_and_caches_are_bounded_across_namespaces(server: RedisServer) -> None:
    """Touching many namespaces grows neither the mirror nor the backend's per-namespace
    cache without bound."""
    memory = MemoryPrimitive(redis_url=server.url, namespace="root", max_size=400)
    backend: Any = memory.backend
    backend.primary.namespace_cache_size = 50
    for n in range(60):
        await memory.scoped(f"n{n}").add_many({f"k{i}": i for i in range(400)})
    assert await backend.secondary.held() <= 10_000
    assert len(backend.primary._namespace_keys) <= 50
    # Every namespace is still whole in Redis, and the recent ones in the mirror.
    assert await memory.scoped("n0").size() == 400
    assert await backend.secondary.size(("root", "n59")) == 400
    await memory.aclose()


# -- 18. a slow search is not an outage ------------------------------------------------------------


async def test_slow_search_is_not_mistaken_for_an_outage(server: RedisServer) -> None:
    """A search that takes longer than the reply timeout is the search's cost: no degrading."""
    loader = MemoryPrimitive(redis_url=server.url, namespace="slow", fallback=False, max_size=None)
    words = [f"w{i}" for i in range(1000)]
    await loader.add_many({f"k{i}": " ".join(words[i % 900 : i % 900 + 40]) for i in range(1500)})
    await loader.aclose()
    backend = FallbackBackend(
        RedisBackend.from_url(server.url, socket_timeout=0.05, max_size=None),
        InMemoryBackend(None),
        probe_interval=3600,
    )
    memory = MemoryPrimitive(backend=backend, namespace="slow")
    hits = await memory.search("w", limit=5)  # indexes 60 000 words first: far over 50 ms
    assert len(hits) == 5
    assert not backend.degraded
    await close(memory)
