"""Fixtures of LangGraph's store tests (``test_store.py``): ``InMemoryStore`` there builds
our ``MemoryStore`` on the backend of the running parametrization."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langgraph import MemoryStore

from tests.support.redis_servers import shared_server

_current: dict[str, str | None] = {"kind": None, "url": None}
_created: list[MemoryPrimitive] = []
_roots = itertools.count()


def InMemoryStore(*, index: Any = None, ttl: Any = None) -> MemoryStore:
    """A ``MemoryStore`` on the current backend, in a root namespace of its own."""
    kind, url = _current["kind"], _current["url"]
    namespace = f"langgraph-test-{next(_roots)}"
    if kind == "in_memory":
        memory = MemoryPrimitive(namespace=namespace, max_size=None)
    elif kind == "redis":
        memory = MemoryPrimitive(redis_url=url, fallback=False, namespace=namespace, max_size=None)
    elif kind == "fallback_redis":
        memory = MemoryPrimitive(redis_url=url, namespace=namespace, max_size=None)
    else:
        raise RuntimeError("LangGraph's store tests run with the store_backend fixture")
    _created.append(memory)
    return MemoryStore(memory, index=index, ttl=ttl)


@pytest.fixture(
    params=[
        "in_memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("fallback_redis", marks=pytest.mark.redis),
    ]
)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which backend ``InMemoryStore()`` builds on; closes every store's memory after."""
    if request.param != "in_memory":
        _current["url"] = shared_server("redis", request.config).url
    _current["kind"] = request.param
    try:
        yield request.param
    finally:
        _current["kind"] = None
        while _created:
            _created.pop().sync().close()
