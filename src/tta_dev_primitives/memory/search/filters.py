"""The filter language of ``search``, ``list`` and ``delete_where``: its one validator
(:func:`validate_filter`) and its one evaluator (:func:`matches_filter`).

A filter maps metadata field names to conditions, all of which must hold: equality, ``$eq $ne
$gt $gte $lt $lte $in $nin $exists``, combined with ``$and $or $not``. :func:`filter_key` is
JSON equality as a hashable key and :func:`filter_anchors` the conditions an index of
metadata values can answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .. import codec

__all__ = [
    "FILTER_OPERATORS",
    "filter_anchors",
    "filter_key",
    "is_equality_filter",
    "matches_filter",
    "validate_filter",
]


_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
_FIELD_OPS = frozenset(("$eq", "$ne", "$in", "$nin", "$exists", "$not", *_COMPARE))
_COMBINATORS = frozenset(("$and", "$or", "$not"))
FILTER_OPERATORS = tuple(sorted(_FIELD_OPS | _COMBINATORS))
"""Every operator a filter may use (see :func:`validate_filter`)."""


def _is_ops(condition: object) -> bool:
    return (
        isinstance(condition, Mapping)
        and bool(condition)
        and all(isinstance(k, str) and k.startswith("$") for k in condition)
    )


def validate_filter(filter: object, arg: str = "filter") -> dict[str, Any] | None:
    """The one check of a metadata filter: return a copy that shares nothing with it (None
    for None or ``{}``). Call it before any I/O: evaluation (:func:`matches_filter`) never
    raises.

    A filter maps field names to conditions, all of which must hold; ``$and``/``$or`` take a
    non-empty list of filters and ``$not`` one filter. A condition is a plain JSON value
    (equality) or a mapping of operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists
    $not``. Field names are str and values JSON (as metadata).

    Raises:
        TypeError: ``filter`` is not a mapping, or holds a non-JSON value.
        ValueError: An unknown operator or a malformed condition, named in the message.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"{arg} must be a mapping or None, got {type(filter).__name__}")
    checked = codec.validate_metadata(filter, arg)
    assert checked is not None
    _check_filter(checked, arg)
    return checked or None


def _check_filter(filter: Mapping[Any, Any], where: str) -> None:
    for field, condition in filter.items():
        if not isinstance(field, str):
            raise TypeError(f"{where}: field names must be str, got {type(field).__name__}")
        if field in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise ValueError(f"{where}: {field} takes a non-empty list of filters")
            for i, sub in enumerate(condition):
                if not isinstance(sub, Mapping):
                    raise ValueError(
                        f"{where}: {field}[{i}] must be a filter (a mapping), "
                        f"got {type(sub).__name__}"
                    )
                _check_filter(sub, f"{where}.{field}[{i}]")
        elif field == "$not":
            if not isinstance(condition, Mapping) or not condition:
                raise ValueError(f"{where}: $not takes a non-empty filter (a mapping)")
            _check_filter(condition, f"{where}.$not")
        elif field.startswith("$"):
            raise ValueError(
                f"{where}: unknown operator {field!r} (combinators: $and, $or, $not; "
                "field operators go inside a field's condition)"
            )
        else:
            _check_condition(condition, f"{where}[{field!r}]")


def _check_condition(condition: object, where: str) -> None:
    if not isinstance(condition, Mapping):
        return  # a plain value: equality
    dollar = [k for k in condition if isinstance(k, str) and k.startswith("$")]
    if not dollar:
        return  # a dict value: equality
    if len(dollar) != len(condition):
        raise ValueError(
            f"{where}: a condition mixes operators ({', '.join(dollar)}) with plain keys; "
            "use {'$eq': {...}} to match a dict value"
        )
    for op, operand in condition.items():
        if op not in _FIELD_OPS:
            raise ValueError(
                f"{where}: unknown operator {op!r} (known: {', '.join(sorted(_FIELD_OPS))})"
            )
        if op in _COMPARE:
            if isinstance(operand, bool) or not isinstance(operand, int | float | str):
                raise ValueError(
                    f"{where}: {op} compares with a number or a str, got {type(operand).__name__}"
                )
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise ValueError(f"{where}: {op} takes a list, got {type(operand).__name__}")
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise ValueError(f"{where}: $exists takes True or False")
        elif op == "$not":
            if isinstance(operand, Mapping) and not operand:
                raise ValueError(f"{where}: $not takes a non-empty condition")
            _check_condition(operand, f"{where}.$not")


_MISSING: Any = object()


def _json_eq(got: Any, expected: Any) -> bool:
    # JSON equality: 1 == 1.0, but true is not 1 (at the top level, as filter_key).
    return got == expected and (type(got) is bool) == (type(expected) is bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _holds(got: Any, condition: Any) -> bool:
    """Whether a field's value (``_MISSING`` when absent) meets a validated condition."""
    if not _is_ops(condition):
        return got is not _MISSING and _json_eq(got, condition)
    for op, operand in condition.items():
        if op == "$eq":
            ok = got is not _MISSING and _json_eq(got, operand)
        elif op == "$ne":
            ok = got is _MISSING or not _json_eq(got, operand)
        elif op == "$in":
            ok = got is not _MISSING and any(_json_eq(got, v) for v in operand)
        elif op == "$nin":
            ok = got is _MISSING or not any(_json_eq(got, v) for v in operand)
        elif op == "$exists":
            ok = (got is not _MISSING) == operand
        elif op == "$not":
            ok = not _holds(got, operand)
        else:
            # Numbers compare with numbers and strings with strings; anything else
            # (a missing field included) matches nothing.
            if isinstance(operand, str):
                ok = isinstance(got, str) and _COMPARE[op](got, operand)
            else:
                ok = _number(got) and _COMPARE[op](got, operand)
        if not ok:
            return False
    return True


def matches_filter(metadata: Mapping[str, Any] | None, filter: Mapping[str, Any] | None) -> bool:
    """True when ``metadata`` meets a filter checked by :func:`validate_filter`.

    Every field condition must hold (see :func:`validate_filter`); a plain value is JSON
    equality (``1`` equals ``1.0``, ``true`` is not ``1``). Order operators compare numbers
    with numbers and strings with strings: a type mismatch, or a missing field, matches
    nothing. ``$ne``, ``$nin`` and ``$not`` match a record without the field;
    ``$exists: false`` matches only such records. Never raises on a valid filter.
    """
    if not filter:
        return True
    meta: Mapping[str, Any] = metadata or {}
    for field, condition in filter.items():
        if field == "$and":
            if not all(matches_filter(meta, sub) for sub in condition):
                return False
        elif field == "$or":
            if not any(matches_filter(meta, sub) for sub in condition):
                return False
        elif field == "$not":
            if matches_filter(meta, condition):
                return False
        elif not _holds(meta.get(field, _MISSING), condition):
            return False
    return True


def filter_anchors(filter: Mapping[str, Any] | None) -> list[tuple[str, list[Any]]]:
    """Top-level ``(field, values)`` a matching record's field must equal one of.

    From plain values, ``$eq`` and ``$in`` (also inside a top-level ``$and``): an index of
    metadata values answers them with a lookup, and only its candidates need
    :func:`matches_filter`. Empty when no condition is of that kind.
    """
    out: list[tuple[str, list[Any]]] = []
    if not filter:
        return out
    for field, condition in filter.items():
        if field == "$and":
            for sub in condition:
                out.extend(filter_anchors(sub))
        elif field.startswith("$"):
            continue
        elif not _is_ops(condition):
            out.append((field, [condition]))
        else:
            if "$eq" in condition:
                out.append((field, [condition["$eq"]]))
            if "$in" in condition:
                out.append((field, list(condition["$in"])))
    return out


def is_equality_filter(filter: Mapping[str, Any] | None) -> bool:
    """True when every condition is a plain value (the anchors alone decide a match)."""
    return bool(filter) and all(
        not field.startswith("$") and not _is_ops(condition)
        for field, condition in (filter or {}).items()
    )


def filter_key(value: Any) -> Hashable:
    """A hashable key with :func:`matches_filter`'s equality for one metadata field value.

    Two JSON values give equal keys exactly when the filter would call them equal (``1`` and
    ``1.0`` are equal, ``True`` and ``1`` are not at the top level), so an index can look a
    filter's values up instead of testing every record.
    """
    return (type(value) is bool, _hashable(value))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, dict):
        return ("d", frozenset((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("l", tuple(_hashable(v) for v in value))
    return value  # type: ignore[no-any-return]
