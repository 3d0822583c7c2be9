"""The one `interrupt()` of every pause the library makes, and what it knows of LangGraph's resume.

LangGraph validates a resume value against the pause's `response_schema` before
it saves it, so an invalid one (from any caller) is refused and can never
poison the thread. A call that may receive a value passes [`DecisionResume`][],
which validates it as a [`Decision`][hitl_compliance.Decision]. A call that can
only pause passes none: LangGraph would rebuild the JSON schema at each pause
and deep-copy it into every checkpoint event of the run (1 % of a whole
pause-approve cycle for even a flat schema), and the payload's `description`
already says what answers a review. (Where the scratchpad cannot be read, the
validating call pauses and shows the flat [`RESUME_SCHEMA`][].)

The node's scratchpad (`__pregel_scratchpad`) is read defensively: where it
cannot be read, every call takes the validating path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt
from pydantic import GetJsonSchemaHandler, RootModel, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from hitl_compliance.state import Decision, as_decision

__all__ = ["RESUME_SCHEMA", "DecisionResume", "ask", "replayed"]

RESUME_SCHEMA: dict[str, Any] = {
    "title": "Decision",
    "type": "object",
    "required": ["approved", "reviewer", "decided_at"],
    "description": (
        "A hitl_compliance Decision: approved (bool), reviewer, decided_at (ISO 8601), "
        "and response (the approved text, edited or not) or reason (a rejection's), and "
        "reason_code where the reason policy needs one; its "
        "full JSON schema is Decision.model_json_schema(). A LangChain HITLResponse or "
        "an Agent Inbox response is accepted too."
    ),
}
"""The JSON schema of [`DecisionResume`][]: flat, the fields a reviewer fills (the full
one is `Decision.model_json_schema()`)."""


class DecisionResume(RootModel[Decision]):
    """The `response_schema` of every pause: a resume value read as a `Decision`.

    A model, because LangGraph builds a `TypeAdapter` of the schema at every
    `interrupt()` call, and for a model pydantic reuses the one it built.
    """

    @model_validator(mode="before")
    @classmethod
    def _read(cls, value: Any) -> Decision:
        return as_decision(value)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(RESUME_SCHEMA)


def _scratchpad(config: RunnableConfig) -> tuple[list[Any], Callable[[bool], Any]] | None:
    """This task's saved resume values and its peek at a new one, or None if unreadable."""
    scratchpad = (config.get("configurable") or {}).get("__pregel_scratchpad")
    resume = getattr(scratchpad, "resume", None)
    peek = getattr(scratchpad, "get_null_resume", None)
    if not isinstance(resume, list) or not callable(peek):
        return None
    return resume, peek


def ask(
    payload: Callable[[], Any], config: RunnableConfig, index: int, *, alone: bool = False
) -> Decision:
    """The decision answering this task's `index`-th pause; raises `GraphInterrupt` to pause.

    `index` is how many times this task called `interrupt()` before (LangGraph
    matches resume values to calls by that count). `payload` builds what the
    pause shows; it is built only when the call may pause. `alone`: no other
    task of the step can pause (a factory graph's approval step), so a waiting
    resume value is this call's.
    """
    pad = _scratchpad(config)
    if pad is not None:
        resume, peek = pad
        if len(resume) > index:  # a saved value answers this call
            return interrupt(None, response_schema=DecisionResume).root
        waiting = peek(False)
        # LangGraph's peek still shows a new value once handed out (and appended to
        # `resume`); another task may have taken it too, so only "none" is certain.
        if waiting is None or any(saved is waiting for saved in resume):
            interrupt(payload())
            raise AssertionError("interrupt() returned with no resume value")  # pragma: no cover
        if alone:
            return interrupt(None, response_schema=DecisionResume).root
    return interrupt(payload(), response_schema=DecisionResume).root


def replayed(config: RunnableConfig, index: int) -> bool:
    """Whether the `index`-th `interrupt()` of this task returned a value answered before.

    A node that pauses again after refusing a resume value is re-executed from
    the top on the next resume, and LangGraph replays the earlier values to its
    earlier `interrupt()` calls: those were refused (and recorded) already. A
    value is replayed when a later one is saved, or a new one waits for a later
    call. (The last saved value with nothing after it is processed again: the
    node died before finishing, and the checks are idempotent.)
    """
    pad = _scratchpad(config)
    if pad is None:
        return False
    resume, peek = pad
    if len(resume) > index + 1:
        return True
    if len(resume) != index + 1:
        return False
    # LangGraph appends the new value it hands out to `resume`; a saved one differs.
    waiting = peek(False)
    return waiting is not None and resume[index] is not waiting
