"""The decision kinds, defined once: what each one is called, what it leaves behind, what it owes.

A *reviewer decision kind* (`approve`, `reject`) is one
[`DecisionKind`][hitl_compliance._decision_kinds.DecisionKind] in
[`KINDS`][hitl_compliance._decision_kinds.KINDS]; the SLA's outcomes (`expired`,
`escalated`) are [`SystemOutcome`][hitl_compliance._decision_kinds.SystemOutcome]s
in [`OUTCOMES`][hitl_compliance._decision_kinds.OUTCOMES]. Everything else derives
from these two tuples:

* the stores: `FinalStatus` and `HOOK_FOR_EVENT` (`stores/base.py`), the
  final statuses the state machine accepts (`stores/_machine.py`);
* the coordinator: the status a claimed decision completes its review with
  (`_coordination/decisions.py`);
* the CLI: one sub-command per kind, named by its `verb`, calling the
  coordinator method of that name (`cli.py`);
* the review service: one `POST /reviews/{thread_id}/<verb>` route per kind,
  whose request body is the kind's `body` model (defined here, next to it;
  its fields are the coordinator method's keywords), and one inbox button
  per kind (`fastapi/_router.py`, `fastapi/_inbox.py`).

Adding a kind ("escalate to second line", say) touches at most four modules:
this one (its `DecisionKind`, and its audit event / status in the literals
below), `stores/_machine.py` only if it makes a new transition,
`_coordination/decisions.py` for its effect, and `coordinator.py` for the
public method named by its `verb`. The module imports only the library's
leaf modules (`_validate`, for the body fields' types), so every other module
may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from hitl_compliance._validate import Metadata, PlainText

__all__ = [
    "APPROVE",
    "EXPIRE",
    "KINDS",
    "OUTCOMES",
    "REJECT",
    "SLA_ESCALATE",
    "ApproveRequest",
    "AuditEvent",
    "DecisionKind",
    "FinalStatus",
    "HookName",
    "RejectRequest",
    "ReviewStatus",
    "SystemOutcome",
    "TextArgument",
    "decision_events",
    "final_statuses",
    "hook_for_event",
    "kind",
]

ReviewStatus = Literal["pending", "claimed", "approved", "rejected", "expired"]
"""Lifecycle of a review row: `pending` until a decider claims it, then final."""

FinalStatus = Literal["approved", "rejected", "expired"]
"""The statuses a claimed review is completed with: the `status` of a kind or an outcome."""

AuditEvent = Literal[
    "paused",
    "voted",
    "denied",
    "approved",
    "rejected",
    "expired",
    "escalated",
    "dated",
    "recovered",
    "replied",
]
"""What an audit row records."""

HookName = Literal["on_paused", "on_decided", "on_expired"]
"""The application hooks an audit event can owe a call to."""


@dataclass(frozen=True)
class TextArgument:
    """The one free-text argument of a kind (besides `expected` and `metadata`).

    It is the coordinator method's keyword, the CLI's `--<name>` option and the
    request body's field of the same name.
    """

    name: str
    """Keyword, `--option` and body field: `response`, `reason`."""
    cli_help: str
    """The `--<name>` option's help."""
    cli_required: bool
    """Whether the CLI requires `--<name>`."""
    label: str
    """The inbox field's accessible name, before `for <thread>`."""
    edits_draft: bool = False
    """The text replaces the draft (the inbox edits it in place; the rules re-check it)."""
    placeholder: str = ""
    """The inbox field's placeholder, for a text that is not an edit."""


@dataclass(frozen=True)
class DecisionKind:
    """One way a reviewer resolves a review; the CLI, the routes and the inbox follow from it."""

    verb: str
    """The `HitlCoordinator` method, the CLI command and the route's last segment."""
    event: AuditEvent
    """The audit event it writes when it takes effect."""
    status: FinalStatus | None
    """The final review status it leaves, or None when the review stays open."""
    hook: HookName | None
    """The hook its audit event owes a call to (when the application configured it)."""
    delivers: bool
    """Whether a reply reaches the customer."""
    votes: bool
    """Approval semantics: a vote toward the quorum (four-eyes, the requester may
    not vote), and an edited text is re-checked by the rules."""
    text: TextArgument
    """Its free-text argument."""
    body: type[BaseModel]
    """The request body of its route: its fields are the coordinator method's keywords."""
    cli_help: str
    """The CLI command's help."""
    done: str
    """Past tense for messages: `"Approved"`, `"Rejected"`."""
    summary: str
    """The route's summary (OpenAPI)."""
    label: str
    """The inbox button (a kind whose text is not an edit asks for it, then confirms)."""
    edits_tool_args: bool = False
    """The kind also takes `tool_args`, a tool call's edited arguments (a JSON object):
    the CLI's `--tool-args JSON`, the body's `tool_args`, the inbox's arguments editor
    on the card of a tool call's review; the rules re-check them as they do a text."""

    @property
    def confirm(self) -> str:
        """The inbox's confirm button, shown with a text field that is not an edit."""
        return f"Confirm {self.label.lower()}"

    @property
    def path(self) -> str:
        """The route, relative to the router: `/reviews/{thread_id}/<verb>`."""
        return f"/reviews/{{thread_id}}/{self.verb}"

    @property
    def operation_id(self) -> str:
        """The route's OpenAPI operation id: `<verb>_review`."""
        return f"{self.verb}_review"


@dataclass(frozen=True)
class SystemOutcome:
    """What the SLA does to an overdue review; nobody's decision, so no command or route."""

    name: str
    event: AuditEvent
    status: FinalStatus | None
    hook: HookName | None


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
    tool_args: Metadata = Field(
        default=None,
        description=(
            "For the review of a tool call (a `compliance_gate`'s): the arguments, a JSON "
            "object, to run the call with instead of the model's; re-checked by the rules "
            "(a `block` is a 422 `PolicyViolationError`). On a review of a text it is a "
            "422 `InvalidDecisionError`."
        ),
    )
    reason_code: PlainText | None = Field(
        default=None,
        max_length=64,
        description=(
            "Why, as a code of the service's taxonomy (`GET /reason-codes`); required where "
            "its reason policy says. Unknown or missing: a 422 `ReasonCodeError`. Audited."
        ),
    )
    reason: PlainText | None = Field(
        default=None,
        max_length=5_000,
        description="Free text recorded with the approval (the code `other` needs it).",
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
    reason_code: PlainText | None = Field(
        default=None,
        max_length=64,
        description=(
            "Why, as a code of the service's taxonomy (`GET /reason-codes`); required where "
            "its reason policy says. Unknown or missing: a 422 `ReasonCodeError`. Audited."
        ),
    )


APPROVE = DecisionKind(
    verb="approve",
    event="approved",
    status="approved",
    hook="on_decided",
    delivers=True,
    votes=True,
    text=TextArgument(
        name="response",
        cli_help="deliver this edited reply instead",
        cli_required=False,
        label="Edited reply",
        edits_draft=True,
    ),
    body=ApproveRequest,
    cli_help="approve a paused draft (or an edited reply)",
    done="Approved",
    summary="Approve the draft, or an edited reply",
    label="Approve",
    edits_tool_args=True,
)

REJECT = DecisionKind(
    verb="reject",
    event="rejected",
    status="rejected",
    hook="on_decided",
    delivers=False,
    votes=False,
    text=TextArgument(
        name="reason",
        cli_help="why (recorded)",
        cli_required=True,
        label="Rejection reason",
        placeholder="Why is this draft rejected?",
    ),
    body=RejectRequest,
    cli_help="reject a paused draft",
    done="Rejected",
    summary="Reject the draft",
    label="Reject",
)

KINDS: tuple[DecisionKind, ...] = (APPROVE, REJECT)
"""Every reviewer decision kind, in the order the CLI, the routes and the inbox show them."""

EXPIRE = SystemOutcome(name="expire", event="expired", status="expired", hook="on_expired")
"""The SLA decided an overdue review (`on_timeout` reject or approve_draft)."""
SLA_ESCALATE = SystemOutcome(name="escalate", event="escalated", status=None, hook="on_expired")
"""The SLA raised an overdue review's priority; it stays pending."""

OUTCOMES: tuple[SystemOutcome, ...] = (EXPIRE, SLA_ESCALATE)
"""The SLA's outcomes."""


def _every() -> tuple[DecisionKind | SystemOutcome, ...]:
    return (*KINDS, *OUTCOMES)


def kind(verb: str) -> DecisionKind:
    """The registered kind whose verb is `verb` (KeyError if none)."""
    for each in KINDS:
        if each.verb == verb:
            return each
    raise KeyError(verb)


def final_statuses() -> tuple[str, ...]:
    """The final statuses, in registry order: those of the kinds, then of the outcomes."""
    found = [k.status for k in _every() if k.status is not None]
    return tuple(dict.fromkeys(found))


def decision_events() -> dict[str, str]:
    """The audit event that records each final status (the decision row of a review)."""
    return {k.status: k.event for k in _every() if k.status is not None}


def hook_for_event() -> dict[str, str]:
    """Which hook each audit event owes a call to: `paused`, then each kind and outcome."""
    table: dict[str, str] = {"paused": "on_paused"}
    for each in _every():
        if each.hook is not None:
            table[each.event] = each.hook
    return table


def _check() -> None:
    """The literals above name every kind's status and event (checked at import)."""
    verbs = [k.verb for k in KINDS]
    if len(set(verbs)) != len(verbs):
        raise RuntimeError(f"two decision kinds share a verb: {verbs}")
    if set(final_statuses()) != set(get_args(FinalStatus)):
        raise RuntimeError("FinalStatus must list exactly the statuses of KINDS and OUTCOMES.")
    if not set(get_args(FinalStatus)) <= set(get_args(ReviewStatus)):
        raise RuntimeError("ReviewStatus must list every final status.")
    missing = {k.event for k in _every()} - set(get_args(AuditEvent))
    if missing:
        raise RuntimeError(f"AuditEvent must list the events {sorted(missing)}.")


_check()
