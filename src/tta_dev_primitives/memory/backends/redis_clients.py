"""The old import path of :mod:`.redis.clients`, kept working."""

from __future__ import annotations

from .redis.clients import (
    ClientPerLoop,
    ServerCheck,
    fast_packing,
)

__all__ = [
    "ClientPerLoop",
    "ServerCheck",
    "fast_packing",
]
