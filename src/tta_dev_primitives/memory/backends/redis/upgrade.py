"""The conversion of namespaces still in the layout of tta-dev-primitives 0.1.0 (one string
``P r:<key>`` per record and a server-side search index) to this one
(:meth:`RedisBackend.upgrade_layout`)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from ...search import normalize_vector
from .layout import namespace_glob
from .wire import BATCH, encode_text, vector_arg

__all__ = ["upgrade_prefix"]


async def upgrade_prefix(client: Any, prefix: str) -> dict[str, int]:
    """Convert every namespace under ``prefix`` still in the 0.1.0 layout; see
    :meth:`RedisBackend.upgrade_layout`. Client failures propagate (the caller maps them)."""
    converted = records = 0
    bases = set()
    async for raw in client.scan_iter(match=encode_text(namespace_glob(prefix)), count=1000):
        bases.add(bytes(raw)[: -len(b"lru")])
    for base in sorted(bases):
        count = await _upgrade_namespace(client, base)
        if count >= 0:
            converted += 1
            records += count
    return {"namespaces": converted, "records": records}


async def _upgrade_namespace(client: Any, base: bytes) -> int:
    """Convert one namespace; -1 when it is not in the old layout. ``client`` is Any: raw
    commands on bytes keys (redis-py's stubs want str)."""
    old_marks = await client.exists(base + b"q", base + b"d", base + b"voc")
    pairs = await client.zrange(base + b"lru", 0, -1, withscores=True)
    keys = [bytes(k) for k, _ in pairs]
    olds = []
    for i in range(0, len(keys), BATCH):
        pipe = client.pipeline(transaction=False)
        for key in keys[i : i + BATCH]:
            pipe.get(base + b"r:" + key)
            pipe.pexpiretime(base + b"r:" + key)
        replies = await pipe.execute()
        olds += [(replies[j], replies[j + 1]) for j in range(0, len(replies), 2)]
    if not old_marks and not any(rec for rec, _ in olds):
        return -1
    now = await client.time()
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    count = 0
    for i in range(0, len(keys), BATCH):
        pipe = client.pipeline(transaction=True)
        for key, (rec, at) in zip(keys[i : i + BATCH], olds[i : i + BATCH], strict=True):
            if rec is None:
                continue
            seq, mlen, vlen, rest = bytes(rec).split(b":", 3)
            m, v = int(mlen), int(mlen) + int(vlen)
            expires = at is not None and int(at) >= 0
            fields: dict[bytes, bytes | int] = {
                b"s": int(seq),
                b"v": rest[v:],
                # As lua/_write.lua packs it: times, expiry, vector or not, metadata.
                b"r": b"%d %d %s %d %d %s"
                % (now_ms, now_ms, b"%d" % int(at) if expires else b"-", v > m, m, rest[:m]),
            }
            if v > m:
                # 0.1.0 kept float64 vectors: normalized here, as the primitive does.
                raw = base64.b64decode(rest[m:v])
                doubles = struct.unpack(f"<{len(raw) // 8}d", raw)
                fields[b"e"] = vector_arg(normalize_vector(doubles))
            pipe.delete(base + b"h:" + key)
            pipe.hset(base + b"h:" + key, mapping=fields)
            if expires:
                pipe.pexpireat(base + b"h:" + key, int(at))
            pipe.delete(base + b"r:" + key)
            count += 1
        await pipe.execute()
    # The old search index: its fixed keys, then postings and trigram sets by vocabulary.
    vocab = [bytes(t) for t in await client.smembers(base + b"voc")]
    doomed = [base + k for k in (b"q", b"d", b"t", b"l", b"voc", b"long")]
    for term in vocab:
        doomed.append(base + b"p:" + term)
        if len(term) <= 64:
            doomed += [base + b"g:" + term[j : j + 3] for j in range(len(term) - 2)]
    for i in range(0, len(doomed), BATCH):
        await client.unlink(*doomed[i : i + BATCH])
    t = await client.time()
    pipe = client.pipeline(transaction=True)
    pipe.hdel(base + b"st", b"n", b"len")
    pipe.hset(base + b"st", mapping={b"i": f"{t[0]}.{t[1]}u", b"g": 1})
    pipe.delete(base + b"log")
    pipe.xadd(base + b"log", {b"u": b""}, id=b"1-0")
    await pipe.execute()
    return count
