"""Unit tests of the factory's drafters: Runnables, message replies, streams, conversations."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Annotated, Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from pydantic import Field

from hitl_compliance import (
    ComplianceState,
    DraftError,
    HitlCoordinator,
    InvalidInputError,
    KeywordRule,
    PauseStyle,
    build_compliance_graph,
)
from hitl_compliance._drafting import has_conversation, is_chat_model
from hitl_compliance.state import Decision
from tests.helpers import config_for

GUARANTEE = KeywordRule("guarantee", ["guaranteed returns"])
BANNED = KeywordRule("banned", ["insider tip"], verdict="block")
RISKY = "Buy the fund now: guaranteed returns of eight percent every single year"
SAFE = "Our advisers can talk you through the fund's risks"


class ChatState(ComplianceState):
    """A factory state with a conversation, as `MessagesState` has."""

    messages: Annotated[list[AnyMessage], add_messages] = Field(default_factory=list)


class RecordingChatModel(GenericFakeChatModel):
    """A scripted chat model that records the messages of every call."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.seen.append(list(messages))
        return super()._stream(messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.seen.append(list(messages))
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


class NamedChatModel(RecordingChatModel):
    """A scripted chat model that knows its model name, as provider models do."""

    model_name: str = "fake-model-1"


def model(*replies: str | AIMessage) -> RecordingChatModel:
    """A recording chat model answering `replies` in order."""
    return RecordingChatModel(messages=iter(replies))


def build(draft: Any, style: PauseStyle = "interrupt_before", **kwargs: Any) -> Any:
    """A factory graph over `draft` with a review rule and a block rule, on an InMemorySaver."""
    options: dict[str, Any] = {
        "rules": [GUARANTEE, BANNED],
        "checkpointer": InMemorySaver(),
        "style": style,
        **kwargs,
    }
    return build_compliance_graph(draft, **options)


def decision(*, response: str | None = None) -> Decision:
    """An approval by a reviewer, as the coordinator would send it."""
    return Decision(
        approved=True, reviewer="rev", response=response, decided_at=datetime.now(timezone.utc)
    )


async def resume_stream(graph: Any, style: PauseStyle, made: Decision) -> list[Any]:
    """Resume a paused thread `t` with `made` the raw LangGraph way; the messages streamed."""
    config = config_for("t")
    if style == "interrupt_before":
        await graph.aupdate_state(config, {"decision": made.to_state()}, as_node="human_approval")
        graph_input: Any = None
    else:
        graph_input = Command(resume=made.to_state())
    return [chunk async for chunk, _ in graph.astream(graph_input, config, stream_mode="messages")]


def words_in(chunks: list[Any], text: str) -> set[str]:
    """The words of `text` found in any streamed message."""
    streamed = " ".join(str(getattr(c, "content", c)) for c in chunks)
    return {word for word in text.split() if word in streamed.split()}


class TestRunnableDrafters:
    async def test_chat_model_gets_the_customer_message(self, style: PauseStyle) -> None:
        """A chat model gets [HumanMessage(customer_message)]; its reply text is delivered."""
        chat = model(SAFE)
        out = await build(chat, style).ainvoke({"customer_message": "Hello"}, config_for("t"))
        assert out["agent_response"] == SAFE
        assert out["agent_type"] == "llm"
        assert [(type(m), m.content) for m in chat.seen[0]] == [(HumanMessage, "Hello")]

    async def test_chat_model_risky_draft_pauses(self, style: PauseStyle) -> None:
        """A risky reply from a chat model pauses for review like any other draft."""
        graph = build(model(RISKY), style)
        await graph.ainvoke({"customer_message": "Hello"}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        assert snap.values["draft_response"] == RISKY

    async def test_bound_chat_model_is_a_chat_model(self, style: PauseStyle) -> None:
        """A chat model behind with_config() still receives messages."""
        chat = model(SAFE)
        bound = chat.with_config(run_name="drafter")
        assert is_chat_model(bound)
        out = await build(bound, style).ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert out["agent_response"] == SAFE
        assert chat.seen[0][0].content == "Hi"

    async def test_chain_gets_the_state_as_a_dict(self, style: PauseStyle) -> None:
        """An LCEL chain receives the state's fields, so prompt variables fill in."""
        chat = model(SAFE)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "You answer bank customers."), ("human", "{customer_message}")]
        )
        out = await build(prompt | chat, style).ainvoke(
            {"customer_message": "Can I buy the fund?"}, config_for("t")
        )
        assert out["agent_response"] == SAFE
        assert [m.content for m in chat.seen[0]] == [
            "You answer bank customers.",
            "Can I buy the fund?",
        ]

    async def test_runnable_lambda_gets_a_dict(self, style: PauseStyle) -> None:
        """A Runnable that is not a chat model receives a dict of every state field."""
        received: list[Any] = []

        def answer(fields: dict[str, Any]) -> str:
            received.append(fields)
            return SAFE

        await build(RunnableLambda(answer), style).ainvoke(
            {"customer_message": "Hi"}, config_for("t")
        )
        (fields,) = received
        assert isinstance(fields, dict)
        assert fields["customer_message"] == "Hi"
        assert set(fields) == set(ComplianceState.model_fields)

    @pytest.mark.parametrize(
        "reply",
        [
            AIMessage(SAFE),
            AIMessageChunk(content=SAFE),
            AIMessage(content=[{"type": "text", "text": SAFE}]),
            AIMessage(
                content=[
                    {"type": "reasoning", "reasoning": "think"},
                    {"type": "text", "text": SAFE},
                ]
            ),
        ],
        ids=["message", "chunk", "block", "reasoning-and-text"],
    )
    async def test_callable_returning_a_message(self, style: PauseStyle, reply: Any) -> None:
        """A callable returning an AIMessage (or chunk, or text blocks) delivers its text."""
        out = await build(lambda state: reply, style).ainvoke(
            {"customer_message": "Hi"}, config_for("t")
        )
        assert out["agent_response"] == SAFE
        assert out["draft_response"] == SAFE

    async def test_async_callable_returning_a_message(self, style: PauseStyle) -> None:
        """An async callable returning an AIMessage is awaited and its text delivered."""

        async def draft(state: ComplianceState) -> AIMessage:
            return AIMessage(SAFE)

        out = await build(draft, style).ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert out["agent_response"] == SAFE

    async def test_tool_calls_are_refused(self, style: PauseStyle) -> None:
        """A reply asking for tool calls raises DraftError naming the tool."""
        reply = AIMessage("", tool_calls=[{"name": "transfer", "args": {}, "id": "c1"}])
        with pytest.raises(DraftError, match="transfer"):
            await build(lambda state: reply, style).ainvoke(
                {"customer_message": "Hi"}, config_for("t")
            )

    @pytest.mark.parametrize("reply", [42, None, {"text": SAFE}])
    async def test_runnable_returning_non_text(self, style: PauseStyle, reply: Any) -> None:
        """A Runnable whose reply is neither text nor a message raises DraftError."""
        with pytest.raises(DraftError, match=type(reply).__name__):
            await build(RunnableLambda(lambda fields: reply), style).ainvoke(
                {"customer_message": "Hi"}, config_for("t")
            )

    async def test_message_with_nul_is_refused(self, style: PauseStyle) -> None:
        """A message reply carrying NUL is refused as a str reply is."""
        with pytest.raises(DraftError, match="drafter's reply"):
            await build(model("bad\x00text"), style).ainvoke(
                {"customer_message": "Hi"}, config_for("t")
            )


class TestDraftedBy:
    async def test_from_response_metadata(self, style: PauseStyle) -> None:
        """The reply's response_metadata model name is recorded as metadata['drafted_by']."""
        reply = AIMessage(SAFE, response_metadata={"model_name": "gpt-test"})
        out = await build(model(reply), style).ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert out["metadata"]["drafted_by"] == "gpt-test"

    async def test_from_the_model_in_a_chain(self, style: PauseStyle) -> None:
        """Without response metadata, the chain's model's `model_name` is recorded."""
        chain = ChatPromptTemplate.from_template("{customer_message}") | NamedChatModel(
            messages=iter([SAFE])
        )
        out = await build(chain, style).ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert out["metadata"]["drafted_by"] == "fake-model-1"

    async def test_not_for_a_callable(self, style: PauseStyle) -> None:
        """A plain callable drafter records no model name: metadata is unchanged."""
        out = await build(lambda state: SAFE, style).ainvoke(
            {"customer_message": "Hi"}, config_for("t")
        )
        assert "drafted_by" not in out["metadata"]


class TestNoUnreviewedTokens:
    async def test_probe_sees_tokens_outside_the_factory(self) -> None:
        """Control: a chat model in a plain LangGraph node streams its tokens under "messages"."""

        async def node(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            # The config is passed on: before Python 3.11 asyncio does not carry it.
            await model(RISKY).ainvoke([HumanMessage("Hi")], config)
            return {}

        builder: Any = StateGraph(ChatState)
        builder.add_node("talk", node)
        builder.add_edge(START, "talk")
        graph = builder.compile()
        chunks = [
            c async for c, _ in graph.astream({"customer_message": "x"}, stream_mode="messages")
        ]
        assert words_in(chunks, RISKY) == set(RISKY.split())

    @pytest.mark.parametrize("kind", ["chat-model", "chain", "callable", "async-callable"])
    async def test_risky_draft_never_streamed(self, style: PauseStyle, kind: str) -> None:
        """No word of a risky draft from a streaming chat model is on the messages stream."""
        chat = model(RISKY)
        draft: Any
        if kind == "chat-model":
            draft = chat
        elif kind == "chain":
            draft = ChatPromptTemplate.from_template("{customer_message}") | chat
        elif kind == "callable":
            draft = lambda state: chat.invoke([HumanMessage(state.customer_message)])  # noqa: E731
        else:

            async def draft(state: ComplianceState) -> BaseMessage:
                return await chat.ainvoke([HumanMessage(state.customer_message)])

        graph = build(draft, style)
        chunks = [
            c
            async for c, _ in graph.astream(
                {"customer_message": "Hi"}, config_for("t"), stream_mode="messages"
            )
        ]
        assert chunks == []
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        assert snap.values["draft_response"] == RISKY

    async def test_nothing_streamed_after_a_decision(self, style: PauseStyle) -> None:
        """Without a conversation the factory's messages stream stays empty after approval too."""
        graph = build(model(RISKY), style)
        await graph.ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert await resume_stream(graph, style, decision()) == []
        assert (await graph.aget_state(config_for("t"))).values["agent_response"] == RISKY

    async def test_conversation_streams_only_cleared_reply(self, style: PauseStyle) -> None:
        """With a conversation: the customer's message, then only the cleared reply as a message."""
        graph = build(model(RISKY), style, state_schema=ChatState)
        before = [
            c
            async for c, _ in graph.astream(
                {"customer_message": "Hi"}, config_for("t"), stream_mode="messages"
            )
        ]
        assert [(type(m), m.content) for m in before] == [(HumanMessage, "Hi")]
        after = await resume_stream(graph, style, decision(response=SAFE))
        assert [(type(m), m.content) for m in after] == [(AIMessage, SAFE)]
        assert words_in(before + after, RISKY) <= set(SAFE.split()) | {"Hi"}


class TestConversation:
    def test_conversation_detected(self) -> None:
        """Only a `messages` field with a reducer that holds messages is the conversation."""

        class NoReducer(ComplianceState):
            messages: list[AnyMessage] = Field(default_factory=list)

        class Strings(ComplianceState):
            messages: Annotated[list[str], operator.add] = Field(default_factory=list)

        assert has_conversation(ChatState)
        assert not has_conversation(ComplianceState)
        assert not has_conversation(NoReducer)
        assert not has_conversation(Strings)

    async def test_turns_append_to_the_conversation(self, style: PauseStyle) -> None:
        """Each turn appends the customer's message and the delivered reply; the model sees all."""
        chat = model("First answer", "Second answer")
        coord = HitlCoordinator(build(chat, style, state_schema=ChatState))
        await coord.process("t", "First question")
        await coord.process("t", "Second question")
        snap = await coord.graph.aget_state(config_for("t"))
        assert [(type(m), m.content) for m in snap.values["messages"]] == [
            (HumanMessage, "First question"),
            (AIMessage, "First answer"),
            (HumanMessage, "Second question"),
            (AIMessage, "Second answer"),
        ]
        assert [m.content for m in chat.seen[1]] == [
            "First question",
            "First answer",
            "Second question",
        ]

    async def test_input_that_appended_the_message(self, style: PauseStyle) -> None:
        """A turn whose input already ends with the customer's message does not append it twice."""
        graph = build(model(SAFE), style, state_schema=ChatState)
        out = await graph.ainvoke(
            {"customer_message": "Hi", "messages": [HumanMessage("Hi")]}, config_for("t")
        )
        assert [(type(m), m.content) for m in out["messages"]] == [
            (HumanMessage, "Hi"),
            (AIMessage, SAFE),
        ]

    async def test_chain_gets_the_conversation(self, style: PauseStyle) -> None:
        """A chain's MessagesPlaceholder receives the conversation as messages."""
        chat = model(SAFE)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), ("placeholder", "{messages}")]
        )
        await build(prompt | chat, style, state_schema=ChatState).ainvoke(
            {"customer_message": "Hi"}, config_for("t")
        )
        assert [(type(m).__name__, m.content) for m in chat.seen[0]] == [
            ("SystemMessage", "Be brief."),
            ("HumanMessage", "Hi"),
        ]

    async def test_callable_sees_the_customer_message(self, style: PauseStyle) -> None:
        """A plain callable receives the state with the turn's message already appended."""
        seen: list[list[Any]] = []

        def draft(state: ChatState) -> str:
            seen.append(list(state.messages))
            return SAFE

        await build(draft, style, state_schema=ChatState).ainvoke(
            {"customer_message": "Hi"}, config_for("t")
        )
        assert [m.content for m in seen[0]] == ["Hi"]

    async def test_approved_edit_is_the_reply(self, style: PauseStyle) -> None:
        """An approved edit is appended as the AIMessage, never the risky draft."""
        coord = HitlCoordinator(build(model(RISKY), style, state_schema=ChatState))
        await coord.process("t", "Hi")
        await coord.approve("t", reviewer="rev", response=SAFE)
        snap = await coord.graph.aget_state(config_for("t"))
        assert [m.content for m in snap.values["messages"]] == ["Hi", SAFE]

    @pytest.mark.parametrize("rejection", [None, "We cannot help with that."])
    async def test_rejection(self, style: PauseStyle, rejection: str | None) -> None:
        """A rejection appends its message as an AIMessage, or nothing when it is None."""
        coord = HitlCoordinator(
            build(model(RISKY), style, state_schema=ChatState, rejection_message=rejection)
        )
        await coord.process("t", "Hi")
        await coord.reject("t", reviewer="rev", reason="promise")
        snap = await coord.graph.aget_state(config_for("t"))
        expected = ["Hi"] if rejection is None else ["Hi", rejection]
        assert [m.content for m in snap.values["messages"]] == expected

    async def test_blocked_draft_never_in_conversation(self, style: PauseStyle) -> None:
        """A blocked draft leaves only the customer's message and the rejection message."""
        graph = build(
            model("Here is an insider tip"), style, state_schema=ChatState, rejection_message="No."
        )
        out = await graph.ainvoke({"customer_message": "Hi"}, config_for("t"))
        assert [m.content for m in out["messages"]] == ["Hi", "No."]

    async def test_empty_customer_message_appends_nothing(self, style: PauseStyle) -> None:
        """A turn with an empty customer_message appends no empty HumanMessage."""
        out = await build(model(SAFE), style, state_schema=ChatState).ainvoke(
            {"messages": [HumanMessage("Hello")]}, config_for("t")
        )
        assert [m.content for m in out["messages"]] == ["Hello", SAFE]

    async def test_plain_messages_field_untouched(self, style: PauseStyle) -> None:
        """A `messages` field without a reducer is an ordinary field, as before."""

        class Notes(ComplianceState):
            messages: list[str] = Field(default_factory=list)

        out = await build(lambda state: SAFE, style, state_schema=Notes).ainvoke(
            {"customer_message": "Hi", "messages": ["note"]}, config_for("t")
        )
        assert out["messages"] == ["note"]


class TestCoordinatorInput:
    async def test_earlier_messages_as_a_field(self, style: PauseStyle) -> None:
        """process(..., messages=[...]) is validated and becomes the conversation's start."""
        coord = HitlCoordinator(build(model(SAFE), style, state_schema=ChatState))
        await coord.process("t", "Hi", messages=[HumanMessage("Earlier")])
        snap = await coord.graph.aget_state(config_for("t"))
        assert [(type(m), m.content) for m in snap.values["messages"]] == [
            (HumanMessage, "Earlier"),
            (HumanMessage, "Hi"),
            (AIMessage, SAFE),
        ]

    async def test_invalid_messages_refused(self, style: PauseStyle) -> None:
        """A `messages` value that is not a list of messages is refused; nothing is saved."""
        coord = HitlCoordinator(build(model(SAFE), style, state_schema=ChatState))
        with pytest.raises(InvalidInputError):
            await coord.process("t", "Hi", messages=42)
        assert (await coord.graph.aget_state(config_for("t"))).values == {}
