"""The coordinator calls each hook under a lease on its outbox row, with a stable delivery id.

Runs on the in-memory store and on a real SQLite file; the cross-process races
are in `tests/integration/test_hook_outbox.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ConfigurationError,
    DecidedEvent,
    HitlCoordinator,
    Hooks,
    InMemoryReviewStore,
    ReviewEvent,
    build_compliance_graph,
)
from hitl_compliance.graph import ComplianceGraph
from hitl_compliance.stores import ReviewStore
from hitl_compliance.stores.sqlite import SqliteReviewStore
from hitl_compliance.testing import FaultInjector, SimulatedCrash
from tests.helpers import RISKY, FakeClock, ScriptedDrafter, default_rules

pytestmark = pytest.mark.asyncio
LEASE = timedelta(seconds=30)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReviewStore]:
    """A set-up review store: in memory, or on a real SQLite file."""
    reviews: ReviewStore = (
        InMemoryReviewStore()
        if request.param == "memory"
        else SqliteReviewStore(tmp_path / "reviews.db")
    )
    await reviews.setup()
    yield reviews
    await reviews.aclose()


@pytest.fixture
def graph() -> ComplianceGraph:
    """The suite's graph on an in-memory checkpointer."""
    from langgraph.checkpoint.memory import InMemorySaver

    return build_compliance_graph(
        ScriptedDrafter(), rules=default_rules(), checkpointer=InMemorySaver()
    )


def coordinator(
    graph: ComplianceGraph, store: ReviewStore, clock: FakeClock, **hooks: Any
) -> HitlCoordinator:
    """A coordinator with these hooks on the shared store and clock."""
    return HitlCoordinator(graph, reviews=store, hooks=Hooks(**hooks), clock=clock, lease=LEASE)


class TestDeliveryId:
    async def test_a_retry_carries_the_same_delivery_id(
        self, graph: ComplianceGraph, store: ReviewStore, clock: FakeClock
    ) -> None:
        """Each event names its outbox row; a failed call is retried with the same id."""
        events: list[ReviewEvent] = []

        def flaky(event: DecidedEvent) -> None:
            events.append(event)
            if len(events) == 2:  # the first on_decided call
                raise ConnectionError("chat service down")

        coord = coordinator(graph, store, clock, on_paused=events.append, on_decided=flaky)
        await coord.process("t1", RISKY)
        await coord.reject("t1", reviewer="officer@bank", reason="no")
        [failed] = await store.pending_hooks()
        assert (failed.status, failed.lease_owner) == ("failed", None)
        await coord.recover()
        paused, first, retry = events
        assert paused.delivery_id
        assert paused.delivery_id != first.delivery_id
        assert first.delivery_id == retry.delivery_id == failed.delivery_id
        assert first == retry  # the very same event, field for field
        assert await store.pending_hooks() == []
        await coord.recover()
        assert len(events) == 3


class TestLeases:
    async def test_a_new_turn_and_recover_leave_a_running_hook_alone(
        self, graph: ComplianceGraph, store: ReviewStore, clock: FakeClock
    ) -> None:
        """While one caller's hook runs, a new turn or recover() elsewhere never calls it too."""
        started, release = asyncio.Event(), asyncio.Event()
        calls: list[ReviewEvent] = []

        async def slow(event: DecidedEvent) -> None:
            calls.append(event)
            started.set()
            await release.wait()

        first = coordinator(graph, store, clock, on_decided=slow)
        other = coordinator(graph, store, clock, on_decided=calls.append)
        await first.process("t1", RISKY)
        deciding = asyncio.create_task(first.approve("t1", reviewer="officer@bank"))
        await asyncio.wait_for(started.wait(), 10)
        # A new turn on the same thread dispatches that thread's owed calls...
        assert (await other.process("t1", RISKY)).status == "paused"
        # ...and recover(), long after the row was written but within the lease.
        clock.advance(LEASE / 2)
        await other.recover()
        assert len(calls) == 1
        [held] = await store.pending_hooks()
        assert held.status == "pending"
        assert held.lease_owner is not None
        assert held.lease_until == clock.now - LEASE / 2 + LEASE
        release.set()
        await deciding
        assert [e.delivery_id for e in calls] == [held.delivery_id]
        assert await store.pending_hooks() == []
        clock.advance(LEASE * 2)
        await other.recover()
        assert len(calls) == 1

    async def test_a_crashed_callers_call_is_made_once_its_lease_expires(
        self, graph: ComplianceGraph, store: ReviewStore, clock: FakeClock
    ) -> None:
        """A call whose caller died is not made until its lease runs out, then once, same id."""
        injector = FaultInjector()
        coord = injector.coordinator(graph, reviews=store, clock=clock, lease=LEASE)
        await coord.process("t1", RISKY)
        injector.hook_calls.clear()
        injector.arm("in_hook", hook="on_decided")
        with pytest.raises(SimulatedCrash):
            await coord.approve("t1", reviewer="officer@bank")
        injector.restart()
        [owed] = await store.pending_hooks()
        assert (owed.hook, owed.status, owed.attempts) == ("on_decided", "pending", 0)
        assert owed.lease_until == clock.now + LEASE
        clock.advance(LEASE - timedelta(seconds=1))
        await coord.recover()
        assert injector.hook_calls == []
        assert await store.pending_hooks() == [owed]
        clock.advance(seconds=1)
        await coord.recover()
        assert [(c.hook, c.delivery_id) for c in injector.hook_calls] == [
            ("on_decided", owed.delivery_id)
        ]
        assert await store.pending_hooks() == []

    async def test_calls_whose_lease_ran_out_in_the_queue_are_left_to_recover(
        self, graph: ComplianceGraph, store: ReviewStore, clock: FakeClock
    ) -> None:
        """A batch that outlasts its lease stops calling: the rest may belong to another caller."""
        calls: list[ReviewEvent] = []

        def fail(_: Any) -> None:
            raise ConnectionError("down")

        failing = coordinator(graph, store, clock, on_paused=fail)
        for thread in ("t1", "t2"):
            await failing.process(thread, RISKY)
        ids = [d.delivery_id for d in await store.pending_hooks()]

        def slow(event: ReviewEvent) -> None:
            calls.append(event)
            clock.advance(LEASE)  # this call alone uses up the whole lease

        recovering = coordinator(graph, store, clock, on_paused=slow)
        await recovering.recover()
        assert [e.delivery_id for e in calls] == ids[:1]
        [left] = await store.pending_hooks()
        assert (left.delivery_id, left.status, left.attempts) == (ids[1], "failed", 1)
        assert left.lease_until is not None
        assert left.lease_until <= clock.now
        await recovering.recover()
        assert [e.delivery_id for e in calls] == ids
        assert await store.pending_hooks() == []


class PreLeaseStore:
    """A store written against the protocol before hook leases: no claim_hooks/renew_hook."""

    def __init__(self, inner: ReviewStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("claim_hooks", "renew_hook"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    async def finish_hook(self, delivery_id: str, *, ok: bool, error: str | None, now: Any) -> None:
        await self._inner.finish_hook(delivery_id, ok=ok, error=error, now=now)


class TestPreLeaseStores:
    """A store without the lease methods still works, with a DeprecationWarning."""

    async def test_a_pre_lease_store_is_accepted_with_a_warning(self) -> None:
        """Its hooks are called (unleased), and the warning says what to implement."""
        calls: list[ReviewEvent] = []
        graph = build_compliance_graph(
            ScriptedDrafter(), rules=default_rules(), checkpointer=InMemorySaver()
        )
        with pytest.warns(DeprecationWarning, match="claim_hooks / renew_hook"):
            coord = HitlCoordinator(
                graph,
                reviews=PreLeaseStore(InMemoryReviewStore()),
                hooks=Hooks(on_paused=calls.append),
                clock=FakeClock(),
            )
        result = await coord.process("t-legacy", RISKY)
        assert result.status == "paused"
        assert [type(c).__name__ for c in calls] == ["PausedEvent"]
        assert await coord.reviews.pending_hooks() == []  # recorded as delivered

    async def test_a_store_missing_other_methods_is_still_refused(self) -> None:
        """Only the lease methods may be missing; anything else is a ConfigurationError."""

        class Broken(PreLeaseStore):
            def __getattr__(self, name: str) -> Any:
                if name in ("claim_hooks", "renew_hook", "vote"):
                    raise AttributeError(name)
                return getattr(self._inner, name)

        graph = build_compliance_graph(
            ScriptedDrafter(), rules=default_rules(), checkpointer=InMemorySaver()
        )
        with pytest.raises(ConfigurationError, match="must implement ReviewStore"):
            HitlCoordinator(graph, reviews=Broken(InMemoryReviewStore()))
