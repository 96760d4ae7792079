"""RedisBackend on real private servers (Redis and Valkey): key layout, expiry, scripts, errors,
the lazily caught-up search index, and equivalence with the in-memory reference."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tta_dev_primitives import (
    FallbackBackend,
    HashingEmbedder,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    RedisBackend,
)
from tta_dev_primitives.memory.backends.redis import namespace_tag
from tta_dev_primitives.memory.records import Entry, SearchQuery

from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer, check_index, free_port

pytestmark = pytest.mark.redis


def entry(key: str, value: Any, ttl: float | None = None, meta: Any = None) -> Entry:
    return Entry(key, json.dumps(value, ensure_ascii=False), meta, ttl, None)


# -- key layout ---------------------------------------------------------------------------------

parts = st.text(min_size=0, max_size=6)


@given(st.lists(parts, max_size=4), st.lists(parts, max_size=4))
def test_namespace_tags_are_injective_and_brace_free(a: list[str], b: list[str]) -> None:
    """Distinct namespaces get distinct hash tags, never empty and never holding a brace."""
    ta, tb = namespace_tag(tuple(a)), namespace_tag(tuple(b))
    assert (ta == tb) == (tuple(a) == tuple(b))
    assert ta
    assert "{" not in ta
    assert "}" not in ta


def test_namespace_tags_read_naturally() -> None:
    """Plain namespaces keep their names; separators and braces are escaped."""
    assert namespace_tag(("default",)) == "default"
    assert namespace_tag(("a", "b")) == "a:b"
    assert namespace_tag(("a:b",)) == "a%3Ab"
    assert namespace_tag(("{x}",)) == "%7Bx%7D"


async def test_every_key_of_a_namespace_shares_its_hash_tag(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """All keys a namespace creates start with its prefix, whose hash tag is the namespace's."""
    backend = RedisBackend.from_url(redis_server.url)
    tricky = ["*", "?", "[a-z]", "{x}", "a}b{", "k:1", "ünï 東京", "\\", "%3A"]
    for ns in [("foo",), ("foobar",), ("a", "b"), ("a:b",), ("x}{y",)]:
        for key in tricky:
            await backend.put(ns, entry(key, f"value {key} of {ns}"))
        await backend.search(ns, SearchQuery("value", 3))  # builds the index keys too
    all_keys = [k async for k in redis_client.scan_iter(count=1000)]
    for ns in [("foo",), ("foobar",), ("a", "b"), ("a:b",), ("x}{y",)]:
        prefix = backend.key_prefix(ns).encode()
        tag = prefix[prefix.index(b"{") + 1 : prefix.index(b"}")]
        assert tag == namespace_tag(ns).encode()
        mine = [k for k in all_keys if k.startswith(prefix)]
        assert len(mine) > 5
        for key in mine:  # Redis Cluster hashes the first {...}: the namespace's tag
            assert key[key.index(b"{") + 1 : key.index(b"}")] == tag
        assert sorted(await backend.keys(ns)) == sorted(tricky)
    await backend.aclose()


async def test_namespaces_never_meet(redis_backend: RedisBackend) -> None:
    """Prefix-sharing and separator-holding namespaces are fully isolated."""
    pairs = [(("foo",), ("foobar",)), (("a", "b"), ("a:b",)), (("a",), ("a", "b"))]
    for left, right in pairs:
        await redis_backend.put(left, entry("k", "left side"))
        await redis_backend.put(right, entry("k2", "right side"))
        assert await redis_backend.keys(left) == ["k"]
        assert await redis_backend.get(left, "k2") is None
        hits = await redis_backend.search(left, SearchQuery("side", 5))
        assert [h.key for h in hits] == ["k"]
        assert await redis_backend.clear(left) == 1
        assert await redis_backend.keys(right) == ["k2"]
        await redis_backend.clear(right)


async def test_pattern_characters_in_keys_are_literal(redis_backend: RedisBackend) -> None:
    """Keys made of glob characters are stored, listed and deleted as themselves."""
    ns = ("glob",)
    for key in ["*", "a*", "?", "[ab]", "\\*"]:
        await redis_backend.put(ns, entry(key, key))
    assert await redis_backend.delete(ns, "*")
    assert await redis_backend.keys(ns) == ["a*", "?", "[ab]", "\\*"]
    assert (await redis_backend.get(ns, "[ab]")) is not None
    assert await redis_backend.get(ns, "a") is None


# -- expiry -------------------------------------------------------------------------------------


async def test_quarter_second_ttl(
    redis_backend: RedisBackend, redis_client: aioredis.Redis
) -> None:
    """ttl=0.25 works: present before, gone from get/keys/size/search after."""
    ns = ("ttl",)
    await redis_backend.put(ns, entry("short", "ephemeral words", ttl=0.25))
    await redis_backend.put(ns, entry("long", "lasting words"))
    pttl = await redis_client.pttl(redis_backend.key_prefix(ns).encode() + b"h:short")
    assert 150 < pttl <= 250
    assert await redis_backend.size(ns) == 2
    await asyncio.sleep(0.35)
    assert await redis_backend.get(ns, "short") is None
    assert await redis_backend.keys(ns) == ["long"]
    assert await redis_backend.size(ns) == 1
    assert [h.key for h in await redis_backend.search(ns, SearchQuery("words", 5))] == ["long"]
    await check_index(redis_client, redis_backend.key_prefix(ns))


async def test_rewrite_without_ttl_makes_a_record_persistent(
    redis_backend: RedisBackend, redis_client: aioredis.Redis
) -> None:
    """A stale expiry entry never drops a record rewritten without a TTL."""
    ns = ("rewrite",)
    await redis_backend.put(ns, entry("k", "first", ttl=0.1))
    await redis_backend.put(ns, entry("k", "second"))
    await asyncio.sleep(0.2)
    assert await redis_backend.size(ns) == 1
    record = await redis_backend.get(ns, "k")
    assert record is not None
    assert json.loads(record.payload) == "second"
    await check_index(redis_client, redis_backend.key_prefix(ns))


async def test_expired_records_are_not_evicted_for(redis_backend: RedisBackend) -> None:
    """At the LRU bound, expired records go first; live ones are evicted only if needed."""
    backend = RedisBackend(redis_backend._server.client, max_size=3)
    ns = ("bound",)
    await backend.put(ns, entry("old", 1))
    await backend.put(ns, entry("brief", 2, ttl=0.05))
    await backend.put(ns, entry("mid", 3))
    await asyncio.sleep(0.1)
    assert await backend.put(ns, entry("new", 4)) == 0
    assert await backend.keys(ns) == ["old", "mid", "new"]
    assert await backend.put(ns, entry("newer", 5)) == 1
    assert await backend.keys(ns) == ["mid", "new", "newer"]


# -- scripts ------------------------------------------------------------------------------------


async def test_scripts_reload_after_script_flush(
    redis_backend: RedisBackend, redis_client: aioredis.Redis
) -> None:
    """After SCRIPT FLUSH (or a server restart) every operation reloads its script."""
    ns = ("flush",)
    await redis_backend.put(ns, entry("a", "alpha"))
    await redis_client.script_flush()
    await redis_backend.put(ns, entry("b", "beta"))
    await redis_client.script_flush()
    assert await redis_backend.get(ns, "a") is not None
    await redis_client.script_flush()
    assert await redis_backend.put_many(ns, [entry(f"m{i}", i) for i in range(5)]) == 0
    await redis_client.script_flush()
    got = await redis_backend.get_many(ns, ["a", "m1", "zz"])
    assert [r.key if r else None for r in got] == ["a", "m1", None]
    await redis_client.script_flush()
    assert [h.key for h in await redis_backend.search(ns, SearchQuery("beta", 3))] == ["b"]
    await redis_client.script_flush()
    assert await redis_backend.delete(ns, "a")
    await redis_client.script_flush()
    assert await redis_backend.size(ns) == 6


async def test_batches_span_several_script_calls(
    redis_backend: RedisBackend, redis_client: aioredis.Redis
) -> None:
    """put_many/get_many over 1000 entries, with mixed TTLs, keep order and last-write-wins."""
    ns = ("batch",)
    entries = [entry(f"k{i % 1500}", f"v{i}", ttl=None if i % 3 else 60.0) for i in range(2600)]
    reference = InMemoryBackend(1000)
    evicted = await reference.put_many(ns, entries)
    assert await redis_backend.put_many(ns, entries) == evicted
    keys = await redis_backend.keys(ns)
    assert keys == await reference.keys(ns)
    got = await redis_backend.get_many(ns, [*keys[::-1], "missing"])
    assert got[-1] is None
    for record in got[:-1]:
        assert record is not None
        i = int(json.loads(record.payload)[1:])
        assert i >= 1100  # the last write of each surviving key
    assert (await redis_backend.keys(ns)) == keys[::-1]  # get_many refreshed recency in order
    await redis_backend.search(ns, SearchQuery("v2599", 1))
    counts = await check_index(redis_client, redis_backend.key_prefix(ns))
    assert counts["records"] == 1000


async def test_index_catches_up_with_every_kind_of_change(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Writes, overwrites, deletes, evictions and expiries by another client all reach search."""
    writer = RedisBackend.from_url(redis_server.url, max_size=20)
    reader = RedisBackend.from_url(redis_server.url, max_size=20)
    ns = ("shared",)
    for i in range(30):
        await writer.put(ns, entry(f"k{i}", f"apple {i} banana"))
    await writer.put(ns, entry("k29", "cherry only"))
    await writer.delete(ns, "k28")
    await writer.put(ns, entry("t", "apple with expiry", ttl=0.05))
    await asyncio.sleep(0.1)
    hits = await reader.search(ns, SearchQuery("apple", 100))
    assert sorted(h.key for h in hits) == sorted(f"k{i}" for i in range(10, 28))
    assert [h.key for h in await reader.search(ns, SearchQuery("cherry", 5))] == ["k29"]
    assert await writer.size(ns) == 19  # purges the expired record
    await check_index(redis_client, writer.key_prefix(ns))
    await writer.aclose()
    await reader.aclose()


async def test_huge_single_word_is_searchable(redis_backend: RedisBackend) -> None:
    """A 1 MiB one-word value is indexed without a set write per byte and still found."""
    ns = ("huge",)
    await redis_backend.put(ns, entry("big", "a" * 1_000_000))
    await redis_backend.put(ns, entry("small", "aaa"))
    hits = await redis_backend.search(ns, SearchQuery("aaaa", 5))
    assert [h.key for h in hits] == ["big"]


async def test_big_values_are_indexed_in_bounded_batches(redis_backend: RedisBackend) -> None:
    """Pending values over the 4 MB batch budget, or over 20 000 terms, are indexed over
    several bounded round trips and found."""
    ns = ("bigs",)
    filler = "lorem ipsum " * 75_000  # about 900 KB, two words
    for i in range(6):
        await redis_backend.put(ns, entry(f"big{i}", f"needle{i} {filler}"))
    for i in range(40):  # 40 000 distinct terms
        await redis_backend.put(ns, entry(f"many{i}", " ".join(f"t{i}x{j}" for j in range(1000))))
    hits = await redis_backend.search(ns, SearchQuery("ipsum", 10))
    assert sorted(h.key for h in hits) == [f"big{i}" for i in range(6)]
    assert [h.key for h in await redis_backend.search(ns, SearchQuery("needle3", 10))] == ["big3"]
    assert [h.key for h in await redis_backend.search(ns, SearchQuery("t39x999", 10))] == ["many39"]


# -- errors -------------------------------------------------------------------------------------


async def test_unreachable_server_raises_memory_backend_error() -> None:
    """Every operation against a closed port raises MemoryBackendError caused by redis-py."""
    backend = RedisBackend.from_url(
        f"redis://127.0.0.1:{free_port()}/0", retries=1, backoff_base=0.001
    )
    ns = ("x",)
    calls = [
        backend.put(ns, entry("k", 1)),
        backend.put_many(ns, [entry("k", 1), entry("j", 2)]),
        backend.get(ns, "k"),
        backend.get_many(ns, ["k", "j"]),
        backend.delete(ns, "k"),
        backend.clear(ns),
        backend.keys(ns),
        backend.size(ns),
        backend.search(ns, SearchQuery("k", 1)),
        backend.ping(),
    ]
    for call in calls:
        with pytest.raises(MemoryBackendError, match="cannot connect") as info:
            await call
        assert info.value.backend == "redis"
        assert isinstance(info.value.__cause__, RedisConnectionError)
    await backend.aclose()


async def test_closed_backend_refuses_work(redis_server: RedisServer) -> None:
    """After aclose, operations raise MemoryBackendError; aclose is idempotent."""
    backend = RedisBackend.from_url(redis_server.url)
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(MemoryBackendError, match="closed"):
        await backend.get(("x",), "k")
    with pytest.raises(MemoryBackendError, match="closed"):
        await backend.put(("x",), entry("k", 1))


async def test_injected_client_is_left_open(redis_server: RedisServer) -> None:
    """A client passed in is the caller's: aclose does not close it."""
    client = aioredis.from_url(redis_server.url)
    backend = RedisBackend(client)
    await backend.put(("inj",), entry("k", 1))
    await backend.aclose()
    assert await client.ping()
    await client.aclose()


async def test_bad_construction_is_refused(redis_server: RedisServer) -> None:
    """Wrong client type, decode_responses=True, or a prefix with braces are refused."""
    with pytest.raises(TypeError, match="client"):
        RedisBackend("redis://x")  # type: ignore[arg-type]
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend(client)
    await client.aclose()
    client = aioredis.from_url(redis_server.url)
    for prefix in ["", "a{b", "c}"]:
        with pytest.raises(ValueError, match="prefix"):
            RedisBackend(client, prefix=prefix)
    with pytest.raises(ValueError, match="max_size"):
        RedisBackend(client, max_size=0)
    await client.aclose()
    with pytest.raises(ValueError):
        RedisBackend.from_url("http://not-redis")


async def test_from_url_configures_retry_and_timeouts(redis_server: RedisServer) -> None:
    """from_url sets an explicit bounded Retry, timeouts and health checks on its client."""
    backend = RedisBackend.from_url(
        redis_server.url, socket_timeout=1.5, retries=4, health_check_interval=7
    )
    kwargs = backend._server.client.connection_pool.connection_kwargs
    assert backend._server.timeout == 1.5  # enforced per round trip by the backend
    assert kwargs["socket_connect_timeout"] == 2.0
    assert kwargs["health_check_interval"] == 7
    assert kwargs["retry"].get_retries() == 4
    errors = kwargs["retry"]._supported_errors
    assert RedisConnectionError in errors
    assert RedisTimeoutError not in errors  # a hung server costs one timeout, not several
    await backend.aclose()


def test_info_describes_the_server(redis_server: RedisServer) -> None:
    """info() names redis, is remote and persistent, and carries db/server attributes."""
    backend = RedisBackend.from_url(redis_server.url)
    info = backend.info()
    assert info.name == "redis"
    assert info.remote
    assert info.persistent
    assert not info.degraded
    assert info.attributes == {
        "db.system.name": "redis",
        "server.address": "127.0.0.1",
        "server.port": redis_server.port,
    }
    asyncio.run(backend.aclose())


# -- equivalence with the reference -------------------------------------------------------------

WORDS = ["redis", "python", "memory", "agent", "trace", "span", "café", "naïve", "東京"]
WORDS += ["data", "key", "value", "the", "a", "of"]


def _text(rng: random.Random) -> Any:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 10)))
    return rng.choice([words, {"text": words, "n": rng.randint(0, 9)}, [words, words.upper()]])


@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_match_the_reference(
    redis_server: RedisServer, redis_client: aioredis.Redis, seed: int
) -> None:
    """Random puts, batches, gets, deletes, clears and searches give what InMemoryBackend gives."""
    rng = random.Random(seed)
    size = rng.choice([None, 7, 25])
    redis = MemoryPrimitive(
        backend=RedisBackend.from_url(redis_server.url, max_size=size),
        embedder=HashingEmbedder(32),
        namespace=f"eq{seed}",
    )
    ref = MemoryPrimitive(
        backend=InMemoryBackend(size, clock=FakeClock()),
        embedder=HashingEmbedder(32),
        namespace=f"eq{seed}",
    )
    both = (redis, ref)
    for step in range(250):
        roll = rng.random()
        key = f"k{rng.randint(0, 30)}"
        if roll < 0.45:
            value, meta = _text(rng), rng.choice([None, {"g": rng.randint(0, 2)}, {"g": True}])
            for m in both:
                await m.add(key, value, metadata=meta)
        elif roll < 0.55:
            items = [(f"k{rng.randint(0, 30)}", _text(rng)) for _ in range(rng.randint(1, 6))]
            for m in both:
                await m.add_many(items)
        elif roll < 0.7:
            assert await redis.get(key) == await ref.get(key)
        elif roll < 0.75:
            keys = [f"k{rng.randint(0, 30)}" for _ in range(4)]
            assert await redis.get_many(keys) == await ref.get_many(keys)
        elif roll < 0.85:
            assert await redis.delete(key) == await ref.delete(key)
        elif roll < 0.86:
            assert await redis.clear() == await ref.clear()
        else:
            query = rng.choice([*WORDS, "redis python", "ta", "a", "!!", "東", "e sea", "CAFÉ"])
            mode = rng.choice(["keyword", "semantic", "hybrid"])
            filter_ = rng.choice([None, {"g": 1}, {"g": True}])
            limit = rng.randint(1, 8)
            got = await redis.search(query, limit=limit, mode=mode, filter=filter_)
            want = await ref.search(query, limit=limit, mode=mode, filter=filter_)
            assert [(h.key, h.value, h.metadata, h.score) for h in got] == [
                (h.key, h.value, h.metadata, h.score) for h in want
            ], (step, query, mode, filter_)
        if step % 50 == 0:
            assert await redis.keys() == await ref.keys()
    assert await redis.keys() == await ref.keys()
    assert await redis.size() == await ref.size()
    await redis.search("redis")
    await check_index(redis_client, redis.backend.key_prefix(redis.namespace))  # type: ignore[attr-defined]
    await redis.backend.aclose()  # injected: the primitive does not close it


# -- the primitive ------------------------------------------------------------------------------


async def test_primitive_with_redis_url_reports_redis(redis_server: RedisServer) -> None:
    """MemoryPrimitive(redis_url=...) runs on Redis behind a fallback and says so."""
    memory = MemoryPrimitive(redis_url=redis_server.url, namespace="prim")
    assert memory.is_using_redis()
    await memory.add("k", {"v": 1})
    assert await memory.get("k") == {"v": 1}
    info = memory.get_backend_info()
    assert info["backend"] == "redis"
    assert info["degraded"] is False
    assert info["persistent"] is True
    assert info["server.port"] == redis_server.port
    await memory.clear()
    await memory.aclose()


async def test_primitive_without_fallback_uses_redis_directly(redis_server: RedisServer) -> None:
    """fallback=False gives the bare RedisBackend."""
    memory = MemoryPrimitive(redis_url=redis_server.url, fallback=False, max_size=3)
    assert isinstance(memory.backend, RedisBackend)
    assert memory.backend.max_size == 3
    await memory.aclose()


async def test_redis_spans_are_client_spans_with_server_attributes(
    redis_server: RedisServer, telemetry: Any
) -> None:
    """On Redis, memory spans are kind CLIENT with db.system.name, server.address/port."""
    from opentelemetry.trace import SpanKind

    memory = MemoryPrimitive(
        redis_url=redis_server.url,
        namespace="spans",
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    await memory.add("k", "hello")
    await memory.get("k")
    await memory.search("hello")
    spans = {s.name: s for s in telemetry.spans()}
    for name in ("upsert_memory", "get_memory", "search_memory"):
        span = spans[name]
        assert span.kind == SpanKind.CLIENT
        assert span.attributes["db.system.name"] == "redis"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == redis_server.port
        assert span.attributes["memory.backend"] == "redis"
        assert "memory.degraded" not in span.attributes
    await memory.clear()
    await memory.aclose()


# -- cluster ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["redis", "valkey"])
async def test_works_on_a_cluster(flavour: str) -> None:
    """On a (one-node) Redis Cluster every operation runs, each namespace in one slot."""
    from redis.asyncio.cluster import RedisCluster

    from tests.support.redis_servers import running_server

    with running_server(flavour, ["--cluster-enabled", "yes"]) as server:
        admin = aioredis.from_url(server.url)
        await admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(100):
            if b"cluster_state:ok" in await admin.execute_command("CLUSTER", "INFO"):
                break
            await asyncio.sleep(0.05)
        client = RedisCluster.from_url(server.url)
        backend = RedisBackend(client, max_size=5)
        assert backend.info().attributes["server.port"] == server.port
        memory = MemoryPrimitive(
            backend=backend, namespace=("a", "b"), embedder=HashingEmbedder(16)
        )
        await memory.add_many({f"k{i}": f"hello world {i}" for i in range(8)})
        await memory.add("x", "hello there", ttl=10)
        assert await memory.keys() == ["k4", "k5", "k6", "k7", "x"]
        assert await memory.get_many(["k6", "x"]) == {"k6": "hello world 6", "x": "hello there"}
        for mode in ("keyword", "semantic", "hybrid"):
            hits = await memory.search("hello", mode=mode)  # type: ignore[arg-type]
            assert sorted(h.key for h in hits) == ["k4", "k5", "k6", "k7", "x"]
        assert await memory.delete("x")
        # Every key but the prefix's namespace registry (namespaces()) is the namespace's.
        keys = [key async for key in admin.scan_iter(count=1000) if b"{%registry}" not in key]
        assert len(keys) >= 7  # three records, lru, st, log, ttl
        slots = {await admin.execute_command("CLUSTER", "KEYSLOT", key) for key in keys}
        assert len(slots) == 1
        assert await memory.clear() == 4
        await client.aclose()
        await admin.aclose()


def test_fallback_mirror_is_bounded(redis_server: RedisServer) -> None:
    """The in-memory mirror behind redis_url= holds at most 10 000 records per namespace."""
    for size, mirror in [(None, 10_000), (50, 50), (1_000_000, 10_000)]:
        memory = MemoryPrimitive(redis_url=redis_server.url, max_size=size)
        backend = memory.backend
        assert isinstance(backend, FallbackBackend)
        assert backend.primary.max_size == size  # type: ignore[attr-defined]
        assert backend.secondary.max_size == mirror  # type: ignore[attr-defined]
        asyncio.run(memory.aclose())


def test_fast_packing_sends_what_redis_py_sends() -> None:
    """The from_url connections' packer gives redis-py's bytes for every argument shape
    (its own cases, non-ASCII text, binary, large values) and hands what it does not pack
    (floats, memoryviews, multi-word command names) to redis-py."""
    import redis.asyncio as aioredis

    from tta_dev_primitives.memory.backends.redis.clients import fast_packing

    pool = fast_packing(aioredis.ConnectionPool.from_url("redis://127.0.0.1:1/0"))
    fast, plain = pool.make_connection(), aioredis.Connection()
    assert type(fast).__name__ == "FastConnection"
    cases = [
        ("EVALSHA", "ab12", 3, b"k1", b"", -7, "é€", b"\x00\xff\r\n" * 5000),
        ("SET", b"a", b"b"),
        ("SCRIPT LOAD", "return 1"),
        ("ZADD", b"z", 1.5, b"m"),
        ("GET", memoryview(b"abc")),
    ]
    for args in cases:
        assert b"".join(fast.pack_command(*args)) == b"".join(plain.pack_command(*args)), args
    with pytest.raises(Exception, match="bool"):
        fast.pack_command("SET", b"a", True)
