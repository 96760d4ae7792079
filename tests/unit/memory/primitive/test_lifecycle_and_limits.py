"""Lifecycle (use after close), bounds, and span attributes that OTLP can carry."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes

from tta_dev_primitives import (
    MemoryBackendError,
    MemoryPrimitive,
    WorkflowContext,
)
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.backends import BackendHarness
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.filterwarnings("error")


async def _every_operation(memory: MemoryPrimitive) -> list[tuple[str, Any]]:
    """Run each public operation; return (name, exception) for each."""
    calls = {
        "add": lambda: memory.add("k", 1),
        "get": lambda: memory.get("k"),
        "search": lambda: memory.search("x"),
        "delete": lambda: memory.delete("k"),
        "clear": lambda: memory.clear(),
        "keys": lambda: memory.keys(),
        "size": lambda: memory.size(),
        "add_many": lambda: memory.add_many({"a": 1}),
        "get_many": lambda: memory.get_many(["a"]),
        "scoped add": lambda: memory.scoped("v").add("k", 1),
    }
    out = []
    for name, call in calls.items():
        try:
            await call()
        except Exception as exc:
            out.append((name, exc))
        else:
            out.append((name, None))
    return out


def _assert_all_closed(results: list[tuple[str, Any]]) -> None:
    for name, exc in results:
        assert isinstance(exc, MemoryBackendError), f"{name} after aclose: {exc!r}"
        assert "closed" in str(exc), f"{name}: {exc}"
        assert exc.transient is False


async def test_every_operation_after_close_raises_closed(
    memory_backend: BackendHarness, telemetry: CapturedTelemetry
) -> None:
    """After aclose, every operation raises MemoryBackendError("closed"), traced or not."""
    backend = await memory_backend.make(10)
    memory_backend.created.append(backend)
    for providers in ({}, {"tracer_provider": telemetry.tracer_provider}):
        memory = MemoryPrimitive(backend=backend, namespace="closing", **providers)
        await memory.add("k", 1)
        await memory.aclose()
        await memory.aclose()  # idempotent
        _assert_all_closed(await _every_operation(memory))
        assert memory.get_backend_info()["backend"] == "closed"
        assert memory.is_using_redis() is False


async def test_leaving_async_with_closes() -> None:
    """Leaving `async with` closes the primitive and its scoped views."""
    async with MemoryPrimitive() as memory:
        view = memory.scoped("x")
        await view.add("k", 1)
        await view.aclose()  # a view closes nothing
        assert await view.get("k") == 1
    _assert_all_closed(await _every_operation(memory))
    with pytest.raises(MemoryBackendError, match="closed"):
        await view.get("k")


@pytest.mark.redis
async def test_redis_with_fallback_after_close_raises_and_journals_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis primitive with the default fallback refuses work after close (no degrading)."""
    memory = MemoryPrimitive(redis_url=redis_server.url, namespace="closed-fb")
    await memory.add("k", 1)
    backend: Any = memory.backend
    await memory.aclose()
    with caplog.at_level(logging.WARNING):
        _assert_all_closed(await _every_operation(memory))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert backend.pending == 0
    assert memory.get_backend_info()["backend"] == "closed"
    assert memory.is_using_redis() is False


async def test_span_attributes_survive_the_otlp_encoder(telemetry: CapturedTelemetry) -> None:
    """Lone surrogates and ints beyond int64 are sanitized so the OTLP encoder keeps them."""
    memory = MemoryPrimitive(
        namespace=("ns\udc80",),
        capture_content=True,
        tracer_provider=telemetry.tracer_provider,
    )
    ctx = WorkflowContext(workflow_id="wf\ud800", session_id="s\udfff")
    await memory.add("plain", "text with a lone \udc80 surrogate", context=ctx)
    await memory.get("plain", context=ctx)
    await memory.search("lone \ud800", limit=2**63, context=ctx)
    with pytest.raises(ValueError, match="key"):
        await memory.add("bad\udc80key", 1, context=ctx)
    spans = telemetry.spans()
    assert [s.name for s in spans] == [
        "upsert_memory",
        "get_memory",
        "search_memory",
        "upsert_memory",
    ]
    for span in spans:
        attrs = dict(span.attributes or {})
        encoded = _encode_attributes(attrs)
        assert encoded is not None
        assert sorted(kv.key for kv in encoded) == sorted(attrs), span.name
    search = spans[2].attributes or {}
    assert search["memory.search.limit"] == 2**63 - 1
    assert search["workflow.id"] == "wf\ufffd\ufffd\ufffd"


async def test_in_memory_max_total_bounds_all_namespaces() -> None:
    """max_total bounds the records of all namespaces together, dropping the least recently
    written namespace first; max_size still bounds each."""
    from tta_dev_primitives import InMemoryBackend
    from tta_dev_primitives.memory.records import Entry

    backend = InMemoryBackend(100, max_total=250)
    for n in range(10):
        await backend.put_many((f"n{n}",), [Entry(f"k{i}", str(i)) for i in range(100)])
        assert await backend.held() <= 250
    assert await backend.size(("n9",)) == 100
    assert await backend.size(("n8",)) == 100
    assert await backend.size(("n0",)) == 0
    await backend.put(("n8",), Entry("x", "1"))  # n8 becomes the most recently written
    await backend.put_many(("n10",), [Entry(f"k{i}", str(i)) for i in range(100)])
    assert await backend.size(("n8",)) == 100
    assert await backend.size(("n9",)) == 0
    await backend.clear(("n8",))
    assert await backend.held() == 100
    with pytest.raises(ValueError, match="max_total"):
        InMemoryBackend(100, max_total=50)


@pytest.mark.redis
async def test_fallback_over_a_closed_redis_backend_raises_instead_of_degrading(
    redis_server: RedisServer,
) -> None:
    """A RedisBackend closed under a FallbackBackend is not an outage: operations raise."""
    from tta_dev_primitives import FallbackBackend, InMemoryBackend, RedisBackend
    from tta_dev_primitives.memory.records import Entry

    primary = RedisBackend.from_url(redis_server.url)
    backend = FallbackBackend(primary, InMemoryBackend(10))
    await primary.aclose()
    with pytest.raises(MemoryBackendError, match="closed"):
        await backend.put(("c",), Entry("k", "1"))
    assert not backend.degraded
    assert backend.pending == 0
    await backend.aclose()


async def test_bare_in_memory_backend_refuses_use_after_close() -> None:
    """An InMemoryBackend used directly (no primitive) raises MemoryBackendError("closed")
    for every operation after aclose(), like every other backend (issue #12, point 5)."""
    from tta_dev_primitives import InMemoryBackend, MemoryBackendError
    from tta_dev_primitives.memory.records import Entry, ListQuery, SearchQuery

    backend = InMemoryBackend()
    ns = ("x",)
    await backend.put(ns, Entry("k", '"v"'))
    await backend.aclose()
    calls = [
        lambda: backend.put(ns, Entry("k", '"v"')),
        lambda: backend.put_many(ns, [Entry("k", '"v"')]),
        lambda: backend.get(ns, "k"),
        lambda: backend.get_many(ns, ["k"]),
        lambda: backend.delete(ns, "k"),
        lambda: backend.clear(ns),
        lambda: backend.keys(ns),
        lambda: backend.size(ns),
        lambda: backend.search(ns, SearchQuery("v", 1)),
        lambda: backend.list(ns, ListQuery()),
        lambda: backend.delete_where(ns, {"a": 1}),
        lambda: backend.namespaces(()),
    ]
    for call in calls:
        with pytest.raises(MemoryBackendError, match="closed"):
            await call()
    with pytest.raises(MemoryBackendError, match="closed"):
        backend.get_now(ns, "k")
    await backend.aclose()  # idempotent
