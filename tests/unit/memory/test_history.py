"""Versioned records: history, as-of reads and supersession.

The tests taking ``make_memory`` are part of the conformance suite: they run on every backend
of the ``memory_backend`` fixture (in memory, Redis, Valkey, fallback, cluster, Redis Stack).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    LambdaPrimitive,
    MemoryPrimitive,
    MemoryRecord,
    RedisBackend,
    ResolverInput,
)
from tta_dev_primitives.memory.backends.base import HistoryBackend
from tta_dev_primitives.observability import attributes as A
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.redis_servers import RedisServer

MakeMemory = Callable[..., Awaitable[MemoryPrimitive]]


async def _between(memory: MemoryPrimitive, older: MemoryRecord) -> float:
    """A time when ``older`` was current (halfway through its validity)."""
    assert older.valid_from is not None
    assert older.valid_to is not None
    return (older.valid_from + older.valid_to) / 2


async def test_add_keeps_the_version_it_replaces(make_memory: MakeMemory) -> None:
    """With history on, an add over a live key keeps the old version, ended when the new
    one began; get, search and list see the current one only."""
    memory = await make_memory(history=5)
    await memory.add("diet", "I am vegetarian", metadata={"topic": "diet"})
    await memory.add("diet", "I am vegan now", metadata={"topic": "diet"})
    versions = await memory.history("diet")
    assert [v.value for v in versions] == ["I am vegan now", "I am vegetarian"]
    new, old = versions
    assert new.valid_to is None
    assert new.valid_from == new.updated_at
    assert old.valid_to == new.valid_from
    assert old.valid_from is not None
    assert old.valid_from <= old.valid_to
    assert old.metadata == {"topic": "diet"}
    assert await memory.get("diet") == "I am vegan now"
    assert await memory.search("vegetarian") == []
    assert [r.value for r in (await memory.list()).records] == ["I am vegan now"]
    assert await memory.size() == 1


async def test_as_of_answers_with_what_was_current(
    make_memory: MakeMemory, memory_backend: Any
) -> None:
    """get, get_record, search and list with as_of answer with the versions current then."""
    memory = await make_memory(history=5)
    await memory.add("diet", "I am vegetarian", metadata={"topic": "diet"})
    await memory.add("pet", "I have a cat")
    await memory_backend.advance(0.02)
    await memory.add("diet", "I am vegan now", metadata={"topic": "diet"})
    _, old = await memory.history("diet")
    then = await _between(memory, old)
    assert await memory.get("diet", as_of=then) == "I am vegetarian"
    record = await memory.get_record("diet", as_of=then)
    assert record is not None
    assert record.value == "I am vegetarian"
    assert record.valid_to == old.valid_to
    stamp = dt.datetime.fromtimestamp(then, dt.UTC)
    assert await memory.get("diet", as_of=stamp) == "I am vegetarian"
    hits = await memory.search("vegetarian", as_of=then)
    assert [(h.key, h.value) for h in hits] == [("diet", "I am vegetarian")]
    assert await memory.search("vegan", as_of=then) == []
    page = await memory.list(as_of=then, filter={"topic": "diet"})
    assert [r.value for r in page.records] == ["I am vegetarian"]
    page = await memory.list(as_of=then, order="oldest", limit=1)
    assert [r.key for r in page.records] == ["diet"]
    assert page.next_cursor is not None
    rest = await memory.list(as_of=then, order="oldest", cursor=page.next_cursor)
    assert [r.key for r in rest.records] == ["pet"]
    assert rest.next_cursor is None
    assert old.valid_from is not None
    assert await memory.get("diet", "none", as_of=old.valid_from - 1000) == "none"
    assert await memory.get("diet", as_of=old.valid_to) == "I am vegan now"


async def test_update_keeps_the_version_it_changes(make_memory: MakeMemory) -> None:
    """With history on, update keeps the record it changes as an earlier version."""
    memory = await make_memory(history=5)
    await memory.add("k", "first", metadata={"n": 1})
    await memory.update("k", metadata={"n": 2})
    versions = await memory.history("k")
    assert [v.metadata["n"] for v in versions] == [2, 1]
    assert versions[1].valid_to == versions[0].valid_from


async def test_history_is_bounded_per_key(make_memory: MakeMemory) -> None:
    """A key keeps at most N earlier versions, the newest."""
    memory = await make_memory(history=2)
    for i in range(5):
        await memory.add("k", f"v{i}")
    assert [v.value for v in await memory.history("k")] == ["v4", "v3", "v2"]


async def test_history_keys_bounded_by_max_size(make_memory: MakeMemory) -> None:
    """At most max_size keys keep earlier versions: the least recently versioned lose them."""
    memory = await make_memory(max_size=2, history=3)
    for key in ("a", "b", "c"):
        await memory.add(key, f"{key}1")
        await memory.add(key, f"{key}2")
    assert [v.value for v in await memory.history("a")] == []
    assert [v.value for v in await memory.history("c")] == ["c2", "c1"]


async def test_no_history_by_default(make_memory: MakeMemory) -> None:
    """history=0 (the default) keeps today's behaviour: an add replaces."""
    memory = await make_memory()
    await memory.add("k", "one")
    await memory.add("k", "two")
    if isinstance(memory.backend, HistoryBackend):
        assert [v.value for v in await memory.history("k")] == ["two"]


async def test_supersedes_ends_other_records(make_memory: MakeMemory, memory_backend: Any) -> None:
    """add(supersedes=[...]) takes the other records out of default reads in the same
    step; they stay in history and as_of."""
    memory = await make_memory(history=3)
    await memory.add("diet:1", "I am vegetarian")
    await memory_backend.advance(0.02)
    await memory.add("diet:2", "I am vegan now", supersedes=["diet:1", "missing"])
    assert await memory.get("diet:1") is None
    assert await memory.search("vegetarian") == []
    assert sorted(await memory.keys()) == ["diet:2"]
    (old,) = await memory.history("diet:1")
    assert old.value == "I am vegetarian"
    assert old.valid_to is not None
    new = await memory.get_record("diet:2")
    assert new is not None
    assert old.valid_to == new.updated_at
    then = await _between(memory, old)
    assert [h.key for h in await memory.search("vegetarian", as_of=then)] == ["diet:1"]


async def test_clear_drops_history(make_memory: MakeMemory) -> None:
    """clear removes earlier versions too."""
    memory = await make_memory(history=3)
    await memory.add("k", "one")
    await memory.add("k", "two")
    await memory.clear()
    assert await memory.history("k") == []


async def test_history_versions_expire(make_memory: MakeMemory, memory_backend: Any) -> None:
    """An earlier version keeps its own expiry: once past, it is gone from history."""
    memory = await make_memory(history=3)
    await memory.add("k", "short", ttl=0.3)
    await memory.add("k", "long")
    assert [v.value for v in await memory.history("k")] == ["long", "short"]
    await memory_backend.advance(0.5)
    assert [v.value for v in await memory.history("k")] == ["long"]


async def test_history_argument_errors() -> None:
    """Bad history, as_of and supersedes raise naming the argument, nothing stored."""
    with pytest.raises(ValueError, match="history"):
        MemoryPrimitive(history=-1)
    with pytest.raises(TypeError, match="history"):
        MemoryPrimitive(history="5")  # type: ignore[arg-type]
    memory = MemoryPrimitive(history=2)
    with pytest.raises(TypeError, match="as_of"):
        await memory.get("k", as_of="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="as_of"):
        await memory.get("k", as_of=dt.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="supersedes"):
        await memory.add("k", 1, supersedes="other")
    with pytest.raises(ValueError, match="supersedes"):
        await memory.add("k", 1, supersedes=[""])
    assert await memory.size() == 0


async def test_history_spans(telemetry: CapturedTelemetry) -> None:
    """history is a get_memory_history span; a versioned add an upsert_memory span with the
    superseded count; an as-of get a get_memory span."""
    memory = MemoryPrimitive(history=2, tracer_provider=telemetry.tracer_provider)
    await memory.add("a", "one")
    telemetry.clear()
    await memory.add("b", "two", supersedes=["a"])
    await memory.history("a")
    await memory.get("a", as_of=0)
    spans = {s.name: s for s in telemetry.spans()}
    assert spans["upsert_memory"].attributes is not None
    assert spans["upsert_memory"].attributes[A.ATTR_MEMORY_SUPERSEDED_COUNT] == 1
    history = spans["get_memory_history"].attributes
    assert history is not None
    assert history[A.ATTR_GEN_AI_MEMORY_RECORD_COUNT] == 1
    assert spans["get_memory"].attributes is not None


@pytest.mark.redis
async def test_fallback_journals_versions_and_replays_them_in_order(
    fresh_server: RedisServer,
) -> None:
    """Redis killed mid-way: versioned adds and a supersession are served by the fallback,
    journaled one by one, and replayed in order, so Redis ends with every version."""
    primary = RedisBackend.from_url(
        fresh_server.url,
        retries=1,
        backoff_base=0.01,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )
    backend = FallbackBackend(primary, InMemoryBackend(None), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="fb", history=5)
    await memory.add("diet", "vegetarian")
    await asyncio.to_thread(fresh_server.kill)
    await memory.add("diet", "pescatarian")
    await memory.add("diet", "vegan")
    await memory.add("diet:new", "vegan, no honey", supersedes=["diet"])
    assert backend.degraded
    expected = ["vegan", "pescatarian", "vegetarian"]  # the mirror kept the first too
    assert [v.value for v in await memory.history("diet")] == expected
    await asyncio.to_thread(fresh_server.restart)
    for _ in range(100):
        if await backend.recover():
            break
        await asyncio.sleep(0.05)
    assert not backend.degraded
    assert backend.pending == 0
    direct = MemoryPrimitive(backend=RedisBackend.from_url(fresh_server.url), namespace="fb")
    versions = await direct.history("diet")
    assert [v.value for v in versions] == expected
    assert all(v.valid_to is not None for v in versions)
    assert await direct.get("diet") is None
    assert await direct.get("diet:new") == "vegan, no honey"
    await direct.aclose()
    await memory.aclose()


def _resolver(seen: list[ResolverInput], keys: Any = None) -> LambdaPrimitive[Any, Any]:
    """A resolver that, for a record about being vegan, supersedes every candidate about
    being vegetarian (or returns ``keys``), remembering what it was given."""

    def decide(request: ResolverInput, ctx: Any) -> Any:
        seen.append(request)
        if keys is not None:
            return keys
        if "vegan" not in str(request.record.value):
            return []
        return [h.key for h in request.candidates if "vegetarian" in str(h.value)]

    return LambdaPrimitive(decide, name="resolver")


async def test_resolver_decides_what_an_add_supersedes(make_memory: MakeMemory) -> None:
    """The resolver sees the new record and the most similar current ones; the keys it
    returns are superseded in the add's atomic step."""
    seen: list[ResolverInput] = []
    memory = await make_memory(history=3, resolver=_resolver(seen), resolver_candidates=2)
    await memory.add("a", "I am vegetarian, I eat no meat")
    await memory.add("b", "I like cycling")
    await memory.add("c", "I am vegan now, I eat no meat or eggs")
    request = seen[-1]
    assert request.record.key == "c"
    assert request.record.value == "I am vegan now, I eat no meat or eggs"
    assert [h.key for h in request.candidates] == ["a", "b"]
    assert [r.record.key for r in seen] == ["b", "c"]  # "a" had no candidates
    assert await memory.get("a") is None
    assert sorted(await memory.keys()) == ["b", "c"]
    assert [v.value for v in await memory.history("a")] == ["I am vegetarian, I eat no meat"]


async def test_failing_resolver_changes_nothing(make_memory: MakeMemory) -> None:
    """A resolver that raises, returns a non-list or a key that was not a candidate: the
    error reaches the caller and nothing is written (the first add, with no candidates,
    does not call it)."""

    def boom(request: ResolverInput, ctx: Any) -> Any:
        raise RuntimeError("model down")

    for resolver, error in (
        (LambdaPrimitive(boom), RuntimeError),
        (_resolver([], keys="a"), TypeError),
        (_resolver([], keys=["nope"]), ValueError),
    ):
        memory = await make_memory(history=3, resolver=resolver)
        await memory.add("a", "I am vegetarian")
        with pytest.raises(error):
            await memory.add("b", "I am vegan now")
        assert await memory.get("b") is None


async def test_resolver_span_is_a_child_of_the_add(telemetry: CapturedTelemetry) -> None:
    """The resolver runs as a child span of the add's upsert_memory span."""
    resolver = _resolver([])
    memory = MemoryPrimitive(
        history=2, resolver=resolver, tracer_provider=telemetry.tracer_provider
    )
    await memory.add("a", "I am vegetarian")
    telemetry.clear()
    await memory.add("b", "I am vegan, not vegetarian")
    add = next(s for s in telemetry.spans() if s.name == "upsert_memory")
    children = [s for s in telemetry.spans() if s.parent is not None]
    assert any(s.parent.span_id == add.context.span_id for s in children if s.parent)
    assert add.attributes is not None
    assert add.attributes[A.ATTR_MEMORY_SUPERSEDED_COUNT] == 1


# -- forget ------------------------------------------------------------------------------------


def _joiner() -> LambdaPrimitive[Any, Any]:
    def summarize(records: list[MemoryRecord], ctx: Any) -> str:
        return " ".join(str(r.value) for r in records)

    return LambdaPrimitive(summarize, name="joiner")


async def test_forget_removes_the_record_and_its_history(make_memory: MakeMemory) -> None:
    """forget(key) removes the live record and every earlier version; delete leaves the
    earlier versions."""
    memory = await make_memory(history=3)
    for key in ("a", "b"):
        await memory.add(key, f"{key} one")
        await memory.add(key, f"{key} two")
    assert await memory.delete("b")
    assert [v.value for v in await memory.history("b")] == ["b one"]
    report = await memory.forget("a")
    assert report.forgotten == ("a",)
    assert report.removed == 2
    assert await memory.get("a") is None
    assert await memory.history("a") == []
    assert await memory.search("one") == []
    assert [r["key"] async for r in memory.export()] == []


async def test_forget_by_filter_and_the_summaries_built_from_it(make_memory: MakeMemory) -> None:
    """A compaction summary that replaced a forgotten record (even through a roll-up) is
    removed with it; forget(filter=...) forgets every key with a matching version."""
    memory = await make_memory(history=3)
    await memory.add("allergy", "I am allergic to peanuts.", metadata={"kind": "health"})
    for i in range(4):
        await memory.add(f"t{i}", f"Turn {i} was about the weather.")
    first = await memory.compact(_joiner(), keep_last=2)
    await memory.add("t9", "Turn 9 was about trains.")
    second = await memory.compact(_joiner(), keep_last=1)
    assert first.summary_key in second.replaced
    report = await memory.forget("allergy")
    assert report.forgotten == ("allergy",)
    assert report.summaries_removed == (second.summary_key,)
    await memory.add("med", "I take pills.", metadata={"kind": "health"})
    await memory.add("med", "I take no pills.", metadata={"kind": "none"})
    report = await memory.forget(filter={"kind": "health"})
    assert report.forgotten == ("med",)
    assert report.removed == 2
    assert await memory.search("peanuts") == []
    assert [h.key for h in await memory.search("weather")] == []
    exported = [r async for r in memory.export()]
    assert "peanuts" not in str(exported)


async def test_forget_rebuilds_summaries_with_a_summarizer(make_memory: MakeMemory) -> None:
    """forget(..., summarizer=...) rebuilds a summary without the forgotten record's
    sentences (known from a version history kept) and without its key in memory.replaced;
    a summary of a record whose text is gone is removed."""
    memory = await make_memory(history=3)
    await memory.add("allergy", "I am allergic to peanuts.")
    await memory.add("allergy", "I am allergic to peanuts.")
    await memory.add("city", "I live in Lisbon.")
    await memory.add("last", "I like trains.")
    report = await memory.compact(_joiner(), keep_last=1)
    summary_key = str(report.summary_key)
    forgot = await memory.forget("allergy", summarizer=_joiner())
    assert forgot.summaries_rebuilt == (summary_key,)
    record = await memory.get_record(summary_key)
    assert record is not None
    assert record.value == "I live in Lisbon."
    assert record.metadata["memory.replaced"] == ["city"]
    assert [v.value for v in await memory.history(summary_key)] == ["I live in Lisbon."]
    forgot = await memory.forget("city", summarizer=_joiner())
    assert forgot.summaries_removed == (summary_key,)
    assert await memory.get(summary_key) is None


async def test_tombstone_stops_an_import_bringing_it_back(make_memory: MakeMemory) -> None:
    """An export taken before forget, imported after, does not bring back the forgotten
    record, nor a summary whose memory.replaced names it; other records are imported."""
    memory = await make_memory(history=3)
    await memory.add("allergy", "I am allergic to peanuts.")
    await memory.add("city", "I live in Lisbon.")
    await memory.add("last", "I like trains.")
    backup = [r async for r in memory.export()]
    await memory.compact(_joiner(), keep_last=1)
    backup += [r async for r in memory.export()]
    await memory.forget("allergy")
    report = await memory.import_(backup)
    assert report.skipped_forgotten == 2  # the record and the summary naming it
    assert await memory.get("allergy") is None
    assert sorted(await memory.keys()) == ["city", "last"]


async def test_forget_argument_errors() -> None:
    """forget takes a key or a non-empty filter, nothing else; nothing is removed."""
    memory = MemoryPrimitive(history=1)
    await memory.add("k", 1)
    with pytest.raises(ValueError, match="key or filter"):
        await memory.forget()
    with pytest.raises(ValueError, match="key or filter"):
        await memory.forget("k", filter={"a": 1})
    with pytest.raises(ValueError, match="filter"):
        await memory.forget(filter={})
    with pytest.raises(ValueError, match="tombstone_ttl"):
        await memory.forget("k", tombstone_ttl=0)
    assert await memory.get("k") == 1


@pytest.mark.redis
async def test_forget_during_an_outage_is_replayed_after_the_writes(
    fresh_server: RedisServer,
) -> None:
    """A record written and forgotten while Redis is down never reaches Redis; one written
    before the outage and forgotten during it is gone from Redis after the replay, and the
    tombstone is there."""
    primary = RedisBackend.from_url(
        fresh_server.url,
        retries=1,
        backoff_base=0.01,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )
    backend = FallbackBackend(primary, InMemoryBackend(None), probe_interval=3600)
    memory = MemoryPrimitive(backend=backend, namespace="fg", history=2)
    await memory.add("old", "before the outage")
    await asyncio.to_thread(fresh_server.kill)
    await memory.add("new", "during the outage")
    await memory.add("new", "during the outage, again")
    await memory.forget("new")
    await memory.forget("old")
    assert backend.degraded
    await asyncio.to_thread(fresh_server.restart)
    for _ in range(100):
        if await backend.recover():
            break
        await asyncio.sleep(0.05)
    assert backend.pending == 0
    direct = RedisBackend.from_url(fresh_server.url)
    assert await direct.keys(("fg",)) == []
    assert await direct.history(("fg",), "new") == []
    assert await direct.forgotten(("fg",)) == {"new", "old"}
    await direct.aclose()
    await memory.aclose()


# -- export and import -------------------------------------------------------------------------


async def test_export_import_carry_history(make_memory: MakeMemory, memory_backend: Any) -> None:
    """export(history=True) writes earlier versions with valid_to (format version 2); an
    import with history adds them back, so history and as_of answer as before; without
    history they are skipped and counted."""
    source = await make_memory(history=3)
    await source.add("diet", "I am vegetarian", metadata={"topic": "diet"})
    await memory_backend.advance(0.02)
    await source.add("diet", "I am vegan now", metadata={"topic": "diet"})
    await source.add("gone", "superseded fact")
    await source.add("other", "new fact", supersedes=["gone"])
    exported = [r async for r in source.export(history=True)]
    assert [(r["key"], r.get("valid_to") is not None) for r in exported] == [
        ("diet", False),
        ("other", False),
        ("diet", True),
        ("gone", True),
    ]
    assert [r["key"] async for r in source.export()] == ["diet", "other"]
    before = await source.history("diet")
    target = await make_memory(history=3)
    report = await target.import_(exported)
    assert (report.imported, report.versions_imported) == (2, 2)
    after = await target.history("diet")
    assert [v.value for v in after] == [v.value for v in before]
    assert after[1].valid_to == pytest.approx(before[1].valid_to, abs=0.002)
    assert after[1].metadata == {"topic": "diet"}
    assert [v.value for v in await target.history("gone")] == ["superseded fact"]
    assert await target.get("gone") is None
    plain = await make_memory()
    report = await plain.import_(exported)
    assert (report.imported, report.versions_skipped) == (2, 2)


async def test_version_1_files_still_import(tmp_path: Any) -> None:
    """A version-1 file (no valid_to) imports as before; a file is version 2 only when it
    carries history, so an export without history still reads in older releases."""
    from tta_dev_primitives.memory.transfer import FORMAT_VERSION, header, read_jsonl

    assert FORMAT_VERSION == 2
    assert header()["version"] == 1
    assert header(history=True)["version"] == 2
    lines = [
        '{"format": "tta-memory", "version": 1, "exported_at": 0, "namespace": []}',
        '{"namespace": [], "key": "k", "value": "v", "metadata": {}, "created_at": null, '
        '"updated_at": null, "expires_at": null}',
    ]
    memory = MemoryPrimitive(history=2)
    report = await memory.import_(read_jsonl(lines))
    assert report.imported == 1
    assert await memory.get("k") == "v"
