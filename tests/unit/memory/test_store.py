"""The synchronous InMemoryStore: LRU order, TTL, search, validation, evictions."""

from __future__ import annotations

import pytest

from tta_dev_primitives import InMemoryStore
from tta_dev_primitives.memory.records import Entry

from tests.support.clock import FakeClock


def test_in_memory_store_sync_api() -> None:
    """The plain data structure: LRU order, TTL with an injected clock, search, dunders."""
    clock = FakeClock()
    store = InMemoryStore(max_size=2, clock=clock)
    store.add("a", "apple pie")
    store.add("b", {"text": "banana bread"}, ttl=1.0)
    assert store.get("a") == "apple pie"
    assert store.keys() == ["b", "a"]
    assert [h.key for h in store.search("bread")] == ["b"]
    assert store.keys() == ["b", "a"]  # search does not refresh
    assert "b" in store
    assert len(store) == 2
    assert list(store) == ["b", "a"]
    clock.advance(1.0)
    assert "b" not in store
    assert store.get("b", "gone") == "gone"
    assert store.size() == 1
    store.add("c", "cherry")
    store.add("d", "date")
    assert store.keys() == ["c", "d"]
    assert store.delete("c") is True
    assert store.delete("c") is False
    assert store.clear() == 1
    assert store.size() == 0


def test_in_memory_store_validates() -> None:
    """Bad arguments raise errors naming them."""
    with pytest.raises(ValueError, match="max_size"):
        InMemoryStore(max_size=0)
    with pytest.raises(TypeError, match="max_size"):
        InMemoryStore(max_size="10")  # type: ignore[arg-type]
    store = InMemoryStore(max_value_bytes=10)
    with pytest.raises(ValueError, match="max_value_bytes"):
        store.add("k", "x" * 20)
    with pytest.raises(ValueError, match="limit"):
        store.search("x", limit=0)
    assert store.size() == 0


def test_store_put_reports_evictions() -> None:
    """put() returns how many records the LRU bound evicted."""
    store = InMemoryStore(max_size=1)
    assert store.put(Entry("a", '"v"')) == 0
    assert store.put(Entry("b", '"v"')) == 1
