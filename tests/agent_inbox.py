"""Agent Inbox's own interrupt detection and response construction, ported to Python.

Ported line by line from langchain-ai/agent-inbox (commit f38301b):

* `src/components/agent-inbox/contexts/utils.ts`: `normalizeInterrupt` and
  `getInterruptFromThread` (how the inbox reads `thread.interrupts`), and the
  `invalidSchema` test of `ThreadContext.tsx` (`fetchSingleThread`): an
  interrupt whose `action_request.action` is missing or `improper_schema` is
  shown as "invalid schema" and cannot be answered;
* `src/components/agent-inbox/utils.ts`: `createDefaultHumanResponse` (the
  responses a reviewer can pick from, by the interrupt's `config`);
* `src/components/agent-inbox/components/inbox-item-input.tsx`: `onEditChange`
  (an edited field is stored as the text typed);
* `src/components/agent-inbox/hooks/use-interrupted-actions.tsx`: `handleSubmit`
  and `handleIgnore` (what is sent: `[response]` as `Command(resume=...)`);
* `src/components/agent-inbox/contexts/ThreadContext.tsx`: `sendHumanResponse`
  (`runs.create(thread, graph, command={"resume": response})`) and
  `ignoreThread` ("Mark as resolved": `threads.updateState(thread, values=null,
  asNode=END)`).

The tests run these against the library's real pauses, so a change on either
side that breaks the inbox shows up here.
"""

from __future__ import annotations

import json
from typing import Any

IMPROPER_SCHEMA = "improper_schema"
END = "__end__"

_IMPROPER: dict[str, Any] = {
    "action_request": {"action": IMPROPER_SCHEMA, "args": {}},
    "config": {
        "allow_ignore": True,
        "allow_respond": False,
        "allow_edit": False,
        "allow_accept": False,
    },
}


def _is_human_interrupt(value: Any) -> bool:
    return isinstance(value, dict) and "action_request" in value and "config" in value


def normalize_interrupt(raw: Any) -> dict[str, Any] | None:
    """`normalizeInterrupt`: a LangChain HITL request in the inbox's shape, else None."""
    if not raw or not isinstance(raw, dict):
        return None
    requests = raw.get("action_requests")
    if not isinstance(requests, list) or not requests:
        return None
    req = requests[0]
    configs = raw.get("review_configs") if isinstance(raw.get("review_configs"), list) else []
    first = configs[0] if configs else None
    allowed = first.get("allowed_decisions") if isinstance(first, dict) else None
    decisions: list[str] = allowed if isinstance(allowed, list) else []
    return {
        "action_request": {"action": req.get("name") or "", "args": req.get("arguments") or {}},
        "config": {
            "allow_accept": "approve" in decisions,
            "allow_edit": "edit" in decisions,
            "allow_respond": "reject" in decisions,
            "allow_ignore": False,
        },
        "description": req.get("description"),
    }


def _from_item(item: Any) -> list[dict[str, Any]]:
    """The per-item fallback of `getInterruptFromThread` (`interrupt.flatMap(i => ...)`)."""
    if _is_human_interrupt(item):
        return [item]
    value = item.get("value") if isinstance(item, dict) else None
    if value:
        if not isinstance(value, (dict, list)):
            return [_IMPROPER]
        if isinstance(value, list):
            first = value[0] if value else None
            action = (first.get("action_request") or {}) if isinstance(first, dict) else {}
            if isinstance(first, dict) and action.get("action") and first.get("config"):
                return list(value)
        elif (value.get("action_request") or {}).get("action") and value.get("config"):
            return [value]
        return [_IMPROPER]
    return [_IMPROPER]


def _from_interrupt(interrupt: Any) -> list[dict[str, Any]]:
    """One entry of `thread.interrupts` (a list of `{value, id}`), as the inbox reads it."""
    if not isinstance(interrupt, list) or not interrupt:
        return [_IMPROPER]  # "Default fallback"
    first = interrupt[0]
    if isinstance(first, list):  # Case 1: nested [0][1].value
        nested = first[1] if len(first) > 1 else None
        return [nested["value"]] if nested else [_IMPROPER]
    if isinstance(first, dict) and first.get("value") is not None:  # Case 2
        normalized = normalize_interrupt(first["value"])
        if normalized:
            return [normalized]
        value = first["value"]
        if isinstance(value, str) and value.startswith(("[", "{")):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                if parsed and _is_human_interrupt(parsed[0]):
                    return list(parsed)
            elif _is_human_interrupt(parsed):
                return [parsed]
        if isinstance(value, list):
            if value and _is_human_interrupt(value[0]):
                return list(value)
        elif _is_human_interrupt(value):
            return [value]
    if _is_human_interrupt(first):  # Case 3
        return [first]
    return [found for item in interrupt for found in _from_item(item)]


def interrupts_from_thread(thread: dict[str, Any]) -> list[dict[str, Any]] | None:
    """`getInterruptFromThread`: the inbox's interrupts of a thread (None: it has none)."""
    interrupts = thread.get("interrupts") or {}
    if not interrupts:
        return None
    return [found for entry in interrupts.values() for found in _from_interrupt(entry)]


def invalid_schema(interrupts: list[dict[str, Any]] | None) -> bool:
    """`fetchSingleThread`'s `invalidSchema`: the inbox shows it but offers no answers."""
    return not interrupts or any(
        (i.get("action_request") or {}).get("action") in (None, "", IMPROPER_SCHEMA)
        for i in interrupts
    )


def default_responses(interrupts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """`createDefaultHumanResponse`: the answers offered, and the one selected at first."""
    interrupt = interrupts[0]
    config = interrupt["config"]
    responses: list[dict[str, Any]] = []
    if config.get("allow_edit"):
        edit: dict[str, Any] = {"type": "edit", "args": interrupt["action_request"]}
        edit["acceptAllowed"] = bool(config.get("allow_accept"))
        if edit["acceptAllowed"]:
            edit["editsMade"] = False
        responses.append(edit)
    if config.get("allow_respond"):
        responses.append({"type": "response", "args": ""})
    if config.get("allow_ignore"):
        responses.append({"type": "ignore", "args": None})
    accept_config = any(i["config"].get("allow_accept") for i in interrupts)
    ignore_config = any(i["config"].get("allow_ignore") for i in interrupts)
    has_accept = any(r.get("acceptAllowed") for r in responses) or accept_config
    selected: str | None = None
    if has_accept:
        selected = "accept"
    elif any(r["type"] == "response" for r in responses):
        selected = "response"
    elif any(r["type"] == "edit" for r in responses):
        selected = "edit"
    if accept_config and not any(r["type"] == "accept" for r in responses):
        responses.append({"type": "accept", "args": None})
    if ignore_config and not any(r["type"] == "ignore" for r in responses):
        responses.append({"type": "ignore", "args": None})
    return responses, selected


def _text(value: Any) -> str:
    """`haveArgsChanged`'s comparison form of a value (strings and numbers as text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def edit_field(responses: list[dict[str, Any]], key: str, typed: str) -> None:
    """`onEditChange`: the reviewer types `typed` into the field `key` of the edit."""
    for response in responses:
        if response["type"] == "edit":
            action = response["args"]
            initial = {k: _text(v) for k, v in action["args"].items()}
            args = {**action["args"], key: typed}
            response["args"] = {"action": action["action"], "args": args}
            if response.get("acceptAllowed"):
                response["editsMade"] = any(initial.get(k) != _text(v) for k, v in args.items())
            return
    raise AssertionError("No matching response found")


def respond(responses: list[dict[str, Any]], text: str) -> None:
    """`onResponseChange`: the reviewer writes `text` into the response box."""
    for response in responses:
        if response["type"] == "response":
            response["args"] = text
            return
    raise AssertionError("responding is not allowed on this interrupt")


def submit(responses: list[dict[str, Any]], selected: str) -> list[dict[str, Any]]:
    """`handleSubmit`: the resume value sent for the selected answer (`[input]`)."""
    sent: list[dict[str, Any]] = []
    for r in responses:
        if r["type"] == "edit":
            kind = "accept" if r.get("acceptAllowed") and not r.get("editsMade") else "edit"
            sent.append({"type": kind, "args": r["args"]})
        elif r["type"] == "response" and not r["args"]:
            continue  # an empty response is left out
        else:
            sent.append({"type": r["type"], "args": r["args"]})
    chosen = next((r for r in sent if r["type"] == selected), None)
    if chosen is None:
        raise AssertionError(f"No response found for {selected!r}")
    return [chosen]


def ignore(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`handleIgnore`: the resume value of the Ignore button."""
    found = next((r for r in responses if r["type"] == "ignore"), None)
    return [found or {"type": "ignore", "args": None}]
