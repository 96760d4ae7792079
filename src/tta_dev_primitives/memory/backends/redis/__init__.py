"""The Redis backend: :class:`RedisBackend` (``backend``) and the modules it is made of."""

from __future__ import annotations

from .backend import RedisBackend
from .backend import namespace_tag as namespace_tag

__all__ = ["RedisBackend"]
