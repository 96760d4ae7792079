"""The Redis Query Engine search path (``search_engine=``), against a real Redis Stack.

The conformance suite runs whole on Redis Stack with ``search_engine="query-engine"``
(``tests/conftest.py``); these tests cover what is particular to the path: choosing it,
the FT index's life (created, dropped by ``clear``, rebuilt when gone), candidates past the
first lists, and rankings equal to the local index's on the same server.
"""

from __future__ import annotations

import asyncio
import random
import subprocess

import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import MemoryBackendError, MemoryPrimitive, RedisBackend
from tta_dev_primitives.memory.embeddings import HashingEmbedder
from tta_dev_primitives.memory.records import Entry, SearchQuery

from tests.support.redis_servers import RedisServer, free_port
from tests.support.redis_stack import StackServer, stack_script

WORDS = [
    *("redis", "python", "memory", "agent", "trace", "span", "vector"),
    *("search", "cache", "fast", "slow", "café", "naïve"),
]


async def _ft_list(url: str) -> list[bytes]:
    client = aioredis.from_url(url)
    try:
        return list(await client.execute_command("FT._LIST"))
    finally:
        await client.aclose()


def test_search_engine_is_validated() -> None:
    """A search_engine other than auto, local or query-engine is a ValueError naming it."""
    client = aioredis.Redis()
    with pytest.raises(ValueError, match="search_engine"):
        RedisBackend(client, search_engine="ft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="search_engine"):
        RedisBackend.from_url("redis://127.0.0.1:1/0", search_engine="")  # type: ignore[arg-type]
    assert RedisBackend(client, search_engine="local").query_engine.mode == "local"
    assert RedisBackend(client).query_engine.mode == "auto"


async def test_query_engine_needs_the_module(redis_server: RedisServer) -> None:
    """search_engine='query-engine' on a server without FT.* refuses, saying why; 'auto'
    searches through the local index there."""
    required = RedisBackend.from_url(redis_server.url, search_engine="query-engine")
    auto = RedisBackend.from_url(redis_server.url)
    try:
        await auto.put(("qe",), Entry("k", '"python memory"'))
        with pytest.raises(MemoryBackendError, match="Query Engine") as caught:
            await required.search(("qe",), SearchQuery("python", 5))
        assert not caught.value.transient
        hits = await auto.search(("qe",), SearchQuery("python", 5))
        assert [h.key for h in hits] == ["k"]
        assert auto.query_engine.searches == 0
    finally:
        await auto.clear(("qe",))
        await required.aclose()
        await auto.aclose()


async def test_auto_uses_the_engine_for_large_namespaces(redis_stack: StackServer) -> None:
    """'auto' searches a namespace below min_records locally and one above it through FT,
    with the same hits as the local index."""
    auto = RedisBackend.from_url(redis_stack.url, max_size=None)
    local = RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="local")
    auto.query_engine.min_records = 50
    small, large = ("qe-auto", "small"), ("qe-auto", "large")
    try:
        await auto.put_many(small, [Entry(f"s{i}", f'"python {i}"') for i in range(10)])
        await auto.put_many(large, [Entry(f"l{i}", f'"python memory {i}"') for i in range(60)])
        await auto.search(small, SearchQuery("python", 5))
        assert auto.query_engine.searches == 0
        got = await auto.search(large, SearchQuery("python memory 7", 5))
        assert auto.query_engine.searches == 1
        want = await local.search(large, SearchQuery("python memory 7", 5))
        assert [(h.key, h.score) for h in got] == [(h.key, h.score) for h in want]
        assert got[0].key == "l7"
    finally:
        for ns in (small, large):
            await auto.clear(ns)
        await auto.aclose()
        await local.aclose()


async def test_clear_drops_the_index_and_the_next_search_builds_it(
    redis_stack: StackServer,
) -> None:
    """clear() drops the namespace's FT index (not other namespaces'); searching again
    creates it and finds what was added since."""
    backend = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    ns, other = ("qe-clear",), ("qe-clear", "other")
    name = backend.key_prefix(ns).encode() + b"idx"
    other_name = backend.key_prefix(other).encode() + b"idx"
    try:
        await backend.put(ns, Entry("a", '"alpha words"'))
        await backend.put(other, Entry("b", '"alpha words"'))
        assert [h.key for h in await backend.search(ns, SearchQuery("alpha", 5))] == ["a"]
        assert [h.key for h in await backend.search(other, SearchQuery("alpha", 5))] == ["b"]
        assert {name, other_name} <= set(await _ft_list(redis_stack.url))
        assert await backend.clear(ns) == 1
        listed = set(await _ft_list(redis_stack.url))
        assert name not in listed
        assert other_name in listed
        assert await backend.search(ns, SearchQuery("alpha", 5)) == []
        await backend.put(ns, Entry("c", '"alpha again"'))
        assert [h.key for h in await backend.search(ns, SearchQuery("alpha", 5))] == ["c"]
    finally:
        await backend.clear(ns)
        await backend.clear(other)
        await backend.aclose()


async def test_deleting_the_last_record_drops_the_index(redis_stack: StackServer) -> None:
    """A namespace emptied by delete / delete_where leaves no FT index behind (one per
    namespace ever emptied would grow with the history); searching again builds it."""
    backend = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    ns, other = ("qe-empty",), ("qe-empty-where",)
    name = backend.key_prefix(ns).encode() + b"idx"
    other_name = backend.key_prefix(other).encode() + b"idx"
    try:
        await backend.put_many(ns, [Entry("a", '"alpha words"'), Entry("b", '"alpha"')])
        await backend.put(other, Entry("c", '"alpha words"', {"t": 1}))
        assert len(await backend.search(ns, SearchQuery("alpha", 5))) == 2
        assert len(await backend.search(other, SearchQuery("alpha", 5))) == 1
        assert await backend.delete(ns, "a")
        assert name in set(await _ft_list(redis_stack.url))  # a record is left
        assert await backend.delete(ns, "b")
        assert await backend.delete_where(other, {"t": 1}) == 1
        listed = set(await _ft_list(redis_stack.url))
        assert name not in listed
        assert other_name not in listed
        await backend.put(ns, Entry("d", '"alpha again"'))
        assert [h.key for h in await backend.search(ns, SearchQuery("alpha", 5))] == ["d"]
    finally:
        await backend.clear(ns)
        await backend.clear(other)
        await backend.aclose()


async def test_a_new_backend_drops_indexes_of_emptied_namespaces(
    redis_stack: StackServer,
) -> None:
    """An FT index whose namespace has no record left (emptied by expiry, or by a process
    that could not drop it) is dropped when a backend first finds the Query Engine; other
    prefixes' indexes and live namespaces' are kept."""
    one = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    foreign = RedisBackend.from_url(redis_stack.url, prefix="app", search_engine="query-engine")
    gone, live = ("qe-orphan",), ("qe-live",)
    gone_name = one.key_prefix(gone).encode() + b"idx"
    live_name = one.key_prefix(live).encode() + b"idx"
    foreign_name = foreign.key_prefix(gone).encode() + b"idx"
    raw = aioredis.from_url(redis_stack.url)
    two = None
    try:
        await one.put(gone, Entry("a", '"alpha"'))
        await one.put(live, Entry("b", '"alpha"'))
        await foreign.put(gone, Entry("c", '"alpha"'))
        for backend, ns in ((one, gone), (one, live), (foreign, gone)):
            assert len(await backend.search(ns, SearchQuery("alpha", 5))) == 1
        # Emptied behind the backends' backs (as expiry does): the records and the
        # namespace's keys go, the FT index stays.
        base = one.key_prefix(gone).encode()
        await raw.delete(base + b"h:a", base + b"lru", base + b"st", base + b"log")
        fbase = foreign.key_prefix(gone).encode()
        await raw.delete(fbase + b"h:c", fbase + b"lru", fbase + b"st", fbase + b"log")
        assert {gone_name, live_name, foreign_name} <= set(await _ft_list(redis_stack.url))
        two = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
        assert len(await two.search(live, SearchQuery("alpha", 5))) == 1
        listed = set(await _ft_list(redis_stack.url))
        assert gone_name not in listed
        assert live_name in listed
        assert foreign_name in listed
    finally:
        await one.clear(live)
        await raw.execute_command("FT.DROPINDEX", foreign_name)
        await raw.aclose()
        for backend in (one, foreign, two):
            if backend is not None:
                await backend.aclose()


async def test_index_dropped_by_another_process_is_rebuilt(redis_stack: StackServer) -> None:
    """A clear by another backend drops the index this one used: its next search builds
    it again and sees exactly the other's new records."""
    one = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    two = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    ns = ("qe-other",)
    try:
        await one.put(ns, Entry("old", '"shared words"'))
        assert [h.key for h in await one.search(ns, SearchQuery("shared", 5))] == ["old"]
        await two.clear(ns)
        await two.put_many(ns, [Entry("new1", '"shared words"'), Entry("new2", '"shared"')])
        hits = await one.search(ns, SearchQuery("shared words", 5))
        assert [h.key for h in hits] == ["new1", "new2"]
    finally:
        await one.clear(ns)
        await one.aclose()
        await two.aclose()


async def test_expired_records_are_never_returned(redis_stack: StackServer) -> None:
    """A record past its TTL is not a hit, even while the Query Engine still holds it."""
    memory = MemoryPrimitive(
        backend=RedisBackend.from_url(redis_stack.url, search_engine="query-engine"),
        namespace="qe-ttl",
        embedder=HashingEmbedder(32),
    )
    try:
        await memory.add("short", "python words", ttl=0.2)
        await memory.add("long", "python words")
        assert {h.key for h in await memory.search("python")} == {"short", "long"}
        await asyncio.sleep(0.3)
        for mode in ("keyword", "semantic", "hybrid"):
            hits = await memory.search("python words", mode=mode)  # type: ignore[arg-type]
            assert [h.key for h in hits] == ["long"], mode
    finally:
        await memory.clear()
        await memory.aclose()


async def test_filter_reaches_past_the_first_candidates(redis_stack: StackServer) -> None:
    """A filter matching only records the first candidate lists leave out still finds
    them (the lists are asked again, longer), in the local index's order."""
    engine = RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="query-engine")
    local = RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="local")
    ns = ("qe-filter",)
    try:
        rare = [Entry(f"rare{i}", '"common words here"', {"tag": "rare"}) for i in range(3)]
        rest = [Entry(f"k{i}", '"common words here"', {"tag": "x"}) for i in range(600)]
        await engine.put_many(ns, rare + rest)
        query = SearchQuery("common words", 5, filter={"tag": "rare"})
        got = await engine.search(ns, query)
        want = await local.search(ns, query)
        assert [h.key for h in got] == ["rare2", "rare1", "rare0"]
        assert [(h.key, h.score) for h in got] == [(h.key, h.score) for h in want]
    finally:
        await engine.clear(ns)
        await engine.aclose()
        await local.aclose()


async def test_rankings_match_the_local_index(redis_stack: StackServer) -> None:
    """Over 1500 mixed records, keyword and hybrid hits (keys, order, scores) equal the
    local index's on the same server; semantic hits agree at recall@10 >= 0.95 (HNSW)."""
    embedder = HashingEmbedder(64)
    rng = random.Random(7)
    engine = MemoryPrimitive(
        backend=RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="query-engine"),
        namespace="qe-rank",
        embedder=embedder,
    )
    local = MemoryPrimitive(
        backend=RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="local"),
        namespace="qe-rank",
        embedder=embedder,
    )
    try:
        items = []
        for i in range(1500):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 15)))
            value = rng.choice([words, {"text": words, "n": i}, [words, {"deep": words.upper()}]])
            items.append((f"k{i}", value))
        await engine.add_many(items)
        recalls = []
        for query in ["python", "café", "vector search", "pyth", "trace span cache", "ïve"]:
            for mode in ("keyword", "hybrid", "semantic"):
                got = await engine.search(query, limit=10, mode=mode)  # type: ignore[arg-type]
                want = await local.search(query, limit=10, mode=mode)  # type: ignore[arg-type]
                if mode == "semantic":
                    keys = {h.key for h in want}
                    recalls.append(len(keys & {h.key for h in got}) / max(1, len(keys)))
                    continue
                assert [h.key for h in got] == [h.key for h in want], (query, mode)
                assert [h.score for h in got] == pytest.approx([h.score for h in want])
        assert sum(recalls) / len(recalls) >= 0.95
    finally:
        await engine.clear()
        await engine.aclose()
        await local.aclose()


async def test_resp2_client(redis_stack: StackServer) -> None:
    """The path reads RESP2 replies as well as RESP3 ones."""
    client = aioredis.from_url(redis_stack.url, protocol=2)
    backend = RedisBackend(client, search_engine="query-engine")
    ns = ("qe-resp2",)
    try:
        await backend.put(ns, Entry("a", '"resp two words"', None, None, [1.0, 0.0]))
        await backend.put(ns, Entry("b", '"other words"', None, None, [0.0, 1.0]))
        hits = await backend.search(ns, SearchQuery("words", 5))
        assert [h.key for h in hits] == ["b", "a"]
        near = await backend.search(ns, SearchQuery("x", 1, "semantic", vector=[0.9, 0.1]))
        assert [h.key for h in near] == ["a"]
    finally:
        await backend.clear(ns)
        await client.aclose()


@pytest.mark.slow
@pytest.mark.redis
async def test_restart_forgets_the_index_and_the_support(redis_stack: StackServer) -> None:
    """After the server restarts (empty, its FT indexes gone), the next search detects
    the Query Engine again, builds the index and finds only what was added since."""
    script = stack_script()
    if script is None:  # TTA_REDIS_STACK_URL gives a server, not a way to start and stop one
        pytest.skip("restarting Redis Stack needs the helper script (TTA_REDIS_STACK_SCRIPT)")
    port = free_port()

    def stack(command: str) -> str:
        done = subprocess.run(
            ["bash", str(script), command, str(port)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    url = stack("start")
    backend = RedisBackend.from_url(url, search_engine="query-engine")
    backend.server_check_interval = 0.0
    ns = ("qe-restart",)
    try:
        await backend.put(ns, Entry("before", '"restart words"'))
        assert [h.key for h in await backend.search(ns, SearchQuery("restart", 5))] == ["before"]
        stack("stop")
        stack("start")
        await backend.put(ns, Entry("after", '"restart words"'))
        assert [h.key for h in await backend.search(ns, SearchQuery("restart", 5))] == ["after"]
        assert backend.server_restarts == 1
    finally:
        await backend.aclose()
        stack("stop")


async def test_benchmark_measures_at_a_tiny_size(redis_stack: StackServer) -> None:
    """benchmarks/redis_stack_engine.py measures every figure (no timing asserted)."""
    from benchmarks import redis_stack_engine

    row = await redis_stack_engine.measure_stack(redis_stack.url, 300, count=3)
    for mode in ("keyword", "semantic", "semantic_near", "hybrid"):
        assert row[f"qe_{mode}_ms"] > 0
        assert row[f"local_{mode}_ms"] > 0
        assert 0.0 <= row[f"qe_{mode}_recall10"] <= 1.0
    assert row["qe_first_search_s"] > 0
    assert 0 < row["qe_stats_mib"] < row["local_index_mib"]


async def test_refused_index_falls_back_in_auto_mode(redis_stack: StackServer) -> None:
    """A server that has FT.* but refuses FT.CREATE (here an ACL user without it): 'auto'
    searches locally, 'query-engine' raises a non-transient MemoryBackendError saying so."""
    admin = aioredis.from_url(redis_stack.url)
    await admin.execute_command(
        "ACL", "SETUSER", "qe-noft", "on", ">pw", "~*", "+@all", "-ft.create"
    )
    url = redis_stack.url.replace("redis://", "redis://qe-noft:pw@")
    auto = RedisBackend.from_url(url)
    required = RedisBackend.from_url(url, search_engine="query-engine")
    auto.query_engine.min_records = 1
    ns = ("qe-refused",)
    try:
        await auto.put(ns, Entry("k", '"refused words"'))
        with pytest.raises(MemoryBackendError, match="refused the index") as caught:
            await required.search(ns, SearchQuery("refused", 5))
        assert not caught.value.transient
        assert [h.key for h in await auto.search(ns, SearchQuery("refused", 5))] == ["k"]
        assert auto.query_engine.searches == 0
    finally:
        await auto.clear(ns)
        await auto.aclose()
        await required.aclose()
        await admin.execute_command("ACL", "DELUSER", "qe-noft")
        await admin.aclose()


async def test_auto_searches_locally_while_the_server_indexes(redis_stack: StackServer) -> None:
    """In 'auto' mode, a search made while the server still indexes the namespace's
    existing records (after FT.CREATE) is answered by the local index; once indexed, by
    the Query Engine, with the same hits."""
    auto = RedisBackend.from_url(redis_stack.url, max_size=None)
    local = RedisBackend.from_url(redis_stack.url, max_size=None, search_engine="local")
    auto.query_engine.min_records = 1
    auto.query_engine.build_wait = 0.0
    ns = ("qe-building",)
    rng = random.Random(3)
    try:
        entries = [
            Entry(
                f"k{i}",
                f'"{" ".join(rng.choice(WORDS) for _ in range(8))}"',
                None,
                None,
                [rng.random() for _ in range(32)],
            )
            for i in range(4000)
        ]
        await auto.put_many(ns, entries)
        query = SearchQuery("python cache", 10)
        want = [(h.key, h.score) for h in await local.search(ns, query)]
        assert [(h.key, h.score) for h in await auto.search(ns, query)] == want
        name = auto.key_prefix(ns).encode() + b"idx"
        client = aioredis.from_url(redis_stack.url)
        for _ in range(600):
            info = await client.execute_command("FT.INFO", name)
            if int(info[b"indexing"]) == 0 and float(info[b"percent_indexed"]) == 1.0:
                break
            await asyncio.sleep(0.05)
        await client.aclose()
        before = auto.query_engine.searches
        assert [(h.key, h.score) for h in await auto.search(ns, query)] == want
        assert auto.query_engine.searches == before + 1
    finally:
        await auto.clear(ns)
        await auto.aclose()
        await local.aclose()


async def test_clear_goes_on_when_the_index_cannot_be_dropped(redis_stack: StackServer) -> None:
    """A clear by a user who may not FT.DROPINDEX still deletes the namespace; searches
    afterwards see only what is added since."""
    admin = aioredis.from_url(redis_stack.url)
    await admin.execute_command(
        "ACL", "SETUSER", "qe-nodrop", "on", ">pw", "~*", "+@all", "-ft.dropindex"
    )
    limited = RedisBackend.from_url(
        redis_stack.url.replace("redis://", "redis://qe-nodrop:pw@"), search_engine="query-engine"
    )
    engine = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    ns = ("qe-nodrop",)
    try:
        await engine.put_many(ns, [Entry("a", '"kept words"'), Entry("b", '"kept"')])
        assert len(await engine.search(ns, SearchQuery("kept", 5))) == 2
        assert await limited.clear(ns) == 2
        assert await engine.search(ns, SearchQuery("kept", 5)) == []
        await engine.put(ns, Entry("c", '"kept again"'))
        assert [h.key for h in await engine.search(ns, SearchQuery("kept", 5))] == ["c"]
    finally:
        await engine.clear(ns)
        await engine.aclose()
        await limited.aclose()
        await admin.execute_command("ACL", "DELUSER", "qe-nodrop")
        await admin.aclose()


async def test_index_made_before_index_texts_gets_their_field(redis_stack: StackServer) -> None:
    """An index made without the index-text field (before records had one) gets it at its
    next search, and the Query Engine then proposes records by their index text."""
    backend = RedisBackend.from_url(redis_stack.url, search_engine="query-engine")
    ns = ("qe-old-schema",)
    base = backend.key_prefix(ns)
    client = aioredis.from_url(redis_stack.url)
    try:
        await client.execute_command(
            "FT.CREATE", f"{base}idx", "ON", "HASH", "PREFIX", 1, f"{base}h:",
            "STOPWORDS", 0, "SCHEMA", "v", "TEXT", "NOSTEM", "s", "NUMERIC", "SORTABLE",
        )  # fmt: skip
        await backend.put(ns, Entry("turn", '"Yes, it was amazing!"', index_text="Lisbon gig"))
        await backend.put(ns, Entry("other", '"Lisbonne"'))
        hits = await backend.search(ns, SearchQuery("lisbon gig", 5))
        assert [h.key for h in hits] == ["turn"]
        info = await client.execute_command("FT.INFO", f"{base}idx")
        if not isinstance(info, dict):  # RESP2: a flat list of pairs
            info = dict(zip(info[::2], info[1::2], strict=True))
        names = [
            a[b"identifier"] if isinstance(a, dict) else a[a.index(b"identifier") + 1]
            for a in info[b"attributes"]
        ]
        assert b"t" in names
    finally:
        await backend.clear(ns)
        await backend.aclose()
        await client.aclose()
