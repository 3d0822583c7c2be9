"""Frozen value types returned by the public API: results, reviews and audit records."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hitl_compliance._decision_kinds import AuditEvent, ReviewStatus
from hitl_compliance._normalize import canonical_id
from hitl_compliance.errors import LedgerValueError
from hitl_compliance.ledger import (
    GENESIS,
    LANES_FORMAT,
    LEDGER_FORMAT,
    UnsealableValueError,
    canonical,
    check_sealable,
    format_at,
)
from hitl_compliance.rules import RuleResult

__all__ = [
    "AuditEvent",
    "AuditRecord",
    "HookDelivery",
    "PendingReview",
    "ProcessResult",
    "ReviewRecord",
    "ReviewStatus",
    "Vote",
    "check_audit_payload",
    "seal",
    "sealed_canonical",
    "sealed_hash",
    "sha256_text",
]


def sha256_text(text: str | None) -> str:
    """Hex SHA-256 of the UTF-8 text (of `""` for `None`)."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")


class Vote(_Frozen):
    """One approver's approval of one text, while a review waits for its quorum.

    `reviewer` is the id as given; `reviewer_key` is its canonical form (the policy's
    `canonical_id`, by default
    [`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id]), which every
    store compares to refuse a second vote by the same person. A vote stored before
    keys existed gets the default form when loaded.
    """

    reviewer: str
    roles: list[str] = Field(default_factory=list)
    at: datetime
    text_sha256: str
    response: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    reviewer_key: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("reviewer_key"):
            reviewer = data.get("reviewer")
            if isinstance(reviewer, str):
                data = {**data, "reviewer_key": canonical_id(reviewer)}
        return data


class ProcessResult(_Frozen):
    """The outcome of `process`, `approve`, `reject` or `recover` for one thread.

    `status` is `paused` (awaiting a human), `completed` (a reply was
    delivered) or `rejected` (nothing, or `rejection_message`, was delivered).
    """

    status: Literal["paused", "completed", "rejected"]
    thread_id: str
    awaiting_approval: bool
    agent_response: str | None = None
    violations: list[RuleResult] = Field(default_factory=list)
    draft_response: str | None = None
    customer_message: str = ""
    agent_type: str | None = None
    is_compliant: bool | None = None
    reviewer: str | None = None
    checkpoint_id: str | None = None
    review_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    votes: list[Vote] = Field(default_factory=list)
    approvals_required: int = 1

    def _repr_html_(self) -> str:
        rows = [
            ("status", self.status),
            ("thread", self.thread_id),
            ("customer", self.customer_message),
            ("draft", self.draft_response or ""),
            ("delivered", "" if self.agent_response is None else self.agent_response),
            ("findings", ", ".join(f"{v.rule}:{v.verdict}" for v in self.violations)),
            ("reviewer", self.reviewer or ""),
        ]
        return _html_table(["field", "value"], rows)


class PendingReview(_Frozen):
    """One paused thread awaiting a decision, with what a reviewer needs to decide it."""

    thread_id: str
    review_id: str
    checkpoint_id: str
    customer_message: str
    draft_response: str
    draft_sha256: str
    violations: list[RuleResult]
    requested_at: datetime
    requested_by: str | None = None
    votes: list[Vote] = Field(default_factory=list)
    approvals_required: int = 1
    deadline: datetime | None = None
    priority: int = 0
    assigned_to: str | None = None
    """Whom the review waits for: a reviewer id or `"queue:<name>"` (None: unassigned)."""
    assignment_reason: str | None = None
    """Why it is assigned there (`"rule guarantee -> queue:compliance-l2"`)."""
    delegated_from: str | None = None
    """In `pending(assigned_to=x)`: the reviewer who delegated it to `x`, else None."""

    @property
    def cursor(self) -> str:
        """Opaque position of this item; pass it as `pending(cursor=...)` for the next page."""
        return f"{self.requested_at.isoformat()}|{self.review_id}"

    def _repr_html_(self) -> str:
        return _html_table(
            ["thread", "requested_at", "findings", "draft"],
            [
                (
                    self.thread_id,
                    self.requested_at.isoformat(timespec="seconds"),
                    ", ".join(f"{v.rule}:{v.verdict}" for v in self.violations),
                    self.draft_response,
                )
            ],
        )


class ReviewRecord(_Frozen):
    """One row of a review store: one pause of one thread and its decision.

    Store adapters create and return these; `decision` is the validated
    decision payload once a decider has claimed the review.
    """

    review_id: str
    thread_id: str
    checkpoint_id: str
    status: ReviewStatus
    customer_message: str = ""
    draft_response: str = ""
    violations: list[RuleResult] = Field(default_factory=list)
    requested_at: datetime
    requested_by: str | None = None
    claim_id: str | None = None
    claimed_at: datetime | None = None
    decided_at: datetime | None = None
    reviewer: str | None = None
    decision: dict[str, Any] | None = None
    votes: list[Vote] = Field(default_factory=list)
    approvals_required: int = 1
    deadline: datetime | None = None
    priority: int = 0

    def to_pending(self) -> PendingReview:
        """The reviewer-facing view of this row."""
        return PendingReview(
            thread_id=self.thread_id,
            review_id=self.review_id,
            checkpoint_id=self.checkpoint_id,
            customer_message=self.customer_message,
            draft_response=self.draft_response,
            draft_sha256=sha256_text(self.draft_response),
            violations=list(self.violations),
            requested_at=self.requested_at,
            requested_by=self.requested_by,
            votes=list(self.votes),
            approvals_required=self.approvals_required,
            deadline=self.deadline,
            priority=self.priority,
        )


class AuditRecord(_Frozen):
    """One append-only audit event: who did what, to which checkpoint, when."""

    # to_row() keeps NaN and infinity as floats (not null), so sealing one refuses it.
    model_config = ConfigDict(
        frozen=True, arbitrary_types_allowed=True, extra="forbid", ser_json_inf_nan="constants"
    )

    seq: int
    thread_id: str
    review_id: str | None
    checkpoint_id: str | None
    event: str
    actor: str
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime
    prev_hash: str = GENESIS
    global_prev_hash: str = GENESIS
    hash: str = ""
    ledger_format: int = 1
    """The canonical form `hash` was computed with: 2 (RFC 8785) for every new row,
    3 (format 2 and `lane`) for a store with lanes, 1 for rows written before
    (see [`ledger`][hitl_compliance.ledger])."""
    lane: int = 0
    """The ledger lane the row is chained in (format 3; 0 for every other row)."""
    sealed_payload: dict[str, Any] | None = None
    """The payload as hashed, when `payload` shows personal values put back (see
    [Erasure](../concepts/erasure.md)); None when the two are the same."""
    personal: dict[str, Any] | None = None
    """Each personal value's commitment digest -> `{"salt", "value"}`, or None once erased."""

    def to_row(self) -> dict[str, Any]:
        """Plain JSON form, as exported and as hashed by [`ledger`][hitl_compliance.ledger].

        The payload is the sealed (hashed) form; a row with personal values adds
        `personal`, which the verifier checks against the payload's commitments.
        """
        row = self.model_dump(mode="json")
        row["at"] = format_at(self.at)
        sealed = row.pop("sealed_payload")
        if sealed is not None:
            row["payload"] = sealed
        if row["personal"] is None:
            del row["personal"]
        if self.ledger_format < LANES_FORMAT:
            del row["lane"]  # rows before lanes export (and hash) exactly as before
        return row

    def _repr_html_(self) -> str:
        return _html_table(
            ["seq", "at", "event", "actor", "checkpoint"],
            [
                (
                    str(self.seq),
                    self.at.isoformat(timespec="seconds"),
                    self.event,
                    self.actor,
                    self.checkpoint_id or "",
                )
            ],
        )


def seal(
    *,
    seq: int,
    thread_id: str,
    review_id: str | None,
    checkpoint_id: str | None,
    event: str,
    actor: str,
    payload: dict[str, Any],
    at: datetime,
    prev_hash: str,
    global_prev_hash: str,
    ledger_format: int = LEDGER_FORMAT,
    lane: int = 0,
) -> AuditRecord:
    """Build an audit record with its ledger hash; every store appends through this.

    Raises:
        LedgerValueError: the row holds a value its canonical form cannot write
            exactly (nothing is built, so the store writes nothing).
    """
    unsealed = AuditRecord(
        seq=seq,
        thread_id=thread_id,
        review_id=review_id,
        checkpoint_id=checkpoint_id,
        event=event,
        actor=actor,
        payload=payload,
        at=at,
        prev_hash=prev_hash,
        global_prev_hash=global_prev_hash,
        ledger_format=ledger_format,
        lane=lane,
    )
    return unsealed.model_copy(update={"hash": sealed_hash(unsealed.to_row())})


def sealed_hash(row: dict[str, Any]) -> str:
    """[`row_hash`][hitl_compliance.ledger.row_hash] of a row being written, or LedgerValueError."""
    return hashlib.sha256(sealed_canonical(row, thread_id=row.get("thread_id"))).hexdigest()


def sealed_canonical(row: dict[str, Any], *, thread_id: str | None) -> bytes:
    """[`canonical`][hitl_compliance.ledger.canonical] bytes of a row being written.

    Raises:
        LedgerValueError: the row holds a value its format cannot write exactly
            (naming `thread_id`, as the row may hold a stand-in for it).
    """
    try:
        return canonical(row)
    except UnsealableValueError as exc:
        raise _refused(exc, event=str(row.get("event")), thread_id=thread_id) from None


def check_audit_payload(payload: object, *, event: str, thread_id: str | None) -> None:
    """LedgerValueError unless the ledger can hash `payload` exactly (stores call it first)."""
    try:
        check_sealable(payload, path="row.payload")
    except UnsealableValueError as exc:
        raise _refused(exc, event=event, thread_id=thread_id) from None


def _refused(exc: UnsealableValueError, *, event: str, thread_id: str | None) -> LedgerValueError:
    return LedgerValueError(
        f"The {event!r} audit row cannot be sealed: {exc}. Nothing was written; pass "
        "the value as a string (or a smaller number) and call again.",
        thread_id=thread_id,
        event=event,
        path=exc.path,
    )


class HookDelivery(_Frozen):
    """One hook call owed for one audit event (the outbox row), and how it went.

    `delivery_id` is fixed when the row is written and is the same on every
    attempt, so a receiver can deduplicate on it. `lease_owner` and
    `lease_until` name the caller that claimed the row
    ([`claim_hooks`][hitl_compliance.ReviewStore.claim_hooks]) and until when
    no other caller may take it; both are None on a row nobody holds.
    """

    delivery_id: str
    hook: str
    status: Literal["pending", "failed", "delivered"]
    attempts: int = 0
    """Finished attempts: a caller that died mid-call is not counted."""
    last_error: str | None = None
    created_at: datetime
    record: AuditRecord
    lease_owner: str | None = None
    lease_until: datetime | None = None


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
