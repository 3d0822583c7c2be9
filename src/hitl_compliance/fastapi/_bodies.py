"""What the review routes accept and return: request bodies, response bodies, input hygiene.

PostgreSQL refuses NUL characters in text and jsonb, and no backend can encode
a lone surrogate as UTF-8: such input would fail deep in a store as a 500. The
annotated types (`PlainText`, `Metadata`, from `_validate.py`) refuse it at the
edge with a 422 instead, with the same rules on every backend. The decision
bodies (`ApproveRequest`, `RejectRequest`) are defined with their decision kind
in `_decision_kinds.py`.
"""

import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from hitl_compliance._decision_kinds import ApproveRequest, RejectRequest
from hitl_compliance._text import plain_text
from hitl_compliance._validate import Metadata, PlainText
from hitl_compliance.errors import InvalidInputError
from hitl_compliance.models import PendingReview
from hitl_compliance.qa import QaRuleCount
from hitl_compliance.stops import StopSwitch

__all__ = [
    "ApproveRequest",
    "AssignRequest",
    "AssignmentInfo",
    "Metadata",
    "PlainText",
    "QaReviewId",
    "QaRuleCountInfo",
    "QaVerdictRequest",
    "ReasonCodeInfo",
    "ReasonCountInfo",
    "ReasonTaxonomy",
    "RejectRequest",
    "ReviewPage",
    "ReviewerInfo",
    "StopInfo",
    "StopRequest",
    "ThreadId",
    "parse_older_than",
    "parse_time",
]

ThreadId = Annotated[
    str,
    Path(min_length=1, max_length=512, description="The paused thread's id."),
    AfterValidator(plain_text),
]
"""The `{thread_id}` path parameter."""

QaReviewId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=600,
        description=(
            "The QA review's id, `qa:<thread id>:<turn>` as `GET /qa/pending` lists it "
            "(colons as they are; a `/` of the thread id percent-encoded or not)."
        ),
        examples=["qa:conv-1:1"],
    ),
    AfterValidator(plain_text),
]
"""The `{qa_review_id}` path parameter (routed with Starlette's `path` convertor)."""


class QaVerdictRequest(BaseModel):
    """Body of `POST /qa/{qa_review_id}/verdict`: a QA reviewer's verdict on a sampled reply."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["agree", "disagree"] = Field(
        description=(
            "`agree`: the rules were right to let the reply through; `disagree`: it needed a human."
        )
    )
    reason_code: PlainText | None = Field(
        default=None,
        max_length=64,
        description=(
            "Why, as a code of the service's taxonomy (`GET /reason-codes`); required "
            "for `disagree`. Unknown: a 422 `ReasonCodeError`. Audited."
        ),
    )
    reason: PlainText | None = Field(
        default=None,
        max_length=5_000,
        description="Free text (required by codes that need text, such as `other`); audited.",
    )


class QaRuleCountInfo(BaseModel):
    """One rule's second-line QA outcome in `GET /qa/disagreement`."""

    rule: str
    sampled: int = Field(description="QA reviews sampled in the window whose rules include it.")
    reviewed: int = Field(description="Of those, how many hold a verdict.")
    disagreements: int = Field(description="Of those, how many the QA reviewer disagreed with.")
    disagreement_rate: float | None = Field(
        description="`disagreements / reviewed`; `null` before any verdict."
    )

    @classmethod
    def of(cls, count: QaRuleCount) -> "QaRuleCountInfo":
        """The count as the API shows it."""
        return cls(
            rule=count.rule,
            sampled=count.sampled,
            reviewed=count.reviewed,
            disagreements=count.disagreements,
            disagreement_rate=count.disagreement_rate,
        )


class ReviewPage(BaseModel):
    """One page of `GET /reviews`: pending reviews, oldest first."""

    items: list[PendingReview]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; `null` when this page is the last.",
    )


class AssignRequest(BaseModel):
    """Body of `POST /reviews/{thread_id}/assign`: the new assignee and why."""

    model_config = ConfigDict(extra="forbid")

    to: PlainText = Field(
        min_length=1, max_length=256, description='A reviewer id, or `"queue:<name>"`.'
    )
    reason: PlainText = Field(
        min_length=1, max_length=2000, description="Why (the `reassigned` audit row keeps it)."
    )


class AssignmentInfo(BaseModel):
    """Whom a review now waits for, and why."""

    review_id: str
    thread_id: str
    assigned_to: str
    reason: str


class ReviewerInfo(BaseModel):
    """The reviewer `authenticate` resolved for this request."""

    id: str
    roles: list[str]


class StopInfo(BaseModel):
    """A stop in force (`GET /stops`): every reply in its scope waits for review."""

    scope: str = Field(description="`all`, `ruleset:<fingerprint>` or `product:<name>`.")
    by: str
    reason: str
    since: datetime
    banner: str = Field(description="One line an inbox shows while the stop is on.")

    @classmethod
    def of(cls, stop: StopSwitch) -> "StopInfo":
        """The stop as the API shows it."""
        return cls(
            scope=stop.scope.key,
            by=stop.by,
            reason=stop.reason,
            since=stop.since,
            banner=stop.banner,
        )


class StopRequest(BaseModel):
    """`POST /stops/on` (switch on, with a reason) and `POST /stops/off` (switch off)."""

    model_config = ConfigDict(extra="forbid")

    scope: PlainText = Field(
        default="all",
        min_length=1,
        max_length=600,
        description="`all` (default), `ruleset:<fingerprint>` or `product:<name>`.",
    )
    reason: PlainText | None = Field(
        default=None,
        max_length=2000,
        description="Why delivery stops (required to switch on; ignored by resume).",
    )


class ReasonCodeInfo(BaseModel):
    """One reason code a decision may carry (`reason_code`)."""

    code: str
    label: str
    description: str
    requires_text: bool = Field(description="A decision with this code needs a reason text too.")


class ReasonTaxonomy(BaseModel):
    """`GET /reason-codes`: the codes reviewers pick from, and which actions need one."""

    codes: list[ReasonCodeInfo]
    required_for: list[str] = Field(
        description="The actions (`approve`, `edit`, `reject`, `expiry`) that need a code."
    )
    expiry_code: str | None = Field(default=None, description="The code the SLA records.")


class ReasonCountInfo(BaseModel):
    """How many audit rows of one event recorded one reason code."""

    code: str
    event: str
    count: int


def parse_time(name: str, value: str | None) -> datetime | None:
    """An optional ISO-8601 datetime query parameter with a timezone (InvalidInputError)."""
    if value is None:
        return None
    try:
        parsed = _DATETIME.validate_python(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be an ISO-8601 datetime, got {value!r}.") from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"{name} {value!r} has no timezone; add one (Z or +00:00).")
    return parsed


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
