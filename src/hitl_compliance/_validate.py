"""Argument checks run at the top of each public coordinator method, before anything changes.

A bad argument that reaches LangGraph or a store fails late and raw: an
`OverflowError` from datetime arithmetic, a `TypeError` from LangGraph's
msgpack serializer after the review was claimed, a `psycopg.DataError` for a
NUL character. These helpers refuse it first with
[`InvalidInputError`][hitl_compliance.InvalidInputError] (or its subclass
[`InvalidDecisionError`][hitl_compliance.InvalidDecisionError] for decision
fields), saying what to pass instead, so a refused call changes nothing.

`check_json` is the one definition of
the JSON that every store and the checkpoint serializer keep; decisions, turn
metadata and the review API all use it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, JsonValue

from hitl_compliance._text import plain_text
from hitl_compliance.errors import InvalidDecisionError, InvalidInputError
from hitl_compliance.ledger import exact_double

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_JSON_DEPTH",
    "Metadata",
    "PlainText",
    "aware_datetime",
    "check_json",
    "check_storable",
    "cursor_text",
    "decision_text",
    "export_path",
    "interval_seconds",
    "json_metadata",
    "older_than_cutoff",
    "optional_thread_id",
    "page_limit",
    "text",
    "thread_id",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# LangGraph's msgpack serializer (ormsgpack) refuses ints beyond 64 bits and
# PostgreSQL's bigint beyond the signed range: the signed range is what all keep.

MAX_JSON_DEPTH = 32
"""How deeply JSON metadata may nest (ormsgpack gives up at about 250 levels;
the state nests decision metadata a few levels down, so the limit leaves room)."""

_MAX_THREAD_ID = 512


def check_json(value: object, *, max_depth: int = MAX_JSON_DEPTH, ledger: bool = False) -> None:
    """ValueError unless `value` is JSON that every store and the checkpoint serializer keep.

    JSON here is None, bool, ints in the signed 64-bit range, finite floats,
    str without NUL or lone surrogates, and lists, tuples and mappings with
    str keys of such values, nested at most `max_depth` levels. With `ledger`
    (values an audit row records: a decision's metadata and tool arguments),
    ints must also be ones an IEEE 754 double equals exactly (all within
    +/-(2**53-1)), which the ledger's RFC 8785 form writes exactly.
    """
    # An explicit stack, so a deeply nested value is refused, not a RecursionError.
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"must not nest deeper than {max_depth} levels")
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise ValueError(f"ints must fit in 64 bits (signed), got {item}")
            if ledger and not exact_double(item):
                raise ValueError(
                    f"ints must be within +/-(2**53-1) (or be exactly a double), which "
                    f"the audit ledger hashes exactly; pass {item} as a string"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, str):
            plain_text(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"keys must be str, got {type(key).__name__}")
                plain_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        else:
            raise ValueError(f"must hold only JSON values, got {type(item).__name__}")


def check_storable(value: object) -> None:
    """ValueError when `value` holds an int no checkpoint serializer keeps (beyond 64 bits).

    For fields of a custom state schema, which may hold any serialisable
    type: only what the serializer is known to refuse is checked.
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                raise ValueError(f"ints must fit in 64 bits (signed), got {item}")
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)


def json_metadata(
    value: object, *, error: type[InvalidInputError] = InvalidInputError, ledger: bool = False
) -> dict[str, Any]:
    """A copy of `value` as a dict of storable JSON (None gives `{}`), or `error`.

    `ledger`: the value goes into an audit row (see [`check_json`][.check_json]).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error(f"metadata must be a mapping of JSON values, got {type(value).__name__}.")
    try:
        check_json(value, ledger=ledger)
    except ValueError as exc:
        raise error(f"metadata {exc}; pass JSON every store keeps.") from None
    return dict(value)


def text(name: str, value: object, *, error: type[InvalidInputError] = InvalidInputError) -> str:
    """`value` if it is a str every store keeps (no NUL, no lone surrogate), else `error`."""
    if not isinstance(value, str):
        raise error(f"{name} must be str, got {type(value).__name__}.")
    try:
        return plain_text(value)
    except ValueError as exc:
        raise error(f"{name} {exc}.") from None


def decision_text(name: str, value: object) -> str | None:
    """An optional decision field (`response`, `reason`, `expected`): str or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidDecisionError(f"{name} must be str or None, got {type(value).__name__}.")
    return text(name, value, error=InvalidDecisionError)


def thread_id(value: object) -> str:
    """A thread id: a non-blank str of at most 512 characters every store keeps."""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_THREAD_ID:
        raise InvalidInputError(
            f"thread_id must be a non-empty str of at most {_MAX_THREAD_ID} characters."
        )
    return text("thread_id", value)


def optional_thread_id(value: object) -> str | None:
    """`thread_id(value)`, or None for "the whole store"."""
    return None if value is None else thread_id(value)


def aware_datetime(name: str, value: object) -> datetime:
    """`value` if it is a timezone-aware datetime, else InvalidInputError."""
    if not isinstance(value, datetime):
        raise InvalidInputError(
            f"{name} must be a timezone-aware datetime, got {type(value).__name__}."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be timezone-aware (say tzinfo=timezone.utc).")
    try:
        # Stores compare and keep times in UTC: one whose UTC value is in year 0 or
        # 10000 (year 1 at +23:00, say) overflows there.
        value.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInputError(
            f"{name}={value.isoformat()} is outside years 1-9999 in UTC; pass a time "
            "within the calendar."
        ) from None
    return value


def older_than_cutoff(value: object, now: Callable[[], datetime]) -> datetime | None:
    """The `requested_before` bound of `pending(older_than=value)`, a timedelta before `now()`."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return aware_datetime("older_than", value)
    if not isinstance(value, timedelta):
        raise InvalidInputError(
            f"older_than must be a timedelta or an aware datetime, got {type(value).__name__}."
        )
    try:
        return aware_datetime("older_than", now() - value)
    except OverflowError:
        raise InvalidInputError(
            f"older_than={value!r} reaches beyond the calendar (years 1-9999); "
            "pass a shorter timedelta or a datetime."
        ) from None


def page_limit(value: object) -> int | None:
    """A page size: None (no limit) or an int from 1 to 2**63 - 1 (what SQL stores bind)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
        raise InvalidInputError(
            f"limit must be a positive int of at most 2**63 - 1, or None; got {value!r}."
        )
    return value


def cursor_text(value: object) -> str | None:
    """A `PendingReview.cursor` string (None for the first page); parsed by the coordinator."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(
            f"cursor must be a str from PendingReview.cursor, got {type(value).__name__}."
        )
    return text("cursor", value)


def interval_seconds(value: object) -> float:
    """`run_sla_sweeper`'s interval in seconds: a positive, finite number or timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidInputError(
            f"interval must be seconds (int or float) or a timedelta, got {type(value).__name__}."
        )
    # NaN compares false with everything, so `seconds <= 0` alone let it through and
    # the loop swept without pausing; the upper bound keeps every interval one a
    # timedelta can express, as the parameter's type promises.
    if not math.isfinite(seconds) or seconds <= 0 or seconds > timedelta.max.total_seconds():
        raise InvalidInputError(
            f"interval must be a positive, finite duration (at most timedelta.max), got {value!r}."
        )
    return seconds


def export_path(value: object) -> str:
    """A file path for `export_audit`: a str or `os.PathLike[str]` without NUL."""
    if isinstance(value, str) or (isinstance(value, os.PathLike) and not isinstance(value, bytes)):
        path = os.fspath(value)
        if isinstance(path, str):
            return text("path", path)
    raise InvalidInputError(
        f"path must be a str or a path-like object, got {type(value).__name__}."
    )


# -- request body types (the review API's bodies, `_decision_kinds.py`) ----------------

_MAX_METADATA_DEPTH = 16
_MAX_METADATA_BYTES = 16_384


def _metadata(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    """`metadata` as given, once it is JSON every store can keep and small enough to audit."""
    if value is None:
        return None
    # Decision metadata and tool arguments are recorded in audit rows.
    check_json(value, max_depth=_MAX_METADATA_DEPTH, ledger=True)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > _MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {_MAX_METADATA_BYTES} bytes of JSON")
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
"""Text without NUL characters or lone surrogates."""
Metadata = Annotated[dict[str, JsonValue] | None, AfterValidator(_metadata)]
"""A JSON object of bounded depth and size, or None."""
