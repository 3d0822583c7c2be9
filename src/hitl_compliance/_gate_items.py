"""One gate pass as review items: the reply text, then each tool call of the message.

Each item is checked by the rules that apply to it (see
[`rule_targets`][hitl_compliance.rules.rule_targets]) and, when flagged `review`,
is its own review with its own id, pause and decision. Items are plain dicts in
the gate's state (the checkpoint serializer keeps only JSON-like data).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage

from hitl_compliance._hitl_response import EDITED_TOOL
from hitl_compliance._validate import check_json
from hitl_compliance.errors import DraftError, InvalidDecisionError
from hitl_compliance.rules import ComplianceRule, RuleResult, rule_targets, worst_verdict
from hitl_compliance.state import Decision, GateView

__all__ = [
    "MIRRORED",
    "advance",
    "check_items",
    "cleared_messages",
    "edit_findings",
    "focus",
    "judge",
    "plain_calls",
    "waiting",
]

MIRRORED = ("review_id", "target", "tool_call", "draft", "findings", "decision", "refused")
"""The item fields the outcome's top level shows (the item under review, else the text)."""

_STATUS = {"pass": "clear", "review": "pending", "block": "blocked"}
_RUNS = frozenset({"clear", "approved", "edited"})
"""Statuses of a tool call item that let the call run."""


def plain_calls(message: AIMessage) -> list[dict[str, Any]]:
    """The message's tool calls as storable plain data, each with an id.

    Raises:
        DraftError: a call's arguments are not JSON a checkpoint can store.
    """
    calls: list[dict[str, Any]] = []
    for index, call in enumerate(message.tool_calls):
        plain = {
            "id": str(call.get("id") or f"hitl-call-{index}"),
            "name": str(call["name"]),
            "args": dict(call.get("args") or {}),
        }
        try:
            check_json(plain)
        except ValueError as exc:
            raise DraftError(
                f"Tool call {plain['name']!r} has arguments no checkpoint can store: {exc}"
            ) from None
        calls.append(plain)
    return calls


def describe_call(call: dict[str, Any]) -> str:
    """A reviewer's one-line view of a call: `transfer({"amount_gbp": 5000, ...})`."""
    args = json.dumps(call["args"], ensure_ascii=False, sort_keys=True)
    return f"{call['name']}({args})"


def item_review_id(pass_id: str, call_id: str) -> str:
    """A tool call's review id: stable for one gate pass and one call id."""
    return hashlib.sha256(f"{pass_id}\x00{call_id}".encode()).hexdigest()[:32]


async def _findings(
    rules: Sequence[ComplianceRule], view: GateView, target: str
) -> list[RuleResult]:
    from hitl_compliance.graph import run_rules  # the one rule runner (fails closed)

    chosen = [rule for rule in rules if target in rule_targets(rule)]
    return [r for r in await run_rules(chosen, view) if r.verdict != "pass"]


def _item(
    review_id: str,
    call: dict[str, Any] | None,
    draft: str,
    findings: list[RuleResult],
) -> dict[str, Any]:
    status = _STATUS[worst_verdict(findings)]
    return {
        "review_id": review_id,
        "target": "text" if call is None else "tool_call",
        "tool_call": call,
        "draft": draft,
        "findings": [f.to_dict() for f in findings],
        "status": status,
        "decision": None,
        "edit_findings": [],
        "refused": None,
        "args": call["args"] if call is not None and status == "clear" else None,
    }


async def check_items(
    rules: Sequence[ComplianceRule],
    pass_id: str,
    text: str,
    calls: list[dict[str, Any]],
    context: dict[str, Any],
    held: Sequence[RuleResult] = (),
) -> list[dict[str, Any]]:
    """The text item (review id `pass_id`), then one item per call, each checked.

    `held`: findings every item carries whatever the rules say (a stop switch's).
    """
    base = {**context, "tool_calls": calls}
    findings = await _findings(rules, GateView(**base, draft_response=text), "text")
    items = [_item(pass_id, None, text, [*findings, *held])]
    for call in calls:
        view = GateView(**base, draft_response="", tool_call=call)
        findings = [*await _findings(rules, view, "tool_call"), *held]
        items.append(
            _item(item_review_id(pass_id, call["id"]), call, describe_call(call), findings)
        )
    return items


def advance(outcome: dict[str, Any]) -> dict[str, Any]:
    """The outcome moved to its next item awaiting review, or to its final text view.

    A refused reply (text blocked or rejected) replaces the whole message, calls
    included, so nothing after it is reviewed.
    """
    items: list[dict[str, Any]] = outcome["items"]
    current: int | None = None
    if items[0]["status"] not in ("blocked", "rejected"):
        current = next((i for i, item in enumerate(items) if item["status"] == "pending"), None)
    shown = items[0] if current is None else items[current]
    status = "pending" if current is not None else items[0]["status"]
    return {**outcome, **{k: shown[k] for k in MIRRORED}, "status": status, "current": current}


def waiting(outcome: dict[str, Any]) -> list[int]:
    """The indexes of the items a gate pass waits for now, all at once.

    The reply text is reviewed first, alone (rejecting it refuses the whole
    message, its calls included); then every flagged tool call of the message
    waits in parallel, each its own review.
    """
    current = outcome.get("current")
    if outcome.get("status") != "pending" or current is None:
        return []
    items: list[dict[str, Any]] = outcome["items"]
    if items[current]["target"] == "text":
        return [current]
    return [
        i
        for i, item in enumerate(items)
        if item["target"] == "tool_call" and item["status"] == "pending"
    ]


def focus(outcome: dict[str, Any], index: int) -> dict[str, Any]:
    """The outcome shown as waiting for item `index` (its review id, draft and findings)."""
    shown = outcome["items"][index]
    return {**outcome, **{k: shown[k] for k in MIRRORED}, "status": "pending", "current": index}


async def judge(
    rules: Sequence[ComplianceRule], outcome: dict[str, Any], decision: Decision
) -> dict[str, Any] | str:
    """The item under review with `decision` applied; or why the decision is refused.

    An edit (`response` of the text, `tool_args` of a call) is re-checked by the
    rules; a `block` finding on it refuses the decision.
    """
    items: list[dict[str, Any]] = outcome["items"]
    item = items[outcome["current"]]
    decided = {**item, "decision": decision.to_state(), "refused": None, "edit_findings": []}
    base = _view_context(outcome)
    if item["target"] == "text":
        if decision.tool_args is not None:
            return "tool_args edit a tool call, but this review is of the reply text"
        if not decision.approved:
            return {**decided, "status": "rejected"}
        if decision.response is None or decision.response == item["draft"]:
            return {**decided, "status": "approved"}
        view = GateView(**base, draft_response=decision.response)
        findings = await _findings(rules, view, "text")
        edited: dict[str, Any] = {"status": "edited"}
    else:
        call = item["tool_call"]
        if decision.response is not None:
            return "a tool call is edited with tool_args, not response"
        switched = decision.metadata.get(EDITED_TOOL)
        if switched is not None and switched != call["name"]:
            return f"an edit changes the arguments of {call['name']}, not the tool ({switched})"
        if not decision.approved:
            return {**decided, "status": "rejected", "args": None}
        if decision.tool_args is None or decision.tool_args == call["args"]:
            return {**decided, "status": "approved", "args": call["args"]}
        new_call = {**call, "args": dict(decision.tool_args)}
        view = GateView(**base, draft_response="", tool_call=new_call)
        findings = await _findings(rules, view, "tool_call")
        edited = {"status": "edited", "args": new_call["args"]}
    blocked = [f for f in findings if f.verdict == "block"]
    if blocked:
        return "the edit is blocked by the rules: " + "; ".join(
            f"{f.rule}: {f.reason} {list(f.evidence)}" for f in blocked
        )
    return {**decided, **edited, "edit_findings": [f.to_dict() for f in findings]}


async def edit_findings(
    rules: Sequence[ComplianceRule], outcome: dict[str, Any], decision: Decision
) -> list[RuleResult]:
    """The rules' findings on the edit `decision` makes to the item under review.

    For the coordinator, before it claims: the same checks `judge` makes inside
    the gate, so a decision the gate would refuse is refused before anything
    changes. No edit: no findings.

    Raises:
        InvalidDecisionError: the edit is of the wrong kind for the item.
    """
    items: list[dict[str, Any]] = outcome["items"]
    item = items[outcome["current"]]
    base = _view_context(outcome)
    if item["target"] == "text":
        if decision.tool_args is not None:
            raise InvalidDecisionError(
                "tool_args edit a tool call, but this review is of the reply text; "
                "edit it with response=."
            )
        if not decision.approved or decision.response in (None, item["draft"]):
            return []
        return await _findings(rules, GateView(**base, draft_response=decision.response), "text")
    call = item["tool_call"]
    if decision.response is not None:
        raise InvalidDecisionError(
            f"This review is of a call to {call['name']!r}: edit it with tool_args=, not response=."
        )
    if not decision.approved or decision.tool_args in (None, call["args"]):
        return []
    new_call = {**call, "args": dict(decision.tool_args or {})}
    view = GateView(**base, draft_response="", tool_call=new_call)
    return await _findings(rules, view, "tool_call")


def _view_context(outcome: dict[str, Any]) -> dict[str, Any]:
    """What every rule view of an item of `outcome` carries besides the item itself."""
    items: list[dict[str, Any]] = outcome["items"]
    return {
        "customer_message": outcome.get("customer_message") or "",
        "requested_by": outcome.get("requested_by"),
        "tool_calls": [i["tool_call"] for i in items[1:]],
    }


def _refusal(item: dict[str, Any]) -> str:
    """The tool message that answers a call that did not run, for the model to read."""
    name = item["tool_call"]["name"]
    if item["status"] == "blocked":
        why = "; ".join(
            str(f.get("reason") or f["rule"]) for f in item["findings"] if f["verdict"] == "block"
        )
        return f"Compliance blocked this call to {name}; it did not run. Reason: {why}."
    reason = (item.get("decision") or {}).get("reason") or "no reason given"
    return f"A compliance officer rejected this call to {name}; it did not run. Reason: {reason}."


def _call(call: dict[str, Any], args: dict[str, Any]) -> ToolCall:
    return ToolCall(name=call["name"], args=dict(args), id=call["id"], type="tool_call")


def _new_id() -> str:
    return f"hitl-{uuid.uuid4().hex}"


def cleared_messages(
    draft: AIMessage, delivered: str, outcome: dict[str, Any], summary: dict[str, Any]
) -> list[BaseMessage]:
    """The messages that replace the draft: valid history whatever was decided.

    Every tool call in them is either left for the tool node (the last message's
    calls) or answered at once by a `ToolMessage` saying it did not run. When some
    calls run and others do not, the refused ones move to an `AIMessage` of their
    own, answered right after it, and the cleared text with the calls that run
    comes last: LangGraph's `ToolNode` runs every call of the latest `AIMessage`,
    so a refused call must not be in it.
    """
    items: list[dict[str, Any]] = outcome["items"]
    metadata = {**draft.response_metadata, "hitl_compliance": summary}

    def ai(content: str, calls: list[ToolCall], meta: dict[str, Any], usage: Any) -> AIMessage:
        return AIMessage(
            content=content,
            id=_new_id(),
            name=draft.name,
            tool_calls=calls,
            response_metadata=meta,
            usage_metadata=usage,
        )

    if items[0]["status"] in ("blocked", "rejected"):
        return [ai(delivered, [], metadata, draft.usage_metadata)]
    runs: list[ToolCall] = []
    refused: list[dict[str, Any]] = []
    for item in items[1:]:
        call = item["tool_call"]
        if item["status"] in _RUNS:
            runs.append(_call(call, item["args"]))
        else:
            refused.append(item)
    if not refused:
        return [ai(delivered, runs, metadata, draft.usage_metadata)]
    held = [_call(i["tool_call"], i["tool_call"]["args"]) for i in refused]
    answers: list[BaseMessage] = [
        ToolMessage(
            content=_refusal(i),
            tool_call_id=i["tool_call"]["id"],
            name=i["tool_call"]["name"],
            status="error",
            id=_new_id(),
        )
        for i in refused
    ]
    if not runs:
        return [ai(delivered, held, metadata, draft.usage_metadata), *answers]
    return [
        ai("", held, dict(draft.response_metadata), None),
        *answers,
        ai(delivered, runs, metadata, draft.usage_metadata),
    ]
