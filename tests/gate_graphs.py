"""User-shaped graphs with a compliance gate in them, shared by the gate tests.

Each builder makes the kind of graph a team already runs (a `MessagesState`
chat agent, a pydantic state with `messages`, the library's own
`ComplianceState` in text mode, a parent with the gate inside a subgraph),
with a scripted chat model that streams its reply token by token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph, add_messages
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field

from hitl_compliance import (
    ComplianceState,
    Decision,
    KeywordRule,
    PauseStyle,
    ReviewStore,
    compliance_gate,
)

RISKY = "Our fund has guaranteed returns of eight percent"
SAFE = "Our fund carries risk; please read the key facts."

Shape = Literal["messages", "pydantic", "compliance_state", "subgraph"]
SHAPES: tuple[Shape, ...] = ("messages", "pydantic", "compliance_state", "subgraph")


class GatedMessages(MessagesState):
    """`MessagesState` plus the gate's outcome key, to route on."""

    compliance: dict[str, Any] | None


class PydanticChat(BaseModel):
    """A pydantic state with an `add_messages` field, as many teams write it."""

    messages: Annotated[list[AnyMessage], add_messages] = Field(default_factory=list)
    compliance: dict[str, Any] | None = None


def rules() -> list[KeywordRule]:
    """The one rule the gate tests use: promised returns need a human."""
    return [KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")]


def scripted_model(*replies: str) -> GenericFakeChatModel:
    """A chat model that streams each reply in turn, word by word."""
    messages: Iterator[AIMessage] = iter([AIMessage(r) for r in replies])
    return GenericFakeChatModel(messages=messages)


def decision(*, approved: bool = True, response: str | None = None) -> Decision:
    """A valid decision by one officer."""
    return Decision(
        approved=approved,
        reviewer="officer@bank",
        response=response,
        decided_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


def build(
    shape: Shape,
    style: PauseStyle,
    checkpointer: BaseCheckpointSaver[Any] | None,
    *replies: str,
    reviews: ReviewStore | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A compiled graph of `shape`: model -> compliance gate -> END (gate on `reviews`)."""
    model = scripted_model(*(replies or (RISKY,)))
    if shape == "compliance_state":
        gate = compliance_gate(rules(), style=style, text_field="draft_response", reviews=reviews)

        async def draft(state: ComplianceState) -> dict[str, Any]:
            reply = await model.ainvoke([HumanMessage(state.customer_message)])
            return {"draft_response": reply.text}

        text_builder: Any = StateGraph(ComplianceState)
        text_builder.add_node("model", draft)
        text_builder.add_node("compliance", gate)
        text_builder.add_edge(START, "model")
        text_builder.add_edge("model", "compliance")
        text_builder.add_edge("compliance", END)
        return text_builder.compile(checkpointer=checkpointer)  # type: ignore[no-any-return]

    gate = compliance_gate(rules(), style=style, reviews=reviews)

    async def call_model(state: Any) -> dict[str, Any]:
        messages = state["messages"] if isinstance(state, dict) else state.messages
        return {"messages": [await model.ainvoke(messages)]}

    schema: Any = PydanticChat if shape == "pydantic" else GatedMessages
    agent: Any = StateGraph(schema)
    agent.add_node("model", call_model)
    agent.add_node("compliance", gate)
    agent.add_edge(START, "model")
    agent.add_edge("model", "compliance")
    agent.add_edge("compliance", END)
    if shape != "subgraph":
        return agent.compile(checkpointer=checkpointer)  # type: ignore[no-any-return]
    parent: Any = StateGraph(GatedMessages)
    parent.add_node("agent", agent.compile())
    parent.add_edge(START, "agent")
    parent.add_edge("agent", END)
    return parent.compile(checkpointer=checkpointer)  # type: ignore[no-any-return]


def graph_input(shape: Shape, text: str = "Should I buy the fund?") -> dict[str, Any]:
    """The first turn's input for a graph of `shape`."""
    if shape == "compliance_state":
        return {"customer_message": text}
    return {"messages": [HumanMessage(text)]}
