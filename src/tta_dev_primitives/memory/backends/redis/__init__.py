"""The Redis backend: :class:`RedisBackend` and the modules it is made of.

* ``backend``: :class:`RedisBackend`, the operations.
* ``layout``: key names (a namespace's keys, :func:`namespace_tag`).
* ``wire``: records encoded for the scripts and the replies decoded (the only place that
  finds a garbled record).
* ``errors``: the one map from redis-py's exceptions to ``MemoryBackendError``.
* ``server``: the client of the running loop, deadlines, the server check, script calls.
* ``sync``: this process's indexes, loaded and caught up from each namespace's change log.
* ``index``: those indexes and their memory budget.
* ``query_engine``, ``ft``: search through the Redis Query Engine (``FT.*``), its commands.
* ``scripts`` (with ``lua/``), ``cluster``, ``clients``, ``upgrade`` (the 0.1.0 layout).

Importing this package imports ``redis``: the zero-setup path never does (see
``memory/backends/__init__.py``).
"""

from __future__ import annotations

from .backend import RedisBackend
from .layout import namespace_tag as namespace_tag

__all__ = ["RedisBackend"]
