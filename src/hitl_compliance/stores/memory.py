"""In-memory review store: the default, for tests and notebooks. Nothing survives the process."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from hitl_compliance import _personal
from hitl_compliance.assignment import (
    DELEGATION_THREAD,
    Assignment,
    Delegation,
    assigned_payload,
    delegated_payload,
)
from hitl_compliance.erasure import PersonalValue, ThreadErasure
from hitl_compliance.ledger import ERASED_EVENT, GENESIS, PRUNED_EVENT, SealedHead
from hitl_compliance.models import (
    AuditRecord,
    HookDelivery,
    ReviewRecord,
    Vote,
    seal,
    sha256_text,
)
from hitl_compliance.oversight import (
    OversightReport,
    OversightThresholds,
    Period,
    report_of_records,
)
from hitl_compliance.qa import (
    QA_SAMPLED_EVENT,
    QA_SAMPLER,
    QA_VERDICT_EVENT,
    QaReview,
    QaRuleCount,
    QaVerdict,
    count_qa,
    qa_not_found,
    qa_recorded,
)
from hitl_compliance.reasons import ReasonCodeCount, count_reason_codes
from hitl_compliance.retention import (
    Hold,
    RecordClass,
    dumps_state,
    hold_error,
    tombstone_payload,
)
from hitl_compliance.stops import (
    DELIVERY_RESUMED,
    DELIVERY_STOPPED,
    STOP_THREAD,
    StopScope,
    StopSwitch,
)
from hitl_compliance.stores import _machine as machine
from hitl_compliance.stores._machine import Refusal, refusal_error
from hitl_compliance.stores._seals import Sealed, seals_after
from hitl_compliance.stores._sqlkinds import finding_kinds
from hitl_compliance.stores.base import (
    HOOK_FOR_EVENT,
    FinalStatus,
    TurnRecord,
    check_limit,
)

__all__ = ["InMemoryReviewStore"]

_M = TypeVar("_M", bound=BaseModel)


class InMemoryReviewStore(Sealed):
    """A [`ReviewStore`][hitl_compliance.ReviewStore] in process memory.

    Atomic within one event loop (one lock around every change); use the
    SQLite or Postgres store when several processes decide reviews.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._reviews: dict[str, ReviewRecord] = {}
        self._by_thread: dict[str, list[str]] = {}
        self._by_checkpoint: dict[tuple[str, str], str] = {}
        self._pending: dict[str, None] = {}  # insertion-ordered set of pending review ids
        # The pending reviews' keys, sorted: `list_pending` bisects and slices it
        # instead of sorting every pending review on each call.
        self._pending_order: list[tuple[datetime, str]] = []
        # Secondary indexes of the pending reviews, each sorted like `_pending_order`:
        # per rule of their findings (`list_pending(rule=)`) and per assignee
        # (`list_assigned`), so a filtered page costs O(log n + rows returned).
        self._pending_by_rule: dict[str, list[tuple[datetime, str]]] = {}
        self._pending_by_assignee: dict[str, list[tuple[datetime, str]]] = {}
        # ... and per finding kinds (`_sqlkinds.finding_kinds`), for pending(reviewer=).
        self._pending_by_kinds: dict[str, list[tuple[datetime, str]]] = {}
        self._turns: dict[str, TurnRecord] = {}
        self._audit: list[AuditRecord] = []
        self._audit_by_thread: dict[str, list[AuditRecord]] = {}
        self._hooks: frozenset[str] = frozenset()
        self._outbox: dict[str, HookDelivery] = {}
        self._last_seq = 0  # rows may be pruned: the next seq is not len(self._audit) + 1
        self._holds: dict[str, Hold] = {}
        self._stops: dict[str, StopSwitch] = {}
        self._assignments: dict[str, Assignment] = {}  # review_id -> assignment in force
        self._delegations: dict[str, Delegation] = {}  # delegator -> delegation
        self._evidence: dict[str, tuple[str, dict[str, Any]]] = {}  # review_id -> (thread, state)
        self._seals: dict[tuple[int, str], SealedHead] = {}
        self._personal: dict[str, PersonalValue] = {}  # digest -> value kept beside the chain
        self._qa: dict[str, QaReview] = {}  # second-line QA reviews, apart from `_reviews`

    def configure_hooks(self, hooks: frozenset[str]) -> None:
        """Write outbox rows for these hooks (see the protocol)."""
        self._hooks = frozenset(hooks)

    @property
    def configured_hooks(self) -> frozenset[str]:
        """The hook names this store writes outbox rows for (its last `configure_hooks`)."""
        return self._hooks

    async def setup(self) -> None:
        """Nothing to create."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _open_review_id(self, thread_id: str, checkpoint_id: str | None = None) -> str | None:
        """An open review of the thread (of another pause than `checkpoint_id`'s, if given)."""
        for review_id in reversed(self._by_thread.get(thread_id) or ()):
            review = self._reviews[review_id]
            if machine.is_open(review.status) and (
                checkpoint_id is None or not machine.same_pause(review.checkpoint_id, checkpoint_id)
            ):
                return review_id
        return None

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        _aware(now)
        async with self._lock:
            refusal = machine.turn_refusal(
                review_open=self._open_review_id(thread_id) is not None,
                turn_held=thread_id in self._turns,
            )
            if refusal is not None:
                raise refusal_error(refusal, thread_id=thread_id)
            self._turns[thread_id] = TurnRecord(thread_id=thread_id, owner=owner, started_at=now)

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        async with self._lock:
            turn = self._turns.get(thread_id)
            if turn is not None and turn.owner == owner:
                del self._turns[thread_id]

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        async with self._lock:
            return [t for t in self._turns.values() if t.started_at < started_before]

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        async with self._lock:
            turn = self._turns.get(thread_id)
            if turn is None or turn.owner != old_owner:
                return False
            self._turns[thread_id] = TurnRecord(
                thread_id=thread_id, owner=new_owner, started_at=now
            )
            return True

    @seals_after
    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        _aware(review.requested_at)
        async with self._lock:
            existing = self._by_checkpoint.get((review.thread_id, review.checkpoint_id))
            if existing is not None:
                return self._reviews[existing]
            open_id = self._open_review_id(review.thread_id, review.checkpoint_id)
            if open_id is not None:
                raise refusal_error(
                    Refusal.REVIEW_OPEN, thread_id=review.thread_id, review_id=open_id
                )
            # Sealed first: a row the ledger refuses (LedgerValueError) changes nothing.
            payload, personal = _personal.sealed_paused(review)
            record = self._seal(
                thread_id=review.thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event="paused",
                actor=review.requested_by or "system",
                payload=payload,
                at=review.requested_at,
            )
            for value in personal:
                self._personal[value.digest] = value
            self._reviews[review.review_id] = _lean(review)
            self._by_thread.setdefault(review.thread_id, []).append(review.review_id)
            self._by_checkpoint[(review.thread_id, review.checkpoint_id)] = review.review_id
            self._add_pending(review)
            self._push(record)
            turn = self._turns.get(review.thread_id)
            if owner is not None and turn is not None and turn.owner == owner:
                del self._turns[review.thread_id]
            return review

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        ids = self._by_thread.get(thread_id)
        return self._reviews[ids[-1]] if ids else None

    async def open_reviews(self, thread_id: str) -> list[ReviewRecord]:
        reviews = (self._reviews[i] for i in self._by_thread.get(thread_id) or ())
        return [r for r in reviews if machine.is_open(r.status)]

    async def list_pending(
        self,
        *,
        limit: int | None = None,
        rule: str | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        check_limit(limit)
        async with self._lock:
            # The keyset window of a sorted index: after the cursor, before the cutoff.
            order = self._pending_order if rule is None else self._pending_by_rule.get(rule, [])
            keys = _window(order, after, requested_before, limit)
            return [self._reviews[review_id] for _, review_id in keys]

    async def pending_finding_kinds(self) -> list[str] | None:
        """Each distinct finding-kinds value among pending reviews (`pending(reviewer=)`)."""
        async with self._lock:
            return sorted(self._pending_by_kinds)

    async def list_pending_by_kinds(
        self,
        kinds: Sequence[str],
        *,
        limit: int | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Pending reviews whose finding-kinds value is one of `kinds`, oldest first."""
        check_limit(limit)
        async with self._lock:
            return self._merged(self._pending_by_kinds, kinds, limit, requested_before, after)

    async def count_pending(self) -> int:
        """How many reviews are pending (the size of the pending index)."""
        return len(self._pending)

    def _add_pending(self, review: ReviewRecord) -> None:
        if review.review_id not in self._pending:
            self._pending[review.review_id] = None
            key = (review.requested_at, review.review_id)
            bisect.insort(self._pending_order, key)
            for rule in dict.fromkeys(v.rule for v in review.violations):
                bisect.insort(self._pending_by_rule.setdefault(rule, []), key)
            kinds = finding_kinds(review.violations)
            bisect.insort(self._pending_by_kinds.setdefault(kinds, []), key)
            assigned = self._assignments.get(review.review_id)
            if assigned is not None:
                bisect.insort(self._pending_by_assignee.setdefault(assigned.assigned_to, []), key)

    def _drop_pending(self, review: ReviewRecord) -> None:
        if review.review_id in self._pending:
            del self._pending[review.review_id]
            key = (review.requested_at, review.review_id)
            _remove(self._pending_order, key)
            for rule in dict.fromkeys(v.rule for v in review.violations):
                _remove_from(self._pending_by_rule, rule, key)
            _remove_from(self._pending_by_kinds, finding_kinds(review.violations), key)
            assigned = self._assignments.get(review.review_id)
            if assigned is not None:
                _remove_from(self._pending_by_assignee, assigned.assigned_to, key)

    def _pending_review(self, thread_id: str, review_id: str | None) -> ReviewRecord:
        """The thread's latest review, which must be pending (and `review_id`, if given)."""
        ids = self._by_thread.get(thread_id)
        review = self._reviews[ids[-1]] if ids else None
        asked = self._reviews.get(review_id) if review_id is not None else None
        if asked is not None and asked.thread_id != thread_id:
            asked = None
        target = review_id if review_id is not None or review is None else review.review_id
        others = (self._reviews[i] for i in ids or ())
        refusal = machine.decide_refusal(
            latest_id=None if review is None else review.review_id,
            latest_status=None if review is None else review.status,
            review_id=review_id,
            review_status=None if asked is None else asked.status,
            other_claimed=any(r.status == "claimed" and r.review_id != target for r in others),
        )
        if refusal is Refusal.NOT_OPEN_REVIEW:
            raise refusal_error(
                refusal,
                thread_id=thread_id,
                review_id=review_id,
                status=None if asked is None else asked.status,
            )
        if refusal is not None:
            raise refusal_error(
                refusal, thread_id=thread_id, status=None if review is None else review.status
            )
        assert review is not None  # no refusal: the thread has a review
        return asked if asked is not None and asked.status == "pending" else review

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
        async with self._lock:
            review = self._pending_review(thread_id, review_id)
            return self._claim(review, claim_id, reviewer, decision, now, review.votes)

    def _claim(
        self,
        review: ReviewRecord,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
        votes: list[Vote],
    ) -> ReviewRecord:
        claimed = review.model_copy(
            update={
                "status": "claimed",
                "claim_id": claim_id,
                "claimed_at": now,
                "reviewer": reviewer,
                "decision": decision,
                "votes": votes,
            }
        )
        self._reviews[review.review_id] = _lean(claimed)
        self._drop_pending(review)
        return claimed

    @seals_after
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
        _aware(now)
        async with self._lock:
            review = self._pending_review(thread_id, review_id)
            # One vote per person: compared by canonical key, not by the id as spelt.
            if machine.is_duplicate_vote((v.reviewer_key for v in review.votes), vote.reviewer_key):
                raise refusal_error(
                    Refusal.DUPLICATE_VOTE,
                    thread_id=thread_id,
                    status=review.status,
                    reviewer=vote.reviewer,
                )
            votes = [*review.votes, vote]
            if machine.quorum_met((v.text_sha256 for v in votes), vote.text_sha256, quorum):
                return self._claim(review, claim_id, vote.reviewer, decision, now, votes)
            updated = review.model_copy(update={"votes": votes})
            record = self._seal(
                thread_id=thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event="voted",
                actor=vote.reviewer,
                payload=vote.model_dump(mode="json"),
                at=now,
            )
            self._reviews[review.review_id] = _lean(updated)
            self._push(record)
            return updated

    async def release(self, review_id: str, *, claim_id: str) -> None:
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is None or not machine.holds_claim(review.status, review.claim_id, claim_id):
                return
            released = review.model_copy(
                update={
                    "status": "pending",
                    "claim_id": None,
                    "claimed_at": None,
                    "reviewer": None,
                    "decision": None,
                    "votes": machine.kept_on_release(
                        review.votes, review.reviewer, lambda v: v.reviewer
                    ),
                }
            )
            self._reviews[review_id] = _lean(released)
            self._add_pending(released)

    @seals_after
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
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is not None and machine.completed_by(
                review.status, review.claim_id, claim_id, status
            ):
                return review
            if review is None or not machine.holds_claim(review.status, review.claim_id, claim_id):
                raise refusal_error(
                    Refusal.CLAIM_LOST,
                    review_id=review_id,
                    thread_id=None if review is None else review.thread_id,
                    status=None if review is None else review.status,
                )
            done = review.model_copy(update={"status": status, "decided_at": now})
            record = self._seal(
                thread_id=review.thread_id,
                review_id=review_id,
                checkpoint_id=review.checkpoint_id,
                event=status,
                actor=actor,
                payload=payload,
                at=now,
            )
            self._reviews[review_id] = _lean(done)
            self._push(record)
            return done

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        async with self._lock:
            return [
                r
                for r in self._reviews.values()
                if r.status == "claimed"
                and r.claimed_at is not None
                and r.claimed_at < claimed_before
            ]

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is None or not machine.holds_claim(
                review.status, review.claim_id, old_claim_id
            ):
                return False
            self._reviews[review_id] = _lean(
                review.model_copy(update={"claim_id": new_claim_id, "claimed_at": now})
            )
            return True

    @seals_after
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
        async with self._lock:
            return self._push(
                self._seal(
                    thread_id=thread_id,
                    review_id=review_id,
                    checkpoint_id=checkpoint_id,
                    event=event,
                    actor=actor,
                    payload=payload,
                    at=at,
                )
            )

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        return _personal.revealed(self._audit_by_thread.get(thread_id, ()), self._personal)

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        if thread_id is not None:
            return await self.audit_log(thread_id)
        return _personal.revealed(self._audit, self._personal)

    # -- personal data (erasure) -----------------------------------------------------

    async def put_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep these values beside the chain (see `PersonalStore`)."""
        async with self._lock:
            for value in values:
                self._personal.setdefault(value.digest, value)

    async def personal_values(self, thread_id: str | None = None) -> list[PersonalValue]:
        """The values kept for the thread (every thread's when None)."""
        return [v for v in self._personal.values() if thread_id in (None, v.thread_id)]

    async def subject_threads(self, subject: str) -> list[str]:
        """The threads holding the subject's data: its values' or its requested reviews'."""
        found = {v.thread_id for v in self._personal.values() if v.subject == subject}
        found |= {r.thread_id for r in self._reviews.values() if r.requested_by == subject}
        return sorted(found)

    async def erase_thread(self, thread_id: str, *, now: datetime, actor: str) -> ThreadErasure:
        """Delete the thread's personal values, redact its reviews and evidence, append `erased`."""
        _aware(now)
        async with self._lock:
            hold = self._holds.get(thread_id)
            if hold is not None:
                raise hold_error(hold, action="erase")
            if self._open_review_id(thread_id) is not None:
                raise _personal.open_review_error(thread_id)
            gone = [d for d, v in self._personal.items() if v.thread_id == thread_id]
            for digest in gone:
                del self._personal[digest]
            ids = list(self._by_thread.get(thread_id, ()))
            for review_id in ids:
                self._reviews[review_id] = _lean(
                    _personal.redacted_review(self._reviews[review_id])
                )
            kept = [r for r, (t, _) in self._evidence.items() if t == thread_id]
            for review_id in kept:
                self._evidence[review_id] = (thread_id, dict(_personal.ERASED_STATE))
            legacy = _personal.legacy_seqs(self._audit_by_thread.get(thread_id, ()))
            payload = _personal.erased_payload(
                values=len(gone), reviews=len(ids), evidence=len(kept)
            )
            self._append(
                thread_id=thread_id,
                review_id=None,
                checkpoint_id=None,
                event=ERASED_EVENT,
                actor=actor,
                payload=payload,
                at=now,
            )
            return ThreadErasure(thread_id, len(gone), len(ids), len(kept), legacy_rows=legacy)

    async def reason_code_counts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[ReasonCodeCount, ...]:
        """Audit rows with a payload `reason_code`, counted by code and event."""
        return count_reason_codes(self._audit, since=since, until=until)

    async def oversight_report(
        self,
        *,
        since: datetime,
        until: datetime,
        thresholds: OversightThresholds,
        period: Period,
    ) -> OversightReport:
        """The oversight report of the window (a scan: memory has no indexes to read)."""
        return report_of_records(
            list(self._reviews.values()),
            list(self._audit),
            since=since,
            until=until,
            period=period,
            thresholds=thresholds,
        )

    async def audit_head(self) -> tuple[int, str] | None:
        return (self._audit[-1].seq, self._audit[-1].hash) if self._audit else None

    async def seals(self) -> list[SealedHead]:
        return [self._seals[key] for key in sorted(self._seals)]

    async def _add_seal(self, head: SealedHead) -> None:
        self._seals.setdefault((head.seq, head.key_id), head)

    def _seal(
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
        """The next audit row, sealed; nothing changes until `_push` (the lock is held)."""
        thread_rows = self._audit_by_thread.get(thread_id)
        return seal(
            seq=self._last_seq + 1,
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event=event,
            actor=actor,
            payload=payload,
            at=at,
            prev_hash=thread_rows[-1].hash if thread_rows else GENESIS,
            global_prev_hash=self._audit[-1].hash if self._audit else GENESIS,
        )

    def _append(self, **row: Any) -> AuditRecord:
        """Seal and append one audit row (a write with nothing else to change first)."""
        return self._push(self._seal(**row))

    def _push(self, record: AuditRecord) -> AuditRecord:
        """Append a row `_seal` built under the same lock, and queue its hook call."""
        record = _lean(record)
        self._audit.append(record)
        self._last_seq = record.seq
        self._audit_by_thread.setdefault(record.thread_id, []).append(record)
        hook = HOOK_FOR_EVENT.get(record.event)
        if hook is not None and hook in self._hooks:
            delivery = HookDelivery(
                delivery_id=uuid.uuid4().hex,
                hook=hook,
                status="pending",
                created_at=record.at,
                record=record,
            )
            self._outbox[delivery.delivery_id] = delivery
        return record

    # -- second-line QA ---------------------------------------------------------

    async def open_qa_review(self, review: QaReview, *, payload: dict[str, Any]) -> bool:
        """Insert the QA review with its `qa_sampled` row, once per id (see `QaStore`)."""
        _aware(review.sampled_at)
        async with self._lock:
            if review.qa_review_id in self._qa:
                return False
            self._append(
                thread_id=review.thread_id,
                review_id=None,
                checkpoint_id=None,
                event=QA_SAMPLED_EVENT,
                actor=QA_SAMPLER,
                payload=payload,
                at=review.sampled_at,
            )
            self._qa[review.qa_review_id] = review
        await self._after_write()
        return True

    async def get_qa_review(self, qa_review_id: str) -> QaReview | None:
        return self._qa.get(qa_review_id)

    async def list_qa_pending(self, *, limit: int | None = None) -> list[QaReview]:
        check_limit(limit)
        waiting = sorted(
            (q for q in self._qa.values() if q.verdict is None),
            key=lambda q: (q.sampled_at, q.qa_review_id),
        )
        return waiting if limit is None else waiting[:limit]

    async def record_qa_verdict(
        self,
        qa_review_id: str,
        *,
        verdict: QaVerdict,
        reason_code: str | None,
        reviewer: str,
        now: datetime,
        payload: dict[str, Any],
    ) -> QaReview:
        """Record the verdict with its `qa_verdict` row, once (see `QaStore`)."""
        _aware(now)
        async with self._lock:
            review = self._qa.get(qa_review_id)
            if review is None:
                raise qa_not_found(qa_review_id)
            if review.verdict is not None:
                raise qa_recorded(review)
            self._append(
                thread_id=review.thread_id,
                review_id=None,
                checkpoint_id=None,
                event=QA_VERDICT_EVENT,
                actor=reviewer,
                payload=payload,
                at=now,
            )
            judged = review.model_copy(
                update={
                    "verdict": verdict,
                    "reason_code": reason_code,
                    "reviewer": reviewer,
                    "decided_at": now,
                }
            )
            self._qa[qa_review_id] = judged
        await self._after_write()
        return judged

    async def qa_disagreement(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[QaRuleCount, ...]:
        return count_qa(self._qa.values(), since=since, until=until)

    # -- retention and legal hold -----------------------------------------------

    async def place_hold(self, thread_id: str, *, reason: str, by: str, now: datetime) -> Hold:
        _aware(now)
        async with self._lock:
            existing = self._holds.get(thread_id)
            if existing is not None:
                return existing
            hold = Hold(thread_id=thread_id, reason=reason, placed_by=by, placed_at=now)
            self._append(
                thread_id=thread_id,
                review_id=None,
                checkpoint_id=None,
                event="hold_placed",
                actor=by,
                payload={"reason": reason},
                at=now,
            )
            self._holds[thread_id] = hold
            return hold

    async def release_hold(self, thread_id: str, *, by: str, now: datetime) -> Hold | None:
        _aware(now)
        async with self._lock:
            hold = self._holds.pop(thread_id, None)
            if hold is not None:
                self._append(
                    thread_id=thread_id,
                    review_id=None,
                    checkpoint_id=None,
                    event="hold_released",
                    actor=by,
                    payload={"reason": hold.reason, "placed_by": hold.placed_by},
                    at=now,
                )
            return hold

    async def get_hold(self, thread_id: str) -> Hold | None:
        return self._holds.get(thread_id)

    async def holds(self) -> list[Hold]:
        return sorted(self._holds.values(), key=lambda h: (h.placed_at, h.thread_id))

    # -- the stop switch --------------------------------------------------------

    async def stop_delivery(
        self, scope: StopScope, *, reason: str, by: str, now: datetime
    ) -> StopSwitch:
        _aware(now)
        async with self._lock:
            existing = self._stops.get(scope.key)
            if existing is not None:
                return existing
            stop = StopSwitch(scope=scope, by=by, reason=reason, since=now)
            self._append(
                thread_id=STOP_THREAD,
                review_id=None,
                checkpoint_id=None,
                event=DELIVERY_STOPPED,
                actor=by,
                payload={"scope": scope.key, "reason": reason},
                at=now,
            )
            self._stops[scope.key] = stop
            return stop

    async def resume_delivery(
        self, scope: StopScope, *, by: str, now: datetime
    ) -> StopSwitch | None:
        _aware(now)
        async with self._lock:
            stop = self._stops.pop(scope.key, None)
            if stop is not None:
                self._append(
                    thread_id=STOP_THREAD,
                    review_id=None,
                    checkpoint_id=None,
                    event=DELIVERY_RESUMED,
                    actor=by,
                    payload={"scope": scope.key, "reason": stop.reason, "stopped_by": stop.by},
                    at=now,
                )
            return stop

    async def delivery_stops(self) -> list[StopSwitch]:
        return sorted(self._stops.values(), key=lambda s: (s.since, s.scope.key))

    def _busy(self, thread_id: str) -> bool:
        return thread_id in self._turns or self._open_review_id(thread_id) is not None

    async def retention_candidates(
        self, record_class: RecordClass, *, before: datetime
    ) -> list[str]:
        _aware(before)
        async with self._lock:
            found: set[str] = set()
            if record_class == "reviews":
                found = {
                    r.thread_id
                    for r in self._reviews.values()
                    if not machine.is_open(r.status)
                    and r.decided_at is not None
                    and r.decided_at < before
                }
            elif record_class == "audit":
                for thread_id, rows in self._audit_by_thread.items():
                    kept = [r.at for r in rows if r.event != PRUNED_EVENT]
                    if kept and max(kept) < before and not self._busy(thread_id):
                        found.add(thread_id)
            else:
                for thread_id, ids in self._by_thread.items():
                    latest = self._reviews[ids[-1]]
                    if (
                        latest.decided_at is not None
                        and latest.decided_at < before
                        and latest.review_id not in self._evidence
                        and not self._busy(thread_id)
                    ):
                        found.add(thread_id)
            return sorted(found)

    async def prune_thread(
        self,
        thread_id: str,
        record_class: Literal["reviews", "audit"],
        *,
        before: datetime,
        now: datetime,
        actor: str,
    ) -> int:
        _aware(before)
        _aware(now)
        async with self._lock:
            hold = self._holds.get(thread_id)
            if hold is not None:
                raise hold_error(hold, action="prune")
            if record_class == "audit":
                return self._prune_audit(thread_id, before=before, now=now, actor=actor)
            return self._prune_reviews(thread_id, before=before, now=now, actor=actor)

    def _prune_audit(self, thread_id: str, *, before: datetime, now: datetime, actor: str) -> int:
        rows = [r for r in self._audit_by_thread.get(thread_id, ()) if r.event != PRUNED_EVENT]
        if not rows or max(r.at for r in rows) >= before or self._busy(thread_id):
            return 0
        # The tombstone first: it links to the thread's last row before that row goes.
        removed = [[r.seq, r.hash] for r in rows]
        self._tombstone(
            thread_id,
            tombstone_payload("audit", removed=removed, count=len(rows)),
            now=now,
            actor=actor,
        )
        gone = {r.seq for r in rows}
        self._audit = [r for r in self._audit if r.seq not in gone]
        self._audit_by_thread[thread_id] = [
            r for r in self._audit_by_thread[thread_id] if r.seq not in gone
        ]
        for delivery_id, delivery in list(self._outbox.items()):
            if delivery.record.seq in gone:
                del self._outbox[delivery_id]
        return len(rows)

    def _tombstone(
        self,
        thread_id: str,
        payload: dict[str, Any],
        *,
        now: datetime,
        actor: str,
        review_id: str | None = None,
        checkpoint: str | None = None,
    ) -> None:
        """Append retention's `pruned` row documenting what goes (see `ledger.py`)."""
        self._append(
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint,
            event=PRUNED_EVENT,
            actor=actor,
            payload=payload,
            at=now,
        )

    def _prune_reviews(self, thread_id: str, *, before: datetime, now: datetime, actor: str) -> int:
        ids = [
            i
            for i in self._by_thread.get(thread_id, ())
            if not machine.is_open(self._reviews[i].status)
            and (decided := self._reviews[i].decided_at) is not None
            and decided < before
        ]
        if not ids:
            return 0
        payload = tombstone_payload("reviews", review_ids=ids, count=len(ids))
        self._tombstone(thread_id, payload, now=now, actor=actor)
        for review_id in ids:
            review = self._reviews.pop(review_id)
            self._by_checkpoint.pop((thread_id, review.checkpoint_id), None)
            self._evidence.pop(review_id, None)
        self._by_thread[thread_id] = [i for i in self._by_thread[thread_id] if i not in ids]
        if not self._by_thread[thread_id]:
            del self._by_thread[thread_id]
        return len(ids)

    async def keep_evidence(
        self,
        thread_id: str,
        *,
        review_id: str,
        checkpoint_id: str,
        state: dict[str, Any],
        now: datetime,
        actor: str,
    ) -> None:
        _aware(now)
        text = dumps_state(state)
        async with self._lock:
            hold = self._holds.get(thread_id)
            if hold is not None:
                raise hold_error(hold, action="prune")
            if review_id in self._evidence:
                return  # kept already (another retention run got here first)
            payload = tombstone_payload("checkpoints", state_sha256=sha256_text(text))
            self._tombstone(
                thread_id,
                payload,
                now=now,
                actor=actor,
                review_id=review_id,
                checkpoint=checkpoint_id,
            )
            self._evidence[review_id] = (thread_id, json.loads(text))

    async def evidence(self, review_id: str) -> dict[str, Any] | None:
        kept = self._evidence.get(review_id)
        return None if kept is None else kept[1]

    # -- SLA -------------------------------------------------------------------

    async def list_overdue(self, *, now: datetime, limit: int | None = None) -> list[ReviewRecord]:
        _aware(now)
        check_limit(limit)
        async with self._lock:
            rows = sorted(
                (
                    r
                    for r in (self._reviews[i] for i in self._pending)
                    if r.deadline is not None and r.deadline <= now
                ),
                key=lambda r: (r.deadline, r.review_id),
            )
        return rows if limit is None else rows[:limit]

    async def list_undated(self, *, limit: int | None = None) -> list[ReviewRecord]:
        check_limit(limit)
        async with self._lock:
            rows = [
                review
                for review in (self._reviews[i] for _, i in self._pending_order)
                if review.deadline is None
            ]
        return rows if limit is None else rows[:limit]

    async def set_deadline(self, review_id: str, *, deadline: datetime) -> bool:
        _aware(deadline)
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is None or review.status != "pending" or review.deadline is not None:
                return False
            self._reviews[review_id] = _lean(review.model_copy(update={"deadline": deadline}))
            return True

    @seals_after
    async def escalate(
        self,
        review_id: str,
        *,
        now: datetime,
        new_deadline: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord | None:
        _aware(now)
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is None or not machine.can_escalate(review.status, review.deadline, now):
                return None
            escalated = review.model_copy(
                update={"priority": review.priority + 1, "deadline": new_deadline}
            )
            record = self._seal(
                thread_id=review.thread_id,
                review_id=review_id,
                checkpoint_id=review.checkpoint_id,
                event="escalated",
                actor=actor,
                payload=payload,
                at=now,
            )
            self._reviews[review_id] = _lean(escalated)
            self._push(record)
            return escalated

    # -- hook outbox -----------------------------------------------------------

    async def pending_hooks(
        self, *, thread_id: str | None = None, created_before: datetime | None = None
    ) -> list[HookDelivery]:
        async with self._lock:
            return sorted(
                (
                    d
                    for d in self._outbox.values()
                    if d.status != "delivered"
                    and (thread_id is None or d.record.thread_id == thread_id)
                    and (
                        created_before is None
                        or d.status == "failed"
                        or d.created_at < created_before
                    )
                ),
                key=lambda d: d.record.seq,
            )

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
        _aware(now)
        _aware(lease_until)
        if created_before is not None:
            _aware(created_before)
        check_limit(limit)
        async with self._lock:
            claimable = sorted(
                (
                    d
                    for d in self._outbox.values()
                    if d.status != "delivered"
                    and (d.lease_until is None or d.lease_until <= now)
                    and (thread_id is None or d.record.thread_id == thread_id)
                    and (hooks is None or d.hook in hooks)
                    and (include_failed or d.status == "pending")
                    and (
                        created_before is None
                        or d.status == "failed"
                        or d.lease_until is not None
                        or d.created_at < created_before
                    )
                ),
                key=lambda d: d.record.seq,
            )
            claimed = []
            for delivery in claimable if limit is None else claimable[:limit]:
                leased = delivery.model_copy(
                    update={"lease_owner": owner, "lease_until": lease_until}
                )
                self._outbox[delivery.delivery_id] = leased
                claimed.append(leased)
            return claimed

    async def renew_hook(self, delivery_id: str, *, owner: str, lease_until: datetime) -> bool:
        _aware(lease_until)
        async with self._lock:
            delivery = self._outbox.get(delivery_id)
            if delivery is None or delivery.status == "delivered" or delivery.lease_owner != owner:
                return False
            self._outbox[delivery_id] = delivery.model_copy(update={"lease_until": lease_until})
            return True

    async def finish_hook(
        self,
        delivery_id: str,
        *,
        ok: bool,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        _aware(now)
        async with self._lock:
            delivery = self._outbox.get(delivery_id)
            if delivery is None or delivery.status == "delivered" or delivery.lease_owner != owner:
                return False
            update: dict[str, Any] = {
                "status": "delivered" if ok else "failed",
                "attempts": delivery.attempts + 1,
                "last_error": error,
            }
            if not ok:  # released: recover() may retry it at once
                update.update(lease_owner=None, lease_until=None)
            self._outbox[delivery_id] = delivery.model_copy(update=update)
            return True

    # -- assignment and delegation -----------------------------------------------

    async def assign(
        self,
        review_id: str,
        *,
        to: str,
        reason: str,
        by: str,
        now: datetime,
        initial: bool,
    ) -> Assignment | None:
        _aware(now)
        async with self._lock:
            review = self._reviews.get(review_id)
            if review is None or review.status != "pending":
                return None
            previous = self._assignments.get(review_id)
            if initial and previous is not None:
                return previous
            self._append(
                thread_id=review.thread_id,
                review_id=review_id,
                checkpoint_id=review.checkpoint_id,
                event="assigned" if initial else "reassigned",
                actor=by,
                payload=assigned_payload(
                    to, reason, None if previous is None else previous.assigned_to
                ),
                at=now,
            )
            done = Assignment(
                review_id=review_id, thread_id=review.thread_id, assigned_to=to, reason=reason
            )
            key = (review.requested_at, review_id)
            if previous is not None:
                _remove_from(self._pending_by_assignee, previous.assigned_to, key)
            bisect.insort(self._pending_by_assignee.setdefault(to, []), key)
            self._assignments[review_id] = done
            return done

    async def assignments(self, review_ids: Sequence[str]) -> list[Assignment]:
        async with self._lock:
            return [self._assignments[i] for i in review_ids if i in self._assignments]

    async def list_assigned(
        self,
        assignees: Sequence[str],
        *,
        limit: int | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        check_limit(limit)
        async with self._lock:
            return self._merged(
                self._pending_by_assignee, assignees, limit, requested_before, after
            )

    def _merged(
        self,
        index: Mapping[str, list[tuple[datetime, str]]],
        names: Sequence[str],
        limit: int | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> list[ReviewRecord]:
        """The reviews under `names` in a sorted per-name index, merged oldest first."""
        windows = [
            _window(index.get(name, []), after, requested_before, limit)
            for name in sorted(set(names))
        ]
        keys = itertools.islice(heapq.merge(*windows), limit)
        return [self._reviews[review_id] for _, review_id in keys]

    async def delegate(self, delegation: Delegation) -> Delegation:
        _aware(delegation.until)
        _aware(delegation.created_at)
        async with self._lock:
            self._append(
                thread_id=DELEGATION_THREAD,
                review_id=None,
                checkpoint_id=None,
                event="delegated",
                actor=delegation.by,
                payload=delegated_payload(delegation),
                at=delegation.created_at,
            )
            self._delegations[delegation.from_reviewer] = delegation
            return delegation

    async def revoke_delegation(
        self, from_reviewer: str, *, by: str, now: datetime
    ) -> Delegation | None:
        _aware(now)
        async with self._lock:
            gone = self._delegations.pop(from_reviewer, None)
            if gone is not None:
                self._append(
                    thread_id=DELEGATION_THREAD,
                    review_id=None,
                    checkpoint_id=None,
                    event="delegation_revoked",
                    actor=by,
                    payload=delegated_payload(gone),
                    at=now,
                )
            return gone

    async def delegations(self) -> list[Delegation]:
        async with self._lock:
            return [self._delegations[k] for k in sorted(self._delegations)]


_FIELD_SETS: dict[frozenset[str], set[str]] = {}


def _lean(model: _M) -> _M:
    """`model`, sharing its set of given field names with every kept row given the same names.

    Pydantic gives each instance its own `model_fields_set` (a 728-byte set for a
    row of 5 names or more, half the weight of a paused review's row). A frozen model
    never changes that set in place (`model_copy` copies it before adding to it),
    so the rows this store keeps can share one per combination of names.
    """
    names = model.__pydantic_fields_set__
    shared = _FIELD_SETS.get(frozenset(names))
    if shared is None:
        shared = _FIELD_SETS.setdefault(frozenset(names), set(names))
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


def _requested_at(key: tuple[datetime, str]) -> datetime:
    return key[0]


def _window(
    order: list[tuple[datetime, str]],
    after: tuple[datetime, str] | None,
    requested_before: datetime | None,
    limit: int | None,
) -> list[tuple[datetime, str]]:
    """The keys of a sorted pending index after the cursor and before the cutoff."""
    start = 0 if after is None else bisect.bisect_right(order, after)
    stop = (
        len(order)
        if requested_before is None
        else bisect.bisect_left(order, requested_before, key=_requested_at)
    )
    end = stop if limit is None else min(stop, start + limit)
    return order[start:end]


def _remove(order: list[tuple[datetime, str]], key: tuple[datetime, str]) -> None:
    i = bisect.bisect_left(order, key)
    if i < len(order) and order[i] == key:
        del order[i]


def _remove_from(
    index: dict[str, list[tuple[datetime, str]]], name: str, key: tuple[datetime, str]
) -> None:
    order = index.get(name)
    if order is not None:
        _remove(order, key)
        if not order:
            del index[name]


def _aware(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("datetimes given to a review store must be timezone-aware")
