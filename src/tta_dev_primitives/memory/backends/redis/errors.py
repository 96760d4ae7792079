"""The one exception map of the Redis backend: every client failure it catches becomes a
:class:`~tta_dev_primitives.memory.errors.MemoryBackendError` here (httpx's
``map_httpcore_exceptions`` is the model), with ``transient`` telling an outage (a fallback
may serve) from a refusal; no ``redis.exceptions`` error escapes the backend.

Usage::

    failures = ErrorMap(where, on_transient=check.again)
    with failures("add"):
        await client.execute_command(...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    NoPermissionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...errors import MemoryBackendError
from ...records import Namespace
from .index import ChurnedError, OldLayoutError
from .wire import GarbledRecord, decode_text

__all__ = ["FAILURES", "ErrorMap", "GarbledLog", "closed", "garbled", "refusal"]

logger = logging.getLogger(__name__.rsplit(".", 1)[0])

# OSError covers the builtin TimeoutError/ConnectionError; RedisClusterException (all nodes
# unreachable, slot not covered) does not derive from RedisError.
FAILURES = (RedisError, OSError, RedisClusterException)
# Failures meaning "unavailable now, may answer later" (a fallback serves meanwhile); any other
# reply is the server refusing this operation.
_TRANSIENT = (
    ClusterError,  # too many redirections (a slot migrating), CLUSTERDOWN
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    RedisClusterException,
    ClusterDownError,
    ReadOnlyError,
    TryAgainError,
)
# BUSY (another client's long script), LOADING (a restart loading its data) and MASTERDOWN
# answer "not now", like a lost connection: outages, not refusals.
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
_MAPPED = (*FAILURES, ChurnedError, OldLayoutError)


def refusal(where: str, operation: str, why: str) -> MemoryBackendError:
    """A non-transient error: the server (or this backend) refuses ``operation``."""
    return MemoryBackendError(
        f"Redis at {where}, {operation}: {why}",
        backend="redis",
        operation=operation,
        transient=False,
    )


def closed(operation: str) -> MemoryBackendError:
    """The error of an operation on a closed backend (not an outage: no fallback serves)."""
    return MemoryBackendError(
        "closed: this RedisBackend was closed (aclose()); build a new one",
        backend="redis",
        operation=operation,
        transient=False,
    )


def garbled(
    where: str, namespace: Namespace, operation: str, exc: GarbledRecord
) -> MemoryBackendError:
    """The error of a read of a record this library did not write, naming its key."""
    return refusal(
        where,
        operation,
        f"the record under key {exc.key!r} of namespace {namespace!r} is not one this "
        f"library wrote (overwritten by another client, or garbled): {exc}",
    )


class ErrorMap:
    """Maps the failures of one server's client to :class:`MemoryBackendError`.

    Args:
        where: ``host:port``, for messages.
        on_transient: Called for each transient failure (the server check runs again).
    """

    __slots__ = ("_mappers", "_on_transient", "_slow", "where")

    def __init__(self, where: str, on_transient: Callable[[], None]) -> None:
        self.where = where
        self._on_transient = on_transient
        self._mappers: dict[str, _Mapper] = {}
        self._slow: dict[tuple[str, float | None], _Mapper] = {}

    def __call__(
        self, operation: str, *, slow: bool = False, deadline: float | None = None
    ) -> _Mapper:
        """``with failures("add"):`` raises what it catches as a MemoryBackendError.

        With ``slow``, a timed-out call is a refusal naming its ``deadline`` (a search's,
        seconds), not an outage: a load that outlasts its deadline is the search's cost.
        """
        if not slow:  # the usual case, and the hot path: keyed by the name alone
            mapper = self._mappers.get(operation)
            if mapper is None:
                mapper = self._mappers[operation] = _Mapper(self, operation)
            return mapper
        slow_mapper = self._slow.get((operation, deadline))
        if slow_mapper is None:
            slow_mapper = self._slow[(operation, deadline)] = _Mapper(
                self, operation, True, deadline
            )
        return slow_mapper

    def error(self, operation: str, exc: BaseException) -> MemoryBackendError:
        """The MemoryBackendError of ``exc``, a client failure of ``operation``."""
        where = self.where
        if isinstance(exc, ChurnedError):
            return MemoryBackendError(
                f"Redis at {where}, {operation}: namespace keys {decode_text(exc.base)}... "
                "changed faster than they could be loaded, three times (its change log was "
                "trimmed, or the server restarted, meanwhile); try again",
                backend="redis",
                operation=operation,
                transient=True,
            )
        if isinstance(exc, OldLayoutError):
            return refusal(
                where,
                operation,
                f"namespace keys {decode_text(exc.base)}... have the layout of "
                "tta-dev-primitives 0.1.0; run `await backend.upgrade_layout()` once to "
                "convert them",
            )
        text = str(exc)
        if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
            why = (
                "permission denied (the ACL user needs the scripting commands EVALSHA and "
                f"SCRIPT LOAD and read/write access to the prefix's keys): {text}"
            )
        elif isinstance(exc, AuthenticationError | AuthorizationError) or text.startswith(
            ("NOAUTH", "WRONGPASS", "invalid username-password")
        ):
            why = f"authentication failed (check the user name and password): {text}"
        elif isinstance(exc, RedisTimeoutError | TimeoutError):
            why = f"timed out: {text}"
        elif isinstance(exc, RedisConnectionError | OSError):
            why = f"cannot connect: {text}"
        else:
            why = f"{type(exc).__name__}: {text}"
        transient = isinstance(exc, _TRANSIENT) or text.startswith(_TRANSIENT_REPLIES)
        if transient:
            self._on_transient()  # maybe another server now: check it before trusting it
        return MemoryBackendError(
            f"Redis at {where}, {operation}: {why}",
            backend="redis",
            operation=operation,
            transient=transient,
        )


class _Mapper:
    """Context manager raising a client failure as MemoryBackendError (from it); stateless,
    so one instance per operation serves every call."""

    __slots__ = ("_deadline", "_map", "_operation", "_slow")

    def __init__(
        self, errors: ErrorMap, operation: str, slow: bool = False, deadline: float | None = None
    ) -> None:
        self._map = errors
        self._operation = operation
        self._slow = slow
        self._deadline = deadline

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, _MAPPED):
            return
        if self._slow and isinstance(exc, TimeoutError):
            raise refusal(
                self._map.where,
                self._operation,
                f"took longer than search_timeout={self._deadline}s; not taken for an outage",
            ) from exc
        if isinstance(exc, ChurnedError | OldLayoutError):
            raise self._map.error(self._operation, exc) from None
        raise self._map.error(self._operation, exc) from exc


class GarbledLog:
    """Logs once per record (a bounded memory of them) that an operation skipped a record
    it cannot decode."""

    __slots__ = ("_seen", "_where")

    def __init__(self, where: str) -> None:
        self._where = where
        self._seen: set[tuple[bytes, str]] = set()

    def skipped(self, base: bytes, exc: GarbledRecord) -> None:
        """Report that the record under ``exc.key`` of the namespace ``base`` was skipped."""
        seen = self._seen
        if (base, exc.key) in seen:
            return
        if len(seen) >= 1024:
            seen.clear()
        seen.add((base, exc.key))
        logger.warning(
            "Redis at %s: search skips the record under key %r (keys %s...), which is not "
            "one this library wrote (overwritten by another client, or garbled): %s",
            self._where,
            exc.key,
            decode_text(base),
            exc,
        )
