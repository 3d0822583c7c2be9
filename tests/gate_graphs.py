"""User-shaped graphs with a compliance gate in them, shared by the gate tests.

Each builder makes the kind of graph a team already runs (a `MessagesState`
chat agent, a pydantic state with `messages`, the library's own
`ComplianceState` in text mode, a parent with the gate inside a subgraph),
with a scripted chat model that streams its reply token by token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph, add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, Field

from hitl_compliance import (
    ComplianceState,
    Decision,
    KeywordRule,
    PauseStyle,
    ReviewStore,
    ToolCallRule,
    compliance_gate,
    route_after_gate,
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


def decision(
    *,
    approved: bool = True,
    response: str | None = None,
    tool_args: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Decision:
    """A valid decision by one officer."""
    return Decision(
        approved=approved,
        reviewer="officer@bank",
        response=response,
        tool_args=tool_args,
        reason=reason,
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


# --- a ReAct agent: model -> gate -> tools -> model, with real tool calls -------------


class ScriptedToolModel(BaseChatModel):
    """A chat model that returns the next scripted `AIMessage` (tool calls included).

    `GenericFakeChatModel` drops tool calls when streamed; this one never streams.
    """

    replies: list[AIMessage]
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tools"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        reply = self.replies[len(self.seen) - 1]
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:  # type: ignore[override]
        return self


def call(name: str, call_id: str, **args: Any) -> ToolCall:
    """A tool call as a chat model proposes it."""
    return ToolCall(name=name, args=args, id=call_id, type="tool_call")


def transfer_rule() -> ToolCallRule:
    """Transfers above GBP 1,000 need a payments officer; above 25,000 are blocked."""
    return ToolCallRule(
        "transfer_limits",
        "transfer",
        argument="amount_gbp",
        review_above=1_000,
        block_above=25_000,
        reason="moves customer money",
    )


class Bank:
    """The tools' side effects, counted."""

    def __init__(self) -> None:
        self.transfers: list[tuple[int, str]] = []
        self.lookups = 0

    def tools(self) -> list[Any]:
        """`transfer` and `balance` as LangChain tools."""

        @tool
        def transfer(amount_gbp: int, to_account: str) -> str:
            """Send money to an account."""
            self.transfers.append((amount_gbp, to_account))
            return f"sent {amount_gbp} GBP to {to_account}"

        @tool
        def balance() -> str:
            """The customer's balance."""
            self.lookups += 1
            return "balance: 40,000 GBP"

        return [transfer, balance]


def build_react(
    style: PauseStyle,
    checkpointer: BaseCheckpointSaver[Any] | None,
    bank: Bank,
    *replies: AIMessage,
    reviews: ReviewStore | None = None,
) -> tuple[CompiledStateGraph[Any, Any, Any, Any], ScriptedToolModel]:
    """model -> compliance -> (tools -> model | model | END), gated by `transfer_rule`."""
    model = ScriptedToolModel(replies=list(replies))

    async def call_model(state: GatedMessages) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder: Any = StateGraph(GatedMessages)
    builder.add_node("model", call_model)
    gate = compliance_gate([*rules(), transfer_rule()], style=style, reviews=reviews)
    builder.add_node("compliance", gate)
    builder.add_node("tools", ToolNode(bank.tools()))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer), model


# --- the graph kinds the testing kit's suites run over ------------------------------

GraphKind = Literal["factory", "react", "subgraph"]
GRAPH_KINDS: tuple[GraphKind, ...] = ("factory", "react", "subgraph")
"""(a) `build_compliance_graph`, (b) a gated `MessagesState` ReAct agent, (c) that agent
as a subgraph of a parent graph."""

PAY_SMALL = "pay my gym"
PAY_BIG = "pay my landlord"
PAY_HUGE = "pay my yacht broker"
PAYMENTS: dict[str, tuple[int, str]] = {
    PAY_SMALL: (500, "11111111"),  # under the review limit: runs at once
    PAY_BIG: (5_000, "12345678"),  # a payments officer must approve
    PAY_HUGE: (40_000, "87654321"),  # blocked: never runs
}
TOOL_EDIT = {"amount_gbp": 900, "to_account": "12345678"}
"""An edit of `PAY_BIG`'s call the rules let through."""


class ConversationModel(BaseChatModel):
    """A chat model whose reply is a function of the conversation alone.

    So a graph rebuilt in a new process (or after a crash) replies exactly as
    before. A customer message in `script` gets that text; one in `payments`
    a `transfer` call (its id numbered by the customer turn); after tool
    results, a short clean summary.
    """

    script: dict[str, str]
    payments: dict[str, tuple[int, str]] = Field(default_factory=dict)
    parallel: dict[str, list[tuple[int, str]]] = Field(default_factory=dict)
    """Customer message -> several transfers proposed in one message (one call each)."""

    @property
    def _llm_type(self) -> str:
        return "conversation"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        turn = sum(isinstance(m, HumanMessage) for m in messages)
        if isinstance(last, HumanMessage):
            text = str(last.content)
            if text in self.payments:
                amount, account = self.payments[text]
                pay = call("transfer", f"pay-{turn}", amount_gbp=amount, to_account=account)
                reply = AIMessage("", tool_calls=[pay])
            elif text in self.parallel:
                calls = [
                    call("transfer", f"pay-{turn}-{i}", amount_gbp=amount, to_account=account)
                    for i, (amount, account) in enumerate(self.parallel[text])
                ]
                reply = AIMessage("", tool_calls=calls)
            else:
                reply = AIMessage(self.script.get(text, "Thanks, we will get back to you."))
        else:
            reply = AIMessage(f"Done: {last.content}.")
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ConversationModel:  # type: ignore[override]
        return self


def build_agent(
    kind: Literal["react", "subgraph"],
    style: PauseStyle,
    checkpointer: BaseCheckpointSaver[Any],
    gate_rules: Sequence[Any],
    script: dict[str, str],
    *,
    bank: Bank | None = None,
    rejection_message: str | None = None,
    reviews: ReviewStore | None = None,
    parallel: dict[str, list[tuple[int, str]]] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A gated ReAct agent (model -> gate -> tools -> model), alone or as a parent's subgraph.

    The gate checks `gate_rules` plus `transfer_rule()` (and answers to `reviews`
    when given); the model answers by `script`, `PAYMENTS` and `parallel` (several
    transfers in one message).
    """
    model = ConversationModel(script=script, payments=PAYMENTS, parallel=parallel or {})

    async def call_model(state: GatedMessages) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    gate = compliance_gate(
        [*gate_rules, transfer_rule()],
        style=style,
        rejection_message=rejection_message,
        reviews=reviews,
    )
    builder: Any = StateGraph(GatedMessages)
    builder.add_node("model", call_model)
    builder.add_node("compliance", gate)
    builder.add_node("tools", ToolNode((bank or Bank()).tools()))
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
    builder.add_edge("tools", "model")
    if kind == "react":
        return builder.compile(checkpointer=checkpointer)  # type: ignore[no-any-return]
    parent: Any = StateGraph(GatedMessages)
    parent.add_node("agent", builder.compile())
    parent.add_edge(START, "agent")
    parent.add_edge("agent", END)
    return parent.compile(checkpointer=checkpointer)  # type: ignore[no-any-return]
