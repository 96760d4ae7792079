"""Checked by mypy in ``make test``: SyncMemory's blocking methods keep the primitive's
signatures and results, without the coroutine."""

from __future__ import annotations

from typing import Any, assert_type

from tta_dev_primitives import MemoryPage, MemoryPrimitive, MemoryRecord, SearchHit, SyncMemory


def check(memory: MemoryPrimitive) -> None:
    mem = memory.sync()
    assert_type(mem, SyncMemory)
    assert_type(mem.add("k", {"v": 1}, ttl=5.0, metadata={"m": 1}), None)
    assert_type(mem.get("k"), Any)
    assert_type(mem.search("q", limit=3, subtree=True), list[SearchHit])
    assert_type(mem.get_record("k"), MemoryRecord | None)
    assert_type(mem.list(subtree=True), MemoryPage)
    assert_type(mem.namespaces(("a", "*"), suffix=("b",), max_depth=2), list[tuple[str, ...]])
    assert_type(mem.size(), int)
    assert_type(mem.scoped("x"), SyncMemory)
    mem.search("q", limit="3")  # type: ignore[arg-type]
    mem.close()
