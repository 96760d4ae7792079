"""Shared fixtures: captured telemetry, and the backend harness the conformance suite runs on."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    MemoryBackend,
    MemoryPrimitive,
    RedisBackend,
)
from tta_dev_primitives.testing import CapturedTelemetry, capture_telemetry

from .support.backends import BackendHarness
from .support.clock import FakeClock

# Real-server fixtures (private redis-server / valkey-server processes) for every module.
pytest_plugins = ["tests.support.redis_servers", "tests.support.redis_stack"]


# Fixtures that start or use a real server: a test asking for one is marked ``redis``.
SERVER_FIXTURES = frozenset(
    {
        "redis_server",
        "valkey_server",
        "redis_client",
        "redis_backend",
        "fresh_server",
        "redis_stack",
    }
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server, so ``-m "not redis"`` runs without one."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    """Tracer/meter providers that record into memory, for span and metric assertions."""
    with capture_telemetry() as captured:
        yield captured


async def _in_memory_harness(request: pytest.FixtureRequest) -> BackendHarness:
    clock = FakeClock()

    async def make(max_size: int | None) -> MemoryBackend:
        return InMemoryBackend(max_size, clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    return BackendHarness("in_memory", make, advance)


def _server_harness(flavour: str) -> Callable[[pytest.FixtureRequest], Awaitable[BackendHarness]]:
    """RedisBackend on the session's private ``flavour`` server (redis or valkey)."""

    async def build(request: pytest.FixtureRequest) -> BackendHarness:
        from .support.redis_servers import shared_server

        server = shared_server(flavour, request.config)

        async def make(max_size: int | None) -> MemoryBackend:
            return RedisBackend.from_url(server.url, max_size=max_size)

        async def advance(seconds: float) -> None:
            await asyncio.sleep(seconds)  # the server's clock cannot be faked

        return BackendHarness(flavour, make, advance, remote=True)

    return build


async def _cluster_harness(request: pytest.FixtureRequest) -> BackendHarness:
    """RedisBackend on the session's private Redis Cluster (3 masters, 3 replicas)."""
    from .support.cluster import shared_cluster

    cluster = shared_cluster(request.config)

    async def make(max_size: int | None) -> MemoryBackend:
        return RedisBackend.from_url(cluster.url, max_size=max_size)

    async def advance(seconds: float) -> None:
        await asyncio.sleep(seconds)

    return BackendHarness("cluster", make, advance, remote=True)


async def _stack_harness(request: pytest.FixtureRequest) -> BackendHarness:
    """RedisBackend on a private Redis Stack, every search through the Query Engine."""
    from .support.redis_stack import shared_stack

    server = shared_stack(request.config)

    async def make(max_size: int | None) -> MemoryBackend:
        return RedisBackend.from_url(server.url, max_size=max_size, search_engine="query-engine")

    async def advance(seconds: float) -> None:
        await asyncio.sleep(seconds)

    return BackendHarness("redis_stack", make, advance, remote=True)


async def _fallback_harness(request: pytest.FixtureRequest) -> BackendHarness:
    """FallbackBackend over a real Redis primary: what every ``redis_url=`` user gets."""
    redis = await _server_harness("redis")(request)

    async def make(max_size: int | None) -> MemoryBackend:
        return FallbackBackend(await redis.make(max_size), InMemoryBackend(max_size))

    return BackendHarness("fallback_redis", make, redis.advance, remote=True)


# The conformance suite runs once per entry. Real-server backends add their entries here
# (name -> async builder taking the pytest request, which may use other fixtures).
BACKEND_HARNESSES: dict[str, Callable[[pytest.FixtureRequest], Awaitable[BackendHarness]]] = {
    "in_memory": _in_memory_harness,
    "redis": _server_harness("redis"),
    "valkey": _server_harness("valkey"),
    "cluster": _cluster_harness,
    "fallback_redis": _fallback_harness,
    "redis_stack": _stack_harness,
}
# Marks of an entry's tests (`-m "not cluster"` skips the cluster for a quick local run).
HARNESS_MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "cluster": (pytest.mark.cluster,),
}


# Harnesses that need no server; every other entry is marked ``redis`` (``-m "not redis"``
# deselects it), whoever adds it, plus its own marks from HARNESS_MARKS.
SERVER_FREE_HARNESSES = frozenset({"in_memory"})


@pytest.fixture(
    params=[
        pytest.param(
            name,
            marks=(
                *(() if name in SERVER_FREE_HARNESSES else (pytest.mark.redis,)),
                *HARNESS_MARKS.get(name, ()),
            ),
        )
        for name in BACKEND_HARNESSES
    ]
)
async def memory_backend(request: pytest.FixtureRequest) -> AsyncIterator[BackendHarness]:
    """One backend kind of the conformance suite (in-memory, Redis, Valkey, ...)."""
    harness = await BACKEND_HARNESSES[request.param](request)
    yield harness
    for backend in harness.created:
        await backend.aclose()


_ns_counter = itertools.count()


@pytest.fixture
def make_memory(
    memory_backend: BackendHarness,
) -> Callable[..., Awaitable[MemoryPrimitive]]:
    """Build a MemoryPrimitive over a fresh backend of the current kind.

    Keyword ``max_size`` goes to the backend; everything else to ``MemoryPrimitive``. Each
    call gets its own namespace unless one is given, so tests never see each other's data.
    """

    async def make(max_size: int | None = 1000, **kwargs: Any) -> MemoryPrimitive:
        backend = await memory_backend.make(max_size)
        memory_backend.created.append(backend)
        kwargs.setdefault("namespace", f"t{next(_ns_counter)}")
        return MemoryPrimitive(backend=backend, **kwargs)

    return make
