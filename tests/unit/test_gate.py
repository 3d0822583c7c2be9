"""The compliance gate in user-shaped graphs: outcomes, stream safety, safe resumes."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from pydantic import ValidationError

from hitl_compliance import (
    ConfigurationError,
    GateOutcome,
    InvalidDecisionError,
    KeywordRule,
    PauseStyle,
    compliance_gate,
    protect_stream,
)
from hitl_compliance.gate import DEFAULT_REJECTION, gate_options, gate_pauses, is_gate, resume_gate
from tests.gate_graphs import (
    RISKY,
    SAFE,
    SHAPES,
    Shape,
    build,
    decision,
    graph_input,
    rules,
)

CONFIG: Any = {"configurable": {"thread_id": "t1"}}


def reply_of(shape: Shape, values: Any) -> str | None:
    """What may reach the customer: the last AI message, or the text field."""
    values = values if isinstance(values, dict) else dict(values)
    if shape == "compliance_state":
        text: str | None = values["draft_response"]
        return text
    last = values["messages"][-1]
    assert isinstance(last, AIMessage)
    return str(last.content)


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> Shape:
    """Each graph shape the gate must work in."""
    value: Shape = request.param
    return value


class TestOutcomes:
    async def test_safe_reply_passes_at_once(self, shape: Shape, style: PauseStyle) -> None:
        """A draft with no findings is let through unchanged, without a pause."""
        graph = build(shape, style, InMemorySaver(), SAFE)
        out = await graph.ainvoke(graph_input(shape), CONFIG)
        assert reply_of(shape, out) == SAFE
        assert await gate_pauses(graph, CONFIG) == []
        assert (await graph.aget_state(CONFIG)).next == ()
        if shape != "compliance_state":
            outcome = GateOutcome.from_state(out)
            assert outcome is not None
            assert outcome.status == "clear"
            assert outcome.delivered == SAFE

    async def test_risky_reply_pauses_with_findings(self, shape: Shape, style: PauseStyle) -> None:
        """A risky draft stops the thread at the gate; the pause carries the findings."""
        graph = build(shape, style, InMemorySaver())
        await graph.ainvoke(graph_input(shape), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        assert pause.style == style
        assert pause.outcome.status == "pending"
        assert pause.outcome.draft == RISKY
        assert [f.rule for f in pause.outcome.findings] == ["guarantee"]
        assert pause.outcome.findings[0].evidence == ("guaranteed returns",)
        assert pause.outcome.customer_message == "Should I buy the fund?"

    @pytest.mark.parametrize(
        ("approved", "response", "status"),
        [
            (True, None, "approved"),
            (True, "Please read the key facts.", "edited"),
            (False, None, "rejected"),
        ],
    )
    async def test_decision_sets_what_reaches_the_customer(
        self, shape: Shape, style: PauseStyle, approved: bool, response: str | None, status: str
    ) -> None:
        """After a decision the reply is the draft, the edit, or the rejection message."""
        graph = build(shape, style, InMemorySaver())
        await graph.ainvoke(graph_input(shape), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        out = await resume_gate(
            graph, CONFIG, pause, decision(approved=approved, response=response)
        )
        expected = {"approved": RISKY, "edited": response, "rejected": DEFAULT_REJECTION}[status]
        assert reply_of(shape, out) == expected
        assert (await graph.aget_state(CONFIG)).next == ()
        if shape in {"messages", "pydantic"}:
            messages = out["messages"] if isinstance(out, dict) else out.messages
            assert [type(m) for m in messages] == [HumanMessage, AIMessage]
            outcome = GateOutcome.from_state(out)
            assert outcome is not None
            assert outcome.status == status
            assert outcome.decision is not None
            assert outcome.decision.reviewer == "officer@bank"

    async def test_outcome_on_the_message_without_a_key(self, style: PauseStyle) -> None:
        """On plain MessagesState the outcome rides on the cleared message's metadata."""
        gate = compliance_gate(rules(), style=style)

        async def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [AIMessage(RISKY)]}

        builder: Any = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_node("compliance", gate)
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_edge("compliance", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        await graph.ainvoke({"messages": [HumanMessage("hi")]}, CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        out = await resume_gate(graph, CONFIG, pause, decision(approved=False))
        assert "compliance" not in out
        outcome = GateOutcome.from_state(out)
        assert outcome is not None
        assert outcome.status == "rejected"
        assert outcome.review_id == pause.review_id

    async def test_block_is_rejected_without_a_pause(self, style: PauseStyle) -> None:
        """A `block` finding sends the rejection message at once."""
        gate = compliance_gate([KeywordRule("pin", ["your pin"], verdict="block")], style=style)

        async def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [AIMessage("Send me your PIN")]}

        builder: Any = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_node("compliance", gate)
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_edge("compliance", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        out = await graph.ainvoke({"messages": [HumanMessage("hi")]}, CONFIG)
        assert out["messages"][-1].content == DEFAULT_REJECTION
        outcome = GateOutcome.from_state(out)
        assert outcome is not None
        assert outcome.status == "blocked"
        assert outcome.decision is None

    async def test_tool_calls_survive_approval_and_go_on_rejection(self, style: PauseStyle) -> None:
        """The cleared message keeps the draft's tool calls unless the reply was rejected."""
        call = {"name": "transfer", "args": {"amount": 10}, "id": "call-1", "type": "tool_call"}

        async def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [AIMessage(RISKY, tool_calls=[call])]}

        for approved in (True, False):
            builder: Any = StateGraph(MessagesState)
            builder.add_node("model", model)
            builder.add_node("compliance", compliance_gate(rules(), style=style))
            builder.add_edge(START, "model")
            builder.add_edge("model", "compliance")
            builder.add_edge("compliance", END)
            graph = builder.compile(checkpointer=InMemorySaver())
            await graph.ainvoke({"messages": [HumanMessage("hi")]}, CONFIG)
            [pause] = await gate_pauses(graph, CONFIG)
            out = await resume_gate(graph, CONFIG, pause, decision(approved=approved))
            calls = out["messages"][-1].tool_calls
            assert [c["id"] for c in calls] == (["call-1"] if approved else [])


class TestStream:
    async def test_unprotected_graph_streams_the_draft(self) -> None:
        """The LangGraph trap the gate exists for: without protection the draft streams."""
        graph = build("messages", "command_resume", InMemorySaver())
        text = await _streamed(graph, graph_input("messages"))
        assert "guaranteed" in text

    async def test_no_draft_token_before_decision(self, shape: Shape, style: PauseStyle) -> None:
        """With protect_stream, no word of the risky draft streams; the cleared reply does."""
        graph = protect_stream(build(shape, style, InMemorySaver()))
        before = await _streamed(graph, graph_input(shape), subgraphs=True)
        for word in ("guaranteed", "returns", "eight"):
            assert word not in before
        [pause] = await gate_pauses(graph, CONFIG)
        edited = "You could lose money; please read the key facts."
        if style == "interrupt_before":
            await graph.aupdate_state(
                pause.config,
                {pause.key: {**pause.raw, "decision": decision(response=edited).to_state()}},
                as_node="human_approval",
            )
            resume: Any = None
        else:
            assert pause.interrupt_id is not None
            resume = Command(resume={pause.interrupt_id: decision(response=edited).to_state()})
        after = await _streamed(graph, resume)
        assert "guaranteed" not in after
        if shape != "compliance_state":
            assert edited in after

    async def test_clear_reply_streams_as_the_gates_message(self, style: PauseStyle) -> None:
        """A clean draft appears on the messages stream once, from the gate."""
        graph = protect_stream(build("messages", style, InMemorySaver(), SAFE))
        chunks = []
        async for chunk, meta in graph.astream(
            graph_input("messages"), CONFIG, stream_mode="messages"
        ):
            chunks.append((chunk.content, meta["langgraph_node"]))
        assert chunks == [(SAFE, "compliance")]

    def test_protect_stream_is_idempotent(self) -> None:
        """Marking twice leaves one copy of each tag; the gate itself is not marked."""
        graph = protect_stream(protect_stream(build("messages", "command_resume", InMemorySaver())))
        assert sorted(graph.nodes["model"].tags) == ["langsmith:hidden", "nostream"]
        assert not graph.nodes["compliance"].tags


async def _streamed(graph: Any, inputs: Any, *, subgraphs: bool = False) -> str:
    """Everything the messages stream carried, concatenated."""
    text = []
    async for item in graph.astream(inputs, CONFIG, stream_mode="messages", subgraphs=subgraphs):
        chunk = item[1][0] if subgraphs else item[0]
        text.append(str(chunk.content))
    return " ".join(text)


class TestResumeCannotPoison:
    async def test_invalid_command_is_refused_before_it_is_saved(self) -> None:
        """A bad Command(resume=...) raises, and a valid decision afterwards works."""
        graph = build("messages", "command_resume", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        assert pause.interrupt_id is not None
        for bad in ({"approved": "maybe"}, "yes", {"approved": True}, None):
            with pytest.raises(ValidationError):
                await graph.ainvoke(Command(resume={pause.interrupt_id: bad}), CONFIG)
            [again] = await gate_pauses(graph, CONFIG)
            assert again.interrupt_id == pause.interrupt_id
        out = await resume_gate(graph, CONFIG, pause, decision())
        assert out["messages"][-1].content == RISKY

    async def test_invalid_static_decision_goes_back_to_the_pause(self) -> None:
        """A bad decision written with update_state is refused; the thread stays decidable."""
        graph = build("messages", "interrupt_before", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        await graph.aupdate_state(
            pause.config,
            {pause.key: {**pause.raw, "decision": {"approved": "maybe"}}},
            as_node="human_approval",
        )
        await graph.ainvoke(None, CONFIG)
        [again] = await gate_pauses(graph, CONFIG)
        assert again.review_id == pause.review_id
        assert again.outcome.refused is not None
        assert "invalid decision" in again.outcome.refused
        out = await resume_gate(graph, CONFIG, again, decision(approved=False))
        assert out["messages"][-1].content == DEFAULT_REJECTION

    async def test_static_resume_without_a_decision_is_loud(self) -> None:
        """ainvoke(None) alone on a static gate raises, and the pause still takes a decision."""
        graph = build("messages", "interrupt_before", InMemorySaver())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        with pytest.raises(InvalidDecisionError, match="without a decision"):
            await graph.ainvoke(None, CONFIG)
        [pause] = await gate_pauses(graph, CONFIG)
        out = await resume_gate(graph, CONFIG, pause, decision())
        assert out["messages"][-1].content == RISKY


class TestConfiguration:
    async def test_no_checkpointer_is_loud(self, style: PauseStyle) -> None:
        """A parent compiled without a checkpointer fails at the gate instead of never pausing."""
        graph = build("messages", style, None)
        with pytest.raises(ConfigurationError, match="no checkpointer"):
            await graph.ainvoke(graph_input("messages"))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"style": "sometimes"},
            {"key": "not a key"},
            {"text_field": "messages"},
            {"rejection_message": "  "},
            {"name": ""},
        ],
    )
    def test_bad_options(self, kwargs: dict[str, Any]) -> None:
        """Each bad option is a ConfigurationError at build time."""
        with pytest.raises(ConfigurationError):
            compliance_gate(rules(), **kwargs)

    def test_bad_rules(self) -> None:
        """Duplicate names, non-rules and fields outside the view are refused."""
        with pytest.raises(ConfigurationError, match="unique"):
            compliance_gate([*rules(), *rules()])
        with pytest.raises(ConfigurationError, match="not a ComplianceRule"):
            compliance_gate([object()])  # type: ignore[list-item]
        with pytest.raises(ConfigurationError, match="reads field"):
            compliance_gate([KeywordRule("x", ["y"], field="account")])

    def test_copies_are_the_same_gate(self) -> None:
        """copy() and with_config() keep the gate's identity and options."""
        gate = compliance_gate(rules(), style="interrupt_before", key="review")
        for other in (gate.copy(), gate.with_config(tags=["x"])):
            assert is_gate(other)
            assert gate_options(other).key == "review"
        assert not is_gate(object())
        with pytest.raises(ConfigurationError):
            gate_options(object())
