"""``tta-memory``: look into a memory store, and take records out and put them back.

Usage::

    tta-memory --url redis://localhost:6379 --namespace app/users stats
    tta-memory ls --filter '{"role": "user"}' --limit 20
    tta-memory get turn:1
    tta-memory search "python" --limit 5 --json
    tta-memory rm turn:1            # or: rm --where '{"session": "s1"}' [--dry-run] [--yes]
    tta-memory export backup.jsonl  # JSON Lines, see tta_dev_primitives.memory.transfer
    tta-memory import backup.jsonl --on-conflict skip
    tta-memory --namespace / namespaces
    tta-memory mcp --url redis://localhost:6379  # an MCP server (the mcp extra)

Without ``--url`` the URL comes from ``TTA_MEMORY_URL``. Output is a table for people and
JSON with ``--json``. Exit codes: 0 ok, 1 not found (no such key, no hit, an empty
namespace, nothing deleted), 2 usage (bad arguments or input), 3 backend unreachable or
failing. Errors and warnings are one line each on stderr. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Literal, NoReturn, cast

from . import __version__
from .memory import codec, transfer
from .memory.backends.base import VectorBackend
from .memory.backends.redis import RedisBackend
from .memory.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder
from .memory.errors import MemoryBackendError
from .memory.primitive import MemoryPrimitive
from .memory.records import MemoryRecord, Namespace

__all__ = ["main"]

ENV_URL = "TTA_MEMORY_URL"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_BACKEND = 0, 1, 2, 3
PROGRESS_MIN = 1000  # records exported (KiB imported) before a progress bar is worth it
MAX_VALUE_BYTES = codec.DEFAULT_MAX_VALUE_BYTES  # the memories tta-memory opens keep the default
_PROG = "tta-memory"
SCHEMES = "redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://"
ROOT = ()  # --namespace / (or '' or []): every namespace, for namespaces and stats


class UsageError(Exception):
    """Bad arguments or input: exit 2."""


class NotFound(Exception):
    """The key (or anything matching) is not there: exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line on stderr, as every other error (argparse prints the usage too).
        raise UsageError(f"{message} (see {_PROG} --help)")


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not {what}: {exc.msg}") from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"not {what}: nested too deep to read") from None


def _json_arg(text: str) -> dict[str, Any]:
    value = _loads(text, "JSON")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _namespace_arg(text: str) -> tuple[str, ...]:
    if text in ("", "/"):
        return ROOT
    parts = _loads(text, "a JSON list") if text.startswith("[") else text.split("/")
    if not isinstance(parts, list) or not all(isinstance(p, str) and p for p in parts):
        raise argparse.ArgumentTypeError(
            "a namespace is parts separated by '/' (a/b), a JSON list of non-empty strings "
            '(["a", "b/c"] for a part holding a slash), or / for the root'
        )
    return tuple(parts)


def namespace_text(namespace: Namespace) -> str:
    """``namespace`` as ``--namespace`` reads it back: ``a/b``, or a JSON list when a part
    holds ``/`` (or the first starts with ``[``), ``/`` for the root."""
    if not namespace:
        return "/"
    if any("/" in p for p in namespace) or namespace[0].startswith("["):
        return json.dumps(list(namespace), ensure_ascii=False)
    return "/".join(namespace)


EMBEDDERS = "hashing, hashing:DIMS (>= 8) or minilm"


def _embedder_arg(text: str) -> tuple[str, int | None]:
    name, colon, dims = text.partition(":")
    if name == "hashing" and not colon:
        return name, None
    if name == "hashing" and dims.isdigit() and int(dims) >= 8:
        return name, int(dims)
    if text == "minilm":
        return name, None
    raise argparse.ArgumentTypeError(f"unknown embedder {text!r}: use {EMBEDDERS}")


def make_embedder(spec: tuple[str, int | None]) -> Embedder:
    """The embedder ``--embedder`` names (the model is loaded here, for minilm)."""
    name, dims = spec
    if name == "hashing":
        return HashingEmbedder() if dims is None else HashingEmbedder(dims)
    try:
        # Its methods return numpy arrays, which the Embedder protocol's Sequence types do
        # not spell (MemoryPrimitive takes either).
        return cast(Embedder, MiniLMEmbedder())
    except ImportError as exc:
        raise UsageError(f"--embedder minilm is not available: {exc}") from None


def embedder_spec(space: tuple[str, int]) -> tuple[str, int | None] | None:
    """The ``--embedder`` that makes the vectors of ``space`` (name, dimensions), if any."""
    name, dims = space
    if name == f"hashing-v1-{dims}" and dims >= 8:
        return "hashing", dims
    if name == MiniLMEmbedder.name:
        return "minilm", None
    return None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _prefix_arg(text: str) -> str:
    if not text or "{" in text or "}" in text:
        raise argparse.ArgumentTypeError(f"must be non-empty, without '{{' or '}}': {text!r}")
    return text


def _as_of(text: str) -> float:
    """``--as-of``: epoch seconds, or an ISO 8601 time (UTC when it names no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not epoch seconds nor an ISO 8601 time: {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def build_parser() -> _Parser:
    """The argument parser of ``tta-memory``."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output for scripts"
    )
    parser = _Parser(
        prog=_PROG,
        description="Look into a tta-dev-primitives memory store; export and import records.",
        epilog=f"The URL defaults to ${ENV_URL}. Exit codes: 0 ok, 1 not found, 2 usage, "
        "3 backend unreachable.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url",
        help=f"the store: {SCHEMES} (e.g. redis://host:6379/0; default: ${ENV_URL})",
    )
    parser.add_argument(
        "--namespace",
        type=_namespace_arg,
        default=("default",),
        help="namespace parts separated by '/' (a/b), or a JSON list when a part holds '/' "
        '(["a", "b/c"]), as the namespaces command prints them; / for the root (namespaces '
        "and stats only) (default: default)",
    )
    parser.add_argument(
        "--prefix",
        type=_prefix_arg,
        default="tta",
        help="key prefix the store uses (default tta)",
    )
    parser.add_argument(
        "--embedder",
        type=_embedder_arg,
        help=f"embedder of search --mode semantic/hybrid and of import's re-embedding: "
        f"{EMBEDDERS} (the embeddings extra); default: the one the namespace's (or the "
        "import file's) vectors name, when it is one of these",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        help="seconds one server reply may take (default 30: whole-namespace reads are slow)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    command(
        "stats",
        "records, namespaces, bytes, oldest/newest and backend of --namespace and the "
        "namespaces below it (--namespace /: of every namespace); exit 1 when they hold none",
    )
    ls = command(
        "ls", "keys of --namespace with their metadata, newest first; exit 1 when it is empty"
    )
    ls.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    ls.add_argument("--limit", type=_positive, default=20, help="records per page (default 20)")
    ls.add_argument("--cursor", help="next page: the cursor the previous page printed")
    ls.add_argument(
        "--order", choices=("newest", "oldest"), default="newest", help="(default newest)"
    )
    as_of_help = (
        "what was current then: epoch seconds or an ISO 8601 time, UTC unless it names a "
        "zone (needs history: MemoryPrimitive(history=N))"
    )
    get = command("get", "one record")
    get.add_argument("key", help="the record's key")
    get.add_argument("--as-of", type=_as_of, help=as_of_help)
    history = command("history", "the versions of one record, newest first")
    history.add_argument("key", help="the record's key")
    search = command("search", "search the records")
    search.add_argument("query", help="the text to look for")
    search.add_argument(
        "--mode",
        choices=("keyword", "semantic", "hybrid"),
        help="keyword (default without an embedder), semantic or hybrid (need an embedder)",
    )
    search.add_argument("--limit", type=_positive, default=5, help="most hits (default 5)")
    search.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    search.add_argument("--as-of", type=_as_of, help=as_of_help)
    rm = command("rm", "delete KEY, or every record matching --where")
    rm.add_argument("key", nargs="?", help="the key of the record to delete")
    rm.add_argument(
        "--where", type=_json_arg, help="delete every record whose metadata matches (JSON object)"
    )
    rm.add_argument(
        "--dry-run",
        action="store_true",
        help="with --where: count (and list the first) matching records, delete nothing",
    )
    rm.add_argument(
        "--yes",
        action="store_true",
        help="with --where: do not ask for confirmation (asked only when stdin is a terminal)",
    )
    export = command("export", "write records as JSON Lines to FILE (default stdout)")
    export.add_argument("file", nargs="?", default="-", help="the file to write ('-': stdout)")
    export.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    export.add_argument(
        "--vectors",
        action="store_true",
        help="include each record's stored vector, with its embedder's name and dimensions",
    )
    export.add_argument(
        "--history",
        action="store_true",
        help="also earlier versions (lines with valid_to; MemoryPrimitive(history=N))",
    )
    imp = command(
        "import",
        "read records from a JSON Lines FILE ('-': stdin); every line is checked before "
        "anything is written",
    )
    imp.add_argument("file", help="an export of tta-memory ('-': stdin)")
    imp.add_argument(
        "--on-conflict",
        choices=("replace", "skip", "error"),
        default="replace",
        help="an existing key is replaced (default), skipped, or an error (then nothing is "
        "imported)",
    )
    imp.add_argument(
        "--drop-vectors",
        action="store_true",
        help="import the records without the file's vectors when no embedder can remake "
        "them (semantic search will not find those records)",
    )
    command(
        "namespaces",
        "--namespace and the namespaces below it that hold records, each as --namespace "
        "reads it (--namespace /: every namespace); exit 1 when there are none",
    )
    mcp = command("mcp", "serve the memory to AI agents over MCP (needs the mcp extra)")
    mcp.add_argument("--url", default=argparse.SUPPRESS, help="Redis URL (default: in process)")
    mcp.add_argument(
        "--namespace",
        type=_namespace_arg,
        default=argparse.SUPPRESS,
        help="the root namespace; clients reach only it and the namespaces below it",
    )
    mcp.add_argument(
        "--embedder",
        type=lambda t: ("none", None) if t == "none" else _embedder_arg(t),
        default=argparse.SUPPRESS,
        help=f"{EMBEDDERS} or none (default: minilm when the embeddings extra is installed)",
    )
    mcp.add_argument("--http", metavar="HOST:PORT", help="streamable HTTP at /mcp, not stdio")
    mcp.add_argument("--token", help="bearer token HTTP clients must send ($TTA_MEMORY_TOKEN)")
    mcp.add_argument("--read-only", action="store_true", help="no remember, update or forget")
    mcp.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a Host header HTTP clients may send besides loopback's (repeatable)",
    )
    mcp.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an Origin header browsers may send besides loopback's (repeatable)",
    )
    mcp.add_argument("--max-size", type=_positive, help="most records a namespace keeps (LRU)")
    command(
        "upgrade",
        "convert every namespace of --prefix written by tta-dev-primitives 0.1.0 to this "
        "version's layout, once (stop the 0.1.0 writers first)",
    )
    return parser


# -- output -------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: IO[str]) -> None:
    """Print ``rows`` under ``headers`` in aligned columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in (headers, *rows):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


class Progress:
    """A one-line progress bar on a terminal's stderr (nothing elsewhere, nothing when small)."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: IO[str],
        unit: str = "records",
        minimum: int = PROGRESS_MIN,
    ) -> None:
        self.label, self.total, self.stream, self.unit = label, total, stream, unit
        isatty = getattr(stream, "isatty", None)
        self.active = bool(isatty and isatty()) and total >= minimum
        self._last = 0.0

    def __call__(self, done: int) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        frac = min(done / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac:4.0%} {done}/{self.total} {self.unit}")
        self.stream.flush()

    def close(self) -> None:
        if self.active:
            self.stream.write("\n")
            self.stream.flush()


# -- records -------------------------------------------------------------------------------------


def _row(r: MemoryRecord) -> dict[str, Any]:
    return transfer.record_object(
        (), r.key, r.value, r.metadata, r.created_at or None, r.updated_at or None, r.expires_at
    )


async def _record(memory: MemoryPrimitive, key: str) -> dict[str, Any] | None:
    r = await memory.get_record(key)
    return None if r is None else _row(r)


async def _page(
    memory: MemoryPrimitive,
    filter: Mapping[str, Any] | None,
    limit: int,
    cursor: str | None,
    order: Literal["newest", "oldest"],
) -> tuple[list[dict[str, Any]], str | None]:
    page = await memory.list(filter=filter, limit=limit, cursor=cursor, order=order)
    return [_row(r) for r in page.records], page.next_cursor


# -- commands -----------------------------------------------------------------------------------


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
            ("oldest", _when(oldest)),
            ("newest", _when(newest)),
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
    rows, cursor = await _page(memory, args.filter, args.limit, args.cursor, args.order)
    if not rows and args.cursor is None and await _missing(memory):
        raise NotFound(_empty(memory.namespace))
    if args.json:
        out.write(json.dumps({"records": rows, "next_cursor": cursor}, ensure_ascii=False) + "\n")
        return EXIT_OK
    table(
        [
            (r["key"], _short(r["metadata"], 40), _when(r["updated_at"]), _when(r["expires_at"]))
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
        record = None if found is None else _row(found)
        if record is not None and found is not None:
            record["valid_from"], record["valid_to"] = found.valid_from, found.valid_to
    else:
        record = await _record(memory, args.key)
    if record is None:
        raise NotFound(f"no record {args.key!r} in namespace {namespace_text(memory.namespace)}")
    if args.json:
        del record["namespace"]
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    out.write(json.dumps(record["value"], ensure_ascii=False, indent=2) + "\n")
    out.write(f"metadata: {json.dumps(record['metadata'], ensure_ascii=False)}\n")
    out.write(f"updated: {_when(record['updated_at'])}  expires: {_when(record['expires_at'])}\n")
    if "valid_to" in record:
        out.write(f"valid: {_when(record['valid_from'])} to {_when(record['valid_to'])}\n")
    return EXIT_OK


async def cmd_history(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    versions = await memory.history(args.key)
    if args.json:
        rows = []
        for v in versions:
            row = _row(v)
            del row["namespace"]
            row["valid_from"], row["valid_to"] = v.valid_from, v.valid_to
            rows.append(row)
        out.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        table(
            [
                (
                    _when(v.valid_from),
                    "now" if v.valid_to is None else _when(v.valid_to),
                    _short(v.value),
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
            [(f"{h.score:.3f}", h.key, _short(h.value)) for h in hits],
            ("SCORE", "KEY", "VALUE"),
            out,
        )
    return EXIT_OK if hits else EXIT_NOT_FOUND


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
    with _open(args.file, "w", out) as stream:
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


async def _namespace_space(memory: MemoryPrimitive) -> tuple[str, int] | None:
    """The (embedder, dimensions) of the vectors --namespace's records carry, if any."""
    backend = memory.backend
    if not isinstance(backend, VectorBackend):
        return None
    return (await backend.get_vectors(memory.namespace, [])).space


def _notice(message: str) -> None:
    sys.stderr.write(f"{_PROG}: {message}\n")


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
            _notice(f"using embedder {space[0]!r}, which the file's vectors name")
            return make_embedder(spec)
        if args.drop_vectors:
            return None
        named = ", ".join(f"{name!r} ({dims} dimensions)" for name, dims in checked.spaces)
        raise UsageError(
            f"the file's records carry vectors of embedder {named}, which {_PROG} cannot "
            f"make: pass --embedder ({EMBEDDERS}) to embed the records again, or "
            "--drop-vectors to import them without vectors (semantic search will then not "
            "find them)"
        )
    recorded = await _namespace_space(memory)
    if recorded is not None and (spec := embedder_spec(recorded)) is not None:
        _notice(f"using embedder {recorded[0]!r}, which the namespace's vectors name")
        return make_embedder(spec)
    return None


async def cmd_import(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    with _open_bytes(args.file) as stream:
        total = 0
        if args.file != "-":
            with contextlib.suppress(OSError):
                total = os.fstat(stream.fileno()).st_size
        progress = Progress("checking", total // 1024, sys.stderr, unit="KiB", minimum=64)
        read = _counting(stream)
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


class _counting:
    """Iterate a binary stream's lines, counting the bytes read (for the import progress)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            self.bytes += len(line)
            yield line


@contextlib.contextmanager
def _open(path: str, mode: str, std: IO[str]) -> Iterator[IO[str]]:
    if path == "-":
        yield std
        return
    try:
        stream = open(path, mode, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror}") from None
    with stream:
        yield stream


@contextlib.contextmanager
def _open_bytes(path: str) -> Iterator[IO[bytes]]:
    # Binary, so that bytes which are not UTF-8 are named by their line (read_jsonl).
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror}") from None
    with stream:
        yield stream


_COMMANDS = {
    "stats": cmd_stats,
    "ls": cmd_ls,
    "get": cmd_get,
    "history": cmd_history,
    "search": cmd_search,
    "rm": cmd_rm,
    "export": cmd_export,
    "import": cmd_import,
    "namespaces": cmd_namespaces,
    "upgrade": cmd_upgrade,
}
_ROOT_COMMANDS = ("namespaces", "stats", "upgrade")


# -- entry point --------------------------------------------------------------------------------


def _where(backend: RedisBackend) -> str:
    attrs = backend.info().attributes
    host = attrs.get("server.address")
    return f"{host}:{attrs.get('server.port')}" if host else "the server"


def _open_backend(url: str, source: str, args: argparse.Namespace) -> RedisBackend:
    if not url.startswith(
        ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    ):
        scheme = url.partition("://")[0] if "://" in url else url[:20]
        raise UsageError(f"{source} is not a Redis URL (scheme {scheme!r}): use {SCHEMES}")
    try:
        return RedisBackend.from_url(
            url, prefix=args.prefix, max_size=None, retries=1, socket_timeout=args.timeout
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{source} is not a usable Redis URL: {exc}") from None


async def _reach(backend: RedisBackend, source: str) -> None:
    try:
        await backend.ping()
    except MemoryBackendError as exc:
        where = _where(backend)
        if "DB index is out of range" in str(exc):
            raise UsageError(
                f"{source} names a database that {where} does not have (DB index is out of "
                "range: a Redis server has databases 0 to 15 unless configured otherwise)"
            ) from None
        verb = "cannot reach" if exc.transient else "refused by"
        raise MemoryBackendError(
            f"{verb} {where}: {exc}", backend="redis", operation="ping"
        ) from exc


async def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Run the parsed command against the store; return the exit code (errors raise)."""
    if args.namespace == ROOT and args.command not in _ROOT_COMMANDS:
        raise UsageError(
            f"{args.command} needs a namespace, not the root (--namespace / is for "
            "namespaces and stats)"
        )
    source = "--url" if args.url else ENV_URL
    url = args.url or os.environ.get(ENV_URL)
    if not url:
        raise UsageError(
            f"no store to open: pass --url redis://host:6379 or set {ENV_URL} "
            "(an in-process memory lives only inside the program that created it)"
        )
    backend = _open_backend(url, source, args)
    namespace = args.namespace or ("default",)  # the root: commands ask the backend
    memory: MemoryPrimitive | None = None
    try:
        await _reach(backend, source)
        embedder = None
        if args.embedder is not None and args.command in ("search", "import"):
            embedder = make_embedder(args.embedder)
        elif args.command == "search" and args.mode in ("semantic", "hybrid"):
            probe = MemoryPrimitive(backend=backend, namespace=namespace)
            recorded = await _namespace_space(probe)
            if recorded is not None and (spec := embedder_spec(recorded)) is not None:
                _notice(f"using embedder {recorded[0]!r}, which the namespace's vectors name")
                embedder = make_embedder(spec)
        args.made_embedder = embedder
        memory = MemoryPrimitive(backend=backend, namespace=namespace, embedder=embedder)
        return await _COMMANDS[args.command](memory, args, out)
    finally:
        if memory is not None:
            await memory.aclose()
        await backend.aclose()


def _warn(message: Warning | str, *_: Any, **__: Any) -> None:
    sys.stderr.write(f"{_PROG}: warning: {' '.join(str(message).split())}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tta-memory`` with ``argv`` (``sys.argv[1:]`` when None); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        if not hasattr(args, "json"):
            args.json = False
        if args.command == "mcp":
            return _mcp(args)
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = _warn
            return asyncio.run(run(args, sys.stdout))
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except NotFound as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except transfer.ImportConflictError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except MemoryBackendError as exc:
        return _fail(f"backend: {exc}", EXIT_BACKEND)
    except (TypeError, ValueError) as exc:
        return _fail(_text(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # `tta-memory export | head`: the reader left; nothing to report.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK


def _mcp(args: argparse.Namespace) -> int:
    try:
        from .integrations import mcp
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    return mcp.main(args)


def _text(exc: BaseException) -> str:
    """The exception's message, with the notes added to it (what an import left behind)."""
    return " ".join([str(exc), *getattr(exc, "__notes__", ())])


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{_PROG}: error: {' '.join(message.split())}\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
