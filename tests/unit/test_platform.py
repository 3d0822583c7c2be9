"""Unit tests of `hitl_compliance.platform`: graphs whose persistence LangGraph Server supplies.

No server here: LangGraph Server's part is played the way it plays it, by
`graph.copy(update={"checkpointer": ...})` on the graph it loaded
(`tests/server/` runs the real `langgraph dev`).
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from hitl_compliance import (
    PLATFORM_CHECKPOINTER,
    AllowAllPolicy,
    ConfigurationError,
    HitlCoordinator,
    KeywordRule,
    PauseStyle,
    build_compliance_graph,
    compliance_gate,
)
from hitl_compliance.platform import PlatformCheckpointer
from hitl_compliance.testing import ScriptedChatModel
from tests.helpers import CLEAN, RISKY, ScriptedDrafter, config_for

GUARANTEE = KeywordRule("guarantee", ["guaranteed returns"])


def platform_graph(drafter: ScriptedDrafter, style: PauseStyle, **kwargs: Any) -> Any:
    """The factory graph as a LangGraph Server deployment builds it."""
    return build_compliance_graph(
        drafter, rules=[GUARANTEE], style=style, checkpointer=PLATFORM_CHECKPOINTER, **kwargs
    )


def served(graph: Any) -> Any:
    """What LangGraph Server runs: a copy of the loaded graph with its own checkpointer."""
    return graph.copy(update={"checkpointer": InMemorySaver()})


class TestSentinel:
    def test_is_a_singleton(self) -> None:
        """Copied or pickled, the sentinel is still itself, and says what it is."""
        assert copy.deepcopy(PLATFORM_CHECKPOINTER) is PLATFORM_CHECKPOINTER
        assert pickle.loads(pickle.dumps(PLATFORM_CHECKPOINTER)) is PLATFORM_CHECKPOINTER
        assert isinstance(PLATFORM_CHECKPOINTER, PlatformCheckpointer)
        assert repr(PLATFORM_CHECKPOINTER) == "PLATFORM_CHECKPOINTER"


class TestBuild:
    def test_compiles_without_a_checkpointer(self, style: PauseStyle) -> None:
        """The graph has no checkpointer of its own, which LangGraph Server requires."""
        graph = platform_graph(ScriptedDrafter(), style)
        assert graph.checkpointer is None
        assert not isinstance(graph.checkpointer, BaseCheckpointSaver)

    def test_none_still_refused_at_build_time(self, style: PauseStyle) -> None:
        """checkpointer=None with a pause is refused at once, and the error names the sentinel."""
        with pytest.raises(ConfigurationError, match="PLATFORM_CHECKPOINTER"):
            build_compliance_graph(ScriptedDrafter(), checkpointer=None, style=style)


class TestRun:
    @pytest.mark.parametrize("pause", [True, False])
    async def test_run_without_a_checkpointer_is_refused(
        self, style: PauseStyle, pause: bool
    ) -> None:
        """Run outside a server, the graph raises before drafting, naming the fix."""
        drafter = ScriptedDrafter()
        graph = platform_graph(drafter, style, pause=pause)
        with pytest.raises(ConfigurationError, match="PLATFORM_CHECKPOINTER") as refused:
            await graph.ainvoke({"customer_message": RISKY}, config_for("t-1"))
        assert "checkpointer" in refused.value.message
        assert drafter.calls == []

    async def test_served_copy_pauses_and_is_decided(self, style: PauseStyle) -> None:
        """With the checkpointer a server installs, a risky reply pauses and a decision lands."""
        graph = served(platform_graph(ScriptedDrafter(), style))
        coord = HitlCoordinator(graph, policy=AllowAllPolicy())
        assert (await coord.process("t-1", RISKY)).status == "paused"
        result = await coord.approve("t-1", reviewer="officer@bank", response="Speak to us.")
        assert result.agent_response == "Speak to us."
        assert (await coord.process("t-2", CLEAN)).status == "completed"


class TestGate:
    def gated_agent(self, style: PauseStyle) -> Any:
        """A user's MessagesState agent with a gate, compiled with no checkpointer."""
        model = ScriptedChatModel(replies=["Guaranteed returns of 8%!"])

        async def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        builder: Any = StateGraph(MessagesState)
        builder.add_node("model", call_model)
        builder.add_node("compliance", compliance_gate([GUARANTEE], style=style))
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_edge("compliance", END)
        return builder.compile()

    async def test_without_a_checkpointer_is_refused(self, style: PauseStyle) -> None:
        """Run outside a server, the gate refuses instead of never pausing."""
        graph = self.gated_agent(style)
        assert graph.checkpointer is None
        with pytest.raises(ConfigurationError, match="no checkpointer"):
            await graph.ainvoke({"messages": [("user", "Is this fund safe?")]}, config_for("t"))

    async def test_served_copy_pauses(self, style: PauseStyle) -> None:
        """With the checkpointer a server installs, the gate pauses on the risky reply."""
        graph = served(self.gated_agent(style))
        config = config_for("t-1")
        await graph.ainvoke({"messages": [("user", "Is this fund safe?")]}, config)
        snapshot = await graph.aget_state(config, subgraphs=True)
        assert snapshot.next == ("compliance",)


class TestCoordinator:
    def test_refuses_the_unserved_graph(self) -> None:
        """HitlCoordinator needs a checkpointer to read pauses back: the loaded graph has none."""
        with pytest.raises(ConfigurationError, match="checkpointer"):
            HitlCoordinator(platform_graph(ScriptedDrafter(), "command_resume"))
