"""The ``next_cursor`` of :meth:`MemoryPrimitive.list`: order, horizon and the last seq."""

from __future__ import annotations

import re

__all__ = ["decode_cursor", "encode_cursor"]

_CURSOR = re.compile(r"(n|o)([0-9]{1,19})\.([0-9]{1,19})")


def encode_cursor(order: str, horizon: int, after: int) -> str:
    """The cursor continuing a walk in ``order`` after seq ``after`` (below ``horizon``)."""
    return f"{order[0]}{horizon}.{after}"


def decode_cursor(cursor: object, order: str) -> tuple[int, int]:
    """(horizon, after) of a ``next_cursor`` of a walk in ``order``."""
    if not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str or None, got {type(cursor).__name__}")
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise ValueError(f"cursor {cursor[:40]!r} is not a next_cursor of list()")
    if found.group(1) != order[0]:
        raise ValueError(
            f"cursor {cursor!r} continues a walk in the other order; pass order= as before"
        )
    return int(found.group(2)), int(found.group(3))
