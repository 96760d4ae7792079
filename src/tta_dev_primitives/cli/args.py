"""``tta-memory``'s arguments: the parser, its argument types, exit codes and errors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from typing import Any, NoReturn, cast

from .. import __version__
from ..memory import codec
from ..memory.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder
from ..memory.records import Namespace

__all__ = [
    "EMBEDDERS",
    "ENV_URL",
    "EXIT_BACKEND",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_VALUE_BYTES",
    "NotFound",
    "PROG",
    "PROGRESS_MIN",
    "Parser",
    "ROOT",
    "SCHEMES",
    "UsageError",
    "build_parser",
    "embedder_spec",
    "make_embedder",
    "namespace_text",
]

ENV_URL = "TTA_MEMORY_URL"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_BACKEND = 0, 1, 2, 3
PROGRESS_MIN = 1000  # records exported (KiB imported) before a progress bar is worth it
MAX_VALUE_BYTES = codec.DEFAULT_MAX_VALUE_BYTES  # the memories tta-memory opens keep the default
PROG = "tta-memory"
SCHEMES = "redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://"
ROOT = ()  # --namespace / (or '' or []): every namespace, for namespaces and stats


class UsageError(Exception):
    """Bad arguments or input: exit 2."""


class NotFound(Exception):
    """The key (or anything matching) is not there: exit 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line on stderr, as every other error (argparse prints the usage too).
        raise UsageError(f"{message} (see {PROG} --help)")


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


def build_parser() -> Parser:
    """The argument parser of ``tta-memory``."""
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output for scripts"
    )
    parser = Parser(
        prog=PROG,
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
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
