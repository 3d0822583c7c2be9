"""LangChain's `HITLResponse` as a resume value of the library's pauses.

`HumanInTheLoopMiddleware` is resumed with `{"decisions": [{"type": "approve"}
| {"type": "edit", "edited_action": {"name": ..., "args": {...}}} | {"type":
"reject", "message": ...}]}`. A pause of this library reviews one item (the
reply text or one tool call), so such a value carries exactly one decision (or
is that one decision alone, the shape of the middleware's `per_call` mode). It
becomes a [`Decision`][hitl_compliance.Decision] before LangGraph saves it, and
then passes every check any other decision passes; a value that is not a valid
one is refused with `ValueError`, so LangGraph refuses it and saves nothing.

LangChain's decisions name no reviewer. The server-authenticated user of the
run (LangGraph Server's `langgraph_auth_user`) is the reviewer when there is
one, whatever the value says; otherwise the optional `"reviewer"` key (on the
decision or beside `decisions`) names them, else `ANONYMOUS`; either way with
no roles (a `HITLResponse` cannot claim any), so a
[`RoleBasedPolicy`][hitl_compliance.RoleBasedPolicy] refuses them where a rule
needs a role.

This module imports nothing from LangChain: the core package reads the shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["ANONYMOUS", "EDITED_TOOL", "hitl_decision", "is_hitl_response"]

ANONYMOUS = "anonymous"
"""The reviewer of a `HITLResponse` that names none, outside a server run."""

EDITED_TOOL = "langchain_edited_tool"
"""The decision metadata key naming the tool an `edit` decision's `edited_action` names:
the gate refuses an edit that switches tools (it may change the arguments only)."""

DECISION_TYPE = "langchain_decision"
"""The decision metadata key keeping the LangChain decision type (`approve`, `edit`, `reject`)."""

_TYPES = frozenset({"approve", "edit", "reject", "respond"})
_KEYS = {
    "approve": frozenset({"type", "reviewer"}),
    "edit": frozenset({"type", "edited_action", "reviewer"}),
    "reject": frozenset({"type", "message", "reviewer"}),
    "respond": frozenset({"type", "message", "reviewer"}),
}
REPLY_ACTION = "Reply to customer"
"""The action name a pause of reply text shows (as `hitl_compliance._inbox` does): an edit
of it edits the reply (`args["reply"]`), not a tool call's arguments."""


def is_hitl_response(value: Any) -> bool:
    """Whether `value` is shaped as a LangChain `HITLResponse` or one of its decisions.

    An `edit` counts only with its `edited_action` (Agent Inbox's own `edit`
    response carries `args` instead).
    """
    if not isinstance(value, Mapping):
        return False
    if "decisions" in value:
        return True
    kind = value.get("type")
    if kind == "edit":
        return "edited_action" in value
    return kind in _TYPES


def hitl_decision(value: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the [`Decision`][hitl_compliance.Decision] a `HITLResponse` makes.

    Raises:
        ValueError: not exactly one decision, an unknown or unsupported type,
            a malformed `edited_action`, or unknown keys.
    """
    reviewer: Any = None
    if "decisions" in value:
        extra = value.keys() - {"decisions", "reviewer"}
        if extra:
            raise ValueError(f"a HITLResponse has 'decisions' only; unknown keys {sorted(extra)}")
        decisions = value["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1:
            count = len(decisions) if isinstance(decisions, list) else "no list of"
            raise ValueError(
                f"a compliance pause reviews one item (the reply or one tool call), so its "
                f"HITLResponse carries exactly one decision; got {count} decisions"
            )
        reviewer = value.get("reviewer")
        [decision] = decisions
        if not isinstance(decision, Mapping):
            raise ValueError("a HITLResponse decision is an object with a 'type'")
    else:
        decision = value
    kind = decision.get("type")
    if kind not in _KEYS:
        raise ValueError(
            f"a decision's type is 'approve', 'edit', 'reject' or 'respond', got {kind!r}"
        )
    if kind == "respond" and not (
        isinstance(decision.get("message"), str) and decision["message"].strip()
    ):
        raise ValueError("a 'respond' decision carries its message (a rejection's reason)")
    extra = decision.keys() - _KEYS[kind]
    if extra:
        raise ValueError(f"unknown keys {sorted(extra)} in a {kind!r} decision")
    reviewer = decision.get("reviewer", reviewer)
    if reviewer is None:
        reviewer = ANONYMOUS
    if not isinstance(reviewer, str):
        raise ValueError("'reviewer' names the reviewer: a str")
    fields: dict[str, Any] = {
        "approved": kind not in ("reject", "respond"),
        "reviewer": reviewer,
        "decided_at": datetime.now(timezone.utc),
        "metadata": {DECISION_TYPE: kind, "via": "langchain-hitl", "response_type": kind},
    }
    if kind == "edit":
        action = decision.get("edited_action")
        name = action.get("name") if isinstance(action, Mapping) else None
        args = action.get("args") if isinstance(action, Mapping) else None
        if not isinstance(name, str) or not isinstance(args, Mapping):
            raise ValueError("an edit's edited_action is {'name': str, 'args': {...}}")
        if name == REPLY_ACTION:
            reply = args.get("reply")
            if set(args) != {"reply"} or not isinstance(reply, str):
                raise ValueError(
                    f"an edit of the reply is {{'name': {name!r}, 'args': {{'reply': str}}}}"
                )
            fields["response"] = reply
        else:
            fields["tool_args"] = dict(args)
            fields["metadata"] = {**fields["metadata"], EDITED_TOOL: name, "action": name}
    if kind in ("reject", "respond"):
        message = decision.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError("a rejection's message is a str")
        fields["reason"] = message or None
    return fields
