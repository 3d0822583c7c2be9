"""Agent Inbox and LangChain HITL shapes: the pause a reviewer's inbox shows, the answer it sends.

Every pause of the library carries, beside its own keys, Agent Inbox's
`HumanInterrupt` (`action_request`, `config`, `description`), so Agent Inbox
lists it and a reviewer can accept, edit, respond or ignore. Their answers,
and LangChain's `HumanInTheLoopMiddleware` decisions, are read here as a
[`Decision`][hitl_compliance.Decision] inside the pause's `response_schema`:
a malformed one raises `ValueError` there, so LangGraph refuses it before
saving it.

Agent Inbox resumes with `[{"type": "accept" | "edit" | "response" | "ignore",
"args": ...}]` (one `HumanResponse` in a list); LangChain's HITL clients with
`{"decisions": [{"type": "approve" | "edit" | "reject" | "respond", ...}]}`
(or, per call, the one decision). Neither names the reviewer: the decision is
made by [`INBOX_REVIEWER`][hitl_compliance._inbox.INBOX_REVIEWER], which the
server's authenticated user replaces wherever the run has one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.runnables import RunnableConfig

from hitl_compliance._authority import authenticated_reviewer
from hitl_compliance.state import Decision

__all__ = [
    "IGNORED_REASON",
    "INBOX_REVIEWER",
    "REPLY_ACTION",
    "REPLY_ARG",
    "describe",
    "fit_to_call",
    "human_interrupt",
    "inbox_decision",
    "signed_by_server_user",
]

INBOX_REVIEWER = "agent-inbox"
"""The reviewer of an inbox answer when the run has no authenticated user (LangGraph
Server replaces it with `langgraph_auth_user`; a policy without custom auth sees this)."""

REPLY_ACTION = "Reply to customer"
"""The `action` of a reply-text review; a space keeps it apart from any tool name."""

REPLY_ARG = "reply"
"""The one argument of a reply-text review: the draft, and the edited text in an `edit`."""

IGNORED_REASON = "ignored in Agent Inbox"
"""The reason of the rejection an Agent Inbox `ignore` records."""

_INBOX_TYPES = frozenset({"accept", "edit", "response", "ignore"})
_HITL_TYPES = frozenset({"approve", "edit", "reject", "respond"})
_ALL_ALLOWED = {
    "allow_accept": True,
    "allow_edit": True,
    "allow_respond": True,
    "allow_ignore": True,
}


def human_interrupt(
    *,
    target: str,
    draft: str | None,
    tool_call: Mapping[str, Any] | None,
    description: str,
) -> dict[str, Any]:
    """Agent Inbox's `HumanInterrupt` keys for one review (merged into the pause's payload).

    A reply is the action [`REPLY_ACTION`][hitl_compliance._inbox.REPLY_ACTION]
    with the draft as its one argument; a tool call is the call itself (its
    name, its arguments), so an edit in the inbox edits the arguments.
    """
    if target == "tool_call" and tool_call is not None:
        name, args = str(tool_call.get("name", "")), dict(tool_call.get("args") or {})
        action: dict[str, Any] = {"action": name, "args": args}
    else:
        action = {"action": REPLY_ACTION, "args": {REPLY_ARG: draft or ""}}
    return {"action_request": action, "config": dict(_ALL_ALLOWED), "description": description}


def describe(
    *,
    target: str,
    customer_message: str | None,
    draft: str | None,
    tool_call: Mapping[str, Any] | None,
    findings: Sequence[Mapping[str, Any]],
    refused: str | None = None,
    review_id: str | None = None,
) -> str:
    """The review as Markdown (Agent Inbox renders it): what is under review, findings, evidence.

    Text from the customer and the model goes in code spans and fences, so it can
    never pass for the library's own words.
    """
    lines: list[str] = []
    title = "Compliance review"
    if review_id:
        title += f" {_code(review_id)}"
    lines.append(f"### {title}")
    if refused:
        lines += ["", f"**The last decision was refused:** {_code(refused)}"]
    if customer_message:
        lines += ["", "**Customer message**", "", _fence(customer_message)]
    if target == "tool_call" and tool_call is not None:
        name = str(tool_call.get("name", ""))
        args = json.dumps(tool_call.get("args") or {}, indent=2, sort_keys=True, default=str)
        lines += ["", f"**Tool call under review:** {_code(name)}", "", _fence(args, "json")]
    else:
        lines += ["", "**Draft reply under review**", "", _fence(draft or "")]
    lines += ["", f"**Findings ({len(findings)})**", ""]
    for finding in findings:
        head = f"- **{_code(str(finding.get('rule', '?')))}** ({finding.get('verdict', '?')}"
        severity = finding.get("severity")
        head += f", {severity})" if severity else ")"
        reason = str(finding.get("reason") or "")
        if reason:
            head += f": {_plain(reason)}"
        lines.append(head)
        for evidence in finding.get("evidence") or ():
            lines.append(f"  - evidence: {_code(str(evidence))}")
    if not findings:
        lines.append("- none recorded")
    lines += [
        "",
        "Accept sends it as is; edit changes it (re-checked by the rules); respond rejects "
        "it with your text as the reason; ignore rejects it as ignored.",
    ]
    return "\n".join(lines)


def _fence(text: str, info: str = "") -> str:
    """`text` in a fenced block longer than any backtick run inside it."""
    longest = _longest_backtick_run(text)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _code(text: str) -> str:
    """`text` as one inline code span (newlines folded), whatever backticks it holds."""
    flat = " ".join(text.split())
    ticks = "`" * (_longest_backtick_run(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _longest_backtick_run(text: str) -> int:
    if "`" not in text:  # the usual case: no scan
        return 0
    return max(len(m) for m in _BACKTICKS.findall(text))


_BACKTICKS = re.compile(r"`+")
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]<>#|])")


def _plain(text: str) -> str:
    """A rule's reason on one line, Markdown punctuation escaped."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def inbox_decision(value: Any) -> Decision | None:
    """An Agent Inbox or LangChain HITL answer as a `Decision`; None if `value` is neither.

    Raises:
        ValueError: `value` has one of those shapes but is not a valid answer
            (several answers for one review, an unknown type, an edit without
            its arguments, an empty response).
    """
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
        if not items or not all(isinstance(i, Mapping) and "type" in i for i in items):
            return None
        if len(items) != 1:
            raise ValueError(
                f"one Agent Inbox response answers one review; got {len(items)}. Resume each "
                "pause by its interrupt id: Command(resume={interrupt_id: [response]})"
            )
        return _inbox_response(items[0])
    if not isinstance(value, Mapping):
        return None
    if "decisions" in value:
        decisions = value["decisions"]
        if (
            set(value) != {"decisions"}
            or not isinstance(decisions, Sequence)
            or isinstance(decisions, (str, bytes))
        ):
            raise ValueError("a LangChain HITL response is {'decisions': [decision]} and no more")
        if len(decisions) != 1 or not isinstance(decisions[0], Mapping):
            raise ValueError(
                f"one HITL decision answers one review; got {len(decisions)}. Resume each "
                "pause by its interrupt id"
            )
        return _hitl_decision(decisions[0])
    kind = value.get("type")
    if not isinstance(kind, str):
        return None
    if "args" in value and kind in _INBOX_TYPES:
        return _inbox_response(value)
    if kind in _HITL_TYPES:
        return _hitl_decision(value)
    raise ValueError(
        f"unknown response type {kind!r}: Agent Inbox sends accept/edit/response/ignore, "
        "LangChain HITL approve/edit/reject/respond"
    )


def _made(source: str, kind: str, **fields: Any) -> Decision:
    metadata = {"via": source, "response_type": kind, **fields.pop("metadata", {})}
    return Decision(
        reviewer=INBOX_REVIEWER,
        decided_at=datetime.now(timezone.utc),
        metadata=metadata,
        **fields,
    )


def _inbox_response(response: Mapping[str, Any]) -> Decision:
    """One Agent Inbox `HumanResponse` (`{"type", "args"}`) as a decision."""
    extra = set(response) - {"type", "args"}
    if extra:
        raise ValueError(f"an Agent Inbox response has only 'type' and 'args'; got {sorted(extra)}")
    kind, args = response.get("type"), response.get("args")
    if kind == "accept":
        return _made("agent-inbox", "accept", approved=True)
    if kind == "ignore":
        return _made("agent-inbox", "ignore", approved=False, reason=IGNORED_REASON)
    if kind == "response":
        if not isinstance(args, str) or not args.strip():
            raise ValueError("an Agent Inbox 'response' carries its text in 'args'")
        return _made("agent-inbox", "response", approved=False, reason=args)
    if kind == "edit":
        if not isinstance(args, Mapping):
            raise ValueError("an Agent Inbox 'edit' carries {'action': ..., 'args': {...}}")
        return _edited("agent-inbox", args.get("action"), args.get("args"))
    raise ValueError(f"unknown Agent Inbox response type {kind!r}")


def _hitl_decision(decision: Mapping[str, Any]) -> Decision:
    """One LangChain HITL decision as a decision of ours."""
    kind = decision.get("type")
    allowed = {"type", "edited_action" if kind == "edit" else "message"}
    extra = set(decision) - allowed
    if extra:
        raise ValueError(f"a HITL {kind!r} decision has no {sorted(extra)}")
    if kind == "approve":
        if "message" in decision:
            raise ValueError("a HITL 'approve' decision has no 'message'")
        return _made("langchain-hitl", "approve", approved=True)
    if kind == "edit":
        action = decision.get("edited_action")
        if not isinstance(action, Mapping):
            raise ValueError("a HITL 'edit' carries edited_action={'name': ..., 'args': {...}}")
        return _edited("langchain-hitl", action.get("name"), action.get("args"))
    if kind in {"reject", "respond"}:
        message = decision.get("message")
        if message is not None and (not isinstance(message, str) or not message.strip()):
            raise ValueError(f"a HITL {kind!r} message is text")
        if kind == "respond" and message is None:
            raise ValueError("a HITL 'respond' decision carries its 'message'")
        reason = message or "rejected through a LangChain HITL client"
        return _made("langchain-hitl", str(kind), approved=False, reason=reason)
    raise ValueError(f"unknown HITL decision type {kind!r}")


def _edited(source: str, action: Any, args: Any) -> Decision:
    """An edit: of the reply text (the reply action) or of a tool call's arguments."""
    if not isinstance(action, str) or not isinstance(args, Mapping):
        raise ValueError("an edit names its action and carries its arguments as an object")
    if action == REPLY_ACTION:
        text = args.get(REPLY_ARG)
        if set(args) != {REPLY_ARG} or not isinstance(text, str):
            raise ValueError(f"an edit of the reply carries {{{REPLY_ARG!r}: text}} and no more")
        return _made(source, "edit", approved=True, response=text)
    return _made(
        source,
        "edit",
        approved=True,
        tool_args={str(k): v for k, v in args.items()},
        metadata={"action": action},
    )


def fit_to_call(decision: Decision, tool_call: Mapping[str, Any] | None) -> Decision | str:
    """An inbox edit of a tool call fitted to the call: its argument types restored.

    Agent Inbox edits every argument as text: a value typed over a number, a
    flag, a list or an object is read back as JSON when it parses to the same
    kind. An edit naming another tool is refused (the reason, as a str).
    Anything that is no inbox edit of a tool call is returned unchanged.
    """
    if decision.tool_args is None or decision.metadata.get("via") is None or tool_call is None:
        return decision
    name = tool_call.get("name")
    if decision.metadata.get("action") != name:
        return (
            f"refused: the edit names the tool {decision.metadata.get('action')!r}, the review "
            f"is of a call to {name!r}; an edit changes the arguments, never the tool"
        )
    original = tool_call.get("args") or {}
    args = {k: _retyped(v, original.get(k)) for k, v in decision.tool_args.items()}
    try:
        return Decision.model_validate({**decision.model_dump(), "tool_args": args})
    except ValueError as exc:  # pydantic's ValidationError is one
        return f"refused: the edited arguments cannot be stored: {exc}"


def _retyped(value: Any, original: Any) -> Any:
    if not isinstance(value, str) or original is None or isinstance(original, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    same_kind = (
        isinstance(parsed, bool) == isinstance(original, bool)
        and isinstance(parsed, (int, float)) == isinstance(original, (int, float))
        and isinstance(parsed, list) == isinstance(original, list)
        and isinstance(parsed, dict) == isinstance(original, dict)
    )
    return parsed if same_kind else value


def signed_by_server_user(decision: Decision, config: RunnableConfig) -> Decision:
    """An inbox answer made by the run's authenticated user, where the run has one.

    Only the placeholder [`INBOX_REVIEWER`][hitl_compliance._inbox.INBOX_REVIEWER]
    is replaced; an attached authority replaces any name anyway.
    """
    if decision.reviewer != INBOX_REVIEWER or decision.metadata.get("via") is None:
        return decision
    user = authenticated_reviewer(config)
    if user is None:
        return decision
    return decision.model_copy(update={"reviewer": user.id, "roles": sorted(user.roles)})
