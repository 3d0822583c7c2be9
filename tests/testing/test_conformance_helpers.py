"""Unit tests of the conformance suite's shared builders and checks (`conformance._helpers`).

They are importable from `hitl_compliance.testing.conformance`, so an adapter's
own extra tests build records exactly as the suite does; these tests pin what
each builder gives and that `assert_chain` rejects a broken chain.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitl_compliance.models import AuditRecord, sha256_text
from hitl_compliance.stores import InMemoryReviewStore
from hitl_compliance.testing import conformance
from hitl_compliance.testing.conformance import (
    DRAFT,
    IST,
    T0,
    _helpers,
    assert_chain,
    at,
    cast_vote,
    claim,
    make_due,
    make_review,
    make_vote,
    rules,
)


class TestReexports:
    def test_helpers_keep_their_import_path(self) -> None:
        """Each helper of `_helpers` is the same object under the public conformance path."""
        for name in _helpers.__all__:
            assert getattr(conformance, name) is getattr(_helpers, name), name
        assert set(_helpers.__all__) <= set(conformance.__all__)


class TestTimes:
    def test_reference_time_is_aware_with_microseconds(self) -> None:
        """T0 is timezone-aware and has microseconds, so lossy storage shows."""
        assert T0.tzinfo is not None
        assert T0.microsecond != 0

    def test_at_counts_minutes_from_t0(self) -> None:
        """at(m) is T0 plus m minutes, fractions included."""
        assert at(0) == T0
        assert at(1.5) - T0 == timedelta(minutes=1, seconds=30)

    def test_ist_has_a_half_hour_offset(self) -> None:
        """IST is five and a half hours ahead of UTC."""
        assert IST.utcoffset(None) == timedelta(hours=5, minutes=30)


class TestBuilders:
    def test_make_review_is_a_pending_review_of_the_draft(self) -> None:
        """make_review gives a pending review of DRAFT with one guarantee finding."""
        review = make_review()
        assert (review.thread_id, review.checkpoint_id, review.status) == ("t1", "c1", "pending")
        assert review.draft_response == DRAFT
        assert [v.rule for v in review.violations] == ["guarantee"]
        assert (review.requested_at, review.approvals_required, review.votes) == (T0, 1, [])
        assert make_review().review_id != review.review_id

    def test_make_review_takes_overrides(self) -> None:
        """Explicit ids, times and an empty violation list are kept as given."""
        review = make_review("t9", "c9", review_id="r9", violations=[], approvals_required=2)
        assert (review.thread_id, review.checkpoint_id, review.review_id) == ("t9", "c9", "r9")
        assert (review.violations, review.approvals_required) == ([], 2)

    def test_make_vote_hashes_the_text_it_approves(self) -> None:
        """A vote for the draft has no response; a vote for an edit carries it."""
        plain = make_vote("bob")
        assert (plain.reviewer, plain.at, plain.response) == ("bob", at(1), None)
        assert plain.text_sha256 == sha256_text(DRAFT)
        edited = make_vote("eve", "Returns within 30 days.", minutes=3)
        assert (edited.response, edited.at) == ("Returns within 30 days.", at(3))
        assert edited.text_sha256 == sha256_text("Returns within 30 days.")

    def test_make_due_sets_deadline_and_priority(self) -> None:
        """make_due gives a pending review with the deadline and priority asked for."""
        review = make_due("t2", at(5), review_id="r2", priority=3, approvals_required=2)
        assert (review.thread_id, review.review_id, review.status) == ("t2", "r2", "pending")
        assert (review.deadline, review.priority, review.approvals_required) == (at(5), 3, 2)
        assert make_due("t3", None).deadline is None

    def test_rules_gives_one_review_finding_per_name(self) -> None:
        """rules(...) is one `review` finding per rule name, in order."""
        found = rules("a", "b")
        assert [(r.rule, r.verdict) for r in found] == [("a", "review"), ("b", "review")]


class TestStoreHelpers:
    async def test_claim_claims_for_alice(self) -> None:
        """claim() claims the thread's review for `alice` with the given claim id."""
        store = InMemoryReviewStore()
        await store.setup()
        await store.open_review(make_review(), owner=None)
        claimed = await claim(store, claim_id="k7")
        assert (claimed.status, claimed.claim_id, claimed.reviewer) == ("claimed", "k7", "alice")
        assert (claimed.claimed_at, claimed.decision) == (at(1), {"approved": True})
        await store.aclose()

    async def test_cast_vote_votes_with_the_reviewers_claim_id(self) -> None:
        """cast_vote() records the reviewer's vote below the quorum, the review stays pending."""
        store = InMemoryReviewStore()
        await store.setup()
        review = await store.open_review(make_review(approvals_required=2), owner=None)
        after = await cast_vote(store, "bob", review_id=review.review_id)
        assert after.status == "pending"
        assert [v.reviewer for v in after.votes] == ["bob"]
        await store.aclose()


class TestAssertChain:
    async def _rows(self) -> tuple[list[AuditRecord], tuple[int, str] | None]:
        """The audit rows and head of a store after two paused reviews and a decision."""
        store = InMemoryReviewStore()
        await store.setup()
        first = await store.open_review(make_review("t1"), owner=None)
        await store.open_review(make_review("t2"), owner=None)
        await claim(store, "t1")
        await store.complete(
            first.review_id, claim_id="k1", status="approved", now=at(2), actor="a", payload={}
        )
        rows, head = await store.audit_rows(), await store.audit_head()
        await store.aclose()
        return rows, head

    async def test_a_sealed_chain_passes(self) -> None:
        """Rows straight from a store, with its head, pass; so does an empty ledger."""
        rows, head = await self._rows()
        assert len(rows) == 3
        assert_chain(rows, head)
        assert_chain([], None)

    async def test_an_edited_row_fails(self) -> None:
        """A row whose content changed after sealing fails the check."""
        rows, head = await self._rows()
        rows[1] = rows[1].model_copy(update={"actor": "mallory"})
        with pytest.raises(AssertionError):
            assert_chain(rows, head)

    async def test_a_dropped_row_or_wrong_head_fails(self) -> None:
        """A gap in the numbering, or a head that is not the last row, fails the check."""
        rows, head = await self._rows()
        with pytest.raises(AssertionError):
            assert_chain([rows[0], rows[2]], head)
        with pytest.raises(AssertionError):
            assert_chain(rows[:2], head)
