"""What the tests of the example deployment share: its tokens, texts, policy and shapes.

The example deployment (`examples/langgraph_server/`) authenticates static
bearer tokens (`auth.py`) and serves two graphs (`graphs.py`): the factory
graph `compliance` and the gated agent `gated_agent`. These helpers build
their inputs, read their replies and the decisions a client sends, so every
module under `tests/server/` (and the scale-out worker's subprocesses) speaks
to the deployment the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Protocol

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from hitl_compliance import AuditRecord, RoleBasedPolicy
from hitl_compliance._replies import REPLY_EVENT as REPLIED

OFFICER_TOKEN = "officer-token"
"""alice@bank, a reviewer and compliance officer: may resume runs and approve risky replies."""
TRAINEE_TOKEN = "trainee-token"
"""bob@bank, a reviewer the server lets resume runs, whom the graphs' policy does not."""
AGENT_TOKEN = "agent-token"
"""support-bot: may start turns on its own threads, may not resume a pause."""
COORDINATOR_TOKEN = "coordinator-token"
"""The coordinator's service user, holding `COORDINATOR_PERMISSION`."""

GRAPH_IDS = ("compliance", "gated_agent")
"""The example deployment's graphs: the factory graph and the gated agent."""

RISKY_QUESTION = "Should I buy this fund?"
SAFE_QUESTION = "Where is my new card?"
RISKY_REPLY = "Buy the Global Equity Fund: guaranteed returns of 8% a year."
SAFE_REPLY = "Your new card is on its way; it should arrive within five working days."
EDITED = "Every fund carries risk; please speak to one of our advisers."

POLICY = RoleBasedPolicy(rule_roles={"guarantee": "compliance_officer"})
"""The deployment's policy (examples/langgraph_server/graphs.py), also the CLI's `--policy`."""


@asynccontextmanager
async def sdk_client(url: str, token: str) -> AsyncIterator[LangGraphClient]:
    """A `langgraph_sdk` client of the server at `url`, authenticated with bearer `token`."""
    async with get_client(url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def decision(
    *,
    approved: bool,
    response: str | None = None,
    reviewer: str = "alice@bank",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A reviewer's resume value, as a client of the server sends it.

    One place builds it, so when the gate asks more of a decision from a caller
    that is not the coordinator (the server's authenticated user, say) only this
    changes.
    """
    value: dict[str, Any] = {
        "approved": approved,
        "reviewer": reviewer,
        "decided_at": datetime.now(timezone.utc).isoformat(),
    }
    if response is not None:
        value["response"] = response
    if not approved:
        value["reason"] = "promises returns"
    if metadata is not None:
        value["metadata"] = metadata
    return value


def agent_input(text: str) -> dict[str, Any]:
    """The gated agent's input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def turn_input(graph_id: str, text: str) -> dict[str, Any]:
    """A turn's input for served graph `graph_id`."""
    if graph_id == "compliance":
        return {"customer_message": text}
    return agent_input(text)


def reply_of(graph_id: str, values: dict[str, Any]) -> str | None:
    """What the thread delivered: the factory's `agent_response`, the agent's last AI message."""
    if graph_id == "compliance":
        reply: str | None = values.get("agent_response")
        return reply
    last = values["messages"][-1]
    return str(last["content"]) if last["type"] == "ai" else None


def outcome_of(graph_id: str, values: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """What the thread delivered, and the decision the graph applied (None: none applied).

    The factory graph keeps the decision in its state; the gated agent's rides on
    the cleared reply the gate appends (`response_metadata["hitl_compliance"]`).
    """
    reply = reply_of(graph_id, values)
    if graph_id == "compliance":
        decision: dict[str, Any] | None = values.get("decision")
        return reply, decision
    last = values["messages"][-1]
    summary = (last.get("response_metadata") or {}).get("hitl_compliance") or {}
    return reply, summary.get("decision")


async def new_thread(client: LangGraphClient) -> str:
    """A thread the server creates, with the UUID it assigns."""
    thread = await client.threads.create()
    thread_id = str(thread["thread_id"])
    uuid.UUID(thread_id)
    return thread_id


class AuditLog(Protocol):
    """Anything that reads a thread's audit rows: a review store or a coordinator."""

    async def audit_log(self, thread_id: str) -> list[AuditRecord]: ...


async def events(log: AuditLog, thread_id: str) -> list[tuple[str, str]]:
    """The thread's review rows as (event, actor), oldest first (not its `replied` records)."""
    rows = await log.audit_log(thread_id)
    return [(row.event, row.actor) for row in rows if row.event != REPLIED]
