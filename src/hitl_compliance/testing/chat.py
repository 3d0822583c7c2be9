"""A scripted chat model for testing gated agents: real tool calls, token streaming.

LangChain's `GenericFakeChatModel` drops an `AIMessage`'s `tool_calls` when it
streams, and LangGraph streams a model called inside a node whenever the run
streams messages; a ReAct agent under test then never calls its tools.
[`ScriptedChatModel`][hitl_compliance.testing.chat.ScriptedChatModel] answers
from a script and keeps the calls, streamed or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(BaseChatModel):
    """A chat model that returns its scripted replies in order, tool calls included.

    Each reply is a `str` (plain text) or an `AIMessage` (text and/or
    `tool_calls`). Streamed, the text comes word by word and the tool calls
    with the last chunk. Running out of replies raises `IndexError`, so a test
    sees an unexpected extra model call at once.

    Example:
        ```python
        model = ScriptedChatModel(replies=[
            AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 5}, "id": "c1"}]),
            "Done.",
        ])
        ```
    """

    replies: Sequence[str | AIMessage] = Field(default_factory=list)
    _next: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "hitl-scripted"

    def _take(self) -> AIMessage:
        if self._next >= len(self.replies):
            raise IndexError(
                f"ScriptedChatModel ran out of replies after {len(self.replies)} calls."
            )
        reply = self.replies[self._next]
        self._next += 1
        return AIMessage(reply) if isinstance(reply, str) else reply.model_copy()

    @property
    def calls(self) -> int:
        """How many replies were given so far."""
        return self._next

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._take())])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """The model itself: its replies are scripted, so the tools change nothing.

        LangChain's `create_agent` binds the agent's tools to its model.
        """
        return self

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._take()
        words = str(reply.content).split(" ") if reply.content else [""]
        for index, word in enumerate(words):
            last = index == len(words) - 1
            text = word if last else f"{word} "
            chunk = AIMessageChunk(
                content=text,
                id=reply.id,
                tool_call_chunks=[
                    {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(reply.tool_calls)
                ]
                if last
                else [],
            )
            generation = ChatGenerationChunk(message=chunk)
            if run_manager is not None:
                run_manager.on_llm_new_token(text, chunk=generation)
            yield generation


def _json(args: dict[str, Any]) -> str:
    import json

    return json.dumps(args)
