"""The baseline: the same compliance graph written by hand on plain LangGraph.

Same five nodes (`draft`, `compliance`, `human_approval`, `deliver`,
`rejected`), same edges, same drafter and rule objects, and the *same pydantic
state schema* ([`ComplianceState`][hitl_compliance.ComplianceState], with its
`metadata` reducer), so the comparison isolates what the library adds
(coordinator, review store, validation, audit) rather than schema cost.

The nodes and both routers are `async def` (nodes with an explicit
`input_schema`), the cheapest form under `ainvoke`: LangGraph runs a sync
node or router on a worker thread, a thread hop and an event-loop wake-up
each (sync nodes measured about 12% slower per turn on this machine). The
library's graph is built the same way. The cycle does only what a careful user must do:
with the static style, `aget_state` after the first `ainvoke` to learn that
the graph paused (it returns a plain dict), then
`aupdate_state(as_node="human_approval")` + `ainvoke(None)`; with the dynamic
style, read `__interrupt__` from the result and resume with
`Command(resume=decision)`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from benchmarks._workload import MESSAGE, SAFE_REPLY, raw_decision
from hitl_compliance import ComplianceState, KeywordRule, RegexRule

__all__ = ["RawGraph", "Style", "build_raw_graph", "raw_cycle", "raw_pause", "raw_turn"]

Style = Literal["interrupt_before", "command_resume"]
RawGraph = CompiledStateGraph[Any, Any, Any, Any]

_SEVERITY = {"pass": 0, "review": 1, "block": 2}


def _with_config(node: Any) -> Any:
    """Before Python 3.11 asyncio tasks do not carry the run's context, which interrupt()
    reads: a LangGraph user on 3.10 sets it from the node's config, as the library does."""

    async def with_config(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        var_child_runnable_config.set(config)
        result: dict[str, Any] = await node(state)
        return result

    return with_config


def build_raw_graph(
    draft: Any,
    rules: Sequence[KeywordRule | RegexRule],
    *,
    checkpointer: BaseCheckpointSaver[Any],
    style: Style,
) -> RawGraph:
    """Compile the hand-written graph in one pause style."""

    async def draft_node(state: ComplianceState) -> dict[str, Any]:
        return {"draft_response": draft(state), "turn": state.turn + 1}

    async def compliance(state: ComplianceState) -> dict[str, Any]:
        results = [rule.evaluate(state) for rule in rules]
        findings = [r for r in results if r.verdict != "pass"]
        return {
            "violations": [f.to_dict() for f in findings],
            "is_compliant": not findings,
        }

    async def route_findings(state: ComplianceState) -> str:
        worst = max((_SEVERITY[v["verdict"]] for v in state.violations), default=0)
        return ("deliver", "human_approval", "rejected")[worst]

    async def human_approval(state: ComplianceState) -> dict[str, Any]:
        if style == "interrupt_before":
            return {}
        value = interrupt(
            {
                "customer_message": state.customer_message,
                "draft_response": state.draft_response,
                "violations": state.violations,
            }
        )
        return {"decision": value}

    async def route_decision(state: ComplianceState) -> str:
        approved = state.decision is not None and state.decision.get("approved") is True
        return "deliver" if approved else "rejected"

    async def deliver(state: ComplianceState) -> dict[str, Any]:
        decision = state.decision or {}
        return {
            "agent_response": decision.get("response") or state.draft_response,
            "agent_type": "human_admin" if decision else "llm",
            "is_compliant": True,
            "metadata": {
                "reviewer": decision.get("reviewer"),
                "decided_at": decision.get("decided_at"),
            },
        }

    async def rejected(state: ComplianceState) -> dict[str, Any]:
        decision = state.decision or {}
        return {
            "agent_response": None,
            "agent_type": "human_admin" if decision else "system",
            "is_compliant": False,
            "metadata": {
                "reviewer": decision.get("reviewer"),
                "rejection_reason": decision.get("reason"),
            },
        }

    builder = StateGraph(ComplianceState)
    for name, node in (
        ("draft", draft_node),
        ("compliance", compliance),
        (
            "human_approval",
            human_approval if sys.version_info >= (3, 11) else _with_config(human_approval),
        ),
        ("deliver", deliver),
        ("rejected", rejected),
    ):
        builder.add_node(name, node, input_schema=ComplianceState)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "compliance")
    builder.add_conditional_edges(
        "compliance", route_findings, ["deliver", "human_approval", "rejected"]
    )
    builder.add_conditional_edges("human_approval", route_decision, ["deliver", "rejected"])
    builder.add_edge("deliver", END)
    builder.add_edge("rejected", END)
    return builder.compile(
        checkpointer=checkpointer,
        interrupt_before=["human_approval"] if style == "interrupt_before" else None,
    )


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


async def raw_pause(graph: RawGraph, style: Style, thread_id: str) -> None:
    """Run a turn until it pauses, and make sure it did (as a careful user must)."""
    config = _config(thread_id)
    out = await graph.ainvoke({"customer_message": MESSAGE}, config)
    if style == "interrupt_before":
        # The static pause returns a plain state dict: only the snapshot says it paused.
        snapshot = await graph.aget_state(config)
        paused = snapshot.next == ("human_approval",)
    else:
        paused = bool(out.get("__interrupt__"))
    if not paused:
        raise AssertionError(f"raw graph did not pause on {thread_id}")


async def raw_approve(graph: RawGraph, style: Style, thread_id: str) -> None:
    """Resume a paused turn with an approval, the correct way for its style."""
    config = _config(thread_id)
    decision = raw_decision()
    if style == "interrupt_before":
        await graph.aupdate_state(config, {"decision": decision}, as_node="human_approval")
        out = await graph.ainvoke(None, config)
    else:
        out = await graph.ainvoke(Command(resume=decision), config)
    if out.get("agent_type") != "human_admin" or not out.get("agent_response"):
        raise AssertionError(f"raw graph did not deliver on {thread_id}: {out}")


async def raw_cycle(graph: RawGraph, style: Style, thread_id: str) -> None:
    """One full cycle: process -> pause -> approve -> delivered."""
    await raw_pause(graph, style, thread_id)
    await raw_approve(graph, style, thread_id)


async def raw_turn(graph: RawGraph, thread_id: str) -> None:
    """One turn whose draft passes the rules: `ainvoke`, and its result says it was delivered.

    On a fresh thread the returned state alone shows the outcome (a reply, sent by the
    model), so a careful user needs no `aget_state` here, with either style.
    """
    out = await graph.ainvoke({"customer_message": MESSAGE}, _config(thread_id))
    if out.get("agent_type") != "llm" or out.get("agent_response") != SAFE_REPLY:
        raise AssertionError(f"raw graph did not deliver the safe draft on {thread_id}: {out}")
