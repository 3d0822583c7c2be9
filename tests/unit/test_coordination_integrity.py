"""Unit tests of `_coordination.integrity`: a review row checked against its audit rows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance import RuleResult, TamperedError, Vote
from hitl_compliance._commitments import COMMITTED_FIELDS, deadline_text
from hitl_compliance._coordination import integrity
from hitl_compliance.ledger import GENESIS
from hitl_compliance.models import AuditRecord, ReviewRecord, seal
from hitl_compliance.stores import paused_payload
from tests.strategies import review_rows

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
FINDING = RuleResult("guarantee", "review", "promise", ("guaranteed returns",), "high")


def row(review: ReviewRecord, event: str, payload: dict[str, Any], seq: int = 1) -> AuditRecord:
    return AuditRecord(
        seq=seq,
        thread_id=review.thread_id,
        review_id=review.review_id,
        checkpoint_id=review.checkpoint_id,
        event=event,
        actor="someone",
        payload=payload,
        at=AT,
    )


def pending(**fields: Any) -> ReviewRecord:
    base: dict[str, Any] = {
        "review_id": "r1",
        "thread_id": "t",
        "checkpoint_id": "cp",
        "status": "pending",
        "draft_response": "Guaranteed returns!",
        "violations": [FINDING],
        "requested_at": AT,
        "requested_by": "agent@bank",
        "approvals_required": 2,
        "deadline": AT + timedelta(hours=1),
    }
    return ReviewRecord(**{**base, **fields})


def vote(reviewer: str) -> Vote:
    return Vote(reviewer=reviewer, roles=["compliance"], at=AT, text_sha256="a" * 64)


TAMPERED: dict[str, Any] = {
    "draft_sha256": {"draft_response": "A safe reply."},
    "violations": {"violations": []},
    "requested_by": {"requested_by": None},
    "approvals_required": {"approvals_required": 1},
    "deadline": {"deadline": AT},
}


class TestCommitment:
    @given(review_rows())
    def test_an_untouched_row_matches(self, review: ReviewRecord) -> None:
        """A row read back as it was opened matches its paused row, whatever its content."""
        assert integrity.mismatch(review, [row(review, "paused", paused_payload(review))]) is None

    @given(review_rows(), st.sampled_from(sorted(TAMPERED)))
    def test_each_committed_field_is_checked(self, review: ReviewRecord, name: str) -> None:
        """Changing any committed field of the row is a mismatch naming it."""
        rows = [row(review, "paused", paused_payload(review))]
        edited = review.model_copy(update=TAMPERED[name])
        if paused_payload(edited)[name] == paused_payload(review)[name]:
            return  # the drawn row held that value already
        found = integrity.mismatch(edited, rows)
        assert found is not None
        assert name in found

    def test_the_committed_fields(self) -> None:
        """The commitment covers the content authorisation reads, and the payload shows it."""
        payload = paused_payload(pending())
        assert set(COMMITTED_FIELDS) == set(payload) - {"commitment"}
        assert payload["deadline"] == "2026-01-01T01:00:00.000000+00:00"

    def test_a_moved_checkpoint_is_a_mismatch(self) -> None:
        """A review pointed at another checkpoint (what a resume runs) is a mismatch."""
        review = pending()
        rows = [row(review, "paused", paused_payload(review))]
        assert "checkpoint_id" in (
            integrity.mismatch(review.model_copy(update={"checkpoint_id": "x"}), rows) or ""
        )

    def test_no_paused_row(self) -> None:
        """A review the ledger never saw pause is a mismatch."""
        assert integrity.mismatch(pending(), []) == "no paused audit row"


class TestDeadline:
    def test_dated_and_escalated_deadlines(self) -> None:
        """A `dated` row's deadline, then the latest `escalated` row's, is the one allowed."""
        opened = pending(deadline=None)
        first, second = AT + timedelta(hours=2), AT + timedelta(hours=5)
        rows = [
            row(opened, "paused", paused_payload(opened)),
            row(opened, "dated", {"deadline": deadline_text(first)}, 2),
        ]
        assert integrity.mismatch(opened.model_copy(update={"deadline": first}), rows) is None
        assert integrity.mismatch(opened, rows) is None  # dated proposed, row not yet dated
        rows.append(row(opened, "escalated", {"deadline": deadline_text(second)}, 3))
        assert integrity.mismatch(opened.model_copy(update={"deadline": second}), rows) is None
        found = integrity.mismatch(opened.model_copy(update={"deadline": first}), rows)
        assert found is not None
        assert "deadline" in found

    def test_legacy_escalation_proves_no_deadline(self) -> None:
        """An `escalated` row written before they named their deadline allows any deadline."""
        review = pending()
        rows = [
            row(review, "paused", paused_payload(review)),
            row(review, "escalated", {"priority": 1}, 2),
        ]
        assert integrity.mismatch(review.model_copy(update={"deadline": AT}), rows) is None


class TestLegacy:
    def legacy(self, review: ReviewRecord) -> list[AuditRecord]:
        payload = paused_payload(review)
        return [row(review, "paused", {k: payload[k] for k in ("draft_sha256", "violations")})]

    def test_draft_and_findings_are_still_proven(self) -> None:
        """A review paused before commitments still has its draft hash and findings checked."""
        review = pending()
        rows = self.legacy(review)
        assert integrity.mismatch(review, rows) is None
        for name in ("draft_sha256", "violations"):
            found = integrity.mismatch(review.model_copy(update=TAMPERED[name]), rows)
            assert found is not None
            assert name in found

    def test_requester_quorum_and_deadline_are_not(self) -> None:
        """Its requester, quorum and deadline were never committed: they cannot be proven."""
        review = pending()
        rows = self.legacy(review)
        for name in ("requested_by", "approvals_required", "deadline"):
            assert integrity.mismatch(review.model_copy(update=TAMPERED[name]), rows) is None


class TestVotesAndStatus:
    def test_a_vote_needs_its_voted_row(self) -> None:
        """Every vote of a pending review has a `voted` row with its reviewer, key, roles, text."""
        review = pending(votes=[vote("alice@bank")])
        paused = row(review, "paused", paused_payload(review))
        voted = row(review, "voted", vote("alice@bank").model_dump(mode="json"), 2)
        voted = voted.model_copy(update={"actor": "alice@bank"})
        assert integrity.mismatch(review, [paused, voted]) is None
        assert "alice@bank" in (integrity.mismatch(review, [paused]) or "")
        forged = review.model_copy(update={"votes": [vote("alice@bank"), vote("eve@bank")]})
        assert "eve@bank" in (integrity.mismatch(forged, [paused, voted]) or "")
        roles = vote("alice@bank").model_copy(update={"roles": ["admin"]})
        assert integrity.mismatch(review.model_copy(update={"votes": [roles]}), [paused, voted])

    def test_a_vote_from_before_reviewer_keys(self) -> None:
        """A `voted` row written before votes had keys is read with the default key, as the row."""
        legacy = vote("Alice@Bank").model_dump(mode="json")
        del legacy["reviewer_key"]
        review = pending(votes=[Vote.model_validate(legacy)])
        paused = row(review, "paused", paused_payload(review))
        voted = row(review, "voted", legacy, 2).model_copy(update={"actor": "Alice@Bank"})
        assert integrity.mismatch(review, [paused, voted]) is None

    def test_the_claiming_vote_has_no_voted_row(self) -> None:
        """The vote that claimed a review at its quorum is recorded by the claim, not a row."""
        review = pending(status="claimed", reviewer="bob@bank", votes=[vote("bob@bank")])
        assert integrity.mismatch(review, [row(review, "paused", paused_payload(review))]) is None

    def test_status_against_decision_rows(self) -> None:
        """Pending with a decision row, or decided without one, is a mismatch."""
        review = pending()
        paused = row(review, "paused", paused_payload(review))
        approved = row(review, "approved", {}, 2)
        assert "records it approved" in (integrity.mismatch(review, [paused, approved]) or "")
        done = review.model_copy(update={"status": "approved"})
        assert integrity.mismatch(done, [paused, approved]) is None
        assert "without its approved" in (integrity.mismatch(done, [paused]) or "")
        rejected = review.model_copy(update={"status": "rejected"})
        assert "without its rejected" in (integrity.mismatch(rejected, [paused, approved]) or "")


def sealed(review: ReviewRecord, *events: tuple[str, dict[str, Any]]) -> list[AuditRecord]:
    """The review's audit rows, hashed and chained as a store appends them."""
    rows: list[AuditRecord] = []
    prev = GENESIS
    for seq, (event, payload) in enumerate(events, start=1):
        rows.append(
            seal(
                seq=seq,
                thread_id=review.thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event=event,
                actor="someone",
                payload=payload,
                at=AT,
                prev_hash=prev,
                global_prev_hash=prev,
            )
        )
        prev = rows[-1].hash
    return rows


class TestCheckRows:
    def test_raises_and_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """A mismatch raises TamperedError with its context, and is logged as an error."""
        review = pending()
        rows = sealed(review, ("paused", paused_payload(review)))
        edited = review.model_copy(update={"violations": []})
        with (
            caplog.at_level(logging.ERROR, logger="hitl_compliance"),
            pytest.raises(TamperedError) as caught,
        ):
            integrity.check_rows(edited, rows)
        assert (caught.value.thread_id, caught.value.review_id) == ("t", "r1")
        assert "violations" in caught.value.mismatch
        assert "does not match its audit ledger" in caplog.text
        integrity.check_rows(review, rows)  # a matching row passes silently

    def test_a_broken_thread_chain_is_refused(self) -> None:
        """Rows that do not chain (one deleted from the middle, or edited) are refused first."""
        review = pending(status="approved")
        rows = sealed(review, ("paused", paused_payload(review)), ("denied", {}), ("approved", {}))
        integrity.check_rows(review, rows)
        with pytest.raises(TamperedError, match="chain breaks at seq 3"):
            integrity.check_rows(review, [rows[0], rows[2]])
        edited = rows[1].model_copy(update={"actor": "nobody"})
        with pytest.raises(TamperedError, match="chain breaks at seq 2"):
            integrity.check_rows(review, [rows[0], edited, rows[2]])

    def test_ledger_break_names_the_paused_row(self) -> None:
        """As a ledger break, a mismatch points at the review's paused row."""
        review = pending()
        rows = [row(review, "paused", paused_payload(review), seq=7)]
        assert integrity.ledger_break(review, rows) is None
        found = integrity.ledger_break(review.model_copy(update={"requested_by": None}), rows)
        assert found is not None
        assert (found.seq, found.thread_id) == (7, "t")
