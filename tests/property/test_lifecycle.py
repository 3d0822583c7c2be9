"""A Hypothesis state machine over the coordinator lifecycle, in memory, both styles.

Random interleavings of `process`, `approve`, `reject`, `recover` and clock
moves on a few threads are checked against a tiny model: which threads are
paused, how many turns each thread had, which decisions were recorded.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AlreadyDecidedError,
    HitlCoordinator,
    PauseStyle,
    ReviewNotFoundError,
    ThreadBusyError,
    build_compliance_graph,
)
from tests.conftest import default_rules
from tests.helpers import CLEAN, RISKY, SCRIPT, SECRET, FakeClock, ScriptedDrafter, config_for

T = TypeVar("T")
THREADS = st.sampled_from(["t1", "t2", "t3"])
REVIEWERS = st.sampled_from(["alice", "bob"])


class CoordinatorLifecycle(RuleBasedStateMachine):
    """Drives one coordinator and keeps the model of what must be true."""

    style: PauseStyle = "interrupt_before"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.drafter = ScriptedDrafter()
        graph = build_compliance_graph(
            self.drafter, rules=default_rules(), checkpointer=InMemorySaver(), style=self.style
        )
        self.coord = HitlCoordinator(graph, clock=self.clock)
        self.paused: set[str] = set()
        self.turns: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.delivered: dict[str, str | None] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @initialize()
    def start(self) -> None:
        """Nothing is pending before the first turn."""
        assert self.run(self.coord.pending()) == []

    @rule(thread=THREADS, message=st.sampled_from([CLEAN, RISKY, SECRET]))
    def process(self, thread: str, message: str) -> None:
        """A new turn pauses on a risky draft, else finishes; a paused thread is busy."""
        if thread in self.paused:
            with pytest.raises(ThreadBusyError):
                self.run(self.coord.process(thread, message))
            return
        result = self.run(self.coord.process(thread, message))
        self.turns[thread] += 1
        expected = {CLEAN: "completed", RISKY: "paused", SECRET: "rejected"}[message]
        assert result.status == expected
        if expected == "paused":
            self.paused.add(thread)
        else:
            self.delivered[thread] = result.agent_response
            assert result.agent_response == (SCRIPT[CLEAN] if message == CLEAN else None)

    @rule(thread=THREADS, reviewer=REVIEWERS, edit=st.one_of(st.none(), st.just("Edited.")))
    def approve(self, thread: str, reviewer: str, edit: str | None) -> None:
        """Approving a paused thread delivers; anything else is refused and changes nothing."""
        if thread not in self.paused:
            with pytest.raises((ReviewNotFoundError, AlreadyDecidedError)):
                self.run(self.coord.approve(thread, reviewer=reviewer, response=edit))
            return
        result = self.run(self.coord.approve(thread, reviewer=reviewer, response=edit))
        self.paused.discard(thread)
        self.decisions[thread] += 1
        assert (result.status, result.reviewer) == ("completed", reviewer)
        assert result.agent_response == (edit or SCRIPT[RISKY])
        self.delivered[thread] = result.agent_response

    @rule(thread=THREADS, reviewer=REVIEWERS)
    def reject(self, thread: str, reviewer: str) -> None:
        """Rejecting a paused thread delivers nothing; anything else is refused."""
        if thread not in self.paused:
            with pytest.raises((ReviewNotFoundError, AlreadyDecidedError)):
                self.run(self.coord.reject(thread, reviewer=reviewer))
            return
        result = self.run(self.coord.reject(thread, reviewer=reviewer))
        self.paused.discard(thread)
        self.decisions[thread] += 1
        assert (result.status, result.agent_response) == ("rejected", None)
        self.delivered[thread] = None

    @rule(minutes=st.integers(min_value=0, max_value=90))
    def recover(self, minutes: int) -> None:
        """With nothing crashed, recover() finds nothing to do however late it runs."""
        self.clock.advance(minutes=minutes)
        assert self.run(self.coord.recover()) == []

    @invariant()
    def pending_matches_model(self) -> None:
        """pending() lists exactly the paused threads."""
        assert {p.thread_id for p in self.run(self.coord.pending())} == self.paused

    @invariant()
    def drafter_once_per_turn(self) -> None:
        """The drafter ran once per turn, never again on a decision."""
        assert len(self.drafter.calls) == sum(self.turns.values())

    @invariant()
    def graph_state_matches_delivery(self) -> None:
        """The checkpointed reply of every finished thread is what the last turn delivered."""
        for thread, delivered in self.delivered.items():
            if thread not in self.paused:
                snap = self.run(self.coord.graph.aget_state(config_for(thread)))
                assert snap.values["agent_response"] == delivered

    @invariant()
    def audit_matches_model(self) -> None:
        """Each thread's audit log has one decision event per decision."""
        for thread in self.turns:
            log = self.run(self.coord.audit_log(thread))
            decided = [r for r in log if r.event in ("approved", "rejected")]
            assert len(decided) == self.decisions[thread]


class StaticLifecycle(CoordinatorLifecycle):
    style = "interrupt_before"


class DynamicLifecycle(CoordinatorLifecycle):
    style = "command_resume"


TestStaticLifecycle = StaticLifecycle.TestCase
TestDynamicLifecycle = DynamicLifecycle.TestCase
