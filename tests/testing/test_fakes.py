"""Unit tests of `hitl_compliance.testing.fakes`: scripted drafter, fake clock, memory backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    Backend,
    ComplianceState,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    build_compliance_graph,
)
from hitl_compliance.testing import (
    EPOCH,
    FakeClock,
    ScriptedDrafter,
    ScriptedDrafterError,
    memory_backend,
)

RULES = [KeywordRule("guarantee", ["guaranteed returns"])]


def coordinator(drafter: ScriptedDrafter) -> HitlCoordinator:
    """A coordinator over `drafter` on a fresh in-memory saver."""
    graph = build_compliance_graph(drafter, rules=RULES, checkpointer=InMemorySaver())
    return HitlCoordinator(graph, clock=FakeClock())


class TestScriptedDrafter:
    """Replies from its script, counts calls per message and per thread, fails on demand."""

    def test_script_and_default(self) -> None:
        """A scripted message gets its draft; any other gets the default with the message."""
        drafter = ScriptedDrafter({"hi": "Hello!"})
        assert drafter(ComplianceState(customer_message="hi")) == "Hello!"
        assert drafter(ComplianceState(customer_message="x")) == "Reply to: x"
        assert drafter.calls == ["hi", "x"]
        assert drafter.counts == {"hi": 1, "x": 1}

    async def test_counts_per_thread_in_a_run(self) -> None:
        """Inside a graph run each call is counted under the run's thread id."""
        drafter = ScriptedDrafter({"q": "guaranteed returns"})
        coord = coordinator(drafter)
        await coord.process("t1", "q")
        await coord.process("t2", "hi")
        await coord.process("t2", "again")
        assert drafter.thread_counts == {"t1": 1, "t2": 2}
        assert drafter.calls_for("t2") == 2
        assert [s.customer_message for s in drafter.states] == ["q", "hi", "again"]

    def test_calls_outside_a_run_have_no_thread(self) -> None:
        """A direct call is recorded with thread None and not in the per-thread counts."""
        drafter = ScriptedDrafter()
        drafter(ComplianceState(customer_message="m"))
        assert drafter.threads == [None]
        assert drafter.thread_counts == {}

    async def test_async(self) -> None:
        """With is_async the drafter returns an awaitable, which the graph awaits."""
        drafter = ScriptedDrafter({"q": "ok"}, is_async=True)
        result = await coordinator(drafter).process("t1", "q")
        assert result.agent_response == "ok"
        assert drafter.thread_counts == {"t1": 1}

    async def test_fail_next_and_fail_on(self) -> None:
        """fail_next raises once (by default), fail_on always; failures are not counted calls."""
        drafter = ScriptedDrafter(fail_on=["down"])
        coord = coordinator(drafter)
        drafter.fail_next()
        with pytest.raises(ScriptedDrafterError):
            await coord.process("t1", "q")
        assert (await coord.process("t1", "q")).status == "completed"
        with pytest.raises(ScriptedDrafterError, match="down"):
            await coord.process("t2", "down")
        drafter.fail_next(2, error=TimeoutError("llm timeout"))
        for _ in range(2):
            with pytest.raises(TimeoutError):
                drafter(ComplianceState(customer_message="q"))
        assert drafter.failures == ["q", "down", "q", "q"]
        assert drafter.thread_counts == {"t1": 1}


class TestFakeClock:
    """Time moves only when told to."""

    def test_stands_still_and_counts(self) -> None:
        """Without a step it returns the same aware time, counting calls."""
        clock = FakeClock()
        assert clock() == clock() == EPOCH
        assert clock.calls == 2

    def test_advance_and_step(self) -> None:
        """advance() takes a timedelta or units; step moves time on every call."""
        clock = FakeClock(step=timedelta(seconds=1))
        assert clock() == EPOCH
        assert clock() == EPOCH + timedelta(seconds=1)
        assert clock.advance(timedelta(minutes=1), seconds=3) == EPOCH + timedelta(seconds=65)

    def test_needs_an_aware_start(self) -> None:
        """A naive start time is refused: the coordinator needs aware datetimes."""
        with pytest.raises(ValueError, match="timezone-aware"):
            FakeClock(datetime(2025, 1, 1))

    async def test_drives_leases(self) -> None:
        """A claim ages past the lease only when the clock is advanced."""
        clock = FakeClock(datetime(2030, 5, 1, tzinfo=timezone.utc))
        graph = build_compliance_graph(
            ScriptedDrafter({"q": "guaranteed returns"}), rules=RULES, checkpointer=InMemorySaver()
        )
        coord = HitlCoordinator(graph, clock=clock)
        await coord.process("t1", "q")
        [record] = await coord.audit_log("t1")
        assert record.at == datetime(2030, 5, 1, tzinfo=timezone.utc)


class TestMemoryBackend:
    """A fresh in-memory Backend without `async with`."""

    def test_fresh_each_time(self) -> None:
        """Each call gives a new saver and a new store."""
        first, second = memory_backend(), memory_backend()
        assert isinstance(first, Backend)
        assert first.url == "memory://"
        assert isinstance(first.checkpointer, InMemorySaver)
        assert isinstance(first.reviews, InMemoryReviewStore)
        assert first.reviews is not second.reviews
        assert first.checkpointer is not second.checkpointer
