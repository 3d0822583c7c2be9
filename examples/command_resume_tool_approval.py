"""Approving a ReAct agent's tool calls inline, with `style="command_resume"`.

A `MessagesState` agent: a chat model proposes real tool calls, LangGraph's
`ToolNode` runs them, and a compliance gate sits between the two:

* `ToolCallRule` flags every `transfer` above GBP 1,000 for a payments officer
  and blocks anything above GBP 25,000 with no human involved;
* each flagged call is its own review: the graph pauses inside the gate (an
  `interrupt()`), `HitlCoordinator` records it, checks the officer's authority
  (a `RoleBasedPolicy`), claims it once and resumes the gate with
  `Command(resume=...)`; two flagged calls in one turn are two reviews,
  decided one after the other;
* approved (or edited) calls run; a rejected or blocked call never runs and is
  answered by a tool message saying so, so the model reads why and replies.

The model is a scripted stand-in and the bank is a fake; the officer decides
inline, where a real service would wait for a person. Run it from the
repository root: `python examples/command_resume_tool_approval.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_compliance import (
    HitlCoordinator,
    ProcessResult,
    Reviewer,
    RoleBasedPolicy,
    ToolCallRule,
    compliance_gate,
    route_after_gate,
)
from hitl_compliance.gate import GatePause, gate_pauses

KNOWN_PAYEES = {"12345678", "87654321"}
SENT: list[str] = []


@tool
def transfer(amount_gbp: int, to_account: str) -> str:
    """Send money from the customer's account (a fake payments API)."""
    SENT.append(f"£{amount_gbp:,} to {to_account}")
    return f"sent £{amount_gbp:,} to account {to_account}"


class ScriptedModel(BaseChatModel):
    """Stand-in for the LLM: proposes the scripted calls, then answers from the results."""

    plans: dict[str, list[ToolCall]]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            reply = AIMessage("", tool_calls=self.plans[str(last.content)])
        else:
            results = [m for m in messages if isinstance(m, ToolMessage)]
            done = [str(m.content) for m in results if m.status == "success"]
            failed = [m for m in results if m.status == "error"]
            parts = [f"Done: {'; '.join(done)}."] if done else []
            if failed:
                parts.append(f"I couldn't make {len(failed)} transfer(s); payments will call you.")
            reply = AIMessage(" ".join(parts))
        return ChatResult(generations=[ChatGeneration(message=reply)])


def build_agent(model: ScriptedModel) -> Any:
    """model -> compliance gate -> tools -> model; the gate is four added lines."""

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    limits = ToolCallRule(
        "transfer_limits",
        "transfer",
        argument="amount_gbp",
        review_above=1_000,
        block_above=25_000,
        reason="moves customer money",
    )
    builder: Any = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("compliance", compliance_gate([limits], style="command_resume"))
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=InMemorySaver())


async def officer_decides(
    coord: HitlCoordinator, officer: Reviewer, thread: str, pause: GatePause
) -> tuple[str, ProcessResult]:
    """Stand-in for the officer: known payees approved (large ones capped), others rejected."""
    assert pause.tool_call is not None
    args = pause.tool_call["args"]
    if args["to_account"] not in KNOWN_PAYEES:
        reason = "payee not on file; possible scam"
        rejected = await coord.reject(
            thread, reviewer=officer, reason=reason, review_id=pause.review_id
        )
        return f"rejected it: {reason}", rejected
    if args["amount_gbp"] > 10_000:
        capped = {**args, "amount_gbp": 10_000}
        result = await coord.approve(
            thread, reviewer=officer, tool_args=capped, review_id=pause.review_id
        )
        return f"edited it to {call_text({'args': capped})} (re-checked by the rules)", result
    return "approved it", await coord.approve(thread, reviewer=officer, review_id=pause.review_id)


def call_text(call: dict[str, Any]) -> str:
    args = call["args"]
    return f"transfer(£{args['amount_gbp']:,} to {args['to_account']})"


async def run_task(coord: HitlCoordinator, officer: Reviewer, thread: str, task: str) -> None:
    """One customer request: run, decide each paused call in turn, print the transcript."""
    print(f"== {thread}: {task}")
    config: Any = {"configurable": {"thread_id": thread}}
    result = await coord.process(thread, task)
    while result.status == "paused":
        # The review row says what waits; the gate's pause carries the call itself.
        # Each flagged call of the turn is its own review, all waiting at once: the
        # officer takes them one by one, naming each by its review id.
        pause, *_others = await gate_pauses(coord.graph, config)
        assert pause.tool_call is not None
        findings = "; ".join(f"{v.rule}: {v.reason}" for v in pause.outcome.findings)
        print(f"  paused for review of {call_text(pause.tool_call)}: {findings}")
        said, result = await officer_decides(coord, officer, thread, pause)
        print(f"  {officer.id} {said}")
    for message in (await coord.graph.aget_state(config)).values["messages"][1:]:
        if isinstance(message, AIMessage) and message.tool_calls:
            print(f"  ai proposes {', '.join(call_text(dict(c)) for c in message.tool_calls)}")
        elif isinstance(message, ToolMessage):
            print(f"  tool {message.status}: {message.content}")
        else:
            print(f"  ai says: {message.content}")
    print(f"  audit: {', '.join(row.event for row in await coord.audit_log(thread))}")


async def main() -> None:
    """Approved, rejected, blocked, and two calls in one turn (one edited, one rejected)."""
    plans = {
        "Pay £5,000 to my landlord": [_transfer("a1", 5_000, "12345678")],
        "Pay £9,500 to my new builder": [_transfer("b1", 9_500, "99999999")],
        "Pay £40,000 to my landlord": [_transfer("c1", 40_000, "12345678")],
        "Pay my sister £800, my landlord £12,000 and my gym £2,000": [
            _transfer("d1", 800, "87654321"),
            _transfer("d2", 12_000, "12345678"),
            _transfer("d3", 2_000, "55555555"),
        ],
    }
    graph = build_agent(ScriptedModel(plans=plans))
    policy = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
    coord = HitlCoordinator(graph, policy=policy)
    officer = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))
    for number, task in enumerate(plans, start=1):
        await run_task(coord, officer, f"pay-{number}", task)
    print(f"\nmoney sent: {', '.join(SENT)}")


def _transfer(call_id: str, amount: int, account: str) -> ToolCall:
    return ToolCall(
        name="transfer", args={"amount_gbp": amount, "to_account": account}, id=call_id,
        type="tool_call",
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
