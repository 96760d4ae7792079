"""create_memory_key: the key helper."""

from __future__ import annotations

import itertools

import pytest

from tta_dev_primitives import create_memory_key


def test_create_memory_key() -> None:
    """user:session, plus a stable short hash of the context independent of key order."""
    assert create_memory_key("u1", "s1") == "u1:s1"
    a = create_memory_key("u1", "s1", {"task": "x", "n": 1})
    b = create_memory_key("u1", "s1", {"n": 1, "task": "x"})
    c = create_memory_key("u1", "s1", {"n": 2, "task": "x"})
    assert a == b != c
    assert a.startswith("u1:s1:")
    assert len(a.rsplit(":", 1)[1]) == 16
    with pytest.raises(ValueError, match="user_id"):
        create_memory_key("", "s")
    with pytest.raises(TypeError, match="session_id"):
        create_memory_key("u", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context"):
        create_memory_key("u", "s", {"x": {1, 2}})


def test_create_memory_key_is_injective() -> None:
    """Distinct ids give distinct keys whatever ":" and "%" they hold; plain ids are unchanged."""
    assert create_memory_key("u1", "s1") == "u1:s1"
    assert create_memory_key("a:b", "c") != create_memory_key("a", "b:c")
    assert create_memory_key("a:b", "c") == "a%3Ab:c"
    assert create_memory_key("a", "b:c") == "a:b%3Ac"
    parts = ["a", "b", ":", "%", "%3A", "a:b", "a%3Ab", "b:c", "x:"]
    keys = {create_memory_key(u, s) for u, s in itertools.product(parts, repeat=2)}
    assert len(keys) == len(parts) ** 2
    ctx = {"task": 1}
    with_ctx = {create_memory_key(u, s, ctx) for u, s in itertools.product(parts, repeat=2)}
    assert len(with_ctx) == len(parts) ** 2
    assert not keys & with_ctx
