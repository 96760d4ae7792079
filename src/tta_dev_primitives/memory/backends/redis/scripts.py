"""The Lua scripts behind :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend`, and
the one way they are run.

Each script is a file of ``lua/`` (package data, read with :mod:`importlib.resources`) and one
atomic step on one namespace. Two directives, in comments, are read here:

* ``--! keys: lru st log``: the keys the script declares first in ``KEYS``, named by their
  suffix after the namespace's base ``prefix:{escaped namespace}:``; the client appends the
  record keys it names (``h:<key>``).
* ``--! include: _name``: replaced by ``lua/_name.lua`` (shared local functions).
* ``--! frozen time``: every ``TIME`` after it reads ``FROZEN_TIME`` (the script's local,
  set before it) instead, so one step has one time (the versioned writes).
* ``--! base: keys``: the script finds the namespace's base in its ``KEYS`` (the hot
  scripts, put and get: each argument costs the client more to send than the script pays
  to derive it); the others get it as ``ARGV[1]``.

The declared keys: every key the client can name. ``lru``, ``st`` and ``log`` exist together
(from a namespace's first write until it is emptied), so during a slot migration they move
as one and a script follows the ``ASK`` redirection; a record key that does not exist yet (a
new record) makes Redis answer ``TRYAGAIN`` until the migration's hand-over, and the call is
retried until its deadline. Not declared: the ``ttl`` index (absent while no record expires:
declaring it would hold back every write of such a namespace during a migration) and the
records a script finds while it runs (eviction victims, expired records); ``ARGV[1]`` is the
base they are built from (same hash slot). Scripts read every such key before they write
anything, so a migration that moved one already fails the script before any change (never
half-applied).

Keys of one namespace (``B`` = the base):

* ``B h:<key>``: the record, a hash: ``s`` write sequence, ``v`` value JSON, ``r`` the rest
  in one string (``<created> <updated> <expiry or -> <1 with a vector, else 0> <length of
  the metadata> <metadata JSON>``, server clock in ms; see ``lua/_write.lua``), ``e`` vector
  as raw little-endian float32 (absent: none). An expiry is also the hash's own ``PXAT``.
  ``v``, ``s`` and ``e`` stay fields of their own for the Query Engine's index.
* ``B lru``: zset key -> recency (``get`` and writes take the next value of counter ``c``).
* ``B ttl``: zset key -> absolute expiry, server ms, of the records that live with one (a
  delete, eviction or rewrite without expiry removes the entry); an entry may be stale (the
  record expired by Redis, or rewritten with another expiry), so the purge checks the
  record's own ``PEXPIRETIME`` before dropping it.
* ``B st``: hash: ``c`` (versions and recency: a write takes ``max(c + 1, the server clock in
  1/2048 ms)``, see ``lua/_seq.lua``, so versions never repeat), ``g`` (change-log entries so
  far), ``i`` (the namespace's incarnation, set by its first change-log entry), ``sp`` (its
  embedder), ``x`` (the expiry of these keys while every record has one).
* ``B log``: the change log, a stream (see ``lua/_log.lua``): every script that writes,
  deletes, evicts or purges appends a version and the keys it changed, in the same atomic
  step; each process's search index catches up from it (``sync.lua``), checking first that
  the last entry it applied still has the version it read.

Expiry: a record lives while the server clock is before its expiry. Redis drops expired
hashes on its own (no log entry: a search index applies the expiry times it holds); the
scripts that list or count purge first, so an expired record is never listed or counted.
A namespace emptied (``clear``, or its last record deleted or purged) leaves no key behind;
one whose records all expire has its own keys expire after the last (``lua/_seq.lua``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ClusterError, NoScriptError, ResponseError

from .cluster import is_redirection, run_redirected

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

_INCLUDE = re.compile(r"^--! include: (\w+)\n", re.MULTILINE)
_KEYS = re.compile(r"^--! keys: ([\w ]+)\n", re.MULTILINE)
_BASE_IN_KEYS = re.compile(r"^--! base: keys\n", re.MULTILINE)
_FROZEN = "--! frozen time\n"


def _read(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, the namespace keys it declares, and its SHA1 (for ``EVALSHA``).

    Attributes:
        name: The file name under ``lua/`` without ``.lua``.
        source: The script with its includes expanded.
        keys: Suffixes (after the namespace base) of the keys declared first in ``KEYS``.
        base_arg: Whether the namespace's base is passed as ``ARGV[1]`` (else the script
            derives it from ``KEYS``).
        sha: SHA1 of ``source``.
    """

    name: str
    source: str
    keys: tuple[bytes, ...]
    base_arg: bool = True
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    @classmethod
    def load(cls, name: str) -> Script:
        """Read ``lua/<name>.lua`` and expand its includes."""
        text = _read(name)
        declared = _KEYS.search(text)
        keys = tuple(k.encode() for k in declared.group(1).split()) if declared else ()
        source = text
        while _INCLUDE.search(source):  # an included script may include others
            source = _INCLUDE.sub(lambda m: _read(m.group(1)), source)
        head, frozen, tail = source.partition(_FROZEN)
        if frozen:
            # Every TIME after the marker is the one the script read before it, so the
            # versions a write ends stop exactly when the new one begins.
            tail = tail.replace("redis.call('TIME')", "FROZEN_TIME")
            source = head + frozen + tail.replace("call('TIME')", "FROZEN_TIME")
        return cls(name, source, keys, _BASE_IN_KEYS.search(text) is None)


PUT = Script.load("put")
GET = Script.load("get")
REMOVE = Script.load("remove")
LIST = Script.load("list")
CLEAR = Script.load("clear")
COMPACT = Script.load("compact")
UPDATE = Script.load("update")
FETCH = Script.load("fetch")
SYNC = Script.load("sync")
LOAD = Script.load("load")
PUT_VERSIONED = Script.load("put_versioned")
UPDATE_VERSIONED = Script.load("update_versioned")
HISTORY = Script.load("history")
FORGET = Script.load("forget")
FORGOTTEN = Script.load("forgotten")
RESTORE = Script.load("restore")

RedisClient = aioredis.Redis | aioredis.RedisCluster


async def _reload(client: RedisClient, script: Script, deadline: float | None) -> None:
    # The server restarted, failed over or ran SCRIPT FLUSH: it forgot the script.
    async with asyncio.timeout(deadline):
        await client.script_load(script.source)


async def run(
    client: RedisClient,
    script: Script,
    keys: Sequence[bytes],
    args: Sequence[Any],
    deadline: float | None,
) -> Any:
    """``EVALSHA`` ``script`` once (loading it on ``NOSCRIPT``), within ``deadline`` seconds."""
    cmd = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        if deadline is None:
            return await client.execute_command(*cmd)
        async with asyncio.timeout(deadline):
            return await client.execute_command(*cmd)
    except NoScriptError:
        await _reload(client, script, deadline)
        async with asyncio.timeout(deadline):
            return await client.execute_command(*cmd)
    except (ClusterError, ResponseError) as exc:
        if not isinstance(client, aioredis.RedisCluster) or not is_redirection(exc):
            raise
        # The namespace's slot is migrating and redis-py gave up on the ASK redirection.
        bounded = deadline is None
        async with asyncio.timeout(deadline):
            try:
                return await run_redirected(client, keys[0], cmd, bounded=bounded)
            except NoScriptError:  # the target master never ran this script
                await client.script_load(script.source)
                return await run_redirected(client, keys[0], cmd, bounded=bounded)


async def run_many(
    client: RedisClient,
    script: Script,
    calls: Sequence[tuple[Sequence[bytes], Sequence[Any]]],
    deadline: float | None,
) -> list[Any]:
    """Run ``script`` once per ``(keys, args)`` call, pipelined, in order.

    ``deadline`` is per call (each may carry a batch of records), so a long pipeline is not
    cut off as if the server had hung. Raises the first error reply.
    """
    if len(calls) == 1:
        keys, args = calls[0]
        return [await run(client, script, keys, args, deadline)]
    results: list[Any] = []
    start = 0
    reloaded = False
    while start < len(calls):
        pipe = client.pipeline(transaction=False)
        for keys, args in calls[start:]:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        async with asyncio.timeout(None if deadline is None else deadline * (len(calls) - start)):
            replies = await pipe.execute(raise_on_error=False)
        missing = next((i for i, r in enumerate(replies) if isinstance(r, NoScriptError)), None)
        if missing is not None and not reloaded:
            # Keep what ran; load the script and go on from the first call that did not.
            results.extend(replies[:missing])
            await _reload(client, script, deadline)
            reloaded = True
            start += missing
            continue
        bounced = next((i for i, r in enumerate(replies) if is_redirection(r)), None)
        if bounced is not None and isinstance(client, aioredis.RedisCluster):
            # The slot is migrating: the calls from the first redirected one on (none of
            # which ran) go one at a time, each following its own redirections.
            replies = replies[:bounced]
            for keys, args in calls[start + bounced :]:
                replies.append(await run(client, script, keys, args, deadline))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        results.extend(replies)
        break
    return results
