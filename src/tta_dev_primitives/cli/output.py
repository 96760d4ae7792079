"""``tta-memory``'s output (tables, progress bars, notices), records as rows, files."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Literal

from ..memory import transfer
from ..memory.backends.base import VectorBackend
from ..memory.embeddings import Embedder
from ..memory.primitive import MemoryPrimitive
from ..memory.records import MemoryRecord
from .args import (
    PROG,
    PROGRESS_MIN,
    UsageError,
    embedder_spec,
    make_embedder,
)

__all__ = [
    "CountingLines",
    "Progress",
    "get_row",
    "list_page",
    "namespace_embedder",
    "notice",
    "open_bytes",
    "open_text",
    "record_row",
    "short_text",
    "table",
    "when_text",
]


def when_text(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def short_text(value: Any, width: int = 48) -> str:
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


def record_row(r: MemoryRecord) -> dict[str, Any]:
    return transfer.record_object(
        (),
        r.key,
        r.value,
        r.metadata,
        r.created_at or None,
        r.updated_at or None,
        r.expires_at,
        index_text=r.index_text,
    )


async def get_row(memory: MemoryPrimitive, key: str) -> dict[str, Any] | None:
    r = await memory.get_record(key)
    return None if r is None else record_row(r)


async def list_page(
    memory: MemoryPrimitive,
    filter: Mapping[str, Any] | None,
    limit: int,
    cursor: str | None,
    order: Literal["newest", "oldest"],
) -> tuple[list[dict[str, Any]], str | None]:
    page = await memory.list(filter=filter, limit=limit, cursor=cursor, order=order)
    return [record_row(r) for r in page.records], page.next_cursor


# -- commands -----------------------------------------------------------------------------------


class CountingLines:
    """Iterate a binary stream's lines, counting the bytes read (for the import progress)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            self.bytes += len(line)
            yield line


@contextlib.contextmanager
def open_text(path: str, mode: str, std: IO[str]) -> Iterator[IO[str]]:
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
def open_bytes(path: str) -> Iterator[IO[bytes]]:
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


async def namespace_embedder(memory: MemoryPrimitive) -> Embedder | None:
    """The embedder of the vectors --namespace's records carry, when this tool can make it
    (saying so on stderr)."""
    backend = memory.backend
    if not isinstance(backend, VectorBackend):
        return None
    recorded = (await backend.get_vectors(memory.namespace, [])).space
    if recorded is None or (spec := embedder_spec(recorded)) is None:
        return None
    notice(f"using embedder {recorded[0]!r}, which the namespace's vectors name")
    return make_embedder(spec)


def notice(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
