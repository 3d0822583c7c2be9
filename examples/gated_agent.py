"""A gated `MessagesState` agent for the CLI and the review service (`--app`).

The ReAct agent of `command_resume_tool_approval.py` (scripted model, `ToolNode`,
`ToolCallRule` on transfers) on a durable backend: `app(backend)` is the
function the CLI's `--app` and a review service call to get the coordinator.

Run the agent once (it pauses on the transfer), then decide it from the CLI:

    python -m examples.gated_agent sqlite:///gated.db "Pay £5,000 to my landlord"
    hitl-compliance pending --backend sqlite:///gated.db --app examples.gated_agent:app
    hitl-compliance approve pay-1 --reviewer payments@bank --role payments_officer \
        --backend sqlite:///gated.db --app examples.gated_agent:app
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from examples.command_resume_tool_approval import ScriptedModel, _transfer, transfer
from hitl_compliance import (
    Backend,
    HitlCoordinator,
    RoleBasedPolicy,
    ToolCallRule,
    compliance_gate,
    open_backend,
    route_after_gate,
)

PLANS = {
    "Pay £5,000 to my landlord": [_transfer("a1", 5_000, "12345678")],
    "Pay £300 to my sister": [_transfer("b1", 300, "87654321")],
    # Two flagged calls in one turn: two reviews, both pending at once (--review-id).
    "Pay £5,000 to my landlord and £2,000 to my gym": [
        _transfer("c1", 5_000, "12345678"),
        _transfer("c2", 2_000, "55555555"),
    ],
}


def build(backend: Backend) -> Any:
    """The agent on the backend's checkpointer, gated between model and tools."""
    model = ScriptedModel(plans=PLANS)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    limits = ToolCallRule(
        "transfer_limits", "transfer", argument="amount_gbp", review_above=1_000,
        block_above=25_000, reason="moves customer money",
    )  # fmt: skip
    builder: Any = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("compliance", compliance_gate([limits], reviews=backend.reviews))
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=backend.checkpointer)


def app(backend: Backend) -> HitlCoordinator:
    """The coordinator the CLI (`--app examples.gated_agent:app`) and a service use."""
    policy = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
    return HitlCoordinator(build(backend), reviews=backend.reviews, policy=policy)


async def main(url: str, message: str, thread: str = "pay-1") -> None:
    """Run one turn of the agent on `url`; print where it stopped."""
    async with open_backend(url) as backend:
        result = await app(backend).process(thread, message)
        print(f"{thread}: {result.status}: {result.draft_response}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
