"""A trusted coordinator's server runs (`COORDINATOR_PERMISSION`), simulated in process.

LangGraph Server puts the authenticated user in `configurable["langgraph_auth_user"]`;
these tests put it there themselves, so the checks the served graph makes on a
`RemoteGraph` coordinator's runs are exercised without a server.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from hitl_compliance import (
    COORDINATOR_PERMISSION,
    ComplianceState,
    ConfigurationError,
    Decision,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    attach_authority,
    build_compliance_graph,
    compliance_gate,
)
from hitl_compliance._authority import authenticated_reviewer, driven, remote_driven
from hitl_compliance.testing import ScriptedChatModel

RISKY = "Buy the fund: guaranteed returns."
RULES = [KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")]
SERVICE = {"identity": "hitl-coordinator", "permissions": ["reviewer", COORDINATOR_PERMISSION]}
OFFICER = {"identity": "alice@bank", "permissions": ["reviewer"]}


def config(thread_id: str, user: dict[str, Any]) -> Any:
    return {"configurable": {"thread_id": thread_id, "langgraph_auth_user": user}}


class TestAuthUser:
    def test_the_coordinator_permission_makes_a_run_driven(self) -> None:
        cfg = config("t", SERVICE)
        assert remote_driven(cfg)
        assert driven(cfg)
        assert authenticated_reviewer(cfg) is None

    def test_an_ordinary_user_is_the_reviewer(self) -> None:
        cfg = config("t", OFFICER)
        assert not remote_driven(cfg)
        assert not driven(cfg)
        reviewer = authenticated_reviewer(cfg)
        assert reviewer is not None
        assert reviewer.id == "alice@bank"

    def test_an_object_user_with_the_permission(self) -> None:
        class User:
            identity = "svc"
            permissions = (COORDINATOR_PERMISSION,)

        assert remote_driven({"configurable": {"langgraph_auth_user": User()}})


def draft(state: ComplianceState) -> str:
    return RISKY


def gated_graph() -> Any:
    async def model(state: MessagesState) -> dict[str, Any]:
        reply = await ScriptedChatModel(replies=[RISKY]).ainvoke(state["messages"])
        return {"messages": [reply]}

    builder: Any = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("compliance", compliance_gate(RULES))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_edge("compliance", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.fixture(params=["factory", "gated"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def make_graph(kind: str) -> Any:
    if kind == "factory":
        return build_compliance_graph(
            draft, rules=RULES, style="command_resume", checkpointer=InMemorySaver()
        )
    return gated_graph()


def payload(snapshot: Any) -> dict[str, Any]:
    found = [i.value for i in snapshot.interrupts]
    found += [i.value for t in snapshot.tasks for i in t.interrupts]
    for task in snapshot.tasks:
        if task.state is not None and hasattr(task.state, "tasks"):
            found += [i.value for t in task.state.tasks for i in t.interrupts]
    assert found, snapshot
    value: dict[str, Any] = found[-1]
    return value


class TestTrustedRuns:
    async def test_an_unclaimed_decision_is_refused(self, kind: str) -> None:
        """The permission resumes only what the store holds claimed; anything else re-pauses."""
        store = InMemoryReviewStore()
        graph = make_graph(kind)
        coord = HitlCoordinator(graph, reviews=store)
        thread_id = str(uuid.uuid4())
        await coord.process(thread_id, "Which fund?")
        made = Decision(approved=True, reviewer="alice@bank", decided_at=datetime.now(timezone.utc))
        cfg = config(thread_id, SERVICE)
        await graph.ainvoke(Command(resume=made.to_state()), cfg)
        snapshot = await graph.aget_state(cfg, subgraphs=True)
        assert snapshot.next  # still paused
        assert "refused" in str(payload(snapshot).get("refused"))
        review = await coord.review(thread_id)
        assert review.thread_id == thread_id
        assert [r.event for r in await coord.audit_log(thread_id)] == ["paused"]

    async def test_a_claimed_decision_is_applied_and_left_to_the_coordinator(
        self, kind: str
    ) -> None:
        """A decision the store holds claimed is applied; the graph does not record it."""
        store = InMemoryReviewStore()
        graph = make_graph(kind)
        coord = HitlCoordinator(graph, reviews=store)
        thread_id = str(uuid.uuid4())
        paused = await coord.process(thread_id, "Which fund?")
        made = Decision(
            approved=False,
            reviewer="alice@bank",
            reason="no",
            decided_at=datetime.now(timezone.utc),
        )
        await store.claim(
            thread_id,
            claim_id=uuid.uuid4().hex,
            reviewer="alice@bank",
            decision=made.to_state(),
            now=made.decided_at,
            review_id=paused.review_id,
        )
        cfg = config(thread_id, SERVICE)
        await graph.ainvoke(Command(resume=made.to_state()), cfg)
        snapshot = await graph.aget_state(cfg)
        assert not snapshot.next  # finished
        held = await store.get_review(thread_id)
        assert held is not None
        assert held.status == "claimed"  # driven: the coordinator records, not the graph
        # The graph records the reply it sent; the outcome is the coordinator's to record.
        assert [r.event for r in await coord.audit_log(thread_id)] == ["paused", "replied"]


class TestAttachedSla:
    async def test_pauses_the_graph_records_get_the_deadline(self, kind: str) -> None:
        """`attach_authority(sla=...)`: a pause of a run no coordinator drives can expire."""
        store = InMemoryReviewStore()
        graph = attach_authority(make_graph(kind), reviews=store, sla=timedelta(hours=1))
        thread_id = str(uuid.uuid4())
        first = (
            {"customer_message": "Which fund?"}
            if kind == "factory"
            else {"messages": [{"role": "user", "content": "Which fund?"}]}
        )
        await graph.ainvoke(first, {"configurable": {"thread_id": thread_id}})
        review = await store.get_review(thread_id)
        assert review is not None
        assert review.deadline == review.requested_at + timedelta(hours=1)
        coord = HitlCoordinator(graph, reviews=store)
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        results = await coord.expire_overdue(now=later)
        assert [r.status for r in results] == ["rejected"]
        assert [r.event for r in await coord.audit_log(thread_id)] == [
            "paused",
            "replied",
            "expired",
        ]

    def test_sla_must_be_a_positive_timedelta(self) -> None:
        with pytest.raises(ConfigurationError):
            attach_authority(make_graph("factory"), reviews=InMemoryReviewStore(), sla=timedelta(0))
