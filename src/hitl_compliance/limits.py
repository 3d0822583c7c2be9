"""How large the texts and metadata the library accepts may be: `InputLimits`.

Every text and JSON value a turn or a decision brings is kept in LangGraph's
checkpoints, in the review store and in audit rows, and the rules scan it. An
unbounded one (a 200 MB paste, a runaway tool call) costs seconds and hundreds
of megabytes per call and bloats every later checkpoint of the thread, so each
is measured first and refused past its limit with
[`InputTooLargeError`][hitl_compliance.InputTooLargeError], before anything is
written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hitl_compliance.errors import ConfigurationError, InputTooLargeError

if TYPE_CHECKING:
    from hitl_compliance.state import Decision

__all__ = ["DEFAULT_INPUT_LIMITS", "InputLimits"]


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The largest text and metadata a coordinator (or an attached graph) accepts.

    The defaults allow anything a chat turn plausibly holds: 1,000,000
    characters is about 250,000 tokens, more than any chat model's context
    window, and a 1 MB edit costs well under a second and about 8 MiB. Raise them for
    larger documents: the cost of a text grows linearly with its size (see the
    edit benchmark in the performance page).

    Attributes:
        max_text_chars: The most characters in one text: the customer's message,
            an edited reply (`response=`), a decision's `reason`.
        max_metadata_bytes: The most bytes of UTF-8 JSON in one metadata mapping:
            a turn's `metadata=`, a decision's `metadata=` or edited `tool_args=`.

    Example:
        ```python
        coordinator = HitlCoordinator(
            graph, reviews=store, limits=InputLimits(max_text_chars=20_000_000)
        )
        ```
    """

    max_text_chars: int = 1_000_000
    max_metadata_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_text_chars", "max_metadata_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"InputLimits.{name} must be a positive int, got {value!r}."
                )

    def check_text(self, field: str, value: object, *, thread_id: str | None = None) -> None:
        """Refuse a str longer than `max_text_chars` (other values are left to the type checks).

        Raises:
            InputTooLargeError: `value` is too long.
        """
        if isinstance(value, str) and len(value) > self.max_text_chars:
            raise too_large(field, len(value), self.max_text_chars, "characters", thread_id)

    def check_json(self, field: str, value: object, *, thread_id: str | None = None) -> None:
        """Refuse a mapping whose UTF-8 JSON is longer than `max_metadata_bytes`.

        Raises:
            InputTooLargeError: `value` is too large.
        """
        if not isinstance(value, Mapping) or not value:
            return
        size = json_size(value, self.max_metadata_bytes)
        if size > self.max_metadata_bytes:
            raise too_large(field, size, self.max_metadata_bytes, "bytes", thread_id)

    def check_decision(self, made: Decision, *, thread_id: str | None = None) -> None:
        """Refuse a decision whose texts or metadata exceed the limits.

        Raises:
            InputTooLargeError: naming the first field too large.
        """
        self.check_text("response", made.response, thread_id=thread_id)
        self.check_text("reason", made.reason, thread_id=thread_id)
        self.check_json("metadata", made.metadata, thread_id=thread_id)
        self.check_json("tool_args", made.tool_args, thread_id=thread_id)


def too_large(
    field: str, size: int, limit: int, unit: str, thread_id: str | None, *, fix: str | None = None
) -> InputTooLargeError:
    """The error for `field` of `size` over `limit`; `fix` says how to raise the limit."""
    if fix is None:
        option = "max_text_chars" if unit == "characters" else "max_metadata_bytes"
        fix = f"raise InputLimits({option}=...) where the coordinator is built"
    return InputTooLargeError(
        f"{field} is {size:,} {unit}{'+' if unit == 'bytes' else ''}, over the limit of "
        f"{limit:,} {unit}; nothing was written. Shorten it, or {fix}.",
        field=field,
        size=size,
        limit=limit,
        unit=unit,
        thread_id=thread_id,
    )


DEFAULT_INPUT_LIMITS = InputLimits()
"""The limits in force when none are given."""


def json_size(value: Any, bound: int) -> int:
    """The UTF-8 size of `value` as compact JSON, counted until it passes `bound`.

    A str counts as its UTF-8 length plus two quotes, without escapes, so the
    size is a lower bound of what `json.dumps` writes; that is enough to refuse
    what is too large without serialising it. Non-JSON values count by `repr`
    (they are refused by the JSON checks anyway).
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item.encode("utf-8", "surrogatepass")) + 2
        elif isinstance(item, Mapping):
            total += 2 + max(len(item) - 1, 0)
            for key, child in item.items():
                stack.append(key)
                total += 1  # the colon
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            total += 2 + max(len(item) - 1, 0)
            stack.extend(item)
        elif item is None or isinstance(item, (bool, int, float)):
            total += len(json.dumps(item))
        else:
            total += len(repr(item))
        if total > bound:
            break
    return total
