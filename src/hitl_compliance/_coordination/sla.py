"""Deadlines: a review's SLA, and `expire_overdue` resolving reviews past it exactly once.

A review's deadline is set when it opens, from the shortest SLA that applies
to it (the coordinator's `sla`, and `sla_by` per rule name or severity of
any finding). A review opened without one (a raw run's gate records its pause
with none; a coordinator without an SLA opens its reviews with none) is
*adopted* by the next sweep or `recover()` of a coordinator with an SLA: it
gets `requested_at` plus its SLA, read from the store's partial index of
undated pending reviews, so a sweep does not scan the pending queue. A sweep
claims (or escalates) each overdue review atomically, so several sweepers
resolve it once; a forced outcome is recorded as a
`system` decision by [`SLA_ACTOR`][hitl_compliance.coordinator.SLA_ACTOR].
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from hitl_compliance import _replies, _validate
from hitl_compliance._commitments import deadline_text
from hitl_compliance._coordination import decisions, hooks, integrity
from hitl_compliance._coordination.context import Context, paused_result
from hitl_compliance.errors import AlreadyDecidedError, HitlError, ThreadBusyError
from hitl_compliance.models import ProcessResult, ReviewRecord, sha256_text
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision
from hitl_compliance.stops import STOP_RULE

__all__ = ["SLA_ACTOR", "adopt_undated", "expire", "expire_overdue", "run_sla_sweeper", "sla_for"]

logger = logging.getLogger("hitl_compliance")

SLA_ACTOR = _replies.SLA_ACTOR
"""The reviewer and audit actor of every SLA outcome."""


def sla_for(ctx: Context, findings: list[RuleResult]) -> timedelta | None:
    """The shortest SLA that applies to a review with these findings (None: no deadline)."""
    candidates = [ctx.sla] if ctx.sla is not None else []
    for finding in findings:
        for key in (finding.rule, finding.severity):
            if key in ctx.sla_by:
                candidates.append(ctx.sla_by[key])
    return min(candidates) if candidates else None


async def adopt_undated(ctx: Context) -> int:
    """Give each pending review without a deadline `requested_at` plus its SLA; how many.

    Each review is dated once, by whichever coordinator gets there first (the
    store's `set_deadline` is conditional). A review none of whose SLAs
    applies (only `sla_by`, none matching its findings) stays undated and is
    read again by the next sweep: the cost of a sweep is O(undated reviews).
    """
    if ctx.sla is None and not ctx.sla_by:
        return 0
    dated = 0
    for review in await ctx.reviews.list_undated():
        due = sla_for(ctx, review.violations)
        if due is None:
            continue
        deadline = review.requested_at + due
        # Audited first, so the deadline the row gets is one the ledger committed to
        # (a crash between the two leaves a proposal, and the next sweep dates it).
        await ctx.reviews.append_audit(
            thread_id=review.thread_id,
            review_id=review.review_id,
            checkpoint_id=review.checkpoint_id,
            event="dated",
            actor=SLA_ACTOR,
            payload={"deadline": deadline_text(deadline), "reason": "sla_adoption"},
            at=ctx.now(),
        )
        if await ctx.reviews.set_deadline(review.review_id, deadline=deadline):
            dated += 1
            logger.info(
                "review %s of thread %s had no deadline; the SLA set %s",
                review.review_id,
                review.thread_id,
                (review.requested_at + due).isoformat(),
            )
    return dated


async def expire_overdue(ctx: Context, now: datetime | None = None) -> list[ProcessResult]:
    """Resolve every review due by `now` (contract: `HitlCoordinator.expire_overdue`)."""
    as_of = None if now is None else _validate.aware_datetime("now", now)
    now = ctx.now() if as_of is None else as_of
    await adopt_undated(ctx)
    results: list[ProcessResult] = []
    for review in await ctx.reviews.list_overdue(now=now):
        try:
            results.append(await expire(ctx, review, now, as_of=as_of))
            if ctx.telemetry is not None:
                ctx.telemetry.breached(ctx.on_timeout)
        except AlreadyDecidedError:
            continue  # another sweeper, or a reviewer, got there first
        except ThreadBusyError:
            continue  # another review of its thread is being decided: the next sweep
        except HitlError as exc:
            # One review that cannot be resolved (its thread changed outside the
            # coordinator, a deployment refused it) never holds up the others.
            logger.warning(
                "SLA sweep: review %s of thread %s not resolved: %s",
                review.review_id,
                review.thread_id,
                exc,
            )
    return results


async def expire(
    ctx: Context, review: ReviewRecord, now: datetime, *, as_of: datetime | None
) -> ProcessResult:
    """Resolve one overdue review by `on_timeout`: escalate it, or claim and resume it.

    Raises:
        AlreadyDecidedError: another sweeper or a reviewer resolved it first.
        TamperedError: the review row differs from its audit rows (nothing done).
    """
    review = await _current(ctx, review, now)
    if ctx.on_timeout == "escalate":
        sla = sla_for(ctx, review.violations)
        assert sla is not None  # checked by HitlCoordinator.__init__
        escalated = await ctx.reviews.escalate(
            review.review_id,
            now=now,
            new_deadline=now + sla,
            actor=SLA_ACTOR,
            payload={
                **decisions.FORCED,
                "action": "escalate",
                "priority": review.priority + 1,
                "deadline": deadline_text(now + sla),
            },
        )
        if escalated is None:
            raise AlreadyDecidedError("escalated already", thread_id=review.thread_id)
        await hooks.dispatch(ctx, review.thread_id)
        return paused_result(escalated, escalated.approvals_required)
    # A reply the stop switch held goes out only with a human's approval: the SLA rejects it.
    held = any(v.rule == STOP_RULE for v in review.violations)
    approve = ctx.on_timeout == "approve_draft" and not held
    made = Decision(
        approved=approve,
        reviewer=SLA_ACTOR,
        kind="system",
        reason=None if approve else "sla_timeout",
        metadata=dict(decisions.FORCED),
        decided_at=now,
        text_sha256=sha256_text(review.draft_response) if approve else None,
        reason_code=ctx.reason_policy.expiry_code,
    )
    ctx.check_reason(made, review)
    claim_id = uuid.uuid4().hex
    claimed = await ctx.reviews.claim(
        review.thread_id,
        claim_id=claim_id,
        reviewer=SLA_ACTOR,
        decision=made.to_state(),
        now=now,
        review_id=review.review_id,
    )
    # A sweep "as of" an explicit `now` stamps its completions with it too, so
    # no review is recorded as completed before it was claimed.
    return await decisions.resume_claimed(ctx, claimed, claim_id, at=as_of)


async def _current(ctx: Context, listed: ReviewRecord, now: datetime) -> ReviewRecord:
    """The review's row as it is now, still overdue and checked against its ledger rows.

    The sweep's list may be stale (another sweeper escalated the review since), and
    a row checked stale would look tampered with; so it is read again first.
    """
    opened = await ctx.reviews.open_reviews(listed.thread_id)
    review = next((r for r in opened if r.review_id == listed.review_id), None)
    if review is None or review.status != "pending":
        raise AlreadyDecidedError("decided already", thread_id=listed.thread_id)
    await integrity.check(ctx.reviews, review)
    if review.deadline is None or review.deadline > now:
        raise AlreadyDecidedError("no longer overdue", thread_id=listed.thread_id)
    return review


async def run_sla_sweeper(ctx: Context, interval: timedelta | float) -> None:
    """Sweep every `interval` until cancelled (contract: `HitlCoordinator.run_sla_sweeper`)."""
    seconds = _validate.interval_seconds(interval)
    while True:
        try:
            work = expire_overdue(ctx)
            tel = ctx.telemetry
            resolved = await (work if tel is None else tel.batch("hitl.sweep", work))
            if resolved:
                logger.info("SLA sweep resolved %d review(s)", len(resolved))
        except Exception:
            logger.exception("SLA sweep failed; retrying in %s s", seconds)
        await asyncio.sleep(seconds)
