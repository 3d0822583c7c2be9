"""Several pending reviews per thread, on every backend: a gate's parallel tool-call pauses.

One model turn proposes two transfers above the review limit (and a harmless
lookup). In the `command_resume` style the gate waits for both at once: two
reviews, each with its own id and LangGraph interrupt, listed by `pending()`,
decided one by one in either order through `HitlCoordinator`, exactly once each
under racing deciders, each with its own audit rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_compliance import (
    AlreadyDecidedError,
    HitlCoordinator,
    InMemoryReviewStore,
    PendingReview,
    Reviewer,
    ReviewIdRequiredError,
    RoleBasedPolicy,
    ThreadBusyError,
    compliance_gate,
    gate_pauses,
    route_after_gate,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.backends import open_backend
from tests.gate_graphs import (
    Bank,
    GatedMessages,
    ScriptedToolModel,
    build_react,
    call,
    rules,
    transfer_rule,
)

OFFICER = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))
SECOND = Reviewer("deputy@bank", roles=frozenset({"payments_officer"}))


def turn() -> AIMessage:
    """Two flagged transfers and a harmless lookup in one model turn."""
    return AIMessage(
        "",
        tool_calls=[
            call("transfer", "c1", amount_gbp=5_000, to_account="111"),
            call("balance", "c2"),
            call("transfer", "c3", amount_gbp=3_000, to_account="222"),
        ],
    )


@dataclass
class Agent:
    coord: HitlCoordinator
    bank: Bank
    graph: Any
    thread: str

    async def waiting(self) -> list[PendingReview]:
        """This thread's reviews `pending()` lists (the PostgreSQL schema is shared)."""
        return [r for r in await self.coord.pending() if r.thread_id == self.thread]

    async def pending(self) -> dict[str, PendingReview]:
        """The thread's pending reviews by the account of their transfer."""
        found = {}
        for review in await self.waiting():
            account = "111" if '"to_account": "111"' in review.draft_response else "222"
            found[account] = review
        return found


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest_asyncio.fixture
async def agent(url: str) -> AsyncIterator[Agent]:
    """A gated ReAct agent on the backend, paused at its two flagged transfers."""
    async with open_backend(url) as backend:
        bank = Bank()
        graph, _ = build_react(
            "command_resume", backend.checkpointer, bank, turn(), AIMessage("Done.")
        )
        policy = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
        coord = HitlCoordinator(graph, reviews=backend.reviews, policy=policy)
        thread = f"several-{uuid.uuid4().hex}"
        paused = await coord.process(thread, "Pay both")
        assert paused.status == "paused"
        yield Agent(coord, bank, graph, thread)


class TestSeveralPending:
    async def test_both_wait_at_once_each_with_its_interrupt(self, agent: Agent) -> None:
        """pending() lists both calls; each review id is one gate pause with its interrupt id."""
        pending = await agent.pending()
        assert sorted(pending) == ["111", "222"]
        pauses = await gate_pauses(agent.graph, {"configurable": {"thread_id": agent.thread}})
        assert {p.review_id for p in pauses} == {r.review_id for r in pending.values()}
        assert len({p.interrupt_id for p in pauses}) == 2
        rows = await agent.coord.audit_log(agent.thread)
        assert [(r.event, r.review_id) for r in rows] == [
            ("paused", pauses[0].review_id),
            ("paused", pauses[1].review_id),
        ]

    async def test_no_review_id_is_refused_while_two_wait(self, agent: Agent) -> None:
        """approve / reject / review / may_decide need review_id=; nothing changes without it."""
        pending = await agent.pending()
        ids = {r.review_id for r in pending.values()}
        coord, thread = agent.coord, agent.thread
        for attempt in (
            coord.approve(thread, reviewer=OFFICER),
            coord.reject(thread, reviewer=OFFICER, reason="no"),
            coord.review(thread),
            coord.may_decide(thread, OFFICER),
        ):
            with pytest.raises(ReviewIdRequiredError, match="review_id=") as info:
                await attempt
            assert set(info.value.review_ids) == ids
            assert info.value.thread_id == thread
        assert len(await coord.audit_log(thread)) == 2
        assert await agent.pending() == pending
        shown = await coord.review(thread, review_id=pending["222"].review_id)
        assert shown == pending["222"]
        assert (await coord.may_decide(thread, OFFICER, review_id=shown.review_id)).allowed
        with pytest.raises(AlreadyDecidedError):
            await coord.review(thread, review_id="not-a-review")

    @pytest.mark.parametrize("order", [("111", "222"), ("222", "111")])
    async def test_decided_in_either_order(self, agent: Agent, order: tuple[str, str]) -> None:
        """One approved, one rejected, in either order; deciding one leaves the other pending."""
        pending = await agent.pending()
        first, last = (pending[account] for account in order)
        decide = {"111": "approve", "222": "reject"}
        coord, thread = agent.coord, agent.thread

        async def run(account: str, review: PendingReview) -> Any:
            if decide[account] == "approve":
                return await coord.approve(thread, reviewer=OFFICER, review_id=review.review_id)
            return await coord.reject(
                thread, reviewer=OFFICER, reason="unknown payee", review_id=review.review_id
            )

        halfway = await run(order[0], first)
        assert halfway.status == "paused"
        assert halfway.review_id == last.review_id
        assert [r.review_id for r in await agent.waiting()] == [last.review_id]
        assert agent.bank.transfers == []  # nothing runs before the last decision
        with pytest.raises(AlreadyDecidedError):
            await coord.approve(thread, reviewer=SECOND, review_id=first.review_id)
        done = await run(order[1], last)
        assert done.status == "completed"
        assert agent.bank.transfers == [(5_000, "111")]
        assert agent.bank.lookups == 1
        assert await agent.waiting() == []
        rows = await coord.audit_log(thread)
        # The last decision runs the wave: its pass and the agent's answer each record
        # their reply before the coordinator records that decision.
        assert [(r.event, r.review_id) for r in rows][2:] == [
            ("approved" if decide[order[0]] == "approve" else "rejected", first.review_id),
            (REPLIED, None),
            (REPLIED, None),
            ("approved" if decide[order[1]] == "approve" else "rejected", last.review_id),
        ]
        assert (await coord.verify_audit(thread)).ok
        assert (await coord.verify_audit()).ok

    async def test_racing_deciders_one_wins_per_review(self, agent: Agent) -> None:
        """Approve and reject racing on one review: one wins; the other review is untouched."""
        pending = await agent.pending()
        target, other = pending["111"], pending["222"]
        coord, thread = agent.coord, agent.thread
        results = await asyncio.gather(
            coord.approve(thread, reviewer=OFFICER, review_id=target.review_id),
            coord.reject(thread, reviewer=SECOND, reason="no", review_id=target.review_id),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1
        assert len(lost) == 1
        assert isinstance(lost[0], AlreadyDecidedError)
        assert [r.review_id for r in await agent.waiting()] == [other.review_id]
        done = await coord.approve(thread, reviewer=OFFICER, review_id=other.review_id)
        assert done.status == "completed"
        decided = [r for r in await coord.audit_log(thread) if r.event in {"approved", "rejected"}]
        assert sorted(r.review_id for r in decided) == sorted([target.review_id, other.review_id])
        assert (await coord.verify_audit(thread)).ok

    async def test_two_reviews_decided_at_once_apply_one_at_a_time(self, agent: Agent) -> None:
        """Both reviews decided at once: one applies, the other is ThreadBusyError, then works."""
        pending = await agent.pending()
        coord, thread = agent.coord, agent.thread
        results = await asyncio.gather(
            *(
                coord.approve(thread, reviewer=OFFICER, review_id=r.review_id)
                for r in pending.values()
            ),
            return_exceptions=True,
        )
        busy = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, ThreadBusyError) for r in busy)
        for review in await agent.waiting():
            await coord.approve(thread, reviewer=OFFICER, review_id=review.review_id)
        assert await agent.waiting() == []
        assert sorted(agent.bank.transfers) == [(3_000, "222"), (5_000, "111")]
        assert (await coord.verify_audit(thread)).ok


async def test_a_raw_run_records_each_parallel_pause() -> None:
    """A run nobody coordinates (raw `ainvoke`) records one review per waiting call."""
    store = InMemoryReviewStore()
    bank = Bank()
    model = ScriptedToolModel(replies=[turn(), AIMessage("Done.")])

    async def call_model(state: GatedMessages) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder: Any = StateGraph(GatedMessages)
    builder.add_node("model", call_model)
    gate = compliance_gate([*rules(), transfer_rule()], style="command_resume", reviews=store)
    builder.add_node("compliance", gate)
    builder.add_node("tools", ToolNode(bank.tools()))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "raw"}}
    await graph.ainvoke({"messages": [HumanMessage("Pay both")]}, config)
    pauses = await gate_pauses(graph, config)
    opened = await store.open_reviews("raw")
    assert sorted(r.review_id for r in opened) == sorted(p.review_id for p in pauses)
    assert len(opened) == 2
    coord = HitlCoordinator(
        graph,
        reviews=store,
        policy=RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"}),
    )
    for review in opened:
        await coord.approve("raw", reviewer=OFFICER, review_id=review.review_id)
    assert sorted(bank.transfers) == [(3_000, "222"), (5_000, "111")]
    assert (await coord.verify_audit("raw")).ok
