"""Helpers to build memory keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .codec import check_json, validate_key

__all__ = ["create_memory_key"]


def _escape(part: str) -> str:
    # "%" first, so an escaped ":" can never be confused with a literal "%3A".
    return part.replace("%", "%25").replace(":", "%3A")


def create_memory_key(
    user_id: str, session_id: str, context: Mapping[str, Any] | None = None
) -> str:
    """Build a stable key ``"user:session"`` or ``"user:session:<hash of context>"``.

    ``%`` and ``:`` inside an id are escaped (``%25``, ``%3A``), so distinct ids always give
    distinct keys (``("a:b", "c")`` is ``"a%3Ab:c"``, ``("a", "b:c")`` is ``"a:b%3Ac"``);
    ids without those characters appear as they are.

    The hash is the first 16 hex digits of SHA-256 over the context as sorted-keys JSON, so
    the same context always gives the same key whatever its key order.

    Args:
        user_id: The user's id (non-empty str).
        session_id: The session's id (non-empty str).
        context: Optional JSON-able mapping that further scopes the key.

    Raises:
        TypeError: An id is not a str, or the context is not a JSON mapping.
        ValueError: An id is empty.
    """
    validate_key(user_id, "user_id")
    validate_key(session_id, "session_id")
    key = f"{_escape(user_id)}:{_escape(session_id)}"
    if context is None:
        return key
    if not isinstance(context, Mapping):
        raise TypeError(f"context must be a mapping or None, got {type(context).__name__}")
    context = dict(context)
    check_json(context, "context")
    text = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key}:{digest}"
