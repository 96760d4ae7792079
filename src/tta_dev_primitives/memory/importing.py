"""Import: checked format objects written into a namespace tree in batches (see
:mod:`.transfer`).

:meth:`MemoryPrimitive.import_` runs :func:`import_into` as its ``import`` operation: the
records are checked first (:func:`~.transfer.check_records`), then written batch by batch,
their vectors reused when this memory's embedder made them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import codec
from .backends.base import HistoryBackend
from .errors import MemoryBackendError
from .history import names_forgotten
from .records import Entry, Namespace
from .search import indexed_value, normalize_vector
from .transfer import (
    BATCH_SIZE,
    CheckedRecords,
    ImportConflictError,
    ImportIncompleteError,
    ImportReport,
    OnConflict,
    check_records,
)

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["import_into"]


@dataclass(slots=True)
class _Counts:
    imported: int = 0
    skipped_existing: int = 0
    skipped_expired: int = 0
    vectors_reused: int = 0
    reembedded: int = 0
    vectors_dropped: int = 0
    skipped_forgotten: int = 0
    versions_imported: int = 0
    versions_skipped: int = 0

    def report(self, namespaces: set[Namespace]) -> ImportReport:
        return ImportReport(
            self.imported,
            self.skipped_existing,
            self.skipped_expired,
            self.vectors_reused,
            self.reembedded,
            len(namespaces),
            self.vectors_dropped,
            self.skipped_forgotten,
            self.versions_imported,
            self.versions_skipped,
        )


async def import_into(
    rt: Runtime,
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    *,
    on_conflict: OnConflict = "replace",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Write ``records`` (format objects) into the runtime's namespace tree, in batches.

    Every record is checked first (:func:`check_records`), so a malformed one writes
    nothing; with ``on_conflict="error"`` every key is looked up before the first write too.
    See :meth:`~tta_dev_primitives.memory.MemoryPrimitive.import_`.
    """
    if on_conflict not in ("replace", "skip", "error"):
        raise ValueError(f"on_conflict must be 'replace', 'skip' or 'error', got {on_conflict!r}")
    limit = rt.writer.max_value_bytes
    if isinstance(records, CheckedRecords) and records.max_value_bytes in (limit, None):
        return await _import_checked(rt, records, on_conflict, progress)
    with await check_records(records, max_value_bytes=limit) as checked:
        return await _import_checked(rt, checked, on_conflict, progress)


async def _import_checked(
    rt: Runtime,
    checked: CheckedRecords,
    on_conflict: OnConflict,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    if rt.embedder is None and checked.spaces:
        _warn_dropped(checked.spaces)
    if on_conflict == "error":
        await _check_conflicts(rt, checked)
    counts = _Counts()
    written: set[Namespace] = set()
    resume: OnConflict = "replace" if on_conflict == "replace" else "skip"
    batch: list[tuple[str, dict[str, Any]]] = []
    batch_ns: Namespace = ()
    handled = 0

    async def flush() -> None:
        nonlocal handled
        try:
            await _write_batch(rt, batch_ns, batch, on_conflict, counts, written)
        except ImportConflictError:
            raise
        except MemoryBackendError as exc:
            where = (batch[0][0], batch[-1][0], len(batch))
            raise ImportIncompleteError(
                exc, counts.report(written), handled, where, checked.count, resume
            ) from exc
        except Exception as exc:
            # The embedder (or another check of the batch) refused it before its write.
            if handled:
                exc.add_note(
                    f"The import stopped after handling {handled} of {checked.count} records "
                    f"({counts.imported} written); nothing from {batch[0][0]} on was "
                    f"written. Importing the same records again with "
                    f"on_conflict={resume!r} finishes it."
                )
            raise
        handled += len(batch)
        if progress is not None:
            progress(handled)

    for where, record in checked.located():
        ns = tuple(record["namespace"])
        if batch and (ns != batch_ns or len(batch) >= BATCH_SIZE):
            await flush()
            batch = []
        batch_ns = ns
        batch.append((where, record))
    if batch:
        await flush()
    elif progress is not None:
        progress(0)
    return counts.report(written)


def _warn_dropped(spaces: Mapping[tuple[str, int], int]) -> None:
    named = ", ".join(
        f"{n} records of {name!r} ({dims} dimensions)" for (name, dims), n in spaces.items()
    )
    warnings.warn(
        f"the imported records carry vectors ({named}) but this memory has no embedder: "
        "the vectors are dropped, and semantic search will not find these records; import "
        "with a MemoryPrimitive whose embedder is the one named",
        UserWarning,
        stacklevel=2,
    )


async def _check_conflicts(rt: Runtime, checked: CheckedRecords) -> None:
    """Raise ImportConflictError for the first record whose key holds a live record."""
    backend = rt.backend
    now = time.time()
    batch: list[str] = []
    batch_ns: Namespace = ()

    async def look() -> None:
        existing = await backend.get_many(rt.namespace + batch_ns, batch)
        for key, e in zip(batch, existing, strict=True):
            if e is not None:
                raise ImportConflictError(key, batch_ns, ImportReport())

    for _, record in checked.located():
        if record["expires_at"] is not None and record["expires_at"] <= now:
            continue  # skipped, so no conflict
        ns = tuple(record["namespace"])
        if batch and (ns != batch_ns or len(batch) >= BATCH_SIZE):
            await look()
            batch = []
        batch_ns = ns
        batch.append(record["key"])
    if batch:
        await look()


async def _write_batch(
    rt: Runtime,
    sub: Namespace,
    batch: list[tuple[str, dict[str, Any]]],
    on_conflict: OnConflict,
    counts: _Counts,
    written: set[Namespace],
) -> None:
    now = time.time()
    live = []
    for _, r in batch:
        if r["expires_at"] is not None and r["expires_at"] <= now:
            counts.skipped_expired += 1
        else:
            live.append(r)
    if not live:
        return
    namespace = rt.namespace + sub
    backend = rt.backend
    if isinstance(backend, HistoryBackend):
        forgotten = await backend.forgotten(namespace)
        if forgotten:
            kept = [
                r
                for r in live
                if r["key"] not in forgotten and not names_forgotten(r["metadata"], forgotten)
            ]
            counts.skipped_forgotten += len(live) - len(kept)
            live = kept
    earlier = [r for r in live if r.get("valid_to") is not None]
    if earlier:
        live = [r for r in live if r.get("valid_to") is None]
        if rt.history and isinstance(backend, HistoryBackend):
            entries = await _entries(rt, earlier, counts)
            pairs = [(e, r["valid_to"]) for e, r in zip(entries, earlier, strict=True)]
            await backend.restore(namespace, pairs, rt.history)
            counts.versions_imported += len(pairs)
            written.add(sub)
        else:
            counts.versions_skipped += len(earlier)
    if not live:
        return
    conflict: dict[str, Any] | None = None
    if on_conflict != "replace":
        existing = await backend.get_many(namespace, [r["key"] for r in live])
        if on_conflict == "skip":
            kept = [r for r, e in zip(live, existing, strict=True) if e is None]
            counts.skipped_existing += len(live) - len(kept)
            live = kept
        else:
            for i, e in enumerate(existing):
                if e is not None:
                    conflict = live[i]
                    live = live[:i]
                    break
    if live:
        if rt.embedder is None:
            await rt.writer.warn_if_vectors(rt.backend, namespace)
        entries = await _entries(rt, live, counts)
        await backend.put_many(namespace, entries)
        counts.imported += len(entries)
        written.add(sub)
    if conflict is not None:
        raise ImportConflictError(conflict["key"], sub, counts.report(written))


async def _entries(rt: Runtime, records: list[dict[str, Any]], counts: _Counts) -> list[Entry]:
    """Validated entries of checked records: ttl from each absolute ``expires_at``; the
    exported vector when ``memory``'s embedder made it, a fresh embedding otherwise."""
    encoded = [codec.encode_snapshot(r["value"], rt.writer.max_value_bytes) for r in records]
    vectors: list[Any] = [None] * len(records)
    if rt.embedder is None:
        counts.vectors_dropped += sum(r["vector"] is not None for r in records)
    else:
        todo = []
        for i, r in enumerate(records):
            vec = r["vector"]
            if (
                vec is not None
                and rt.writer.space(vec["values"]) == (vec["embedder"], vec["dimensions"])
                and any(vec["values"])  # a zero vector finds nothing: embed again
            ):
                # float32 as exported (the JSON numbers are its exact values), so a vector
                # round-trips unchanged: normalize_vector keeps a unit float32 vector as it is.
                vectors[i] = normalize_vector(np.asarray(vec["values"], dtype=np.float32))
            else:
                todo.append(i)
        if todo:
            fresh = await rt.writer.embed(
                [indexed_value(records[i]["value"], records[i].get("index_text")) for i in todo]
            )
            for i, v in zip(todo, fresh, strict=True):
                vectors[i] = v
        counts.reembedded += len(todo)
        counts.vectors_reused += len(records) - len(todo)
    # The ttls last, right before the write, so an expiry moves by no more than the write.
    now = time.time()
    entries = []
    for r, (payload, snap), v in zip(records, encoded, vectors, strict=True):
        expires = r["expires_at"]
        # A record about to expire keeps a millisecond, the finest TTL every backend keeps.
        ttl = None if expires is None else max(expires - now, 0.001)
        entries.append(
            Entry(
                r["key"],
                payload,
                r["metadata"] or None,
                ttl,
                v,
                snapshot=snap,
                space=rt.writer.space(v),
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                index_text=r.get("index_text"),
            )
        )
    return entries
