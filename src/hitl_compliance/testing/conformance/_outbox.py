"""Hook outbox conformance: owed hook calls written with their audit rows, and their leases.

Covers `configure_hooks`, `pending_hooks` and the outbox row each configured
event writes in its audit row's step, then the leases: `claim_hooks` hands
each row to one owner (also across instances), an expired lease is taken
over under the same delivery id, and only the holder renews or finishes it.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`OutboxConformance`][hitl_compliance.testing.conformance.OutboxConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from hitl_compliance.errors import AlreadyDecidedError, ThreadBusyError
from hitl_compliance.models import AuditRecord
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    DRAFT,
    T0,
    at,
    cast_vote,
    claim,
    make_due,
    make_review,
)

__all__ = ["OutboxConformance"]


class OutboxConformance(ConformanceBase):
    """The hook outbox tests: rows only for configured hooks, leased to one owner at a time."""

    # -- hook outbox -----------------------------------------------------------

    async def test_no_outbox_rows_without_configured_hooks(self, review_store: ReviewStore) -> None:
        """Until configure_hooks names a hook, no event writes an outbox row."""
        review = await review_store.open_review(make_due("t1", at(1)), owner=None)
        await review_store.escalate(
            review.review_id, now=at(2), new_deadline=at(9), actor="s", payload={}
        )
        await claim(review_store)
        await review_store.complete(
            review.review_id, claim_id="k1", status="approved", now=at(3), actor="a", payload={}
        )
        assert await review_store.pending_hooks() == []

    async def test_outbox_rows_only_for_configured_hooks(self, review_store: ReviewStore) -> None:
        """Each audit row whose event maps to a configured hook gets one pending row."""
        review_store.configure_hooks(frozenset({"on_decided", "on_expired"}))
        review = await review_store.open_review(
            make_due("t1", at(1), approvals_required=2), owner=None
        )
        await cast_vote(review_store, "alice", review_id=review.review_id)  # voted: no hook
        await review_store.escalate(
            review.review_id, now=at(2), new_deadline=at(9), actor="sla", payload={"x": 1}
        )
        await cast_vote(review_store, "bob", review_id=review.review_id, minutes=3)
        await review_store.complete(
            review.review_id,
            claim_id="k-bob",
            status="approved",
            now=at(4),
            actor="bob",
            payload={"delivered": DRAFT},
        )
        await review_store.append_audit(
            thread_id="t2",
            review_id=None,
            checkpoint_id=None,
            event="expired",
            actor="sla",
            payload={"action": "reject"},
            at=at(5),
        )
        await review_store.append_audit(
            thread_id="t2",
            review_id=None,
            checkpoint_id=None,
            event="recovered",
            actor="sys",
            payload={},
            at=at(6),
        )
        rows = {r.seq: r for r in await review_store.audit_rows()}
        deliveries = await review_store.pending_hooks()
        assert [(d.hook, d.record.event) for d in deliveries] == [
            ("on_expired", "escalated"),
            ("on_decided", "approved"),
            ("on_expired", "expired"),
        ]
        for d in deliveries:
            assert d.status == "pending"
            assert (d.attempts, d.last_error) == (0, None)
            assert _hashed(d.record) == _hashed(rows[d.record.seq])
            assert d.created_at == d.record.at
        assert len({d.delivery_id for d in deliveries}) == 3
        assert [d.record.event for d in await review_store.pending_hooks(thread_id="t2")] == [
            "expired"
        ]
        review_store.configure_hooks(frozenset({"on_paused"}))
        await review_store.open_review(make_due("t3", None), owner=None)
        assert [d.hook for d in await review_store.pending_hooks(thread_id="t3")] == ["on_paused"]
        review_store.configure_hooks(frozenset())
        await review_store.open_review(make_due("t4", None), owner=None)
        assert await review_store.pending_hooks(thread_id="t4") == []

    async def test_pending_failed_delivered(self, review_store: ReviewStore) -> None:
        """finish_hook moves a row to failed (counting attempts) or delivered (gone for good)."""
        review_store.configure_hooks(frozenset({"on_paused"}))
        for i, minutes in enumerate((1, 2, 3)):
            await review_store.open_review(
                make_due(f"t{i}", None, requested_at=at(minutes)), owner=None
            )
        one, two, three = await review_store.pending_hooks()
        assert [d.record.thread_id for d in (one, two, three)] == ["t0", "t1", "t2"]
        # created_before keeps pending rows younger than the cut-off for their own caller.
        assert [d.delivery_id for d in await review_store.pending_hooks(created_before=at(2))] == [
            one.delivery_id
        ]
        await review_store.finish_hook(two.delivery_id, ok=False, error="boom", now=at(4))
        failed = (await review_store.pending_hooks(thread_id="t1"))[0]
        assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "boom")
        assert failed.record == two.record
        # Failed rows come back whatever the cut-off, in seq order.
        assert [d.delivery_id for d in await review_store.pending_hooks(created_before=at(2))] == [
            one.delivery_id,
            two.delivery_id,
        ]
        assert await review_store.pending_hooks(created_before=T0) == [failed]
        await review_store.finish_hook(two.delivery_id, ok=False, error="again", now=at(5))
        await review_store.finish_hook(two.delivery_id, ok=True, error=None, now=at(6))
        await review_store.finish_hook(one.delivery_id, ok=True, error=None, now=at(6))
        assert [d.delivery_id for d in await review_store.pending_hooks()] == [three.delivery_id]
        # Delivered is final; unknown ids are ignored.
        await review_store.finish_hook(two.delivery_id, ok=False, error="late", now=at(7))
        await review_store.finish_hook("no-such-delivery", ok=False, error="x", now=at(7))
        assert [d.delivery_id for d in await review_store.pending_hooks()] == [three.delivery_id]
        assert await review_store.pending_hooks(thread_id="t1") == []

    async def test_failed_writes_leave_no_outbox_rows(self, review_store: ReviewStore) -> None:
        """A refused or repeated change writes no outbox row (nor audit row)."""
        review_store.configure_hooks(frozenset({"on_paused", "on_decided"}))
        review = await review_store.open_review(make_review(), owner=None)
        assert await review_store.open_review(make_review(), owner=None) == review
        with pytest.raises(ThreadBusyError):
            await review_store.open_review(make_review(checkpoint_id="c2"), owner=None)
        with pytest.raises(AlreadyDecidedError):
            await review_store.complete(
                review.review_id,
                claim_id="nope",
                status="approved",
                now=at(1),
                actor="a",
                payload={},
            )
        assert [d.hook for d in await review_store.pending_hooks()] == ["on_paused"]
        assert [a.event for a in await review_store.audit_rows()] == ["paused"]

    # -- hook leases -----------------------------------------------------------

    async def _owed(self, store: ReviewStore, count: int = 3) -> list[str]:
        """`count` owed on_paused calls (threads t0.., created at minutes 1..); their ids."""
        store.configure_hooks(frozenset({"on_paused"}))
        for i in range(count):
            await store.open_review(make_due(f"t{i}", None, requested_at=at(i + 1)), owner=None)
        return [d.delivery_id for d in await store.pending_hooks()]

    async def test_claim_leases_each_row_to_one_owner(self, review_store: ReviewStore) -> None:
        """claim_hooks leases unheld rows to its owner; nobody else gets them while it holds."""
        ids = await self._owed(review_store)
        claimed = await review_store.claim_hooks(owner="a", now=at(5), lease_until=at(10))
        assert [d.delivery_id for d in claimed] == ids
        rows = {r.seq: r for r in await review_store.audit_rows()}
        for d in claimed:
            assert (d.status, d.lease_owner, d.lease_until) == ("pending", "a", at(10))
            assert (d.attempts, d.last_error) == (0, None)
            assert _hashed(d.record) == _hashed(rows[d.record.seq])
        assert await review_store.claim_hooks(owner="b", now=at(9), lease_until=at(20)) == []
        # pending_hooks is a read: it shows the leases and takes none.
        assert await review_store.pending_hooks() == claimed
        assert await review_store.claim_hooks(owner="a", now=at(9), lease_until=at(20)) == []

    async def test_concurrent_claims_lease_each_row_once(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Claims racing through two store instances never return one row twice."""
        a, b = review_store_pair
        ids = await self._owed(a, count=12)
        b.configure_hooks(frozenset({"on_paused"}))
        batches = await asyncio.gather(
            *(
                (a if i % 2 else b).claim_hooks(
                    owner=f"w{i}", now=at(30), lease_until=at(40), limit=3
                )
                for i in range(8)
            )
        )
        won = [d.delivery_id for batch in batches for d in batch]
        assert sorted(won) == sorted(ids)
        owners = {d.delivery_id: d.lease_owner for d in await a.pending_hooks()}
        assert owners == {d.delivery_id: d.lease_owner for batch in batches for d in batch}

    async def test_expired_lease_is_taken_over_with_the_same_id(
        self, review_store: ReviewStore
    ) -> None:
        """A lease that ran out goes to the next claimer; the row keeps its id and audit record."""
        [first] = await self._owed(review_store, count=1)
        [held] = await review_store.claim_hooks(owner="dead", now=at(5), lease_until=at(10))
        assert await review_store.claim_hooks(owner="b", now=at(9), lease_until=at(20)) == []
        [taken] = await review_store.claim_hooks(owner="b", now=at(10), lease_until=at(20))
        assert taken.delivery_id == held.delivery_id == first
        assert taken.record == held.record
        assert (taken.lease_owner, taken.lease_until, taken.attempts) == ("b", at(20), 0)
        # The dead owner, back too late, can no longer record anything.
        assert not await review_store.finish_hook(
            first, ok=True, error=None, now=at(11), owner="dead"
        )
        assert await review_store.pending_hooks() == [taken]
        assert await review_store.finish_hook(first, ok=True, error=None, now=at(12), owner="b")
        assert await review_store.pending_hooks() == []
        assert await review_store.claim_hooks(owner="c", now=at(99), lease_until=at(100)) == []

    async def test_only_the_lease_holder_finishes(self, review_store: ReviewStore) -> None:
        """finish_hook by anyone but the holder changes nothing; a failure releases the lease."""
        [first] = await self._owed(review_store, count=1)
        [held] = await review_store.claim_hooks(owner="a", now=at(5), lease_until=at(10))
        assert not await review_store.finish_hook(first, ok=True, error=None, now=at(6), owner="b")
        assert not await review_store.finish_hook(first, ok=False, error="x", now=at(6))
        assert await review_store.pending_hooks() == [held]
        assert await review_store.finish_hook(first, ok=False, error="boom", now=at(7), owner="a")
        [failed] = await review_store.pending_hooks()
        assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "boom")
        assert (failed.lease_owner, failed.lease_until) == (None, None)
        # Released: a retry may claim it at once, and finds the same id.
        [retry] = await review_store.claim_hooks(owner="c", now=at(7), lease_until=at(17))
        assert (retry.delivery_id, retry.status, retry.lease_owner) == (first, "failed", "c")
        assert not await review_store.finish_hook(first, ok=True, error=None, now=at(8), owner="a")
        assert await review_store.finish_hook(first, ok=True, error=None, now=at(8), owner="c")
        assert not await review_store.finish_hook(first, ok=False, error="x", now=at(9), owner="c")
        assert await review_store.pending_hooks() == []
        assert not await review_store.finish_hook("no-such", ok=True, error=None, now=at(9))

    async def test_the_holder_renews_its_lease(self, review_store: ReviewStore) -> None:
        """renew_hook moves only the holder's lease; a renewed row stays out of others' reach."""
        [first] = await self._owed(review_store, count=1)
        await review_store.claim_hooks(owner="a", now=at(5), lease_until=at(10))
        assert not await review_store.renew_hook(first, owner="b", lease_until=at(30))
        assert await review_store.renew_hook(first, owner="a", lease_until=at(20))
        [held] = await review_store.pending_hooks()
        assert (held.lease_owner, held.lease_until) == ("a", at(20))
        assert await review_store.claim_hooks(owner="b", now=at(15), lease_until=at(25)) == []
        [taken] = await review_store.claim_hooks(owner="b", now=at(20), lease_until=at(30))
        assert taken.lease_owner == "b"
        # Taken over: the old holder can neither renew nor finish it any more.
        assert not await review_store.renew_hook(first, owner="a", lease_until=at(40))
        assert await review_store.pending_hooks() == [taken]
        assert await review_store.finish_hook(first, ok=True, error=None, now=at(21), owner="b")
        assert not await review_store.renew_hook(first, owner="b", lease_until=at(40))
        assert not await review_store.renew_hook("no-such", owner="b", lease_until=at(40))
        assert await review_store.pending_hooks() == []

    async def test_claim_filters(self, review_store: ReviewStore) -> None:
        """thread_id, hooks, include_failed, created_before and limit narrow what is claimed."""
        ids = await self._owed(review_store)
        assert (
            await review_store.claim_hooks(
                owner="x", hooks=frozenset(), now=at(5), lease_until=at(6)
            )
            == []
        )
        assert (
            await review_store.claim_hooks(
                owner="x", hooks=frozenset({"on_decided"}), now=at(5), lease_until=at(6)
            )
            == []
        )
        [t1] = await review_store.claim_hooks(
            owner="x", thread_id="t1", now=at(5), lease_until=at(6)
        )
        assert t1.delivery_id == ids[1]
        assert await review_store.finish_hook(ids[1], ok=False, error="e", now=at(5), owner="x")
        # Failed rows are left to recover() by a claimer that asks for pending ones only.
        assert (
            await review_store.claim_hooks(
                owner="y", thread_id="t1", include_failed=False, now=at(5), lease_until=at(6)
            )
            == []
        )
        # created_before keeps young never-claimed rows for the caller that wrote them,
        # but never holds back failed rows or expired leases.
        young = await review_store.claim_hooks(
            owner="y", created_before=at(1), now=at(5), lease_until=at(6)
        )
        assert [d.delivery_id for d in young] == [ids[1]]
        [oldest] = await review_store.claim_hooks(owner="z", limit=1, now=at(5), lease_until=at(6))
        assert oldest.delivery_id == ids[0]
        again = await review_store.claim_hooks(
            owner="w", created_before=at(1), now=at(6), lease_until=at(16)
        )
        assert [d.delivery_id for d in again] == ids[:2]
        with pytest.raises(ValueError, match="limit"):
            await review_store.claim_hooks(owner="w", limit=-1, now=at(6), lease_until=at(16))
        naive = datetime(2024, 5, 1, 12, 0)
        with pytest.raises(ValueError, match="aware"):
            await review_store.claim_hooks(owner="w", now=naive, lease_until=at(30))
        assert [d.lease_owner for d in await review_store.pending_hooks()] == ["w", "w", None]


def _hashed(record: AuditRecord) -> dict[str, Any]:
    """A row as hashed: an outbox row holds personal values sealed (the dispatcher reveals them)."""
    row = record.to_row()
    row.pop("personal", None)
    return row
