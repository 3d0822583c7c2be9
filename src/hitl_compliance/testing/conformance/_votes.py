"""Vote conformance: quorum votes, duplicate votes and the race of a quorum against a rejection.

Covers `vote` below and at the quorum, duplicate votes under any spelling of
the reviewer id, votes for different texts, the errors `vote` raises,
`release` dropping the claimer's vote, and (across two instances when
`review_store_pair` gives them) a completing vote racing a rejection.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`VoteConformance`][hitl_compliance.testing.conformance.VoteConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hitl_compliance.errors import AlreadyDecidedError, DuplicateVoteError, ReviewNotFoundError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    DRAFT,
    at,
    cast_vote,
    claim,
    make_review,
    make_vote,
)

__all__ = ["VoteConformance"]


class VoteConformance(ConformanceBase):
    """The vote tests: quorum, duplicates, per-text counting and the vote/reject race."""

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
