"""``SyncMemory``: the blocking facade of a :class:`~tta_dev_primitives.memory.MemoryPrimitive`.

``memory.sync()`` returns one. Each method runs the primitive's own coroutine (the same
traced path as ``await memory.add(...)``; there is no second implementation) on a private
event loop that a daemon thread runs, and blocks until it is done::

    memory = MemoryPrimitive(redis_url="redis://localhost:6379/0")
    mem = memory.sync()
    mem.add("user:1", {"name": "Ada"})
    mem.get("user:1")                      # {'name': 'Ada'}
    mem.search("Ada", subtree=True)
    mem.close()                            # closes the primitive, stops the thread

Why a loop of its own: a blocking call cannot run a coroutine on the caller's loop while
blocking that loop, and ``asyncio.run`` per call cannot be used inside a running loop (a
notebook, an async web handler). The private loop makes a blocking call safe from any
thread, from inside a running loop (which waits while the call runs) and from many threads
at once (their calls run concurrently on the one loop, like concurrent tasks).

The primitive and all its scoped views share one such loop (started on first use), so the
LangGraph store and the LangChain retriever built on the same primitive run on it too: the
backend's in-process state (the search index, the LRU) is only ever touched by one thread.
Awaiting the same primitive on another loop in another thread *at the same time* is not
safe; from async code use ``await mem.arun(memory.search(...))`` to run on the facade's loop.

The caller's OpenTelemetry context travels with each call, so the operation's span is the
child of the caller's current span.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from .errors import MemoryBackendError
from .primitive import MemoryPrimitive

__all__ = ["SyncMemory"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class LoopThread:
    """An event loop run forever by one daemon thread; coroutines are submitted to it."""

    def __init__(self, name: str = "tta-memory-sync") -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._closed = False
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread (blocking there would deadlock)."""
        return threading.get_ident() == self.thread.ident

    def submit(self, coro: Coroutine[Any, Any, _R]) -> concurrent.futures.Future[_R]:
        """Start ``coro`` on the loop in the caller's context; its future.

        Raises:
            MemoryBackendError: The loop was stopped (``coro`` is closed, never run).
        """
        future: concurrent.futures.Future[_R] = concurrent.futures.Future()
        context = contextvars.copy_context()

        def start() -> None:
            if not future.set_running_or_notify_cancel():
                coro.close()
                return
            task = self.loop.create_task(coro, context=context)
            task.add_done_callback(finish)

        def finish(task: asyncio.Task[_R]) -> None:
            if task.cancelled():
                future.set_exception(
                    MemoryBackendError(
                        "closed: the SyncMemory was closed while this call ran",
                        backend="sync",
                        operation="sync",
                        transient=False,
                    )
                )
                return
            exc = task.exception()
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result())

        with self._lock:
            if self._closed:
                coro.close()
                raise _closed_error()
            self.loop.call_soon_threadsafe(start)
        return future

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the loop (pending calls are cancelled) and wait for the thread to end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_loop_thread():
            self.thread.join(timeout)


def _closed_error() -> MemoryBackendError:
    return MemoryBackendError(
        "closed: this SyncMemory was closed (close()); use a new MemoryPrimitive",
        backend="sync",
        operation="sync",
        transient=False,
    )


def _blocking(
    method: Callable[Concatenate[MemoryPrimitive, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[SyncMemory, _P], _R]:
    """A :class:`SyncMemory` method that runs the primitive's coroutine method ``method``."""
    name = method.__name__

    def call(self: SyncMemory, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return cast(_R, self.run(getattr(self._memory, name)(*args, **kwargs)))

    functools.update_wrapper(call, method)
    call.__doc__ = f"Blocking :meth:`MemoryPrimitive.{name}` (same arguments, same result)."
    return call


class SyncMemory:
    """Blocking calls to a :class:`MemoryPrimitive` (see the module docstring).

    Build it with ``memory.sync()``. Every operation of the primitive is here with the same
    arguments and result; each blocks the calling thread until done. Safe to share between
    threads. ``close()`` (or leaving a ``with`` block) closes the primitive and stops the
    background thread.
    """

    def __init__(self, memory: MemoryPrimitive, runner: LoopThread) -> None:
        self._memory = memory
        self._runner = runner

    @property
    def memory(self) -> MemoryPrimitive:
        """The primitive whose coroutines this facade runs."""
        return self._memory

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop every call runs on."""
        return self._runner.loop

    def run(self, awaitable: Awaitable[_R]) -> _R:
        """Run any coroutine of this memory on the facade's loop and wait for its result.

        Raises:
            RuntimeError: Called from the facade's own loop thread (it would deadlock).
            MemoryBackendError: The facade was closed.
        """
        coro = _as_coroutine(awaitable)
        if self._runner.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "SyncMemory called from its own event loop thread: await the primitive's "
                "coroutine instead"
            )
        return self._runner.submit(coro).result()

    async def arun(self, awaitable: Awaitable[_R]) -> _R:
        """Await a coroutine of this memory on the facade's loop (from any other loop), so
        async and blocking users of one primitive share one loop thread."""
        coro = _as_coroutine(awaitable)
        if self._runner.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self._runner.submit(coro))

    def scoped(self, *parts: str) -> SyncMemory:
        """The facade of ``memory.scoped(*parts)`` (same loop thread)."""
        return SyncMemory(self._memory.scoped(*parts), self._runner)

    def close(self) -> None:
        """Close the primitive (``aclose()``, on the facade's loop: a scoped view's closes
        nothing) and stop the loop thread shared by the primitive's facades.

        Idempotent. Later calls through any facade of the primitive raise
        :class:`MemoryBackendError` ("closed").
        """
        runner = self._runner
        if runner.closed:
            return
        if not runner.in_loop_thread():
            runner.submit(self._memory.aclose()).result()
        runner.stop()

    def __enter__(self) -> SyncMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncMemory(namespace={self._memory.namespace!r})"

    add = _blocking(MemoryPrimitive.add)
    get = _blocking(MemoryPrimitive.get)
    search = _blocking(MemoryPrimitive.search)
    delete = _blocking(MemoryPrimitive.delete)
    clear = _blocking(MemoryPrimitive.clear)
    keys = _blocking(MemoryPrimitive.keys)
    size = _blocking(MemoryPrimitive.size)
    get_record = _blocking(MemoryPrimitive.get_record)
    update = _blocking(MemoryPrimitive.update)
    list = _blocking(MemoryPrimitive.list)
    delete_where = _blocking(MemoryPrimitive.delete_where)
    namespaces = _blocking(MemoryPrimitive.namespaces)
    add_many = _blocking(MemoryPrimitive.add_many)
    get_many = _blocking(MemoryPrimitive.get_many)
    compact = _blocking(MemoryPrimitive.compact)
    import_ = _blocking(MemoryPrimitive.import_)
    wait_compactions = _blocking(MemoryPrimitive.wait_compactions)
    history = _blocking(MemoryPrimitive.history)
    forget = _blocking(MemoryPrimitive.forget)


BLOCKING_METHODS = tuple(
    name for name, f in vars(SyncMemory).items() if getattr(f, "__wrapped__", None) is not None
)
"""The primitive's coroutine methods that :class:`SyncMemory` offers as blocking calls."""


def _as_coroutine(awaitable: Awaitable[_R]) -> Coroutine[Any, Any, _R]:
    if asyncio.iscoroutine(awaitable):
        return awaitable

    async def wait() -> _R:
        return await awaitable

    return wait()
