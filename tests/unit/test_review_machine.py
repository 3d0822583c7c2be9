"""The review state machine (`stores._machine`): legal transitions, refusals and their one error."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hitl_compliance.errors import (
    AlreadyDecidedError,
    DuplicateVoteError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.stores import _machine as machine
from hitl_compliance.stores._machine import Refusal, refusal_error

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


class TestNextStatus:
    def test_claim_only_from_pending(self) -> None:
        """Only a pending review can be claimed; it becomes claimed."""
        assert machine.next_status("pending", "claim") == "claimed"
        for status in ("claimed", "approved", "rejected", "expired"):
            assert machine.next_status(status, "claim") is None

    def test_complete_needs_a_claim_and_a_final_status(self) -> None:
        """Completing moves a claimed review to the final status given, and to nothing else."""
        assert machine.next_status("claimed", "complete", final="approved") == "approved"
        assert machine.next_status("claimed", "complete", final="expired") == "expired"
        assert machine.next_status("claimed", "complete", final="pending") is None
        assert machine.next_status("pending", "complete", final="approved") is None

    def test_release_and_take_over_need_a_claim(self) -> None:
        """Release un-claims, take-over keeps the claim; neither acts on a pending review."""
        assert machine.next_status("claimed", "release") == "pending"
        assert machine.next_status("claimed", "take_over") == "claimed"
        assert machine.next_status("pending", "release") is None
        assert machine.next_status("approved", "take_over") is None

    def test_open_statuses(self) -> None:
        """Pending and claimed reviews keep the thread open; final ones do not."""
        assert [
            s
            for s in ("pending", "claimed", "approved", "rejected", "expired")
            if machine.is_open(s)
        ] == list(machine.OPEN_STATUSES)


class TestTurnRefusal:
    def test_open_review_is_named_first(self) -> None:
        """A thread with an open review and a held turn reports the review."""
        assert machine.turn_refusal(review_open=True, turn_held=True) is Refusal.THREAD_PAUSED

    def test_held_turn(self) -> None:
        """A held turn without a review is a turn in progress; a free thread may start one."""
        assert machine.turn_refusal(review_open=False, turn_held=True) is Refusal.TURN_IN_PROGRESS
        assert machine.turn_refusal(review_open=False, turn_held=False) is None


class TestDecideRefusal:
    def test_no_review(self) -> None:
        """A thread without a review cannot be decided."""
        refusal = machine.decide_refusal(latest_id=None, latest_status=None, review_id=None)
        assert refusal is Refusal.NO_REVIEW

    def test_stale_review_id_before_status(self) -> None:
        """A decider holding an older review id is told so, whatever the latest's status."""
        refusal = machine.decide_refusal(latest_id="r2", latest_status="pending", review_id="r1")
        assert refusal is Refusal.NOT_OPEN_REVIEW

    def test_not_pending(self) -> None:
        """A claimed or final latest review is already decided; a pending one may be decided."""
        for status in ("claimed", "approved"):
            got = machine.decide_refusal(latest_id="r", latest_status=status, review_id="r")
            assert got is Refusal.DECIDED
        assert (
            machine.decide_refusal(latest_id="r", latest_status="pending", review_id=None) is None
        )


class TestVotes:
    def test_duplicate_by_canonical_key(self) -> None:
        """A vote repeats another only when the canonical keys are equal."""
        assert machine.is_duplicate_vote(["alice", "bob"], "bob")
        assert not machine.is_duplicate_vote(["alice"], "bob")

    def test_quorum_counts_same_text_only(self) -> None:
        """Only approvals of the same text add up to the quorum."""
        assert machine.quorum_met(["a", "a"], "a", 2)
        assert not machine.quorum_met(["a", "b"], "b", 2)

    def test_release_drops_only_the_claimers_vote(self) -> None:
        """Releasing a claim drops the claimer's vote and keeps the others in order."""
        votes = [("alice", 1), ("bob", 2), ("carol", 3)]
        kept = machine.kept_on_release(votes, "bob", lambda v: v[0])
        assert kept == [("alice", 1), ("carol", 3)]


class TestClaimsAndSla:
    def test_holds_claim(self) -> None:
        """Only the claim id on a claimed review holds it."""
        assert machine.holds_claim("claimed", "k1", "k1")
        assert not machine.holds_claim("claimed", "k1", "k2")
        assert not machine.holds_claim("approved", "k1", "k1")
        assert not machine.holds_claim(None, None, "k1")

    def test_completed_by(self) -> None:
        """A review is completed by a claim only when that claim made it final with that status."""
        assert machine.completed_by("approved", "k1", "k1", "approved")
        assert not machine.completed_by("approved", "k1", "k2", "approved")
        assert not machine.completed_by("expired", "k1", "k1", "approved")
        assert not machine.completed_by("claimed", "k1", "k1", "claimed")
        assert not machine.completed_by(None, None, "k1", "approved")

    def test_escalate_only_overdue_pending(self) -> None:
        """An SLA sweep escalates a pending review whose deadline is at or before now."""
        assert machine.can_escalate("pending", NOW, NOW)
        assert not machine.can_escalate("pending", NOW + timedelta(seconds=1), NOW)
        assert not machine.can_escalate("pending", None, NOW)
        assert not machine.can_escalate("claimed", NOW, NOW)


class TestRefusalError:
    @pytest.mark.parametrize(
        ("refusal", "error"),
        [
            (Refusal.THREAD_PAUSED, ThreadBusyError),
            (Refusal.TURN_IN_PROGRESS, ThreadBusyError),
            (Refusal.REVIEW_OPEN, ThreadBusyError),
            (Refusal.NO_REVIEW, ReviewNotFoundError),
            (Refusal.NOT_OPEN_REVIEW, AlreadyDecidedError),
            (Refusal.DECIDED, AlreadyDecidedError),
            (Refusal.DUPLICATE_VOTE, DuplicateVoteError),
            (Refusal.CLAIM_LOST, AlreadyDecidedError),
        ],
    )
    def test_each_refusal_has_its_error(self, refusal: Refusal, error: type[Exception]) -> None:
        """Every refusal maps to its class in the error tree, carrying the thread."""
        exc = refusal_error(refusal, thread_id="t1", review_id="r1", status="claimed", reviewer="a")
        assert type(exc) is error
        assert exc.thread_id == "t1"

    def test_messages_name_the_context(self) -> None:
        """The messages name the thread, the review, the status and the voter they concern."""
        assert str(refusal_error(Refusal.DECIDED, thread_id="t", status="approved")) == (
            "The review of thread 't' is already approved."
        )
        exc = refusal_error(Refusal.DUPLICATE_VOTE, thread_id="t", status="pending", reviewer="a")
        assert isinstance(exc, DuplicateVoteError)
        assert (str(exc), exc.status) == (
            "'a' already approved the review of thread 't'; it needs another approver.",
            "pending",
        )
        assert "'r9'" in str(refusal_error(Refusal.REVIEW_OPEN, thread_id="t", review_id="r9"))
        lost = refusal_error(Refusal.CLAIM_LOST, thread_id=None, review_id="r", status=None)
        assert str(lost) == "Review 'r' is no longer held by this decision."
