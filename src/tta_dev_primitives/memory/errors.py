"""Exceptions raised by the memory layer."""

from __future__ import annotations

__all__ = ["MemoryBackendError"]


class MemoryBackendError(Exception):
    """A memory backend could not serve an operation.

    Raised instead of any client library's exception (e.g. ``redis.exceptions.*``), which is
    kept as ``__cause__``.

    Attributes:
        backend: Name of the backend that failed (``"redis"``, ...).
        operation: The operation that failed (``"add"``, ``"get"``, ...), when known.
    """

    def __init__(self, message: str, *, backend: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
