"""``tta-memory``'s entry point: open the store, run the command, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import IO, Any

from ..memory import transfer
from ..memory.backends.redis import RedisBackend
from ..memory.errors import MemoryBackendError
from ..memory.primitive import MemoryPrimitive
from .args import (
    ENV_URL,
    EXIT_BACKEND,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    ROOT,
    SCHEMES,
    NotFound,
    UsageError,
    build_parser,
    make_embedder,
)
from .browse import cmd_get, cmd_history, cmd_ls, cmd_namespaces, cmd_search, cmd_stats
from .change import cmd_export, cmd_import, cmd_rm, cmd_upgrade
from .output import (
    namespace_embedder,
)

__all__ = ["main", "run"]

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
            embedder = await namespace_embedder(probe)
        args.made_embedder = embedder
        memory = MemoryPrimitive(backend=backend, namespace=namespace, embedder=embedder)
        return await _COMMANDS[args.command](memory, args, out)
    finally:
        if memory is not None:
            await memory.aclose()
        await backend.aclose()


def _warn(message: Warning | str, *_: Any, **__: Any) -> None:
    sys.stderr.write(f"{PROG}: warning: {' '.join(str(message).split())}\n")


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
        from ..integrations import mcp
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    return mcp.main(args)


def _text(exc: BaseException) -> str:
    """The exception's message, with the notes added to it (what an import left behind)."""
    return " ".join([str(exc), *getattr(exc, "__notes__", ())])


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    return code
