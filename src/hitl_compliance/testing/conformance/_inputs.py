"""Input conformance: limits, naive datetimes, lossless round trips and an idempotent setup.

Covers what every store must check or keep alike: `limit` values,
refusing naive datetimes before writing, times and payloads that come back
aware and equal, and `setup()` that can run twice.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`InputConformance`][hitl_compliance.testing.conformance.InputConformance]
alone to run only this capability.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import IST, T0, at, make_due, make_review

__all__ = ["InputConformance"]


class InputConformance(ConformanceBase):
    """The input tests: limits and naive times refused alike, values kept losslessly."""

    # -- open review constraints -----------------------------------------------

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
