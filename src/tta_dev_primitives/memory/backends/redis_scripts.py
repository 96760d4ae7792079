"""The Lua scripts behind :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend`, and
the one way they are run.

Each script is a file of ``lua/`` (package data, read with :mod:`importlib.resources`) and one
atomic step on one namespace. Two directives, in comments, are read here:

* ``--! keys: lru ...``: the keys the script declares in ``KEYS``, named by their suffix
  after the namespace's base ``prefix:{escaped namespace}:`` (``COMPACT`` also declares the
  records it names, after them).
* ``--! include: _name``: replaced by ``lua/_name.lua`` (shared local functions).

``ARGV[1]`` is the base; every other key a script touches is built from it, so all keys of a
namespace share one hash slot and Redis Cluster routes the call by ``KEYS[1]``, the
namespace's LRU index. Why not declare every key: during a slot migration Redis answers a
script whose declared keys are not all present on the node with ``TRYAGAIN`` (until the
migration ends), and a write of a new record, or a namespace without expiring records (no
``ttl`` key), always has one missing; with ``KEYS[1]`` alone the ``ASK`` redirection is
followed and the script runs (``tests/test_redis_cluster.py::test_ask_redirections_are_followed``
fails with every key declared). The keys found while a script runs (records it evicts or
purges, posting lists) could not be declared anyway.

Keys of one namespace (``B`` = the base):

* ``B r:<key>``: the record, one string ``<seq>:<metadata bytes>:<vector bytes>:`` followed by
  the metadata JSON, the base64 vector and the payload JSON. The only key holding the value
  and the only one with a native expiry (``SET ... PXAT``).
* ``B lru``: zset key -> recency (``get`` and ``put`` take the next value of counter ``c``).
* ``B ttl``: zset key -> absolute expiry, server milliseconds (the ``PXAT`` of the record);
  an entry may be stale (the record since rewritten without expiry, deleted or evicted), so
  the purge checks the record's own ``PEXPIRETIME`` before dropping it.
* ``B st``: hash of counters: ``c`` (write order and recency, never reset), ``n`` and ``len``
  (number and total length of the indexed records, for BM25).
* ``B q``: zset of the keys whose search index entry may be stale, scored by the write
  number of the new version (0 for a record deleted, evicted or expired since it was
  indexed).
* ``B d``, ``B t``, ``B l``, ``B p:<term>``, ``B voc``, ``B g:<3 bytes>``, ``B long``: the
  server-side search index (see ``lua/_index.lua``).

Expiry: a record lives while the server clock is at most its expiry (the ``PXAT`` rule). The
scripts that list, count, search or evict first purge the records whose expiry has passed,
so an expired record is never listed, counted or found, even before Redis reclaims it.
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
from redis.exceptions import ClusterError, NoScriptError

from .redis_cluster import is_redirection, run_redirected

__all__ = [
    "CLEAR",
    "COMPACT",
    "GET",
    "LIST",
    "PUT",
    "REMOVE",
    "SEARCH",
]

_INCLUDE = re.compile(r"^--! include: (\w+)\n", re.MULTILINE)
_KEYS = re.compile(r"^--! keys: ([\w ]+)\n", re.MULTILINE)


def _read(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, the namespace keys it declares, and its SHA1 (for ``EVALSHA``).

    Attributes:
        name: The file name under ``lua/`` without ``.lua``.
        source: The script with its includes expanded.
        keys: Suffixes (after the namespace base) of the keys declared first in ``KEYS``.
        sha: SHA1 of ``source``.
    """

    name: str
    source: str
    keys: tuple[bytes, ...]
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    @classmethod
    def load(cls, name: str) -> Script:
        """Read ``lua/<name>.lua`` and expand its includes."""
        text = _read(name)
        declared = _KEYS.search(text)
        keys = tuple(k.encode() for k in declared.group(1).split()) if declared else ()
        source = _INCLUDE.sub(lambda m: _read(m.group(1)), text)
        return cls(name, source, keys)


PUT = Script.load("put")
GET = Script.load("get")
REMOVE = Script.load("remove")
LIST = Script.load("list")
CLEAR = Script.load("clear")
SEARCH = Script.load("search")
COMPACT = Script.load("compact")

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
    except ClusterError as exc:
        if not isinstance(client, aioredis.RedisCluster) or not is_redirection(exc):
            raise
        # The namespace's slot is migrating and redis-py gave up on the ASK redirection.
        async with asyncio.timeout(deadline):
            try:
                return await run_redirected(client, keys[0], cmd)
            except NoScriptError:  # the target master never ran this script
                await client.script_load(script.source)
                return await run_redirected(client, keys[0], cmd)


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
