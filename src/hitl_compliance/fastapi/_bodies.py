"""What the review routes accept and return: request bodies, response bodies, input hygiene.

PostgreSQL refuses NUL characters in text and jsonb, and no backend can encode
a lone surrogate as UTF-8: such input would fail deep in a store as a 500. The
annotated types here refuse it at the edge with a 422 instead, with the same
rules on every backend.
"""

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from hitl_compliance._text import plain_text
from hitl_compliance._validate import check_json
from hitl_compliance.errors import InvalidInputError
from hitl_compliance.models import PendingReview

__all__ = [
    "ApproveRequest",
    "Metadata",
    "PlainText",
    "RejectRequest",
    "ReviewPage",
    "ReviewerInfo",
    "ThreadId",
    "parse_older_than",
]

_MAX_METADATA_DEPTH = 16
_MAX_METADATA_BYTES = 16_384


def _metadata(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    """`metadata` as given, once it is JSON every store can keep and small enough to audit."""
    if value is None:
        return None
    check_json(value, max_depth=_MAX_METADATA_DEPTH)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > _MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {_MAX_METADATA_BYTES} bytes of JSON")
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
"""Text without NUL characters or lone surrogates."""
Metadata = Annotated[dict[str, JsonValue] | None, AfterValidator(_metadata)]
"""A JSON object of bounded depth and size, or None."""
ThreadId = Annotated[
    str,
    Path(min_length=1, max_length=512, description="The paused thread's id."),
    AfterValidator(plain_text),
]
"""The `{thread_id}` path parameter."""


class ApproveRequest(BaseModel):
    """Body of `POST /reviews/{thread_id}/approve`; send `{}` to approve the draft as it is."""

    model_config = ConfigDict(extra="forbid")

    response: PlainText | None = Field(
        default=None,
        max_length=20_000,
        description="An edited reply to deliver instead of the draft; re-checked by the rules.",
    )
    expected: PlainText | None = Field(
        default=None,
        max_length=128,
        description=(
            "The `draft_sha256` or `checkpoint_id` the reviewer saw; a mismatch is a 409 "
            "`StaleReviewError`."
        ),
    )
    metadata: Metadata = Field(
        default=None, description="JSON merged into the thread's metadata and the audit record."
    )


class RejectRequest(BaseModel):
    """Body of `POST /reviews/{thread_id}/reject`."""

    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(
        default="", max_length=5_000, description="Why the draft is rejected; audited."
    )
    expected: PlainText | None = Field(
        default=None,
        max_length=128,
        description="The `draft_sha256` or `checkpoint_id` the reviewer saw.",
    )
    metadata: Metadata = Field(
        default=None, description="JSON merged into the thread's metadata and the audit record."
    )


class ReviewPage(BaseModel):
    """One page of `GET /reviews`: pending reviews, oldest first."""

    items: list[PendingReview]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; `null` when this page is the last.",
    )


class ReviewerInfo(BaseModel):
    """The reviewer `authenticate` resolved for this request."""

    id: str
    roles: list[str]


_DATETIME = TypeAdapter(datetime)
_MAX_AGE_S = 100 * 366 * 24 * 3600  # older_than beyond a century is a typo, not a query


def parse_older_than(value: str) -> timedelta | datetime:
    """`older_than`: seconds (a number) or an ISO-8601 datetime with a timezone.

    Raises:
        InvalidInputError: neither, a negative or absurd age, or a naive datetime.
    """
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_AGE_S:
            raise InvalidInputError(
                f"older_than must be between 0 and {_MAX_AGE_S} seconds, got {value!r}."
            )
        return timedelta(seconds=seconds)
    try:
        parsed = _DATETIME.validate_python(value)
    except ValueError:
        raise InvalidInputError(
            f"older_than must be a number of seconds or an ISO-8601 datetime, got {value!r}."
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"older_than {value!r} has no timezone; add one (Z or +00:00).")
    return parsed.astimezone(timezone.utc)
