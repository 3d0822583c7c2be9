"""Review conformance: opening, listing, claiming, completing and taking over reviews.

Covers `open_review` (idempotent per checkpoint, one open review per
thread, the `paused` audit row), `get_review`, `list_pending` with its
ordering, rule and time filters and keyset cursor, exactly-once `claim`
(also bound to a review id), `release`, `complete` (idempotent for the
claim that completed it), abandoned claims, and `count_pending` where the
store has it.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`ReviewConformance`][hitl_compliance.testing.conformance.ReviewConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from hitl_compliance.errors import AlreadyDecidedError, ReviewNotFoundError, ThreadBusyError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import PendingCounter, ReviewStore, paused_payload
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    IST,
    T0,
    at,
    cast_vote,
    claim,
    make_review,
    rules,
)

__all__ = ["ReviewConformance"]


class ReviewConformance(ConformanceBase):
    """The review tests: open, list, claim exactly once, release, complete, take over."""

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

    async def test_read_back_review_matches_its_commitment(self, review_store: ReviewStore) -> None:
        """A review read back gives the paused row's payload again (its commitment verifies).

        The coordinator refuses a row whose content differs from what its
        `paused` row committed to, so every committed field (draft, findings,
        requester, quorum, deadline to the microsecond, in any time zone) must
        round-trip exactly, and a vote must read back as its `voted` row.
        """
        deadline = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=IST)
        findings = [
            RuleResult("guarantee", "block", "promises returns", ("guaranteed", "sure"), "high"),
            RuleResult("pii", "review", "", (), "low"),
        ]
        review = make_review(
            review_id="r1", requested_by="agent-é", violations=findings, approvals_required=3
        ).model_copy(update={"deadline": deadline})
        await review_store.open_review(review, owner=None)
        voted = await cast_vote(review_store, "alice", review_id="r1", quorum=3)
        read = await review_store.get_review("t1")
        assert read is not None
        paused, vote_row = await review_store.audit_log("t1")
        assert paused_payload(read) == paused.payload == paused_payload(review)
        (vote,) = voted.votes
        assert vote_row.actor == vote.reviewer
        for name in ("reviewer", "reviewer_key", "roles", "text_sha256"):
            assert vote_row.payload[name] == getattr(read.votes[0], name) == getattr(vote, name)

    async def test_paused_audit_actor_defaults_to_system(self, review_store: ReviewStore) -> None:
        """A review without a requester is audited as `system`."""
        await review_store.open_review(make_review(requested_by=None), owner=None)
        (row,) = await review_store.audit_log("t1")
        assert row.actor == "system"

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

    async def test_count_pending_counts_pending_reviews_only(
        self, review_store: ReviewStore
    ) -> None:
        """`count_pending` (optional, `PendingCounter`) drops a review once it is claimed."""
        if not isinstance(review_store, PendingCounter):
            pytest.skip("the store does not implement the optional PendingCounter")
        assert await review_store.count_pending() == 0
        for thread in ("t1", "t2", "t3"):
            await review_store.open_review(make_review(thread, review_id=f"r-{thread}"), owner=None)
        assert await review_store.count_pending() == 3
        await claim(review_store, "t1")
        assert await review_store.count_pending() == 2
        await review_store.complete(
            "r-t1", claim_id="k1", status="approved", now=at(2), actor="alice", payload={}
        )
        assert await review_store.count_pending() == 2
        assert await review_store.count_pending() == len(await review_store.list_pending())

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

    async def test_complete_repeated_by_its_claim_writes_nothing(
        self, review_store: ReviewStore
    ) -> None:
        """complete repeated by the claim that completed it, same status, returns it: no new row.

        The graph's authority may record a claimed decision's outcome before
        the claimer does (a raw resume ran the graph's outcome step); the
        claimer's own `complete` must then succeed, not report a lost review.
        """
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await claim(review_store)
        done = await review_store.complete(
            "r1", claim_id="k1", status="approved", now=at(2), actor="graph", payload={}
        )
        again = await review_store.complete(
            "r1", claim_id="k1", status="approved", now=at(3), actor="alice", payload={"x": 1}
        )
        assert again == done
        assert await review_store.get_review("t1") == done
        assert [a.event for a in await review_store.audit_log("t1")] == ["paused", "approved"]
        with pytest.raises(AlreadyDecidedError) as info:
            await review_store.complete(
                "r1", claim_id="k2", status="approved", now=at(3), actor="bob", payload={}
            )
        assert info.value.status == "approved"
        assert len(await review_store.audit_log("t1")) == 2

    async def test_complete_twice_fails_the_second_time(self, review_store: ReviewStore) -> None:
        """A claim completes once; repeating it with another status raises AlreadyDecidedError."""
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
