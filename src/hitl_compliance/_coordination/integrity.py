"""Authorisation reads only tamper-evident data: a review row checked against its ledger rows.

The review row is outside the hash chain; its audit rows are inside it. Before
`approve`, `reject`, `may_decide`, the SLA sweeper, `recover()` or a decision
inside the graph act on a row, [`check`][hitl_compliance._coordination.integrity.check]
checks the thread's chain (hashes and links) and compares the row with what
the chain committed to:

* the `paused` row: checkpoint id, and the content `commitment` (draft hash,
  findings, requester, quorum, deadline); a legacy `paused` row (written
  before commitments) proves the draft hash and the findings only;
* the deadline: the committed one, a `dated` row's (the SLA dating an undated
  review), or the latest `escalated` row's;
* each vote: a `voted` row of the same reviewer, key, roles and text (the vote
  that claimed a review has none: it is checked by the decision row instead);
* the status: a pending or claimed review has no decision row; a decided one
  has the decision row of its status.

A mismatch raises [`TamperedError`][hitl_compliance.TamperedError] before
anything is written, logged and never audited (the ledger records what the
library did, and it did nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from hitl_compliance import _commitments
from hitl_compliance._decision_kinds import decision_events
from hitl_compliance.erasure import ERASED_TEXT
from hitl_compliance.errors import TamperedError
from hitl_compliance.ledger import ERASED_EVENT, LedgerBreak, verify_rows
from hitl_compliance.models import AuditRecord, ReviewRecord, Vote
from hitl_compliance.stores.base import ReviewStore

__all__ = ["check", "check_rows", "ledger_break", "mismatch"]

logger = logging.getLogger("hitl_compliance")

_DECISION_EVENTS = decision_events()
_VOTE_FIELDS = ("reviewer", "reviewer_key", "roles", "text_sha256")


async def check(store: ReviewStore, review: ReviewRecord) -> None:
    """Raise TamperedError unless `review` matches its audit rows; one read of the thread's log."""
    check_rows(review, await store.audit_log(review.thread_id))


def check_rows(review: ReviewRecord, rows: Sequence[AuditRecord]) -> None:
    """Raise TamperedError unless `rows` (its thread's) form a chain and `review` matches them."""
    chain = verify_rows([r.to_row() for r in rows], thread_id=review.thread_id)
    if chain.first_broken is not None:
        broken = chain.first_broken
        found: str | None = f"its thread's audit chain breaks at seq {broken.seq}: {broken.reason}"
    else:
        found = mismatch(review, rows)
    if found is None:
        return
    logger.error(
        "review %s of thread %s does not match its audit ledger: %s; refused",
        review.review_id,
        review.thread_id,
        found,
    )
    raise TamperedError(
        f"Review {review.review_id!r} of thread {review.thread_id!r} does not match its "
        f"audit ledger ({found}): it or its audit rows were changed outside the library. "
        "Nothing was done; run verify_audit(thread_id) and restore the rows before deciding.",
        thread_id=review.thread_id,
        review_id=review.review_id,
        mismatch=found,
    )


def ledger_break(review: ReviewRecord, rows: Sequence[AuditRecord]) -> LedgerBreak | None:
    """The cross-check of `review` with its thread's rows as a ledger break, or None."""
    found = mismatch(review, rows)
    if found is None:
        return None
    own = [r for r in rows if r.review_id == review.review_id]
    return LedgerBreak(
        seq=own[0].seq if own else None,
        thread_id=review.thread_id,
        reason=f"review {review.review_id} does not match the ledger: {found}",
    )


def mismatch(review: ReviewRecord, rows: Sequence[AuditRecord]) -> str | None:
    """What differs between `review` and its audit rows among `rows`, or None."""
    own = [r for r in rows if r.review_id == review.review_id]
    paused = next((r for r in own if r.event == "paused"), None)
    if paused is None:
        return "no paused audit row"
    if paused.checkpoint_id != review.checkpoint_id:
        return f"checkpoint_id {review.checkpoint_id!r}, paused at {paused.checkpoint_id!r}"
    # Erasure redacted the draft the paused row committed to: take the committed hash.
    erased = _erased_since(review, paused, rows)
    return _content(review, paused, own, erased) or _status(review, own) or _votes(review, own)


def _erased_since(review: ReviewRecord, paused: AuditRecord, rows: Sequence[AuditRecord]) -> bool:
    """Whether the review's text reads as erased and an `erased` row follows its pause."""
    return review.draft_response == ERASED_TEXT and any(
        r.event == ERASED_EVENT and r.seq > paused.seq for r in rows
    )


def _content(
    review: ReviewRecord, paused: AuditRecord, own: list[AuditRecord], erased: bool
) -> str | None:
    committed = paused.payload
    if "commitment" not in committed:
        # Paused before commitments: the payload always held the draft hash and findings.
        legacy = _content_of(review, committed, erased)
        for name in ("draft_sha256", "violations"):
            if legacy[name] != committed.get(name):
                return f"{name} differs from the paused row"
        return None
    due = _deadline(committed.get("deadline"), own)
    row_due = _commitments.deadline_text(review.deadline)
    if not isinstance(due, _Any) and row_due not in due:
        return f"deadline {row_due} is not one the ledger set ({sorted(map(str, due))})"
    # The deadline checked above; the commitment is to the one the review opened with.
    content = {**_content_of(review, committed, erased), "deadline": committed.get("deadline")}
    if _commitments.commitment(content) == committed["commitment"]:
        return None
    for name in _commitments.COMMITTED_FIELDS:
        if content[name] != committed.get(name):
            return f"{name} differs from the paused row's commitment"
    if erased and not isinstance(committed["commitment"], str):
        return None  # the salted commitment went with the draft: each field compared above
    return "content differs from the paused row's commitment"


def _content_of(review: ReviewRecord, committed: dict[str, Any], erased: bool) -> dict[str, Any]:
    """The review's content; an erased draft reads as the hash the paused row committed to."""
    if not erased:
        return _commitments.review_content(review)
    return {**_commitments.review_content(review), "draft_sha256": committed.get("draft_sha256")}


class _Any:
    """Any deadline: an escalation recorded before escalated rows named theirs."""


_ANY = _Any()


def _deadline(committed: str | None, own: list[AuditRecord]) -> set[str | None] | _Any:
    """The deadlines the ledger allows the row now: committed, dated, or last escalated."""
    allowed: set[str | None] = {committed}
    for row in own:
        if row.event == "dated":
            # Several sweepers may each propose one; the store kept whichever came first.
            allowed.add(row.payload.get("deadline"))
        elif row.event == "escalated":
            if "deadline" not in row.payload:
                return _ANY
            allowed = {row.payload["deadline"]}
    return allowed


def _votes(review: ReviewRecord, own: list[AuditRecord]) -> str | None:
    voted = [_recorded_vote(r) for r in own if r.event == "voted"]
    for vote in review.votes:
        if review.status != "pending" and vote.reviewer == review.reviewer:
            continue  # the claiming vote: recorded by the claim and the decision row
        mine = [vote.reviewer, *(getattr(vote, k) for k in _VOTE_FIELDS)]
        if mine not in voted:
            return f"vote by {vote.reviewer!r} has no voted audit row"
    return None


def _recorded_vote(row: AuditRecord) -> list[Any]:
    """A `voted` row's actor and vote fields, read as a stored vote is (default key and all)."""
    try:
        vote = Vote.model_validate(row.payload)
    except ValidationError:
        return [row.actor, *(row.payload.get(k) for k in _VOTE_FIELDS)]
    return [row.actor, *(getattr(vote, k) for k in _VOTE_FIELDS)]


def _status(review: ReviewRecord, own: list[AuditRecord]) -> str | None:
    decided = [r for r in own if r.event in _DECISION_EVENTS.values()]
    if review.status in ("pending", "claimed"):
        if decided:
            return f"status {review.status} but the ledger records it {decided[-1].event}"
        return None
    event = _DECISION_EVENTS.get(review.status)
    if not any(r.event == event for r in decided):
        return f"status {review.status} without its {event} audit row"
    return None
