"""Compaction: summaries replace old records, duplicates merge, nothing is lost to a race.

The tests taking ``make_memory`` are part of the conformance suite: they run on every backend
of the ``memory_backend`` fixture (in memory, Redis, Valkey, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tta_dev_primitives import (
    CompactionPolicy,
    CompactionReport,
    ExtractiveSummarizer,
    HashingEmbedder,
    LambdaPrimitive,
    MemoryOperation,
    MemoryPrimitive,
    MemoryRecord,
    WorkflowContext,
)
from tta_dev_primitives.memory.compaction import (
    META_REPLACED,
    META_SUMMARIZED,
    META_SUMMARY,
)
from tta_dev_primitives.observability import attributes as A
from tta_dev_primitives.testing import CapturedTelemetry

MakeMemory = Callable[..., Awaitable[MemoryPrimitive]]


def joiner(seen: list[list[MemoryRecord]] | None = None) -> LambdaPrimitive[Any, Any]:
    """A summarizer that joins the records' text (and remembers what it was given)."""

    def summarize(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        if seen is not None:
            seen.append(list(records))
        return " | ".join(str(r.value) for r in records)

    return LambdaPrimitive(summarize, name="joiner")


async def _fill(memory: MemoryPrimitive, n: int, **meta: Any) -> list[str]:
    keys = []
    for i in range(n):
        key = f"m{i:02d}"
        await memory.add(key, f"memory number {i}", metadata={"i": i, **meta})
        keys.append(key)
    return keys


async def test_compact_replaces_old_records_by_one_summary(make_memory: MakeMemory) -> None:
    """Records beyond the newest keep_last go to the summarizer oldest first, become one
    summary record marked as such, and are deleted; the newest stay as they were."""
    memory = await make_memory()
    keys = await _fill(memory, 10, user="ada")
    seen: list[list[MemoryRecord]] = []
    report = await memory.compact(joiner(seen), keep_last=3)
    assert [r.key for r in seen[0]] == keys[:7]
    first = seen[0][0]
    assert (first.key, first.value, first.metadata) == (
        "m00",
        "memory number 0",
        {"i": 0, "user": "ada"},
    )
    assert isinstance(first, MemoryRecord)
    assert report.replaced == tuple(keys[:7])
    assert report.merged == ()
    assert report.kept == ()
    assert report.considered == 10
    assert report.removed == 7
    assert report.summary_key is not None
    assert sorted(await memory.keys()) == sorted([*keys[7:], report.summary_key])
    assert await memory.get(report.summary_key) == " | ".join(
        f"memory number {i}" for i in range(7)
    )
    for key in keys[7:]:
        assert await memory.get(key) == f"memory number {key[1:].lstrip('0') or 0}"
    hits = await memory.search("number", limit=20, filter={META_SUMMARY: True})
    assert [h.key for h in hits] == [report.summary_key]
    meta = hits[0].metadata
    assert meta is not None
    assert meta[META_REPLACED] == list(keys[:7])
    assert meta[META_SUMMARIZED] == 7
    assert meta["user"] == "ada"  # every replaced record agreed on it
    assert "i" not in meta  # they did not agree on this one


async def test_compact_with_filter_and_max_records(make_memory: MakeMemory) -> None:
    """Only records matching the filter are compacted, at most max_records, oldest first."""
    memory = await make_memory()
    for i in range(8):
        await memory.add(f"a{i}", f"alice said {i}", metadata={"user": "alice"})
        await memory.add(f"b{i}", f"bob said {i}", metadata={"user": "bob"})
    report = await memory.compact(joiner(), keep_last=2, filter={"user": "alice"}, max_records=4)
    assert report.replaced == ("a0", "a1", "a2", "a3")
    assert report.considered == 8
    assert await memory.size() == 16 - 4 + 1
    assert [await memory.get(f"b{i}") for i in range(8)] == [f"bob said {i}" for i in range(8)]
    hits = await memory.search("alice", limit=20, filter={"user": "alice"})
    assert report.summary_key in {h.key for h in hits}


async def test_summaries_roll_up(make_memory: MakeMemory) -> None:
    """A later compaction summarizes an earlier summary too and counts through it."""
    memory = await make_memory()
    await _fill(memory, 6)
    first = await memory.compact(joiner(), keep_last=2)
    for i in range(6, 9):
        await memory.add(f"m{i:02d}", f"memory number {i}")
    second = await memory.compact(joiner(), keep_last=1)
    assert first.summary_key in second.replaced
    assert second.summary_key is not None
    hits = await memory.search("memory", limit=10, filter={META_SUMMARY: True})
    assert [h.key for h in hits] == [second.summary_key]
    assert hits[0].metadata is not None
    assert hits[0].metadata[META_SUMMARIZED] == 4 + 2 + 2  # 4 via the first summary
    assert await memory.size() == 2


async def test_nothing_to_compact(make_memory: MakeMemory) -> None:
    """With keep_last or fewer records (or one beyond it) nothing is summarized or changed."""
    memory = await make_memory()
    await _fill(memory, 4)
    seen: list[list[MemoryRecord]] = []
    for keep in (4, 10, 3):
        report = await memory.compact(joiner(seen), keep_last=keep)
        assert report == CompactionReport(considered=4)
    assert seen == []
    assert await memory.size() == 4
    empty = await make_memory()
    assert await empty.compact(joiner()) == CompactionReport()


@pytest.mark.parametrize("outcome", ["raises", "times_out", "none", "blank", "empty_list"])
async def test_failed_summarizer_leaves_every_record(make_memory: MakeMemory, outcome: str) -> None:
    """A summarizer that raises, times out or returns nothing changes nothing, and the
    caller gets the error."""
    memory = await make_memory()
    keys = await _fill(memory, 6)

    async def bad(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> Any:
        if outcome == "raises":
            raise RuntimeError("model is down")
        if outcome == "times_out":
            await asyncio.sleep(10)
        return {"none": None, "blank": "  \n", "empty_list": []}[outcome]

    expected: type[Exception] = {"raises": RuntimeError, "times_out": TimeoutError}.get(
        outcome, ValueError
    )
    with pytest.raises(expected):
        await memory.compact(LambdaPrimitive(bad), keep_last=1, summarizer_timeout=0.05)
    assert sorted(await memory.keys()) == keys
    assert [await memory.get(k) for k in keys] == [f"memory number {i}" for i in range(6)]


async def test_record_rewritten_meanwhile_is_left_alone(make_memory: MakeMemory) -> None:
    """A record another writer rewrites while the summarizer runs stays, with its new value;
    the others are still compacted and the summary lists only what it replaced."""
    memory = await make_memory()
    keys = await _fill(memory, 6)

    async def racing(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        await memory.add("m01", "rewritten while compacting")
        await memory.delete("m02")
        return "summary of " + ", ".join(r.key for r in records)

    report = await memory.compact(LambdaPrimitive(racing), keep_last=2)
    assert report.kept == ("m01", "m02")
    assert report.replaced == ("m00", "m03")
    assert await memory.get("m01") == "rewritten while compacting"
    assert await memory.get("m02") is None  # its delete stands too
    assert report.summary_key is not None
    assert sorted(await memory.keys()) == sorted(["m01", *keys[4:], report.summary_key])
    hits = await memory.search("summary", filter={META_SUMMARY: True})
    assert hits[0].metadata is not None
    assert hits[0].metadata[META_REPLACED] == ["m00", "m03"]


async def test_all_rewritten_meanwhile_writes_no_summary(make_memory: MakeMemory) -> None:
    """When fewer than two of the summarized records are unchanged, nothing is written."""
    memory = await make_memory()
    await _fill(memory, 4)

    async def racing(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        for r in records[1:]:
            await memory.add(r.key, "new")
        return "summary"

    report = await memory.compact(LambdaPrimitive(racing), keep_last=1)
    assert report.summary_key is None
    assert report.replaced == ()
    assert report.kept == ("m01", "m02")
    assert await memory.size() == 4


async def test_readers_see_all_or_nothing(make_memory: MakeMemory) -> None:
    """A concurrent reader sees either every original and no summary, or the summary and
    none of the originals it replaced, never both or neither."""
    memory = await make_memory()
    keys = await _fill(memory, 30)
    old = set(keys[:25])
    snapshots: list[set[str]] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            snapshots.append(set(await memory.keys()))
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    try:
        report = await memory.compact(joiner(), keep_last=5)
    finally:
        done.set()
        await task
    snapshots.append(set(await memory.keys()))
    for snap in snapshots:
        has_summary = report.summary_key in snap
        assert (snap & old == set()) if has_summary else (snap >= old), snap
    assert report.summary_key in snapshots[-1]


async def test_compaction_stays_in_its_namespace(make_memory: MakeMemory) -> None:
    """Compacting a namespace reads and changes nothing of its parent, children or siblings."""
    memory = await make_memory()
    child = memory.scoped("child")
    sibling = memory.scoped("sibling")
    for view in (memory, child, sibling):
        await _fill(view, 5)
    report = await child.compact(joiner(), keep_last=1, merge_duplicates=0.9)
    assert report.considered == 5
    assert await child.size() == 2
    for view in (memory, sibling):
        assert sorted(await view.keys()) == [f"m{i:02d}" for i in range(5)]


async def test_merge_duplicates_by_text(make_memory: MakeMemory) -> None:
    """Near-duplicates (by shared words) collapse into the newest, metadata merged; distinct
    records stay."""
    memory = await make_memory()
    await memory.add("a", "the user prefers dark mode in the editor", metadata={"src": "chat"})
    await memory.add("b", "something else entirely", metadata={"src": "mail"})
    await memory.add("c", "The user prefers dark mode in the editor!", metadata={"seen": 2})
    await memory.add("d", "the user prefers dark mode in the editor", metadata={"src": "web"})
    report = await memory.compact(None, merge_duplicates=0.9, keep_last=0)
    assert report.merged == ("c", "a")
    assert report.summary_key is None
    assert report.replaced == ()
    assert sorted(await memory.keys()) == ["b", "d"]
    assert await memory.get("d") == "the user prefers dark mode in the editor"
    hits = await memory.search("dark mode")
    assert [(h.key, h.metadata) for h in hits] == [("d", {"src": "web", "seen": 2})]


async def test_merge_duplicates_by_vector(make_memory: MakeMemory) -> None:
    """With an embedder, duplicates are the records whose vectors are within the threshold."""
    memory = await make_memory(embedder=HashingEmbedder(dimensions=256))
    await memory.add("a", "favourite colour is blue")
    await memory.add("b", "lives in Lisbon")
    await memory.add("c", "Favourite colour is BLUE")
    report = await memory.compact(None, merge_duplicates=0.99, keep_last=0)
    assert report.merged == ("a",)
    assert sorted(await memory.keys()) == ["b", "c"]
    assert next(h.key for h in await memory.search("blue colour", mode="semantic")) == "c"


async def test_merge_then_summarize(make_memory: MakeMemory) -> None:
    """Duplicates merge first; the survivors beyond keep_last are then summarized."""
    memory = await make_memory()
    await _fill(memory, 5)
    await memory.add("dup", "memory number 0")
    seen: list[list[MemoryRecord]] = []
    report = await memory.compact(joiner(seen), merge_duplicates=1.0, keep_last=2)
    assert report.merged == ("m00",)
    assert [r.key for r in seen[0]] == ["m01", "m02", "m03"]
    assert sorted(await memory.keys()) == sorted(["m04", "dup", str(report.summary_key)])


async def test_merge_keeps_expiry(make_memory: MakeMemory, memory_backend: Any) -> None:
    """The record duplicates merge into keeps its own expiry."""
    memory = await make_memory()
    await memory.add("old", "same text here", metadata={"a": 1})
    await memory.add("new", "same text here", ttl=0.4, metadata={"b": 2})
    report = await memory.compact(None, merge_duplicates=1.0, keep_last=0)
    assert report.merged == ("old",)
    assert await memory.get("new") == "same text here"
    await memory_backend.advance(0.6)
    assert await memory.get("new") is None


async def test_compact_argument_errors(make_memory: MakeMemory) -> None:
    """Bad arguments raise before anything is read or changed, naming the argument."""
    memory = await make_memory()
    await _fill(memory, 5)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"keep_last": -1}, ValueError, "keep_last"),
        ({"keep_last": "3"}, TypeError, "keep_last"),
        ({"max_records": 1}, ValueError, "max_records"),
        ({"merge_duplicates": 0}, ValueError, "merge_duplicates"),
        ({"merge_duplicates": 1.5}, ValueError, "merge_duplicates"),
        ({"filter": ["x"]}, TypeError, "filter"),
        ({"summarizer_timeout": 0}, ValueError, "summarizer_timeout"),
        ({"ttl": -1}, ValueError, "ttl"),
        ({"summary_key": ""}, ValueError, "key"),
        ({"summary_key": "m04"}, ValueError, "summary_key"),
    ]
    for kwargs, error, name in cases:
        with pytest.raises(error, match=name):
            await memory.compact(joiner(), keep_last=kwargs.pop("keep_last", 1), **kwargs)
    with pytest.raises(TypeError, match="LambdaPrimitive"):
        await memory.compact(lambda records: "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="merge_duplicates"):
        await memory.compact(None)
    assert await memory.size() == 5


async def test_summary_key_and_ttl(make_memory: MakeMemory, memory_backend: Any) -> None:
    """summary_key names the summary (it may reuse a key being compacted); ttl expires it."""
    memory = await make_memory()
    await memory.add("summary", "an older summary")
    await _fill(memory, 3)
    report = await memory.compact(joiner(), keep_last=1, summary_key="summary", ttl=0.4)
    assert report.summary_key == "summary"
    assert "summary" in report.replaced
    assert await memory.get("summary") == "an older summary | memory number 0 | memory number 1"
    await memory_backend.advance(0.6)
    assert await memory.get("summary") is None


async def test_extractive_summarizer_compacts(make_memory: MakeMemory) -> None:
    """The built-in summarizer works on every backend with no model."""
    memory = await make_memory()
    for i in range(12):
        await memory.add(f"t{i}", f"Turn {i}. The user asked about invoices. It rained on day {i}.")
    report = await memory.compact(ExtractiveSummarizer(max_sentences=2), keep_last=2)
    assert len(report.replaced) == 10
    summary = await memory.get(str(report.summary_key))
    assert isinstance(summary, str)
    assert "invoices" in summary
    assert [h.key for h in await memory.search("invoices", limit=1)] in (
        [report.summary_key],
        ["t10"],
        ["t11"],
    )


async def test_compact_step_and_operation(make_memory: MakeMemory) -> None:
    """compact_step passes its input on and leaves the report in the context state; a
    MemoryOperation.compact runs through execute."""
    memory = await make_memory()
    await _fill(memory, 6)
    step = LambdaPrimitive(lambda x, ctx: x + "!", name="shout") >> memory.compact_step(
        joiner(), keep_last=4
    )
    ctx = WorkflowContext()
    assert await step.execute("hi", ctx) == "hi!"
    report = ctx.state["memory.compaction"]
    assert isinstance(report, CompactionReport)
    assert report.replaced == ("m00", "m01")
    again = await memory.execute(MemoryOperation.compact(joiner(), keep_last=1))
    assert isinstance(again, CompactionReport)
    assert len(again.replaced) == 4
    assert await memory.size() == 2


async def test_auto_compaction_runs_in_the_background(make_memory: MakeMemory) -> None:
    """Past max_records, adds return at once and a background task compacts the namespace
    down to keep_last plus a summary, once per crossing, per namespace."""
    calls: list[int] = []
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        calls.append(len(records))
        started.set()
        await gate.wait()
        return f"{len(records)} memories"

    policy = CompactionPolicy(max_records=10, keep_last=4, summarizer=LambdaPrimitive(slow))
    memory = await make_memory(auto_compact=policy)
    other = memory.scoped("other")
    for i in range(11):
        await memory.add(f"k{i}", f"note {i}")
    await other.add("x", "one record")
    await asyncio.wait_for(started.wait(), 5)
    assert await memory.size() == 11  # the add returned before the summarizer finished
    await memory.add("k11", "while compacting")  # no second task for this namespace
    gate.set()
    await memory.wait_compactions()
    assert calls == [7]
    assert await memory.size() == 4 + 1 + 1  # newest 4 at the time, the summary, k11
    assert await other.size() == 1
    await memory.aclose()


async def test_auto_compaction_failure_is_logged_and_retried(
    make_memory: MakeMemory, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing background compaction logs a warning, keeps every record, and is tried
    again after more adds."""
    attempts: list[int] = []

    def flaky(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        attempts.append(len(records))
        if len(attempts) == 1:
            raise RuntimeError("model is down")
        return "summary"

    policy = CompactionPolicy(max_records=5, keep_last=2, summarizer=LambdaPrimitive(flaky))
    memory = await make_memory(auto_compact=policy)
    for i in range(6):
        await memory.add(f"k{i}", f"note {i}")
    await memory.wait_compactions()
    assert attempts == [4]
    assert "auto-compaction" in caplog.text
    assert "model is down" in caplog.text
    assert await memory.size() == 6
    for i in range(6, 9):
        await memory.add(f"k{i}", f"note {i}")
        await memory.wait_compactions()
    assert attempts == [4, 7]
    assert await memory.size() == 3


async def test_aclose_cancels_background_compaction(make_memory: MakeMemory) -> None:
    """aclose cancels a running background compaction; it changes nothing."""
    started = asyncio.Event()

    async def never(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        started.set()
        await asyncio.Event().wait()
        return "unreachable"

    policy = CompactionPolicy(max_records=3, keep_last=1, summarizer=LambdaPrimitive(never))
    backend_memory = await make_memory(auto_compact=policy)
    for i in range(4):
        await backend_memory.add(f"k{i}", "x")
    await asyncio.wait_for(started.wait(), 5)
    await backend_memory.aclose()
    assert backend_memory._shared.compactor is not None
    assert not backend_memory._shared.compactor._tasks


# -- units ------------------------------------------------------------------------------------


def test_policy_validation() -> None:
    """CompactionPolicy refuses bad settings at construction, naming them."""
    s = ExtractiveSummarizer()
    with pytest.raises(ValueError, match="keep_last"):
        CompactionPolicy(max_records=5, keep_last=5, summarizer=s)
    with pytest.raises(ValueError, match="max_records"):
        CompactionPolicy(max_records=0, summarizer=s)
    with pytest.raises(TypeError, match="summarizer"):
        CompactionPolicy(max_records=50, summarizer="llm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="summarizer or merge_duplicates"):
        CompactionPolicy(max_records=50)
    with pytest.raises(TypeError, match="auto_compact"):
        MemoryPrimitive(auto_compact={"max_records": 5})  # type: ignore[arg-type]
    assert CompactionPolicy(max_records=50, merge_duplicates=0.95).keep_last == 20


def test_extractive_summarizer_is_deterministic_and_bounded() -> None:
    """It keeps the sentences about what the records share, in their order, within its
    sentence and character budgets, and gives the same answer every time."""
    records = [
        MemoryRecord("a", "Ada works on the billing service. She had coffee."),
        MemoryRecord("b", {"text": "The billing service failed on Monday. Lunch was late."}),
        MemoryRecord("c", ["Ada fixed the billing service.", 42, "Nice weather."]),
        MemoryRecord("d", {"n": 7}),
    ]
    s = ExtractiveSummarizer(max_sentences=2)
    out = s.summarize(records)
    assert out == s.summarize(records) == s.summarize(list(records))
    assert out.count(".") == 2
    assert "billing service" in out
    assert "coffee" not in out
    assert "weather" not in out
    # Sentences about Ada and the billing service (shared by most records), in record order.
    assert out == "Ada works on the billing service. Ada fixed the billing service."
    short = ExtractiveSummarizer(max_sentences=10, max_chars=40).summarize(records)
    assert short == "Ada works on the billing service."
    assert ExtractiveSummarizer().summarize([MemoryRecord("x", 1)]) == ""
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveSummarizer(max_sentences=0)


def test_extractive_summarizer_drops_repeated_sentences() -> None:
    """A sentence repeated across records is kept once."""
    records = [MemoryRecord(str(i), "The deploy is on Friday. Bring snacks.") for i in range(4)]
    out = ExtractiveSummarizer(max_sentences=5).summarize(records)
    assert out == "The deploy is on Friday. Bring snacks."


async def test_compaction_span_and_summarizer_child(telemetry: CapturedTelemetry) -> None:
    """compact is one compact_memory span with counts; the summarizer's span is its child."""
    memory = MemoryPrimitive(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    await _fill(memory, 6)
    await memory.add("dup", "memory number 5")
    summarizer = ExtractiveSummarizer(tracer_provider=telemetry.tracer_provider)
    telemetry.clear()
    await memory.compact(summarizer, keep_last=2, merge_duplicates=1.0)
    spans = {s.name: s for s in telemetry.spans()}
    compact = spans["compact_memory"]
    child = spans["extractive_summarizer"]
    assert child.parent is not None
    assert child.parent.span_id == compact.context.span_id
    attrs = dict(compact.attributes or {})
    assert attrs[A.ATTR_GEN_AI_OPERATION_NAME] == "compact_memory"
    assert attrs[A.ATTR_MEMORY_COMPACTION_CONSIDERED] == 7
    assert attrs[A.ATTR_MEMORY_COMPACTION_MERGED] == 1
    assert attrs[A.ATTR_MEMORY_COMPACTION_REPLACED] == 4
    assert attrs[A.ATTR_MEMORY_COMPACTION_KEPT] == 0
    assert attrs[A.ATTR_GEN_AI_MEMORY_RECORD_COUNT] == 5


async def test_failed_compaction_span_is_an_error(telemetry: CapturedTelemetry) -> None:
    """A summarizer failure marks the compaction span as an error with error.type."""
    memory = MemoryPrimitive(tracer_provider=telemetry.tracer_provider)
    await _fill(memory, 4)

    def boom(records: Any, ctx: Any) -> str:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await memory.compact(LambdaPrimitive(boom), keep_last=1)
    (span,) = [s for s in telemetry.spans() if s.name == "compact_memory"]
    assert (span.attributes or {})[A.ATTR_ERROR_TYPE] == "RuntimeError"
    assert await memory.size() == 4


async def test_background_compaction_has_its_own_trace(telemetry: CapturedTelemetry) -> None:
    """The background compaction's span is a root, not a child of the add that started it."""
    policy = CompactionPolicy(max_records=3, keep_last=1, summarizer=joiner())
    memory = MemoryPrimitive(tracer_provider=telemetry.tracer_provider, auto_compact=policy)
    for i in range(4):
        await memory.add(f"k{i}", f"note {i}")
    await memory.wait_compactions()
    (span,) = [s for s in telemetry.spans() if s.name == "compact_memory"]
    assert span.parent is None
    await memory.aclose()


# -- Redis across clients, and the fallback ----------------------------------------------------


async def test_rewrite_by_another_client_is_left_alone(redis_server: Any) -> None:
    """A second client (another process, in real use) rewriting a record while this one
    compacts: the script sees the new write sequence and keeps that record."""
    from tta_dev_primitives import RedisBackend

    ns = f"cross-{id(redis_server)}-{asyncio.get_running_loop().time()}"
    ours = MemoryPrimitive(backend=RedisBackend.from_url(redis_server.url), namespace=ns)
    theirs = MemoryPrimitive(backend=RedisBackend.from_url(redis_server.url), namespace=ns)
    try:
        keys = await _fill(ours, 5)

        async def racing(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
            await theirs.add("m00", "their new version", metadata={"by": "them"})
            return "summary"

        report = await ours.compact(LambdaPrimitive(racing), keep_last=1)
        assert report.kept == ("m00",)
        assert report.replaced == ("m01", "m02", "m03")
        assert await theirs.get("m00") == "their new version"
        assert sorted(await theirs.keys()) == sorted(["m00", keys[4], str(report.summary_key)])
    finally:
        await ours.clear()
        await ours.backend.aclose()
        await theirs.backend.aclose()


async def test_fallback_compacts_on_the_primary_and_the_mirror_follows(
    redis_server: Any,
) -> None:
    """Through the Redis fallback, compaction runs on Redis; the mirror drops what was
    replaced and holds the summary."""
    from tta_dev_primitives import FallbackBackend

    ns = f"fb-{asyncio.get_running_loop().time()}"
    async with MemoryPrimitive(redis_url=redis_server.url, namespace=ns) as memory:
        keys = await _fill(memory, 6)
        report = await memory.compact(joiner(), keep_last=2)
        backend = memory.backend
        assert isinstance(backend, FallbackBackend)
        mirror = backend.secondary
        for key in keys[:4]:
            assert await mirror.get((ns,), key) is None
        assert await mirror.get((ns,), str(report.summary_key)) is not None
        assert memory.is_using_redis()
        await memory.clear()


async def test_degraded_fallback_refuses_compaction() -> None:
    """While the primary is down, compaction raises a transient MemoryBackendError and the
    records the fallback serves stay as they are."""
    from tta_dev_primitives import (
        FallbackBackend,
        InMemoryBackend,
        MemoryBackendError,
        RedisBackend,
    )

    primary = RedisBackend.from_url("redis://127.0.0.1:1/0", retries=0, socket_connect_timeout=0.5)
    memory = MemoryPrimitive(backend=FallbackBackend(primary, InMemoryBackend()))
    try:
        await _fill(memory, 5)
        assert memory.get_backend_info()["degraded"] is True
        with pytest.raises(MemoryBackendError, match="compaction needs the primary") as err:
            await memory.compact(joiner(), keep_last=1)
        assert err.value.transient
        assert await memory.size() == 5
    finally:
        await memory.backend.aclose()


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=6).map(" ".join),
        max_size=25,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.6, 0.75, 0.9, 1.0]),
)
def test_text_duplicates_match_brute_force(texts: list[str], threshold: float) -> None:
    """The prefix-filtered duplicate grouping equals comparing each record with every head."""
    from tta_dev_primitives.memory.compacting import _text_heads

    payloads = [f'"{t}"' for t in texts]
    words = [frozenset(t.split()) for t in texts]
    heads: list[int] = []
    expected: list[int | None] = []
    for i, a in enumerate(words):
        found = None
        for h in heads:
            b = words[h]
            same = payloads[h] == payloads[i] if not a or not b else len(a & b) / len(a | b)
            if same is True or (not isinstance(same, bool) and same >= threshold - 1e-9):
                found = h
                break
        expected.append(found)
        if found is None:
            heads.append(i)
    assert _text_heads(texts, payloads, threshold) == expected


def test_summary_keeps_the_time_range() -> None:
    """The summary's memory.from/memory.to span the replaced records' times, through earlier
    summaries, when the records carry times (the records API's created_at/updated_at)."""
    from tta_dev_primitives.memory.codec import NO_SNAPSHOT
    from tta_dev_primitives.memory.compacting import _summary_metadata
    from tta_dev_primitives.memory.compaction import META_FROM, META_TO
    from tta_dev_primitives.memory.records import Record

    old = Record(
        "s", '"x"', {META_SUMMARY: True, META_FROM: 10.0, META_TO: 20.0}, 1, NO_SNAPSHOT, 50, 50
    )
    batch = [old, Record("a", '"y"', None, 2, NO_SNAPSHOT, 30.0, 40.0)]
    meta = _summary_metadata(batch, lambda r: r.metadata)
    assert (meta[META_FROM], meta[META_TO]) == (10.0, 40.0)
    assert meta[META_REPLACED] == ["s", "a"]


@pytest.mark.parametrize(
    ("filter_", "compacted"),
    [
        ({"i": {"$gte": 3}}, ["m03", "m04", "m05", "m06", "m07"]),
        ({"i": {"$in": [1, 2, 6]}}, ["m01", "m02", "m06"]),
        ({"$or": [{"i": {"$lt": 2}}, {"i": 7}]}, ["m00", "m01", "m07"]),
        ({"$not": {"i": {"$lte": 5}}}, ["m06", "m07"]),
        ({"i": {"$ne": 0}, "tag": {"$exists": False}}, ["m01", "m02", "m03", "m05", "m06", "m07"]),
    ],
)
async def test_compact_filter_takes_the_filter_language(
    make_memory: MakeMemory, filter_: dict[str, Any], compacted: list[str]
) -> None:
    """compact(filter=) accepts the operators and combinators of search/list/delete_where."""
    memory = await make_memory()
    keys = await _fill(memory, 8)
    await memory.update("m04", metadata={"tag": "x"})
    seen: list[list[MemoryRecord]] = []
    report = await memory.compact(joiner(seen), keep_last=0, filter=filter_)
    # update() rewrote m04 last: it is the newest record of the namespace.
    order = [k for k in keys if k != "m04"] + ["m04"]
    assert list(report.replaced) == [k for k in order if k in compacted]
    assert [r.key for r in seen[0]] == list(report.replaced)
    assert report.considered == len(compacted)
    left = set(await memory.keys())
    assert left == (set(keys) - set(compacted)) | {report.summary_key}


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        ({"i": {"$bogus": 1}}, r"filter.*\$bogus"),
        ({"$or": []}, r"filter.*\$or"),
        ({"i": {"$in": 3}}, r"filter.*\$in"),
    ],
)
async def test_compact_refuses_a_malformed_filter_before_reading(
    make_memory: MakeMemory, filter_: dict[str, Any], message: str
) -> None:
    """A malformed filter or an unknown operator is a ValueError naming the filter; the
    summarizer is never called and nothing changes."""
    memory = await make_memory()
    keys = await _fill(memory, 4)
    seen: list[list[MemoryRecord]] = []
    with pytest.raises(ValueError, match=message):
        await memory.compact(joiner(seen), keep_last=0, filter=filter_)
    assert seen == []
    assert sorted(await memory.keys()) == keys
    with pytest.raises(ValueError, match=message):
        CompactionPolicy(max_records=30, summarizer=joiner(), filter=filter_)


async def test_summary_keeps_the_records_time_range(
    make_memory: MakeMemory, memory_backend: Any
) -> None:
    """The summary's memory.from is the earliest created_at and memory.to the latest
    updated_at of the records it replaced (an update moves updated_at), on every backend."""
    from tta_dev_primitives.memory.compaction import META_FROM, META_TO

    memory = await make_memory()
    for i in range(4):
        await memory.add(f"m{i}", f"memory number {i}")
        await memory_backend.advance(0.02)
    await memory.update("m0", metadata={"edited": True})  # m0: created first, written last
    await memory_backend.advance(0.02)
    await memory.add("fresh", "kept as it is")
    records = [await memory.get_record(k) for k in ("m0", "m1", "m2", "m3")]
    created = [r.created_at for r in records if r is not None]
    updated = [r.updated_at for r in records if r is not None]
    assert len(created) == 4
    assert min(created) == records[0].created_at  # type: ignore[union-attr]
    assert max(updated) == records[0].updated_at > max(created)  # type: ignore[union-attr]
    report = await memory.compact(joiner(), keep_last=1)
    assert report.replaced == ("m1", "m2", "m3", "m0")
    assert report.summary_key is not None
    summary = await memory.get_record(report.summary_key)
    assert summary is not None
    assert summary.metadata[META_FROM] == pytest.approx(min(created), abs=1e-3)
    assert summary.metadata[META_TO] == pytest.approx(max(updated), abs=1e-3)


async def _chat(memory: MemoryPrimitive, start: int, n: int, first: str | None = None) -> None:
    """Add ``n`` chat turns (user and assistant by turns) as ``{"role", "content"}`` values
    with their role in the metadata."""
    for i in range(start, start + n):
        role = "user" if i % 2 == 0 else "assistant"
        text = first if first is not None and i == start else f"Turn {i} was about the weather."
        await memory.add(f"t{i:02d}", {"role": role, "content": text}, metadata={"role": role})


async def test_summary_never_takes_a_keep_last_place(make_memory: MakeMemory) -> None:
    """The newest keep_last records that are not summaries stay as they are; the earlier
    summary is rolled into the next one however recently it was written."""
    memory = await make_memory()
    await _chat(memory, 0, 8)
    first = await memory.compact(joiner(), keep_last=6)
    assert first.replaced == ("t00", "t01")
    await _chat(memory, 8, 1)
    second = await memory.compact(joiner(), keep_last=6)
    assert second.replaced == (first.summary_key, "t02")
    originals = sorted(k for k in await memory.keys() if k.startswith("t"))
    assert originals == [f"t{i:02d}" for i in range(3, 9)]
    assert await memory.size() == 7


async def test_repeated_compaction_leaves_one_summary(make_memory: MakeMemory) -> None:
    """compact(keep_last=6) after every few turns leaves the 6 newest turns and one summary
    that counts every turn it stands for."""
    memory = await make_memory()
    for round_ in range(4):
        await _chat(memory, round_ * 5, 5)
        await memory.compact(ExtractiveSummarizer(), keep_last=6)
    summaries = await memory.search("weather", limit=20, filter={META_SUMMARY: True})
    assert len(summaries) == 1
    assert summaries[0].metadata is not None
    assert summaries[0].metadata[META_SUMMARIZED] == 20 - 6
    assert await memory.size() == 7


async def test_compacted_allergy_stays_in_filtered_recall(make_memory: MakeMemory) -> None:
    """A user's fact compacted away is still found by search(filter={"role": "user"}): the
    summary keeps the role every replaced record shared, through roll-ups, and its text holds
    no role labels."""
    memory = await make_memory()
    await _chat(memory, 0, 10, first="I am allergic to peanuts.")
    for start in (10, 14):
        await memory.compact(ExtractiveSummarizer(), keep_last=2, filter={"role": "user"})
        await _chat(memory, start, 4)
    await memory.compact(ExtractiveSummarizer(), keep_last=2, filter={"role": "user"})
    hits = await memory.search("peanuts", filter={"role": "user"})
    assert len(hits) == 1
    assert hits[0].metadata is not None
    assert hits[0].metadata[META_SUMMARY] is True
    assert hits[0].metadata["role"] == "user"
    assert isinstance(hits[0].value, str)
    assert "I am allergic to peanuts." in hits[0].value
    assert "user" not in hits[0].value.split()
    assert len(await memory.search("weather", limit=20, filter={META_SUMMARY: True})) == 1


def test_extractive_summarizer_leaves_labels_out() -> None:
    """One-word strings inside dict and list values (role labels, ids) are not text unless
    labels=True; fields= reads only the named fields; a plain string value is always text."""
    records = [
        MemoryRecord("a", {"role": "user", "content": "I am allergic to peanuts."}),
        MemoryRecord("b", {"role": "assistant", "content": "Noted: no peanuts.", "id": "x1"}),
        MemoryRecord("c", ["user", "Peanuts again."]),
        MemoryRecord("d", "peanuts"),
    ]
    out = ExtractiveSummarizer(max_sentences=10).summarize(records)
    assert out == "I am allergic to peanuts. Noted: no peanuts. Peanuts again. peanuts"
    with_labels = ExtractiveSummarizer(max_sentences=10, labels=True).summarize(records)
    assert {"user", "assistant", "x1"} <= set(with_labels.split())
    only = ExtractiveSummarizer(max_sentences=10, fields=["role"], labels=True)
    assert only.summarize(records[:2]) == "user assistant"
    with pytest.raises(TypeError, match="fields"):
        ExtractiveSummarizer(fields="content")
    with pytest.raises(TypeError, match="labels"):
        ExtractiveSummarizer(labels="yes")  # type: ignore[arg-type]
