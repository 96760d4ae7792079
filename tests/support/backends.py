"""What the conformance suite runs on: one kind of backend, built fresh and given time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tta_dev_primitives import MemoryBackend


@dataclass
class BackendHarness:
    """How the conformance suite gets backends of one kind and moves their time forward.

    Attributes:
        name: The backend kind (the test id).
        make: Builds a fresh backend with the given ``max_size``.
        advance: Lets ``seconds`` pass for TTL purposes (a fake clock where the backend
            allows one; real sleeping otherwise).
        remote: Whether the backend talks to a server.
    """

    name: str
    make: Callable[[int | None], Awaitable[MemoryBackend]]
    advance: Callable[[float], Awaitable[None]]
    remote: bool = False
    created: list[MemoryBackend] = field(default_factory=list)
