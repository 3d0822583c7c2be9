"""Builders and checks the conformance tests share: reference times, reviews, votes, the chain.

Kept importable from [`hitl_compliance.testing.conformance`][hitl_compliance.testing.conformance],
so an adapter's own extra tests build their records exactly as the suite does.
"""

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hitl_compliance.ledger import GENESIS, combined_head, row_hash, verify_rows
from hitl_compliance.models import AuditRecord, ReviewRecord, Vote, sha256_text
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import ReviewStore

__all__ = [
    "DRAFT",
    "IST",
    "T0",
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
"""A zone with a half-hour offset, to catch stores that keep the wall clock, not the instant."""
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
    """Rows have increasing seqs (1..n without gaps in a store without lanes), each
    sealed and linked to its thread's and its lane's previous row, and the head is
    the [`combined_head`][hitl_compliance.ledger.combined_head] of the lanes' last rows."""
    seqs = [r.seq for r in rows]
    assert seqs == sorted(set(seqs))
    if all(r.lane == 0 for r in rows):
        assert seqs == list(range(1, len(rows) + 1))
    last_of_thread: dict[str, str] = {}
    last_of_lane: dict[int, tuple[int, str]] = {}
    for record in rows:
        assert record.hash == row_hash(record.to_row())
        assert record.prev_hash == last_of_thread.get(record.thread_id, GENESIS)
        assert record.global_prev_hash == last_of_lane.get(record.lane, (0, GENESIS))[1]
        last_of_thread[record.thread_id] = record.hash
        last_of_lane[record.lane] = (record.seq, record.hash)
    assert head == combined_head((lane, *last) for lane, last in last_of_lane.items())
    report = verify_rows([r.to_row() for r in rows], head=head or (0, ""))
    assert report.ok, report.first_broken
    assert report.checked == len(rows)
