"""Several-reviews conformance: the items of one pause are open, decided and audited one by one.

A gate whose message has several flagged tool calls waits for each in
parallel: one review per item, each stored under
`"<parent checkpoint id>:<review id>"` with the same parent checkpoint. Covers
`open_review` beside an open review of the same pause (and the refusal of
another pause's), `open_reviews`, `claim` / `vote` by `review_id` of a review
that is not the thread's latest, exactly-once per review under concurrency,
and `begin_turn` refused while any of them is open.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass
[`SeveralReviewsConformance`][hitl_compliance.testing.conformance.SeveralReviewsConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio

import pytest

from hitl_compliance.errors import AlreadyDecidedError, ThreadBusyError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    assert_chain,
    at,
    cast_vote,
    make_review,
)

__all__ = ["SeveralReviewsConformance"]


async def _open_pair(store: ReviewStore, thread_id: str = "t1") -> tuple[ReviewRecord, ...]:
    """Two reviews of one pause at parent checkpoint `cp`: `ra` (opened first) and `rb`."""
    first = await store.open_review(
        make_review(thread_id, "cp:ra", review_id=f"{thread_id}-ra"), owner=None
    )
    second = await store.open_review(
        make_review(thread_id, "cp:rb", review_id=f"{thread_id}-rb", requested_at=at(0.5)),
        owner=None,
    )
    return first, second


async def _claim(
    store: ReviewStore, review_id: str, claim_id: str = "k1", thread_id: str = "t1"
) -> ReviewRecord:
    return await store.claim(
        thread_id,
        claim_id=claim_id,
        reviewer="alice",
        decision={"approved": True},
        now=at(1),
        review_id=review_id,
    )


async def _finish(store: ReviewStore, review_id: str, claim_id: str, status: str) -> None:
    await store.complete(
        review_id,
        claim_id=claim_id,
        status=status,  # type: ignore[arg-type]
        now=at(2),
        actor="alice",
        payload={"review": review_id},
    )


class SeveralReviewsConformance(ConformanceBase):
    """The several-open-reviews tests: one pause's items open, decided, audited one by one."""

    async def test_items_of_one_pause_are_open_together(self, review_store: ReviewStore) -> None:
        """Two reviews of one pause are both open, listed, and each has its `paused` row."""
        first, second = await _open_pair(review_store)
        assert [r.review_id for r in await review_store.open_reviews("t1")] == ["t1-ra", "t1-rb"]
        assert [r.review_id for r in await review_store.list_pending()] == ["t1-ra", "t1-rb"]
        latest = await review_store.get_review("t1")
        assert latest is not None
        assert latest.review_id == second.review_id
        log = await review_store.audit_log("t1")
        assert [(r.event, r.review_id) for r in log] == [
            ("paused", first.review_id),
            ("paused", second.review_id),
        ]
        assert await review_store.open_reviews("ghost") == []

    async def test_reopening_an_item_is_idempotent(self, review_store: ReviewStore) -> None:
        """Reopening an item's checkpoint returns its review and writes nothing."""
        first, _ = await _open_pair(review_store)
        again = await review_store.open_review(
            make_review("t1", "cp:ra", review_id="other"), owner=None
        )
        assert again == first
        assert len(await review_store.open_reviews("t1")) == 2
        assert len(await review_store.audit_log("t1")) == 2

    async def test_another_pause_waits_for_the_open_items(self, review_store: ReviewStore) -> None:
        """A review of another pause (or a plain checkpoint) is refused while items are open."""
        await _open_pair(review_store)
        for checkpoint in ("cp2:rc", "cp2", "cp"):
            with pytest.raises(ThreadBusyError):
                await review_store.open_review(make_review("t1", checkpoint), owner=None)
        with pytest.raises(ThreadBusyError):
            await review_store.begin_turn("t1", owner="o", now=at(1))
        assert len(await review_store.open_reviews("t1")) == 2
        assert len(await review_store.audit_log("t1")) == 2

    async def test_a_plain_review_admits_no_item_beside_it(self, review_store: ReviewStore) -> None:
        """An open review at a plain checkpoint keeps items of that checkpoint out."""
        await review_store.open_review(make_review("t1", "cp", review_id="r1"), owner=None)
        with pytest.raises(ThreadBusyError):
            await review_store.open_review(make_review("t1", "cp:rb"), owner=None)

    async def test_items_are_decided_one_by_one(self, review_store: ReviewStore) -> None:
        """Claiming the older item by id leaves the other pending; each completes on its own."""
        first, second = await _open_pair(review_store)
        claimed = await _claim(review_store, first.review_id)
        assert (claimed.review_id, claimed.status) == (first.review_id, "claimed")
        assert [r.review_id for r in await review_store.list_pending()] == [second.review_id]
        await _finish(review_store, first.review_id, "k1", "approved")
        with pytest.raises(ThreadBusyError):
            await review_store.begin_turn("t1", owner="o", now=at(3))
        assert [r.review_id for r in await review_store.open_reviews("t1")] == [second.review_id]
        other = await _claim(review_store, second.review_id, "k2")
        await _finish(review_store, other.review_id, "k2", "rejected")
        assert await review_store.open_reviews("t1") == []
        await review_store.begin_turn("t1", owner="o", now=at(3))
        rows = await review_store.audit_rows("t1")
        assert [(r.event, r.review_id) for r in rows] == [
            ("paused", first.review_id),
            ("paused", second.review_id),
            ("approved", first.review_id),
            ("rejected", second.review_id),
        ]
        assert_chain(await review_store.audit_rows(), await review_store.audit_head())

    async def test_no_claim_while_another_item_is_claimed(self, review_store: ReviewStore) -> None:
        """While one item's decision is applied (claimed), no other item is claimed; then it is."""
        first, second = await _open_pair(review_store)
        await _claim(review_store, first.review_id)
        with pytest.raises(ThreadBusyError):
            await _claim(review_store, second.review_id, "k2")
        with pytest.raises(ThreadBusyError):
            await cast_vote(review_store, "bob", review_id=second.review_id, quorum=1)
        [waiting] = await review_store.list_pending()
        assert (waiting.review_id, waiting.votes, waiting.claim_id) == (second.review_id, [], None)
        await review_store.release(first.review_id, claim_id="k1")
        await _claim(review_store, second.review_id, "k2")
        with pytest.raises(ThreadBusyError):
            await _claim(review_store, first.review_id, "k3")
        await _finish(review_store, second.review_id, "k2", "approved")
        claimed = await _claim(review_store, first.review_id, "k3")
        assert (claimed.review_id, claimed.claim_id) == (first.review_id, "k3")

    async def test_decided_item_cannot_be_claimed_again(self, review_store: ReviewStore) -> None:
        """Claiming an item already decided (not the latest) raises AlreadyDecidedError."""
        first, second = await _open_pair(review_store)
        await _claim(review_store, first.review_id)
        await _finish(review_store, first.review_id, "k1", "approved")
        with pytest.raises(AlreadyDecidedError) as info:
            await _claim(review_store, first.review_id, "k2")
        assert (info.value.status, info.value.thread_id) == ("approved", "t1")
        with pytest.raises(AlreadyDecidedError):
            await _claim(review_store, "not-a-review", "k3")
        stored = await review_store.open_reviews("t1")
        assert [(r.review_id, r.status) for r in stored] == [(second.review_id, "pending")]

    async def test_claim_without_review_id_takes_the_latest(
        self, review_store: ReviewStore
    ) -> None:
        """Without review_id a claim takes the thread's latest review, as before."""
        _, second = await _open_pair(review_store)
        claimed = await review_store.claim(
            "t1", claim_id="k1", reviewer="alice", decision={"approved": True}, now=at(1)
        )
        assert claimed.review_id == second.review_id

    async def test_votes_count_per_item(self, review_store: ReviewStore) -> None:
        """A vote on the older item counts for it alone; its quorum claims it alone."""
        first, second = await _open_pair(review_store)
        voted = await cast_vote(review_store, "alice", review_id=first.review_id)
        assert (voted.status, len(voted.votes)) == ("pending", 1)
        claimed = await cast_vote(review_store, "bob", review_id=first.review_id, minutes=2)
        assert (claimed.review_id, claimed.status) == (first.review_id, "claimed")
        [untouched] = await review_store.list_pending()
        assert (untouched.review_id, untouched.votes) == (second.review_id, [])

    async def test_concurrent_claims_of_one_item_one_wins(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Of 20 simultaneous claims of one item exactly one wins; the other item stays pending."""
        a, b = review_store_pair
        first, second = await _open_pair(a)
        results = await asyncio.gather(
            *(_claim(a if i % 2 else b, first.review_id, claim_id=f"k{i}") for i in range(20)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, ReviewRecord)]
        assert len(winners) == 1
        assert all(isinstance(r, AlreadyDecidedError) for r in results if r not in winners)
        assert [r.review_id for r in await b.list_pending()] == [second.review_id]

    async def test_concurrent_claims_of_both_items_each_once(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Deciders racing on both items: one claim wins; the other item is claimed after it."""
        a, b = review_store_pair
        first, second = await _open_pair(a)
        ids = [first.review_id, second.review_id]
        results = await asyncio.gather(
            *(_claim(a if i % 2 else b, ids[i % 2], claim_id=f"k{i}") for i in range(20)),
            return_exceptions=True,
        )
        # The first claim holds the thread until its decision completes: every other
        # claim loses, as already decided (that item) or busy (the other item).
        [winner] = [r for r in results if isinstance(r, ReviewRecord)]
        assert all(
            isinstance(r, (AlreadyDecidedError, ThreadBusyError)) for r in results if r != winner
        )
        await _finish(a, winner.review_id, winner.claim_id or "", "approved")
        [other] = [i for i in ids if i != winner.review_id]
        assert (await _claim(b, other, "k-last")).review_id == other
        assert await b.list_pending() == []
