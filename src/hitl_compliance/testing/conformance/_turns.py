"""Turn conformance: the per-thread turn lock a store keeps while a graph run is in flight.

Covers `begin_turn`, `end_turn`, `stale_turns` and `take_over_turn`, and
`open_review` ending (only) its owner's turn: a turn that leaks or is
taken over twice lets two runs of one thread overlap.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`TurnConformance`][hitl_compliance.testing.conformance.TurnConformance]
alone to run only this capability.
"""

from __future__ import annotations

import pytest

from hitl_compliance.errors import ThreadBusyError
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import T0, at, claim, make_review

__all__ = ["TurnConformance"]


class TurnConformance(ConformanceBase):
    """The turn tests: one turn per thread, ended or taken over only by its holder."""

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
