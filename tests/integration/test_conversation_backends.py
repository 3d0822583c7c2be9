"""A factory graph with a conversation and a chat model drafter, on real SQLite and Postgres.

The whole session runs with `LANGGRAPH_STRICT_MSGPACK=true` (tests/conftest.py),
so these prove that the messages the factory appends survive the strict
checkpoint serializer across a restart.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph.message import add_messages
from pydantic import Field

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    KeywordRule,
    PauseStyle,
    build_compliance_graph,
)
from hitl_compliance.backends import open_backend

RISKY = "Buy now: guaranteed returns of eight percent"
EDIT = "The fund can lose value; an adviser can explain the risks"
LATER = "Happy to help with anything else"
STYLES: list[PauseStyle] = ["interrupt_before", "command_resume"]


class ChatState(ComplianceState):
    """A factory state with a conversation."""

    messages: Annotated[list[AnyMessage], add_messages] = Field(default_factory=list)


class RecordingChatModel(GenericFakeChatModel):
    """A scripted chat model that records the messages of every call."""

    seen: list[list[Any]] = Field(default_factory=list)

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def graph_on(saver: Any, style: PauseStyle, chat: RecordingChatModel) -> Any:
    """The factory graph over `chat` with a conversation state."""
    return build_compliance_graph(
        chat,
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=saver,
        style=style,
        state_schema=ChatState,
    )


async def conversation_survives_restart(url: str, style: PauseStyle) -> None:
    """Pause, reopen the backend, approve with an edit, take another turn; check messages."""
    thread = f"t-{uuid.uuid4().hex}"  # the Postgres schema is shared by the session
    async with open_backend(url) as backend:
        coord = HitlCoordinator(
            graph_on(backend.checkpointer, style, RecordingChatModel(messages=iter([RISKY]))),
            reviews=backend.reviews,
        )
        paused = await coord.process(thread, "Should I buy the fund?")
        assert paused.awaiting_approval
    chat = RecordingChatModel(messages=iter([LATER]))
    async with open_backend(url) as backend:
        coord = HitlCoordinator(
            graph_on(backend.checkpointer, style, chat), reviews=backend.reviews
        )
        done = await coord.approve(thread, reviewer="officer", response=EDIT)
        assert done.agent_response == EDIT
        await coord.process(thread, "Thanks")
        snap = await coord.graph.aget_state({"configurable": {"thread_id": thread}})
    expected = [
        (HumanMessage, "Should I buy the fund?"),
        (AIMessage, EDIT),
        (HumanMessage, "Thanks"),
        (AIMessage, LATER),
    ]
    assert [(type(m), m.content) for m in snap.values["messages"]] == expected
    # The second turn's model saw the restored conversation as message objects.
    assert [(type(m), m.content) for m in chat.seen[0]] == expected[:3]


@pytest.mark.parametrize("style", STYLES)
async def test_sqlite(sqlite_path: Path, style: PauseStyle) -> None:
    """Messages appended by the factory round-trip through a real SQLite file."""
    await conversation_survives_restart(f"sqlite:///{sqlite_path}", style)


@pytest.mark.postgres
@pytest.mark.parametrize("style", STYLES)
async def test_postgres(postgres_dsn: str, style: PauseStyle) -> None:
    """Messages appended by the factory round-trip through a real PostgreSQL server."""
    await conversation_survives_restart(postgres_dsn, style)
