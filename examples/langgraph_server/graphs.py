"""Two compliance graphs as LangGraph Server serves them: no checkpointer of their own.

* `compliance`: the factory graph, built with `checkpointer=PLATFORM_CHECKPOINTER`
  (the server installs its persistence; a run without it is refused).
* `gated_agent`: your own `MessagesState` agent with a `compliance_gate` node,
  compiled with no checkpointer (the gate refuses a run without one).

Both pause with `interrupt()` (`style="command_resume"`), so a reviewer decides
through the server's API with `Command(resume=decision)`. Both are attached to a
review store and policy (`attach_authority`): every pause is recorded there
(a coordinator on the same store lists it), and every decision that arrives
through the server passes the checks `HitlCoordinator.approve()` makes, with
the server-authenticated user as the reviewer: only a `compliance_officer` may
approve a reply that promises returns; a refused decision leaves the thread
paused and is audited. `HITL_REVIEWS_URL` names the store (default: a SQLite
file beside this module; use PostgreSQL to share it with coordinators, such as a
`HitlCoordinator` over `RemoteGraph` or the CLI's `--remote`); `HITL_REVIEW_SLA_SECONDS`
gives the pauses a deadline. The drafter and the
chat model are scripted stand-ins for an LLM: a question about a fund gets a
reply promising returns (held for review); anything else is answered at once.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, MessagesState, StateGraph

from hitl_compliance import (
    PLATFORM_CHECKPOINTER,
    ComplianceState,
    KeywordRule,
    RegexRule,
    RoleBasedPolicy,
    attach_authority,
    build_compliance_graph,
    compliance_gate,
    review_store,
)
from hitl_compliance.testing import ScriptedChatModel

RISKY_REPLY = "Buy the Global Equity Fund: guaranteed returns of 8% a year."
SAFE_REPLY = "Your new card is on its way; it should arrive within five working days."

RULES = [
    KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns"),
    # Never sent, whoever approves: an edit quoting an account number is refused.
    RegexRule("account_number", r"\b\d{8}\b", verdict="block", reason="account number"),
]

REVIEWS = review_store(
    os.environ.get("HITL_REVIEWS_URL") or f"sqlite:///{Path(__file__).with_name('reviews.db')}"
)
"""Where pauses, decisions and the audit log are kept (set up on first use)."""

POLICY = RoleBasedPolicy(rule_roles={"guarantee": "compliance_officer"})
"""Only a compliance officer (a permission the server's auth grants) may decide these."""

_SLA_SECONDS = os.environ.get("HITL_REVIEW_SLA_SECONDS")
SLA = timedelta(seconds=float(_SLA_SECONDS)) if _SLA_SECONDS else None
"""The deadline of the pauses the graphs record (`HITL_REVIEW_SLA_SECONDS`; none by default):
an SLA worker on the store (`hitl-compliance expire --every 60 --remote ...`) expires them."""


def reply_to(message: str) -> str:
    """The scripted LLM: a fund question gets a risky reply, anything else a safe one."""
    return RISKY_REPLY if "fund" in message.lower() else SAFE_REPLY


def draft(state: ComplianceState) -> str:
    """The factory graph's drafter (your LLM call)."""
    return reply_to(state.customer_message)


compliance = attach_authority(
    build_compliance_graph(
        draft,
        rules=RULES,
        style="command_resume",
        checkpointer=PLATFORM_CHECKPOINTER,
    ),
    reviews=REVIEWS,
    policy=POLICY,
    sla=SLA,
)


async def call_model(state: MessagesState) -> dict[str, Any]:
    """The agent's model node (your chat model): one scripted reply per turn."""
    question = str(state["messages"][-1].content)
    model = ScriptedChatModel(replies=[reply_to(question)])
    return {"messages": [await model.ainvoke(state["messages"])]}


_builder: Any = StateGraph(MessagesState)
_builder.add_node("model", call_model)
_builder.add_node("compliance", compliance_gate(RULES))
_builder.add_edge(START, "model")
_builder.add_edge("model", "compliance")
_builder.add_edge("compliance", END)
# No checkpointer: the server supplies one; the gate refuses a run without one.
gated_agent = attach_authority(_builder.compile(), reviews=REVIEWS, policy=POLICY, sla=SLA)
