"""No resume can poison a thread: invalid and hand-written resumes are refused before saving."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import ValidationError

from hitl_compliance import (
    AllowAllPolicy,
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    build_compliance_graph,
    gate_pauses,
)
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


class TestFactory:
    @pytest.mark.parametrize("bad", [{"approved": "maybe"}, "yes", SEED])
    async def test_invalid_resume_is_refused_and_the_thread_stays_decidable(self, bad: Any) -> None:
        """A bad Command(resume=...) raises before LangGraph saves it; approve() works after."""
        coord = factory("command_resume")
        await coord.process("t", "hi")
        with pytest.raises(ValidationError):
            await coord.graph.ainvoke(Command(resume=bad), CONFIG)
        result = await coord.approve("t", reviewer="officer@bank")
        assert result.status == "completed"

    async def test_hand_written_resume_names_the_supported_call(self) -> None:
        """The seed pattern's resume shape is refused with the call that replaces it."""
        coord = factory("command_resume")
        await coord.process("t", "hi")
        with pytest.raises(ValidationError, match=r"HitlCoordinator\.approve"):
            await coord.graph.ainvoke(Command(resume=SEED), CONFIG)

    async def test_direct_state_write_is_refused_in_the_static_style(self) -> None:
        """Writing agent_response/is_compliant then ainvoke(None) raises, naming approve()."""
        coord = factory("interrupt_before")
        await coord.process("t", "hi")
        await coord.graph.aupdate_state(
            CONFIG,
            {"agent_response": "Approved", "is_compliant": True, "agent_type": "human_admin"},
        )
        with pytest.raises(InvalidDecisionError, match=r"HitlCoordinator\.approve"):
            await coord.graph.ainvoke(None, CONFIG)
        assert [r.thread_id for r in await coord.pending()] == ["t"]


class TestGate:
    async def test_hand_written_resume_names_the_supported_call(self) -> None:
        """A gate refuses the seed shape too, before saving, and stays at the same pause."""
        graph = build("messages", "command_resume", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        assert pause.interrupt_id is not None
        with pytest.raises(ValidationError, match=r"HitlCoordinator\.approve"):
            await graph.ainvoke(Command(resume={pause.interrupt_id: SEED}), CONFIG)
        [again] = await gate_pauses(graph, CONFIG)
        assert again.interrupt_id == pause.interrupt_id
