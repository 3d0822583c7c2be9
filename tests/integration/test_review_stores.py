"""Conformance suite every ReviewStore adapter passes, plus SQL-specific concurrency tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance.errors import AlreadyDecidedError, ReviewNotFoundError, ThreadBusyError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import ReviewStore, paused_payload

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
IST = timezone(timedelta(hours=5, minutes=30))


def at(minutes: float) -> datetime:
    """T0 plus `minutes`."""
    return T0 + timedelta(minutes=minutes)


def make_review(
    thread_id: str = "t1",
    checkpoint_id: str = "c1",
    *,
    review_id: str | None = None,
    requested_at: datetime = T0,
    requested_by: str | None = "bot",
    violations: list[RuleResult] | None = None,
) -> ReviewRecord:
    """A pending review with sensible defaults."""
    return ReviewRecord(
        review_id=review_id or f"r-{uuid.uuid4().hex}",
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        status="pending",
        customer_message="Can I get my money back?",
        draft_response="Returns are guaranteed!",
        violations=(
            [RuleResult("guarantee", "review", "promises returns", ("guaranteed",))]
            if violations is None
            else violations
        ),
        requested_at=requested_at,
        requested_by=requested_by,
    )


async def claim(
    store: ReviewStore, thread_id: str = "t1", claim_id: str = "k1", **decision: Any
) -> ReviewRecord:
    """Claim the thread's review for reviewer `alice`."""
    return await store.claim(
        thread_id,
        claim_id=claim_id,
        reviewer="alice",
        decision=decision or {"approved": True},
        now=at(1),
    )


class TestTurns:
    async def test_begin_turn_twice_is_busy_until_ended(self, review_store: ReviewStore) -> None:
        """A second begin_turn on a thread fails until the first turn ends."""
        await review_store.begin_turn("t1", owner="a", now=T0)
        with pytest.raises(ThreadBusyError) as info:
            await review_store.begin_turn("t1", owner="b", now=T0)
        assert info.value.thread_id == "t1"
        await review_store.end_turn("t1", owner="a")
        await review_store.begin_turn("t1", owner="b", now=T0)
        assert [t.owner for t in await review_store.stale_turns(started_before=at(1))] == ["b"]

    async def test_end_turn_by_another_owner_keeps_the_turn(
        self, review_store: ReviewStore
    ) -> None:
        """end_turn only deletes the row when the caller still owns it."""
        await review_store.begin_turn("t1", owner="a", now=T0)
        await review_store.end_turn("t1", owner="b")
        with pytest.raises(ThreadBusyError):
            await review_store.begin_turn("t1", owner="c", now=T0)

    async def test_begin_turn_refused_while_review_open(self, review_store: ReviewStore) -> None:
        """A thread with a pending or claimed review cannot start a turn; a decided one can."""
        review = await review_store.open_review(make_review(), owner=None)
        with pytest.raises(ThreadBusyError, match="paused for review"):
            await review_store.begin_turn("t1", owner="a", now=T0)
        await claim(review_store)
        with pytest.raises(ThreadBusyError, match="paused for review"):
            await review_store.begin_turn("t1", owner="a", now=T0)
        await review_store.complete(
            review.review_id, claim_id="k1", status="approved", now=at(2), actor="alice", payload={}
        )
        await review_store.begin_turn("t1", owner="a", now=at(3))
        assert await review_store.stale_turns(started_before=at(4)) != []

    async def test_refused_begin_turn_writes_nothing(self, review_store: ReviewStore) -> None:
        """A begin_turn refused because of an open review leaves no turn row."""
        await review_store.open_review(make_review(), owner=None)
        with pytest.raises(ThreadBusyError):
            await review_store.begin_turn("t1", owner="a", now=T0)
        assert await review_store.stale_turns(started_before=at(60)) == []

    async def test_stale_turns_and_take_over_turn(self, review_store: ReviewStore) -> None:
        """Old turns are listed, and exactly one take-over of a turn succeeds."""
        await review_store.begin_turn("t1", owner="a", now=T0)
        await review_store.begin_turn("t2", owner="a", now=at(10))
        stale = await review_store.stale_turns(started_before=at(5))
        assert [(t.thread_id, t.owner, t.started_at) for t in stale] == [("t1", "a", T0)]

        assert await review_store.take_over_turn("t1", old_owner="a", new_owner="b", now=at(20))
        assert not await review_store.take_over_turn("t1", old_owner="a", new_owner="c", now=at(20))
        assert not await review_store.take_over_turn("nope", old_owner="a", new_owner="c", now=T0)
        assert await review_store.stale_turns(started_before=at(5)) == []
        (moved,) = [
            t for t in await review_store.stale_turns(started_before=at(30)) if t.thread_id == "t1"
        ]
        assert (moved.owner, moved.started_at) == ("b", at(20))

        await review_store.end_turn("t1", owner="a")  # the old owner no longer holds it
        await review_store.end_turn("t1", owner="b")
        assert [t.thread_id for t in await review_store.stale_turns(started_before=at(30))] == [
            "t2"
        ]


class TestOpenReview:
    async def test_open_review_is_idempotent_per_checkpoint(
        self, review_store: ReviewStore
    ) -> None:
        """Reopening a (thread, checkpoint) returns the first review and writes nothing."""
        first = await review_store.open_review(make_review(review_id="r1"), owner=None)
        again = await review_store.open_review(make_review(review_id="r2"), owner=None)
        assert again.review_id == "r1"
        assert again == first
        assert [r.review_id for r in await review_store.list_pending()] == ["r1"]
        assert [a.event for a in await review_store.audit_log("t1")] == ["paused"]

    async def test_open_review_returns_existing_even_after_decision(
        self, review_store: ReviewStore
    ) -> None:
        """Replaying open_review for a decided checkpoint returns the decided review."""
        review = await review_store.open_review(make_review(review_id="r1"), owner=None)
        await claim(review_store)
        await review_store.complete(
            review.review_id, claim_id="k1", status="rejected", now=at(2), actor="alice", payload={}
        )
        again = await review_store.open_review(make_review(review_id="r2"), owner=None)
        assert (again.review_id, again.status) == ("r1", "rejected")
        assert len(await review_store.audit_log("t1")) == 2

    async def test_open_review_writes_paused_audit_row(self, review_store: ReviewStore) -> None:
        """The paused audit row names the requester, the checkpoint and the draft's hash."""
        review = make_review(review_id="r1", requested_by="drafter-7")
        await review_store.open_review(review, owner=None)
        (row,) = await review_store.audit_log("t1")
        assert (row.event, row.actor, row.review_id, row.checkpoint_id, row.at) == (
            "paused",
            "drafter-7",
            "r1",
            "c1",
            T0,
        )
        assert row.payload == paused_payload(review)

    async def test_paused_audit_actor_defaults_to_system(self, review_store: ReviewStore) -> None:
        """A review without a requester is audited as `system`."""
        await review_store.open_review(make_review(requested_by=None), owner=None)
        (row,) = await review_store.audit_log("t1")
        assert row.actor == "system"

    async def test_open_review_ends_the_owners_turn(self, review_store: ReviewStore) -> None:
        """open_review deletes the turn row of `owner` in the same step."""
        await review_store.begin_turn("t1", owner="a", now=T0)
        await review_store.open_review(make_review(), owner="a")
        assert await review_store.stale_turns(started_before=at(60)) == []

    async def test_open_review_keeps_another_owners_turn(self, review_store: ReviewStore) -> None:
        """open_review leaves a turn row that belongs to someone else."""
        await review_store.begin_turn("t1", owner="a", now=T0)
        await review_store.open_review(make_review(), owner="b")
        assert [t.owner for t in await review_store.stale_turns(started_before=at(60))] == ["a"]

    async def test_get_review_returns_the_latest(self, review_store: ReviewStore) -> None:
        """get_review returns the thread's newest review, None for an unknown thread."""
        assert await review_store.get_review("t1") is None
        first = await review_store.open_review(make_review(review_id="r1"), owner=None)
        await claim(review_store)
        await review_store.complete(
            first.review_id, claim_id="k1", status="approved", now=at(2), actor="alice", payload={}
        )
        # An earlier requested_at must not matter: "latest" is the latest opened.
        await review_store.open_review(
            make_review(checkpoint_id="c2", review_id="r0", requested_at=at(-60)), owner=None
        )
        latest = await review_store.get_review("t1")
        assert latest is not None
        assert (latest.review_id, latest.status) == ("r0", "pending")


class TestOpenReviewConstraints:
    async def test_second_open_review_of_a_thread_is_refused(
        self, review_store: ReviewStore
    ) -> None:
        """A thread has at most one open review: a second checkpoint's review is refused."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        with pytest.raises(ThreadBusyError):
            await review_store.open_review(make_review(checkpoint_id="c2"), owner=None)
        assert [r.review_id for r in await review_store.list_pending()] == ["r1"]
        assert len(await review_store.audit_log("t1")) == 1

    async def test_naive_datetimes_are_refused(self, review_store: ReviewStore) -> None:
        """A naive datetime raises ValueError before anything is written."""
        naive = datetime(2024, 1, 1)
        with pytest.raises(ValueError, match="timezone-aware"):
            await review_store.begin_turn("t1", owner="a", now=naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            await review_store.open_review(make_review(requested_at=naive), owner=None)
        assert await review_store.get_review("t1") is None
        assert await review_store.stale_turns(started_before=at(1)) == []


class TestListPending:
    async def test_oldest_first_with_ties_by_review_id(self, review_store: ReviewStore) -> None:
        """Pending reviews come back oldest first; equal times are ordered by review id."""
        await review_store.open_review(
            make_review("ta", review_id="r-b", requested_at=at(5)), owner=None
        )
        await review_store.open_review(
            make_review("tb", review_id="r-c", requested_at=at(1)), owner=None
        )
        await review_store.open_review(
            make_review("tc", review_id="r-a", requested_at=at(5)), owner=None
        )
        await review_store.open_review(
            make_review("td", review_id="R-z", requested_at=at(5)), owner=None
        )
        pending = await review_store.list_pending()
        assert [r.review_id for r in pending] == ["r-c", "R-z", "r-a", "r-b"]
        assert [r.review_id for r in await review_store.list_pending(limit=2)] == ["r-c", "R-z"]
        assert await review_store.list_pending(limit=0) == []

    async def test_claimed_reviews_are_not_pending_until_released(
        self, review_store: ReviewStore
    ) -> None:
        """Claiming hides a review from list_pending; releasing shows it again."""
        await review_store.open_review(
            make_review("t1", review_id="r1", requested_at=at(1)), owner=None
        )
        await review_store.open_review(
            make_review("t2", review_id="r2", requested_at=at(2)), owner=None
        )
        claimed = await claim(review_store, "t1")
        assert [r.review_id for r in await review_store.list_pending()] == ["r2"]
        await review_store.release(claimed.review_id, claim_id="k1")
        assert [r.review_id for r in await review_store.list_pending()] == ["r1", "r2"]


class TestClaim:
    async def test_claim_records_the_decision(self, review_store: ReviewStore) -> None:
        """A claim sets status, claim id, reviewer, time and decision, and returns the row."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        decision = {"approved": False, "reason": "too risky", "meta": {"n": [1, 2.5, None]}}
        claimed = await review_store.claim(
            "t1", claim_id="k1", reviewer="alice", decision=decision, now=at(1)
        )
        assert (claimed.review_id, claimed.status, claimed.claim_id, claimed.reviewer) == (
            "r1",
            "claimed",
            "k1",
            "alice",
        )
        assert claimed.claimed_at == at(1)
        assert claimed.decision == decision
        assert await review_store.get_review("t1") == claimed

    async def test_concurrent_claims_exactly_one_wins(self, review_store: ReviewStore) -> None:
        """Of 20 simultaneous claims exactly one succeeds; the rest get AlreadyDecidedError."""
        await review_store.open_review(make_review(), owner=None)
        results = await asyncio.gather(
            *(claim(review_store, claim_id=f"k{i}") for i in range(20)), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, ReviewRecord)]
        losers = [r for r in results if isinstance(r, AlreadyDecidedError)]
        assert len(winners) == 1
        assert len(losers) == 19
        assert {e.status for e in losers} == {"claimed"}
        stored = await review_store.get_review("t1")
        assert stored is not None
        assert stored.claim_id == winners[0].claim_id

    async def test_unknown_thread_is_not_found(self, review_store: ReviewStore) -> None:
        """Claiming a thread that never paused raises ReviewNotFoundError."""
        with pytest.raises(ReviewNotFoundError) as info:
            await claim(review_store, "ghost")
        assert info.value.thread_id == "ghost"

    async def test_decided_review_cannot_be_claimed(self, review_store: ReviewStore) -> None:
        """Claiming after the review was decided raises AlreadyDecidedError with its status."""
        review = await review_store.open_review(make_review(), owner=None)
        await claim(review_store)
        await review_store.complete(
            review.review_id, claim_id="k1", status="approved", now=at(2), actor="alice", payload={}
        )
        with pytest.raises(AlreadyDecidedError) as info:
            await claim(review_store, claim_id="k2")
        assert (info.value.status, info.value.thread_id) == ("approved", "t1")

    async def test_release_returns_review_to_pending(self, review_store: ReviewStore) -> None:
        """release clears the claim so another decision can claim the review."""
        review = await review_store.open_review(make_review(), owner=None)
        await claim(review_store)
        await review_store.release(review.review_id, claim_id="wrong")
        still = await review_store.get_review("t1")
        assert still is not None
        assert (still.status, still.claim_id) == ("claimed", "k1")
        await review_store.release(review.review_id, claim_id="k1")
        released = await review_store.get_review("t1")
        assert released is not None
        assert (released.status, released.claim_id, released.claimed_at) == ("pending", None, None)
        assert (released.reviewer, released.decision) == (None, None)
        assert (await claim(review_store, claim_id="k2")).claim_id == "k2"

    async def test_release_of_unknown_review_is_a_no_op(self, review_store: ReviewStore) -> None:
        """Releasing a review that does not exist does nothing and raises nothing."""
        await review_store.release("nope", claim_id="k1")


class TestComplete:
    async def test_complete_finalises_and_audits(self, review_store: ReviewStore) -> None:
        """complete sets the final status and appends an audit row with the payload."""
        review = await review_store.open_review(make_review(review_id="r1"), owner=None)
        await claim(review_store)
        done = await review_store.complete(
            "r1", claim_id="k1", status="rejected", now=at(2), actor="alice", payload={"why": "x"}
        )
        assert (done.status, done.decided_at, done.reviewer) == ("rejected", at(2), "alice")
        assert await review_store.get_review("t1") == done
        paused, rejected = await review_store.audit_log("t1")
        assert paused.event == "paused"
        assert (rejected.event, rejected.actor, rejected.payload, rejected.at) == (
            "rejected",
            "alice",
            {"why": "x"},
            at(2),
        )
        assert (rejected.review_id, rejected.checkpoint_id) == (review.review_id, "c1")
        assert rejected.seq > paused.seq

    async def test_complete_with_wrong_claim_changes_nothing(
        self, review_store: ReviewStore
    ) -> None:
        """complete with a claim id that does not hold the review raises and writes nothing."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        claimed = await claim(review_store)
        with pytest.raises(AlreadyDecidedError) as info:
            await review_store.complete(
                "r1", claim_id="other", status="approved", now=at(2), actor="bob", payload={}
            )
        assert (info.value.thread_id, info.value.status) == ("t1", "claimed")
        assert await review_store.get_review("t1") == claimed
        assert len(await review_store.audit_log("t1")) == 1

    async def test_complete_of_unknown_review(self, review_store: ReviewStore) -> None:
        """complete of a review id that does not exist raises AlreadyDecidedError."""
        with pytest.raises(AlreadyDecidedError) as info:
            await review_store.complete(
                "nope", claim_id="k1", status="approved", now=at(2), actor="bob", payload={}
            )
        assert (info.value.thread_id, info.value.status) == (None, None)

    async def test_complete_twice_fails_the_second_time(self, review_store: ReviewStore) -> None:
        """A claim completes once; repeating it raises AlreadyDecidedError."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await claim(review_store)
        await review_store.complete(
            "r1", claim_id="k1", status="expired", now=at(2), actor="sweeper", payload={}
        )
        with pytest.raises(AlreadyDecidedError) as info:
            await review_store.complete(
                "r1", claim_id="k1", status="approved", now=at(3), actor="alice", payload={}
            )
        assert info.value.status == "expired"


class TestAbandonedClaims:
    async def test_abandoned_claims_are_listed_and_taken_over_once(
        self, review_store: ReviewStore
    ) -> None:
        """Old claims are listed; one take-over wins and the old claim id stops working."""
        await review_store.open_review(make_review("t1", review_id="r1"), owner=None)
        await review_store.open_review(make_review("t2", review_id="r2"), owner=None)
        await review_store.claim("t1", claim_id="k1", reviewer="a", decision={}, now=at(1))
        await review_store.claim("t2", claim_id="k2", reviewer="a", decision={}, now=at(10))
        old = await review_store.abandoned_claims(claimed_before=at(5))
        assert [r.review_id for r in old] == ["r1"]

        assert await review_store.take_over_claim(
            "r1", old_claim_id="k1", new_claim_id="n1", now=at(20)
        )
        assert not await review_store.take_over_claim(
            "r1", old_claim_id="k1", new_claim_id="n2", now=at(20)
        )
        assert not await review_store.take_over_claim(
            "r9", old_claim_id="k", new_claim_id="n", now=T0
        )
        assert await review_store.abandoned_claims(claimed_before=at(5)) == []
        moved = await review_store.get_review("t1")
        assert moved is not None
        assert (moved.claim_id, moved.claimed_at, moved.status) == ("n1", at(20), "claimed")

        with pytest.raises(AlreadyDecidedError):
            await review_store.complete(
                "r1", claim_id="k1", status="approved", now=at(21), actor="a", payload={}
            )
        done = await review_store.complete(
            "r1", claim_id="n1", status="approved", now=at(21), actor="recovery", payload={}
        )
        assert done.status == "approved"

    async def test_pending_reviews_are_not_abandoned(self, review_store: ReviewStore) -> None:
        """Only claimed reviews can be abandoned claims."""
        await review_store.open_review(make_review(requested_at=T0), owner=None)
        assert await review_store.abandoned_claims(claimed_before=at(60)) == []
        assert not await review_store.take_over_claim(
            "r", old_claim_id="k", new_claim_id="n", now=T0
        )


class TestAudit:
    async def test_audit_log_is_per_thread_in_append_order(self, review_store: ReviewStore) -> None:
        """append_audit returns increasing seqs and audit_log lists a thread's rows in order."""
        rows = []
        for i, thread in enumerate(["t1", "t2", "t1", "t1"]):
            rows.append(
                await review_store.append_audit(
                    thread_id=thread,
                    review_id=None,
                    checkpoint_id=None,
                    event="recovered" if i else "note",
                    actor=f"actor{i}",
                    payload={"i": i},
                    # Times deliberately out of order: the log is ordered by append.
                    at=at(10 - i),
                )
            )
        assert [r.seq for r in rows] == sorted(r.seq for r in rows)
        assert len({r.seq for r in rows}) == 4
        log = await review_store.audit_log("t1")
        assert [r.payload["i"] for r in log] == [0, 2, 3]
        assert log == [rows[0], rows[2], rows[3]]
        assert await review_store.audit_log("nobody") == []


class TestRoundTrip:
    async def test_datetimes_come_back_aware_and_equal(self, review_store: ReviewStore) -> None:
        """Datetimes in any timezone come back timezone-aware and equal to the instant stored."""
        requested = datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=IST)
        await review_store.open_review(make_review(requested_at=requested), owner=None)
        claimed_at = datetime(2024, 3, 31, 2, 0, 0, 1, tzinfo=IST)
        review = await review_store.claim(
            "t1", claim_id="k", reviewer="a", decision={}, now=claimed_at
        )
        decided_at = T0.replace(microsecond=1)
        await review_store.complete(
            review.review_id, claim_id="k", status="approved", now=decided_at, actor="a", payload={}
        )
        await review_store.begin_turn("t9", owner="o", now=requested)

        stored = await review_store.get_review("t1")
        assert stored is not None
        for value, expected in [
            (stored.requested_at, requested),
            (stored.claimed_at, claimed_at),
            (stored.decided_at, decided_at),
        ]:
            assert value is not None
            assert value.tzinfo is not None
            assert value == expected
        (turn,) = await review_store.stale_turns(started_before=T0)
        assert turn.started_at.tzinfo is not None
        assert turn.started_at == requested
        paused, approved = await review_store.audit_log("t1")
        assert (paused.at, approved.at) == (requested, decided_at)
        assert paused.at.tzinfo is not None

    async def test_violations_and_decision_round_trip(self, review_store: ReviewStore) -> None:
        """RuleResults (with evidence) and the decision dict come back equal."""
        violations = [
            RuleResult("guarantee", "review", "promises returns", ("guaranteed", "risk-free")),
            RuleResult("pii", "block", 'quotes "IBAN" ünïcödé ✓', ("DE89 3704 0044",)),
            RuleResult("empty", "pass"),
        ]
        review = make_review(violations=violations)
        await review_store.open_review(review, owner=None)
        stored = await review_store.get_review("t1")
        assert stored is not None
        assert stored.violations == violations
        assert all(isinstance(v.evidence, tuple) for v in stored.violations)
        assert (stored.customer_message, stored.draft_response) == (
            review.customer_message,
            review.draft_response,
        )
        decision = {"approved": True, "edited": "Bonjour 👋", "tags": ["a", "b"], "n": None}
        claimed = await review_store.claim(
            "t1", claim_id="k", reviewer="a", decision=decision, now=at(1)
        )
        assert claimed.decision == decision
        (pending_view,) = [r.to_pending() for r in [stored]]
        assert pending_view.violations == violations


class TestSetup:
    async def test_setup_is_idempotent(self, review_store: ReviewStore) -> None:
        """Calling setup again keeps existing data."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await review_store.setup()
        assert [r.review_id for r in await review_store.list_pending()] == ["r1"]


# -- SQLite only -------------------------------------------------------------------------


@pytest.fixture
async def two_sqlite_stores(sqlite_path: Path) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
    """Two independent SQLite stores (two connections) on the same file."""
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    async with SqliteReviewStore(sqlite_path) as a, SqliteReviewStore(sqlite_path) as b:
        yield a, b


class TestSqliteReviewStore:
    async def test_two_stores_on_one_file_claim_exactly_once(
        self, two_sqlite_stores: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Claims racing through two connections to one file: exactly one wins."""
        a, b = two_sqlite_stores
        await a.open_review(make_review(), owner=None)
        results = await asyncio.gather(
            *(claim(a if i % 2 else b, claim_id=f"k{i}") for i in range(20)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, ReviewRecord)]
        assert len(winners) == 1
        assert all(isinstance(r, AlreadyDecidedError) for r in results if r not in winners)
        assert (await b.get_review("t1")) == winners[0]

    async def test_two_stores_on_one_file_begin_turn_exactly_once(
        self, two_sqlite_stores: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """begin_turn racing through two connections: exactly one turn starts."""
        a, b = two_sqlite_stores
        results = await asyncio.gather(
            *(s.begin_turn("t1", owner=f"o{i}", now=T0) for i, s in enumerate([a, b] * 5)),
            return_exceptions=True,
        )
        assert results.count(None) == 1
        assert all(isinstance(r, ThreadBusyError) for r in results if r is not None)

    async def test_data_survives_reopening_the_file(self, sqlite_path: Path) -> None:
        """A review written, closed and reopened from the file is unchanged."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            review = await store.open_review(make_review(), owner=None)
        async with SqliteReviewStore(sqlite_path) as store:
            assert await store.get_review("t1") == review
            assert len(await store.audit_log("t1")) == 1

    async def test_table_prefix_separates_stores(self, sqlite_path: Path) -> None:
        """Two prefixes on one file are two independent stores."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with (
            SqliteReviewStore(sqlite_path) as a,
            SqliteReviewStore(sqlite_path, table_prefix="other_") as b,
        ):
            await a.open_review(make_review(), owner=None)
            assert await b.get_review("t1") is None

    async def test_bad_prefix_and_use_before_setup(self, sqlite_path: Path) -> None:
        """A non-identifier prefix and a call before setup raise ConfigurationError."""
        from hitl_compliance.errors import ConfigurationError
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        with pytest.raises(ConfigurationError, match="table_prefix"):
            SqliteReviewStore(sqlite_path, table_prefix="x; DROP TABLE y")
        with pytest.raises(ConfigurationError, match="setup"):
            await SqliteReviewStore(sqlite_path).get_review("t1")

    async def test_missing_directory_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A database in a directory that does not exist fails setup with ConfigurationError."""
        from hitl_compliance.errors import ConfigurationError
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        store = SqliteReviewStore(tmp_path / "missing" / "x.db")
        with pytest.raises(ConfigurationError, match="directory"):
            await store.setup()
        await store.aclose()

    async def test_pending_query_uses_the_partial_index(self, sqlite_path: Path) -> None:
        """list_pending reads the partial pending index, not the whole table."""
        import aiosqlite

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path):
            pass
        async with (
            aiosqlite.connect(sqlite_path) as conn,
            conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM hitl_reviews WHERE status = 'pending' "
                "ORDER BY requested_at, review_id LIMIT 10"
            ) as cur,
        ):
            plan = " ".join(str(row[-1]) for row in await cur.fetchall())
        assert "hitl_reviews_pending" in plan
        assert "TEMP B-TREE" not in plan


# -- PostgreSQL only ---------------------------------------------------------------------


@pytest.mark.postgres
class TestPostgresReviewStore:
    async def test_works_on_a_plain_pool(self, postgres_dsn: str) -> None:
        """The store works on a pool without autocommit and with tuple rows."""
        from psycopg_pool import AsyncConnectionPool

        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=2, open=False) as pool:
            store = PostgresReviewStore(pool, table_prefix=f"p{uuid.uuid4().hex[:8]}_")
            await store.setup()
            await store.begin_turn("t1", owner="a", now=T0)
            await store.open_review(make_review(), owner="a")
            claimed = await claim(store)
            await store.complete(
                claimed.review_id,
                claim_id="k1",
                status="approved",
                now=at(2),
                actor="a",
                payload={},
            )
            assert [a.event for a in await store.audit_log("t1")] == ["paused", "approved"]
            assert await store.list_pending() == []
            await store.aclose()
            assert not pool.closed  # a pool passed in is the caller's to close

    async def test_two_pools_claim_and_begin_turn_exactly_once(self, postgres_dsn: str) -> None:
        """Claims and begin_turns racing through two pools: exactly one of each wins."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        prefix = f"p{uuid.uuid4().hex[:8]}_"
        a = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        b = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        # Concurrent setup on fresh tables must not fail either.
        await asyncio.gather(a.setup(), b.setup())
        try:
            await a.open_review(make_review(), owner=None)
            claims = await asyncio.gather(
                *(claim(a if i % 2 else b, claim_id=f"k{i}") for i in range(20)),
                return_exceptions=True,
            )
            assert sum(isinstance(r, ReviewRecord) for r in claims) == 1
            assert sum(isinstance(r, AlreadyDecidedError) for r in claims) == 19

            turns = await asyncio.gather(
                *(s.begin_turn("t2", owner=f"o{i}", now=T0) for i, s in enumerate([a, b] * 5)),
                return_exceptions=True,
            )
            assert turns.count(None) == 1
            assert all(isinstance(r, ThreadBusyError) for r in turns if r is not None)
        finally:
            await a.aclose()
            await b.aclose()

    async def test_begin_turn_races_open_review(self, postgres_dsn: str) -> None:
        """A begin_turn racing the open_review that ends a turn never leaves both open."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=f"p{uuid.uuid4().hex[:8]}_"
        ) as store:
            for i in range(20):
                thread = f"t{i}"
                await store.begin_turn(thread, owner="a", now=T0)
                results = await asyncio.gather(
                    store.open_review(make_review(thread), owner="a"),
                    store.begin_turn(thread, owner="b", now=T0),
                    return_exceptions=True,
                )
                assert isinstance(results[0], ReviewRecord)
                assert isinstance(results[1], ThreadBusyError)
            assert await store.stale_turns(started_before=at(60)) == []
