"""The shape of one benchmark's results, as written to `results.json`."""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any, TypedDict

__all__ = ["BenchResult", "guarded", "new_result"]


class BenchResult(TypedDict):
    """One benchmark's outcome.

    `rows` are the table rows (one dict per row, same keys); `skipped` lists
    parts that did not run, each with its reason; `errors` lists parts that
    failed (a benchmark that breaks on one backend still reports the others);
    `notes` say exactly what was measured and seeded.
    """

    name: str
    title: str
    status: str  # "ok" | "skipped"
    reason: str | None
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    skipped: list[str]
    errors: list[str]
    notes: list[str]
    seconds: float


def new_result(name: str, title: str, params: dict[str, Any]) -> BenchResult:
    """An empty `ok` result to fill in."""
    return BenchResult(
        name=name,
        title=title,
        status="ok",
        reason=None,
        params=params,
        rows=[],
        skipped=[],
        errors=[],
        notes=[],
        seconds=0.0,
    )


class guarded:  # noqa: N801 - used like a function: `with guarded(result, "sqlite"):`
    """Record an exception in `result["errors"]` (with its traceback printed) and go on."""

    def __init__(self, result: BenchResult, label: str) -> None:
        self._result = result
        self._label = label

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        first = (str(exc).splitlines() or [""])[0][:300]
        self._result["errors"].append(f"{self._label}: {type(exc).__name__}: {first}")
        print(f"  ERROR in {self._result['name']} / {self._label}:", flush=True)
        traceback.print_exception(exc_type, exc, tb)
        return True
