"""Replaying the outage journal of :class:`~.FallbackBackend` to the primary, in order.

The :class:`Replayer` also owns the gate between replays and new writes: a replay's last
stretch, and a retry of refused operations, hold new writes back (they wait on ``hold``);
a retry also waits until the writes already on their way to the primary are done.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from ...errors import MemoryBackendError
from ..base import HistoryBackend, MemoryBackend
from .journal import (
    Delete,
    DeleteWhere,
    ForgetHistory,
    Journal,
    Journaled,
    Op,
    Put,
    Restore,
    Update,
    VersionedPut,
    VersionedUpdate,
    with_ttl,
)

# Users reach the package's names through the package; the rest is its siblings' plumbing.
__all__: list[str] = []

logger = logging.getLogger(__name__.rpartition(".")[0])  # the package: one logger

REPLAY_BATCH = 1000  # journaled writes of one namespace replayed per put_many


def history_of(backend: MemoryBackend) -> HistoryBackend:
    """``backend`` as a :class:`HistoryBackend`, or TypeError if it keeps no history."""
    if not isinstance(backend, HistoryBackend):
        raise TypeError(f"backend {backend.info().name!r} keeps no history")
    return backend


class Replayer:
    """Replays ``journal`` to ``primary``.

    Attributes:
        hold: Set while a replay holds new writes back (they wait on it).
        writing: Writes on their way to the primary (see :meth:`write_started`).
        replay_refusals: Journaled operations the primary refused (each counted once).
    """

    def __init__(self, primary: MemoryBackend, journal: Journal, clock: Callable[[], float]):
        self.primary = primary
        self.journal = journal
        self._clock = clock
        self.hold: asyncio.Event | None = None
        self.writing = 0
        # How many journaled operations the primary refused on replay (each counted once).
        self.replay_refusals = 0
        # The event a retry waits on until no write is on its way to the primary.
        self._idle: asyncio.Event | None = None

    def write_started(self) -> None:
        self.writing += 1

    def write_done(self) -> None:
        self.writing -= 1
        idle = self._idle
        if idle is not None and not self.writing:
            idle.set()

    # -- one operation --------------------------------------------------------------------

    async def replay(self, op: Op) -> None:
        """Apply one journaled operation to the primary (keeping absolute expiries)."""
        primary = self.primary
        if isinstance(op, Put):
            entry = op.entry
            if op.deadline is not None:
                left = op.deadline - self._clock()
                if left <= 0:
                    # Expired during the outage: as if it had reached the primary and expired.
                    await primary.delete(op.namespace, entry.key)
                    return
                entry = with_ttl(entry, left)
            await primary.put(op.namespace, entry)
        elif isinstance(op, Delete):
            await primary.delete(op.namespace, op.key)
        elif isinstance(op, Update):
            change = op.change
            if change.set_ttl and op.deadline is not None:
                left = op.deadline - self._clock()
                if left <= 0:
                    await primary.delete(op.namespace, op.key)
                    return
                change = change._replace(ttl=left)
            await primary.update(op.namespace, op.key, change)
        elif isinstance(op, DeleteWhere):
            await primary.delete_where(op.namespace, op.filter)
        elif isinstance(op, VersionedPut | VersionedUpdate | ForgetHistory | Restore):
            await self._replay_history(op)
        else:
            await primary.clear(op.namespace)

    async def _replay_history(
        self, op: VersionedPut | VersionedUpdate | ForgetHistory | Restore
    ) -> None:
        primary = history_of(self.primary)
        if isinstance(op, Restore):
            await primary.restore(op.namespace, op.versions, op.keep)
            return
        if isinstance(op, ForgetHistory):
            left = None if op.deadline is None else max(op.deadline - self._clock(), 1e-3)
            await primary.forget(op.namespace, op.keys, left)
            return
        left = None if op.deadline is None else op.deadline - self._clock()
        if isinstance(op, VersionedUpdate):
            change = op.change
            if left is not None:
                if left <= 0:
                    await self.primary.delete(op.namespace, op.key)
                    return
                change = change._replace(ttl=left)
            await primary.update_versioned(op.namespace, op.key, change, op.keep)
            return
        entry = op.entry
        if left is not None:
            if left <= 0:  # expired during the outage: what it superseded still goes
                for key in (entry.key, *op.supersedes):
                    await self.primary.delete(op.namespace, key)
                return
            entry = with_ttl(entry, left)
        await primary.put_versioned(op.namespace, entry, op.keep, op.supersedes)

    async def replay_one(self, n: int, entry: Journaled) -> bool:
        """Replay journal entry ``n``; False if the primary refused it (kept aside).

        Raises:
            MemoryBackendError: The primary is unavailable (the operation stays journaled).
        """
        try:
            await self.replay(entry[1])
        except MemoryBackendError as exc:
            if exc.transient:
                raise
            if self.journal.refuse(n, entry, exc):
                self.replay_refusals += 1
            return False
        # A newer operation on the key may have replaced this one meanwhile.
        if self.journal.entries.get(n) is entry:
            self.journal.remove(n)
        return True

    # -- the journal ----------------------------------------------------------------------

    async def replay_some(self, limit: int) -> int:
        """Replay the journal's first operation, or its first run of writes to one namespace
        (up to ``limit`` and ``REPLAY_BATCH``) as one ``put_many``; return how many.

        Raises:
            MemoryBackendError: The primary is unavailable (the operations stay journaled).
        """
        journal = self.journal.entries
        head = list(itertools.islice(journal.items(), max(1, min(limit, REPLAY_BATCH))))
        first = head[0][1][1]
        now = self._clock()
        run: list[tuple[int, Journaled, Put]] = []
        if isinstance(first, Put):
            for n, entry in head:
                op = entry[1]
                if not isinstance(op, Put) or op.namespace != first.namespace:
                    break
                if op.deadline is not None and op.deadline <= now:
                    break  # expired: replayed alone, as a delete
                run.append((n, entry, op))
        if len(run) < 2:
            await self.replay_one(*head[0])
            return 1
        entries = [
            with_ttl(op.entry, None if op.deadline is None else op.deadline - now)
            for _, _, op in run
        ]
        try:
            await self.primary.put_many(first.namespace, entries)
        except MemoryBackendError as exc:
            if exc.transient:
                raise
            for n, entry, _ in run:  # refused as a batch: find out which, one at a time
                if journal.get(n) is entry:
                    await self.replay_one(n, entry)
            return len(run)
        for n, entry, _ in run:
            if journal.get(n) is entry:  # not replaced by a newer operation meanwhile
                self.journal.remove(n)
        return len(run)

    async def drain(self, switch_back: Callable[[], None]) -> int:
        """Replay the whole journal, then call ``switch_back``; return how many were replayed.

        What was journaled when the replay began is replayed while writes go on; what the
        writes of that stretch added is then replayed with new writes held back (they wait
        on ``hold``), so a tight write loop cannot postpone the switch back for ever. Runs of
        writes go as batches, so the replay outpaces the writes it races.

        Raises:
            MemoryBackendError: The primary is unavailable (the rest stays journaled).
        """
        journal = self.journal.entries
        replayed = 0
        budget = len(journal)
        while journal and budget > 0:
            done = await self.replay_some(budget)
            budget -= done
            replayed += done
        if journal:
            hold = self.hold = asyncio.Event()
            try:
                while journal:
                    replayed += await self.replay_some(len(journal))
                switch_back()
            finally:
                self.hold = None
                hold.set()
        switch_back()
        return replayed

    async def retry_refused(self, stop_at_refusal: bool = True) -> None:
        """Replay the refused operations again.

        New writes are held back and writes already on their way to the primary are waited
        for, so an older refused write can never land after a newer one of its key. A probe
        stops at the first operation still refused (moving it to the back): a server that is
        still full costs one round trip.

        Raises:
            MemoryBackendError: The primary is unavailable.
        """
        refused = self.journal.refused
        if not refused:
            return
        hold = self.hold = asyncio.Event()
        try:
            if self.writing:
                idle = self._idle = asyncio.Event()
                await idle.wait()
            for jkey in list(refused):
                found = refused.get(jkey)
                if found is None:
                    continue
                op = found[0]
                try:
                    await self.replay(op)
                except MemoryBackendError as exc:
                    if exc.transient:
                        raise
                    refused[jkey] = (op, exc)
                    if stop_at_refusal:
                        refused.move_to_end(jkey)
                        break
                    continue
                del refused[jkey]
        finally:
            self._idle = None
            self.hold = None
            hold.set()
        if not refused:
            logger.warning(
                "the primary %r accepted every journaled operation it had refused",
                self.primary.info().name,
            )
