"""Retention policies and legal holds through the coordinator (in memory); backends in
`tests/integration/test_retention_backends.py`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ConfigurationError,
    HitlCoordinator,
    InMemoryReviewStore,
    InvalidInputError,
    KeywordRule,
    LegalHoldError,
    RetentionPolicy,
    RetentionStore,
    build_compliance_graph,
)
from hitl_compliance.testing import FakeClock
from tests.gate_graphs import SHAPES, Shape, build

DAY = timedelta(days=1)


def coordinator(clock: FakeClock, **kwargs: Any) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: "Guaranteed returns!",
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
    )
    return HitlCoordinator(graph, clock=clock, **kwargs)


class TestRetentionPolicy:
    def test_a_ceiling_below_the_floor_is_a_configuration_error(self) -> None:
        """Records must be kept at least the floor, so a lower ceiling is refused at once."""
        with pytest.raises(ConfigurationError, match="below the floor"):
            RetentionPolicy("audit", floor=5 * DAY, ceiling=4 * DAY)

    @pytest.mark.parametrize(
        ("record_class", "floor", "ceiling"),
        [("emails", DAY, DAY), ("audit", -DAY, DAY), ("audit", DAY, 7)],
    )
    def test_bad_values_are_refused(self, record_class: Any, floor: Any, ceiling: Any) -> None:
        """An unknown class, a negative floor or a non-timedelta is a configuration error."""
        with pytest.raises(ConfigurationError):
            RetentionPolicy(record_class, floor=floor, ceiling=ceiling)

    def test_equal_floor_and_ceiling_is_allowed(self) -> None:
        """A fixed retention period (floor == ceiling) is a valid policy."""
        assert RetentionPolicy("reviews", floor=DAY, ceiling=DAY).ceiling == DAY


class TestCoordinatorConfiguration:
    def test_two_policies_for_one_class_are_refused(self) -> None:
        """One policy per record class: a second would be ambiguous."""
        policy = RetentionPolicy("audit", floor=DAY, ceiling=DAY)
        with pytest.raises(ConfigurationError, match="Two retention policies"):
            coordinator(FakeClock(), retention=[policy, policy])

    def test_a_non_policy_is_refused(self) -> None:
        """retention= lists RetentionPolicy values only."""
        with pytest.raises(ConfigurationError, match="RetentionPolicy"):
            coordinator(FakeClock(), retention=[("audit", DAY, DAY)])

    async def test_apply_retention_without_policies_is_a_configuration_error(self) -> None:
        """Pruning nothing silently would hide a missing configuration."""
        with pytest.raises(ConfigurationError, match="retention policies"):
            await coordinator(FakeClock()).apply_retention()

    async def test_a_naive_now_is_invalid_input(self) -> None:
        """Ages compare against aware times only."""
        coord = coordinator(
            FakeClock(), retention=[RetentionPolicy("audit", floor=DAY, ceiling=DAY)]
        )
        with pytest.raises(InvalidInputError):
            await coord.apply_retention(now=datetime(2030, 1, 1))

    async def test_a_hold_needs_a_reason_and_writes_nothing_without(self) -> None:
        """An empty reason is refused before anything is written."""
        coord = coordinator(FakeClock())
        with pytest.raises(InvalidInputError):
            await coord.place_hold("t1", reason="  ", by="legal")
        assert await coord.holds() == []
        assert await coord.audit_log("t1") == []

    async def test_a_checkpointer_that_cannot_delete_is_a_configuration_error(self) -> None:
        """A saver without adelete_thread cannot serve a checkpoints policy."""

        class KeepingSaver(InMemorySaver):
            async def adelete_thread(self, thread_id: str) -> None:
                raise NotImplementedError

        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=KeepingSaver(),
        )
        clock = FakeClock()
        policy = RetentionPolicy("checkpoints", floor=timedelta(0), ceiling=DAY)
        coord = HitlCoordinator(graph, clock=clock, retention=[policy])
        await coord.process("t1", "Is this fund safe?")
        await coord.reject("t1", reviewer="officer@bank", reason="no")
        clock.advance(days=2)
        with pytest.raises(ConfigurationError, match="adelete_thread"):
            await coord.apply_retention()

    def test_the_library_stores_have_the_capability(self) -> None:
        """The in-memory store implements the RetentionStore protocol."""
        assert isinstance(InMemoryReviewStore(), RetentionStore)


class TestHoldsInMemory:
    async def test_erasure_of_a_held_thread_raises_and_names_the_hold(self) -> None:
        """`ensure_not_held` is the check erasure calls: a typed error with the hold's context."""
        clock = FakeClock()
        coord = coordinator(clock)
        await coord.place_hold("t1", reason="litigation", by="legal@bank")
        with pytest.raises(LegalHoldError) as caught:
            await coord.ensure_not_held("t1")
        assert caught.value.placed_by == "legal@bank"
        assert "release_hold" in str(caught.value)
        await coord.release_hold("t1", by="legal@bank")
        await coord.ensure_not_held("t1")
        assert [r.event for r in await coord.audit_log("t1")] == ["hold_placed", "hold_released"]
        assert (await coord.verify_audit()).ok

    async def test_a_thread_awaiting_review_is_never_pruned(self) -> None:
        """An open review keeps its thread's audit rows and checkpoints, however old."""
        clock = FakeClock()
        coord = coordinator(
            clock,
            retention=[
                RetentionPolicy("audit", floor=DAY, ceiling=DAY),
                RetentionPolicy("checkpoints", floor=DAY, ceiling=DAY),
            ],
        )
        await coord.process("t1", "Is this fund safe?")
        clock.advance(days=1000)
        report = await coord.apply_retention()
        assert (report.audit_rows, report.checkpoint_threads) == (0, 0)
        assert len(await coord.pending()) == 1


class TestGateEvidence:
    @pytest.mark.parametrize("shape", SHAPES)
    async def test_a_gated_graphs_decision_survives_checkpoint_pruning(self, shape: Shape) -> None:
        """For your own graph with a gate, the state at decision (a GateView) is kept too."""
        clock = FakeClock()
        graph = build(shape, "interrupt_before", InMemorySaver())
        policy = RetentionPolicy("checkpoints", floor=timedelta(0), ceiling=DAY)
        coord = HitlCoordinator(graph, clock=clock, retention=[policy])
        await coord.process("t1", "Should I buy the fund?")
        await coord.reject("t1", reviewer="officer@bank", reason="misleading")
        decided = await coord.state_at_decision("t1")
        clock.advance(days=2)
        assert (await coord.apply_retention()).checkpoint_threads == 1
        snapshot = await graph.aget_state({"configurable": {"thread_id": "t1"}})
        assert not snapshot.values
        kept = await coord.state_at_decision("t1")
        assert type(kept) is type(decided)
        assert kept == decided
