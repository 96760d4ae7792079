"""MemoryPrimitive's constructor contract and its async context manager."""

from __future__ import annotations

import pytest

from tta_dev_primitives import MemoryBackendError, MemoryPrimitive


def test_primitive_constructor_contract() -> None:
    """backend= with max_size= or redis_url= is refused; namespaces are validated."""
    from tta_dev_primitives import InMemoryBackend

    with pytest.raises(ValueError, match="max_size"):
        MemoryPrimitive(backend=InMemoryBackend(), max_size=10)
    with pytest.raises(ValueError, match="redis_url"):
        MemoryPrimitive(backend=InMemoryBackend(), redis_url="redis://localhost")
    with pytest.raises(ValueError, match="namespace"):
        MemoryPrimitive(namespace="")
    with pytest.raises(TypeError, match="namespace"):
        MemoryPrimitive(namespace=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend"):
        MemoryPrimitive(backend=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_ttl"):
        MemoryPrimitive(default_ttl=0)
    with pytest.raises(ValueError, match="scoped"):
        MemoryPrimitive().scoped()
    memory = MemoryPrimitive(namespace=("app", "v1"))
    assert memory.namespace == ("app", "v1")
    info = memory.get_backend_info()
    assert info == {
        "backend": "in_memory",
        "namespace": "app/v1",
        "persistent": False,
        "degraded": False,
    }
    assert memory.is_using_redis() is False


async def test_primitive_async_context_manager_closes_owned_backend() -> None:
    """async with closes a backend the primitive built; a scoped view closes nothing."""
    async with MemoryPrimitive() as memory:
        view = memory.scoped("x")
        await view.add("k", 1)
        await view.aclose()
        assert await view.get("k") == 1
    with pytest.raises(MemoryBackendError, match="closed"):
        await memory.size()
