"""The graph state and the human decision, as plain data that every saver round-trips.

LangGraph's serializers warn on (or, with `LANGGRAPH_STRICT_MSGPACK=true`,
refuse) unregistered types in checkpoints, so state holds only JSON-like
values; typed objects ([`RuleResult`][hitl_compliance.RuleResult],
[`Decision`][hitl_compliance.Decision]) are built at the API edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from hitl_compliance._hitl_response import hitl_decision, is_hitl_response
from hitl_compliance._text import plain_json
from hitl_compliance._validate import check_json
from hitl_compliance.rules import RuleResult

__all__ = ["ComplianceState", "Decision", "GateView", "merge_metadata"]


def merge_metadata(
    left: Mapping[str, Any] | None, right: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Reducer for `metadata`: patch, never overwrite (nested dicts merge key by key).

    Example:
        >>> merge_metadata({"a": 1, "n": {"x": 1}}, {"b": 2, "n": {"y": 2}})
        {'a': 1, 'n': {'x': 1, 'y': 2}, 'b': 2}
    """
    merged: dict[str, Any] = dict(left or {})
    for key, value in (right or {}).items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_metadata(current, value)
        else:
            merged[key] = value
    return merged


class ComplianceState(BaseModel):
    """State of one conversation thread; subclass it to add fields of your own.

    Drafters and rules read it as attributes (`state.draft_response`).
    `violations` holds each non-pass [`RuleResult`][hitl_compliance.RuleResult]
    as a dict (see [`rule_results`][hitl_compliance.ComplianceState.rule_results]).

    Example:
        ```python
        class BankState(ComplianceState):
            customer_id: str = ""

        graph = build_compliance_graph(draft, checkpointer=saver, state_schema=BankState)
        await HitlCoordinator(graph).process("t1", "Hi", customer_id="C-42")
        ```
    """

    customer_message: str = ""
    draft_response: str | None = None
    violations: list[dict[str, Any]] = Field(default_factory=list)
    agent_response: str | None = None
    agent_type: str | None = None
    is_compliant: bool | None = None
    metadata: Annotated[dict[str, JsonValue], merge_metadata] = Field(default_factory=dict)
    decision: dict[str, Any] | None = None
    requested_by: str | None = None
    turn: int = 0
    compliance: dict[str, Any] | None = None
    """The outcome of a [`compliance_gate`][hitl_compliance.compliance_gate] used on this
    state (`text_field="draft_response"`); the factory graph leaves it unset."""

    @property
    def rule_results(self) -> list[RuleResult]:
        """`violations` as typed [`RuleResult`][hitl_compliance.RuleResult]s."""
        return [RuleResult.from_dict(v) for v in self.violations]


class GateView(ComplianceState):
    """What the rules of a [`compliance_gate`][hitl_compliance.compliance_gate] see.

    A gate checks the reply text and each tool call of the model's last
    `AIMessage` as separate items. On the text, `draft_response` is the reply and
    `tool_call` is None; on a tool call, `tool_call` is that call as plain data
    (`{"name", "args", "id"}`) and `draft_response` is empty, so a text rule
    finds nothing in it. `tool_calls` lists every call of the message on both.
    A rule runs on tool calls only when it says so (`applies_to`, see
    [`ToolCallRule`][hitl_compliance.ToolCallRule]).

    Example:
        ```python
        class NoCrypto:
            name = "no_crypto"
            applies_to = ("tool_call",)

            def evaluate(self, state: GateView) -> RuleResult:
                asset = (state.tool_call or {}).get("args", {}).get("asset")
                return RuleResult(self.name, "block" if asset == "BTC" else "pass")
        ```
    """

    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_call: dict[str, Any] | None = None


class Decision(BaseModel):
    """A validated human (or system) decision on one paused review.

    Built and validated by the coordinator before anything reaches LangGraph,
    because LangGraph stores an invalid resume value unvalidated and the thread
    is poisoned from then on.

    `response` edits a reply's text; `tool_args` edits the arguments of the tool
    call under review (a [`compliance_gate`][hitl_compliance.compliance_gate]
    review of one call). The gate re-checks either edit with its rules.

    Example:
        ```python
        Decision(approved=True, reviewer="payments@bank", tool_args={"amount_gbp": 900},
                 decided_at=datetime.now(timezone.utc))
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    approved: bool
    reviewer: str = Field(min_length=1, max_length=256)
    response: str | None = None
    reason: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    decided_at: datetime
    kind: Literal["human", "system"] = "human"
    roles: list[str] = Field(default_factory=list)
    text_sha256: str | None = None
    approvers: list[str] = Field(default_factory=list)
    edit_findings: list[dict[str, JsonValue]] = Field(default_factory=list)
    tool_args: dict[str, JsonValue] | None = None
    reason_code: str | None = Field(default=None, min_length=1, max_length=64)
    """Why, as a code of the coordinator's [`ReasonCodes`][hitl_compliance.ReasonCodes];
    checked against them (and its [`ReasonPolicy`][hitl_compliance.ReasonPolicy]) on
    every path, and recorded in the decision's audit row."""

    @model_validator(mode="before")
    @classmethod
    def _not_a_hand_written_resume(cls, data: Any) -> Any:
        # The resume shape of the hand-written graphs this library replaces: refused
        # (before LangGraph saves it) with the call that does the same with the checks.
        if isinstance(data, Mapping) and ({"approved_response", "agent_metadata"} & data.keys()):
            raise ValueError(
                "this is a hand-written graph's resume ({'approved_response': ..., "
                "'agent_metadata': {'reviewed_by': ...}}); decide with "
                "HitlCoordinator.approve(thread_id, reviewer=..., response=...) or "
                "reject(...), which check the policy, claim the review once and record it"
            )
        return data

    @field_validator("reviewer")
    @classmethod
    def _reviewer_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reviewer must not be blank")
        return value

    @field_validator("response")
    @classmethod
    def _response_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an edited response must not be blank; omit it to send the draft")
        return value

    @field_validator("reviewer", "response", "reason", "reason_code", "roles", "approvers")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Every store must be able to keep the decision: no NUL, no lone surrogate, no NaN.
        plain_json(value)
        return value

    @field_validator("metadata", "tool_args")
    @classmethod
    def _storable_json(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        # The one JSON rule of the library (also for turn metadata and the review
        # API): pydantic's JsonValue takes ints of any size, which LangGraph's
        # msgpack serializer refuses only after the review is claimed. Both are
        # recorded in the decision's audit row: ints within what RFC 8785 writes.
        if value is not None:
            check_json(value, ledger=True)
        return value

    @field_validator("decided_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("decided_at must be timezone-aware")
        return value

    def to_state(self) -> dict[str, Any]:
        """Plain-data form stored in graph state and sent as the resume value.

        `tool_args` and `reason_code` appear only when set, so decisions
        without them keep their earlier stored form.
        """
        data = self.model_dump(mode="json")
        for optional in ("tool_args", "reason_code"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data


SEED_RESUME_KEYS = frozenset({"approved_response", "agent_metadata"})
"""The resume shape of the hand-written graphs this library grew from."""


def as_decision(value: Any) -> Decision:
    """A resume value as a [`Decision`][hitl_compliance.Decision] (ValueError if it is none).

    Agent Inbox's responses and LangChain HITL decisions are read as decisions
    too (see `hitl_compliance._inbox`): accept/approve approves, edit approves
    the edited text or arguments, response/respond/reject rejects with the text
    as the reason, ignore rejects as ignored.

    Besides a decision, the hand-written pattern's approval is accepted:
    `{"approved_response": text, "agent_metadata": {"reviewed_by": who, ...}}`
    is an approval of `text` (an edit where it differs from the draft) by `who`,
    stamped now, the rest of `agent_metadata` kept as the decision's metadata;
    it then passes the same checks as any other decision. So is LangChain's
    `HITLResponse` with one decision (see `hitl_compliance._hitl_response`).
    """
    if isinstance(value, Decision):
        return value
    if isinstance(value, Mapping) and SEED_RESUME_KEYS & value.keys():
        return _seed_decision(value)
    if is_hitl_response(value):
        return Decision.model_validate(hitl_decision(value))
    # Imported here: the inbox module builds Decisions, defined above.
    from hitl_compliance._inbox import inbox_decision

    inbox = inbox_decision(value)
    return Decision.model_validate(value) if inbox is None else inbox


def _seed_decision(value: Mapping[str, Any]) -> Decision:
    extra = value.keys() - SEED_RESUME_KEYS
    meta = value.get("agent_metadata")
    text = value.get("approved_response")
    if extra or not isinstance(meta, Mapping) or not isinstance(text, str):
        raise ValueError(
            "a hand-written graph's resume is {'approved_response': str, 'agent_metadata': "
            "{'reviewed_by': str, ...}} and nothing else; or pass a Decision, or decide with "
            "HitlCoordinator.approve(thread_id, reviewer=..., response=...)"
        )
    reviewer = meta.get("reviewed_by")
    if not isinstance(reviewer, str):
        raise ValueError("agent_metadata.reviewed_by must name the reviewer (a str)")
    metadata = {str(k): v for k, v in meta.items() if k != "reviewed_by"}
    return Decision(
        approved=True,
        reviewer=reviewer,
        response=text,
        metadata=metadata,
        decided_at=datetime.now(timezone.utc),
    )
