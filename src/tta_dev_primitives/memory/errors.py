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
        transient: True when the backend is unavailable (cannot connect, timed out, failing
            over) and the same operation may succeed later, which is what makes a
            ``FallbackBackend`` serve from memory. False when the backend answered and refused
            this operation (e.g. a permission or script error): retrying cannot help, so it
            is raised to the caller even with a fallback.
    """

    def __init__(
        self, message: str, *, backend: str = "", operation: str = "", transient: bool = True
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
        self.transient = transient
