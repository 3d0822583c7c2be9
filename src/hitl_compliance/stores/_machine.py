"""The review state machine every store applies: which transitions are legal, and the error each
illegal one raises, written once.

```text
            claim / vote at quorum            complete
  pending ---------------------------> claimed ---------> approved | rejected | expired
     ^  \\                               |  ^
     |   vote below quorum, escalate     |  | take over an abandoned claim
     |   (stay pending)                  |  |
     +------------- release -------------+--+
```

A thread is *open* while a review of it is `pending` or `claimed`: it may
start no turn, and open no review of another pause. Several reviews of one
pause may be open at once: a gate whose message has several flagged tool
calls waits for each in parallel, one review per item, all keyed
`"<checkpoint id>:<review id>"` under the same parent checkpoint
([`same_pause`][hitl_compliance.stores._machine.same_pause]). Only a
`pending` review is decided (claimed, voted on, escalated); only the holder of
a claim releases or completes it (completing it again with the same status is
a no-op, [`completed_by`][hitl_compliance.stores._machine.completed_by]); one
person votes once, compared by canonical
[`reviewer_key`][hitl_compliance.models.Vote.reviewer_key].

The module is pure (no I/O, no clock): the in-memory store calls its checks
on its records, and a SQL store maps each precondition to a WHERE clause (or
to a branch of a server-side function) and each refusal back to
[`refusal_error`][hitl_compliance.stores._machine.refusal_error], so a
message is written here and nowhere else.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal, TypeVar

from hitl_compliance._decision_kinds import final_statuses
from hitl_compliance.errors import (
    AlreadyDecidedError,
    DuplicateVoteError,
    HitlError,
    ReviewNotFoundError,
    ThreadBusyError,
)

__all__ = [
    "OPEN_STATUSES",
    "Action",
    "Refusal",
    "can_escalate",
    "completed_by",
    "decide_refusal",
    "holds_claim",
    "is_duplicate_vote",
    "is_open",
    "kept_on_release",
    "next_status",
    "pause_of",
    "quorum_met",
    "refusal_error",
    "same_pause",
    "turn_refusal",
]

_V = TypeVar("_V")

Action = Literal["claim", "vote", "release", "complete", "escalate", "take_over"]

OPEN_STATUSES: tuple[str, ...] = ("pending", "claimed")
"""The statuses that keep a thread paused (no turn, no review of another pause)."""

# The final statuses are those of the decision kinds and SLA outcomes (`_decision_kinds.py`).
_FINAL: frozenset[str] = frozenset(final_statuses())

# Which status each action needs, and the one it leaves ("final" = the status
# `complete` is given). Vote and escalate leave a review pending (a vote at
# quorum is a claim); release undoes a claim.
_TRANSITIONS: dict[Action, tuple[str, str]] = {
    "claim": ("pending", "claimed"),
    "vote": ("pending", "pending"),
    "escalate": ("pending", "pending"),
    "release": ("claimed", "pending"),
    "take_over": ("claimed", "claimed"),
    "complete": ("claimed", "final"),
}


class Refusal(enum.Enum):
    """Why a store refused a transition; [`refusal_error`][.refusal_error] gives its error."""

    THREAD_PAUSED = "thread_paused"
    """`begin_turn`: a review of the thread is open."""
    TURN_IN_PROGRESS = "turn_in_progress"
    """`begin_turn`: another turn holds the thread (or crashed holding it)."""
    REVIEW_OPEN = "review_open"
    """`open_review`: a review of another pause of the thread is open."""
    NO_REVIEW = "no_review"
    """`claim` / `vote`: the thread has no review at all."""
    NOT_OPEN_REVIEW = "not_open_review"
    """`claim` / `vote`: the review the decider loaded is no longer open (nor the latest)."""
    DECIDED = "decided"
    """`claim` / `vote`: the latest review is claimed or final."""
    APPLYING = "applying"
    """`claim` / `vote`: another review of the thread is claimed: its decision is being applied."""
    DUPLICATE_VOTE = "duplicate_vote"
    """`vote`: this person already voted on the review."""
    CLAIM_LOST = "claim_lost"
    """`complete`: the claim no longer holds the review."""


def next_status(status: str, action: Action, *, final: str | None = None) -> str | None:
    """The status `action` leaves a review in `status` with, or None when it is illegal there.

    Args:
        status: the review's current status.
        action: the transition tried.
        final: with `complete`, the final status given (`approved`, `rejected`, `expired`).
    """
    needs, leaves = _TRANSITIONS[action]
    if status != needs:
        return None
    if leaves == "final":
        return final if final in _FINAL else None
    return leaves


def is_open(status: str) -> bool:
    """Whether a review in `status` keeps its thread paused."""
    return status in OPEN_STATUSES


def pause_of(checkpoint_id: str) -> str:
    """The pause a review's `checkpoint_id` belongs to: the checkpoint before any `":<review id>"`.

    A gate's review is stored under `"<parent checkpoint id>:<review id>"`
    (LangGraph checkpoint ids hold no `:`); every item waiting at one parent
    checkpoint belongs to the same pause.
    """
    return checkpoint_id.split(":", 1)[0]


def same_pause(open_checkpoint: str, checkpoint_id: str) -> bool:
    """Whether a review at `checkpoint_id` may open beside an open review at `open_checkpoint`.

    Only reviews of items of one pause (one parent checkpoint, each with its own
    review id) are open together; a review of another pause waits for the open one.
    """
    return (
        ":" in open_checkpoint
        and ":" in checkpoint_id
        and pause_of(open_checkpoint) == pause_of(checkpoint_id)
    )


def turn_refusal(*, review_open: bool, turn_held: bool) -> Refusal | None:
    """Why `begin_turn` may not start a turn (the open review is named first), or None."""
    if review_open:
        return Refusal.THREAD_PAUSED
    if turn_held:
        return Refusal.TURN_IN_PROGRESS
    return None


def decide_refusal(
    *,
    latest_id: str | None,
    latest_status: str | None,
    review_id: str | None,
    review_status: str | None = None,
    other_claimed: bool = False,
) -> Refusal | None:
    """Why a thread's review may not be claimed or voted on, or None.

    Without `review_id`, the thread's latest review (`latest_id`, None if the
    thread has none) is decided. With `review_id`, only that review may be
    decided (the one the decider loaded): the latest, or another review of
    the thread still `pending` (`review_status`, None when the thread has no
    such review), as several items of one pause are.

    While another review of the thread is claimed (`other_claimed`), its
    decision is resuming the graph; LangGraph has no per-thread lock, and two
    resumes of one thread at once lose one of them, so no other decision of the
    thread starts until that one completes (or is released).
    """
    if latest_id is None:
        return Refusal.NO_REVIEW
    if review_id is not None and latest_id != review_id:
        if review_status is None or next_status(review_status, "claim") is None:
            return Refusal.NOT_OPEN_REVIEW
    elif latest_status is None or next_status(latest_status, "claim") is None:
        return Refusal.DECIDED
    if other_claimed:
        return Refusal.APPLYING
    return None


def is_duplicate_vote(keys: Iterable[str], reviewer_key: str) -> bool:
    """Whether a vote by `reviewer_key` repeats one of the votes (canonical `keys`) on a review.

    Compared by canonical key, not by the id as spelt: one person, one vote.
    """
    return any(key == reviewer_key for key in keys)


def quorum_met(text_hashes: Iterable[str], text_sha256: str, quorum: int) -> bool:
    """Whether the votes (`text_hashes`, the new one included) approve `text_sha256` `quorum` times.

    Only votes for the same text count: approvals of different edits never add up.
    """
    return sum(h == text_sha256 for h in text_hashes) >= quorum


def kept_on_release(
    votes: Sequence[_V], claimer: str | None, reviewer_of: Callable[[_V], str]
) -> list[_V]:
    """The votes a released review keeps: all but the claimer's, which never reached the graph."""
    return [v for v in votes if reviewer_of(v) != claimer]


def holds_claim(status: str | None, claim_id: str | None, holder: str) -> bool:
    """Whether `holder` holds the claim of a review in `status` claimed by `claim_id`.

    Only the holder completes, releases or takes over a claim (a claim taken
    over from a crashed decider is held by its new id).
    """
    return status is not None and next_status(status, "release") is not None and claim_id == holder


def completed_by(status: str | None, claim_id: str | None, holder: str, final: str) -> bool:
    """Whether a review in `status` claimed by `claim_id` is already `final` under `holder`'s claim.

    `complete` is idempotent for the claim's holder: a raw resume that runs the
    graph's outcome step from the checkpoint holding a claimed decision makes the
    graph's authority record that outcome, under the claim, before the claimer's
    own `complete`; that one then succeeds, writing nothing. A review completed
    under another claim (one taken over) or with another status stays refused.
    """
    return status is not None and status == final and final in _FINAL and claim_id == holder


def can_escalate(status: str, deadline: datetime | None, now: datetime) -> bool:
    """Whether an SLA sweep at `now` escalates the review: still pending and overdue."""
    return next_status(status, "escalate") is not None and deadline is not None and deadline <= now


def refusal_error(
    refusal: Refusal,
    *,
    thread_id: str | None,
    review_id: str | None = None,
    status: str | None = None,
    reviewer: str | None = None,
) -> HitlError:
    """The error a store raises for `refusal`: the one place its message is written.

    Args:
        refusal: why the transition was refused.
        thread_id: the thread concerned (None when a `complete` finds no review).
        review_id: the review concerned: the one asked for (`NOT_OPEN_REVIEW`,
            `CLAIM_LOST`) or the open one (`REVIEW_OPEN`).
        status: the status found (carried by the `AlreadyDecidedError` family).
        reviewer: the voter (`DUPLICATE_VOTE`).
    """
    if refusal is Refusal.THREAD_PAUSED:
        return ThreadBusyError(
            f"Thread {thread_id!r} is paused for review; approve or reject it first.",
            thread_id=thread_id,
        )
    if refusal is Refusal.TURN_IN_PROGRESS:
        return ThreadBusyError(
            f"Thread {thread_id!r} has a turn in progress (or one that crashed: "
            "run `await coord.recover()`).",
            thread_id=thread_id,
        )
    if refusal is Refusal.REVIEW_OPEN:
        return ThreadBusyError(
            f"Thread {thread_id!r} already has open review {review_id!r}; "
            "decide it before opening another.",
            thread_id=thread_id,
        )
    if refusal is Refusal.NO_REVIEW:
        return ReviewNotFoundError(
            f"Thread {thread_id!r} has no review: it never paused.", thread_id=thread_id
        )
    if refusal is Refusal.NOT_OPEN_REVIEW:
        return AlreadyDecidedError(
            f"The review {review_id!r} of thread {thread_id!r} is no longer the open one.",
            thread_id=thread_id,
            status=status,
        )
    if refusal is Refusal.DECIDED:
        return AlreadyDecidedError(
            f"The review of thread {thread_id!r} is already {status}.",
            thread_id=thread_id,
            status=status,
        )
    if refusal is Refusal.APPLYING:
        return ThreadBusyError(
            f"Thread {thread_id!r} is applying the decision of another of its reviews; "
            "decide this one when it completes (or, after a crash, once "
            "`await coord.recover()` has finished it).",
            thread_id=thread_id,
        )
    if refusal is Refusal.DUPLICATE_VOTE:
        return DuplicateVoteError(
            f"{reviewer!r} already approved the review of thread {thread_id!r}; "
            "it needs another approver.",
            thread_id=thread_id,
            status=status,
        )
    assert refusal is Refusal.CLAIM_LOST, refusal
    return AlreadyDecidedError(
        f"Review {review_id!r} is no longer held by this decision.",
        thread_id=thread_id,
        status=status,
    )
