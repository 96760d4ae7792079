"""FallbackBackend: serve from the secondary during an outage, journal, replay, switch back.

The primary here is an in-memory backend that can be switched off, so every outage and
recovery is deterministic; tests against real servers killed mid-stream are in
servers/test_redis_faults.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from tta_dev_primitives import FallbackBackend, InMemoryBackend, MemoryBackendError, MemoryPrimitive
from tta_dev_primitives.memory.backends.base import BackendInfo
from tta_dev_primitives.memory.records import (
    Entry,
    ListQuery,
    Namespace,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
)
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.clock import FakeClock

NS: Namespace = ("ns",)


class Flaky:
    """An in-memory backend that fails every call while ``down`` (a stand-in for Redis)."""

    def __init__(self, clock: FakeClock, max_size: int | None = 1000) -> None:
        self.inner = InMemoryBackend(max_size, clock=clock)
        self.down = False
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None  # when set, puts wait for it
        self.closed = False

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if self.down:
            raise MemoryBackendError("primary is down", backend="flaky", operation=op)

    def info(self) -> BackendInfo:
        return BackendInfo("flaky", persistent=True, remote=True, attributes={"x": 1})

    async def ping(self) -> None:
        self._check("ping")

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        self._check("put")
        if self.gate is not None:
            await self.gate.wait()
            self._check("put")
        return await self.inner.put(namespace, entry)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        self._check("put_many")
        return await self.inner.put_many(namespace, entries)

    async def get(self, namespace: Namespace, key: str) -> Record | None:
        self._check("get")
        return await self.inner.get(namespace, key)

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[Record | None]:
        self._check("get_many")
        return await self.inner.get_many(namespace, keys)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        self._check("delete")
        return await self.inner.delete(namespace, key)

    async def clear(self, namespace: Namespace) -> int:
        self._check("clear")
        return await self.inner.clear(namespace)

    async def keys(self, namespace: Namespace) -> list[str]:
        self._check("keys")
        return await self.inner.keys(namespace)

    async def size(self, namespace: Namespace) -> int:
        self._check("size")
        return await self.inner.size(namespace)

    async def search(self, namespace: Namespace, query: SearchQuery) -> list[SearchResult]:
        self._check("search")
        return await self.inner.search(namespace, query)

    async def update(self, namespace: Namespace, key: str, change: RecordUpdate) -> Record | None:
        self._check("update")
        return await self.inner.update(namespace, key, change)

    async def aclose(self) -> None:
        self.closed = True


def entry(key: str, value: Any, ttl: float | None = None, meta: Any = None) -> Entry:
    return Entry(key, json.dumps(value), meta, ttl, None)


async def value(backend: Any, key: str, namespace: Namespace = NS) -> Any:
    record = await backend.get(namespace, key)
    return None if record is None else json.loads(record.payload)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def primary(clock: FakeClock) -> Flaky:
    return Flaky(clock)


@pytest.fixture
async def fallback(primary: Flaky, clock: FakeClock) -> Any:
    backend = FallbackBackend(
        primary, InMemoryBackend(100, clock=clock), probe_interval=3600, clock=clock
    )
    yield backend
    primary.down = False
    await backend.aclose()


async def test_healthy_reads_and_writes_go_to_the_primary(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """While the primary answers it serves everything; writes are mirrored to the secondary."""
    await fallback.put(NS, entry("a", 1))
    await fallback.put_many(NS, [entry("b", 2), entry("c", 3)])
    assert await value(fallback, "a") == 1
    assert await value(fallback.secondary, "b") == 2  # the mirror
    await primary.inner.delete(NS, "c")  # gone from the primary (another process, say)
    assert await value(fallback, "c") is None  # reads never consult the mirror
    assert await fallback.delete(NS, "a")
    assert await value(fallback.secondary, "a") is None
    assert fallback.info().name == "flaky"
    assert not fallback.degraded
    assert fallback.fallback_activations == 0


async def test_outage_is_served_by_the_secondary_without_errors(
    fallback: FallbackBackend, primary: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    """During an outage every operation answers from the mirror, with one warning."""
    await fallback.put(NS, entry("before", "written before the outage"))
    primary.down = True
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives"):
        await fallback.put(NS, entry("during", "written during the outage"))
        assert await value(fallback, "before") == "written before the outage"
        assert await value(fallback, "during") == "written during the outage"
        assert sorted(await fallback.keys(NS)) == ["before", "during"]
        assert await fallback.size(NS) == 2
        hits = await fallback.search(NS, SearchQuery("outage", 5))
        assert [h.key for h in hits] == ["during", "before"]
        assert [r and r.key for r in await fallback.get_many(NS, ["before", "x"])] == [
            "before",
            None,
        ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "serving from 'in_memory'" in warnings[0].getMessage()
    info = fallback.info()
    assert info.degraded
    assert info.name == "in_memory"
    assert fallback.fallback_activations == 1
    assert fallback.pending == 1


async def test_journal_replays_in_order_and_last_write_wins(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """Writes, deletes and clears of the outage reach the primary in order on recovery."""
    await fallback.put(NS, entry("keep", "old"))
    await fallback.put(NS, entry("gone", "old"))
    await fallback.put(("other",), entry("o", "old"))
    primary.down = True
    await fallback.put(NS, entry("keep", "v1"))
    await fallback.put(NS, entry("new", "v1"))
    await fallback.delete(NS, "gone")
    await fallback.put(NS, entry("keep", "v2"))
    await fallback.put_many(NS, [entry("b1", 1), entry("b2", 2)])
    await fallback.clear(("other",))
    await fallback.put(("other",), entry("o2", "after clear"))
    assert not await fallback.recover()  # still down: nothing lost
    assert fallback.pending == 7
    primary.down = False
    assert await fallback.recover()
    assert not fallback.degraded
    assert fallback.pending == 0
    assert await primary.inner.keys(NS) == ["new", "keep", "b1", "b2"]
    assert await value(primary.inner, "keep") == "v2"
    assert await value(primary.inner, "gone") is None
    assert await primary.inner.keys(("other",)) == ["o2"]
    assert fallback.info().name == "flaky"


async def test_replayed_record_keeps_its_absolute_expiry(
    fallback: FallbackBackend, primary: Flaky, clock: FakeClock
) -> None:
    """A TTL given during the outage counts from the write, not from the replay."""
    primary.down = True
    await fallback.put(NS, entry("t", "ten seconds", ttl=10.0))
    await fallback.put(NS, entry("brief", "two seconds", ttl=2.0))
    clock.advance(4.0)
    primary.down = False
    assert await fallback.recover()
    assert await value(primary.inner, "t") == "ten seconds"
    assert await value(primary.inner, "brief") is None
    clock.advance(5.0)  # 9 s after the write
    assert await value(primary.inner, "t") == "ten seconds"
    clock.advance(1.5)  # 10.5 s after the write
    assert await value(primary.inner, "t") is None


async def test_record_expired_during_outage_is_deleted_not_replayed(
    fallback: FallbackBackend, primary: Flaky, clock: FakeClock
) -> None:
    """Overwriting with a short TTL that lapses in the outage leaves the key absent."""
    await fallback.put(NS, entry("k", "old, durable"))
    primary.down = True
    await fallback.put(NS, entry("k", "new, brief", ttl=1.0))
    clock.advance(2.0)
    primary.down = False
    assert await fallback.recover()
    assert await value(primary.inner, "k") is None
    assert "put" not in primary.calls[-2:]


async def test_replay_failing_midway_keeps_the_rest(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """If the primary fails again during replay, the unreplayed tail stays journaled."""
    primary.down = True
    for i in range(5):
        await fallback.put(NS, entry(f"k{i}", i))
        await fallback.delete(NS, f"gone{i}")  # one operation at a time, not a batch
    primary.down = False
    calls = 0
    original = primary.inner.put

    async def put_fails_third_time(namespace: Namespace, e: Entry) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise MemoryBackendError("down again", backend="flaky")
        return await original(namespace, e)

    primary.inner.put = put_fails_third_time  # type: ignore[method-assign]
    assert not await fallback.recover()
    assert fallback.degraded
    assert fallback.pending == 6
    assert await fallback.recover()
    assert await primary.inner.keys(NS) == [f"k{i}" for i in range(5)]


async def test_a_failing_batch_of_writes_stays_journaled(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """Consecutive journaled writes replay as one batch; if it fails, all of it stays."""
    primary.down = True
    for i in range(5):
        await fallback.put(NS, entry(f"k{i}", i))
    primary.down = False
    original = primary.inner.put_many

    async def fails_once(namespace: Namespace, entries: Sequence[Entry]) -> int:
        primary.inner.put_many = original  # type: ignore[method-assign]
        raise MemoryBackendError("down again", backend="flaky")

    primary.inner.put_many = fails_once  # type: ignore[method-assign]
    assert not await fallback.recover()
    assert fallback.pending == 5
    assert await fallback.recover()
    assert await primary.inner.keys(NS) == [f"k{i}" for i in range(5)]
    assert "put_many" in primary.calls


async def test_writes_during_replay_are_replayed_too(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """A write journaled while the replay runs is replayed before switching back."""
    primary.down = True
    await fallback.put(NS, entry("a", "first"))
    primary.down = False
    primary.gate = asyncio.Event()
    recovery = asyncio.create_task(fallback.recover())
    await asyncio.sleep(0)  # the replay now waits inside the primary's put
    await fallback.put(NS, entry("a", "second"))  # still degraded: journaled
    await fallback.put(NS, entry("b", "meanwhile"))
    assert fallback.degraded
    primary.gate.set()
    assert await recovery
    assert await value(primary.inner, "a") == "second"
    assert await value(primary.inner, "b") == "meanwhile"
    assert not fallback.degraded


async def test_journal_keeps_its_own_copy_of_metadata(
    fallback: FallbackBackend, primary: Flaky
) -> None:
    """Mutating the caller's metadata after the write does not change what is replayed."""
    meta: dict[str, Any] = {"tags": ["a"]}
    primary.down = True
    await fallback.put(NS, entry("k", 1, meta=meta))
    meta["tags"].append("b")
    primary.down = False
    assert await fallback.recover()
    record = await primary.inner.get(NS, "k")
    assert record is not None
    assert record.metadata == {"tags": ["a"]}


async def test_each_outage_warns_once_and_counts(
    fallback: FallbackBackend, primary: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    """Two outages: two warnings, two activations, two on_activation calls."""
    seen: list[MemoryBackendError] = []
    fallback._on_activation = seen.append
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives"):
        for _ in range(2):
            primary.down = True
            for i in range(3):
                await fallback.put(NS, entry(f"k{i}", i))
                await fallback.get(NS, "k0")
            primary.down = False
            assert await fallback.recover()
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 2
    assert fallback.fallback_activations == 2
    assert len(seen) == 2
    assert all(isinstance(e, MemoryBackendError) for e in seen)


async def test_on_activation_errors_are_logged_not_raised(
    primary: Flaky, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged; the operation still succeeds from the secondary."""

    def boom(exc: MemoryBackendError) -> None:
        raise RuntimeError("callback bug")

    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), on_activation=boom)
    primary.down = True
    await backend.put(NS, entry("k", 1))
    assert "on_activation callback failed" in caplog.text
    primary.down = False
    await backend.aclose()


async def test_background_probe_switches_back(primary: Flaky, clock: FakeClock) -> None:
    """Without any call to recover(), the probe replays and switches back on its own."""
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=0.02)
    primary.down = True
    await backend.put(NS, entry("k", "during"))
    await asyncio.sleep(0.05)
    assert backend.degraded  # probes fail while down
    pings = primary.calls.count("ping")
    assert 1 <= pings <= 4  # at most one probe per interval
    primary.down = False
    for _ in range(100):
        if not backend.degraded:
            break
        await asyncio.sleep(0.01)
    assert not backend.degraded
    assert await value(primary.inner, "k") == "during"
    await backend.aclose()


async def test_aclose_flushes_the_journal_or_says_what_is_lost(
    primary: Flaky, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """aclose replays what it can; if the primary is still down, it logs how much is lost."""
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=3600)
    primary.down = True
    await backend.put(NS, entry("k", 1))
    primary.down = False
    await backend.aclose()
    assert await value(primary.inner, "k") == 1
    assert primary.closed

    other = Flaky(clock)
    backend = FallbackBackend(other, InMemoryBackend(clock=clock), probe_interval=3600)
    other.down = True
    await backend.put(NS, entry("k", 1))
    with caplog.at_level(logging.ERROR):
        await backend.aclose()
    assert "1 journaled memory operations" in caplog.text


def test_probe_interval_is_validated(primary: Flaky) -> None:
    """probe_interval must be a positive number."""
    with pytest.raises(ValueError, match="probe_interval"):
        FallbackBackend(primary, InMemoryBackend(), probe_interval=0)
    with pytest.raises(TypeError, match="probe_interval"):
        FallbackBackend(primary, InMemoryBackend(), probe_interval="5")  # type: ignore[arg-type]


async def test_primitive_marks_degraded_spans_and_counts_activations(
    primary: Flaky, clock: FakeClock, telemetry: CapturedTelemetry
) -> None:
    """Through MemoryPrimitive: degraded spans say so, and the activation is counted once."""
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=3600)
    memory = MemoryPrimitive(
        backend=backend,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    await memory.add("k", "v")
    assert not memory.is_using_redis()  # the primary here is not Redis
    primary.down = True
    await memory.add("k2", "v2")
    assert await memory.get("k") == "v"
    assert memory.get_backend_info()["degraded"] is True
    spans = telemetry.spans()
    assert "memory.degraded" not in spans[0].attributes
    assert spans[1].attributes["memory.degraded"] is True
    assert spans[2].attributes["memory.degraded"] is True
    assert spans[2].attributes["memory.backend"] == "in_memory"
    points = telemetry.metrics()["memory.fallback.activations"]
    assert sum(p.value for p in points) == 1
    primary.down = False
    await backend.aclose()


class Refusing(Flaky):
    """Refuses (non-transiently) every put of the key "bad", like a server-side script error."""

    async def put(self, namespace: Namespace, entry: Entry) -> int:
        if entry.key == "bad" and not self.down:
            raise MemoryBackendError("refused", backend="flaky", operation="put", transient=False)
        return await super().put(namespace, entry)

    async def put_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        if any(e.key == "bad" for e in entries) and not self.down:
            raise MemoryBackendError("refused", backend="flaky", operation="put", transient=False)
        return await super().put_many(namespace, entries)


async def test_refused_operation_is_raised_not_journaled(clock: FakeClock) -> None:
    """A non-transient error is the caller's to see: no outage, nothing journaled."""
    primary = Refusing(clock)
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=3600)
    with pytest.raises(MemoryBackendError, match="refused"):
        await backend.put(NS, entry("bad", 1))
    assert not backend.degraded
    assert backend.pending == 0
    await backend.put(NS, entry("good", 2))
    assert await value(primary.inner, "good") == 2
    await backend.aclose()


async def test_refused_replay_is_set_aside_and_later_writes_reach_the_primary(
    clock: FakeClock,
) -> None:
    """One journaled write the primary refuses does not block the writes behind it; it is
    kept, still served, and retried until accepted."""
    primary = Refusing(clock)
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=3600)
    primary.down = True
    await backend.put(NS, entry("bad", "one apple"))
    await backend.put(NS, entry("good", 2))
    primary.down = False
    assert await backend.recover() is True
    assert not backend.degraded
    assert backend.pending == 1
    assert backend.replay_refusals == 1
    assert await value(primary.inner, "good") == 2
    assert [(r.operation, r.key, r.error.transient) for r in backend.replay_refused] == [
        ("add", "bad", False)
    ]
    assert await value(backend, "bad") == "one apple"  # acknowledged: still served
    assert await value(primary.inner, "bad") is None
    # ... by every read of its namespace, not only get (the secondary holds it).
    assert sorted(await backend.keys(NS)) == ["bad", "good"]
    assert await backend.size(NS) == 2
    assert sorted(r.key for r in (await backend.list(NS, ListQuery())).records) == ["bad", "good"]
    assert [r.key for r in await backend.search(NS, SearchQuery("apple", 5))] == ["bad"]
    assert await backend.retry_refused() == 1  # still refused: kept
    assert await backend.recover() is True
    assert backend.replay_refusals == 1  # counted once
    await backend.delete(NS, "bad")  # a newer write of the key supersedes it
    assert backend.pending == 0
    assert backend.replay_refused == []
    assert await value(backend, "bad") is None
    await backend.aclose()


async def test_refused_write_is_retried_by_the_probe_until_accepted(clock: FakeClock) -> None:
    """The background probe keeps retrying a refused write; once accepted it is delivered."""
    primary = Refusing(clock)
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=0.01)
    primary.down = True
    await backend.put(NS, entry("bad", "kept"))
    primary.down = False
    assert await backend.recover() is True
    assert backend.pending == 1
    primary.put = Flaky.put.__get__(primary)  # type: ignore[method-assign]  # now accepts it
    for _ in range(200):
        if not backend.pending:
            break
        await asyncio.sleep(0.01)
    assert backend.pending == 0
    assert await value(primary.inner, "bad") == "kept"
    await backend.aclose()


async def test_operations_after_aclose_raise_closed(fallback: Any) -> None:
    """A closed FallbackBackend refuses work instead of degrading and journaling it."""
    await fallback.aclose()
    with pytest.raises(MemoryBackendError, match="closed"):
        await fallback.put(NS, entry("k", 1))
    with pytest.raises(MemoryBackendError, match="closed"):
        await fallback.get(NS, "k")
    assert fallback.pending == 0
    assert not fallback.degraded


async def test_probe_survives_unexpected_errors(clock: FakeClock) -> None:
    """An unexpected exception while probing is logged and the probe keeps going."""
    primary = Flaky(clock)
    failures = 2
    original = primary.ping

    async def ping() -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("unexpected")
        await original()

    primary.ping = ping  # type: ignore[method-assign]
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=0.01)
    primary.down = True
    await backend.put(NS, entry("k", "during"))
    primary.down = False
    for _ in range(200):
        if not backend.degraded:
            break
        await asyncio.sleep(0.01)
    assert not backend.degraded
    assert failures == 0
    assert await value(primary.inner, "k") == "during"
    await backend.aclose()


async def test_refused_replay_is_a_span_event(
    clock: FakeClock, telemetry: CapturedTelemetry
) -> None:
    """A refusal met while replaying inside a span, and each read answered from a refused
    write, show as span events."""
    primary = Refusing(clock)
    backend = FallbackBackend(primary, InMemoryBackend(clock=clock), probe_interval=3600)
    primary.down = True
    await backend.put(NS, entry("bad", 1))
    primary.down = False
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("recovering"):
        assert await backend.recover() is True
    with tracer.start_as_current_span("reading"):
        assert await value(backend, "bad") == 1
    events = {s.name: [e.name for e in s.events] for s in telemetry.spans()}
    assert events["recovering"] == ["memory.replay.refused"]
    assert events["reading"] == ["memory.replay.refused.served"]
    await backend.aclose()


async def test_outage_writes_keep_the_namespace_embedder(primary: Flaky, clock: FakeClock) -> None:
    """During an outage the mirror refuses another embedder's vectors and such a write is never
    replayed; a replayed write carries its embedder, so the primary can check it too."""
    backend = FallbackBackend(
        primary, InMemoryBackend(100, clock=clock), probe_interval=3600, clock=clock
    )
    model_a, model_b = ("model-a", 2), ("model-b", 2)
    await backend.put(NS, Entry("a", '"x"', None, None, [1.0, 0.0], space=model_a))
    primary.down = True
    with pytest.raises(ValueError, match="model-b"):
        await backend.put(NS, Entry("b", '"y"', {"m": 1}, None, [0.0, 1.0], space=model_b))
    batch = [
        Entry("e", '"y"', None, None, [1.0, 1.0], space=model_a),
        Entry("c", '"y"', None, None, [0.0, 1.0], space=model_b),
    ]
    with pytest.raises(ValueError, match="model-b"):
        await backend.put_many(NS, batch)
    other: Namespace = ("other",)
    await backend.put(other, Entry("d", '"z"', {"m": 1}, None, [0.0, 1.0], space=model_b))
    assert backend.pending == 2
    primary.down = False
    assert await backend.recover()
    assert await primary.inner.get(NS, "b") is None
    assert await primary.inner.get(NS, "c") is None
    assert await primary.inner.get(NS, "e") is not None  # held by the mirror: replayed
    query = SearchQuery("z", 5, "semantic", vector=[0.0, 1.0], space=model_a)
    with pytest.raises(ValueError, match="model-a"):
        await primary.inner.search(other, query)
    await backend.aclose()


async def test_index_text_survives_the_journal(fallback: FallbackBackend, primary: Flaky) -> None:
    """Index texts written, or updated, during an outage reach the primary on replay (a
    batch, a write amended by an update, an update alone), and the mirror searches by them."""
    await fallback.put(NS, Entry("old", '"kept"', index_text="before the outage"))
    primary.down = True
    await fallback.put(NS, Entry("a", '"yes"', index_text="the concert in Lisbon"))
    await fallback.put_many(
        NS, [Entry("b", '"sure"', index_text="the match in Porto"), Entry("c", '"no"')]
    )
    await fallback.update(NS, "a", RecordUpdate(metadata={"n": 1}))
    await fallback.update(NS, "old", RecordUpdate(set_index_text=True, index_text="changed"))
    assert [h.key for h in await fallback.search(NS, SearchQuery("lisbon", 5))] == ["a"]
    primary.down = False
    assert await fallback.recover()
    texts = {k: (await primary.inner.get(NS, k)).index_text for k in ("old", "a", "b", "c")}
    assert texts == {
        "old": "changed",
        "a": "the concert in Lisbon",
        "b": "the match in Porto",
        "c": None,
    }
    assert [h.key for h in await primary.inner.search(NS, SearchQuery("porto", 5))] == ["b"]
