"""Gates on memory, SQLite and PostgreSQL: every pause is recorded, no raw resume goes unchecked.

A gate given the review store records a pause made by a raw `ainvoke` (no
coordinator involved) once, so a coordinator on the same store lists it; a
resume that bypasses the coordinator (a raw `Command`, or `update_state` +
`ainvoke(None)`) passes the coordinator's checks inside the graph: an
unauthorised one is refused (audited) and the thread stays at the same pause;
an authorised one is claimed, applied and recorded once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from hitl_compliance import (
    AllowAllPolicy,
    Backend,
    Decision,
    HitlCoordinator,
    PauseStyle,
    RoleBasedPolicy,
    open_backend,
)
from hitl_compliance._replies import sha256_text
from hitl_compliance.gate import gate_pauses
from tests.gate_graphs import RISKY, Shape, build, decision, graph_input
from tests.helpers import FakeClock


def config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


EDIT = "Past performance is no guide; please read the key facts."


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A checkpointer and review store from one URL, on each backend in turn."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gate.db'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    async with open_backend(url) as opened:
        yield opened


@pytest.fixture(params=["messages", "subgraph"])
def shape(request: pytest.FixtureRequest) -> Shape:
    """A gate as a node, and a gate inside a subgraph."""
    value: Shape = request.param
    return value


async def raw_resume(graph: Any, style: PauseStyle, cfg: Any, made: Decision) -> None:
    """Resume the paused gate the way a script would, bypassing the coordinator."""
    [pause] = await gate_pauses(graph, cfg)
    value = made.to_state()
    if style == "interrupt_before":
        await graph.aupdate_state(
            pause.config, {pause.key: {**pause.raw, "decision": value}}, as_node="human_approval"
        )
        await graph.ainvoke(None, cfg)
    else:
        assert pause.interrupt_id is not None
        await graph.ainvoke(Command(resume={pause.interrupt_id: value}), cfg)


def by(reviewer: str, *roles: str, response: str | None = None) -> Decision:
    return decision(response=response).model_copy(
        update={"reviewer": reviewer, "roles": list(roles)}
    )


class TestRawPauses:
    async def test_raw_pause_is_pending_and_decided_through_the_same_checks(
        self, backend: Backend, style: PauseStyle, shape: Shape
    ) -> None:
        """A raw pause is in pending(); a raw resume is refused or claimed as approve() would."""
        thread = f"raw-{uuid.uuid4().hex}"
        cfg = config(thread)
        graph = build(shape, style, backend.checkpointer, reviews=backend.reviews)
        await graph.ainvoke(graph_input(shape), cfg)
        coord = HitlCoordinator(
            graph,
            reviews=backend.reviews,
            policy=RoleBasedPolicy(rule_roles={"guarantee": "compliance"}),
            clock=FakeClock(),
        )
        [pending] = [p for p in await coord.pending() if p.thread_id == thread]
        [pause] = await gate_pauses(graph, cfg)
        assert pending.review_id == pause.review_id
        assert pending.draft_response == RISKY

        # Without the rule's role: refused inside the graph, audited, still paused there.
        await raw_resume(graph, style, cfg, by("intern@bank", response="Sneaked past review"))
        [still] = await gate_pauses(graph, cfg)
        assert still.review_id == pause.review_id
        assert still.outcome.refused is not None
        assert "may not decide" in still.outcome.refused
        [again] = [p for p in await coord.pending() if p.thread_id == thread]
        assert again.review_id == pause.review_id
        messages = (await graph.aget_state(cfg)).values["messages"]
        assert all("Sneaked" not in str(m.content) for m in messages)

        # With it: claimed, applied and recorded once, as approve() would.
        await raw_resume(graph, style, cfg, by("officer@bank", "compliance", response=EDIT))
        assert await gate_pauses(graph, cfg) == []
        last = (await graph.aget_state(cfg)).values["messages"][-1]
        assert isinstance(last, AIMessage)
        assert last.content == EDIT
        rows = await coord.audit_log(thread)
        # The gate records the outcome, then the reply it sends (one `replied` row).
        assert [row.event for row in rows] == ["paused", "denied", "approved", "replied"]
        assert (rows[1].actor, rows[2].actor, rows[3].actor) == (
            "intern@bank",
            "officer@bank",
            "officer@bank",
        )
        assert rows[2].payload["delivered"] == EDIT
        assert rows[2].payload["via"] == "graph"
        assert rows[3].payload["outcome"] == "edited"
        assert rows[3].payload["delivered_sha256"] == sha256_text(EDIT)
        assert [p for p in await coord.pending() if p.thread_id == thread] == []
        assert (await coord.verify_audit(thread)).ok

    async def test_coordinator_turns_on_a_store_aware_gate(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """Under the coordinator the gate records nothing twice and accepts its decisions."""
        graph = build("messages", style, backend.checkpointer, reviews=backend.reviews)
        coord = HitlCoordinator(
            graph, reviews=backend.reviews, policy=AllowAllPolicy(), clock=FakeClock()
        )
        thread = f"t-{uuid.uuid4().hex}"
        assert (await coord.process(thread, "Should I buy?")).status == "paused"
        result = await coord.reject(thread, reviewer="officer@bank", reason="promises returns")
        assert result.status == "rejected"
        events = [row.event for row in await coord.audit_log(thread)]
        assert events == ["paused", "replied", "rejected"]
