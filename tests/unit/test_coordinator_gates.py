"""HitlCoordinator drives any graph with gates: as a node, in a subgraph, and copies of it."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from hitl_compliance import (
    AllowAllPolicy,
    ConfigurationError,
    HitlCoordinator,
    InvalidInputError,
    NotAuthorizedError,
    PauseStyle,
    PolicyViolationError,
    Reviewer,
    RoleBasedPolicy,
    ThreadBusyError,
    build_compliance_graph,
)
from hitl_compliance.gate import DEFAULT_REJECTION, gate_pauses
from tests.gate_graphs import RISKY, SAFE, SHAPES, Shape, build
from tests.helpers import FakeClock

QUESTION = "Should I buy the fund?"


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> Shape:
    """Each graph shape the coordinator must drive."""
    value: Shape = request.param
    return value


def coordinator(graph: Any, clock: FakeClock | None = None, **kwargs: Any) -> HitlCoordinator:
    return HitlCoordinator(
        graph, policy=kwargs.pop("policy", AllowAllPolicy()), clock=clock or FakeClock(), **kwargs
    )


def last_reply(graph: Any, values: Any, shape: Shape) -> str:
    if shape == "compliance_state":
        return str(values["draft_response"])
    last = values["messages"][-1]
    assert isinstance(last, AIMessage)
    return str(last.content)


class TestLifecycle:
    async def test_safe_turn_completes(self, shape: Shape, style: PauseStyle) -> None:
        """A clean draft completes without a review."""
        coord = coordinator(build(shape, style, InMemorySaver(), SAFE))
        result = await coord.process("t1", QUESTION)
        assert result.status == "completed"
        assert result.agent_response == SAFE
        assert await coord.pending() == []

    async def test_pause_is_pending_with_the_gates_id(
        self, shape: Shape, style: PauseStyle
    ) -> None:
        """A risky draft pauses; pending() lists it under the gate pass's review id."""
        graph = build(shape, style, InMemorySaver())
        coord = coordinator(graph)
        result = await coord.process("t1", QUESTION, requested_by=None)
        assert result.status == "paused"
        assert result.draft_response == RISKY
        assert [v.rule for v in result.violations] == ["guarantee"]
        [pending] = await coord.pending()
        [pause] = await gate_pauses(graph, {"configurable": {"thread_id": "t1"}})
        assert pending.review_id == pause.review_id == result.review_id
        assert pending.customer_message == QUESTION
        with pytest.raises(ThreadBusyError):
            await coord.process("t1", "another question")

    async def test_approve_with_edit(self, shape: Shape, style: PauseStyle) -> None:
        """An edited approval reaches the customer; the audit chain verifies."""
        graph = build(shape, style, InMemorySaver())
        coord = coordinator(graph)
        await coord.process("t1", QUESTION)
        edit = "Past performance is no guide; please read the key facts."
        result = await coord.approve("t1", reviewer="officer@bank", response=edit)
        assert result.status == "completed"
        assert result.agent_response == edit
        assert result.reviewer == "officer@bank"
        values = (await graph.aget_state({"configurable": {"thread_id": "t1"}})).values
        assert last_reply(graph, values, shape) == edit
        events = [row.event for row in await coord.audit_log("t1")]
        assert events == ["paused", "replied", "approved"]
        [_, reply, approved] = await coord.audit_log("t1")
        assert approved.payload["delivered"] == edit
        assert (reply.actor, reply.payload["outcome"], reply.payload["decided_by"]) == (
            "officer@bank",
            "edited",
            "officer@bank",
        )
        assert reply.payload["delivered_sha256"] == hashlib.sha256(edit.encode()).hexdigest()
        assert (await coord.verify_audit("t1")).ok

    async def test_reject(self, shape: Shape, style: PauseStyle) -> None:
        """A rejection sends the rejection message and is recorded."""
        graph = build(shape, style, InMemorySaver())
        coord = coordinator(graph)
        await coord.process("t1", QUESTION)
        result = await coord.reject("t1", reviewer="officer@bank", reason="promises returns")
        assert result.status == "rejected"
        assert result.agent_response == DEFAULT_REJECTION
        assert result.metadata["rejection_reason"] == "promises returns"
        [_, reply, rejected] = await coord.audit_log("t1")
        assert (reply.event, reply.payload["outcome"]) == ("replied", "rejected")
        assert rejected.event == "rejected"
        assert rejected.payload["delivered"] == DEFAULT_REJECTION

    async def test_next_turn_after_a_decision(self, shape: Shape, style: PauseStyle) -> None:
        """A decided thread takes a new turn, which pauses again on its own findings."""
        graph = build(shape, style, InMemorySaver(), RISKY, SAFE)
        coord = coordinator(graph)
        await coord.process("t1", QUESTION)
        await coord.approve("t1", reviewer="officer@bank")
        result = await coord.process("t1", "And the fees?")
        assert result.status == "completed"
        assert result.agent_response == SAFE

    async def test_edit_is_rechecked_by_the_gates_rules(self, style: PauseStyle) -> None:
        """An edit that a block rule finds is refused; the review stays pending."""
        from hitl_compliance import KeywordRule, compliance_gate

        gate = compliance_gate(
            [
                KeywordRule("guarantee", ["guaranteed returns"]),
                KeywordRule("pin", ["your pin"], verdict="block"),
            ],
            style=style,
        )

        async def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [AIMessage(RISKY)]}

        builder: Any = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_node("compliance", gate)
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_edge("compliance", END)
        coord = coordinator(builder.compile(checkpointer=InMemorySaver()))
        await coord.process("t1", QUESTION)
        with pytest.raises(PolicyViolationError):
            await coord.approve("t1", reviewer="officer@bank", response="Send your PIN")
        assert [r.thread_id for r in await coord.pending()] == ["t1"]


class TestGuarantees:
    async def test_policy_applies(self, style: PauseStyle) -> None:
        """The approval policy decides who may decide a gate's review."""
        policy = RoleBasedPolicy(rule_roles={"guarantee": "compliance"})
        coord = coordinator(build("messages", style, InMemorySaver()), policy=policy)
        await coord.process("t1", QUESTION, requested_by=None)
        with pytest.raises(NotAuthorizedError):
            await coord.approve("t1", reviewer="stranger@bank")
        officer = Reviewer("officer@bank", roles=frozenset({"compliance"}))
        assert (await coord.approve("t1", reviewer=officer)).status == "completed"

    async def test_sla_expiry_rejects(self, style: PauseStyle) -> None:
        """An overdue gate review is rejected by the SLA sweeper."""
        clock = FakeClock()
        coord = coordinator(
            build("messages", style, InMemorySaver()), clock, sla=timedelta(minutes=5)
        )
        await coord.process("t1", QUESTION)
        clock.advance(timedelta(minutes=6))
        [expired] = await coord.expire_overdue()
        assert expired.status == "rejected"
        assert expired.agent_response == DEFAULT_REJECTION

    async def test_a_second_decision_is_refused(self, style: PauseStyle) -> None:
        """Exactly one decision per pause."""
        from hitl_compliance import AlreadyDecidedError

        coord = coordinator(build("messages", style, InMemorySaver()))
        await coord.process("t1", QUESTION)
        await coord.reject("t1", reviewer="officer@bank")
        with pytest.raises(AlreadyDecidedError):
            await coord.approve("t1", reviewer="other@bank")


class TestGraphs:
    @pytest.mark.parametrize("how", ["copy", "with_config"])
    async def test_copies_are_accepted(self, style: PauseStyle, how: str) -> None:
        """copy() and with_config() of a gated graph work as the graph itself."""
        graph = build("messages", style, InMemorySaver())
        other = graph.copy() if how == "copy" else graph.with_config(tags=["served"])
        coord = coordinator(other)
        assert (await coord.process("t1", QUESTION)).status == "paused"
        assert (await coord.approve("t1", reviewer="officer@bank")).agent_response == RISKY

    @pytest.mark.parametrize("how", ["copy", "with_config"])
    async def test_factory_copies_are_accepted(self, style: PauseStyle, how: str) -> None:
        """copy() and with_config() of a factory graph are the same build."""
        graph = build_compliance_graph(
            lambda state: SAFE, checkpointer=InMemorySaver(), style=style
        )
        other = graph.copy() if how == "copy" else graph.with_config(tags=["served"])
        assert (await coordinator(other).process("t1", QUESTION)).status == "completed"

    async def test_graph_without_a_gate_is_refused(self) -> None:
        """A plain graph has nothing to coordinate: ConfigurationError."""

        async def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [AIMessage(SAFE)]}

        builder: Any = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_edge(START, "model")
        builder.add_edge("model", END)
        with pytest.raises(ConfigurationError, match="compliance_gate"):
            HitlCoordinator(builder.compile(checkpointer=InMemorySaver()))

    async def test_mapping_input_is_the_graphs_input(self, style: PauseStyle) -> None:
        """process() takes the graph's own input mapping as is."""
        coord = coordinator(build("messages", style, InMemorySaver(), SAFE))
        result = await coord.process("t1", {"messages": [HumanMessage(QUESTION)]})
        assert result.status == "completed"
        with pytest.raises(InvalidInputError, match="Unknown input keys"):
            await coord.process("t2", {"nonsense": 1})

    async def test_coordinator_protects_the_stream(self) -> None:
        """Driving a gated graph marks its drafting nodes quiet."""
        graph = build("messages", "command_resume", InMemorySaver())
        coordinator(graph)
        assert "nostream" in graph.nodes["model"].tags
