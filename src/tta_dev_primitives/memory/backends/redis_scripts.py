"""The old import path of :mod:`.redis.scripts`, kept working."""

from __future__ import annotations

from .redis.scripts import (
    CLEAR,
    COMPACT,
    FETCH,
    FORGET,
    FORGOTTEN,
    GET,
    HISTORY,
    LIST,
    LOAD,
    PUT,
    PUT_VERSIONED,
    REMOVE,
    RESTORE,
    SYNC,
    UPDATE,
    UPDATE_VERSIONED,
)

__all__ = [
    "CLEAR",
    "COMPACT",
    "FETCH",
    "FORGET",
    "FORGOTTEN",
    "GET",
    "HISTORY",
    "LIST",
    "LOAD",
    "PUT",
    "PUT_VERSIONED",
    "REMOVE",
    "RESTORE",
    "SYNC",
    "UPDATE",
    "UPDATE_VERSIONED",
]
