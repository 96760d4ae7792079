"""Records an agent can manage (issue #13): metadata and timestamps on read, update, list
with filters and pages, delete_where, namespaces, NO_EXPIRY, recency, steps with metadata and
filters. Runs on every entry of the ``memory_backend`` fixture."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tta_dev_primitives import (
    NO_EXPIRY,
    LambdaPrimitive,
    MemoryPage,
    MemoryPrimitive,
    MemoryRecord,
)

from tests.support.backends import BackendHarness

MakeMemory = Callable[..., Awaitable[MemoryPrimitive]]


@pytest.fixture
def records(memory_backend: BackendHarness, make_memory: MakeMemory) -> MakeMemory:
    """``make_memory`` for the records API (skips backends that do not have it yet)."""
    return make_memory


def _needs_times(harness: BackendHarness) -> None:
    """Every backend keeps record timestamps (Redis: from the server's clock)."""


async def _walk(memory: MemoryPrimitive, **kwargs: Any) -> list[MemoryRecord]:
    out: list[MemoryRecord] = []
    cursor = None
    while True:
        page = await memory.list(cursor=cursor, **kwargs)
        out.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return out


async def test_get_record_has_metadata_and_timestamps(
    records: MakeMemory, memory_backend: BackendHarness
) -> None:
    """get_record returns value, metadata ({} when none) and epoch timestamps; None if absent."""
    _needs_times(memory_backend)
    memory = await records()
    before = time.time()
    await memory.add("a", {"text": "hi"}, metadata={"role": "user"})
    await memory.add("b", "plain")
    a = await memory.get_record("a")
    b = await memory.get_record("b")
    assert isinstance(a, MemoryRecord)
    assert isinstance(b, MemoryRecord)
    assert (a.key, a.value, a.metadata) == ("a", {"text": "hi"}, {"role": "user"})
    assert b.metadata == {}
    assert a.created_at == a.updated_at
    assert abs(a.created_at - before) < 60  # wall-clock epoch seconds
    assert a.expires_at is None
    assert await memory.get_record("missing") is None
    a.metadata["role"] = "changed"  # a copy: nothing stored changes
    again = await memory.get_record("a")
    assert again is not None
    assert again.metadata == {"role": "user"}


async def test_search_hit_metadata_is_always_a_dict(records: MakeMemory) -> None:
    """SearchHit.metadata is {} for a record without metadata."""
    memory = await records()
    await memory.add("a", "apples and pears")
    (hit,) = await memory.search("apples")
    assert hit.metadata == {}
    assert hit.metadata.get("role") is None


async def test_update_changes_only_what_is_given(
    records: MakeMemory, memory_backend: BackendHarness
) -> None:
    """update keeps omitted value, metadata and expiry; merges metadata unless told not to."""
    _needs_times(memory_backend)
    memory = await records()
    await memory.add("k", {"v": 1}, metadata={"a": 1, "b": 2}, ttl=100)
    first = await memory.get_record("k")
    assert first is not None
    assert first.expires_at is not None
    await memory_backend.advance(0.01)
    rec = await memory.update("k", metadata={"b": 3, "c": 4})
    assert rec.value == {"v": 1}
    assert rec.metadata == {"a": 1, "b": 3, "c": 4}
    assert rec.expires_at == pytest.approx(first.expires_at, abs=0.002)
    assert rec.created_at == first.created_at
    assert rec.updated_at > first.updated_at
    rec = await memory.update("k", value=None)
    assert rec.value is None
    assert rec.metadata == {"a": 1, "b": 3, "c": 4}
    rec = await memory.update("k", metadata={"only": True}, merge_metadata=False)
    assert rec.metadata == {"only": True}
    rec = await memory.update("k", ttl=NO_EXPIRY)
    assert rec.expires_at is None
    assert await memory.get_record("k") == rec
    assert await memory.get("k") is None  # the value was updated to None


async def test_update_of_a_missing_record_is_a_key_error(records: MakeMemory) -> None:
    """update raises KeyError and writes nothing when there is no live record."""
    memory = await records()
    with pytest.raises(KeyError):
        await memory.update("nope", value=1)
    assert await memory.get_record("nope") is None
    with pytest.raises(TypeError):
        await memory.update("nope", metadata={"x": {1, 2}})  # type: ignore[dict-item]


async def test_update_is_atomic_between_concurrent_updates(records: MakeMemory) -> None:
    """Concurrent updates of different metadata keys all land (no lost update)."""
    memory = await records()
    await memory.add("k", "v", metadata={})
    await asyncio.gather(*(memory.update("k", metadata={f"f{i}": i}) for i in range(20)))
    rec = await memory.get_record("k")
    assert rec is not None
    assert rec.metadata == {f"f{i}": i for i in range(20)}


async def test_no_expiry_beats_default_ttl(
    records: MakeMemory, memory_backend: BackendHarness
) -> None:
    """ttl=None uses default_ttl; ttl=NO_EXPIRY never expires, on add and on update."""
    _needs_times(memory_backend)
    memory = await records(default_ttl=0.2)
    await memory.add("default", 1)
    await memory.add("forever", 2, ttl=NO_EXPIRY)
    await memory.add("later", 3)
    await memory.update("later", ttl=NO_EXPIRY)
    rec = await memory.get_record("default")
    assert rec is not None
    assert rec.expires_at is not None
    assert rec.expires_at - rec.updated_at == pytest.approx(0.2, abs=0.01)
    await memory_backend.advance(0.3)
    assert await memory.get("default") is None
    assert await memory.get("forever") == 2
    assert await memory.get("later") == 3
    assert repr(NO_EXPIRY) == "NO_EXPIRY"


async def test_list_orders_pages_and_filters(records: MakeMemory) -> None:
    """list pages newest or oldest first, with cursors, through filtered records."""
    memory = await records()
    for i in range(7):
        await memory.add(f"k{i}", i, metadata={"n": i, "even": i % 2 == 0})
    page = await memory.list(limit=3)
    assert isinstance(page, MemoryPage)
    assert [r.key for r in page.records] == ["k6", "k5", "k4"]
    assert page.next_cursor is not None
    assert [r.key for r in await _walk(memory, limit=2)] == [f"k{i}" for i in range(6, -1, -1)]
    oldest = await _walk(memory, limit=3, order="oldest")
    assert [r.key for r in oldest] == [f"k{i}" for i in range(7)]
    evens = await _walk(memory, filter={"even": True}, limit=1)
    assert [r.key for r in evens] == ["k6", "k4", "k2", "k0"]
    big = await _walk(memory, filter={"n": {"$gte": 3}}, limit=2, order="oldest")
    assert [r.value for r in big] == [3, 4, 5, 6]
    assert (await memory.list(filter={"n": {"$gt": 99}})).records == []
    whole = await memory.list()
    assert whole.next_cursor is None
    assert len(whole.records) == 7
    await memory.get("k0")  # reading does not change write order
    assert (await memory.list(limit=1, order="oldest")).records[0].key == "k0"
    await memory.update("k0", metadata={"touched": True})  # an update is a write
    assert (await memory.list(limit=1)).records[0].key == "k0"


async def test_list_cursor_is_checked(records: MakeMemory) -> None:
    """A cursor of another order, or not a cursor at all, is a ValueError before any I/O."""
    memory = await records()
    for i in range(3):
        await memory.add(f"k{i}", i)
    page = await memory.list(limit=1)
    assert page.next_cursor is not None
    with pytest.raises(ValueError, match="other order"):
        await memory.list(cursor=page.next_cursor, order="oldest")
    with pytest.raises(ValueError, match="not a next_cursor"):
        await memory.list(cursor="garbage")
    with pytest.raises(ValueError, match="order"):
        await memory.list(order="random")  # type: ignore[arg-type]


async def test_paging_while_others_write(records: MakeMemory) -> None:
    """A walk never returns a record twice, never skips one left unchanged throughout."""
    memory = await records(max_size=None)
    for i in range(30):
        await memory.add(f"k{i}", i)
    for order in ("newest", "oldest"):
        seen: list[str] = []
        cursor = None
        step = 0
        while True:
            page = await memory.list(limit=4, cursor=cursor, order=order)  # type: ignore[arg-type]
            seen.extend(r.key for r in page.records)
            # Meanwhile: rewrite a record already seen and one not seen yet, add new ones.
            await memory.update(f"k{step % 30}", metadata={"step": step})
            await memory.add(f"new-{order}-{step}", step)
            step += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        untouched = {f"k{i}" for i in range(30)} - {f"k{s % 30}" for s in range(step)}
        assert untouched <= set(seen)


async def test_delete_where(records: MakeMemory) -> None:
    """delete_where deletes the matching records only; an empty filter is a ValueError."""
    memory = await records()
    for i in range(6):
        await memory.add(f"k{i}", i, metadata={"session": "s1" if i < 4 else "s2", "n": i})
    await memory.add("bare", "no metadata")
    with pytest.raises(ValueError, match="clear"):
        await memory.delete_where({})
    with pytest.raises(ValueError, match=r"\$bogus"):
        await memory.delete_where({"n": {"$bogus": 1}})
    assert await memory.size() == 7
    assert await memory.delete_where({"session": "s1", "n": {"$lt": 2}}) == 2
    assert sorted(await memory.keys()) == ["bare", "k2", "k3", "k4", "k5"]
    assert await memory.delete_where({"n": {"$exists": False}}) == 1
    assert await memory.delete_where({"session": "nobody"}) == 0
    assert await memory.size() == 4


async def test_namespaces_below_the_primitive(records: MakeMemory) -> None:
    """namespaces lists the sub-namespaces holding records, relative to the primitive."""
    memory = await records()
    other = await records()  # another namespace on another backend: never listed
    await other.add("x", 1)
    await memory.add("own", 1)  # the primitive's own records are not a sub-namespace
    await memory.scoped("users", "ada").add("k", 1)
    await memory.scoped("users", "bob").add("k", 1)
    await memory.scoped("teams").add("k", 1)
    empty = memory.scoped("users", "gone")
    await empty.add("k", 1)
    await empty.delete("k")
    assert await memory.namespaces() == [("teams",), ("users", "ada"), ("users", "bob")]
    assert await memory.namespaces(("users",)) == [("users", "ada"), ("users", "bob")]
    assert await memory.namespaces(("users", "ada")) == [("users", "ada")]
    assert await memory.namespaces(("nobody",)) == []
    for ns in await memory.namespaces():
        assert await memory.scoped(*ns).get("k") == 1
    with pytest.raises(TypeError):
        await memory.namespaces("users")  # type: ignore[arg-type]


FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"role": "user"}, ["u1", "u2"]),
    ({"role": {"$eq": "bot"}}, ["b1"]),
    ({"role": {"$ne": "user"}}, ["b1", "none"]),
    ({"n": {"$gt": 1}}, ["u2", "b1"]),
    ({"n": {"$gte": 1, "$lt": 3}}, ["u1", "u2"]),
    ({"n": {"$lte": 1}}, ["u1"]),
    ({"role": {"$in": ["bot", "admin"]}}, ["b1"]),
    ({"role": {"$nin": ["bot"]}}, ["u1", "u2", "none"]),
    ({"tags": {"$exists": True}}, ["u1"]),
    ({"tags": {"$exists": False}}, ["u2", "b1", "none"]),
    ({"$or": [{"role": "bot"}, {"n": 1}]}, ["u1", "b1"]),
    ({"$and": [{"role": "user"}, {"n": {"$gt": 1}}]}, ["u2"]),
    ({"$not": {"role": "user"}}, ["b1", "none"]),
    ({"n": {"$not": {"$gt": 1}}}, ["u1", "none"]),
    ({"role": {"$gt": 5}}, []),  # a type mismatch matches nothing
    ({"n": {"$gt": "a"}}, []),
    ({"tags": ["a", "b"]}, ["u1"]),  # a plain list is equality
    ({"flag": 1}, []),  # true is not 1
    ({"flag": True}, ["u1"]),
]


@pytest.mark.parametrize(("filter_", "expected"), FILTER_CASES, ids=lambda v: str(v)[:40])
async def test_filter_operators(
    records: MakeMemory, filter_: dict[str, Any], expected: list[str]
) -> None:
    """Every operator matches the same records in search, list and delete_where."""
    memory = await records()
    data = {
        "u1": {"role": "user", "n": 1, "tags": ["a", "b"], "flag": True},
        "u2": {"role": "user", "n": 2},
        "b1": {"role": "bot", "n": 3},
        "none": None,
    }
    for key, meta in data.items():
        await memory.add(key, f"common text {key}", metadata=meta)
    listed = {r.key for r in (await memory.list(filter=filter_)).records}
    found = {h.key for h in await memory.search("common", filter=filter_, limit=10)}
    assert listed == set(expected)
    assert found == set(expected)
    assert await memory.delete_where(filter_) == len(expected)
    assert sorted(await memory.keys()) == sorted(set(data) - set(expected))


@pytest.mark.parametrize(
    ("filter_", "match"),
    [
        ({"n": {"$gtx": 1}}, r"\$gtx"),
        ({"$xor": []}, r"\$xor"),
        ({"$or": []}, r"\$or"),
        ({"$and": {"a": 1}}, r"\$and"),
        ({"n": {"$in": 3}}, r"\$in"),
        ({"n": {"$gt": [1]}}, r"\$gt"),
        ({"n": {"$exists": 1}}, r"\$exists"),
        ({"n": {"$eq": 1, "plain": 2}}, "mixes"),
        ({"$not": {}}, r"\$not"),
    ],
)
async def test_malformed_filters_are_value_errors(
    records: MakeMemory, filter_: dict[str, Any], match: str
) -> None:
    """An unknown operator or malformed filter is a ValueError naming it, in every call."""
    memory = await records()
    with pytest.raises(ValueError, match=match):
        await memory.search("x", filter=filter_)
    with pytest.raises(ValueError, match=match):
        await memory.list(filter=filter_)
    with pytest.raises(ValueError, match=match):
        await memory.delete_where(filter_)


async def test_recency_half_life(records: MakeMemory, memory_backend: BackendHarness) -> None:
    """recency_half_life multiplies scores by 0.5 ** (age / half_life), from updated_at."""
    _needs_times(memory_backend)
    memory = await records()
    # Fake time in memory; on a server, real time (and a looser bound for its latency).
    gap, tolerance = (100.0, 1e-6) if not memory_backend.remote else (0.4, 0.15)
    await memory.add("old", "coffee beans")
    await memory_backend.advance(gap)
    await memory.add("new", "coffee beans")
    plain = {h.key: h.score for h in await memory.search("coffee")}
    for mode_limit in (1, 5):
        recent = await memory.search("coffee", recency_half_life=gap, limit=mode_limit)
        assert recent[0].key == "new"
    recent = await memory.search("coffee", recency_half_life=gap)
    assert [h.key for h in recent] == ["new", "old"]
    scores = {h.key: h.score for h in recent}
    assert scores["new"] == pytest.approx(plain["new"], rel=tolerance)
    assert scores["old"] == pytest.approx(plain["old"] * 0.5, rel=tolerance)
    await memory.update("old", metadata={"seen": True})  # age restarts at updated_at
    first = await memory.search("coffee", recency_half_life=gap, limit=1)
    assert first[0].key == "old"
    with pytest.raises(ValueError, match="recency_half_life"):
        await memory.search("coffee", recency_half_life=0)


async def test_steps_take_metadata_and_filters(records: MakeMemory) -> None:
    """add_step stores metadata; search_step filters; both may be callables of the input."""
    memory = await records()
    store = memory.add_step(
        key=lambda text, ctx: f"msg:{text}",
        metadata=lambda text, ctx: {"role": "user", "len": len(text)},
    )
    await store.execute("hello there")
    await memory.add("bot", "hello from the bot", metadata={"role": "bot"})
    rec = await memory.get_record("msg:hello there")
    assert rec is not None
    assert rec.metadata == {"role": "user", "len": 11}
    recall = memory.search_step(limit=5, filter={"role": "user"})
    assert [h.key for h in await recall.execute("hello")] == ["msg:hello there"]
    dynamic = memory.search_step(filter=lambda q, ctx: {"role": ctx.metadata["who"]})
    from tta_dev_primitives import WorkflowContext

    hits = await dynamic.execute("hello", WorkflowContext(metadata={"who": "bot"}))
    assert [h.key for h in hits] == ["bot"]


def test_pipelines_are_named_after_their_steps() -> None:
    """An unnamed >> or | is named after its steps; a given name wins."""
    memory = MemoryPrimitive()
    answer = LambdaPrimitive(lambda hits, ctx: "ok", name="answer")
    pipeline = memory.search_step() >> answer >> memory.add_step(key="k")
    assert pipeline.name == "search_step>>answer>>add_step"
    both = memory.search_step() | memory.get_step()
    assert both.name == "search_step|get_step"
    assert (answer >> both).name == "answer>>(search_step|get_step)"
    named = LambdaPrimitive(lambda x, c: x, name="a") >> answer
    assert named.name == "a>>answer"
    from tta_dev_primitives import SequentialPrimitive

    assert SequentialPrimitive([answer], name="mine").name == "mine"
