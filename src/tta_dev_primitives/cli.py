"""``tta-memory``: look into a memory store, and take records out and put them back.

Usage::

    tta-memory --url redis://localhost:6379 --namespace app/users stats
    tta-memory ls --filter '{"role": "user"}' --limit 20
    tta-memory get turn:1
    tta-memory search "python" --limit 5 --json
    tta-memory rm turn:1            # or: rm --where '{"session": "s1"}'
    tta-memory export backup.jsonl  # JSON Lines, see tta_dev_primitives.memory.transfer
    tta-memory import backup.jsonl --on-conflict skip
    tta-memory namespaces
    tta-memory mcp --url redis://localhost:6379  # an MCP server (the mcp extra)

Without ``--url`` the URL comes from ``TTA_MEMORY_URL``. Output is a table for people and
JSON with ``--json``. Exit codes: 0 ok, 1 not found, 2 usage (bad arguments or input),
3 backend unreachable or failing. Errors are one line on stderr. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Literal, NoReturn, cast

from . import __version__
from .memory import transfer
from .memory.backends.redis import RedisBackend
from .memory.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder
from .memory.errors import MemoryBackendError
from .memory.primitive import MemoryPrimitive
from .memory.records import MemoryRecord

__all__ = ["main"]

ENV_URL = "TTA_MEMORY_URL"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_BACKEND = 0, 1, 2, 3
PROGRESS_MIN = 1000  # records exported (KiB imported) before a progress bar is worth it
_PROG = "tta-memory"


class UsageError(Exception):
    """Bad arguments or input: exit 2."""


class NotFound(Exception):
    """The key (or anything matching) is not there: exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line on stderr, as every other error (argparse prints the usage too).
        raise UsageError(f"{message} (see {_PROG} --help)")


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _namespace_arg(text: str) -> tuple[str, ...]:
    if text.startswith("["):
        try:
            parts = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not a JSON list: {exc.msg}") from None
    else:
        parts = text.split("/")
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
        raise argparse.ArgumentTypeError(
            "a namespace is parts separated by '/' (a/b), or a JSON list of non-empty strings"
        )
    return tuple(parts)


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
        help=f"redis://host:port/db, rediss://..., redis+cluster://... (default: ${ENV_URL})",
    )
    parser.add_argument(
        "--namespace",
        type=_namespace_arg,
        default=("default",),
        help="namespace parts separated by '/' (default: default)",
    )
    parser.add_argument("--prefix", default="tta", help="key prefix the store uses (default tta)")
    parser.add_argument(
        "--embedder",
        type=_embedder_arg,
        help=f"embedder of search --mode semantic/hybrid and of import's re-embedding: "
        f"{EMBEDDERS} (the embeddings extra); it must be the one that wrote the records' "
        "vectors",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds one server reply may take (default 30: whole-namespace reads are slow)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    command("stats", "records, namespaces, bytes, oldest/newest, backend")
    ls = command("ls", "keys with their metadata, newest first")
    ls.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    ls.add_argument("--limit", type=_positive, default=20, help="records per page (default 20)")
    ls.add_argument("--cursor", help="next page: the cursor the previous page printed")
    ls.add_argument("--order", choices=("newest", "oldest"), default="newest")
    get = command("get", "one record")
    get.add_argument("key")
    search = command("search", "search the records")
    search.add_argument("query")
    search.add_argument("--mode", choices=("keyword", "semantic", "hybrid"))
    search.add_argument("--limit", type=_positive, default=5)
    search.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    rm = command("rm", "delete KEY, or every record matching --where")
    rm.add_argument("key", nargs="?")
    rm.add_argument("--where", type=_json_arg, help="metadata filter (JSON object)")
    export = command("export", "write records as JSON Lines to FILE (default stdout)")
    export.add_argument("file", nargs="?", default="-")
    export.add_argument("--filter", type=_json_arg, help="metadata filter (JSON object)")
    export.add_argument(
        "--vectors",
        action="store_true",
        help="include each record's stored vector, with its embedder's name and dimensions",
    )
    imp = command("import", "read records from a JSON Lines FILE ('-': stdin)")
    imp.add_argument("file")
    imp.add_argument("--on-conflict", choices=("replace", "skip", "error"), default="replace")
    command("namespaces", "namespaces below --namespace that hold records")
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
    mcp.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]")
    mcp.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN")
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


async def cmd_stats(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    records = nbytes = 0
    oldest: float | None = None
    newest: float | None = None
    spaces: set[tuple[str, ...]] = set()
    async for r in memory.export():
        records += 1
        spaces.add(tuple(r["namespace"]))
        nbytes += len(transfer.dumps_line({"key": r["key"], "value": r["value"]}).encode())
        created, updated = r["created_at"], r["updated_at"]
        if created is not None:
            oldest = created if oldest is None else min(oldest, created)
        if updated is not None:
            newest = updated if newest is None else max(newest, updated)
    info = memory.get_backend_info()
    backend = info["backend"]
    if "server.address" in info:
        backend += f" {info['server.address']}:{info.get('server.port', '')}".rstrip(":")
    stats = {
        "namespace": list(memory.namespace),
        "records": records,
        "namespaces": len(spaces),
        "bytes": nbytes,
        "oldest": oldest,
        "newest": newest,
        "backend": backend,
    }
    if args.json:
        out.write(json.dumps(stats) + "\n")
    else:
        rows = [
            ("namespace", "/".join(memory.namespace)),
            ("records", str(records)),
            ("namespaces", str(len(spaces))),
            ("bytes", str(nbytes)),
            ("oldest", _when(oldest)),
            ("newest", _when(newest)),
            ("backend", backend),
        ]
        table(rows, ("STAT", "VALUE"), out)
    return EXIT_OK


async def cmd_ls(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    rows, cursor = await _page(memory, args.filter, args.limit, args.cursor, args.order)
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
    record = await _record(memory, args.key)
    if record is None:
        raise NotFound(f"no record {args.key!r} in namespace {'/'.join(memory.namespace)}")
    if args.json:
        del record["namespace"]
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    out.write(json.dumps(record["value"], ensure_ascii=False, indent=2) + "\n")
    out.write(f"metadata: {json.dumps(record['metadata'], ensure_ascii=False)}\n")
    out.write(f"updated: {_when(record['updated_at'])}  expires: {_when(record['expires_at'])}\n")
    return EXIT_OK


async def cmd_search(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if args.mode in ("semantic", "hybrid") and args.embedder is None:
        raise UsageError(
            f"--mode {args.mode} needs --embedder ({EMBEDDERS}): the embedder that wrote "
            "the records' vectors"
        )
    hits = await memory.search(args.query, limit=args.limit, mode=args.mode, filter=args.filter)
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


async def cmd_rm(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    if (args.key is None) == (args.where is None):
        raise UsageError("rm takes a KEY or --where FILTER (one of them)")
    if args.key is not None:
        deleted = int(await memory.delete(args.key))
    else:
        if not args.where:
            raise UsageError("--where {} would delete everything; it must name a field")
        deleted = await memory.delete_where(args.where)
    if args.json:
        out.write(json.dumps({"deleted": deleted}) + "\n")
    elif deleted:
        out.write(f"deleted {deleted} record{'s' if deleted != 1 else ''}\n")
    if deleted == 0:
        what = repr(args.key) if args.key is not None else "matching " + json.dumps(args.where)
        raise NotFound(f"no record {what} in namespace {'/'.join(memory.namespace)}")
    return EXIT_OK


async def cmd_export(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    progress = Progress("exporting", await memory.size(), sys.stderr)
    with _open(args.file, "w", out) as stream:
        count = await transfer.write_jsonl(
            memory.export(filter=args.filter, vectors=args.vectors),
            stream,
            namespace=memory.namespace,
            progress=progress,
        )
    progress.close()
    if args.file != "-":
        out.write(f"exported {count} records to {args.file}\n")
    return EXIT_OK


async def cmd_import(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    with _open(args.file, "r", sys.stdin) as stream:
        total = 0
        if args.file != "-":
            with contextlib.suppress(OSError):
                total = os.fstat(stream.fileno()).st_size
        progress = Progress("importing", total // 1024, sys.stderr, unit="KiB", minimum=64)
        read = _counting(stream)
        lines = transfer.read_jsonl(read)
        bar = (lambda _n: progress(read.bytes // 1024)) if progress.active else None
        try:
            report = await memory.import_(lines, on_conflict=args.on_conflict, progress=bar)
        finally:
            progress.close()
    result = {
        "imported": report.imported,
        "skipped_existing": report.skipped_existing,
        "skipped_expired": report.skipped_expired,
        "vectors_reused": report.vectors_reused,
        "reembedded": report.reembedded,
        "namespaces": report.namespaces,
    }
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        vectors = ""
        if report.vectors_reused or report.reembedded:
            vectors = f"; vectors: {report.vectors_reused} reused, {report.reembedded} embedded"
        out.write(
            f"imported {report.imported} records into {report.namespaces} namespace(s); "
            f"skipped {report.skipped_existing} existing, {report.skipped_expired} expired"
            f"{vectors}\n"
        )
    return EXIT_OK


async def cmd_namespaces(memory: MemoryPrimitive, args: argparse.Namespace, out: IO[str]) -> int:
    listed = await memory.namespaces()  # relative to --namespace
    found = [memory.namespace] if await memory.size() else []
    for ns in listed:
        full = memory.namespace + tuple(ns)
        if full not in found:
            found.append(full)
    if args.json:
        out.write(json.dumps([list(ns) for ns in found], ensure_ascii=False) + "\n")
    else:
        for ns in found:
            out.write("/".join(ns) + "\n")
    return EXIT_OK if found else EXIT_NOT_FOUND


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
    """Iterate a text stream's lines, counting the bytes read (for the import progress)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.bytes = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.bytes += len(line.encode("utf-8", "surrogatepass"))
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


_COMMANDS = {
    "stats": cmd_stats,
    "ls": cmd_ls,
    "get": cmd_get,
    "search": cmd_search,
    "rm": cmd_rm,
    "export": cmd_export,
    "import": cmd_import,
    "namespaces": cmd_namespaces,
    "upgrade": cmd_upgrade,
}


# -- entry point --------------------------------------------------------------------------------


def _where(backend: RedisBackend) -> str:
    attrs = backend.info().attributes
    host = attrs.get("server.address")
    return f"{host}:{attrs.get('server.port')}" if host else "the server"


async def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Run the parsed command against the store; return the exit code (errors raise)."""
    url = args.url or os.environ.get(ENV_URL)
    if not url:
        raise UsageError(
            f"no store to open: pass --url redis://host:6379 or set {ENV_URL} "
            "(an in-process memory lives only inside the program that created it)"
        )
    try:
        backend = RedisBackend.from_url(
            url, prefix=args.prefix, max_size=None, retries=1, socket_timeout=args.timeout
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--url is not a Redis URL: {exc}") from None
    embedder = None
    if args.embedder is not None and args.command in ("search", "import"):
        embedder = make_embedder(args.embedder)
    memory = MemoryPrimitive(backend=backend, namespace=args.namespace, embedder=embedder)
    try:
        try:
            await backend.ping()
        except MemoryBackendError as exc:
            raise MemoryBackendError(
                f"cannot reach {_where(backend)}: {exc}", backend="redis", operation="ping"
            ) from exc
        return await _COMMANDS[args.command](memory, args, out)
    finally:
        await memory.aclose()
        await backend.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tta-memory`` with ``argv`` (``sys.argv[1:]`` when None); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        if not hasattr(args, "json"):
            args.json = False
        if args.command == "mcp":
            return _mcp(args)
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
        return _fail(str(exc), EXIT_USAGE)
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


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{_PROG}: error: {' '.join(message.split())}\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
