"""ComplianceMiddleware: the compliance gate inside a LangChain `create_agent` agent.

The agent's model proposes a `transfer` over the `ToolCallRule` limit. The
coordinator drives it like any gated graph; a raw `Command(resume=...)` with
LangChain's `HITLResponse` goes through the same checks; and, unlike
LangChain's `HumanInTheLoopMiddleware`, an approval and a rejection racing on
one pause give exactly one outcome.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

pytest.importorskip(
    "langchain.agents",
    reason='needs the langchain extra: pip install "hitl-compliance[langchain]"',
)

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from pydantic import ValidationError

import hitl_compliance
from hitl_compliance import (
    AllowAllPolicy,
    ConfigurationError,
    GateOutcome,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    Reviewer,
    RoleBasedPolicy,
    attach_authority,
    gate_pauses,
)
from hitl_compliance._hitl_response import ANONYMOUS
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.gate import GatePause, gates_in
from hitl_compliance.middleware import ComplianceMiddleware
from hitl_compliance.state import as_decision
from hitl_compliance.testing import ScriptedChatModel
from tests.gate_graphs import Bank, call, transfer_rule

POLICY = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
OFFICER = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))
SERVER_OFFICER = {"identity": "payments@bank", "permissions": ["payments_officer"]}
RULES = [transfer_rule(), KeywordRule("guarantee", ["guaranteed returns"])]


def transfer(amount: int = 5_000, to: str = "12345678") -> AIMessage:
    """The model's turn: one transfer call."""
    return AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=amount, to_account=to)])


def agent_of(bank: Bank, *replies: str | AIMessage, middleware: Any = None) -> Any:
    """A `create_agent` agent with the bank's tools, gated by `ComplianceMiddleware(RULES)`."""
    model = ScriptedChatModel(replies=list(replies or (transfer(), "Done.")))
    return create_agent(
        model,
        bank.tools(),
        middleware=[middleware if middleware is not None else ComplianceMiddleware(RULES)],
        checkpointer=InMemorySaver(),
    )


def config(thread: str = "t1", **configurable: Any) -> Any:
    return {"configurable": {"thread_id": thread, **configurable}}


def kinds(messages: list[BaseMessage]) -> list[str]:
    return [type(m).__name__ for m in messages]


async def only_pause(agent: Any, thread: str = "t1") -> GatePause:
    [pause] = await gate_pauses(agent, config(thread))
    return pause


class TestBuild:
    def test_found_as_a_gate(self) -> None:
        """The agent is drivable: its middleware node runs a gate the library finds."""
        middleware = ComplianceMiddleware(RULES)
        agent = agent_of(Bank(), middleware=middleware)
        assert "ComplianceMiddleware.after_model" in agent.builder.nodes
        [spec] = gates_in(agent)
        assert spec.rules == tuple(RULES)
        HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=POLICY)

    def test_lazy_export(self) -> None:
        """`hitl_compliance.ComplianceMiddleware` loads the module; `__all__` leaves it out."""
        assert hitl_compliance.ComplianceMiddleware is ComplianceMiddleware
        assert "ComplianceMiddleware" not in hitl_compliance.__all__
        assert "ComplianceMiddleware" not in vars(hitl_compliance)

    @pytest.mark.parametrize("name", ["", "a.b", "x:y"])
    def test_bad_name(self, name: str) -> None:
        """A name that cannot be a node name prefix is refused."""
        with pytest.raises(ConfigurationError):
            ComplianceMiddleware(RULES, name=name)

    def test_bad_rule(self) -> None:
        """The gate's own checks apply to the middleware's rules."""
        with pytest.raises(ConfigurationError):
            ComplianceMiddleware([object()])  # type: ignore[list-item]


class TestCoordinator:
    async def test_clean_reply_passes(self) -> None:
        """A reply no rule flags is delivered at once, with no review."""
        coord = HitlCoordinator(
            agent_of(Bank(), "Hello, how can I help?"),
            reviews=InMemoryReviewStore(),
            policy=POLICY,
        )
        result = await coord.process("t1", "Hi")
        assert result.status == "completed"
        assert result.agent_response == "Hello, how can I help?"
        assert await coord.pending() == []

    async def test_small_transfer_runs_without_a_pause(self) -> None:
        """A call under the limit runs at once."""
        bank = Bank()
        coord = HitlCoordinator(
            agent_of(bank, transfer(500), "Done."), reviews=InMemoryReviewStore(), policy=POLICY
        )
        result = await coord.process("t1", "Pay my gym")
        assert result.status == "completed"
        assert bank.transfers == [(500, "12345678")]

    async def test_approve_runs_the_tool_once(self) -> None:
        """Paused; pending() lists the call; an officer's approval runs it once."""
        bank = Bank()
        agent = agent_of(bank)
        coord = HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=POLICY)
        result = await coord.process("t1", "Pay my landlord")
        assert result.status == "paused"
        assert bank.transfers == []
        [review] = await coord.pending()
        assert review.draft_response.startswith("transfer(")
        assert [v.rule for v in review.violations] == ["transfer_limits"]
        done = await coord.approve("t1", reviewer=OFFICER, review_id=review.review_id)
        assert done.status == "completed"
        assert done.agent_response == "Done."
        assert bank.transfers == [(5_000, "12345678")]
        state = await agent.aget_state(config())
        assert kinds(state.values["messages"]) == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "AIMessage",
        ]
        outcome = GateOutcome.from_state(state)
        assert outcome is not None
        assert outcome.status == "clear"  # the final reply's pass

    async def test_edit_changes_the_arguments(self) -> None:
        """An approval with `tool_args` runs the edited call."""
        bank = Bank()
        coord = HitlCoordinator(agent_of(bank), reviews=InMemoryReviewStore(), policy=POLICY)
        await coord.process("t1", "Pay my landlord")
        [review] = await coord.pending()
        await coord.approve(
            "t1",
            reviewer=OFFICER,
            review_id=review.review_id,
            tool_args={"amount_gbp": 900, "to_account": "12345678"},
        )
        assert bank.transfers == [(900, "12345678")]

    async def test_reject_answers_the_model(self) -> None:
        """A rejected call never runs; the model reads why and answers the customer."""
        bank = Bank()
        agent = agent_of(bank, transfer(), "I could not send that.")
        coord = HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=POLICY)
        await coord.process("t1", "Pay my landlord")
        [review] = await coord.pending()
        done = await coord.reject(
            "t1", reviewer=OFFICER, reason="unknown payee", review_id=review.review_id
        )
        assert done.status == "completed"
        assert bank.transfers == []
        messages = (await agent.aget_state(config())).values["messages"]
        [answer] = [m for m in messages if isinstance(m, ToolMessage)]
        assert "unknown payee" in str(answer.content)
        assert messages[-1].content == "I could not send that."

    async def test_flagged_reply_text(self) -> None:
        """The model's reply text is gated too: a rejected reply becomes the rejection message."""
        middleware = ComplianceMiddleware(RULES, rejection_message="An adviser will call you.")
        agent = agent_of(Bank(), "Our fund has guaranteed returns.", middleware=middleware)
        coord = HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=AllowAllPolicy())
        assert (await coord.process("t1", "Should I invest?")).status == "paused"
        done = await coord.reject("t1", reviewer="officer@bank", reason="promises returns")
        assert done.agent_response == "An adviser will call you."


class TestAgentShapes:
    async def test_two_flagged_calls_are_two_reviews(self) -> None:
        """Each flagged call of one turn is its own review; each decision applies to its own."""
        bank = Bank()
        turn = AIMessage(
            "",
            tool_calls=[
                call("transfer", "c1", amount_gbp=5_000, to_account="111"),
                call("transfer", "c2", amount_gbp=3_000, to_account="222"),
            ],
        )
        coord = HitlCoordinator(
            agent_of(bank, turn, "Done."), reviews=InMemoryReviewStore(), policy=POLICY
        )
        await coord.process("t1", "Pay both")
        reviews = {r.draft_response: r for r in await coord.pending()}
        assert len(reviews) == 2
        first = next(r for d, r in reviews.items() if '"111"' in d)
        second = next(r for d, r in reviews.items() if '"222"' in d)
        await coord.reject("t1", reviewer=OFFICER, reason="no", review_id=first.review_id)
        assert bank.transfers == []  # the turn's calls run once both are decided
        done = await coord.approve("t1", reviewer=OFFICER, review_id=second.review_id)
        assert done.status == "completed"
        assert bank.transfers == [(3_000, "222")]

    async def test_agent_inside_a_parent_graph(self) -> None:
        """The agent as a node of a parent graph: found, paused, approved like at the top."""
        bank = Bank()
        model = ScriptedChatModel(replies=[transfer(), "Done."])
        inner = create_agent(model, bank.tools(), middleware=[ComplianceMiddleware(RULES)])
        builder: Any = StateGraph(MessagesState)
        builder.add_node("agent", inner)
        builder.add_edge(START, "agent")
        builder.add_edge("agent", END)
        parent = builder.compile(checkpointer=InMemorySaver())
        coord = HitlCoordinator(parent, reviews=InMemoryReviewStore(), policy=POLICY)
        assert (await coord.process("t1", "Pay my landlord")).status == "paused"
        [review] = await coord.pending()
        await coord.approve(
            "t1",
            reviewer=OFFICER,
            review_id=review.review_id,
            tool_args={"amount_gbp": 700, "to_account": "12345678"},
        )
        assert bank.transfers == [(700, "12345678")]

    async def test_store_only_middleware_records_its_pause(self) -> None:
        """With `reviews=` and no coordinator, a raw run's pause is a pending review there."""
        store = InMemoryReviewStore()
        agent = agent_of(Bank(), middleware=ComplianceMiddleware(RULES, reviews=store))
        await agent.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, config())
        [review] = await store.open_reviews("t1")
        assert review.status == "pending"
        assert review.review_id == (await only_pause(agent)).review_id

    async def test_draft_never_streams(self) -> None:
        """Driven by a coordinator, the agent streams the cleared reply, never the draft."""
        middleware = ComplianceMiddleware(RULES)
        agent = agent_of(Bank(), "Our fund has guaranteed returns.", "Fine.", middleware=middleware)
        HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=AllowAllPolicy())
        streamed = [
            str(chunk.content)
            async for chunk, _meta in agent.astream(
                {"messages": [HumanMessage("Should I invest?")]}, config(), stream_mode="messages"
            )
        ]
        assert not any("guaranteed" in text for text in streamed)

    async def test_cleared_reply_streams(self) -> None:
        """A clean reply streams once, as the gate's cleared message."""
        agent = agent_of(Bank(), "A clean reply.")
        HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=POLICY)
        streamed = [
            (str(chunk.content), meta["langgraph_node"])
            async for chunk, meta in agent.astream(
                {"messages": [HumanMessage("Hi")]}, config(), stream_mode="messages"
            )
        ]
        assert streamed == [("A clean reply.", "ComplianceMiddleware.after_model")]


class TestHITLResponse:
    """LangChain's resume shape on the middleware's pause, through the attached checks."""

    async def paused(self, bank: Bank, *replies: str | AIMessage) -> tuple[Any, Any]:
        store = InMemoryReviewStore()
        agent = agent_of(bank, *(replies or (transfer(), "Done.")))
        HitlCoordinator(agent, reviews=store, policy=POLICY)  # attached, never driving
        out = await agent.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, config())
        assert out["__interrupt__"]
        return agent, store

    async def events(self, store: Any) -> list[tuple[str, str]]:
        rows = await store.audit_log("t1")
        return [(row.event, row.actor) for row in rows if row.event != REPLIED]

    async def test_approve(self) -> None:
        """`{"decisions": [{"type": "approve"}]}` by the server's user runs the call once."""
        bank = Bank()
        agent, store = await self.paused(bank)
        resume = Command(resume={"decisions": [{"type": "approve"}]})
        out = await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert "__interrupt__" not in out
        assert bank.transfers == [(5_000, "12345678")]
        assert await self.events(store) == [("paused", "system"), ("approved", "payments@bank")]

    async def test_edit(self) -> None:
        """An `edit` runs the call with the edited args, re-checked by the rules."""
        bank = Bank()
        agent, store = await self.paused(bank)
        action = {"name": "transfer", "args": {"amount_gbp": 800, "to_account": "12345678"}}
        resume = Command(resume={"decisions": [{"type": "edit", "edited_action": action}]})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert bank.transfers == [(800, "12345678")]
        [decided] = [r for r in await store.audit_log("t1") if r.event == "approved"]
        assert decided.payload["tool_args"] == action["args"]

    async def test_edit_blocked_by_the_rules_is_refused(self) -> None:
        """An edit over the block limit is refused: the call stays paused, nothing claimed."""
        bank = Bank()
        agent, store = await self.paused(bank)
        action = {"name": "transfer", "args": {"amount_gbp": 90_000, "to_account": "1"}}
        resume = Command(resume={"decisions": [{"type": "edit", "edited_action": action}]})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert "blocked by the rules" in ((await only_pause(agent)).outcome.refused or "")
        assert bank.transfers == []
        assert await self.events(store) == [("paused", "system")]

    async def test_edit_may_not_switch_tools(self) -> None:
        """An edit naming another tool is refused (HumanInTheLoopMiddleware would run it)."""
        bank = Bank()
        agent, _store = await self.paused(bank)
        action = {"name": "balance", "args": {}}
        resume = Command(resume={"decisions": [{"type": "edit", "edited_action": action}]})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert "the tool" in ((await only_pause(agent)).outcome.refused or "")
        assert (bank.transfers, bank.lookups) == ([], 0)

    async def test_reject(self) -> None:
        """A `reject` answers the call with its message; the tool never runs."""
        bank = Bank()
        agent, store = await self.paused(bank, transfer(), "Not sent.")
        resume = Command(resume={"type": "reject", "message": "wrong payee"})  # per_call shape
        out = await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert bank.transfers == []
        [answer] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert "wrong payee" in str(answer.content)
        assert await self.events(store) == [("paused", "system"), ("rejected", "payments@bank")]

    async def test_unauthorised_is_refused_and_audited(self) -> None:
        """A decision by nobody with the role is refused, audited, and the call stays paused."""
        bank = Bank()
        agent, store = await self.paused(bank)
        await agent.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), config())
        pause = await only_pause(agent)
        assert "may not decide" in (pause.outcome.refused or "")
        assert bank.transfers == []
        assert await self.events(store) == [("paused", "system"), ("denied", ANONYMOUS)]
        # The same pause is still decidable by someone allowed to.
        resume = Command(resume={pause.interrupt_id: {"decisions": [{"type": "approve"}]}})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert bank.transfers == [(5_000, "12345678")]

    async def test_attach_authority_without_a_coordinator(self) -> None:
        """attach_authority (LangGraph Server's way) records the pause and checks the decision."""
        bank = Bank()
        store = InMemoryReviewStore()
        agent = attach_authority(agent_of(bank), reviews=store, policy=POLICY)
        await agent.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, config())
        [review] = await store.open_reviews("t1")
        assert review.review_id == (await only_pause(agent)).review_id
        resume = Command(resume={"decisions": [{"type": "approve"}]})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert bank.transfers == [(5_000, "12345678")]
        assert await self.events(store) == [("paused", "system"), ("approved", "payments@bank")]

    @pytest.mark.parametrize(
        "value",
        [
            {"decisions": []},
            {"decisions": [{"type": "approve"}, {"type": "approve"}]},
            {"decisions": [{"type": "respond"}]},
            {"decisions": [{"type": "edit", "edited_action": {"name": "transfer"}}]},
            {"decisions": [{"type": "approve", "extra": 1}]},
            {"decisions": [{"type": "approve"}], "other": 1},
            {"type": "reject", "message": 5},
        ],
    )
    async def test_invalid_shapes_are_refused_before_saving(self, value: Any) -> None:
        """An invalid value is refused by LangGraph (a ValueError in as_decision), unsaved."""
        with pytest.raises(ValueError):  # noqa: PT011 - as_decision's contract is ValueError
            as_decision(value)
        bank = Bank()
        agent, _store = await self.paused(bank)
        before = await only_pause(agent)
        with pytest.raises(ValidationError):
            await agent.ainvoke(Command(resume=value), config(langgraph_auth_user=SERVER_OFFICER))
        after = await only_pause(agent)
        assert (after.interrupt_id, after.outcome.refused) == (before.interrupt_id, None)
        resume = Command(resume={"decisions": [{"type": "approve"}]})
        await agent.ainvoke(resume, config(langgraph_auth_user=SERVER_OFFICER))
        assert bank.transfers == [(5_000, "12345678")]

    def test_translation(self) -> None:
        """Each LangChain decision type becomes the library's Decision."""
        approve = as_decision({"decisions": [{"type": "approve"}], "reviewer": "a@bank"})
        assert (approve.approved, approve.reviewer, approve.tool_args) == (True, "a@bank", None)
        action = {"name": "transfer", "args": {"amount_gbp": 1}}
        edit = as_decision({"type": "edit", "edited_action": action})
        assert (edit.approved, edit.reviewer, edit.tool_args) == (True, ANONYMOUS, action["args"])
        reject = as_decision({"decisions": [{"type": "reject", "message": "no"}]})
        assert (reject.approved, reject.reason) == (False, "no")


class TestRace:
    """An approval and a rejection resuming one pause at the same time (LANGGRAPH_FACTS)."""

    @pytest.mark.skipif(
        sys.version_info < (3, 11),
        reason="HumanInTheLoopMiddleware's async hook calls interrupt(), which finds no "
        "config before Python 3.11 (no context propagation to tasks)",
    )
    async def test_human_in_the_loop_middleware_loses_the_rejection(self) -> None:
        """Documented upstream behaviour: both resumes succeed and the tool runs anyway."""
        bank = Bank()
        agent = agent_of(
            bank,
            transfer(),
            "Done.",
            "Done.",
            middleware=HumanInTheLoopMiddleware({"transfer": True}),
        )
        await agent.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, config())
        results = await asyncio.gather(
            agent.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), config()),
            agent.ainvoke(
                Command(resume={"decisions": [{"type": "reject", "message": "no"}]}), config()
            ),
        )
        assert all("__interrupt__" not in r for r in results)  # both "succeeded"
        assert bank.transfers == [(5_000, "12345678")]  # and the rejection was lost

    async def test_compliance_middleware_applies_exactly_one(self) -> None:
        """One decision is claimed and audited; the tool runs iff it was the approval."""
        bank = Bank()
        store = InMemoryReviewStore()
        agent = agent_of(bank, transfer(), "Done.", "Done.")
        HitlCoordinator(agent, reviews=store, policy=POLICY)
        await agent.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, config())
        server = config(langgraph_auth_user=SERVER_OFFICER)
        results = await asyncio.gather(
            agent.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), server),
            agent.ainvoke(
                Command(resume={"decisions": [{"type": "reject", "message": "no"}]}), server
            ),
        )
        refused = [r for r in results if "__interrupt__" in r]
        assert len(refused) == 1  # the loser is told, on its own pause
        assert "already" in refused[0]["__interrupt__"][0].value["refused"]
        rows = [r for r in await store.audit_log("t1") if r.event in ("approved", "rejected")]
        assert len(rows) == 1
        assert bank.transfers == ([(5_000, "12345678")] if rows[0].event == "approved" else [])
        assert await gate_pauses(agent, config()) == []
