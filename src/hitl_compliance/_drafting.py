"""How the factory's `draft` node calls a drafter and reads its reply.

A drafter is a plain callable (sync or async) or a LangChain `Runnable` (a
chat model, or a chain such as `prompt | model`). What each one receives:

* a plain callable: the state (a `ComplianceState` instance), as always;
* a chat model (`BaseChatModel`, also behind `bind(...)` / `with_config(...)`):
  the conversation as messages, `state.messages` where the state has a
  conversation, else `[HumanMessage(state.customer_message)]`;
* any other `Runnable`: the state's fields as a dict, shallow (messages stay
  message objects), so `ChatPromptTemplate` variables such as
  `{customer_message}` and a `MessagesPlaceholder("messages")` work.

Every drafter runs with LangGraph's `nostream` tag in its run config, so
`stream_mode="messages"` carries no token of an unreviewed draft, even from a
chat model called inside a plain callable.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.constants import TAG_NOSTREAM
from pydantic import TypeAdapter, ValidationError

from hitl_compliance._text import plain_text
from hitl_compliance.errors import DraftError
from hitl_compliance.state import ComplianceState

__all__ = [
    "CONVERSATION",
    "Draft",
    "drafter_name",
    "has_conversation",
    "is_chat_model",
    "run_drafter",
    "turn_conversation",
]

CONVERSATION = "messages"
"""The state field the factory treats as the conversation, when it has a reducer."""

_NAME_KEYS = ("model_name", "model")
_MAX_DEPTH = 8


def has_conversation(schema: type[ComplianceState]) -> bool:
    """Whether `schema` has a `messages` field reduced like `add_messages`.

    A `messages` field without a reducer (LangGraph would overwrite it with
    each write) or one that cannot hold messages is an ordinary field: the
    factory neither reads nor writes it, as before drafters could be chat models.
    """
    field = schema.model_fields.get(CONVERSATION)
    if field is None or field.annotation is None:
        return False
    if not any(callable(m) for m in field.metadata):
        return False
    try:
        TypeAdapter(field.annotation).validate_python([HumanMessage("q"), AIMessage("a")])
    except (ValidationError, TypeError):  # TypeError: an annotation pydantic cannot adapt
        return False
    return True


def turn_conversation(state: ComplianceState) -> tuple[list[BaseMessage], HumanMessage | None]:
    """The conversation the drafter sees, and the customer's message to append (or None).

    The turn's input may already have appended the customer's message (a
    caller writing `messages` itself): then the last message is a
    `HumanMessage` with exactly `customer_message` as its text, and nothing is
    appended. Otherwise (the coordinator's turns, which set only
    `customer_message`) the draft node appends it. An empty `customer_message`
    appends nothing.
    """
    conversation = list(getattr(state, CONVERSATION) or ())
    text = state.customer_message
    if not text:
        return conversation, None
    last = conversation[-1] if conversation else None
    if isinstance(last, HumanMessage) and _text_of(last) == text:
        return conversation, None
    human = HumanMessage(text)
    return [*conversation, human], human


def is_chat_model(draft: Any) -> bool:
    """Whether `draft` is a chat model, possibly behind `bind()` / `with_config()`."""
    for _ in range(_MAX_DEPTH):
        if isinstance(draft, BaseChatModel):
            return True
        if not isinstance(draft, RunnableBinding):
            return False
        draft = draft.bound
    return False


@dataclass(frozen=True, slots=True)
class Draft:
    """The drafter's reply as text, and the model that wrote it where known."""

    text: str
    model_name: str | None


async def run_drafter(draft: Any, state: ComplianceState, *, conversation: bool) -> Draft:
    """Call `draft` on `state` as its kind expects; its reply as a checked `Draft`.

    Raises:
        DraftError: The reply is not text (or a message with text content), asks
            for tool calls, or holds characters no store can keep.
    """
    with _quiet_run() as config:
        if isinstance(draft, Runnable):
            reply = await draft.ainvoke(_runnable_input(draft, state, conversation), config)
        else:
            reply = draft(state)
            if inspect.isawaitable(reply):
                reply = await reply
    text = _reply_text(reply)
    try:
        plain_text(text)
    except ValueError as exc:
        # Caught here, before a pause, or the review row could not be written.
        raise DraftError(f"The drafter's reply {exc}; clean it before returning it.") from None
    return Draft(text, _model_name(draft, reply))


@contextmanager
def _quiet_run() -> Iterator[RunnableConfig]:
    """The run's config plus the `nostream` tag, in context while the drafter runs.

    LangGraph's messages stream skips any chat model run tagged `nostream`;
    a model called without an explicit config (inside a plain callable)
    inherits the tag from the context variable set here.
    """
    parent: dict[str, Any] = dict(var_child_runnable_config.get() or {})
    tags = list(parent.get("tags") or ())
    if TAG_NOSTREAM not in tags:
        tags.append(TAG_NOSTREAM)
    config = cast("RunnableConfig", {**parent, "tags": tags})
    token = var_child_runnable_config.set(config)
    try:
        yield config
    finally:
        var_child_runnable_config.reset(token)


def _runnable_input(draft: Runnable[Any, Any], state: ComplianceState, conversation: bool) -> Any:
    if is_chat_model(draft):
        if conversation:
            return list(getattr(state, CONVERSATION))
        return [HumanMessage(state.customer_message)]
    # Shallow, unlike model_dump(): message objects stay messages for a MessagesPlaceholder.
    return dict(state)


def _text_of(message: BaseMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else str(message.text)


def _reply_text(reply: Any) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseMessage):
        if isinstance(reply, AIMessage) and reply.tool_calls:
            names = sorted({call["name"] for call in reply.tool_calls})
            raise DraftError(
                f"The drafter asked for tool calls {names}; the factory graph delivers "
                "text only. Run tools in your own graph and gate it with compliance_gate()."
            )
        return _text_of(reply)
    raise DraftError(
        f"The drafter returned {type(reply).__name__}; it must return the reply as str "
        "or as a message (AIMessage) with text content."
    )


def drafter_name(reply: BaseMessage) -> str | None:
    """The model that wrote `reply`, from its `response_metadata`, else None."""
    return _model_name(None, reply)


def _model_name(draft: Any, reply: Any) -> str | None:
    """The model's name from the reply's metadata, else from the drafter itself."""
    if isinstance(reply, BaseMessage):
        for key in _NAME_KEYS:
            name = reply.response_metadata.get(key)
            if isinstance(name, str) and name:
                return _storable(name)
    return _name_of_runnable(draft, 0)


def _name_of_runnable(runnable: Any, depth: int) -> str | None:
    if depth > _MAX_DEPTH or not isinstance(runnable, Runnable):
        return None
    for key in _NAME_KEYS:
        name = getattr(runnable, key, None)
        if isinstance(name, str) and name:
            return _storable(name)
    if isinstance(runnable, RunnableBinding):
        return _name_of_runnable(runnable.bound, depth + 1)
    if isinstance(runnable, RunnableSequence):
        # The last model in the chain wrote the reply (a parser may follow it).
        for step in reversed(runnable.steps):
            name = _name_of_runnable(step, depth + 1)
            if name is not None:
                return name
    return None


def _storable(name: str) -> str | None:
    try:
        return plain_text(name)
    except ValueError:
        return None
