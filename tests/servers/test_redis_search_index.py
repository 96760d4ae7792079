"""The Redis backend's in-process search index and the change log that keeps it coherent.

Every test runs on real servers (Redis and Valkey): cross-process freshness with two real
processes, a log trimmed under a slow reader, a namespace flushed or cleared by someone else,
a server restart, a writer racing a reload, the memory budget, expiry applied locally.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import MemoryPrimitive, RedisBackend
from tta_dev_primitives.memory import records
from tta_dev_primitives.memory.backends import Entry, SearchQuery
from tta_dev_primitives.memory.backends.redis.index import LocalIndexes
from tta_dev_primitives.memory.search import relevance, semantic_evidence

from tests.support.redis_servers import RedisServer, check_index
from tests.support.subproc import run_python


def entry(
    key: str, text: str, ttl: float | None = None, vector: list[float] | None = None
) -> Entry:
    return Entry(key, f'"{text}"', None, ttl, vector)


async def keys_found(backend: RedisBackend, ns: tuple[str, ...], text: str) -> list[str]:
    return sorted(h.key for h in await backend.search(ns, SearchQuery(text, 100_000)))


def _other_process(url: str, code: str) -> None:
    """Run ``code`` (async, with ``backend`` a RedisBackend on ``url``) in a new interpreter."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    run_python(
        "-c",
        "import asyncio\n"
        "from tta_dev_primitives import RedisBackend\n"
        "from tta_dev_primitives.memory.backends import Entry\n"
        "async def main():\n"
        f"    backend = RedisBackend.from_url({url!r}, max_size=None)\n"
        f"{body}\n"
        "    await backend.aclose()\n"
        "asyncio.run(main())\n",
    )


async def test_another_process_write_and_delete_reach_the_next_search(
    redis_server: RedisServer,
) -> None:
    """A record added, then deleted, by another process is found, then gone, in this
    process's very next search (its index already loaded)."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("xproc",)
    try:
        await backend.put(ns, entry("a", "apple pie"))
        assert await keys_found(backend, ns, "apple") == ["a"]
        await asyncio.to_thread(
            _other_process,
            redis_server.url,
            "await backend.put(('xproc',), Entry('b', '\"apple tart\"'))",
        )
        assert await keys_found(backend, ns, "apple") == ["a", "b"]
        await asyncio.to_thread(
            _other_process, redis_server.url, "await backend.delete(('xproc',), 'a')"
        )
        assert await keys_found(backend, ns, "apple") == ["b"]
    finally:
        await backend.aclose()


async def test_fresh_process_finds_what_another_process_wrote(redis_server: RedisServer) -> None:
    """A process that never saw the namespace loads it on its first search."""
    ns = ("fresh",)
    await asyncio.to_thread(
        _other_process,
        redis_server.url,
        """
        entries = [Entry(f"k{i}", f'"word{i % 7} common"') for i in range(3000)]
        await backend.put_many(('fresh',), entries)
        """,
    )
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    try:
        hits = await backend.search(ns, SearchQuery("word3", 5000))
        assert sorted(h.key for h in hits) == sorted(f"k{i}" for i in range(3000) if i % 7 == 3)
        assert len(await backend.search(ns, SearchQuery("common", 5000))) == 3000
    finally:
        await backend.aclose()


async def test_trimmed_log_under_a_slow_reader_reloads(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """A reader that fell behind by more than the log keeps (or whose entries someone
    trimmed away) rebuilds its index: the next search is still exact."""
    writer = RedisBackend.from_url(redis_server.url, max_size=None)
    reader = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("trim",)
    try:
        await writer.put_many(ns, [entry(f"k{i}", f"old {i}") for i in range(10)])
        assert len(await keys_found(reader, ns, "old")) == 10
        for i in range(1500):  # far more entries than the log keeps for 10 records
            await writer.put(ns, entry(f"k{i % 10}", f"new {i}"))
        log = writer.key_prefix(ns).encode() + b"log"
        assert await redis_client.xlen(log) < 1500
        assert await keys_found(reader, ns, "old") == []
        assert await keys_found(reader, ns, "new") == [f"k{i}" for i in range(10)]
        # Entries trimmed by someone else: a gap, a reload.
        await writer.put(ns, entry("x", "extra"))
        await redis_client.xtrim(log, maxlen=0)
        await writer.put(ns, entry("y", "extra"))
        assert await keys_found(reader, ns, "extra") == ["x", "y"]
        await check_index(redis_client, writer.key_prefix(ns))
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_flushdb_and_clear_by_someone_else(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """FLUSHDB or a clear by another client: the next search finds nothing of the old
    namespace, and what is written afterwards."""
    writer = RedisBackend.from_url(redis_server.url, max_size=None)
    reader = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("flushed",)
    try:
        await writer.put_many(ns, [entry(f"k{i}", f"before {i}") for i in range(5)])
        assert len(await keys_found(reader, ns, "before")) == 5
        await redis_client.flushdb()
        assert await keys_found(reader, ns, "before") == []
        await writer.put(ns, entry("k1", "after flush"))
        assert await keys_found(reader, ns, "before") == []
        assert await keys_found(reader, ns, "after") == ["k1"]
        assert await writer.clear(ns) == 1
        await writer.put(ns, entry("k2", "after clear"))
        assert await keys_found(reader, ns, "after") == ["k2"]
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_server_restart_with_persistence_reloads(fresh_server: RedisServer) -> None:
    """A restart (new run_id) may lose writes no log shows: the index is rebuilt, and what
    the server kept is found."""
    backend = RedisBackend.from_url(fresh_server.url, max_size=None)
    backend.server_check_interval = 0.0
    ns = ("restart",)
    try:
        await backend.put_many(ns, [entry(f"k{i}", f"kept {i}") for i in range(5)])
        assert len(await keys_found(backend, ns, "kept")) == 5
        restarts = backend.server_restarts
        await asyncio.to_thread(fresh_server.restart)
        await backend.put(ns, entry("k9", "kept after"))  # notices the new run_id
        assert backend.server_restarts == restarts + 1
        assert len(await keys_found(backend, ns, "kept")) == 6
    finally:
        await backend.aclose()


async def test_writer_racing_a_reload(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records written while a fresh process loads the namespace (in groups of 700, the next
    group's calls in flight while one is indexed) are all found afterwards."""
    from tta_dev_primitives.memory.backends.redis import sync as sync_module

    monkeypatch.setattr(sync_module, "_LOAD_GROUP", 700)
    writer = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("race",)
    await writer.put_many(ns, [entry(f"k{i}", f"race word{i}") for i in range(5000)])
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            await writer.put(ns, entry(f"k{i % 5000}", f"race rewritten{i}"))
            if i % 3 == 0:
                await writer.delete(ns, f"k{(i * 7) % 5000}")
            i += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(write())
    readers = []
    try:
        for _ in range(3):
            reader = RedisBackend.from_url(redis_server.url, max_size=None)
            readers.append(reader)
            await reader.search(ns, SearchQuery("race", 10))  # a full load, racing the writer
        stop.set()
        await task
        live = set(await writer.keys(ns))
        for reader in readers:
            assert set(await keys_found(reader, ns, "race")) == live
    finally:
        stop.set()
        await writer.aclose()
        for reader in readers:
            await reader.aclose()


async def test_index_budget_bounds_the_process(redis_server: RedisServer) -> None:
    """Many searched namespaces: the indexes held stay within the budget (least recently
    searched dropped) and every search is still right."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None, index_budget=200_000)
    try:
        for n in range(60):
            ns = ("user", str(n))
            await backend.put_many(ns, [entry(f"k{i}", f"user{n} note {i}") for i in range(20)])
            assert len(await keys_found(backend, ns, f"user{n}")) == 20
        indexes: LocalIndexes = backend.indexes
        assert indexes.total <= 200_000
        assert 1 <= len(indexes) < 60
        assert indexes.dropped > 0
        assert len(await keys_found(backend, ("user", "0"), "user0")) == 20  # loaded again
    finally:
        await backend.aclose()


async def test_expiry_is_applied_by_the_index_before_redis_reaps(
    redis_server: RedisServer,
) -> None:
    """An expired record is never found, even while its hash is still in Redis' keyspace."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("expiry",)
    try:
        await backend.put(ns, entry("short", "fleeting words", ttl=0.3))
        await backend.put(ns, entry("long", "lasting words"))
        assert await keys_found(backend, ns, "words") == ["long", "short"]
        await asyncio.sleep(0.4)
        assert await keys_found(backend, ns, "words") == ["long"]
    finally:
        await backend.aclose()


async def test_vectors_are_stored_as_float32(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """The record hash holds the unit vector it is given (the primitive normalizes vectors
    once, before any backend) as raw little-endian float32 bytes."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("vec",)
    try:
        await backend.put(ns, entry("a", "x", vector=np.array([0.6, 0.8], dtype=np.float32)))
        raw = await redis_client.hget(backend.key_prefix(ns) + "h:a", "e")
        assert raw is not None
        assert np.frombuffer(raw, dtype="<f4").tolist() == pytest.approx([0.6, 0.8])
        hits = await backend.search(
            ns, SearchQuery("x", 1, mode="semantic", vector=np.array([0.6, 0.8], dtype=np.float32))
        )
        assert [h.key for h in hits] == ["a"]
        # a cosine of 1, as a calibrated score
        assert hits[0].score == pytest.approx(relevance(semantic_evidence(1.0)), abs=1e-6)
    finally:
        await backend.aclose()


async def test_search_costs_one_round_trip_when_nothing_changed(
    redis_server: RedisServer,
) -> None:
    """Once loaded, a search with no change since the last one is one catch-up call plus
    one call for the hits' records."""
    memory = MemoryPrimitive(redis_url=redis_server.url, namespace="trips", fallback=False)
    await memory.add_many({f"k{i}": f"common word {i}" for i in range(100)})
    await memory.search("common")
    backend = memory.backend
    assert isinstance(backend, RedisBackend)
    client = backend._server.client  # counting the calls made
    calls = 0
    original = client.execute_command

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        assert len(await memory.search("common", limit=5)) == 5
    finally:
        client.execute_command = original  # type: ignore[method-assign]
        await memory.aclose()
    assert calls == 2


# -- what export/import need of Redis (VectorBackend, Entry times), and the embedder rule ----


async def test_get_vectors_answers_only_for_the_version_read(redis_server: RedisServer) -> None:
    """get_vectors: the stored float32 vector for the (key, seq) read, None once the record
    is rewritten, deleted or expired; the namespace's embedder identity."""
    from tta_dev_primitives import HashingEmbedder
    from tta_dev_primitives.memory.backends.base import VectorBackend
    from tta_dev_primitives.memory.records import ListQuery

    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    assert isinstance(backend, VectorBackend)
    memory = MemoryPrimitive(backend=backend, embedder=HashingEmbedder(dimensions=8))
    ns = memory.namespace
    try:
        for k in ("a", "b", "c", "d"):
            await memory.add(k, f"text of {k}", ttl=0.3 if k == "d" else None)
        page = await backend.list(ns, ListQuery(order="oldest"))
        versions = [(r.key, r.seq) for r in page.records]
        first = await backend.get_vectors(ns, versions)
        assert first.space == ("hashing-v1-8", 8)
        assert all(v is not None and v.shape == (8,) for v in first.vectors)
        hits = await memory.search("text of a", mode="semantic", limit=1)
        assert hits[0].key == "a"
        await memory.add("a", "rewritten")
        await memory.delete("b")
        await asyncio.sleep(0.4)
        later = await backend.get_vectors(ns, [*versions, ("missing", 1)])
        assert [v is not None for v in later.vectors] == [False, False, True, False, False]
    finally:
        await memory.aclose()


async def test_entry_times_are_kept_by_redis(redis_server: RedisServer) -> None:
    """An Entry's created_at/updated_at (an import) are the record's times on Redis too."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("times",)
    try:
        e = Entry("k", '"v"', None, None, None, created_at=1_000_000.25, updated_at=2_000_000.5)
        await backend.put(ns, e)
        record = await backend.get(ns, "k")
        assert record is not None
        assert (record.created_at, record.updated_at) == (1_000_000.25, 2_000_000.5)
        await backend.put(ns, entry("k", "again"))  # a plain write keeps created_at
        record = await backend.get(ns, "k")
        assert record is not None
        assert record.created_at == 1_000_000.25
        assert record.updated_at > 2_000_000.5
    finally:
        await backend.aclose()


async def test_another_embedder_is_refused_like_in_memory(redis_server: RedisServer) -> None:
    """A namespace keeps the embedder of its first vectors: another one's add or search is
    the same ValueError as on the in-memory backend, until the namespace is cleared."""
    from tta_dev_primitives import HashingEmbedder

    first = MemoryPrimitive(
        redis_url=redis_server.url,
        namespace="emb",
        fallback=False,
        embedder=HashingEmbedder(dimensions=8),
    )
    other = MemoryPrimitive(
        redis_url=redis_server.url,
        namespace="emb",
        fallback=False,
        embedder=HashingEmbedder(dimensions=16),
    )
    try:
        await first.add("a", "some text")
        with pytest.raises(ValueError, match="embedder"):
            await other.add("b", "more text")
        with pytest.raises(ValueError, match="embedder"):
            await other.add_many({"c": "x", "d": "y"})
        with pytest.raises(ValueError, match="embedder"):
            await other.search("text", mode="semantic")
        assert await first.get("b") is None
        await first.clear()
        await other.add("b", "more text")
        assert [h.key for h in await other.search("text", mode="semantic")] == ["b"]
    finally:
        await first.aclose()
        await other.aclose()


async def test_list_pages_read_only_their_records(redis_server: RedisServer) -> None:
    """list() walks this process's index: after the namespace's one load, each page reads
    only its own records from Redis, and a walk sees every record once."""
    from tta_dev_primitives.memory.records import ListQuery

    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("paged",)
    fetched: list[int] = []
    original = backend._server.fetch

    async def spy(space: object, keys: list[bytes], vectors: bool) -> object:
        fetched.append(len(keys))
        return await original(space, keys, vectors)  # type: ignore[arg-type]

    try:
        await backend.put_many(ns, [entry(f"k{i}", f"text {i}") for i in range(2000)])
        backend._server.fetch = spy  # type: ignore[method-assign,assignment]
        seen: list[str] = []
        query = ListQuery(limit=10, order="oldest")
        while True:
            page = await backend.list(ns, query)
            seen += [r.key for r in page.records]
            if not page.more:
                break
            query = query._replace(after=page.records[-1].seq, horizon=page.horizon)
            if len(seen) >= 100:
                break
        assert seen == [f"k{i}" for i in range(100)]
        assert fetched[0] == 2000  # the index's load
        assert max(fetched[1:]) <= 10
    finally:
        await backend.aclose()


async def test_delete_where_spares_a_record_rewritten_since_indexed(
    redis_server: RedisServer,
) -> None:
    """The REMOVE that delete_where sends carries the write sequence the index saw: a record
    rewritten since is not deleted for its old metadata."""
    from tta_dev_primitives.memory.backends.redis import scripts as lua

    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("cas",)
    try:
        await backend.put(ns, Entry("k", '"old"', {"tag": "stale"}))
        first = await backend.get(ns, "k")
        await backend.put(ns, Entry("k", '"new"', {"tag": "fresh"}))
        space = backend._keys(ns)
        assert first is not None
        gone = await backend._server.eval(
            lua.REMOVE, space, b"k", first.seq, keys=(space.rec + b"k",)
        )
        assert gone == 0
        record = await backend.get(ns, "k")
        assert record is not None
        assert record.metadata == {"tag": "fresh"}
        assert await backend.delete_where(ns, {"tag": "stale"}) == 0
        assert await backend.delete_where(ns, {"tag": "fresh"}) == 1
    finally:
        await backend.aclose()


async def test_upgrade_layout_converts_a_namespace_written_by_0_1_0(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """A namespace in the 0.1.0 layout (string records, a server-side index) is refused by
    search with a clear error, and converted by upgrade_layout(): values, metadata, vectors,
    expiry and recency kept, the old index keys gone, everything works afterwards."""
    import base64
    import struct

    from tta_dev_primitives import MemoryBackendError

    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("legacy",)
    base = backend.key_prefix(ns).encode()

    def old_record(seq: int, meta: bytes, vector: list[float] | None, payload: bytes) -> bytes:
        vec = b"" if vector is None else base64.b64encode(struct.pack("<2d", *vector))
        return b"%d:%d:%d:%s%s%s" % (seq, len(meta), len(vec), meta, vec, payload)

    try:
        meta = b'{"role":"user"}'
        await redis_client.set(base + b"r:a", old_record(1, meta, None, b'"apple pie"'))
        await redis_client.set(base + b"r:b", old_record(2, b"", [0.6, 0.8], b'"banana split"'))
        await redis_client.set(base + b"r:c", old_record(3, b"", None, b'"cherry"'), px=60_000)
        await redis_client.zadd(base + b"lru", {b"a": 1, b"b": 5, b"c": 3})
        await redis_client.zadd(base + b"ttl", {b"c": 1})
        await redis_client.hset(base + b"st", mapping={b"c": 5, b"n": 3, b"len": 4})
        await redis_client.zadd(base + b"q", {b"a": 1})
        await redis_client.sadd(base + b"voc", b"apple")
        await redis_client.hset(base + b"p:apple", b"a", 1)
        await redis_client.sadd(base + b"g:app", b"apple")
        with pytest.raises(MemoryBackendError, match="upgrade_layout"):
            await backend.search(ns, SearchQuery("apple", 5))
        with pytest.raises(MemoryBackendError, match=r", list: .*upgrade_layout"):
            await backend.list(ns, records.ListQuery())  # named by its own operation
        assert await backend.upgrade_layout() == {"namespaces": 1, "records": 3}
        assert await backend.upgrade_layout() == {"namespaces": 0, "records": 0}
        a = await backend.get(ns, "a")
        assert a is not None
        assert (a.payload, a.metadata, a.seq) == ('"apple pie"', {"role": "user"}, 1)
        c = await backend.get(ns, "c")
        assert c is not None
        assert c.expires_at is not None
        assert await keys_found(backend, ns, "apple") == ["a"]
        raw = await redis_client.hget(base + b"h:b", "e")
        assert raw is not None
        assert np.frombuffer(raw, dtype="<f4").tolist() == pytest.approx([0.6, 0.8])
        for gone in (b"q", b"voc", b"p:apple", b"g:app", b"r:a", b"r:b", b"r:c"):
            assert not await redis_client.exists(base + gone), gone
        await backend.put(ns, entry("d", "apple tart"))
        assert await keys_found(backend, ns, "apple") == ["a", "d"]
        # get() refreshed a and c: recency order b, a, c, then the new d.
        assert await backend.keys(ns) == ["b", "a", "c", "d"]
        await check_index(redis_client, backend.key_prefix(ns))
    finally:
        await backend.aclose()


async def test_expired_records_are_reclaimed_by_later_writes(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Records Redis expired leave recency and ttl entries behind; later writes sweep them
    in bounded steps, with no read at all, so the namespace's keys stay bounded by its live
    records (issue #12, point 16)."""
    backend = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("sweep",)
    base = backend.key_prefix(ns).encode()
    try:
        await backend.put_many(ns, [entry(f"old{i}", "short lived", ttl=0.2) for i in range(500)])
        await asyncio.sleep(0.3)
        assert await redis_client.zcard(base + b"lru") == 500  # nothing reclaimed them yet
        for i in range(600):
            await backend.put(ns, entry(f"new{i}", "lasting"))
        assert await redis_client.zcard(base + b"ttl") == 0
        assert await redis_client.zcard(base + b"lru") == 600
        assert await backend.size(ns) == 600
        await check_index(redis_client, backend.key_prefix(ns))
    finally:
        await backend.aclose()


async def test_concurrent_first_searches_share_one_load(redis_server: RedisServer) -> None:
    """Several searches of a namespace this process has not loaded yet (a ``|`` pipeline,
    gathered tasks) read it from Redis once, not once each."""
    from tta_dev_primitives.memory.backends.redis import scripts as lua

    writer = RedisBackend.from_url(redis_server.url, max_size=None)
    reader = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("shared-load",)
    loads = 0
    original = reader._server.eval

    def counting(script: object, *args: object, **kwargs: object) -> object:
        nonlocal loads
        if script is lua.LOAD:
            loads += 1
        return original(script, *args, **kwargs)  # type: ignore[arg-type]

    try:
        await writer.put_many(ns, [entry(f"k{i}", f"apple {i}") for i in range(500)])
        reader._server.eval = counting  # type: ignore[method-assign,assignment]
        found = await asyncio.gather(*(keys_found(reader, ns, "apple") for _ in range(5)))
        assert all(len(f) == 500 for f in found)
        assert loads == 1
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_a_gap_during_the_load_loads_again(redis_server: RedisServer) -> None:
    """When the log shows a gap right after a load (entries trimmed while the records were
    read), the namespace is loaded again instead of served from a load that missed writes."""
    writer = RedisBackend.from_url(redis_server.url, max_size=None)
    reader = RedisBackend.from_url(redis_server.url, max_size=None)
    ns = ("gap-load",)
    original = reader._sync.catch_up
    calls = 0

    async def gap_once(*args: Any, **kwargs: Any) -> float | None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the load's own catch-up: a write lands and the log is trimmed
            await writer.put(ns, entry("late", "apple written during the load"))
            return None
        return await original(*args, **kwargs)

    try:
        await writer.put_many(ns, [entry(f"k{i}", f"apple {i}") for i in range(20)])
        reader._sync.catch_up = gap_once  # type: ignore[method-assign]
        assert "late" in await keys_found(reader, ns, "apple")
        assert calls == 2
    finally:
        await writer.aclose()
        await reader.aclose()
