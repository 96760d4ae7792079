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


def test_search_of_several_words_over_a_value_holding_a_nul() -> None:
    """A stored string with a NUL character is searched like any other (it raised
    IndexError when the substring rule checked it)."""
    store = InMemoryStore()
    store.add("b", "memory zz")
    store.add("a", "agent\0x memory zz")
    store.add("c", "zz memory")
    assert {hit.key for hit in store.search("memory zz")} == {"a", "b", "c"}
    assert [hit.key for hit in store.search("memory zz")][2] == "c"


def test_expiry_survives_rewrites_and_updates() -> None:
    """A rewrite without a TTL makes a record permanent; one with a TTL expires it then."""
    clock = FakeClock()
    store = InMemoryStore(clock=clock)
    store.add("k", "v1", ttl=5)
    store.add("k", "v2")
    clock.advance(10)
    assert store.get("k") == "v2"
    store.add("k", "v3", ttl=5)
    clock.advance(4)
    assert "k" in store
    assert store.get("k") == "v3"
    clock.advance(2)
    assert "k" not in store
    assert store.get("k") is None
    assert store.size() == 0
