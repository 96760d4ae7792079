"""The wire format: records encoded for the scripts, and the scripts' replies decoded.

The only place that decodes a record's fields, so the only place that finds a record this
library did not write (another client overwrote the key, or it is garbled): every decoder
here raises :class:`GarbledRecord` for it, and the caller decides whether that fails the
operation (a read of that key) or skips the record (a search, a list).

A record hash (see :mod:`~tta_dev_primitives.memory.backends.redis.scripts`) holds ``s``
(write sequence), ``v`` (value JSON), ``r`` (``<created> <updated> <expiry or -> <1 with a
vector, else 0> <length of the metadata> <metadata JSON>``, ``lua/_write.lua``), ``e``
(the vector, raw little-endian float32) when it has one, and ``t`` (its index text: extra
text indexed with it, not part of its value) when it has one.
"""

from __future__ import annotations

import binascii
import json
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np

from ... import codec
from ...records import Entry, Record, RecordUpdate
from ...search import IndexRecord, Vector, indexed_value
from ..base import CompactionPlan

__all__ = [
    "BATCH",
    "Call",
    "Fields",
    "GarbledRecord",
    "IndexRows",
    "decode_fields",
    "decode_index_rows",
    "decode_packed",
    "embedder_arg",
    "encode_text",
    "decode_text",
    "entry_fields",
    "compaction_call",
    "metadata_arg",
    "put_calls",
    "put_header",
    "restore_args",
    "update_args",
    "ms",
    "put_record",
    "record_fields",
    "split",
    "stored_embedder",
    "time_ms",
    "ttl_ms",
    "unpack",
    "vector_arg",
    "vector_copy",
]

# What decoding a record another client wrote can raise (bad layout, UTF-8, JSON, base64,
# vector bytes, or nesting too deep for the decoder).
_GARBLED = (ValueError, UnicodeError, struct.error, binascii.Error, RecursionError, IndexError)
_F32 = np.dtype("<f4")
_UNSET: Any = object()
BATCH = 1000  # keys per script call / commands per pipeline flush
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

RawFields = Sequence[bytes | None]
"""A record's ``FETCH`` fields s, v, m, e, x, u, c, t (None: absent)."""


class GarbledRecord(Exception):
    """The fields under a record key are not a record this library wrote.

    Attributes:
        key: The record's key.
        cause: What decoding raised.
    """

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.key = key
        self.cause = cause


def encode_text(text: str) -> bytes:
    """``text`` as Redis stores it (UTF-8, lone surrogates kept)."""
    return text.encode("utf-8", "surrogatepass")


def decode_text(data: bytes) -> str:
    """The inverse of :func:`encode_text`."""
    return data.decode("utf-8", "surrogatepass")


# -- encoding ---------------------------------------------------------------------------------


def vector_arg(vector: Sequence[float] | Vector | None) -> bytes:
    """A vector as the record hash stores it: raw little-endian float32. Backends receive
    unit float32 vectors from the primitive, so nothing is normalized here."""
    if vector is None:
        return b""
    return np.asarray(vector, dtype=_F32).tobytes()


def metadata_arg(metadata: Mapping[str, Any] | None) -> bytes:
    """Metadata JSON (validated by the primitive already: encoded without checking again)."""
    return b"" if metadata is None else encode_text(_json(metadata))


def ttl_ms(ttl: float | None) -> int:
    """A TTL in milliseconds (0: none), at least 1 ms.

    Raises:
        ValueError: Past :data:`codec.MAX_TTL_SECONDS` (checked before the script runs: a
            PXAT Redis refuses would fail it after its first writes).
    """
    if ttl is None:
        return 0
    if not ttl <= codec.MAX_TTL_SECONDS:  # NaN fails this too
        raise ValueError(f"ttl must be at most {codec.MAX_TTL_SECONDS} seconds, got {ttl!r}")
    return max(1, round(ttl * 1000))


def time_ms(t: float | None, arg: str) -> bytes:
    """Epoch seconds as the scripts take them (milliseconds; ``-``: none)."""
    if t is None:
        return b"-"
    if not 0 <= t <= codec.MAX_EPOCH_SECONDS:
        raise ValueError(
            f"{arg} must be epoch seconds from 0 to {codec.MAX_EPOCH_SECONDS}, got {t!r}"
        )
    return b"%d" % round(t * 1000)


def entry_fields(entry: Entry) -> tuple[bytes, bytes, bytes]:
    """A record's value, metadata and vector, as the record hash stores them."""
    return (encode_text(entry.payload), metadata_arg(entry.metadata), vector_arg(entry.vector))


def put_record(entry: Entry, meta: bytes | None = None) -> bytes:
    """One record's ``PUT`` argument (``lua/put.lua``): its times, the lengths of its
    metadata and vector (and index text), then metadata, vector (index text) and value end
    to end."""
    if meta is None:
        meta = metadata_arg(entry.metadata)
    vector = vector_arg(entry.vector)
    if entry.index_text is not None:
        text = encode_text(entry.index_text)
        return b"%s %s %d %d:%d %s%s%s%s" % (
            time_ms(entry.created_at, "created_at"),
            time_ms(entry.updated_at, "updated_at"),
            len(meta),
            len(vector),
            len(text),
            meta,
            vector,
            text,
            encode_text(entry.payload),
        )
    return b"%s %s %d %d %s%s%s" % (
        time_ms(entry.created_at, "created_at"),
        time_ms(entry.updated_at, "updated_at"),
        len(meta),
        len(vector),
        meta,
        vector,
        encode_text(entry.payload),
    )


def put_header(max_arg: bytes, ttl: int, embedder: bytes) -> bytes:
    """``PUT``'s first argument: the bound, the TTL and the embedder of the vectors."""
    if not ttl and not embedder:
        return max_arg  # the bound alone
    return b"%s %d %s" % (max_arg, ttl, embedder)


Call = tuple[Sequence[bytes], Sequence[Any]]


def put_calls(
    declared: tuple[bytes, ...],
    rec: bytes,
    entries: Sequence[Entry],
    embedder: Entry,
    max_arg: bytes,
) -> list[Call]:
    """``PUT``'s ``(keys, args)`` for ``entries``: one call per run of entries with the same
    TTL, at most ``BATCH`` entries each; ``embedder``'s identity goes in every header."""
    calls: list[Call] = []
    embedder_id = embedder_arg(embedder)
    ttl = ttl_ms(entries[0].ttl)
    run: list[bytes] = [put_header(max_arg, ttl, embedder_id)]
    keys: list[bytes] = [*declared]
    # add_many gives its entries one metadata object: encode it once, not per record.
    last_meta: Any = _UNSET
    meta = b""
    for entry in entries:
        entry_ttl = ttl_ms(entry.ttl)
        if entry_ttl != ttl or len(run) > BATCH:
            calls.append((keys, run))
            ttl = entry_ttl
            run = [put_header(max_arg, ttl, embedder_id)]
            keys = [*declared]
        if entry.metadata is not last_meta:
            last_meta = entry.metadata
            meta = metadata_arg(last_meta)
        run.append(put_record(entry, meta))
        keys.append(rec + encode_text(entry.key))
    calls.append((keys, run))
    return calls


def update_args(
    change: RecordUpdate, payload: str, metadata: Mapping[str, Any] | None
) -> tuple[bytes, ...]:
    """``UPDATE``'s value, metadata, vector mode (k keep, n none, s set), vector, expiry
    (``k``: keep) and index text (``k``: keep, else ``s`` then the new text, empty: none)."""
    if change.payload is None:
        vec_mode, vec = b"k", b""
    elif change.vector is None:
        vec_mode, vec = b"n", b""
    else:
        vec_mode, vec = b"s", vector_arg(change.vector)
    expiry = b"%d" % ttl_ms(change.ttl) if change.set_ttl else b"k"
    text = b"s" + encode_text(change.index_text or "") if change.set_index_text else b"k"
    return (encode_text(payload), metadata_arg(metadata), vec_mode, vec, expiry, text)


def restore_args(versions: Sequence[tuple[Entry, float]], keep: int, max_arg: bytes) -> list[bytes]:
    """``RESTORE``'s arguments: the versions kept, the bound, then each version's key, end,
    times, TTL, metadata, value and index text (empty: none)."""
    args: list[bytes] = [b"%d" % keep, max_arg]
    for entry, valid_to in versions:
        updated = time.time() if entry.updated_at is None else entry.updated_at
        created = updated if entry.created_at is None else entry.created_at
        args += [
            encode_text(entry.key),
            b"%d" % round(valid_to * 1000),
            b"%d" % round(created * 1000),
            b"%d" % round(updated * 1000),
            b"%d" % ttl_ms(entry.ttl),
            metadata_arg(entry.metadata),
            encode_text(entry.payload),
            b"" if entry.index_text is None else encode_text(entry.index_text),
        ]
    return args


def compaction_call(
    declared: tuple[bytes, ...], base: bytes, rec: bytes, plan: CompactionPlan
) -> tuple[list[bytes], list[Any]]:
    """``COMPACT``'s keys and arguments for ``plan`` (see ``lua/compact.lua``)."""
    delete = set(plan.delete)
    rewrite = {e.key: e for e in plan.rewrite}
    keys: list[bytes] = [*declared]
    args: list[Any] = [base, len(plan.expected)]
    for key, seq in plan.expected.items():
        keys.append(rec + encode_text(key))
        entry = rewrite.get(key)
        if entry is not None:
            args += (seq, b"w", *entry_fields(entry))
        else:
            args += (seq, b"d" if key in delete else b"-", b"", b"", b"")
    insert = plan.insert
    if insert is not None:
        keys.append(rec + encode_text(insert.key))
        args += (ttl_ms(insert.ttl), *entry_fields(insert))
    return keys, args


def embedder_arg(entry: Entry) -> bytes:
    """The embedder identity PUT records for a namespace (``<dimensions>:<name>``; empty
    when the entry has no vector)."""
    space = entry.space
    if space is None or entry.vector is None:
        return b""
    return encode_text(f"{space[1]}:{space[0]}")


# -- decoding ---------------------------------------------------------------------------------


def stored_embedder(data: bytes | str | None) -> tuple[str, int] | None:
    """A namespace's embedder identity as ST field ``sp`` holds it (``<dimensions>:<name>``)."""
    if not data:
        return None
    dims, _, name = (data if isinstance(data, str) else decode_text(data)).partition(":")
    return name, int(dims)


def ms(data: bytes | None) -> float | None:
    """Server milliseconds (as the scripts store them) as epoch seconds."""
    return None if data is None else int(data) / 1000


def vector_copy(data: bytes) -> Vector:
    """A stored vector as a new float32 array."""
    return np.frombuffer(data, dtype=_F32).astype(np.float32)


def _vector_view(data: bytes) -> Vector:
    # A read-only view of data (an index copies it into its matrix): no copy of its own,
    # which a load of 100k vectors would pay for each.
    view = np.frombuffer(data, dtype=_F32)
    return view if view.dtype == np.float32 else view.astype(np.float32)


def _fields(header: bytes, body: bytes) -> list[bytes | None]:
    lens = np.frombuffer(header, dtype="<i4")
    ends = np.cumsum(np.maximum(lens, 0)).tolist()
    return [
        None if size < 0 else body[end - size : end]
        for size, end in zip(lens.tolist(), ends, strict=True)
    ]


def unpack(header: bytes, body: bytes, width: int) -> list[tuple[bytes | None, ...]]:
    """Strings packed end to end (``lua/fetch.lua``), ``width`` per record: ``header``
    holds their int32 lengths (-1: absent), ``body`` the strings."""
    fields = _fields(header, body)
    return [tuple(fields[i : i + width]) for i in range(0, len(fields), width)]


def split(header: bytes, body: bytes) -> list[bytes]:
    """Packed strings none of which is absent (the live keys of ``lua/load.lua``)."""
    return cast(list[bytes], _fields(header, body))


def record_fields(
    seq: bytes | None,
    value: bytes | None,
    r: bytes | None,
    vec: bytes | None,
    text: bytes | None = None,
) -> tuple[bytes | None, ...]:
    """A record's fields s, v, m, e, x, u, c, t from its hash's s, v, r, e and t
    (``lua/_write.lua`` packs m, x, u and c into r). A malformed r makes it "not a record"
    (s None, v why)."""
    if seq is None or r is None:
        why = value if seq is None else b"a record hash without its r field"
        return (None, why, None, None, None, None, None, None)
    try:
        created, updated, expires, _, _, meta = r.split(b" ", 5)
    except ValueError:
        why = b"a record hash whose r field is malformed"
        return (None, why, None, None, None, None, None, None)
    x = None if expires == b"-" else expires
    return (seq, value, meta or None, vec, x, updated, created, text)


def _index_text(fields: RawFields) -> str | None:
    """The index text of ``FETCH``/``SYNC`` fields (None: none)."""
    text = fields[7] if len(fields) > 7 else None
    return decode_text(text) if text else None


class Fields(NamedTuple):
    """A record's decoded fields (see :func:`decode_fields`)."""

    seq: int
    text: str
    value: Any  # codec.NO_SNAPSHOT unless parsed
    metadata: dict[str, Any] | None
    vector: Vector | None
    expires_at: float | None
    updated_at: float
    created_at: float
    index_text: str | None = None


def decode_fields(
    key: str, fields: RawFields, *, parse: bool = False, vector: bool = False
) -> Fields | None:
    """The record of ``FETCH``/``SYNC`` fields (s, v, m, e, x, u[, c, t]); None when the key
    holds no record. With ``parse``, the value JSON is decoded too; with ``vector``, the
    vector (a read-only view of the reply).

    Raises:
        GarbledRecord: The fields are not a record this library wrote.
    """
    seq, value, meta, vec, expires, updated = fields[:6]
    if seq is None and value is None:
        return None
    try:
        if seq is None or value is None:
            raise ValueError("not a record hash" if value is None else decode_text(value))
        text = decode_text(value)
        return Fields(
            int(seq),
            text,
            codec.decode(text) if parse else codec.NO_SNAPSHOT,
            codec.decode(decode_text(meta)) if meta else None,
            _vector_view(vec) if vector and vec else None,
            None if expires is None else int(expires) / 1000,
            int(updated or 0) / 1000,
            int(fields[6] or 0) / 1000 if len(fields) > 6 else 0.0,
            _index_text(fields),
        )
    except _GARBLED as exc:
        raise GarbledRecord(key, exc) from exc


class IndexRows(NamedTuple):
    """Rows decoded for an index (see :func:`decode_index_rows`)."""

    records: list[IndexRecord]
    gone: list[str]  # keys without a record
    garbled: list[GarbledRecord]  # keys whose fields are not a record (also in gone)


def decode_index_rows(
    rows: Iterable[tuple[bytes, RawFields]], updated: dict[str, float]
) -> IndexRows:
    """``(key, fields)`` rows of ``SYNC`` or ``FETCH`` as an index takes them: value decoded,
    vector a read-only view of the reply; each record's ``updated_at`` is set in
    ``updated``. One loop for a whole group of a load (the hot path of an index load: no
    call per record)."""
    records: list[IndexRecord] = []
    gone: list[str] = []
    garbled: list[GarbledRecord] = []
    decode = codec.decode
    for raw, fields in rows:
        seq, value, meta, vec, expires, when = fields[:6]
        key = raw.decode("utf-8", "surrogatepass")
        if seq is None and value is None:
            gone.append(key)
            continue
        try:
            if seq is None or value is None:
                raise ValueError("not a record hash" if value is None else decode_text(value))
            records.append(
                (
                    key,
                    int(seq),
                    indexed_value(
                        decode(value.decode("utf-8", "surrogatepass")), _index_text(fields)
                    ),
                    decode(meta.decode("utf-8", "surrogatepass")) if meta else None,
                    None if expires is None else int(expires) / 1000,
                    None if not vec else _vector_view(vec),
                )
            )
        except _GARBLED as exc:
            garbled.append(GarbledRecord(key, exc))
            gone.append(key)
            continue
        updated[key] = int(when or 0) / 1000
    return IndexRows(records, gone, garbled)


def decode_packed(key: str, packed: bytes) -> Record:
    """The record read under ``key`` as ``lua/get.lua`` packs it, its value decoded once
    (it rides as the snapshot).

    Raises:
        GarbledRecord: It is not a record this library wrote.
    """
    try:
        if packed.startswith(b"! "):
            raise ValueError(f"not a record hash: {decode_text(packed[2:])}")
        seq, created, updated, expires, _, mlen, rest = packed.split(b" ", 6)
        m = v = int(mlen)
        index_text = None
        if b":" in seq:  # with an index text, between the metadata and the value
            seq, tlen = seq.split(b":")
            v = m + int(tlen)
            index_text = decode_text(rest[m:v])
        text = decode_text(rest[v:])
        return Record(
            key,
            text,
            codec.decode(decode_text(rest[:m])) if m else None,
            int(seq),
            codec.decode(text),
            int(created) / 1000,
            int(updated) / 1000,
            None if expires == b"-" else int(expires) / 1000,
            index_text,
        )
    except _GARBLED as exc:
        raise GarbledRecord(key, exc) from exc
