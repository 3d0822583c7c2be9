"""No resume can poison a thread: invalid and hand-written resumes are refused before saving."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import ValidationError

from hitl_compliance import (
    AllowAllPolicy,
    Decision,
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
    gate_pauses,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from tests.gate_graphs import build, graph_input

SEED = {"approved_response": "Fine.", "agent_metadata": {"reviewed_by": "bob@bank"}}
CONFIG: Any = {"configurable": {"thread_id": "t"}}


def factory(style: str) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: "guaranteed returns",
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
        style=style,  # type: ignore[arg-type]
    )
    return HitlCoordinator(graph, policy=AllowAllPolicy())


def audit_events(rows: Any) -> list[str]:
    return [row.event for row in rows if row.event != REPLIED]


class TestFactory:
    @pytest.mark.parametrize("bad", [{"approved": "maybe"}, "yes", {**SEED, "extra": 1}])
    async def test_invalid_resume_is_refused_and_the_thread_stays_decidable(self, bad: Any) -> None:
        """A bad Command(resume=...) raises before LangGraph saves it; approve() works after."""
        coord = factory("command_resume")
        await coord.process("t", "hi")
        with pytest.raises(ValidationError):
            await coord.graph.ainvoke(Command(resume=bad), CONFIG)
        result = await coord.approve("t", reviewer="officer@bank")
        assert result.status == "completed"

    async def test_hand_written_resume_is_an_approval_through_the_checks(self) -> None:
        """The seed pattern's resume approves its edit, by its reviewer, claimed and audited."""
        coord = factory("command_resume")
        await coord.process("t", "hi")
        out = await coord.graph.ainvoke(Command(resume=SEED), CONFIG)
        assert (out["agent_response"], out["agent_type"]) == ("Fine.", "human_admin")
        assert out["metadata"]["reviewer"] == "bob@bank"
        assert await coord.pending() == []
        rows = [row for row in await coord.audit_log("t") if row.event != REPLIED]
        assert audit_events(rows) == ["paused", "approved"]
        assert rows[-1].actor == "bob@bank"
        assert rows[-1].payload["delivered"] == "Fine."
        assert (await coord.verify_audit("t")).ok

    async def test_hand_written_resume_without_the_role_is_refused(self) -> None:
        """The policy applies: bob may not decide; the thread stays paused, then decidable."""
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
            style="command_resume",
        )
        coord = HitlCoordinator(graph, policy=RoleBasedPolicy(rule_roles={"guarantee": "smcr"}))
        await coord.process("t", "hi")
        out = await graph.ainvoke(Command(resume=SEED), CONFIG)
        [paused] = out["__interrupt__"]
        assert "may not decide" in paused.value["refused"]
        assert [p.thread_id for p in await coord.pending()] == ["t"]
        assert audit_events(await coord.audit_log("t")) == ["paused", "denied"]
        # The refused value is never applied again: a valid decision afterwards works.
        officer = Reviewer("officer@bank", roles=frozenset({"smcr"}))
        result = await coord.approve("t", reviewer=officer)
        assert (result.status, result.agent_response) == ("completed", "guaranteed returns")
        assert audit_events(await coord.audit_log("t")) == ["paused", "denied", "approved"]

    async def test_a_quorum_counts_raw_resumes_as_votes(self) -> None:
        """Two approvals needed: the first raw resume is a vote, the second applies it."""
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            rules=[KeywordRule("guarantee", ["guaranteed returns"], severity="high")],
            checkpointer=InMemorySaver(),
            style="command_resume",
        )
        coord = HitlCoordinator(graph, policy=RoleBasedPolicy(quorum={"high": 2}))
        await coord.process("t", "hi")
        first = await graph.ainvoke(Command(resume=SEED), CONFIG)
        assert "1 of 2" in first["__interrupt__"][0].value["refused"]
        second = {"approved_response": "Fine.", "agent_metadata": {"reviewed_by": "carol@bank"}}
        out = await graph.ainvoke(Command(resume=second), CONFIG)
        assert out["agent_response"] == "Fine."
        rows = [row for row in await coord.audit_log("t") if row.event != REPLIED]
        assert audit_events(rows) == ["paused", "voted", "approved"]
        assert rows[-1].payload["approvers"] == ["bob@bank", "carol@bank"]

    @pytest.mark.parametrize("style", ["command_resume", "interrupt_before"])
    async def test_direct_state_write_is_refused(self, style: str) -> None:
        """Writing agent_response/is_compliant then ainvoke(None) raises, naming approve()."""
        coord = factory(style)
        await coord.process("t", "hi")
        await coord.graph.aupdate_state(
            CONFIG,
            {"agent_response": "Approved", "is_compliant": True, "agent_type": "human_admin"},
        )
        with pytest.raises(InvalidDecisionError, match=r"HitlCoordinator\.approve"):
            await coord.graph.ainvoke(None, CONFIG)
        assert [r.thread_id for r in await coord.pending()] == ["t"]
        result = await coord.approve("t", reviewer="officer@bank", response="Reviewed.")
        assert (result.status, result.agent_response) == ("completed", "Reviewed.")
        assert audit_events(await coord.audit_log("t")) == ["paused", "approved"]

    async def test_static_raw_decision_is_refused_before_anything_is_saved(self) -> None:
        """update_state(as_node=...) of an unauthorised decision raises; nothing is saved."""
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
        )
        coord = HitlCoordinator(graph, policy=RoleBasedPolicy(rule_roles={"guarantee": "smcr"}))
        await coord.process("t", "hi")
        before = (await graph.aget_state(CONFIG)).config
        made = Decision(
            approved=True, reviewer="intern@bank", decided_at=datetime.now(timezone.utc)
        )
        with pytest.raises(NotAuthorizedError):
            await graph.aupdate_state(
                CONFIG, {"decision": made.to_state()}, as_node="human_approval"
            )
        assert (await graph.aget_state(CONFIG)).config == before
        allowed = made.model_copy(update={"reviewer": "officer@bank", "roles": ["smcr"]})
        await graph.aupdate_state(
            CONFIG, {"decision": allowed.to_state()}, as_node="human_approval"
        )
        out = await graph.ainvoke(None, CONFIG)
        assert out["agent_response"] == "guaranteed returns"
        assert audit_events(await coord.audit_log("t")) == ["paused", "denied", "approved"]


class TestGate:
    async def test_hand_written_resume_is_accepted_by_a_gate(self) -> None:
        """A gate takes the seed shape as an approval of its text, by its reviewer."""
        graph = build("messages", "command_resume", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        assert pause.interrupt_id is not None
        out = await graph.ainvoke(Command(resume={pause.interrupt_id: SEED}), CONFIG)
        assert out["messages"][-1].content == "Fine."
        assert out["compliance"]["decision"]["reviewer"] == "bob@bank"

    async def test_bad_hand_written_resume_is_refused_before_saving(self) -> None:
        """A malformed seed shape is refused before saving and the gate stays at its pause."""
        graph = build("messages", "command_resume", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        assert pause.interrupt_id is not None
        bad = {"approved_response": "Fine.", "agent_metadata": {}}
        with pytest.raises(ValidationError, match="reviewed_by"):
            await graph.ainvoke(Command(resume={pause.interrupt_id: bad}), CONFIG)
        [again] = await gate_pauses(graph, CONFIG)
        assert again.interrupt_id == pause.interrupt_id
