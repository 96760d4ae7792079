"""Export and import: the JSON Lines format, round trips across backends, conflicts, vectors."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_dev_primitives import (
    HashingEmbedder,
    ImportConflictError,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    read_jsonl,
    write_jsonl,
)
from tta_dev_primitives.memory import transfer

from tests.support.paths import ROOT


async def _records(memory: MemoryPrimitive) -> dict[tuple[tuple[str, ...], str], Any]:
    """What an export says of a memory, keyed by (namespace, key), times left out."""
    out = {}
    async for r in memory.export():
        out[(tuple(r["namespace"]), r["key"])] = (r["value"], r["metadata"])
    return out


async def _timed_records(memory: MemoryPrimitive) -> dict[tuple[tuple[str, ...], str], Any]:
    """What an export says of a memory, times and expiry included."""
    out = {}
    async for r in memory.export():
        out[(tuple(r["namespace"]), r["key"])] = (
            r["value"],
            r["metadata"],
            r["created_at"],
            r["updated_at"],
            r["expires_at"],
        )
    return out


async def _to_text(memory: MemoryPrimitive) -> str:
    buf = io.StringIO()
    await write_jsonl(memory.export(), buf, namespace=memory.namespace)
    return buf.getvalue()


def _lines(*objs: Any) -> list[str]:
    return [json.dumps(o) + "\n" for o in objs]


HEADER = transfer.header(("x",))


def test_reader_refuses_a_file_without_header() -> None:
    """A file whose first line is a record, or an empty file, is refused."""
    with pytest.raises(ValueError, match="line 1: not a tta-memory export"):
        list(read_jsonl(_lines({"key": "k", "value": 1})))
    with pytest.raises(ValueError, match="empty input"):
        list(read_jsonl([]))


def test_reader_refuses_a_newer_version() -> None:
    """A header of a later format version is refused with an upgrade hint."""
    with pytest.raises(ValueError, match="newer than this library reads"):
        list(read_jsonl(_lines({"format": "tta-memory", "version": 99})))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"value": 1}, "needs 'key' and 'value'"),
        ({"key": "", "value": 1}, "key must not be empty"),
        ({"key": "k", "value": 1, "colour": "red"}, "unknown record field"),
        ({"key": "k", "value": 1, "expires_at": "soon"}, "expires_at must be epoch seconds"),
        ({"key": "k", "value": 1, "namespace": [""]}, "namespace must be a list"),
        ({"key": "k", "value": 1, "metadata": [1]}, "metadata"),
        (
            {"key": "k", "value": 1, "vector": {"embedder": "e", "dimensions": 2, "values": [1]}},
            "vector.values must be 2",
        ),
    ],
)
def test_reader_names_the_line_of_a_malformed_record(record: Any, message: str) -> None:
    """A bad record is refused with its line number and what is wrong with it."""
    lines = _lines(HEADER, {"key": "ok", "value": 1}, record)
    with pytest.raises(ValueError, match=f"line 3: .*{message}"):
        list(read_jsonl(lines))


def test_reader_is_lazy() -> None:
    """Records come one at a time: a bad line far down does not stop the first ones."""
    lines = iter([*_lines(HEADER, {"key": "a", "value": 1}), "not json\n"])
    reader = read_jsonl(lines)
    assert next(reader)["key"] == "a"
    with pytest.raises(ValueError, match="line 3: not JSON"):
        next(reader)


async def test_round_trip_over_every_backend(make_memory: Any) -> None:
    """Records exported from a backend import into memory and back with equal contents."""
    source = await make_memory(max_size=None)
    await source.add("a", {"text": "hello", "n": [1, 2.5, None]}, metadata={"role": "user"})
    await source.add("b:*?[", "stars ünïcode", metadata={"n": 3, "ok": True})
    await source.add("c", None, ttl=3600)
    text = await _to_text(source)

    middle = MemoryPrimitive(namespace="elsewhere")
    report = await middle.import_(read_jsonl(io.StringIO(text)))
    assert report.imported == 3
    assert await _records(middle) == await _records(source)

    back = await make_memory(max_size=None)
    await back.import_(middle.export())
    assert await _records(back) == await _records(source)
    assert await back.get("b:*?[") == "stars ünïcode"
    # Where the source keeps record times, the in-memory copy keeps them too.
    source_times = {k: v[2:4] for k, v in (await _timed_records(source)).items()}
    middle_times = {k: v[2:4] for k, v in (await _timed_records(middle)).items()}
    for k, (created, updated) in source_times.items():
        if created is not None:
            assert middle_times[k] == (created, updated)


async def test_import_keeps_absolute_expiry_and_skips_expired() -> None:
    """A record keeps its expiry; one whose expires_at has passed is not written."""
    clock = [0.0]
    memory = MemoryPrimitive(backend=InMemoryBackend(clock=lambda: clock[0]))
    now = time.time()
    report = await memory.import_(
        [
            {"key": "soon", "value": 1, "expires_at": now + 60},
            {"key": "gone", "value": 2, "expires_at": now - 1},
            {"key": "forever", "value": 3},
        ]
    )
    assert (report.imported, report.skipped_expired) == (2, 1)
    assert await memory.get("gone") is None
    assert await memory.get("soon") == 1
    clock[0] += 59
    assert await memory.get("soon") == 1
    clock[0] += 2
    assert await memory.get("soon") is None
    assert await memory.get("forever") == 3


async def test_records_are_imported_without_default_ttl() -> None:
    """A record exported without expiry stays permanent even under a default_ttl."""
    clock = [0.0]
    backend = InMemoryBackend(clock=lambda: clock[0])
    memory = MemoryPrimitive(backend=backend, default_ttl=10)
    await memory.import_([{"key": "k", "value": 1}])
    clock[0] += 100
    assert await memory.get("k") == 1


async def test_on_conflict() -> None:
    """replace overwrites, skip keeps the stored record, error writes nothing (every key is
    looked up before the first write)."""
    memory = MemoryPrimitive()
    await memory.add("b", "old")
    records = [{"key": k, "value": f"new {k}"} for k in ("a", "b", "c")]

    report = await memory.import_(records, on_conflict="skip")
    assert (report.imported, report.skipped_existing) == (2, 1)
    assert await memory.get("b") == "old"

    fresh = MemoryPrimitive()
    await fresh.add("b", "old")
    with pytest.raises(ImportConflictError, match="'b' already exists") as info:
        await fresh.import_(records, on_conflict="error")
    assert info.value.report.imported == 0
    assert "0 records were imported before it" in str(info.value)
    assert sorted(await fresh.keys()) == ["b"]
    assert await fresh.get("b") == "old"

    await memory.import_(records)
    assert await memory.get("b") == "new b"
    with pytest.raises(ValueError, match="on_conflict"):
        await memory.import_(records, on_conflict="merge")  # type: ignore[arg-type]


async def test_bad_record_stops_the_import_with_its_position() -> None:
    """A malformed record in a list is named by its index."""
    memory = MemoryPrimitive()
    with pytest.raises(ValueError, match=r"records\[1\]: key must be a str"):
        await memory.import_([{"key": "a", "value": 1}, {"key": 5, "value": 2}])


async def test_namespaces_in_records_are_relative() -> None:
    """A record's namespace parts land below the importing memory's namespace."""
    memory = MemoryPrimitive(namespace="root")
    report = await memory.import_(
        [{"key": "k", "value": 1}, {"key": "k", "value": 2, "namespace": ["s", "t"]}]
    )
    assert report.namespaces == 2
    assert await memory.get("k") == 1
    assert await memory.scoped("s", "t").get("k") == 2
    assert await memory.scoped("s").get("k") is None


async def test_vectors_reused_only_for_the_same_embedder() -> None:
    """A vector is kept when the embedder matches and replaced by a fresh one otherwise."""
    embedder = HashingEmbedder(dimensions=8)
    memory = MemoryPrimitive(embedder=embedder)
    mine = await embedder.embed_documents(["python snakes"])
    records = [
        {
            "key": "same",
            "value": "python snakes",
            "vector": {"embedder": embedder.name, "dimensions": 8, "values": list(mine[0])},
        },
        {
            "key": "other",
            "value": "python snakes",
            "vector": {"embedder": "someone-else", "dimensions": 3, "values": [1, 0, 0]},
        },
        {"key": "none", "value": "python snakes"},
    ]
    report = await memory.import_(records)
    assert (report.vectors_reused, report.reembedded) == (1, 2)
    hits = await memory.search("python snakes", mode="semantic", limit=3)
    scores = {h.key: h.score for h in hits}
    assert scores["same"] == pytest.approx(scores["other"]) == pytest.approx(scores["none"])


async def test_import_writes_in_batches_and_reports_progress() -> None:
    """A large import reads and checks the whole input, then writes it batch by batch,
    reporting the records handled after each batch."""
    memory = MemoryPrimitive(max_size=None)
    n = transfer.BATCH_SIZE * 2 + 7
    consumed = []

    def records() -> Any:
        for i in range(n):
            consumed.append(i)
            yield {"key": f"k{i}", "value": i}

    seen = []

    def progress(done: int) -> None:
        seen.append((done, len(consumed)))

    report = await transfer.import_records(memory, records(), progress=progress)
    assert report.imported == n
    assert await memory.size() == n
    # Every record was read before the first batch was written.
    assert seen == [
        (transfer.BATCH_SIZE, n),
        (transfer.BATCH_SIZE * 2, n),
        (n, n),
    ]


async def test_export_filter() -> None:
    """export(filter=) yields only records whose metadata matches."""
    memory = MemoryPrimitive()
    await memory.add("a", 1, metadata={"role": "user"})
    await memory.add("b", 2, metadata={"role": "assistant"})
    keys = [r["key"] async for r in memory.export(filter={"role": "user"})]
    assert keys == ["a"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
metadata = st.dictionaries(
    st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5) | st.booleans(), max_size=3
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12), st.tuples(json_values, metadata), min_size=0, max_size=20
    )
)
async def test_round_trip_property(items: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    """Export, write, read and import into another memory gives the same records."""
    now = [5000.0]
    source = MemoryPrimitive(backend=InMemoryBackend(None, clock=lambda: now[0]), namespace="src")
    for i, (key, (value, meta)) in enumerate(items.items()):
        await source.add(key, value, metadata=meta, ttl=None if i % 3 else 3600)
        now[0] += 1.5
        if i % 4 == 1:  # an update: updated_at moves past created_at
            await source.update(key, metadata={"edited": i})
            now[0] += 1.5
    text = await _to_text(source)
    target = MemoryPrimitive(namespace=("dst", "x"), max_size=None)
    report = await target.import_(read_jsonl(io.StringIO(text)))
    assert report.imported == len(items)
    # Values, metadata, created_at and updated_at equal; the absolute expiry up to the
    # write's own latency (it reaches the backend as a ttl from now).
    got, want = await _timed_records(target), await _timed_records(source)
    assert {k: v[:4] for k, v in got.items()} == {k: v[:4] for k, v in want.items()}
    for k, v in want.items():
        assert (got[k][4] is None) == (v[4] is None)
        if v[4] is not None:
            assert got[k][4] == pytest.approx(v[4], abs=0.05)
    assert {k: (await target.get(k)) for k in items} == {k: v for k, (v, _) in items.items()}


def test_cli_doc_snippet_runs() -> None:
    """The Python snippet of docs/cli.md runs as written."""
    from tests.support.subproc import run_python

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_python("-c", snippet)
    assert out.strip().endswith("I write Python at work"), out


class SpyBackend(InMemoryBackend):
    """An in-memory backend that counts the records it hands out, and refuses to be read whole
    (no scan, no keys, no get_many: an export must page)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.handed_out = 0
        self.limits: list[int] = []

    async def list(self, namespace: Any, query: Any) -> Any:
        result = await super().list(namespace, query)
        self.limits.append(query.limit)
        self.handed_out += len(result.records)
        return result

    async def scan(self, namespace: Any) -> Any:
        raise AssertionError("export read the whole namespace (scan)")

    async def keys(self, namespace: Any) -> Any:
        raise AssertionError("export read every key")

    async def get_many(self, namespace: Any, keys: Any) -> Any:
        raise AssertionError("export read records by key")


async def test_export_streams_in_bounded_memory() -> None:
    """An export holds at most one page of records at a time, however large the namespace:
    the records the backend has handed out never run more than a page ahead of those the
    consumer has taken, in every namespace of the tree."""
    spy = SpyBackend()
    memory = MemoryPrimitive(backend=spy, namespace="big")
    n = transfer.BATCH_SIZE * 4 + 3
    await memory.add_many({f"k{i}": {"text": f"record {i}"} for i in range(n)})
    await memory.scoped("sub").add_many({f"s{i}": i for i in range(transfer.BATCH_SIZE + 1)})
    consumed = ahead = 0
    keys = []
    async for record in memory.export():
        consumed += 1
        ahead = max(ahead, spy.handed_out - consumed)
        keys.append((tuple(record["namespace"]), record["key"]))
    assert consumed == n + transfer.BATCH_SIZE + 1 == len(set(keys))
    assert ahead < transfer.BATCH_SIZE
    assert max(spy.limits) == transfer.BATCH_SIZE
    assert len(spy.limits) >= 5 + 2  # one list() per page, not one for everything
    assert keys[:3] == [((), "k0"), ((), "k1"), ((), "k2")]  # oldest first


async def test_export_refuses_a_malformed_filter_before_reading() -> None:
    """export(filter=) takes the filter language and checks it when called, not mid-stream."""
    spy = SpyBackend()
    memory = MemoryPrimitive(backend=spy)
    await memory.add("a", 1, metadata={"n": 1})
    await memory.add("b", 2, metadata={"n": 5})
    with pytest.raises(ValueError, match=r"filter.*\$bogus"):
        memory.export(filter={"n": {"$bogus": 1}})
    with pytest.raises(TypeError, match="vectors"):
        memory.export(vectors="yes")  # type: ignore[arg-type]
    assert spy.limits == []
    assert [r["key"] async for r in memory.export(filter={"n": {"$gt": 2}})] == ["b"]


async def test_export_of_a_closed_memory_raises() -> None:
    """A closed primitive's export raises the closed error, as every other operation does."""
    from tta_dev_primitives import MemoryBackendError

    memory = MemoryPrimitive()
    await memory.add("a", 1)
    await memory.aclose()
    with pytest.raises(MemoryBackendError, match="closed"):
        memory.export()


async def _stored_vectors(memory: MemoryPrimitive) -> dict[str, list[float]]:
    out = {}
    async for r in memory.export(vectors=True):
        assert "vector" in r, r["key"]
        out[r["key"]] = r["vector"]["values"]
    return out


@pytest.mark.parametrize("fallback", [False, True], ids=["in_memory", "fallback"])
async def test_vectors_export_and_are_reused_by_the_same_embedder(fallback: bool) -> None:
    """export(vectors=True) writes each stored vector with its embedder's name and dimensions;
    an import with that embedder keeps them exactly, another embedder re-embeds."""
    from tta_dev_primitives import FallbackBackend

    embedder = HashingEmbedder(dimensions=16)
    backend: Any = InMemoryBackend()
    if fallback:
        backend = FallbackBackend(InMemoryBackend(), InMemoryBackend())
    source = MemoryPrimitive(backend=backend, embedder=embedder)
    await source.add("a", "python snakes and ladders")
    await source.add_many({"b": "tea with milk", "c": {"text": "rust and go"}})
    await source.update("b", metadata={"n": 1})  # keeps its vector
    assert [r.get("vector") async for r in source.export()] == [None, None, None]
    objs = [r async for r in source.export(vectors=True)]
    assert [o["key"] for o in objs] == ["a", "c", "b"]
    for o in objs:
        assert o["vector"]["embedder"] == embedder.name
        assert o["vector"]["dimensions"] == 16
        assert len(o["vector"]["values"]) == 16
    fresh = await embedder.embed_documents(["python snakes and ladders"])
    assert objs[0]["vector"]["values"] == pytest.approx(list(fresh[0]), abs=1e-6)

    text = io.StringIO()
    await write_jsonl(source.export(vectors=True), text)
    same = MemoryPrimitive(embedder=embedder)
    report = await same.import_(read_jsonl(io.StringIO(text.getvalue())))
    assert (report.vectors_reused, report.reembedded) == (3, 0)
    assert await _stored_vectors(same) == {o["key"]: o["vector"]["values"] for o in objs}

    other = MemoryPrimitive(embedder=HashingEmbedder(dimensions=32))
    report = await other.import_(objs)
    assert (report.vectors_reused, report.reembedded) == (0, 3)
    assert {len(v) for v in (await _stored_vectors(other)).values()} == {32}

    plain = MemoryPrimitive()  # no embedder: nothing kept, and a warning names the embedder
    with pytest.warns(UserWarning, match=f"3 records of '{embedder.name}' \\(16 dimensions\\)"):
        report = await plain.import_(objs)
    assert report.vectors_dropped == 3
    assert [r.get("vector") async for r in plain.export(vectors=True)] == [None, None, None]


async def test_get_vectors_answers_only_for_the_version_read() -> None:
    """VectorBackend.get_vectors gives None for a record rewritten, deleted or expired since
    the (key, write sequence) it is asked about, and the namespace's embedder space."""
    from tta_dev_primitives.memory.backends.base import VectorBackend
    from tta_dev_primitives.memory.records import ListQuery

    clock = [0.0]
    backend = InMemoryBackend(clock=lambda: clock[0])
    assert isinstance(backend, VectorBackend)
    memory = MemoryPrimitive(backend=backend, embedder=HashingEmbedder(dimensions=8))
    ns = memory.namespace
    for k in ("a", "b", "c", "d"):
        await memory.add(k, f"text of {k}", ttl=10 if k == "d" else None)
    page = await backend.list(ns, ListQuery(order="oldest"))
    versions = [(r.key, r.seq) for r in page.records]
    first = await backend.get_vectors(ns, versions)
    assert first.space == ("hashing-v1-8", 8)
    assert all(v is not None and v.shape == (8,) for v in first.vectors)
    await memory.search("text", mode="semantic")  # the index now holds the vectors
    assert [
        v.tolist() for v in (await backend.get_vectors(ns, versions)).vectors if v is not None
    ] == [v.tolist() for v in first.vectors if v is not None]
    await memory.add("a", "rewritten")
    await memory.delete("b")
    clock[0] += 11
    later = await backend.get_vectors(ns, [*versions, ("missing", 1)])
    assert [v is not None for v in later.vectors] == [False, False, True, False, False]
    assert (await backend.get_vectors(("nowhere",), versions[:1])).vectors == [None]


async def test_import_keeps_created_and_updated_times() -> None:
    """Imported records keep the file's created_at/updated_at on the in-memory backend (a
    rewrite keeps the given created_at too); records without times get the backend's clock."""
    clock = [100.0]
    backend = InMemoryBackend(clock=lambda: clock[0])
    memory = MemoryPrimitive(backend=backend)
    await memory.add("old", "stored before")
    report = await memory.import_(
        [
            {"key": "old", "value": 1, "created_at": 1000.0, "updated_at": 2000.0},
            {"key": "new", "value": 2, "created_at": 3000.0, "updated_at": 3500.0},
            {"key": "untimed", "value": 3},
        ]
    )
    assert report.imported == 3
    old, new, untimed = [await memory.get_record(k) for k in ("old", "new", "untimed")]
    assert old is not None
    assert new is not None
    assert untimed is not None
    assert (old.created_at, old.updated_at) == (1000.0, 2000.0)
    assert (new.created_at, new.updated_at) == (3000.0, 3500.0)
    assert untimed.created_at == untimed.updated_at > 3500.0
    # Write order is import order, whatever the times say.
    page = await memory.list(order="oldest")
    assert [r.key for r in page.records] == ["old", "new", "untimed"]
    clock[0] += 5
    await memory.add("new", "written again")  # an ordinary write: created_at kept, now updated
    again = await memory.get_record("new")
    assert again is not None
    assert again.created_at == 3000.0
    assert again.updated_at > 3500.0


async def test_export_and_import_are_spans() -> None:
    """export is one export_memory span (the child of the span current when iteration began,
    with the record count) and import_ one import_memory span with the report's counts;
    list pages do not make spans of their own; a failure sets error.type."""
    from opentelemetry.trace import StatusCode

    from tta_dev_primitives.testing import capture_telemetry

    with capture_telemetry() as telemetry:
        tracer = telemetry.tracer_provider.get_tracer("test")
        source = MemoryPrimitive(
            namespace="src",
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            embedder=HashingEmbedder(dimensions=8),
        )
        await source.add_many({f"k{i}": f"text {i}" for i in range(transfer.BATCH_SIZE + 2)})
        await source.scoped("s").add("x", "sub")
        target = MemoryPrimitive(
            namespace="dst",
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
        )
        await target.add("k0", "already here")
        telemetry.exporter.clear()
        with tracer.start_as_current_span("pipeline"):
            records = [r async for r in source.export(vectors=True)]
            with pytest.warns(UserWarning, match="vectors are dropped"):
                report = await target.import_(records, on_conflict="skip")
        assert report.imported == transfer.BATCH_SIZE + 2
        names = [s.name for s in telemetry.spans()]
        assert names == ["export_memory", "import_memory", "pipeline"]
        parent = telemetry.span("pipeline")
        export = telemetry.span("export_memory")
        imp = telemetry.span("import_memory")
        assert export.parent is not None
        assert imp.parent is not None
        assert export.parent.span_id == parent.context.span_id
        assert imp.parent.span_id == parent.context.span_id
        assert export.attributes is not None
        assert imp.attributes is not None
        assert export.attributes["gen_ai.operation.name"] == "export_memory"
        assert export.attributes["gen_ai.memory.store.id"] == "src"
        assert export.attributes["gen_ai.memory.record.count"] == transfer.BATCH_SIZE + 3
        assert export.attributes["memory.export.vectors"] == transfer.BATCH_SIZE + 3
        assert imp.attributes["gen_ai.operation.name"] == "import_memory"
        assert imp.attributes["gen_ai.memory.store.id"] == "dst"
        assert imp.attributes["gen_ai.memory.record.count"] == report.imported
        assert imp.attributes["memory.import.skipped_existing"] == 1
        assert imp.attributes["memory.import.reembedded"] == 0
        assert imp.attributes["memory.import.vectors_dropped"] == report.imported

        # An export stopped early still ends its span; a failing import records its error.
        telemetry.exporter.clear()
        stream = source.export()
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        stopped = telemetry.span("export_memory")
        assert stopped.attributes is not None
        assert stopped.attributes["gen_ai.memory.record.count"] == 1
        assert stopped.status.status_code is not StatusCode.ERROR
        with pytest.raises(ValueError, match="records"):
            await target.import_([{"key": "ok", "value": 1}, {"value": 2}])
        failed = telemetry.span("import_memory")
        assert failed.status.status_code is StatusCode.ERROR
        assert failed.attributes is not None
        assert failed.attributes["error.type"] == "ValueError"


# -- bad input: a clear error, nothing written (issue 23) ---------------------------------------


def _file(*records: Any) -> str:
    return "".join(_lines(HEADER, *records))


async def test_a_bad_line_anywhere_writes_nothing() -> None:
    """A file of 1,200 good records and then a broken line imports nothing, and says which
    line; the same goes for a bad record given as a list."""
    memory = MemoryPrimitive(max_size=None)
    good = [{"key": f"k{i}", "value": i} for i in range(1200)]
    text = _file(*good) + "{broken\n"
    with pytest.raises(ValueError, match=r"^line 1202: not JSON"):
        await memory.import_(read_jsonl(io.StringIO(text)))
    assert await memory.size() == 0
    with pytest.raises(ValueError, match=r"records\[1200\]: a record needs 'key'"):
        await memory.import_([*good, {"value": 1}])
    assert await memory.size() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", 1e306),
        ("updated_at", -1),
        ("expires_at", 1e300),
        ("created_at", 10**400),
        ("expires_at", float("nan")),
    ],
    ids=["created_1e306", "updated_negative", "expires_1e300", "created_huge_int", "nan"],
)
async def test_times_out_of_range_name_the_field_and_line(field: str, value: Any) -> None:
    """A time past the year 9999 (or negative, NaN, a huge int) is a ValueError naming the
    field and the line, not an OverflowError, and nothing is written."""
    memory = MemoryPrimitive()
    text = _file({"key": "ok", "value": 1}, {"key": "a", "value": 1, field: value})
    with pytest.raises(ValueError, match=rf"^line 3: {field} must be epoch seconds"):
        await memory.import_(read_jsonl(io.StringIO(text)))
    assert await memory.size() == 0


async def test_expiry_beyond_the_longest_ttl_is_refused() -> None:
    """An expires_at within the year 9999 but more than MAX_TTL_SECONDS ahead is refused
    before anything is written (Redis could not keep it)."""
    memory = MemoryPrimitive()
    far = time.time() + 2**31 + 3600
    with pytest.raises(ValueError, match=r"records\[0\]: expires_at is more than 2147483648"):
        await memory.import_([{"key": "a", "value": 1, "expires_at": far}])
    assert await memory.size() == 0


def test_deep_nesting_is_one_clear_value_error() -> None:
    """JSON nested 20,000 deep is a ValueError naming its line, not a RecursionError."""
    deep = "[" * 20000 + "]" * 20000
    text = "".join(_lines(HEADER)) + deep + "\n"
    with pytest.raises(ValueError, match=r"^line 2: JSON nested too deep to read"):
        list(read_jsonl(io.StringIO(text)))
    value = {"key": "k", "value": json.loads("[" * 150 + "]" * 150)}
    with pytest.raises(ValueError, match=r"^line 2: value is nested more than 100"):
        list(read_jsonl(io.StringIO(_file(value))))


def test_bytes_that_are_not_utf8_are_named_by_line() -> None:
    """A binary stream names the line holding bytes that are not UTF-8; a text stream says
    after which line decoding failed."""
    data = _file({"key": "a", "value": "x"}).encode() + b'{"key": "b", "value": "\xff"}\n'
    with pytest.raises(ValueError, match=r"^line 3: not UTF-8 text \(byte 0xff at column 24\)"):
        list(read_jsonl(io.BytesIO(data)))
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"not UTF-8 text"):
        list(read_jsonl(text))


async def test_an_oversize_value_is_named_by_its_line() -> None:
    """A value larger than max_value_bytes names its line, and nothing is written."""
    memory = MemoryPrimitive(max_value_bytes=100)
    text = _file({"key": "a", "value": "x"}, {"key": "b", "value": "y" * 200})
    with pytest.raises(ValueError, match=r"^line 3: value is 202 bytes as JSON"):
        await memory.import_(read_jsonl(io.StringIO(text)))
    assert await memory.size() == 0


async def test_nan_inside_a_value_names_its_path() -> None:
    """A NaN deep in a value is named by its path, as in metadata."""
    memory = MemoryPrimitive()
    with pytest.raises(ValueError, match=r"value\['a'\]\[1\] is a non-finite float"):
        await memory.add("k", {"a": [1, float("nan")]})
    with pytest.raises(ValueError, match=r"^line 2: value\['a'\]\[0\] is a non-finite"):
        list(read_jsonl(io.StringIO("".join(_lines(HEADER)) + '{"key":"k","value":{"a":[NaN]}}\n')))


async def test_checked_records_are_reused_and_spool_to_a_file() -> None:
    """check_records keeps every record (in a file past a few MiB) and import_ takes them as
    they are, as often as asked; it reports the vectors' embedders."""
    records = [{"key": f"k{i}", "value": "x" * 1000, "metadata": {"i": i}} for i in range(9000)]
    records[0]["vector"] = {"embedder": "e", "dimensions": 2, "values": [1, 0]}
    with await transfer.check_records(records) as checked:
        assert (len(checked), checked.spaces) == (9000, {("e", 2): 1})
        assert checked._file._rolled  # type: ignore[attr-defined]  # on disk, not in memory
        for _ in range(2):
            memory = MemoryPrimitive(max_size=None)
            with pytest.warns(UserWarning, match="1 records of 'e' \\(2 dimensions\\)"):
                report = await memory.import_(checked)
            assert (report.imported, report.vectors_dropped) == (9000, 1)
            assert await memory.get("k8999") == "x" * 1000


async def test_a_backend_failure_part_way_says_what_landed(fresh_server: Any) -> None:
    """The server going away after the first batch: ImportIncompleteError (a
    MemoryBackendError) says how many records were handled and how to finish, and
    importing again as it says completes the import."""
    server = fresh_server
    n = transfer.BATCH_SIZE * 3
    records = [{"key": f"k{i}", "value": i} for i in range(n)]
    memory = MemoryPrimitive(redis_url=server.url, fallback=False, max_size=None)

    def stop_after_first(done: int) -> None:
        if done == transfer.BATCH_SIZE:
            server.kill()

    with pytest.raises(transfer.ImportIncompleteError) as info:
        await memory.import_(records, on_conflict="error", progress=stop_after_first)
    await memory.aclose()
    err = info.value
    assert isinstance(err, MemoryBackendError)
    assert (err.handled, err.uncertain, err.total) == (transfer.BATCH_SIZE, 500, n)
    assert err.report.imported == transfer.BATCH_SIZE
    assert err.resume_with == "skip"
    assert f"after handling {transfer.BATCH_SIZE} of {n} records" in str(err)
    assert "records[500] to records[999] may or may not" in str(err)
    assert "on_conflict='skip' finishes the import" in str(err)
    server.start()  # appendfsync always: what it acknowledged is still there
    memory = MemoryPrimitive(redis_url=server.url, fallback=False, max_size=None)
    try:
        report = await memory.import_(records, on_conflict=err.resume_with)
        assert (report.skipped_existing, report.imported) == (500, n - 500)
        assert await memory.size() == n
    finally:
        await memory.aclose()


async def test_zero_vectors_are_refused_naming_the_embedder() -> None:
    """An embedder that returns zeros for a text with words is refused, naming it, for a
    record and for a query; a text without a word may have a zero vector."""
    from tta_dev_primitives import CallableEmbedder

    zeros = CallableEmbedder(
        lambda texts: [[0.0, 0.0, 0.0] for _ in texts], name="broken", dimensions=3
    )
    memory = MemoryPrimitive(embedder=zeros)
    with pytest.raises(ValueError, match=r"embedder 'broken' returned a zero vector.*'hello'"):
        await memory.add("k", "hello")
    assert await memory.size() == 0
    with pytest.raises(ValueError, match=r"embedder 'broken'.*text 1 of 2"):
        await memory.add_many({"a": "?!", "b": "words here"})
    assert await memory.size() == 0
    await memory.add("n", 42)  # no words: nothing to find by meaning anyway
    with pytest.raises(ValueError, match=r"embedder 'broken'.*the query"):
        await memory.search("hello", mode="semantic")


async def test_writing_without_an_embedder_where_records_have_vectors_warns() -> None:
    """A memory without an embedder writing into a namespace whose records carry vectors
    warns once, naming the embedder; an import without one counts what it dropped."""
    backend = InMemoryBackend()
    embedder = HashingEmbedder(16)
    await MemoryPrimitive(backend=backend, namespace="ns", embedder=embedder).add("a", "x")
    plain = MemoryPrimitive(backend=backend, namespace="ns")
    with pytest.warns(UserWarning, match=f"vectors of embedder '{embedder.name}'"):
        await plain.add("b", "y")
    await plain.add("c", "z")  # once per namespace (filterwarnings=error would fail here)
    elsewhere = MemoryPrimitive(backend=backend, namespace="other")
    await elsewhere.add("b", "y")  # a namespace without vectors: nothing to say
    with pytest.warns(UserWarning, match=f"vectors of embedder '{embedder.name}'"):
        await MemoryPrimitive(backend=backend, namespace="ns").import_([{"key": "d", "value": 1}])


async def test_out_of_range_times_write_nothing_on_redis(redis_backend: Any) -> None:
    """On Redis, an import with expires_at 1e300 is refused before any write, and the
    backend itself refuses a time or TTL it could not keep before its script runs, so no
    half-written record is left."""
    from tta_dev_primitives.memory.records import Entry

    ns = ("times",)
    memory = MemoryPrimitive(backend=redis_backend, namespace=ns)
    with pytest.raises(ValueError, match="records\\[0\\]: expires_at must be epoch seconds"):
        await memory.import_([{"key": "a", "value": 1, "expires_at": 1e300}])
    with pytest.raises(ValueError, match="created_at must be epoch seconds"):
        await redis_backend.put(ns, Entry("a", "1", None, None, created_at=1e306))
    with pytest.raises(ValueError, match="ttl must be at most 2147483648 seconds"):
        await redis_backend.put_many(
            ns, [Entry("b", "1", None, None), Entry("a", "1", None, 1e300)]
        )
    assert await redis_backend.size(ns) == 0
    assert await redis_backend.keys(ns) == []
    assert await memory.get("a") is None
    await memory.import_([{"key": "a", "value": 1, "created_at": 1e9, "updated_at": 2e9}])
    record = await memory.get_record("a")
    assert record is not None
    assert (record.created_at, record.updated_at) == (1e9, 2e9)


async def test_an_embedder_failing_part_way_says_what_landed() -> None:
    """An embedder that refuses a later batch: the error keeps its type and gains a note of
    how many records were written before it, and how to finish."""
    from tta_dev_primitives import CallableEmbedder

    def embed(texts: list[str]) -> list[list[float]]:
        return [[0.0, 0.0] if t == "poison" else [1.0, 0.0] for t in texts]

    memory = MemoryPrimitive(
        max_size=None, embedder=CallableEmbedder(embed, name="e", dimensions=2)
    )
    n = transfer.BATCH_SIZE + 10
    records = [{"key": f"k{i}", "value": "poison" if i == n - 1 else "ok"} for i in range(n)]
    with pytest.raises(ValueError, match="zero vector") as info:
        await memory.import_(records)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert f"after handling {transfer.BATCH_SIZE} of {n} records" in notes
    assert f"nothing from records[{transfer.BATCH_SIZE}] on was written" in notes
    assert "on_conflict='replace' finishes it" in notes
    assert await memory.size() == transfer.BATCH_SIZE


async def test_index_text_is_an_optional_checked_field() -> None:
    """A record line may carry index_text (older lines without it read as before); a bad
    one is refused, naming the record, and nothing is written."""
    memory = MemoryPrimitive(max_value_bytes=64)
    report = await memory.import_(
        [{"key": "a", "value": "x"}, {"key": "b", "value": "y", "index_text": "lisbon words"}]
    )
    assert report.imported == 2
    a, b = await memory.get_record("a"), await memory.get_record("b")
    assert a is not None
    assert b is not None
    assert (a.index_text, b.index_text) == (None, "lisbon words")
    assert [h.key for h in await memory.search("lisbon")] == ["b"]
    text = await _to_text(memory)
    assert '"index_text":"lisbon words"' in text
    assert text.count("index_text") == 1
    with pytest.raises(ValueError, match=r"records\[1\]: index_text must be a str"):
        await memory.import_([{"key": "c", "value": 1}, {"key": "d", "value": 1, "index_text": 5}])
    with pytest.raises(ValueError, match=r"records\[0\]: index_text is 65 bytes"):
        await memory.import_([{"key": "c", "value": 1, "index_text": "x" * 65}])
    assert await memory.keys() == ["a", "b"]
