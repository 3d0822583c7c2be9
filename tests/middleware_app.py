"""A LangChain `create_agent` agent gated by `ComplianceMiddleware`, as a CLI `--app`.

The model answers from the conversation alone (`ConversationModel`), so the
agent rebuilt in another process (the CLI's) goes on exactly as it would have.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langgraph.checkpoint.base import BaseCheckpointSaver

from hitl_compliance import Backend, HitlCoordinator, RoleBasedPolicy
from hitl_compliance.middleware import ComplianceMiddleware
from tests.gate_graphs import PAYMENTS, Bank, ConversationModel, transfer_rule

POLICY = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})


def agent(checkpointer: BaseCheckpointSaver[Any], bank: Bank | None = None) -> Any:
    """The agent: `PAYMENTS` messages make transfer calls, gated by `transfer_rule()`."""
    model = ConversationModel(script={}, payments=PAYMENTS)
    return create_agent(
        model,
        (bank or Bank()).tools(),
        middleware=[ComplianceMiddleware([transfer_rule()])],
        checkpointer=checkpointer,
    )


def app(backend: Backend) -> HitlCoordinator:
    """The `--app` contract: the coordinator of the agent on `backend`."""
    return HitlCoordinator(agent(backend.checkpointer), reviews=backend.reviews, policy=POLICY)
