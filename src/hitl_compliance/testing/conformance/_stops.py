"""Stop-switch conformance: stops switched on and off with their audit rows.

Covers the [`DeliveryStopStore`][hitl_compliance.DeliveryStopStore]
capability: a stop is listed from the moment `stop_delivery` returns until it
is resumed, switching a stopped scope on again keeps the first stop and writes
nothing, resuming a scope that is not stopped writes nothing, every switch is
one row of the hash-chained ledger (thread `hitl:delivery`), and a second
instance on the same database sees the switches. A store without the
capability (a `ReviewStore` only) skips these tests.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`StopConformance`][hitl_compliance.testing.conformance.StopConformance]
alone to run only this capability.
"""

from __future__ import annotations

import pytest

from hitl_compliance.ledger import verify_rows
from hitl_compliance.stops import (
    DELIVERY_RESUMED,
    DELIVERY_STOPPED,
    STOP_THREAD,
    DeliveryStopStore,
    StopScope,
)
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import at

__all__ = ["StopConformance"]


def _stops(store: ReviewStore) -> DeliveryStopStore:
    if not isinstance(store, DeliveryStopStore):
        pytest.skip(f"{type(store).__name__} has no stop switch (DeliveryStopStore)")
    return store


class StopConformance(ConformanceBase):
    """The stop-switch tests: switched on and off, idempotent, audited, shared."""

    async def test_stops_are_switched_with_audit_rows(self, review_store: ReviewStore) -> None:
        """A stop is listed until resumed; a repeat keeps the first; each switch is audited."""
        store = _stops(review_store)
        isa = StopScope.product("isa")
        stop = await store.stop_delivery(isa, reason="probe", by="head", now=at(1))
        assert (stop.scope, stop.reason, stop.by, stop.since) == (isa, "probe", "head", at(1))
        assert await store.stop_delivery(isa, reason="other", by="x", now=at(2)) == stop
        everything = await store.stop_delivery(
            StopScope.everything(), reason="incident", by="head", now=at(3)
        )
        assert await store.delivery_stops() == [stop, everything]
        assert await store.resume_delivery(isa, by="head2", now=at(4)) == stop
        assert await store.resume_delivery(isa, by="head2", now=at(5)) is None
        assert await store.delivery_stops() == [everything]
        log = await review_store.audit_log(STOP_THREAD)
        assert [(r.event, r.actor, r.payload.get("scope")) for r in log] == [
            (DELIVERY_STOPPED, "head", "product:isa"),
            (DELIVERY_STOPPED, "head", "all"),
            (DELIVERY_RESUMED, "head2", "product:isa"),
        ]
        rows = [r.to_row() for r in await review_store.audit_rows()]
        assert verify_rows(rows, head=await review_store.audit_head() or (0, "")).ok

    async def test_a_second_instance_sees_the_switches(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """A stop switched through one instance is listed, and resumed, by the other."""
        first, second = (_stops(s) for s in review_store_pair)
        scope = StopScope.ruleset("f" * 64)
        stop = await first.stop_delivery(scope, reason="rules", by="head", now=at(1))
        assert await second.delivery_stops() == [stop]
        assert await second.resume_delivery(scope, by="head", now=at(2)) == stop
        assert await first.delivery_stops() == []
