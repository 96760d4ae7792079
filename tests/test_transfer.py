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
    MemoryPrimitive,
    read_jsonl,
    write_jsonl,
)
from tta_dev_primitives.memory import transfer


async def _records(memory: MemoryPrimitive) -> dict[tuple[tuple[str, ...], str], Any]:
    """What an export says of a memory, keyed by (namespace, key), times left out."""
    out = {}
    async for r in memory.export():
        out[(tuple(r["namespace"]), r["key"])] = (r["value"], r["metadata"])
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
    """replace overwrites, skip keeps the stored record, error stops at the conflicting key."""
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
    assert info.value.report.imported == 1
    assert sorted(await fresh.keys()) == ["a", "b"]
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
    """A large import is written batch by batch, the input read lazily as it goes."""
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
    # Each batch is written after reading at most one record past it.
    assert len(seen) >= 3
    assert all(read <= done + 1 for done, read in seen)


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
    source = MemoryPrimitive(namespace="src", max_size=None)
    for key, (value, meta) in items.items():
        await source.add(key, value, metadata=meta)
    text = await _to_text(source)
    target = MemoryPrimitive(namespace=("dst", "x"), max_size=None)
    report = await target.import_(read_jsonl(io.StringIO(text)))
    assert report.imported == len(items)
    assert await _records(target) == await _records(source)
    assert {k: (await target.get(k)) for k in items} == {k: v for k, (v, _) in items.items()}


def test_cli_doc_snippet_runs() -> None:
    """The Python snippet of docs/cli.md runs as written."""
    from pathlib import Path

    from .subproc import run_python

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_python("-c", snippet)
    assert out.strip().endswith("I write Python at work"), out
