"""What every store can keep: text without NUL characters or lone surrogates, finite numbers.

PostgreSQL refuses NUL characters in `text` and `jsonb` and NaN in `jsonb`,
and no backend can encode a lone surrogate as UTF-8. Input carrying them would
fail deep inside a store, after the graph has moved on; the coordinator and
the review API refuse it first, with the same rules on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def plain_text(value: str) -> str:
    """`value` unchanged, or ValueError saying why no store could keep it."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def plain_json(value: Any, *, max_depth: int | None = None, _depth: int = 0) -> None:
    """Check every string (keys too) and number of a JSON value; ValueError if one fails."""
    if max_depth is not None and _depth > max_depth:
        raise ValueError(f"must not nest deeper than {max_depth} levels")
    if isinstance(value, str):
        plain_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                plain_text(key)
            plain_json(item, max_depth=max_depth, _depth=_depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            plain_json(item, max_depth=max_depth, _depth=_depth + 1)
