"""The state and routing of :class:`~.FallbackBackend`: which backend serves, the outage's
start, the background probe and the recovery; ``backend.py`` builds the operations on it."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace

from ...errors import MemoryBackendError
from ...records import Entry, Namespace
from ..base import BackendInfo, MemoryBackend, PingableBackend, SyncMemoryBackend
from .journal import Journal, RefusedOperation, kind
from .replay import Replayer

# Users reach the package's names through the package; the rest is its siblings' plumbing.
__all__: list[str] = []

logger = logging.getLogger(__name__.rpartition(".")[0])  # the package: one logger

_P = ParamSpec("_P")
_T = TypeVar("_T")


def ignore(*args: Any, **kwargs: Any) -> None:
    """A write's journaling or acceptance step that has nothing to do."""


class Router:
    """Routes each operation to the primary while it answers, to the secondary (journaling
    writes) during an outage, and replays the journal when a probe finds the primary back.

    See :class:`~.FallbackBackend` (this class's operations) for the arguments.
    """

    def __init__(
        self,
        primary: MemoryBackend,
        secondary: MemoryBackend,
        *,
        probe_interval: float = 5.0,
        on_activation: Callable[[MemoryBackendError], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(probe_interval, bool) or not isinstance(probe_interval, int | float):
            raise TypeError("probe_interval must be a number of seconds")
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be > 0, got {probe_interval!r}")
        self.primary = primary
        self.secondary = secondary
        self.probe_interval = float(probe_interval)
        self.fallback_activations = 0
        self._on_activation = on_activation
        self._clock = clock
        self._degraded = False
        self._degraded_info: BackendInfo | None = None
        self._journal = Journal(clock)
        self._replayer = Replayer(primary, self._journal, clock)
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._outage_started = 0.0
        self._closed = False
        # The mirror write: synchronous when the secondary can (the in-memory backend's
        # put_now), to keep it off the write's latency.
        self._mirror_now: Callable[[Namespace, Entry], int] | None = (
            secondary.put_now if isinstance(secondary, SyncMemoryBackend) else None
        )

    # -- state ----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while the secondary serves."""
        return self._degraded

    @property
    def pending(self) -> int:
        """Journaled operations the primary has not accepted yet (refused ones included)."""
        return len(self._journal.entries) + len(self._journal.refused)

    @property
    def replay_refusals(self) -> int:
        """How many journaled operations the primary refused on replay (each counted once)."""
        return self._replayer.replay_refusals

    @property
    def replay_refused(self) -> builtins.list[RefusedOperation]:
        """The journaled operations the primary refused on replay, oldest first.

        They are kept (and served by ``get``) until the primary accepts them: see
        :meth:`retry_refused`, or write the key again.
        """
        return self._journal.refused_operations()

    def info(self) -> BackendInfo:
        """The active backend's info; ``degraded=True`` while the secondary serves."""
        if self._degraded:
            info = self._degraded_info
            if info is None:
                info = self._degraded_info = dataclasses.replace(
                    self.secondary.info(), degraded=True
                )
            return info
        return self.primary.info()

    def _activate(self, exc: MemoryBackendError) -> None:
        if not exc.transient:
            # The primary answered and refused this operation: an outage would not explain
            # it and memory cannot fix it, so the caller hears of it.
            raise exc
        if self._degraded:
            return
        self._degraded = True
        self._degraded_info = None
        self._outage_started = self._clock()
        self.fallback_activations += 1
        logger.warning(
            "memory backend %r failed (%s); serving from %r and journaling writes until it "
            "answers again (probing every %gs)",
            self.primary.info().name,
            exc,
            self.secondary.info().name,
            self.probe_interval,
        )
        if self._on_activation is not None:
            try:
                self._on_activation(exc)
            except Exception:
                logger.exception("on_activation callback failed")
        self._ensure_probe()

    def _ensure_probe(self) -> None:
        """Run the background probe in the current event loop (a task dies with its loop, and
        scripts and notebooks may run each call in a new one)."""
        task = self._probe_task
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            # An empty context: the probe must not record into the span that started it.
            self._probe_task = loop.create_task(self._probe_loop(), context=contextvars.Context())

    # -- recovery -------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while (self._degraded or self._journal.refused) and not self._closed:
            await asyncio.sleep(self.probe_interval)
            try:
                if await self.recover() and not self._journal.refused:
                    return
            except Exception:  # never let the probe die: the backend would stay degraded
                logger.exception("probing the primary %r failed", self.primary.info().name)

    async def _probe(self) -> None:
        if isinstance(self.primary, PingableBackend):
            await self.primary.ping()
        else:
            await self.primary.size(("__probe__",))

    def _loop_lock(self) -> asyncio.Lock:
        # asyncio.Lock binds to the event loop it first waits in: one lock per loop.
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _switch_back(self) -> None:
        self._degraded = False

    async def recover(self) -> bool:
        """Probe the primary now; if it answers, replay the journal and switch back to it.

        The background probe calls this every ``probe_interval``; call it yourself to
        recover sooner (or in tests). Operations the primary refuses on replay stay
        journaled (see :attr:`replay_refused`) and are retried here too. Returns True when
        the primary is serving.
        """
        refused = self._journal.refused
        async with self._loop_lock():
            if not self._degraded and not refused:
                return True
            try:
                await self._probe()
                if self._degraded:
                    refused_before = len(refused)
                    replayed = await self._replayer.drain(self._switch_back)
                    if len(refused) > refused_before:
                        self._report_refused(len(refused) - refused_before)
                    logger.warning(
                        "memory backend %r is back after %.1fs; replayed %d journaled operations",
                        self.primary.info().name,
                        self._clock() - self._outage_started,
                        replayed,
                    )
                elif refused:
                    await self._replayer.retry_refused()
            except MemoryBackendError as exc:
                logger.debug("primary still failing (%s); %d operations pending", exc, self.pending)
                return not self._degraded
            return True

    async def retry_refused(self) -> int:
        """Replay the operations the primary refused, now; return how many it still refuses.

        Raises:
            MemoryBackendError: The primary is unavailable (they stay journaled).
        """
        async with self._loop_lock():
            if self._degraded:
                raise MemoryBackendError(
                    "the primary is unavailable; refused operations stay journaled",
                    backend=self.primary.info().name,
                    operation="retry_refused",
                )
            await self._replayer.retry_refused(stop_at_refusal=False)
            return len(self._journal.refused)

    def _report_refused(self, new: int) -> None:
        refused = self._journal.refused
        if not refused:
            return
        first_key, (first_op, first_exc) = next(iter(refused.items()))
        logger.error(
            "the primary %r refused %d journaled operation(s) (%d new), e.g. %s of %r: %s; "
            "they stay journaled, are still served from here, and are retried every %gs "
            "(FallbackBackend.replay_refused, retry_refused())",
            self.primary.info().name,
            len(refused),
            new,
            kind(first_op),
            first_key[1],
            first_exc,
            self.probe_interval,
        )
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "memory.replay.refused",
                {"memory.replay.refused.count": len(refused), "error.type": str(first_exc)},
            )
        self._ensure_probe()

    async def aclose(self) -> None:
        """Stop probing, try once more to replay the journal, then close both backends."""
        if self._closed:
            return
        self._closed = True
        task = self._probe_task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if (self._degraded and self._journal.entries) or self._journal.refused:
            await self.recover()
            if self.pending:
                logger.error(
                    "closing with %d journaled memory operations the primary %r never "
                    "accepted (%d of them refused)",
                    self.pending,
                    self.primary.info().name,
                    len(self._journal.refused),
                )
        try:
            await self.primary.aclose()
        finally:
            await self.secondary.aclose()

    # -- routing --------------------------------------------------------------------------------

    async def _read(
        self,
        primary: Callable[_P, Awaitable[_T]],
        secondary: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Ask the primary while healthy; the secondary during an outage (or once it starts)."""
        if self._closed:
            raise self._closed_error()
        if not self._degraded:
            try:
                return await primary(*args, **kwargs)
            except MemoryBackendError as exc:
                self._activate(exc)
        else:
            self._ensure_probe()
        return await secondary(*args, **kwargs)

    async def _write(
        self,
        primary: Callable[_P, Awaitable[_T]],
        secondary: Callable[_P, Awaitable[_T]],
        journal: Callable[_P, None],
        accepted: Callable[_P, None],
        mirror_now: Callable[_P, _T] | None,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Write to the primary and mirror to the secondary while healthy; during an outage,
        journal the write for replay and serve it from the secondary. ``mirror_now``, the
        secondary's synchronous form when it has one, replaces it either way (no coroutine
        for the mirror write on the hot path)."""
        if self._closed:
            raise self._closed_error()
        replayer = self._replayer
        hold = replayer.hold
        if hold is not None:  # a replay's last stretch, or a retry of refused operations
            await hold.wait()
        if not self._degraded:
            replayer.write_started()
            try:
                result = await primary(*args, **kwargs)
            except MemoryBackendError as exc:
                self._activate(exc)
            else:
                if self._journal.refused:
                    accepted(*args, **kwargs)
                if mirror_now is not None:
                    mirror_now(*args, **kwargs)
                else:
                    await secondary(*args, **kwargs)
                return result
            finally:
                replayer.write_done()
        else:
            self._ensure_probe()
        if mirror_now is not None:
            # The mirror's synchronous write: no recovery can run between it and the
            # journal's, so it goes first, and a write it refuses (vectors of another
            # embedder than the namespace's) is never journaled for the primary.
            result = mirror_now(*args, **kwargs)
            journal(*args, **kwargs)
            return result
        # Journal before any await, so a recovery finishing meanwhile still replays it.
        journal(*args, **kwargs)
        return await secondary(*args, **kwargs)

    def _closed_error(self) -> MemoryBackendError:
        return MemoryBackendError(
            "closed: this FallbackBackend was closed (aclose()); build a new one",
            backend=self.primary.info().name,
            transient=False,
        )

    def _mirror_one(self, namespace: Namespace, entry: Entry) -> int:
        mirror = self._mirror_now
        assert mirror is not None
        return mirror(namespace, entry)

    def _mirror_many(self, namespace: Namespace, entries: Sequence[Entry]) -> int:
        mirror = self._mirror_now
        assert mirror is not None
        evicted = 0
        for i, entry in enumerate(entries):
            try:
                evicted += mirror(namespace, entry)
            except Exception:
                if self._degraded:  # journal the ones the mirror holds
                    self._journal.put_many(namespace, entries[:i])
                raise
        return evicted
