"""The [`ReviewStore`][hitl_compliance.ReviewStore] protocol every review/audit backend implements.

A store keeps four things, all durable in the SQL adapters:

* **turn rows** (`hitl_intents`): written before the graph runs, so a crash
  between "graph paused" and "review row written" is found by `recover()`
  without scanning checkpoints;
* **review rows** (`hitl_reviews`): one per pause, `pending -> claimed ->
  approved | rejected`; the `pending -> claimed` step is atomic and is what
  makes a decision exactly-once across processes;
* **audit rows** (`hitl_audit`): append-only, one per event;
* **hook outbox rows** (`hitl_hook_outbox`): one per hook call an audit row
  owes, written with it; a caller leases a row
  ([`claim_hooks`][hitl_compliance.ReviewStore.claim_hooks]) before it calls
  the hook, which makes hook calls at-least-once with a stable delivery id,
  and never concurrent while the lease holds.

Every method that changes more than one row does so in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from hitl_compliance import _commitments
from hitl_compliance._decision_kinds import FinalStatus, hook_for_event
from hitl_compliance.ledger import SealedHead
from hitl_compliance.models import AuditRecord, HookDelivery, ReviewRecord, Vote
from hitl_compliance.oversight import OversightReport, OversightThresholds, Period
from hitl_compliance.reasons import ReasonCodeCount

if TYPE_CHECKING:
    from hitl_compliance.signing import Sealing

__all__ = [
    "HOOK_FOR_EVENT",
    "FinalStatus",
    "OversightSource",
    "PendingCounter",
    "ReasonCodeCounter",
    "ReviewStore",
    "SealStore",
    "TurnRecord",
    "check_limit",
    "paused_payload",
]

HOOK_FOR_EVENT: dict[str, str] = hook_for_event()
"""Which decision hook an audit event owes a call to (when that hook is configured).

Derived from the decision kinds and the SLA outcomes (`_decision_kinds.py`)."""


class TurnRecord(BaseModel):
    """An intent row: a turn that started on `thread_id` and has not finished."""

    model_config = ConfigDict(frozen=True)

    thread_id: str
    owner: str
    started_at: datetime


@runtime_checkable
class ReviewStore(Protocol):
    """Durable home of reviews, turn intents and the audit log.

    Adapters: [`InMemoryReviewStore`][hitl_compliance.InMemoryReviewStore],
    `SqliteReviewStore`, `PostgresReviewStore`. All datetimes are timezone-aware.
    """

    async def setup(self) -> None:
        """Create tables and indexes; idempotent."""
        ...

    async def aclose(self) -> None:
        """Release connections owned by the store."""
        ...

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Record that a turn starts on `thread_id`.

        Raises:
            ThreadBusyError: the thread has an open (pending or claimed) review
                or an unfinished turn.
        """
        ...

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        """Delete the thread's turn row if `owner` still holds it."""
        ...

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        """Turn rows started before `started_before` (abandoned by a crash)."""
        ...

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        """Atomically move a turn row to `new_owner`; False if someone else did first."""
        ...

    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        """Insert a pending review, its `paused` audit row, and end the turn, atomically.

        Persists every field of `review`, including `deadline`, `priority` and
        `approvals_required`. Audit rows are sealed with
        [`seal`][hitl_compliance.models.seal] (hash chain per thread and store-wide).

        Idempotent per `(thread_id, checkpoint_id)`: when that review exists,
        return it and write nothing.

        Raises:
            ThreadBusyError: the thread has an open review of another pause. Reviews
                of one pause (checkpoint ids `"<checkpoint id>:<review id>"` with
                the same checkpoint id, the items a gate waits for in parallel) may
                be open together (the state machine's `same_pause`).
        """
        ...

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""
        ...

    async def open_reviews(self, thread_id: str) -> list[ReviewRecord]:
        """The thread's open (`pending` or `claimed`) reviews, oldest opened first.

        Several reviews of one thread are open at once only when they belong to
        one pause (one parent checkpoint, `"<checkpoint id>:<review id>"`: a
        gate waiting for several tool calls in parallel); see `open_review`.
        """
        ...

    async def list_pending(
        self,
        *,
        limit: int | None = None,
        rule: str | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Reviews with status `pending`, ordered by `(requested_at, review_id)`.

        Cost is O(returned rows) through an index: filters narrow to reviews
        with a finding of `rule`, requested strictly before `requested_before`,
        and strictly after the `(requested_at, review_id)` cursor `after`.
        """
        ...

    async def claim(
        self,
        thread_id: str,
        *,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
        review_id: str | None = None,
    ) -> ReviewRecord:
        """Atomically move the thread's pending review to `claimed` with `decision`.

        With `review_id`, only that review may be claimed (the one the decider
        loaded): the thread's latest, or another of its reviews still pending
        (one of several open reviews of one pause). Without it, the latest.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the review is claimed or decided, or `review_id`
                is not an open review of the thread.
        """
        ...

    async def vote(
        self,
        thread_id: str,
        *,
        review_id: str,
        vote: Vote,
        quorum: int,
        claim_id: str,
        decision: dict[str, Any],
        now: datetime,
    ) -> ReviewRecord:
        """Record an approval vote; claim the review when it completes the quorum, atomically.

        Counts the votes already on the review for the same `text_sha256`, plus
        this one. Below `quorum`: append the vote, write a `voted` audit row and
        return the still-`pending` record. At `quorum`: append the vote and move
        the review to `claimed` with `claim_id`, `decision` and `reviewer =
        vote.reviewer`, as [`claim`][hitl_compliance.ReviewStore.claim] does.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the review `review_id` is not pending.
            DuplicateVoteError: `vote.reviewer` already voted on this review.
        """
        ...

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim that never reached the graph: back to `pending`.

        Clears the claim and drops the claiming reviewer's vote, if any.
        """
        ...

    async def complete(
        self,
        review_id: str,
        *,
        claim_id: str,
        status: FinalStatus,
        now: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord:
        """Move a claimed review to its final status and append the decision audit row.

        Idempotent for the claim's holder: when the review is already `status`
        under `claim_id` (the graph's authority recorded the claimed outcome
        first, as a raw resume running the graph's outcome step does), return
        it as it is, with no second audit row.

        Raises:
            AlreadyDecidedError: `claim_id` no longer holds the review (and did
                not complete it with `status`).
        """
        ...

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        """Claimed reviews whose claim is older than `claimed_before`."""
        ...

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        """Atomically move an abandoned claim to `new_claim_id`; False if it moved already."""
        ...

    async def append_audit(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: dict[str, Any],
        at: datetime,
    ) -> AuditRecord:
        """Append one audit row."""
        ...

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit rows, oldest first."""
        ...

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        """Every audit row of the store (or of one thread), in `seq` order, as stored."""
        ...

    async def audit_head(self) -> tuple[int, str] | None:
        """The ledger's head `(seq, hash)`, or None before the first row.

        One chain: the last appended row's. Several lanes (PostgreSQL): the
        [`combined_head`][hitl_compliance.ledger.combined_head] of the lane heads.
        """
        ...

    async def list_overdue(self, *, now: datetime, limit: int | None = None) -> list[ReviewRecord]:
        """Pending reviews whose `deadline` is at or before `now`, earliest first; O(overdue)."""
        ...

    async def list_undated(self, *, limit: int | None = None) -> list[ReviewRecord]:
        """Pending reviews without a `deadline`, by `(requested_at, review_id)`; O(returned rows).

        A coordinator with an SLA dates them (`set_deadline`) when it sweeps or
        recovers: a raw run's gate records its pauses without one, and a
        coordinator without an SLA opens its reviews without one.
        """
        ...

    async def set_deadline(self, review_id: str, *, deadline: datetime) -> bool:
        """Set the `deadline` of a pending review that has none, atomically.

        Returns False, changing nothing, when the review is unknown, not
        pending, or has a deadline already (another coordinator dated it
        first); no audit row is written (the coordinator appends a `dated`
        row naming the deadline first, so the deadline is committed).
        """
        ...

    async def escalate(
        self,
        review_id: str,
        *,
        now: datetime,
        new_deadline: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord | None:
        """Raise an overdue pending review's priority and move its deadline, atomically.

        Only when it is still pending with `deadline <= now` (so concurrent
        sweepers escalate it once); writes an `escalated` audit row. Returns the
        updated record, or None when another sweeper (or a decision) got there first.
        """
        ...

    def configure_hooks(self, hooks: frozenset[str]) -> None:
        """Name the hooks (`on_paused`, `on_decided`, `on_expired`) the application handles.

        From then on, appending an audit row whose event maps to one of them
        ([`HOOK_FOR_EVENT`][hitl_compliance.stores.HOOK_FOR_EVENT]) also writes
        a `pending` outbox row in the same transaction, so a hook call is never
        lost to a crash between the decision and the call.

        A store may also expose the names as a `configured_hooks` property
        (the library's stores do): the coordinator then warns when a second
        coordinator on the same store instance would drop the first one's hooks.
        """
        ...

    async def pending_hooks(
        self, *, thread_id: str | None = None, created_before: datetime | None = None
    ) -> list[HookDelivery]:
        """Undelivered outbox rows in `seq` order: `failed` ones, and `pending` ones
        created before `created_before` (all pending ones when it is None).

        A read, for inspection: it claims nothing, and lists leased rows too.
        Callers of hooks use [`claim_hooks`][hitl_compliance.ReviewStore.claim_hooks].
        """
        ...

    async def claim_hooks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        thread_id: str | None = None,
        hooks: frozenset[str] | None = None,
        created_before: datetime | None = None,
        include_failed: bool = True,
        limit: int | None = None,
    ) -> list[HookDelivery]:
        """Atomically lease undelivered outbox rows to `owner` until `lease_until`; return them.

        A row is claimable when it is not `delivered` and no lease holds it
        (`lease_until` unset, or at or before `now`: a lease that expired is
        taken over, as from a crashed caller). Filters: of `thread_id` only; of
        these `hooks` only; `pending` rows only unless `include_failed`; and,
        with `created_before`, a row nobody ever claimed only if created before
        it (failed rows and expired leases regardless). At most `limit` rows,
        in `seq` order, returned with `lease_owner=owner` and `lease_until` set.

        Across store instances and processes on one database, each row goes
        to one caller per lease: two concurrent calls never both return it.
        The row keeps its `delivery_id`, so a retry carries the same id.
        """
        ...

    async def renew_hook(self, delivery_id: str, *, owner: str, lease_until: datetime) -> bool:
        """Move the lease `owner` holds on an undelivered row to `lease_until`.

        Called while a hook runs, so a live call keeps its row however long it
        takes. Returns False, changing nothing, when the row is unknown,
        delivered, or no longer `owner`'s (another caller took it over).
        """
        ...

    async def finish_hook(
        self,
        delivery_id: str,
        *,
        ok: bool,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """Record one delivery attempt: `delivered` when ok, else `failed` with `error`.

        Only the lease holder may record it: `owner` must be the row's
        `lease_owner` (with `owner=None`, only a row nobody holds). A failure
        releases the lease, so `recover()` may retry at once; `delivered` is
        final. Returns False, changing nothing, when the row is unknown,
        already delivered, or held by another owner (its lease was taken over).
        """
        ...


@runtime_checkable
class PendingCounter(Protocol):
    """A store that counts its pending reviews from an index (the library's three stores).

    Optional: what feeds the coordinator's `hitl.reviews.pending` gauge
    ([telemetry](../guides/telemetry.md)); without it the gauge reports nothing.
    """

    async def count_pending(self) -> int:
        """How many reviews are `pending` now (claimed ones are not)."""
        ...


@runtime_checkable
class ReasonCodeCounter(Protocol):
    """A store that counts reason codes itself (the library's stores, in one query).

    Optional: for a store without it, the coordinator counts the rows of
    `audit_rows()` ([`count_reason_codes`][hitl_compliance.reasons.count_reason_codes]).
    """

    async def reason_code_counts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[ReasonCodeCount, ...]:
        """Audit rows at `since <= at < until` whose payload has a `reason_code`, counted
        by `(code, event)`, sorted by code then event."""
        ...


@runtime_checkable
class OversightSource(Protocol):
    """A store that computes [oversight reports](../guides/oversight.md) (the library's three).

    It reads only the window's rows, through indexes: decided reviews by
    `decided_at`, `escalated` and `qa_verdict` audit rows by `(event, at)`, and
    hands them to [`build_report`][hitl_compliance.oversight.build_report].
    """

    async def oversight_report(
        self,
        *,
        since: datetime,
        until: datetime,
        thresholds: OversightThresholds,
        period: Period,
    ) -> OversightReport:
        """The report of the reviews decided, and audit rows written, at `since <= t < until`."""
        ...


@runtime_checkable
class SealStore(Protocol):
    """A store that keeps signed chain heads: the capability behind `HitlCoordinator(sealing=)`.

    The library's three stores implement it. After each write that appended
    audit rows (once committed), a store with a sealing policy signs its chain
    head when due, stores the [`SealedHead`][hitl_compliance.ledger.SealedHead]
    and publishes it to the policy's anchors.
    """

    def configure_sealing(self, sealing: Sealing | None) -> None:
        """Seal under `sealing` from now on (None stops sealing)."""
        ...

    @property
    def sealing(self) -> Sealing | None:
        """The sealing policy in force, or None."""
        ...

    async def seal_head(self) -> SealedHead | None:
        """Sign, store and publish the current chain head now; None when the ledger is empty."""
        ...

    async def seals(self) -> list[SealedHead]:
        """Every sealed head the store keeps, by seq."""
        ...


def paused_payload(review: ReviewRecord) -> dict[str, Any]:
    """The payload of a review's `paused` audit row; every adapter writes the same.

    The review's authorisation-relevant content (`draft_sha256`, `violations`,
    `requested_by`, `approvals_required`, `deadline`) and `commitment`, the
    SHA-256 of its canonical JSON, which the coordinator checks the row against
    before deciding (see the audit docs, "What is committed and checked").
    """
    return _commitments.paused_payload(review)


def check_limit(limit: int | None) -> None:
    """ValueError unless `limit` is None (no limit) or an int >= 0: the same on every store."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be >= 0 or None, got {limit!r}.")
