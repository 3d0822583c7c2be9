"""Test doubles shared by the whole suite: the kit's fakes set up for it, odd rules.

The scripted drafter and the fake clock are the ones the library ships in
`hitl_compliance.testing` (so downstream teams test with what we test with);
this module gives them the suite's script. Fixtures that build them are in
`conftest.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot

from hitl_compliance import (
    ComplianceRule,
    ComplianceState,
    HitlCoordinator,
    KeywordRule,
    RegexRule,
    RuleResult,
)
from hitl_compliance.testing import EPOCH, FakeClock
from hitl_compliance.testing import ScriptedDrafter as KitScriptedDrafter
from hitl_compliance.testing.stateful import CoordinatorMachine
from tests.gate_graphs import build_agent

__all__ = [
    "CLEAN",
    "EPOCH",
    "RISKY",
    "SCRIPT",
    "SECRET",
    "AsyncKeywordRule",
    "FakeClock",
    "GatedSuiteMachine",
    "NotAResultRule",
    "RaisingRule",
    "ScriptedDrafter",
    "SuiteMachine",
    "checkpoint_id",
    "config_for",
    "default_rules",
    "finished_runs",
    "snapshot",
]

CLEAN = "hello"
RISKY = "invest"
SECRET = "ssn"

SCRIPT: Mapping[str, str] = {
    CLEAN: "Thanks for your message, we will get back to you.",
    RISKY: "Our fund offers guaranteed returns of 9% a year.",
    SECRET: "Your SSN on file is 123-45-6789.",
}
"""Customer message -> draft: CLEAN passes, RISKY needs review, SECRET is blocked."""


class ScriptedDrafter(KitScriptedDrafter):
    """The kit's [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter], scripted
    with this suite's `SCRIPT` unless given another script."""

    def __init__(self, script: Mapping[str, str] | None = None, **options: Any) -> None:
        super().__init__(SCRIPT if script is None else script, **options)


def default_rules() -> list[ComplianceRule]:
    """The rules most tests use: a reviewable promise and a blocked SSN."""
    return [
        KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns"),
        RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block", reason="personal data"),
    ]


class SuiteMachine(CoordinatorMachine):
    """The kit's coordinator state machine over this suite's rules and script, without crashes."""

    compliance_rules = default_rules()
    script = SCRIPT
    expected_status: ClassVar[Mapping[str, str]] = {
        CLEAN: "completed",
        RISKY: "paused",
        SECRET: "rejected",
    }
    reviewers = ("alice", "bob")
    edits = ("Edited.",)
    faults = ()


class GatedSuiteMachine(SuiteMachine):
    """`SuiteMachine` on a gated `MessagesState` ReAct agent (`graph_kind` "react"), or on a
    parent graph with that agent as a subgraph ("subgraph").

    The model answers the suite's script as text, and `PAY_SMALL` / `PAY_HUGE` with a
    `transfer` call that runs at once / is blocked; the kit's machine decides text
    reviews (the reviewed tool calls are run over every fault point in
    `tests/testing/test_faults.py`).
    """

    graph_kind: ClassVar[Literal["react", "subgraph"]] = "react"
    messages = (*SCRIPT, "pay my gym", "pay my yacht broker")
    expected_status: ClassVar[Mapping[str, str]] = {
        **SuiteMachine.expected_status,
        "pay my gym": "completed",
        "pay my yacht broker": "completed",
    }
    rejection_message = "A colleague will contact you."

    def build_graph(self, drafter: Any, checkpointer: BaseCheckpointSaver[Any]) -> Any:
        """The gated agent of `graph_kind` over the suite's rules and script.

        Its gate answers to the example's store, so a pause is recorded and a
        decision checked even where the coordinator's own call crashed.
        """
        return build_agent(
            self.graph_kind,
            self.style,
            checkpointer,
            self.compliance_rules,
            dict(self.script),
            rejection_message=self.rejection_message,
            reviews=self.backend.reviews,
        )


class RaisingRule:
    """A rule whose `evaluate` always raises."""

    name = "raises"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        raise RuntimeError("rule backend down")


class NotAResultRule:
    """A rule whose `evaluate` returns something other than a `RuleResult`."""

    name = "not_a_result"

    def evaluate(self, state: ComplianceState) -> Any:
        return "pass"


class AsyncKeywordRule:
    """An async rule: `review` when `word` is in the draft."""

    def __init__(self, name: str, word: str) -> None:
        self.name = name
        self.word = word

    async def evaluate(self, state: ComplianceState) -> RuleResult:
        draft = state.draft_response or ""
        if self.word in draft:
            return RuleResult(self.name, "review", "async rule matched", (self.word,))
        return RuleResult(self.name, "pass")


def config_for(thread_id: str) -> Any:
    """The LangGraph config of a thread's latest checkpoint."""
    return {"configurable": {"thread_id": thread_id}}


async def snapshot(coord: HitlCoordinator, thread_id: str) -> StateSnapshot:
    """The thread's latest LangGraph snapshot."""
    return await coord.graph.aget_state(config_for(thread_id))


def checkpoint_id(snap: StateSnapshot) -> str | None:
    """The checkpoint id of a snapshot (`None` for a thread with no checkpoint)."""
    value = snap.config.get("configurable", {}).get("checkpoint_id")
    return None if value is None else str(value)


async def finished_runs(coord: HitlCoordinator, thread_id: str) -> int:
    """How many runs reached END on the thread (one per completed turn).

    A second resume of one pause would end a second time, so this counts how
    often `deliver` / `rejected` ran.
    """
    history = [s async for s in coord.graph.aget_state_history(config_for(thread_id))]
    return sum(1 for s in history if s.next == ())
