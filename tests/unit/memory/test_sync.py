"""``memory.sync()``: the blocking facade runs the primitive's own coroutines on one private
loop thread, from plain threads and from inside a running loop, on every backend."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    RedisBackend,
    SyncMemory,
)
from tta_dev_primitives.memory.sync import BLOCKING_METHODS
from tta_dev_primitives.testing import capture_telemetry

from tests.support.redis_servers import RedisServer, fast_failing, flush


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tta-memory-sync"]


def test_every_async_operation_has_a_blocking_twin() -> None:
    """Each public coroutine method of the primitive (but aclose) is a method of SyncMemory,
    with the primitive's signature."""
    public = {
        name
        for name, fn in inspect.getmembers(MemoryPrimitive, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in ("aclose", "execute")
    }
    assert public == set(BLOCKING_METHODS)
    for name in BLOCKING_METHODS:
        assert inspect.signature(getattr(SyncMemory, name)) == inspect.signature(
            getattr(MemoryPrimitive, name)
        )


def test_blocking_calls_round_trip_and_close() -> None:
    """The facade stores, reads, searches and lists; close() closes the primitive, ends the
    thread, and later calls raise MemoryBackendError("closed")."""
    memory = MemoryPrimitive(namespace="sync")
    mem = memory.sync()
    mem.add("a", {"text": "hello python"}, metadata={"kind": "note"})
    mem.scoped("child").add("b", "python again")
    assert mem.get("a") == {"text": "hello python"}
    assert mem.get_record("a").metadata == {"kind": "note"}
    # Equal scores: namespace order, this one first.
    assert [h.key for h in mem.search("python", subtree=True)] == ["a", "b"]
    assert mem.namespaces() == [("child",)]
    assert mem.size() == 1
    assert memory.sync().loop is mem.loop  # one loop thread per primitive
    thread = next(t for t in _sync_threads() if t.ident == mem._runner.thread.ident)
    mem.close()
    mem.close()
    assert not thread.is_alive()
    with pytest.raises(MemoryBackendError, match="closed"):
        mem.get("a")
    with pytest.raises(MemoryBackendError, match="closed"):
        memory.sync()


async def test_blocking_calls_from_inside_a_running_loop() -> None:
    """Called from a coroutine (a notebook cell), a blocking call completes without
    deadlock: it runs on the facade's loop, not the caller's."""
    with MemoryPrimitive().sync() as mem:
        mem.add("k", "inside a loop")
        assert mem.get("k") == "inside a loop"
        assert await mem.arun(mem.memory.get("k")) == "inside a loop"
        assert asyncio.get_running_loop() is not mem.loop


def test_calling_the_facade_from_its_own_loop_is_refused() -> None:
    """A blocking call from the facade's own loop thread would deadlock: RuntimeError."""
    with MemoryPrimitive().sync() as mem:

        async def nested() -> Any:
            return mem.get("k")

        with pytest.raises(RuntimeError, match="own event loop"):
            mem.run(nested())


def test_spans_join_the_callers_trace() -> None:
    """The operation's span is the child of the span current in the calling thread."""
    with capture_telemetry() as telemetry:
        memory = MemoryPrimitive(tracer_provider=telemetry.tracer_provider)
        tracer = telemetry.tracer_provider.get_tracer("test")
        with memory.sync() as mem, tracer.start_as_current_span("caller") as parent:
            mem.add("k", "v")
        spans = {s.name: s for s in telemetry.spans()}
    child = next(s for name, s in spans.items() if name != "caller")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context.trace_id == parent.get_span_context().trace_id


def _hammer(mem: SyncMemory, errors: list[BaseException]) -> None:
    """8 threads share ``mem``: each writes, reads and searches its own namespace."""

    def work(i: int) -> None:
        try:
            view = mem.scoped(f"t{i}")
            for j in range(25):
                view.add(f"k{j}", {"text": f"thread {i} note {j} python"})
                assert view.get(f"k{j}") == {"text": f"thread {i} note {j} python"}
            assert view.size() == 25
            assert len(view.search("python", limit=30)) == 25
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


@pytest.mark.redis
@pytest.mark.parametrize("fallback", [False, True], ids=["redis", "fallback_redis"])
def test_eight_threads_share_one_facade_on_redis(redis_server: RedisServer, fallback: bool) -> None:
    """Eight plain threads share one facade over a real Redis (bare, and behind the
    fallback): every write lands, in its own namespace, and a tree search sees them all."""
    asyncio.run(flush(redis_server))
    memory = MemoryPrimitive(
        redis_url=redis_server.url, fallback=fallback, namespace="threads", max_size=None
    )
    errors: list[BaseException] = []
    with memory.sync() as mem:
        _hammer(mem, errors)
        assert errors == []
        assert memory.is_using_redis()
        assert mem.namespaces() == sorted((f"t{i}",) for i in range(8))
        hits = mem.search("python", limit=200, subtree=True)
        assert len(hits) == 200
        assert {h.namespace for h in hits} == {(f"t{i}",) for i in range(8)}

    async def in_redis() -> int:
        backend = RedisBackend.from_url(redis_server.url)
        try:
            return sum([await backend.size(("threads", f"t{i}")) for i in range(8)])
        finally:
            await backend.aclose()

    assert asyncio.run(in_redis()) == 200


@pytest.mark.redis
@pytest.mark.slow
def test_facade_keeps_serving_through_an_outage(fresh_server: RedisServer) -> None:
    """Behind the fallback, blocking calls keep working while Redis is killed, and the writes
    made meanwhile reach Redis when it is back."""
    backend = FallbackBackend(
        fast_failing(fresh_server.url), InMemoryBackend(None), probe_interval=0.05
    )
    memory = MemoryPrimitive(backend=backend, namespace="outage")
    mem = memory.sync()
    try:
        mem.add("before", "written to redis")
        fresh_server.kill()
        mem.add("during", "journaled while redis is down")
        assert mem.get("during") == "journaled while redis is down"
        assert backend.degraded
        fresh_server.restart()
        deadline = time.monotonic() + 20
        while backend.degraded and time.monotonic() < deadline:
            mem.run(backend.recover())
            time.sleep(0.05)
        assert not backend.degraded
    finally:
        mem.close()
        asyncio.run(backend.aclose())

    async def in_redis() -> dict[str, Any]:
        check = MemoryPrimitive(backend=RedisBackend.from_url(fresh_server.url), namespace="outage")
        try:
            return await check.get_many(["before", "during"])
        finally:
            await check.backend.aclose()

    assert asyncio.run(in_redis()) == {
        "before": "written to redis",
        "during": "journaled while redis is down",
    }
