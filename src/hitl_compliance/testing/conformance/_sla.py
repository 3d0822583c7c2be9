"""SLA conformance: deadlines, priorities, overdue lists and exactly-once escalation.

Covers the round trip of `deadline` and `priority`, `list_overdue`
(earliest deadline first, only pending reviews), `escalate`, which raises
the priority, moves the deadline and audits exactly once under concurrency,
and `list_undated` / `set_deadline`, by which the SLA dates a pending review
opened without a deadline exactly once.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`SlaConformance`][hitl_compliance.testing.conformance.SlaConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import IST, assert_chain, at, claim, make_due

__all__ = ["SlaConformance"]


class SlaConformance(ConformanceBase):
    """The SLA tests: deadlines and priorities, overdue lists, escalation exactly once."""

    # -- deadline and priority -------------------------------------------------

    async def test_deadline_and_priority_round_trip(self, review_store: ReviewStore) -> None:
        """open_review persists deadline (any timezone, microseconds) and priority."""
        deadline = datetime(2024, 5, 1, 18, 0, 0, 654321, tzinfo=IST)
        review = await review_store.open_review(make_due("t1", deadline, priority=3), owner=None)
        await review_store.open_review(make_due("t2", None), owner=None)
        stored = await review_store.get_review("t1")
        assert stored == review
        assert stored is not None
        assert stored.deadline == deadline
        assert stored.deadline.tzinfo is not None
        assert stored.priority == 3
        other = await review_store.get_review("t2")
        assert other is not None
        assert (other.deadline, other.priority) == (None, 0)
        [pending] = [r for r in await review_store.list_pending() if r.thread_id == "t1"]
        assert (pending.deadline, pending.priority) == (deadline, 3)
        assert (pending.to_pending().deadline, pending.to_pending().priority) == (deadline, 3)

    # -- list overdue ----------------------------------------------------------

    async def test_overdue_pending_reviews_earliest_first(self, review_store: ReviewStore) -> None:
        """Only pending reviews with deadline <= now, by (deadline, review_id); limit cuts."""
        reviews = [
            make_due("late", at(30), review_id="r-late"),
            make_due("tie-b", at(10), review_id="r-b"),
            make_due("tie-a", at(10), review_id="r-a"),
            make_due("first", at(5), review_id="r-first"),
            make_due("exact", at(20), review_id="r-exact"),
            make_due("future", at(21), review_id="r-future"),
            make_due("none", None, review_id="r-none"),
            make_due("claimed", at(1), review_id="r-claimed"),
            make_due("done", at(1), review_id="r-done"),
        ]
        for review in reviews:
            await review_store.open_review(review, owner=None)
        await claim(review_store, "claimed", claim_id="k-c")
        await claim(review_store, "done", claim_id="k-d")
        await review_store.complete(
            "r-done", claim_id="k-d", status="approved", now=at(2), actor="a", payload={}
        )
        now = at(20)
        expected = ["r-first", "r-a", "r-b", "r-exact"]
        assert [r.review_id for r in await review_store.list_overdue(now=now)] == expected
        assert [r.review_id for r in await review_store.list_overdue(now=now, limit=2)] == (
            expected[:2]
        )
        assert await review_store.list_overdue(now=now, limit=0) == []
        assert await review_store.list_overdue(now=at(4)) == []
        assert [r.review_id for r in await review_store.list_overdue(now=at(60))] == [
            *expected,
            "r-future",
            "r-late",
        ]
        # The same instant in another timezone is the same cut-off.
        assert [
            r.review_id for r in await review_store.list_overdue(now=now.astimezone(IST))
        ] == expected
        overdue = await review_store.list_overdue(now=now)
        assert overdue[0] == await review_store.get_review("first")
        with pytest.raises(ValueError, match="aware"):
            await review_store.list_overdue(now=now.replace(tzinfo=None))

    # -- escalate --------------------------------------------------------------

    async def test_escalate_raises_priority_moves_deadline_and_audits(
        self, review_store: ReviewStore
    ) -> None:
        """An overdue pending review is escalated once per deadline, with an audit row."""
        review = await review_store.open_review(make_due("t1", at(10), priority=2), owner=None)
        payload = {"forced": True, "action": "escalate", "priority": 3}
        assert (
            await review_store.escalate(
                review.review_id, now=at(9), new_deadline=at(70), actor="sla", payload=payload
            )
            is None
        )
        escalated = await review_store.escalate(
            review.review_id, now=at(10), new_deadline=at(70), actor="sla", payload=payload
        )
        assert escalated is not None
        assert (escalated.status, escalated.priority, escalated.deadline) == (
            "pending",
            3,
            at(70),
        )
        assert await review_store.get_review("t1") == escalated
        _paused, event = await review_store.audit_log("t1")
        assert (event.event, event.actor, event.payload, event.at) == (
            "escalated",
            "sla",
            payload,
            at(10),
        )
        assert (event.review_id, event.checkpoint_id) == (review.review_id, "c1")
        # Its new deadline has not passed: a second sweep at the same time does nothing.
        assert (
            await review_store.escalate(
                review.review_id, now=at(10), new_deadline=at(99), actor="sla", payload={}
            )
            is None
        )
        assert [r.review_id for r in await review_store.list_overdue(now=at(70))] == [
            review.review_id
        ]
        assert len(await review_store.audit_log("t1")) == 2

    async def test_claimed_decided_unknown_or_deadline_free_are_not_escalated(
        self, review_store: ReviewStore
    ) -> None:
        """escalate returns None and writes nothing unless the review is pending and overdue."""
        await review_store.open_review(make_due("t1", at(1), review_id="r1"), owner=None)
        await review_store.open_review(make_due("t2", None, review_id="r2"), owner=None)
        await claim(review_store, "t1")
        for review_id in ("r1", "r2", "nope"):
            assert (
                await review_store.escalate(
                    review_id, now=at(60), new_deadline=at(90), actor="sla", payload={}
                )
                is None
            )
        assert [a.event for a in await review_store.audit_rows()] == ["paused", "paused"]
        with pytest.raises(ValueError, match="aware"):
            await review_store.escalate(
                "r2", now=at(60).replace(tzinfo=None), new_deadline=at(90), actor="s", payload={}
            )

    async def test_concurrent_escalations_happen_exactly_once(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Four sweepers on two store instances: each review is escalated exactly once."""
        a, b = review_store_pair
        ids = []
        for i in range(8):
            review = await a.open_review(make_due(f"e{i}", at(i), review_id=f"re{i}"), owner=None)
            ids.append(review.review_id)
        for review_id in ids:
            results = await asyncio.gather(
                *(
                    s.escalate(
                        review_id,
                        now=at(30),
                        new_deadline=at(90),
                        actor=f"sweeper{n}",
                        payload={"n": n},
                    )
                    for n, s in enumerate([a, b, a, b])
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            assert winners[0].priority == 1
        for i in range(len(ids)):
            stored = await b.get_review(f"e{i}")
            assert stored is not None
            assert (stored.priority, stored.deadline) == (1, at(90))
            assert [e.event for e in await a.audit_log(f"e{i}")] == ["paused", "escalated"]
        assert await a.list_overdue(now=at(30)) == []
        assert_chain(await b.audit_rows(), await a.audit_head())

    # -- undated reviews -------------------------------------------------------

    async def test_undated_pending_reviews_oldest_first(self, review_store: ReviewStore) -> None:
        """list_undated: pending reviews without a deadline, by (requested_at, review_id)."""
        reviews = [
            make_due("late", None, review_id="r-late", requested_at=at(9)),
            make_due("tie-b", None, review_id="r-b", requested_at=at(3)),
            make_due("tie-a", None, review_id="r-a", requested_at=at(3)),
            make_due("first", None, review_id="r-first", requested_at=at(1)),
            make_due("dated", at(5), review_id="r-dated"),
            make_due("claimed", None, review_id="r-claimed"),
        ]
        for review in reviews:
            await review_store.open_review(review, owner=None)
        await claim(review_store, "claimed", claim_id="k-c")
        expected = ["r-first", "r-a", "r-b", "r-late"]
        assert [r.review_id for r in await review_store.list_undated()] == expected
        assert [r.review_id for r in await review_store.list_undated(limit=2)] == expected[:2]
        assert await review_store.list_undated(limit=0) == []
        [first, *_] = await review_store.list_undated()
        assert first == await review_store.get_review("first")
        with pytest.raises(ValueError, match="limit"):
            await review_store.list_undated(limit=-1)

    async def test_set_deadline_dates_an_undated_pending_review_once(
        self, review_store: ReviewStore
    ) -> None:
        """set_deadline dates a pending review without one, once; nothing else; no audit row."""
        await review_store.open_review(make_due("t1", None, review_id="r1"), owner=None)
        await review_store.open_review(make_due("t2", at(5), review_id="r2"), owner=None)
        await review_store.open_review(make_due("t3", None, review_id="r3"), owner=None)
        await claim(review_store, "t3")
        deadline = datetime(2024, 5, 1, 18, 0, 0, 654321, tzinfo=IST)
        assert await review_store.set_deadline("r1", deadline=deadline) is True
        stored = await review_store.get_review("t1")
        assert stored is not None
        assert (stored.status, stored.deadline, stored.priority) == ("pending", deadline, 0)
        assert await review_store.set_deadline("r1", deadline=at(99)) is False
        assert await review_store.set_deadline("r2", deadline=at(99)) is False  # has one
        assert await review_store.set_deadline("r3", deadline=at(99)) is False  # claimed
        assert await review_store.set_deadline("nope", deadline=at(99)) is False
        assert (await review_store.get_review("t1")) == stored
        assert (await review_store.get_review("t2")).deadline == at(5)  # type: ignore[union-attr]
        assert (await review_store.get_review("t3")).deadline is None  # type: ignore[union-attr]
        assert [r.review_id for r in await review_store.list_undated()] == []
        assert [r.review_id for r in await review_store.list_overdue(now=deadline)] == [
            "r2",
            "r1",
        ]
        assert [a.event for a in await review_store.audit_rows()] == ["paused"] * 3
        with pytest.raises(ValueError, match="aware"):
            await review_store.set_deadline("r1", deadline=at(1).replace(tzinfo=None))

    async def test_concurrent_set_deadline_dates_once(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Four coordinators on two store instances date each undated review exactly once."""
        a, b = review_store_pair
        for i in range(6):
            await a.open_review(make_due(f"u{i}", None, review_id=f"ru{i}"), owner=None)
        for i in range(6):
            results = await asyncio.gather(
                *(s.set_deadline(f"ru{i}", deadline=at(10 + n)) for n, s in enumerate([a, b, a, b]))
            )
            assert results.count(True) == 1
            stored = await b.get_review(f"u{i}")
            assert stored is not None
            assert stored.deadline == at(10 + results.index(True))
        assert await a.list_undated() == []
