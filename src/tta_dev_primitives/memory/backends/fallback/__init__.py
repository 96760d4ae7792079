"""``FallbackBackend``: keep serving, and lose no write, while the primary backend is down.

Usage::

    backend = FallbackBackend(RedisBackend.from_url(url), InMemoryBackend(1000))

(``MemoryPrimitive(redis_url=url)`` builds exactly this.)

What it guarantees:

* **Healthy** (the primary answers): every operation goes to the primary. Writes and deletes
  also go to the secondary, which is a bounded mirror (its own ``max_size`` per namespace) of
  what this process wrote recently. Reads never consult the mirror.
* **Outage** (an operation of the primary raised :class:`MemoryBackendError`): that operation
  and every later one is served by the secondary. One warning is logged per outage, and
  :attr:`FallbackBackend.fallback_activations` counts the outages (``on_activation`` is called
  at each). Every write, delete, update, ``delete_where`` and clear is journaled in the order
  it was acknowledged, and replayed in that order. Entries are merged only where the merge
  is equivalent: a later operation on a key replaces (or, an update, is folded into) the
  key's earlier entry unless a ``delete_where`` or clear of its namespace came between them
  (which may depend on the record as the earlier operation left it); a clear drops the
  earlier operations of its namespace. Reads see the mirror:
  what this process wrote recently (before or during the outage) is found; a record written
  long ago, evicted from the mirror, or written by another process, is not (``get`` misses,
  ``search``/``keys``/``size`` cover the mirror only). ``delete`` reports what the mirror
  knew.
* **Recovery**: a background task probes the primary at most every ``probe_interval``
  seconds. When it answers, the journal is replayed to it in order (an operation journaled
  during the replay is replayed too); only when the journal is empty does the primary serve
  again. A replayed record keeps its absolute expiry; a record that expired during the outage
  is not replayed, its key is deleted on the primary instead (as if the write had reached it
  and expired there). After recovery every read is the primary's again, so it sees both what
  it kept from before the outage and every write of the outage, last write winning per key.
* No write this backend acknowledged is lost while the process lives: if the primary fails
  mid-replay the rest of the journal stays for the next probe; a journaled operation the
  primary refuses is kept (:class:`RefusedOperation`), still served by ``get``, and retried;
  :meth:`FallbackBackend.aclose` makes one last attempt and logs an error with the count of
  operations the primary never accepted. (Writes the primary itself acknowledged are as
  durable as its persistence.)
"""

from __future__ import annotations

from .backend import FallbackBackend
from .journal import RefusedOperation

# The modules, one job each: journal.py (the outage journal and refused operations),
# replay.py (replaying it to the primary), routing.py (which backend serves, probe and
# recovery), backend.py (the operations).

__all__ = ["FallbackBackend", "RefusedOperation"]
