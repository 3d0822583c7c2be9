"""Benchmark 1b, the gated ReAct graph: a tool call held for review, library vs raw.

A `MessagesState` agent (model -> tools -> model) whose model proposes a
`transfer` above the review limit, then answers from the tool's result. The
library's graph puts `compliance_gate([ToolCallRule(...)])` between model and
tools and is driven by `HitlCoordinator` (`process` pauses, `approve` runs the
call and the model's final answer). The baseline is the same agent with a
hand-written review node, driven the way a careful LangGraph user must:
dynamic style `interrupt()` + `Command(resume=...)`; static style
`interrupt_before` + `aupdate_state(as_node=...)` + `ainvoke(None)`. The model
returns at once, so every millisecond is orchestration and storage. Library
and raw run interleaved on separate, identically configured storage.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

from benchmarks._backends import BackendName, BenchContext
from benchmarks._harness import Interleaved, interleave
from benchmarks._raw import Style
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER, raw_decision
from benchmarks.bench_cycle import cycle_row
from hitl_compliance import HitlCoordinator, ToolCallRule, compliance_gate, route_after_gate

__all__ = ["TARGET_RATIO", "run"]

TARGET_RATIO = 1.05
STYLES: tuple[Style, ...] = ("interrupt_before", "command_resume")
LIMIT_GBP = 1_000


@tool
def transfer(amount_gbp: int, to_account: str) -> str:
    """Send money (a no-op stand-in for the payments API)."""
    return f"sent {amount_gbp} to {to_account}"


async def model(messages: list[BaseMessage]) -> AIMessage:
    """The zero-latency model: a transfer for the customer, then an answer from its result."""
    if isinstance(messages[-1], HumanMessage):
        call = {"name": "transfer", "args": {"amount_gbp": 5_000, "to_account": "12345678"}}
        return AIMessage("", tool_calls=[{**call, "id": f"call-{uuid.uuid4().hex[:8]}"}])
    results = [m for m in messages if isinstance(m, ToolMessage)]
    return AIMessage(f"Done: {results[-1].content}." if results else "Nothing was sent.")


async def call_model(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model(state["messages"])]}


def library_graph(checkpointer: BaseCheckpointSaver[Any], style: Style) -> Any:
    """The agent with the gate between model and tools."""
    limits = ToolCallRule(
        "transfer_limits", "transfer", argument="amount_gbp", review_above=LIMIT_GBP
    )
    builder: Any = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("compliance", compliance_gate([limits], style=style))
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)


def raw_graph(checkpointer: BaseCheckpointSaver[Any], style: Style) -> Any:
    """The same agent with a hand-written review of large transfers."""

    def flagged(message: AIMessage) -> bool:
        return any(c["args"].get("amount_gbp", 0) > LIMIT_GBP for c in message.tool_calls)

    async def route_model(state: MessagesState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "review" if flagged(last) else "tools"
        return END

    async def review(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1]
        if style == "command_resume":
            decision = interrupt({"tool_calls": last.tool_calls})
            if not decision.get("approved"):
                raise AssertionError("the benchmark only approves")
        return {}

    builder: Any = StateGraph(MessagesState)
    builder.add_node("model", call_model)

    async def review_node(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        # Before Python 3.11 asyncio tasks do not carry the run's config, which
        # interrupt() reads: a careful LangGraph user on 3.10 sets it, as the library does.
        var_child_runnable_config.set(config)
        return await review(state)

    builder.add_node("review", review_node)
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route_model, ["review", "tools", END])
    builder.add_edge("review", "tools")
    builder.add_edge("tools", "model")
    return builder.compile(
        checkpointer=checkpointer,
        interrupt_before=["review"] if style == "interrupt_before" else None,
    )


async def raw_cycle(graph: Any, style: Style, thread_id: str) -> None:
    """Pause on the transfer, approve it the correct way for the style, see the answer."""
    config: Any = {"configurable": {"thread_id": thread_id}}
    out = await graph.ainvoke({"messages": [HumanMessage(MESSAGE)]}, config)
    if style == "interrupt_before":
        if (await graph.aget_state(config)).next != ("review",):
            raise AssertionError("raw agent did not pause")
        await graph.aupdate_state(config, {"messages": []}, as_node="review")
        out = await graph.ainvoke(None, config)
    else:
        if not out.get("__interrupt__"):
            raise AssertionError("raw agent did not pause")
        out = await graph.ainvoke(Command(resume=raw_decision()), config)
    if not str(out["messages"][-1].content).startswith("Done: sent 5000"):
        raise AssertionError(f"raw agent did not run the transfer: {out['messages'][-1]}")


def _params(ctx: BenchContext) -> dict[str, dict[str, int]]:
    if ctx.smoke:
        return {
            b: {"warmup": 2, "rounds": 2, "per_round": 2} for b in ("memory", "sqlite", "postgres")
        }
    return {
        "memory": {"warmup": 30, "rounds": 10, "per_round": 30},
        "sqlite": {"warmup": 20, "rounds": 8, "per_round": 20},
        "postgres": {"warmup": 20, "rounds": 8, "per_round": 20},
    }


async def _measure(
    ctx: BenchContext, backend: BackendName, style: Style, p: dict[str, int]
) -> Interleaved:
    async with (
        ctx.library_backend(backend, "gated-lib") as (opened, _),
        ctx.raw_saver(backend, "gated-raw") as saver,
    ):
        coord = HitlCoordinator(library_graph(opened.checkpointer, style), reviews=opened.reviews)
        raw = raw_graph(saver, style)

        async def library_cycle() -> None:
            thread_id = uuid.uuid4().hex
            paused = await coord.process(thread_id, MESSAGE)
            if paused.status != "paused":
                raise AssertionError(f"library did not pause: {paused.status}")
            done = await coord.approve(thread_id, reviewer=REVIEWER)
            if done.status != "completed" or not str(done.agent_response).startswith("Done"):
                raise AssertionError(f"library did not deliver: {done}")

        async def raw_one() -> None:
            await raw_cycle(raw, style, uuid.uuid4().hex)

        return await interleave(
            {"library": library_cycle, "raw": raw_one},
            warmup=p["warmup"],
            rounds=p["rounds"],
            per_round=p["per_round"],
        )


async def run(ctx: BenchContext) -> BenchResult:
    """Measure the gated ReAct cycle, library and raw, on every available backend and style."""
    params = _params(ctx)
    result = new_result("gated", "Gated ReAct graph (a tool call held for review)", params)
    result["notes"] += [
        "One cycle = the model proposes a GBP 5,000 transfer, the run pauses for review, "
        "the reviewer approves, the tool runs and the model answers. Library: "
        "`compliance_gate([ToolCallRule(...)])` between model and `ToolNode`, driven by "
        "`HitlCoordinator.process` + `approve`. Raw: the same agent with a hand-written "
        "review node before the tools (static: `interrupt_before` + `aget_state` + "
        "`aupdate_state(as_node='review')` + `ainvoke(None)`; dynamic: `interrupt()` + "
        "`Command(resume=...)`), with no audit, policy or claim.",
        f"Target (issue 19): library/raw <= {TARGET_RATIO}.",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    for backend in ctx.backends("memory", "sqlite", "postgres"):
        for style in STYLES:
            with guarded(result, f"{backend}/{style}"):
                timed = await _measure(ctx, backend, style, params[backend])
                row = cycle_row(backend, style, timed, TARGET_RATIO)
                result["rows"].append(row)
                print(
                    f"  gated {backend:8} {style:16} library {row['library_median_ms']:7.2f} ms"
                    f"  raw {row['raw_median_ms']:7.2f} ms  ratio {row['ratio']:.3f}",
                    flush=True,
                )
    return result
