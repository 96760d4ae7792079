"""The old import path of :mod:`.redis.scripts`, kept working."""

from __future__ import annotations

from .redis import scripts as _scripts
from .redis.scripts import *  # noqa: F403  (the same names, listed once there)

__all__ = list(_scripts.__all__)
