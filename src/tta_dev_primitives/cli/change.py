"""The ``tta-memory`` commands that change or move records: rm, export, import, upgrade."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Mapping
from typing import IO, Any

from ..memory import transfer
from ..memory.backends.redis import RedisBackend
from ..memory.embeddings import Embedder
from ..memory.errors import MemoryBackendError
from ..memory.primitive import MemoryPrimitive
from .args import (
    EMBEDDERS,
    EXIT_OK,
    MAX_VALUE_BYTES,
    PROG,
    NotFound,
    UsageError,
    embedder_spec,
    make_embedder,
    namespace_text,
)
from .output import (
    CountingLines,
    Progress,
    namespace_embedder,
    notice,
    open_bytes,
    open_text,
)

__all__ = ["RM_SHOWN", "cmd_export", "cmd_import", "cmd_rm", "cmd_upgrade"]


RM_SHOWN = 10  # matching keys a dry run or a confirmation shows


async def _matching(memory: MemoryPrimitive, where: Mapping[str, Any]) -> tuple[int, list[str]]:
    """How many records match ``where``, and the first few keys (newest first)."""
    count = 0
    keys: list[str] = []
    cursor: str | None = None
    while True:
        page = await memory.list(filter=where, limit=500, cursor=cursor)
        count += len(page.records)
        keys.extend(r.key for r in page.records[: RM_SHOWN - len(keys)])
        cursor = page.next_cursor
        if cursor is None:
            return count, keys


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def cmd_rm(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if (args.key is None) == (args.where is None):
        raise UsageError("rm takes a KEY or --where FILTER (one of them)")
    here = namespace_text(memory.namespace)
    if args.key is not None:
        if args.dry_run:
            found = int(await memory.get_record(args.key) is not None)
            return _would_delete(found, [args.key] if found else [], args, out, repr(args.key))
        deleted = int(await memory.delete(args.key))
        what = repr(args.key)
    else:
        if not args.where:
            raise UsageError("--where {} would delete everything; it must name a field")
        what = "matching " + json.dumps(args.where, ensure_ascii=False)
        ask = not args.yes and sys.stdin.isatty()
        if args.dry_run or ask:
            count, keys = await _matching(memory, args.where)
            if args.dry_run:
                return _would_delete(count, keys, args, out, what)
            if count and not _confirm(
                f"delete {count} record{'s' if count != 1 else ''} {what} in namespace {here} "
                f"({_listed(count, keys)})?"
            ):
                raise NotFound("nothing deleted: not confirmed (pass --yes to skip the question)")
        deleted = await memory.delete_where(args.where)
    if args.json:
        out.write(json.dumps({"deleted": deleted}) + "\n")
    elif deleted:
        out.write(f"deleted {deleted} record{'s' if deleted != 1 else ''}\n")
    if deleted == 0:
        raise NotFound(f"no record {what} in namespace {here}")
    return EXIT_OK


def _listed(count: int, keys: list[str]) -> str:
    shown = ", ".join(keys)
    return shown + (f", ... {count - len(keys)} more" if count > len(keys) else "")


def _would_delete(
    count: int, keys: list[str], args: argparse.Namespace, out: IO[str], what: str
) -> int:
    if args.json:
        out.write(json.dumps({"would_delete": count, "keys": keys}, ensure_ascii=False) + "\n")
    elif count:
        out.write(
            f"would delete {count} record{'s' if count != 1 else ''}: {_listed(count, keys)}\n"
        )
    if not count:
        raise NotFound(f"no record {what} in namespace {namespace_text(args.namespace)}")
    return EXIT_OK


async def cmd_export(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    progress = Progress("exporting", await memory.size(), sys.stderr)
    with open_text(args.file, "w", out) as stream:
        count = await transfer.write_jsonl(
            memory.export(filter=args.filter, vectors=args.vectors, history=args.history),
            stream,
            namespace=memory.namespace,
            progress=progress,
            history=args.history,
        )
    progress.close()
    if args.file != "-":
        out.write(f"exported {count} records to {args.file}\n")
    return EXIT_OK


async def _import_embedder(
    memory: MemoryPrimitive, args: argparse.Namespace, checked: transfer.CheckedRecords
) -> Embedder | None:
    """The embedder an import uses: --embedder, else the one the file's (or the namespace's)
    vectors name; refuses to drop the file's vectors silently."""
    if args.made_embedder is not None:
        embedder: Embedder = args.made_embedder
        return embedder
    if checked.spaces:
        space = max(checked.spaces, key=lambda s: checked.spaces[s])
        spec = embedder_spec(space)
        if spec is not None:
            notice(f"using embedder {space[0]!r}, which the file's vectors name")
            return make_embedder(spec)
        if args.drop_vectors:
            return None
        named = ", ".join(f"{name!r} ({dims} dimensions)" for name, dims in checked.spaces)
        raise UsageError(
            f"the file's records carry vectors of embedder {named}, which {PROG} cannot "
            f"make: pass --embedder ({EMBEDDERS}) to embed the records again, or "
            "--drop-vectors to import them without vectors (semantic search will then not "
            "find them)"
        )
    return await namespace_embedder(memory)


async def cmd_import(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    with open_bytes(args.file) as stream:
        total = 0
        if args.file != "-":
            with contextlib.suppress(OSError):
                total = os.fstat(stream.fileno()).st_size
        progress = Progress("checking", total // 1024, sys.stderr, unit="KiB", minimum=64)
        read = CountingLines(stream)
        bar = (lambda _n: progress(read.bytes // 1024)) if progress.active else None
        try:
            checked = await transfer.check_records(
                transfer.read_jsonl(read), max_value_bytes=MAX_VALUE_BYTES, progress=bar
            )
        except ValueError as exc:
            raise UsageError(f"{exc}; nothing was imported") from None
        finally:
            progress.close()
    with checked:
        embedder = await _import_embedder(memory, args, checked)
        target = MemoryPrimitive(
            backend=memory.backend, namespace=memory.namespace, embedder=embedder
        )
        writing = Progress("importing", checked.count, sys.stderr)
        try:
            with warnings.catch_warnings():
                if args.drop_vectors:
                    warnings.filterwarnings("ignore", "the imported records carry vectors")
                report = await target.import_(
                    checked, on_conflict=args.on_conflict, progress=writing
                )
        except transfer.ImportIncompleteError as exc:
            raise MemoryBackendError(
                f"the import stopped after {exc.handled} of {exc.total} records "
                f"({_handled(exc.report)}); the next "
                f"{exc.uncertain} may or may not have been written, none after them. Run the "
                f"same import again with --on-conflict {exc.resume_with} to finish it. "
                f"Cause: {exc.__cause__}",
                backend=exc.backend,
                operation="import",
            ) from exc
        finally:
            writing.close()
            await target.aclose()
    result = {
        "imported": report.imported,
        "skipped_existing": report.skipped_existing,
        "skipped_expired": report.skipped_expired,
        "vectors_reused": report.vectors_reused,
        "reembedded": report.reembedded,
        "vectors_dropped": report.vectors_dropped,
        "namespaces": report.namespaces,
    }
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        vectors = ""
        if report.vectors_reused or report.reembedded or report.vectors_dropped:
            vectors = (
                f"; vectors: {report.vectors_reused} reused, {report.reembedded} embedded, "
                f"{report.vectors_dropped} dropped"
            )
        out.write(
            f"imported {report.imported} records into {report.namespaces} namespace(s); "
            f"skipped {report.skipped_existing} existing, {report.skipped_expired} expired"
            f"{vectors}\n"
        )
    return EXIT_OK


def _handled(report: transfer.ImportReport) -> str:
    skipped = report.skipped_existing + report.skipped_expired
    return f"{report.imported} written" + (f", {skipped} skipped" if skipped else "")


async def cmd_upgrade(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    backend = memory.backend
    assert isinstance(backend, RedisBackend)  # run() opens a RedisBackend
    done = await backend.upgrade_layout()
    if args.json:
        out.write(json.dumps(done) + "\n")
    else:
        out.write(
            f"converted {done['records']} records in {done['namespaces']} namespace(s) "
            f"under prefix {args.prefix!r}\n"
        )
    return EXIT_OK
