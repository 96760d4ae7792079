"""The ``tta-memory`` commands that look: stats, ls, get, history, search, namespaces."""

from __future__ import annotations

import argparse
import json
from typing import IO

from ..memory import transfer
from ..memory.primitive import MemoryPrimitive
from ..memory.records import Namespace
from .args import (
    EMBEDDERS,
    EXIT_NOT_FOUND,
    EXIT_OK,
    ROOT,
    NotFound,
    UsageError,
    namespace_text,
)
from .output import (
    get_row,
    list_page,
    record_row,
    short_text,
    table,
    when_text,
)

__all__ = ["cmd_get", "cmd_history", "cmd_ls", "cmd_namespaces", "cmd_search", "cmd_stats"]


async def _tree(memory: MemoryPrimitive, root: bool) -> list[MemoryPrimitive]:
    """The memories whose exports cover --namespace: itself, or every top-level namespace."""
    if not root:
        return [memory]
    tops = sorted({ns[0] for ns in await memory.backend.namespaces(ROOT)})
    return [MemoryPrimitive(backend=memory.backend, namespace=(top,)) for top in tops]


async def cmd_stats(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    root = args.namespace == ROOT
    records = nbytes = 0
    oldest: float | None = None
    newest: float | None = None
    spaces: set[tuple[str, ...]] = set()
    for part in await _tree(memory, root):
        async for r in part.export():
            records += 1
            spaces.add(tuple(r["namespace"]) + (part.namespace if root else ()))
            nbytes += len(transfer.dumps_line({"key": r["key"], "value": r["value"]}).encode())
            created, updated = r["created_at"], r["updated_at"]
            if created is not None:
                oldest = created if oldest is None else min(oldest, created)
            if updated is not None:
                newest = updated if newest is None else max(newest, updated)
    if not records:
        raise NotFound(_empty(args.namespace))
    info = memory.get_backend_info()
    backend = info["backend"]
    if "server.address" in info:
        backend += f" {info['server.address']}:{info.get('server.port', '')}".rstrip(":")
    stats = {
        "namespace": list(args.namespace),
        "records": records,
        "namespaces": len(spaces),
        "bytes": nbytes,
        "oldest": oldest,
        "newest": newest,
        "backend": backend,
    }
    if args.json:
        out.write(json.dumps(stats, ensure_ascii=False) + "\n")
    else:
        rows = [
            ("namespace", namespace_text(args.namespace)),
            ("records", str(records)),
            ("namespaces", str(len(spaces))),
            ("bytes", str(nbytes)),
            ("oldest", when_text(oldest)),
            ("newest", when_text(newest)),
            ("backend", backend),
        ]
        table(rows, ("STAT", "VALUE"), out)
    return EXIT_OK


def _empty(namespace: Namespace) -> str:
    if namespace == ROOT:
        return "no namespace holds records"
    return f"namespace {namespace_text(namespace)} holds no records, nor does any below it"


async def _missing(memory: MemoryPrimitive) -> bool:
    """Whether --namespace and every namespace below it hold no record."""
    return not await memory.size() and not await memory.namespaces()


async def cmd_ls(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    rows, cursor = await list_page(memory, args.filter, args.limit, args.cursor, args.order)
    if not rows and args.cursor is None and await _missing(memory):
        raise NotFound(_empty(memory.namespace))
    if args.json:
        out.write(json.dumps({"records": rows, "next_cursor": cursor}, ensure_ascii=False) + "\n")
        return EXIT_OK
    table(
        [
            (
                r["key"],
                short_text(r["metadata"], 40),
                when_text(r["updated_at"]),
                when_text(r["expires_at"]),
            )
            for r in rows
        ],
        ("KEY", "METADATA", "UPDATED", "EXPIRES"),
        out,
    )
    if cursor is not None:
        out.write(f"more: --cursor {cursor}\n")
    return EXIT_OK


async def cmd_get(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if args.as_of is not None:
        found = await memory.get_record(args.key, as_of=args.as_of)
        record = None if found is None else record_row(found)
        if record is not None and found is not None:
            record["valid_from"], record["valid_to"] = found.valid_from, found.valid_to
    else:
        record = await get_row(memory, args.key)
    if record is None:
        raise NotFound(f"no record {args.key!r} in namespace {namespace_text(memory.namespace)}")
    if args.json:
        del record["namespace"]
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    out.write(json.dumps(record["value"], ensure_ascii=False, indent=2) + "\n")
    out.write(f"metadata: {json.dumps(record['metadata'], ensure_ascii=False)}\n")
    if "index_text" in record:
        out.write(f"index text: {json.dumps(record['index_text'], ensure_ascii=False)}\n")
    out.write(
        f"updated: {when_text(record['updated_at'])}  expires: {when_text(record['expires_at'])}\n"
    )
    if "valid_to" in record:
        out.write(f"valid: {when_text(record['valid_from'])} to {when_text(record['valid_to'])}\n")
    return EXIT_OK


async def cmd_history(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    versions = await memory.history(args.key)
    if args.json:
        rows = []
        for v in versions:
            row = record_row(v)
            del row["namespace"]
            row["valid_from"], row["valid_to"] = v.valid_from, v.valid_to
            rows.append(row)
        out.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        table(
            [
                (
                    when_text(v.valid_from),
                    "now" if v.valid_to is None else when_text(v.valid_to),
                    short_text(v.value),
                )
                for v in versions
            ],
            ("VALID FROM", "VALID TO", "VALUE"),
            out,
        )
    return EXIT_OK if versions else EXIT_NOT_FOUND


async def cmd_search(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if args.mode in ("semantic", "hybrid") and args.made_embedder is None:
        raise UsageError(
            f"--mode {args.mode} needs --embedder ({EMBEDDERS}): the embedder that wrote "
            f"the records' vectors (namespace {namespace_text(memory.namespace)} names none "
            "this tool can make)"
        )
    hits = await memory.search(
        args.query, limit=args.limit, mode=args.mode, filter=args.filter, as_of=args.as_of
    )
    if args.json:
        found = [
            {"key": h.key, "score": h.score, "value": h.value, "metadata": h.metadata or {}}
            for h in hits
        ]
        out.write(json.dumps(found, ensure_ascii=False) + "\n")
    else:
        table(
            [(f"{h.score:.3f}", h.key, short_text(h.value)) for h in hits],
            ("SCORE", "KEY", "VALUE"),
            out,
        )
    return EXIT_OK if hits else EXIT_NOT_FOUND


async def cmd_namespaces(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if args.namespace == ROOT:
        found = list(await memory.backend.namespaces(ROOT))
    else:
        listed = await memory.namespaces()  # relative to --namespace
        found = [memory.namespace] if await memory.size() else []
        for ns in listed:
            full = memory.namespace + tuple(ns)
            if full not in found:
                found.append(full)
    if not found:
        raise NotFound(_empty(args.namespace))
    if args.json:
        out.write(json.dumps([list(ns) for ns in found], ensure_ascii=False) + "\n")
    else:
        for ns in found:
            out.write(namespace_text(ns) + "\n")
    return EXIT_OK
