"""Validation and JSON encoding of keys, values, TTLs and metadata (no pickle anywhere)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_DEPTH",
    "MAX_EPOCH_SECONDS",
    "MAX_KEY_BYTES",
    "MAX_TTL_SECONDS",
    "JSONValue",
    "check_json",
    "NO_SNAPSHOT",
    "decode",
    "encode",
    "encode_snapshot",
    "thaw",
    "value_of",
    "copy_metadata",
    "validate_index_text",
    "validate_key",
    "validate_limit",
    "validate_max_size",
    "validate_metadata",
    "validate_ttl",
]

JSONValue = Any  # dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None

MAX_KEY_BYTES = 1024
# About 68 years: far beyond any useful expiry, and far inside what Redis (PXAT in ms) holds.
MAX_TTL_SECONDS = 2**31
# The latest record time (created_at, updated_at, expires_at) accepted: 9999-12-31 23:59:59
# UTC, the last second dates can show (and far inside what Redis keeps in milliseconds).
MAX_EPOCH_SECONDS = 253_402_300_799
DEFAULT_MAX_VALUE_BYTES = 1_048_576
# Most nested containers (dicts and lists) in a value, metadata or filter. Deeper structures
# would be accepted by the C encoder but break recursive readers later (search walks a value's
# string leaves, the decoder recurses), so they are refused when they come in.
MAX_DEPTH = 100


def _too_deep(arg: str) -> ValueError:
    return ValueError(
        f"{arg} is nested more than {MAX_DEPTH} levels deep (or is circular); "
        f"at most {MAX_DEPTH} nested dicts and lists are accepted"
    )


def _refuse(obj: object) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# The C encoder and scanner called directly: json.dumps/json.loads build an encoder per call and
# run a whitespace regex, which costs more than the encoding itself for small agent records.
# No circular-reference markers: a cycle ends in RecursionError, reported as ValueError below.
_c_encode: Any = getattr(json.encoder, "c_make_encoder", None)
if _c_encode is not None:
    _c_encode = _c_encode(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
_py_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decoder = json.JSONDecoder()
_scan_once: Any = getattr(_decoder, "scan_once")  # noqa: B009 - untyped in typeshed


def _encode_json(value: object) -> str:
    if _c_encode is not None:
        return "".join(_c_encode(value, 0))
    return _py_encoder.encode(value)  # pragma: no cover - CPython always has the C encoder


_SCALARS = (str, int, float, bool, type(None))


def validate_key(key: object, arg: str = "key") -> str:
    """Return ``key`` if it is a non-empty str of at most 1024 UTF-8 bytes.

    Raises:
        TypeError: ``key`` is not a str.
        ValueError: it is empty or too long.
    """
    if type(key) is not str:
        if isinstance(key, str):
            return validate_key(str(key), arg)
        raise TypeError(f"{arg} must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{arg} must not be empty")
    if key.isascii():
        if len(key) > MAX_KEY_BYTES:
            raise ValueError(f"{arg} is longer than {MAX_KEY_BYTES} UTF-8 bytes")
        return key
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{arg} is not valid Unicode text (lone surrogate)") from exc
    if size > MAX_KEY_BYTES:
        raise ValueError(f"{arg} is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    return key


def validate_index_text(
    text: object, max_bytes: int | None = DEFAULT_MAX_VALUE_BYTES, arg: str = "index_text"
) -> str | None:
    """Return ``text`` if it is None or a str of at most ``max_bytes`` UTF-8 bytes (the value
    size limit); an empty str is None (no index text).

    Raises:
        TypeError: ``text`` is neither a str nor None.
        ValueError: it is too long, or not valid Unicode text.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{arg} must be a str or None, got {type(text).__name__}")
    text = str(text)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{arg} is not valid Unicode text (lone surrogate)") from exc
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{arg} is {size} bytes, more than max_value_bytes={max_bytes}")
    return text or None


def _positive_int(value: object, arg: str, or_none: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be an int{or_none}, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{arg} must be >= 1{or_none}, got {value}")
    return value


def validate_limit(limit: object, arg: str = "limit") -> int:
    """Return ``limit`` if it is an int >= 1 (a result count)."""
    return _positive_int(limit, arg)


def validate_max_size(max_size: object, arg: str = "max_size") -> int | None:
    """``max_size`` as a positive int, or None (unbounded)."""
    return None if max_size is None else _positive_int(max_size, arg, " or None")


def validate_ttl(ttl: object, arg: str = "ttl") -> float | None:
    """Return ``ttl`` as float seconds (> 0, finite) or None."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"{arg} must be a number of seconds or None, got {type(ttl).__name__}")
    try:
        value = float(ttl)
    except OverflowError:
        value = math.inf
    if not (0 < value <= MAX_TTL_SECONDS):
        raise ValueError(
            f"{arg} must be a number of seconds > 0 and <= {MAX_TTL_SECONDS}, got {ttl!r}"
        )
    return value


def _is_flat(mapping: dict[Any, Any]) -> bool:
    """True when every key is a str and every value a JSON scalar (finite floats)."""
    for k, v in mapping.items():
        tv = type(v)
        if type(k) is not str:
            return False
        if tv is str or tv is int or tv is bool or v is None:
            continue
        if tv is float and v - v == 0.0:  # finite: inf - inf and nan - nan are nan
            continue
        return False
    return True


def check_json(value: object, arg: str = "value") -> None:
    """Raise TypeError unless ``value`` is made only of JSON types (str keys, no tuples/sets).

    Raises ValueError for a non-finite float, or for more than :data:`MAX_DEPTH` nested
    containers (which includes every circular structure).

    ``json.dumps`` alone would accept tuples and non-str dict keys and silently change them,
    so what ``get`` returns would not equal what was added.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if kind is dict and _is_flat(value):  # type: ignore[arg-type]
        return  # the common flat record ({"role": ..., "content": ...})
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"{arg} contains a non-finite float ({value!r}), which JSON cannot hold"
            )
        return
    # Iterative, so depth costs no Python stack. A container met again deeper than before is
    # walked again (a shared sub-structure may sit at several depths); a cycle therefore
    # grows deeper on every lap until it passes MAX_DEPTH and is refused.
    stack: list[tuple[Any, str, int]] = [(value, arg, 1)]
    seen: dict[int, int] = {}
    while stack:
        item, where, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise _too_deep(arg)
            if seen.get(id(item), 0) >= depth:  # already checked at least this deep
                continue
            seen[id(item)] = depth
        if kind is dict:
            for k, v in item.items():
                if type(k) is not str:
                    raise TypeError(f"{where} has a non-str key {k!r}; JSON object keys are str")
                if not isinstance(v, _SCALARS):
                    stack.append((v, f"{where}[{k!r}]", depth + 1))
                elif type(v) is float and not math.isfinite(v):
                    raise ValueError(
                        f"{where}[{k!r}] is a non-finite float, which JSON cannot hold"
                    )
        elif kind is list:
            for i, v in enumerate(item):
                if not isinstance(v, _SCALARS):
                    stack.append((v, f"{where}[{i}]", depth + 1))
                elif type(v) is float and not math.isfinite(v):
                    raise ValueError(f"{where}[{i}] is a non-finite float, which JSON cannot hold")
        elif isinstance(item, _SCALARS):
            continue
        else:
            raise TypeError(
                f"{where} is a {kind.__name__}, which is not a JSON value "
                "(use dict, list, str, int, float, bool or None)"
            )


def encode(
    value: object, max_bytes: int | None = DEFAULT_MAX_VALUE_BYTES, arg: str = "value"
) -> str:
    """Validate ``value`` and return its compact JSON text.

    Raises:
        TypeError: the value is not made of JSON types.
        ValueError: it holds a non-finite float, or its JSON is larger than ``max_bytes``.
    """
    return encode_snapshot(value, max_bytes, arg)[0]


def encode_snapshot(
    value: object, max_bytes: int | None = DEFAULT_MAX_VALUE_BYTES, arg: str = "value"
) -> tuple[str, Any]:
    """:func:`encode`, plus the value's :func:`snapshot`, validating the value once."""
    kind = type(value)
    if kind is dict and _is_flat(value):  # type: ignore[arg-type]
        snap: Any = value.copy()  # type: ignore[attr-defined]
    elif kind is str or kind is int or kind is bool or value is None:
        snap = value
    else:
        snap = NO_SNAPSHOT
    try:
        text = _encode_json(value)
    except TypeError:
        check_json(value, arg)  # names the offending part
        raise
    except RecursionError as exc:
        raise _too_deep(arg) from exc
    except ValueError as exc:  # circular reference or non-finite float
        check_json(value, arg)  # names where the non-finite float is
        raise ValueError(f"{arg} cannot be encoded as JSON: {exc}") from exc
    if snap is NO_SNAPSHOT:
        # Encoding succeeded, so there is no cycle; now refuse what JSON would silently
        # change (tuples, non-str keys), so that get() returns what add() was given.
        check_json(value, arg)
        if kind is float:
            snap = value  # finite: a non-finite float failed to encode above
    if max_bytes is not None and len(text) * 4 > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise ValueError(
                f"{arg} is {size} bytes as JSON, more than max_value_bytes={max_bytes}"
            )
    return text, snap


def thaw(snap: Any) -> Any:
    """A value for the caller from a snapshot of :func:`encode_snapshot` (a fresh dict each time).

    Snapshots are scalars (returned as they are) or flat dicts of scalars (shallow-copied, which
    shares nothing mutable); other values have none (:data:`NO_SNAPSHOT`) and are decoded.
    """
    return snap.copy() if type(snap) is dict else snap


def value_of(payload: str, snap: Any) -> Any:
    """What a read hands the caller: a thawed snapshot when there is one, else decoded JSON."""
    if snap is NO_SNAPSHOT:
        return decode(payload)
    return snap.copy() if type(snap) is dict else snap  # thaw(snap), without a call


class _NoSnapshot:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_SNAPSHOT"


NO_SNAPSHOT: Any = _NoSnapshot()


def decode(text: str) -> Any:
    """Decode JSON text written by :func:`encode` (compact, no surrounding whitespace)."""
    try:
        return _scan_once(text, 0)[0]
    except StopIteration:
        return _decoder.decode(text)  # raises the usual JSONDecodeError


def validate_metadata(metadata: object, arg: str = "metadata") -> dict[str, Any] | None:
    """Return a copy of ``metadata`` (str keys, JSON values) that shares nothing with it."""
    if metadata is None:
        return None
    if type(metadata) is dict:
        meta: dict[str, Any] = metadata.copy()
    elif isinstance(metadata, Mapping):
        meta = dict(metadata)
    else:
        raise TypeError(
            f"{arg} must be a mapping of str to JSON values, got {type(metadata).__name__}"
        )
    if _is_flat(meta):
        return meta  # scalars only: the shallow copy shares nothing mutable
    check_json(meta, arg)
    return copy_metadata(meta)


def copy_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A copy of already validated metadata that shares nothing mutable with it."""
    if metadata is None:
        return None
    if type(metadata) is dict and _is_flat(metadata):
        return metadata.copy()
    return decode(_encode_json(metadata))  # type: ignore[no-any-return]
