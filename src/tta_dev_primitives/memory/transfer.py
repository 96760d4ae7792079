"""Export and import: a namespace's records as JSON Lines, streamed both ways.

The format (``tta-memory`` version 2; version 1 files are read as before) is one JSON object
per line, UTF-8:

* the first line is the header,
  ``{"format": "tta-memory", "version": 1, "exported_at": 1764620000.0, "namespace": ["app"]}``
  (``namespace`` is where the records came from, for information only);
* every other line is one record::

    {"namespace": [], "key": "k", "value": {...}, "metadata": {...},
     "created_at": 1764610000.0, "updated_at": 1764610000.0, "expires_at": null}

  ``namespace`` holds the parts *below* the exported namespace (``[]`` for the namespace
  itself, ``["s1"]`` for ``scoped("s1")``), so a file exported from one namespace imports into
  any other. Times are epoch seconds; ``expires_at`` is absolute (``null``: never expires), so
  a record keeps its expiry however long the file waits. ``created_at``/``updated_at`` may be
  ``null`` when the source could not say; an import restores them where the backend can set
  record times (``Entry.created_at``/``updated_at``; the in-memory backend). A record may carry
  ``"vector": {"embedder": "name", "dimensions": 384, "values": [...]}`` (``export(vectors=True)``,
  from a backend with the ``VectorBackend`` capability; the values are the stored float32
  numbers, exactly): an import reuses it only when the importing memory's embedder has that
  name and dimensions, and re-embeds the value otherwise.

  A record may carry ``"index_text"``: the extra text indexed with it (``add(...,
  index_text=)``), not part of its value; absent or ``null``: none (files written before it
  existed read as before).

  Version 2 adds ``"valid_to"``: a line with a number there is an *earlier* version of its
  key (``export(history=True)``; see docs/memory/history.md), ended then; an import into a
  memory with ``history=N`` adds it to the key's history (the live record untouched), and
  one without history skips it (``ImportReport.versions_skipped``). Without ``valid_to``
  (or ``null``, and in every version-1 file) a line is a current record.

Times are epoch seconds from 0 to :data:`MAX_EPOCH_SECONDS` (the end of year 9999), and an
``expires_at`` at most ``MAX_TTL_SECONDS`` (about 68 years) ahead, the longest TTL ``add``
takes; anything else is refused, on every backend.

Readers refuse a file without the header, of another format, or of a newer version, and name
the line of any malformed record (bytes that are not UTF-8, JSON nested too deep, a field out
of range, a value larger than the memory's ``max_value_bytes``). An import checks every record
before it writes the first one (:func:`check_records`), so a malformed record anywhere writes
nothing; the checked records wait in a temporary file (in memory while small), so an import
of any size holds one batch in memory. A backend failure part way raises
:class:`ImportIncompleteError`, which says how many records were written and how to finish.
An export reads one page of the backend's ``list`` at a time.

Usage::

    with open("backup.jsonl", "w", encoding="utf-8") as out:
        await write_jsonl(memory.export(), out, namespace=memory.namespace)
    with open("backup.jsonl", encoding="utf-8") as src:
        report = await other.import_(read_jsonl(src))
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from opentelemetry.util.types import AttributeValue

from ..observability import attributes as A
from . import codec
from .errors import MemoryBackendError
from .records import Namespace

if TYPE_CHECKING:
    from .primitive import MemoryPrimitive

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_EPOCH_SECONDS",
    "CheckedRecords",
    "ImportConflictError",
    "ImportIncompleteError",
    "ImportReport",
    "OnConflict",
    "check_records",
    "read_jsonl",
    "write_jsonl",
]

FORMAT_NAME = "tta-memory"
FORMAT_VERSION = 2
OnConflict = Literal["replace", "skip", "error"]
BATCH_SIZE = 500  # records per backend write (and per page read on export)
#: The latest time a record may carry: 9999-12-31 23:59:59 UTC (what dates can show).
MAX_EPOCH_SECONDS = codec.MAX_EPOCH_SECONDS
# Checked records kept in memory up to this many bytes of JSON, then in a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024

_RECORD_FIELDS = frozenset(
    {
        "namespace",
        "key",
        "value",
        "metadata",
        "created_at",
        "updated_at",
        "expires_at",
        "vector",
        "valid_to",
        "index_text",
    }
)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :meth:`~tta_dev_primitives.memory.MemoryPrimitive.import_` did.

    Attributes:
        imported: Records written.
        skipped_existing: Records not written because the key existed (``on_conflict="skip"``).
        skipped_expired: Records not written because their ``expires_at`` had passed.
        vectors_reused: Imported records whose exported vector was kept (same embedder).
        reembedded: Imported records embedded again (no vector, or another embedder's).
        namespaces: Distinct namespaces written to.
        vectors_dropped: Imported records whose exported vector was not kept because the
            importing memory has no embedder (semantic search cannot find them; a warning
            names the embedder).
        skipped_forgotten: Records not written because their key was forgotten
            (``forget``, while its tombstone lasts), or because they are summaries built
            from a forgotten record.
        versions_imported: Earlier versions (lines with ``valid_to``, format version 2)
            added to their keys' history.
        versions_skipped: Earlier versions not imported: the importing memory keeps no
            history (``history=0``).
    """

    imported: int = 0
    skipped_existing: int = 0
    skipped_expired: int = 0
    vectors_reused: int = 0
    reembedded: int = 0
    namespaces: int = 0
    vectors_dropped: int = 0
    skipped_forgotten: int = 0
    versions_imported: int = 0
    versions_skipped: int = 0


class ImportConflictError(ValueError):
    """``on_conflict="error"`` met a key that already holds a live record.

    Every key is checked before the first write, so normally nothing was imported. A record
    that another writer adds while the import runs is met during the writes instead: then
    every record before it was imported (``report`` says how many), nothing after it.

    Attributes:
        key: The conflicting key.
        namespace: Its namespace (relative to the importing memory's, as in the file).
        report: What was imported before the conflict.
    """

    def __init__(self, key: str, namespace: Namespace, report: ImportReport) -> None:
        where = "/".join(namespace)
        super().__init__(
            f"record {key!r}{' in ' + where if where else ''} already exists "
            f"(on_conflict='error'); {report.imported} records were imported before it"
        )
        self.key = key
        self.namespace = namespace
        self.report = report


class ImportIncompleteError(MemoryBackendError):
    """The backend failed part way through an import.

    The records before the failed batch were written, and nothing after it; the batch itself
    (``uncertain`` records) may or may not have been. Importing the same records again with
    ``on_conflict=resume_with`` finishes the import: with ``"replace"`` the records already
    written are written again unchanged, with ``"skip"`` they are skipped.

    Attributes:
        report: What was certainly done before the failure.
        handled: Records of the input handled before the failed batch (written or skipped).
        uncertain: Records of the failed batch.
        total: Records in the input.
        resume_with: The ``on_conflict`` that finishes the import when run again.
    """

    def __init__(
        self,
        cause: MemoryBackendError,
        report: ImportReport,
        handled: int,
        batch: tuple[str, str, int],
        total: int,
        resume_with: OnConflict,
    ) -> None:
        first, last, uncertain = batch
        done = f"through the record before {first}" if handled else "none"
        super().__init__(
            f"import stopped by a backend failure after handling {handled} of {total} "
            f"records ({done}; {report.imported} written, {handled - report.imported} "
            f"skipped); the "
            f"{uncertain} records from {first} to {last} may or may not have been written, "
            f"none after them; importing the same records again with "
            f"on_conflict={resume_with!r} finishes the import. Cause: {cause}",
            backend=cause.backend,
            operation=cause.operation or "import",
            transient=cause.transient,
        )
        self.report = report
        self.handled = handled
        self.uncertain = uncertain
        self.total = total
        self.resume_with = resume_with


# -- the file format --------------------------------------------------------------------------


def header(
    namespace: Namespace = (), *, exported_at: float | None = None, history: bool = False
) -> dict[str, Any]:
    """The header object of a file exported from ``namespace``: version 1 (what every
    release reads) unless it carries ``history`` (earlier versions, version 2)."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION if history else 1,
        "exported_at": time.time() if exported_at is None else exported_at,
        "namespace": list(namespace),
    }


def check_header(obj: object, where: str = "line 1") -> dict[str, Any]:
    """Validate a header object; return it.

    Raises:
        ValueError: Not a header of this format, or of a version this library cannot read.
    """
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{where}: not a {FORMAT_NAME} export (the first line must be the header "
            f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION}, ...}})'
        )
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{where}: header version must be a positive int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where}: format version {version} is newer than this library reads "
            f"({FORMAT_VERSION}); upgrade tta-dev-primitives"
        )
    return obj


def _time(obj: Mapping[str, Any], name: str, where: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    # Compared before any float(): a huge int (10**400) would overflow it.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {name} must be epoch seconds (a number) or null")
    if not 0 <= value <= MAX_EPOCH_SECONDS:  # NaN fails this too
        raise ValueError(
            f"{where}: {name} must be epoch seconds from 0 to {MAX_EPOCH_SECONDS} "
            f"(the end of year 9999) or null, got {value!r}"
        )
    return float(value)


def check_record(obj: object, where: str) -> dict[str, Any]:
    """Validate one record object (as read from a file or given to ``import_``); return it
    with every field present (``metadata`` ``{}``, times ``None`` when absent).

    Raises:
        ValueError: A missing or malformed field, named with ``where`` (e.g. ``line 12``).
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _RECORD_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown record field(s) {', '.join(sorted(unknown))}")
    if "key" not in obj or "value" not in obj:
        raise ValueError(f"{where}: a record needs 'key' and 'value'")
    try:
        key = codec.validate_key(obj["key"], "key")
        namespace = obj.get("namespace", [])
        if not isinstance(namespace, list | tuple) or not all(
            isinstance(p, str) and p for p in namespace
        ):
            raise ValueError("namespace must be a list of non-empty strings")
        metadata = obj.get("metadata")
        metadata = {} if metadata is None else codec.validate_metadata(metadata)
        codec.check_json(obj["value"])
        index_text = codec.validate_index_text(obj.get("index_text"), None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    vector = obj.get("vector")
    if vector is not None:
        vector = _check_vector(vector, where)
    return {
        "namespace": list(namespace),
        "key": key,
        "value": obj["value"],
        "metadata": metadata,
        "created_at": _time(obj, "created_at", where),
        "updated_at": _time(obj, "updated_at", where),
        "expires_at": _time(obj, "expires_at", where),
        "vector": vector,
        "valid_to": _time(obj, "valid_to", where),
        "index_text": index_text,
    }


def _check_vector(vector: object, where: str) -> dict[str, Any]:
    if not isinstance(vector, Mapping):
        raise ValueError(f"{where}: vector must be an object with embedder, dimensions, values")
    name, dims, values = vector.get("embedder"), vector.get("dimensions"), vector.get("values")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: vector.embedder must be a non-empty string")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ValueError(f"{where}: vector.dimensions must be a positive int")
    if (
        not isinstance(values, list)
        or len(values) != dims
        or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in values
        )
    ):
        raise ValueError(f"{where}: vector.values must be {dims} finite numbers")
    return {"embedder": name, "dimensions": dims, "values": values}


class _Located(dict[str, Any]):
    """A checked record that knows where it came from (``line 12``), for later messages."""

    __slots__ = ("where",)
    where: str


def read_jsonl(
    stream: IO[str] | IO[bytes] | Iterable[str] | Iterable[bytes],
) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines export, one at a time (header checked first).

    Blank lines are ignored. The stream is read lazily: a file of any size needs the memory
    of one line. A binary stream (``open(path, "rb")``) is decoded line by line, so bytes
    that are not UTF-8 are named by their line; a text stream's decoding errors can only be
    placed after the last line read.

    Raises:
        ValueError: No header, another format or a newer version, or a malformed line
            (the message names the line number): not UTF-8, not JSON, nested too deep
            for the reader, or a record :func:`check_record` refuses.
    """
    seen_header = False
    number = 0
    lines: Iterator[str | bytes] = iter(cast(Iterable[str | bytes], stream))
    while True:
        try:
            line: str | bytes = next(lines)
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"after line {number}: the input is not UTF-8 text ({exc.reason}); "
                "open the file in binary mode to have the line named"
            ) from None
        number += 1
        where = f"line {number}"
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{where}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column "
                    f"{exc.start + 1})"
                ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        except RecursionError:
            raise ValueError(
                f"{where}: JSON nested too deep to read (a value, metadata or filter holds "
                f"at most {codec.MAX_DEPTH} nested dicts and lists)"
            ) from None
        if not seen_header:
            check_header(obj, where)
            seen_header = True
            continue
        record = _Located(check_record(obj, where))
        record.where = where
        yield record
    if not seen_header:
        raise ValueError(f"empty input: a {FORMAT_NAME} export starts with its header line")


def dumps_line(obj: Mapping[str, Any]) -> str:
    """One JSON Lines line (compact, non-ASCII kept as is, newline-terminated)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


async def write_jsonl(
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    stream: IO[str],
    *,
    namespace: Namespace = (),
    progress: Callable[[int], None] | None = None,
    history: bool = False,
) -> int:
    """Write the header and then ``records`` (e.g. ``memory.export()``) to ``stream``.

    Args:
        records: Record objects, sync or async.
        stream: A text stream opened for writing (UTF-8).
        namespace: The exported namespace, written in the header.
        progress: Called with the running count after each record.
        history: The records include earlier versions (``export(history=True)``): the
            header says format version 2; otherwise version 1, which older releases read.

    Returns:
        The number of records written.
    """
    stream.write(dumps_line(header(namespace, history=history)))
    count = 0
    if isinstance(records, AsyncIterable):
        async for record in records:
            stream.write(dumps_line(record))
            count += 1
            if progress is not None:
                progress(count)
    else:
        for record in records:
            stream.write(dumps_line(record))
            count += 1
            if progress is not None:
                progress(count)
    return count


# -- export -----------------------------------------------------------------------------------


def record_object(
    namespace: Namespace,
    key: str,
    value: Any,
    metadata: Mapping[str, Any] | None,
    created_at: float | None = None,
    updated_at: float | None = None,
    expires_at: float | None = None,
    vector: Mapping[str, Any] | None = None,
    index_text: str | None = None,
) -> dict[str, Any]:
    """One record object of the format (``namespace`` relative to the exported one)."""
    obj = {
        "namespace": list(namespace),
        "key": key,
        "value": value,
        "metadata": dict(metadata) if metadata else {},
        "created_at": created_at,
        "updated_at": updated_at,
        "expires_at": expires_at,
    }
    if vector is not None:
        obj["vector"] = dict(vector)
    if index_text is not None:
        obj["index_text"] = index_text
    return obj


async def _aiter(
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> AsyncIterator[Mapping[str, Any]]:
    if isinstance(records, AsyncIterable):
        async for r in records:
            yield r
    else:
        for r in records:
            yield r


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """The arguments of one import (``MemoryOperation("import", value=...)``)."""

    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]]
    on_conflict: Any = "replace"
    progress: Callable[[int], None] | None = None


def import_attributes(report: ImportReport) -> dict[str, AttributeValue]:
    """The span attributes of an import that did what ``report`` says."""
    return {
        A.ATTR_GEN_AI_MEMORY_RECORD_COUNT: report.imported,
        A.ATTR_MEMORY_IMPORT_SKIPPED_EXISTING: report.skipped_existing,
        A.ATTR_MEMORY_IMPORT_SKIPPED_EXPIRED: report.skipped_expired,
        A.ATTR_MEMORY_IMPORT_VECTORS_REUSED: report.vectors_reused,
        A.ATTR_MEMORY_IMPORT_REEMBEDDED: report.reembedded,
        A.ATTR_MEMORY_IMPORT_VECTORS_DROPPED: report.vectors_dropped,
    }


class CheckedRecords:
    """Records that :func:`check_records` validated, kept until an import writes them.

    They wait in a temporary file (in memory up to a few MiB), so any number of them costs
    one record's memory. Iterating yields the checked record objects, in input order, as
    often as asked; :meth:`~tta_dev_primitives.memory.MemoryPrimitive.import_` takes them
    as they are, without checking again. Close it (or use ``with``) to drop the file.

    Attributes:
        count: Number of records.
        max_value_bytes: The value size limit they were checked against.
        spaces: ``(embedder name, dimensions)`` of the records' vectors, with how many
            records carry each.
    """

    def __init__(self, max_value_bytes: int | None) -> None:
        self.count = 0
        self.max_value_bytes = max_value_bytes
        self.spaces: dict[tuple[str, int], int] = {}
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8"
        )

    def _add(self, where: str, record: dict[str, Any]) -> None:
        # ASCII JSON: a lone surrogate in a str survives the file, escaped.
        self._file.write(json.dumps([where, record], allow_nan=False) + "\n")
        self.count += 1
        vector = record["vector"]
        if vector is not None:
            space = (vector["embedder"], vector["dimensions"])
            self.spaces[space] = self.spaces.get(space, 0) + 1

    def located(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(where, record)`` pairs, ``where`` as messages name the record (``line 12``)."""
        self._file.seek(0)
        for line in self._file:
            where, record = json.loads(line)
            yield where, record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _, record in self.located():
            yield record

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Drop the temporary file."""
        self._file.close()

    def __enter__(self) -> CheckedRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def check_records(
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    *,
    max_value_bytes: int | None = codec.DEFAULT_MAX_VALUE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> CheckedRecords:
    """Read and validate every record before an import writes any.

    Each record is checked as :func:`check_record` does, its value encoded against
    ``max_value_bytes``, and its ``expires_at`` held to at most ``MAX_TTL_SECONDS`` ahead.
    Records from :func:`read_jsonl` are named by their file line, others by their position
    (``records[3]``).

    Args:
        records: Record objects, sync or async (e.g. ``read_jsonl(file)``).
        max_value_bytes: The importing memory's limit (None: none).
        progress: Called with the number of records checked so far, every 100.

    Returns:
        The :class:`CheckedRecords`, for ``import_``.

    Raises:
        ValueError: The first malformed record, named (nothing was kept).
    """
    checked = CheckedRecords(max_value_bytes)
    latest = time.time() + codec.MAX_TTL_SECONDS
    try:
        async for raw in _aiter(records):
            record: dict[str, Any]
            if type(raw) is _Located:  # read_jsonl checked it just now
                where, record = raw.where, raw
            else:
                where = f"records[{checked.count}]"
                record = check_record(raw, where)
            expires = record["expires_at"]
            if expires is not None and expires > latest:
                raise ValueError(
                    f"{where}: expires_at is more than {codec.MAX_TTL_SECONDS} seconds "
                    f"(about 68 years) ahead, the longest TTL a record may have; got {expires!r}"
                )
            try:
                codec.encode(record["value"], max_value_bytes)
                codec.validate_index_text(record.get("index_text"), max_value_bytes)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from None
            checked._add(where, record)
            if progress is not None and checked.count % 100 == 0:
                progress(checked.count)
    except BaseException:
        checked.close()
        raise
    if progress is not None:
        progress(checked.count)
    return checked


async def import_records(
    memory: MemoryPrimitive,
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    *,
    on_conflict: OnConflict = "replace",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """``memory.import_(records, ...)``: see
    :meth:`~tta_dev_primitives.memory.MemoryPrimitive.import_`."""
    return await memory.import_(records, on_conflict=on_conflict, progress=progress)
