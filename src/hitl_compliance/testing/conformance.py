"""A conformance suite for review stores: subclass it to prove an adapter meets the protocol.

[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance]
holds the tests every [`ReviewStore`][hitl_compliance.stores.ReviewStore]
adapter must pass: turns, opening reviews, listing and filtering pending
reviews with a keyset cursor, exactly-once claims and quorum votes under
concurrency, completion, abandoned claims, deadlines and escalation, the hook
outbox and its leases, round-tripping of times and payloads, and the sealed audit ledger.
Our memory, SQLite and PostgreSQL stores run it in our own CI.

Subclass it in a test module (the name must start with `Test`) and provide
the `review_store` fixture: a freshly set-up store on empty tables, closed
afterwards. Override `review_store_pair` too when two instances of your
store can share one database, so the races also run across instances.

Example:
    ```python
    import pytest_asyncio
    from hitl_compliance.testing.conformance import ReviewStoreConformance

    class TestMyStore(ReviewStoreConformance):
        @pytest_asyncio.fixture
        async def review_store(self, tmp_path):
            store = MyReviewStore(tmp_path / "reviews.db")
            await store.setup()
            yield store
            await store.aclose()
    ```

Needs the `testing` extra (pytest and pytest-asyncio); the tests are marked
`asyncio`, so they run under pytest-asyncio's strict and auto modes alike.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance.errors import (
    AlreadyDecidedError,
    DuplicateVoteError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.ledger import GENESIS, row_hash, verify_rows
from hitl_compliance.models import AuditRecord, ReviewRecord, Vote, sha256_text
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import ReviewStore, paused_payload

__all__ = [
    "DRAFT",
    "T0",
    "ReviewStoreConformance",
    "assert_chain",
    "at",
    "cast_vote",
    "claim",
    "make_due",
    "make_review",
    "make_vote",
    "rules",
]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
"""The suite's reference time: aware, with microseconds, to catch lossy storage."""
IST = timezone(timedelta(hours=5, minutes=30))
DRAFT = "Returns are guaranteed!"
"""The draft every review made by `make_review` carries."""


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
    approvals_required: int = 1,
    votes: list[Vote] | None = None,
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
        approvals_required=approvals_required,
        votes=[] if votes is None else votes,
    )


def make_vote(reviewer: str, text: str = DRAFT, *, minutes: float = 1) -> Vote:
    """`reviewer`'s approval of `text` (the draft by default)."""
    return Vote(
        reviewer=reviewer,
        roles=["compliance"],
        at=at(minutes),
        text_sha256=sha256_text(text),
        response=None if text == DRAFT else text,
        metadata={"ticket": f"C-{reviewer}", "note": "ünïcödé ✓"},
    )


async def cast_vote(
    store: ReviewStore,
    reviewer: str,
    *,
    review_id: str,
    thread_id: str = "t1",
    quorum: int = 2,
    text: str = DRAFT,
    minutes: float = 1,
) -> ReviewRecord:
    """Vote for `reviewer` with claim id `k-<reviewer>`."""
    return await store.vote(
        thread_id,
        review_id=review_id,
        vote=make_vote(reviewer, text, minutes=minutes),
        quorum=quorum,
        claim_id=f"k-{reviewer}",
        decision={"approved": True, "reviewer": reviewer},
        now=at(minutes),
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


def rules(*names: str) -> list[RuleResult]:
    """One `review` finding per rule name."""
    return [RuleResult(name, "review", f"{name} found") for name in names]


def make_due(
    thread_id: str,
    deadline: datetime | None,
    *,
    review_id: str | None = None,
    priority: int = 0,
    requested_at: datetime = T0,
    approvals_required: int = 1,
) -> ReviewRecord:
    """A pending review with a deadline (or none) and a priority."""
    review = make_review(
        thread_id,
        review_id=review_id,
        requested_at=requested_at,
        approvals_required=approvals_required,
    )
    return review.model_copy(update={"deadline": deadline, "priority": priority})


def assert_chain(rows: list[AuditRecord], head: tuple[int, str] | None) -> None:
    """Rows are numbered 1..n without gaps, each sealed and linked, and the head is the last."""
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    last_of_thread: dict[str, str] = {}
    previous = GENESIS
    for record in rows:
        assert record.hash == row_hash(record.to_row())
        assert record.prev_hash == last_of_thread.get(record.thread_id, GENESIS)
        assert record.global_prev_hash == previous
        last_of_thread[record.thread_id] = previous = record.hash
    assert head == ((rows[-1].seq, rows[-1].hash) if rows else None)
    report = verify_rows([r.to_row() for r in rows], head=head or (0, ""))
    assert report.ok, report.first_broken
    assert report.checked == len(rows)


class ReviewStoreConformance:
    """The tests every `ReviewStore` adapter passes; subclass it and provide `review_store`.

    `review_store` must yield a store whose `setup()` has run on empty tables
    and close it afterwards. `review_store_pair` defaults to the same store
    twice; override it to yield two instances sharing one database, so the
    exactly-once races also run across instances (processes, in production).
    """

    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def review_store(self) -> AsyncIterator[ReviewStore]:
        """Override: a set-up store on empty tables, closed after the test."""
        pytest.fail(
            f"{type(self).__name__} must provide a `review_store` fixture: a set-up "
            "ReviewStore on empty tables (see hitl_compliance.testing.conformance)"
        )
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def review_store_pair(
        self, review_store: ReviewStore
    ) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
        """Override: two store instances on the same data; by default the same store twice."""
        yield review_store, review_store

    # -- turns -----------------------------------------------------------------

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

    # -- open review -----------------------------------------------------------

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

    # -- open review constraints -----------------------------------------------

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

    # -- list pending ----------------------------------------------------------

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

    async def test_limits_are_checked_alike(self, review_store: ReviewStore) -> None:
        """limit=0 lists nothing; a negative or boolean limit is a ValueError, on every store."""
        await review_store.open_review(
            make_due("t1", at(1)).model_copy(update={"review_id": "r1"}), owner=None
        )
        assert await review_store.list_pending(limit=0) == []
        assert await review_store.list_overdue(now=at(2), limit=0) == []
        assert [r.review_id for r in await review_store.list_overdue(now=at(2), limit=1)] == ["r1"]
        for bad in (-1, True):
            with pytest.raises(ValueError, match="limit"):
                await review_store.list_pending(limit=bad)
            with pytest.raises(ValueError, match="limit"):
                await review_store.list_overdue(now=at(2), limit=bad)

    # -- claim -----------------------------------------------------------------

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

    # -- complete --------------------------------------------------------------

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

    # -- abandoned claims ------------------------------------------------------

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

    # -- audit -----------------------------------------------------------------

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

    # -- round trip ------------------------------------------------------------

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

    # -- setup -----------------------------------------------------------------

    async def test_setup_is_idempotent(self, review_store: ReviewStore) -> None:
        """Calling setup again keeps existing data."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await review_store.setup()
        assert [r.review_id for r in await review_store.list_pending()] == ["r1"]

    # -- votes -----------------------------------------------------------------

    async def test_open_review_persists_votes_and_approvals_required(
        self, review_store: ReviewStore
    ) -> None:
        """approvals_required and votes given to open_review come back on every read."""
        review = make_review(review_id="r1", approvals_required=3, votes=[make_vote("zoe")])
        await review_store.open_review(review, owner=None)
        assert await review_store.get_review("t1") == review
        (pending,) = await review_store.list_pending()
        assert (pending.approvals_required, pending.votes) == (3, [make_vote("zoe")])
        assert pending.to_pending().votes == [make_vote("zoe")]

    async def test_vote_below_quorum_stays_pending_and_is_audited(
        self, review_store: ReviewStore
    ) -> None:
        """A vote short of the quorum is stored, audited as `voted`, and leaves it pending."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        updated = await cast_vote(review_store, "alice", review_id="r1", minutes=3)
        assert (updated.status, updated.votes, updated.claim_id) == (
            "pending",
            [make_vote("alice", minutes=3)],
            None,
        )
        assert await review_store.get_review("t1") == updated
        assert await review_store.list_pending() == [updated]
        paused, voted = await review_store.audit_log("t1")
        assert paused.event == "paused"
        assert (voted.event, voted.actor, voted.review_id, voted.checkpoint_id, voted.at) == (
            "voted",
            "alice",
            "r1",
            "c1",
            at(3),
        )
        assert voted.payload == make_vote("alice", minutes=3).model_dump(mode="json")

    async def test_vote_completing_the_quorum_claims_the_review(
        self, review_store: ReviewStore
    ) -> None:
        """The vote reaching the quorum claims the review for its voter, without a voted row."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await cast_vote(review_store, "alice", review_id="r1")
        claimed = await cast_vote(review_store, "bob", review_id="r1", minutes=2)
        assert (claimed.status, claimed.claim_id, claimed.reviewer, claimed.claimed_at) == (
            "claimed",
            "k-bob",
            "bob",
            at(2),
        )
        assert claimed.decision == {"approved": True, "reviewer": "bob"}
        assert claimed.votes == [make_vote("alice"), make_vote("bob", minutes=2)]
        assert await review_store.get_review("t1") == claimed
        assert await review_store.list_pending() == []
        assert [a.event for a in await review_store.audit_log("t1")] == ["paused", "voted"]
        done = await review_store.complete(
            "r1", claim_id="k-bob", status="approved", now=at(3), actor="bob", payload={}
        )
        assert (done.status, done.votes) == ("approved", claimed.votes)
        with pytest.raises(AlreadyDecidedError) as info:
            await cast_vote(review_store, "carol", review_id="r1")
        assert info.value.status == "approved"

    async def test_quorum_of_one_claims_at_once(self, review_store: ReviewStore) -> None:
        """With quorum 1 the first vote claims the review; no `voted` row is written."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        claimed = await cast_vote(review_store, "alice", review_id="r1", quorum=1)
        assert (claimed.status, claimed.reviewer, claimed.votes) == (
            "claimed",
            "alice",
            [make_vote("alice")],
        )
        assert [a.event for a in await review_store.audit_log("t1")] == ["paused"]

    async def test_duplicate_vote_raises_and_changes_nothing(
        self, review_store: ReviewStore
    ) -> None:
        """A reviewer's second vote, even for another text, raises DuplicateVoteError."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        first = await cast_vote(review_store, "alice", review_id="r1")
        log = await review_store.audit_log("t1")
        for text in (DRAFT, "An edited reply."):
            with pytest.raises(DuplicateVoteError) as info:
                await cast_vote(review_store, "alice", review_id="r1", text=text, quorum=1)
            assert isinstance(info.value, AlreadyDecidedError)
            assert (info.value.thread_id, info.value.status) == ("t1", "pending")
        assert await review_store.get_review("t1") == first
        assert await review_store.audit_log("t1") == log

    async def test_duplicate_vote_under_another_spelling_raises(
        self, review_store: ReviewStore
    ) -> None:
        """A vote by a case, space, NFKC or look-alike spelling of a voter's id is a duplicate."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        first = await cast_vote(review_store, "alice@bank", review_id="r1", quorum=3)
        log = await review_store.audit_log("t1")
        for variant in (
            "Alice@Bank",
            " alice@bank\u00a0",
            "\uff41lice@bank",  # FULLWIDTH LATIN SMALL LETTER A
            "\u0430lice@bank",  # CYRILLIC SMALL LETTER A
            "al\u200bice@bank",  # ZERO WIDTH SPACE
            "aIice@bank",  # capital I for l
        ):
            with pytest.raises(DuplicateVoteError):
                await cast_vote(review_store, variant, review_id="r1", quorum=1)
        assert await review_store.get_review("t1") == first
        assert await review_store.audit_log("t1") == log

    async def test_vote_keeps_the_id_as_given_beside_its_key(
        self, review_store: ReviewStore
    ) -> None:
        """A stored vote keeps the reviewer id as given and its canonical key beside it."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        updated = await cast_vote(review_store, " Alice@Bank ", review_id="r1", quorum=3)
        [vote] = updated.votes
        assert (vote.reviewer, vote.reviewer_key) == (" Alice@Bank ", "allce@bank")
        [stored] = (await review_store.get_review("t1")).votes  # type: ignore[union-attr]
        assert stored == vote

    async def test_duplicate_check_compares_the_stored_key(self, review_store: ReviewStore) -> None:
        """Votes are compared by `reviewer_key` as given, so a policy's own canonical form holds."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)

        async def vote(reviewer: str, key: str, quorum: int = 3) -> ReviewRecord:
            return await review_store.vote(
                "t1",
                review_id="r1",
                vote=make_vote(reviewer).model_copy(update={"reviewer_key": key}),
                quorum=quorum,
                claim_id=f"k-{reviewer}",
                decision={"approved": True, "reviewer": reviewer},
                now=at(1),
            )

        first = await vote("emp-1", "person-7")
        with pytest.raises(DuplicateVoteError):
            await vote("emp-2", "person-7", quorum=1)
        assert await review_store.get_review("t1") == first
        claimed = await vote("emp-3", "person-8", quorum=2)
        assert (claimed.status, [v.reviewer_key for v in claimed.votes]) == (
            "claimed",
            ["person-7", "person-8"],
        )

    async def test_votes_for_different_texts_do_not_add_up(self, review_store: ReviewStore) -> None:
        """Only votes for the same text_sha256 count towards the quorum."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await cast_vote(review_store, "alice", review_id="r1")
        edited = await cast_vote(review_store, "bob", review_id="r1", text="An edited reply.")
        assert edited.status == "pending"
        assert [v.reviewer for v in edited.votes] == ["alice", "bob"]
        claimed = await cast_vote(review_store, "carol", review_id="r1")
        assert (claimed.status, claimed.reviewer) == ("claimed", "carol")
        assert [v.reviewer for v in claimed.votes] == ["alice", "bob", "carol"]
        assert [a.actor for a in await review_store.audit_log("t1")][1:] == ["alice", "bob"]

    async def test_vote_errors(self, review_store: ReviewStore) -> None:
        """Unknown thread, wrong or stale review id, and a claimed review all refuse a vote."""
        with pytest.raises(ReviewNotFoundError) as missing:
            await cast_vote(review_store, "alice", review_id="r1", thread_id="ghost")
        assert missing.value.thread_id == "ghost"

        await review_store.open_review(make_review(review_id="r1"), owner=None)
        with pytest.raises(AlreadyDecidedError) as wrong:
            await cast_vote(review_store, "alice", review_id="nope")
        assert (type(wrong.value), wrong.value.thread_id, wrong.value.status) == (
            AlreadyDecidedError,
            "t1",
            None,
        )
        await claim(review_store)
        with pytest.raises(AlreadyDecidedError) as claimed:
            await cast_vote(review_store, "bob", review_id="r1")
        assert claimed.value.status == "claimed"
        await review_store.complete(
            "r1", claim_id="k1", status="approved", now=at(2), actor="alice", payload={}
        )
        await review_store.open_review(make_review(checkpoint_id="c2", review_id="r2"), owner=None)
        with pytest.raises(AlreadyDecidedError) as stale:
            await cast_vote(review_store, "bob", review_id="r1")
        assert stale.value.status == "approved"
        latest = await review_store.get_review("t1")
        assert latest is not None
        assert (latest.review_id, latest.votes) == ("r2", [])
        assert [a.event for a in await review_store.audit_log("t1")] == [
            "paused",
            "approved",
            "paused",
        ]

    async def test_vote_refuses_naive_now(self, review_store: ReviewStore) -> None:
        """A naive `now` raises ValueError and records nothing."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        with pytest.raises(ValueError, match="timezone-aware"):
            await review_store.vote(
                "t1",
                review_id="r1",
                vote=make_vote("alice"),
                quorum=2,
                claim_id="k",
                decision={},
                now=datetime(2024, 1, 1),
            )
        review = await review_store.get_review("t1")
        assert review is not None
        assert review.votes == []

    async def test_release_drops_the_claimers_vote(self, review_store: ReviewStore) -> None:
        """Releasing a quorum claim drops the claimer's vote; the others' votes stay."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await cast_vote(review_store, "alice", review_id="r1")
        await cast_vote(review_store, "bob", review_id="r1")
        await review_store.release("r1", claim_id="k-bob")
        released = await review_store.get_review("t1")
        assert released is not None
        assert (released.status, released.claim_id, released.reviewer) == ("pending", None, None)
        assert released.votes == [make_vote("alice")]
        assert await review_store.list_pending() == [released]
        # Bob's vote no longer counts, so he may vote again and complete the quorum.
        again = await cast_vote(review_store, "bob", review_id="r1", minutes=5)
        assert (again.status, again.claim_id) == ("claimed", "k-bob")
        assert [v.reviewer for v in again.votes] == ["alice", "bob"]

    async def test_release_of_a_plain_claim_keeps_the_votes(
        self, review_store: ReviewStore
    ) -> None:
        """A claim keeps earlier votes; releasing it (the claimer did not vote) keeps them too."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await cast_vote(review_store, "alice", review_id="r1")
        rejected = await review_store.claim(
            "t1", claim_id="kc", reviewer="carol", decision={"approved": False}, now=at(2)
        )
        assert rejected.votes == [make_vote("alice")]
        await review_store.release("r1", claim_id="kc")
        released = await review_store.get_review("t1")
        assert released is not None
        assert (released.status, released.votes) == ("pending", [make_vote("alice")])

    # -- claim bound to review -------------------------------------------------

    async def test_claim_with_the_open_review_id(self, review_store: ReviewStore) -> None:
        """claim(review_id=) claims the review when it is the thread's open one."""
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        claimed = await review_store.claim(
            "t1", claim_id="k1", reviewer="a", decision={}, now=at(1), review_id="r1"
        )
        assert (claimed.review_id, claimed.status) == ("r1", "claimed")

    async def test_claim_with_another_review_id_is_refused(self, review_store: ReviewStore) -> None:
        """A review id that is not the open review raises AlreadyDecidedError, changes nothing."""
        first = await review_store.open_review(make_review(review_id="r1"), owner=None)
        with pytest.raises(AlreadyDecidedError) as unknown:
            await review_store.claim(
                "t1", claim_id="k1", reviewer="a", decision={}, now=at(1), review_id="nope"
            )
        assert (unknown.value.thread_id, unknown.value.status) == ("t1", None)
        assert await review_store.get_review("t1") == first

        await claim(review_store)
        await review_store.complete(
            "r1", claim_id="k1", status="rejected", now=at(2), actor="alice", payload={}
        )
        second = await review_store.open_review(
            make_review(checkpoint_id="c2", review_id="r2"), owner=None
        )
        with pytest.raises(AlreadyDecidedError) as stale:
            await review_store.claim(
                "t1", claim_id="k2", reviewer="a", decision={}, now=at(3), review_id="r1"
            )
        assert stale.value.status == "rejected"
        assert await review_store.get_review("t1") == second

    async def test_claim_of_unknown_thread_with_review_id(self, review_store: ReviewStore) -> None:
        """A thread without reviews is ReviewNotFoundError even with a review id."""
        with pytest.raises(ReviewNotFoundError):
            await review_store.claim(
                "ghost", claim_id="k", reviewer="a", decision={}, now=at(1), review_id="r1"
            )

    # -- list pending filters --------------------------------------------------

    async def test_rule_filter(self, review_store: ReviewStore) -> None:
        """rule= keeps reviews with a finding of that rule, claimed and decided ones excluded."""
        s = review_store
        await s.open_review(
            make_review("t1", review_id="r1", requested_at=at(1), violations=rules("guarantee")),
            owner=None,
        )
        await s.open_review(
            make_review(
                "t2",
                review_id="r2",
                requested_at=at(2),
                violations=[*rules("pii", "guarantee"), RuleResult("guarantee", "block")],
            ),
            owner=None,
        )
        await s.open_review(
            make_review(
                "t3",
                review_id="r3",
                requested_at=at(3),
                violations=[*rules("pii"), RuleResult("tone", "pass")],
            ),
            owner=None,
        )
        await s.open_review(
            make_review("t4", review_id="r4", requested_at=at(0), violations=rules("guarantee")),
            owner=None,
        )
        await s.open_review(
            make_review("t5", review_id="r5", requested_at=at(4), violations=rules("guarantee")),
            owner=None,
        )
        await s.open_review(make_review("t6", review_id="r6", violations=[]), owner=None)

        async def ids(**kwargs: Any) -> list[str]:
            return [r.review_id for r in await s.list_pending(**kwargs)]

        assert await ids(rule="guarantee") == ["r4", "r1", "r2", "r5"]
        assert await ids(rule="pii") == ["r2", "r3"]
        assert await ids(rule="tone") == ["r3"]  # any finding counts, as in memory
        assert await ids(rule="nope") == []
        assert await ids(rule="guarantee", limit=2) == ["r4", "r1"]
        assert await ids(rule="guarantee", limit=0) == []

        # Decided: gone for good. Claimed: hidden until released.
        await claim(s, "t4", claim_id="k4")
        await s.complete("r4", claim_id="k4", status="approved", now=at(5), actor="a", payload={})
        await claim(s, "t5", claim_id="k5")
        assert await ids(rule="guarantee") == ["r1", "r2"]
        await s.release("r5", claim_id="k5")
        assert await ids(rule="guarantee") == ["r1", "r2", "r5"]
        await claim(s, "t1", claim_id="k1")
        await s.complete("r1", claim_id="k1", status="expired", now=at(5), actor="a", payload={})
        assert await ids(rule="guarantee") == ["r2", "r5"]
        # The finished thread pauses again with the same rule: only the new review shows.
        await s.open_review(
            make_review(
                "t1",
                "c2",
                review_id="r1b",
                requested_at=at(6),
                violations=rules("guarantee"),
            ),
            owner=None,
        )
        assert await ids(rule="guarantee") == ["r2", "r5", "r1b"]
        assert await ids() == ["r6", "r2", "r3", "r5", "r1b"]

    async def test_requested_before(self, review_store: ReviewStore) -> None:
        """requested_before is strict and combines with rule, limit and the cursor."""
        for i, rule in enumerate(["a", "b", "a", "b", "a"]):
            await review_store.open_review(
                make_review(f"t{i}", review_id=f"r{i}", requested_at=at(i), violations=rules(rule)),
                owner=None,
            )

        async def ids(**kwargs: Any) -> list[str]:
            return [r.review_id for r in await review_store.list_pending(**kwargs)]

        assert await ids(requested_before=at(3)) == ["r0", "r1", "r2"]
        assert await ids(requested_before=at(3).astimezone(IST)) == ["r0", "r1", "r2"]
        assert await ids(requested_before=at(0)) == []
        assert await ids(requested_before=at(3), rule="a") == ["r0", "r2"]
        assert await ids(requested_before=at(3), limit=1) == ["r0"]
        assert await ids(requested_before=at(4), after=(at(1), "r1")) == ["r2", "r3"]
        assert await ids(requested_before=at(9), after=(at(0), "r0"), rule="a") == ["r2", "r4"]

    async def test_cursor_pages_through_everything_once(self, review_store: ReviewStore) -> None:
        """Pages of 3 after the last item's (requested_at, review_id) yield all 7 in order."""
        s = review_store
        # Ties on requested_at break by review id, also across page boundaries.
        times = [at(1), at(1), at(2), at(2), at(2), at(3), at(0)]
        for i, when in enumerate(times):
            await s.open_review(
                make_review(f"t{i}", review_id=f"r-{6 - i}", requested_at=when), owner=None
            )
        # Decided and claimed reviews in between never show up.
        await s.open_review(make_review("td", review_id="r-d", requested_at=at(2)), owner=None)
        await claim(s, "td", claim_id="kd")
        await s.complete("r-d", claim_id="kd", status="rejected", now=at(4), actor="a", payload={})
        await s.open_review(make_review("tc", review_id="r-c", requested_at=at(1)), owner=None)
        await claim(s, "tc", claim_id="kc")

        expected = await s.list_pending()
        assert len(expected) == 7
        assert [(r.requested_at, r.review_id) for r in expected] == sorted(
            (r.requested_at, r.review_id) for r in expected
        )
        for rule in (None, "guarantee"):
            seen: list[ReviewRecord] = []
            after: tuple[datetime, str] | None = None
            pages = 0
            while True:
                page = await s.list_pending(limit=3, rule=rule, after=after)
                if not page:
                    break
                pages += 1
                assert len(page) <= 3
                seen.extend(page)
                # The cursor works in any timezone: it names an instant.
                after = (page[-1].requested_at.astimezone(IST), page[-1].review_id)
            assert pages == 3
            assert seen == expected
            assert len({r.review_id for r in seen}) == 7
            assert {"r-d", "r-c"}.isdisjoint(r.review_id for r in seen)
        last = expected[-1]
        assert await s.list_pending(after=(last.requested_at, last.review_id)) == []
        first = expected[0]
        assert await s.list_pending(after=(first.requested_at, first.review_id)) == expected[1:]

    # -- vote race -------------------------------------------------------------

    async def test_quorum_vote_races_a_rejection(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Two approvers (quorum 2) and a rejector race: exactly one of them decides.

        Either the rejector's claim wins (a vote before it stays recorded, the
        votes after it fail), or the second vote completes the quorum and the
        rejector fails. Repeated 20 times, alternating stores and start order.
        """
        a, b = review_store_pair
        outcomes = {"rejected": 0, "quorum": 0}
        for i in range(20):
            thread = f"race{i}"
            review = await a.open_review(
                make_review(thread, review_id=f"r{i}", approvals_required=2), owner=None
            )
            stores = (a, b) if i % 2 else (b, a)
            rid = review.review_id
            calls = {
                "alice": cast_vote(stores[0], "alice", review_id=rid, thread_id=thread),
                "bob": cast_vote(stores[1], "bob", review_id=rid, thread_id=thread),
                "carol": stores[i % 3 % 2].claim(
                    thread,
                    claim_id="k-carol",
                    reviewer="carol",
                    decision={"approved": False},
                    now=at(1),
                    review_id=review.review_id,
                ),
            }
            order = list(calls)[i % 3 :] + list(calls)[: i % 3]
            results = dict(
                zip(
                    order,
                    await asyncio.gather(*(calls[k] for k in order), return_exceptions=True),
                    strict=True,
                )
            )
            for result in results.values():
                # Never a duplicate, never anything unexpected.
                assert isinstance(result, ReviewRecord) or type(result) is AlreadyDecidedError
            final = await b.get_review(thread)
            assert final is not None
            assert final.status == "claimed"
            winners = [r for r in results.values() if isinstance(r, ReviewRecord)]
            assert sum(r.status == "claimed" for r in winners) == 1
            pending_votes = [
                r
                for k in ("alice", "bob")
                if isinstance(r := results[k], ReviewRecord) and r.status == "pending"
            ]
            voted = [e for e in await a.audit_log(thread) if e.event == "voted"]
            assert len(voted) == len(pending_votes)
            carol = results["carol"]
            if isinstance(carol, ReviewRecord):
                outcomes["rejected"] += 1
                assert (final.reviewer, final.claim_id, final.decision) == (
                    "carol",
                    "k-carol",
                    {"approved": False},
                )
                assert len(pending_votes) <= 1
                assert [v.reviewer for v in final.votes] == [e.actor for e in voted]
                for k in ("alice", "bob"):
                    if not isinstance(results[k], ReviewRecord):
                        assert isinstance(results[k], AlreadyDecidedError)
            else:
                outcomes["quorum"] += 1
                assert isinstance(carol, AlreadyDecidedError)
                assert carol.status == "claimed"
                assert len(pending_votes) == 1
                (winner,) = [r for r in winners if r.status == "claimed"]
                assert final == winner
                assert final.reviewer in ("alice", "bob")
                assert final.claim_id == f"k-{final.reviewer}"
                assert sorted(v.reviewer for v in final.votes) == ["alice", "bob"]
                assert final.votes[-1].reviewer == final.reviewer
        assert sum(outcomes.values()) == 20

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
            assert d.record == rows[d.record.seq]
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

    # -- hook leases ------------------------------------------------------------

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
            assert d.record == rows[d.record.seq]
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

    # -- ledger ----------------------------------------------------------------

    async def test_empty_store_has_no_head(self, review_store: ReviewStore) -> None:
        """No audit rows: no head, and the empty ledger verifies."""
        assert await review_store.audit_rows() == []
        assert await review_store.audit_head() is None
        assert_chain([], None)

    async def test_every_append_is_sealed_and_chained(self, review_store: ReviewStore) -> None:
        """Rows of every kind of append chain per thread and store-wide; verify_rows agrees."""
        r1 = await review_store.open_review(make_due("t1", at(1), approvals_required=2), owner=None)
        r2 = await review_store.open_review(make_due("t2", None), owner=None)
        appended = [
            await review_store.append_audit(
                thread_id="t3",
                review_id=None,
                checkpoint_id=None,
                event="denied",
                actor="mallory",
                payload={"reason": "not allowed"},
                at=at(1),
            )
        ]
        await cast_vote(review_store, "alice", review_id=r1.review_id)
        await review_store.escalate(
            r1.review_id, now=at(2), new_deadline=at(9), actor="sla", payload={"p": 1}
        )
        await claim(review_store, "t2")
        await review_store.complete(
            r2.review_id,
            claim_id="k1",
            status="rejected",
            now=at(3),
            actor="bob",
            payload={"reason": "no"},
        )
        rows = await review_store.audit_rows()
        assert [(r.thread_id, r.event) for r in rows] == [
            ("t1", "paused"),
            ("t2", "paused"),
            ("t3", "denied"),
            ("t1", "voted"),
            ("t1", "escalated"),
            ("t2", "rejected"),
        ]
        assert appended[0] == rows[2]
        assert_chain(rows, await review_store.audit_head())
        for thread in ("t1", "t2", "t3"):
            thread_rows = await review_store.audit_rows(thread)
            assert thread_rows == [r for r in rows if r.thread_id == thread]
            assert thread_rows == await review_store.audit_log(thread)
            report = verify_rows([r.to_row() for r in thread_rows], thread_id=thread)
            assert report.ok
            assert report.checked == len(thread_rows)

    async def test_payloads_and_times_round_trip_to_the_same_hash(
        self, review_store: ReviewStore
    ) -> None:
        """What the store returns on append is what it reads back, and both hash the same."""
        payload = {
            "float": 0.1,
            "big_float": 1e16,
            "tiny": 1e-7,
            "negative_zero": -0.0,
            "big_int": 2**70,
            "text": 'ünïcödé ✓ "quoted" \\ \u0000 \n',
            "emoji": "👋",
            "nested": {"b": [1, 2.5, None, True], "a": {}},
            "z_first": "keys out of order",
        }
        when = datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=IST)
        record = await review_store.append_audit(
            thread_id="t1",
            review_id="r1",
            checkpoint_id="c1",
            event="recovered",
            actor="ops ✓",
            payload=payload,
            at=when,
        )
        [stored] = await review_store.audit_rows()
        assert stored == record
        assert stored.payload == payload
        assert stored.at == when
        assert stored.to_row() == record.to_row()
        assert repr(stored.payload["big_float"]) == "1e+16"
        assert repr(stored.payload["negative_zero"]) == "-0.0"
        assert stored.hash == row_hash(stored.to_row())
        assert_chain([stored], await review_store.audit_head())

    async def test_concurrent_appends_on_two_stores_form_one_chain(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Appends racing through two store instances: seq 1..n, no fork, the chain verifies."""
        a, b = review_store_pair

        async def append(store: ReviewStore, i: int) -> AuditRecord:
            return await store.append_audit(
                thread_id=f"t{i % 3}",
                review_id=None,
                checkpoint_id=None,
                event="recovered",
                actor=f"w{i}",
                payload={"i": i},
                at=at(i),
            )

        opened = [
            a.open_review(make_review(f"o{i}", review_id=f"ro{i}"), owner=None) for i in range(4)
        ]
        records = await asyncio.gather(*(append(a if i % 2 else b, i) for i in range(30)), *opened)
        rows = await a.audit_rows()
        assert len(rows) == 34
        assert {r.seq for r in records if isinstance(r, AuditRecord)} <= {r.seq for r in rows}
        assert_chain(rows, await b.audit_head())
