"""Test doubles shared by the whole suite: a scripted drafter, a fake clock, odd rules.

Every fake lives here so that unit, property and integration tests drive the
library the same way; fixtures that build them are in `conftest.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.types import StateSnapshot

from hitl_compliance import ComplianceState, HitlCoordinator, RuleResult

EPOCH = datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)
"""Where every fake clock starts, so timestamps in assertions are predictable."""

CLEAN = "hello"
RISKY = "invest"
SECRET = "ssn"

SCRIPT: Mapping[str, str] = {
    CLEAN: "Thanks for your message, we will get back to you.",
    RISKY: "Our fund offers guaranteed returns of 9% a year.",
    SECRET: "Your SSN on file is 123-45-6789.",
}
"""Customer message -> draft: CLEAN passes, RISKY needs review, SECRET is blocked."""


class ScriptedDrafter:
    """A drafter that replies from a script keyed by the customer message and counts calls.

    Unknown messages get `default` (with `{message}` filled in). Counting is by
    customer message, so tests that need per-thread counts give each thread its
    own message. Set `reply` to return a fixed object (even a non-`str`).
    """

    def __init__(
        self,
        script: Mapping[str, str] | None = None,
        *,
        default: str = "Reply to: {message}",
        is_async: bool = False,
    ) -> None:
        self.script = dict(SCRIPT if script is None else script)
        self.default = default
        self.is_async = is_async
        self.calls: list[str] = []
        self.states: list[ComplianceState] = []

    def text_for(self, message: str) -> str:
        """The draft this drafter gives for `message`."""
        return self.script.get(message, self.default.format(message=message))

    def _draft(self, state: ComplianceState) -> str:
        self.calls.append(state.customer_message)
        self.states.append(state)
        return self.text_for(state.customer_message)

    def __call__(self, state: ComplianceState) -> Any:
        if self.is_async:
            return self._adraft(state)
        return self._draft(state)

    async def _adraft(self, state: ComplianceState) -> str:
        return self._draft(state)

    @property
    def counts(self) -> Counter[str]:
        """Calls per customer message."""
        return Counter(self.calls)


class FakeClock:
    """An injectable clock: returns `now`, then moves it on by `step` (zero by default)."""

    def __init__(self, start: datetime = EPOCH, *, step: timedelta = timedelta(0)) -> None:
        self.now = start
        self.step = step
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        now = self.now
        self.now = now + self.step
        return now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by `timedelta(**delta)` and return the new time."""
        self.now += timedelta(**delta)
        return self.now


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
