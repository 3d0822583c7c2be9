"""A decision: validate it, claim the review, resume the graph to its outcome, record it.

`approve` and `reject` check everything that can be checked before anything
changes (the decision's fields, the review's state and `expected`, four-eyes,
the policy, an edit's findings), then claim the review row atomically so one
decision wins per pause. [`resume_claimed`][hitl_compliance._coordination.decisions.resume_claimed]
runs the claimed decision to the decided outcome node and records it; a
failure before the graph changed releases the claim, and any later failure
leaves it for `recover()`, which finishes it with
[`drive`][hitl_compliance._coordination.decisions.drive] from wherever the
checkpoints stand (every resume runs with `durability="sync"`).
"""

from __future__ import annotations

import difflib
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from hitl_compliance import _personal, _validate
from hitl_compliance._coordination import assigning, hooks, reviews, turns
from hitl_compliance._coordination.context import (
    Context,
    Position,
    check_thread_id,
    paused_result,
    position,
    result,
    run,
)
from hitl_compliance._coordination.driver import factory_delivered
from hitl_compliance._decision_kinds import (
    APPROVE,
    EXPIRE,
    REJECT,
    DecisionKind,
    FinalStatus,
    SystemOutcome,
)
from hitl_compliance._gate_items import describe_call
from hitl_compliance.errors import (
    HitlError,
    InvalidDecisionError,
    NotAuthorizedError,
    PolicyViolationError,
    StaleReviewError,
)
from hitl_compliance.models import ProcessResult, ReviewRecord, Vote, sha256_text
from hitl_compliance.policy import Reviewer, as_reviewer
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision

__all__ = [
    "FORCED",
    "approve",
    "check_edit",
    "check_sizes",
    "claim_approval",
    "claim_rejection",
    "completed_status",
    "decision",
    "delivered",
    "deny",
    "drive",
    "final_decision",
    "four_eyes",
    "outcome_payload",
    "record",
    "reject",
    "resume",
    "resume_claimed",
]

logger = logging.getLogger("hitl_compliance")

FORCED = {"forced": True, "reason": "sla_timeout"}
"""Marks a decision the SLA made (in its state metadata and its audit payload)."""


async def approve(
    ctx: Context,
    thread_id: str,
    *,
    reviewer: str | Reviewer,
    response: str | None,
    metadata: Mapping[str, Any] | None,
    expected: str | None,
    tool_args: Mapping[str, Any] | None = None,
    review_id: str | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
) -> ProcessResult:
    """Vote to approve; resume the graph at quorum (contract: `HitlCoordinator.approve`)."""
    check_thread_id(thread_id)
    check_sizes(ctx, thread_id, response=response, reason=reason, expected=expected)
    check_sizes(ctx, thread_id, metadata=metadata, tool_args=tool_args)
    who = as_reviewer(reviewer)
    _validate.decision_text("response", response)
    _validate.decision_text("expected", expected)
    _validate.decision_text("reason", reason)
    _validate.decision_text("reason_code", reason_code)
    made = decision(
        ctx,
        approved=True,
        reviewer=who.id,
        roles=sorted(who.roles),
        response=response,
        reason=reason or None,
        metadata=metadata,
        tool_args=None if tool_args is None else _tool_args(tool_args),
        reason_code=reason_code or None,
    )
    review = await reviews.open_review(ctx, thread_id, expected, review_id)
    ctx.check_reason(made, review)  # before four-eyes, which audits a refusal
    await four_eyes(ctx, review, who)
    await assigned_decider(ctx, review, who)
    edit_findings = await check_edit(ctx, review, made)
    claim_id = uuid.uuid4().hex
    updated = await claim_approval(ctx, review, who, made, edit_findings, claim_id)
    if updated.status == "pending":
        return paused_result(updated, updated.approvals_required)
    return await resume_claimed(ctx, updated, claim_id)


async def claim_approval(
    ctx: Context,
    review: ReviewRecord,
    who: Reviewer,
    made: Decision,
    edit_findings: list[RuleResult],
    claim_id: str,
    now: datetime | None = None,
) -> ReviewRecord:
    """Four-eyes, the policy on the findings and the edit's, then the vote (and claim at quorum).

    The checks every approval passes, whoever carries it: `approve()`, or a
    resume that reaches a gate without the coordinator. The review comes back
    still `pending` while the quorum is short (`approvals_required` then holds
    the quorum in force), else claimed under `claim_id`, at `now` (default: when
    the decision was made).

    Raises:
        ReasonCodeError: the reason code is unknown or missing (nothing written).
        NotAuthorizedError: the requester, or a reviewer without the roles (audited).
    """
    ctx.check_reason(made, review)
    key = await four_eyes(ctx, review, who)
    findings = list(review.violations)
    findings += [f for f in edit_findings if f not in findings]
    text = review.draft_response
    if made.response is not None:
        text = made.response
    elif made.tool_args is not None:
        # The call that runs, as the decision's audit row records it as delivered.
        name = review.draft_response.partition("(")[0]
        text = describe_call({"name": name, "args": made.tool_args})
    auth = ctx.policy.authorize(who, findings)
    if not auth.allowed:
        await deny(ctx, review, who, auth.reason, auth.missing_roles)
    made = made.model_copy(
        update={
            "text_sha256": sha256_text(text),
            "edit_findings": [f.to_dict() for f in edit_findings],
        }
    )
    quorum = max(review.approvals_required, reviews.quorum(ctx, findings))
    vote = Vote(
        reviewer=who.id,
        reviewer_key=key,
        roles=sorted(who.roles),
        at=made.decided_at,
        text_sha256=sha256_text(text),
        response=made.response,
        metadata=dict(made.metadata),
    )
    updated = await ctx.reviews.vote(
        review.thread_id,
        review_id=review.review_id,
        vote=vote,
        quorum=quorum,
        claim_id=claim_id,
        decision=made.to_state(),
        now=made.decided_at if now is None else now,
    )
    if updated.status == "pending":
        logger.info(
            "thread %s: %s voted (%d of %d)",
            review.thread_id,
            who.id,
            len(updated.votes),
            quorum,
        )
        return updated.model_copy(update={"approvals_required": quorum})
    return updated


async def reject(
    ctx: Context,
    thread_id: str,
    *,
    reviewer: str | Reviewer,
    reason: str,
    metadata: Mapping[str, Any] | None,
    expected: str | None,
    review_id: str | None = None,
    reason_code: str | None = None,
) -> ProcessResult:
    """Reject, then resume the graph to `rejected` (contract: `HitlCoordinator.reject`)."""
    check_thread_id(thread_id)
    check_sizes(ctx, thread_id, reason=reason, expected=expected, metadata=metadata)
    who = as_reviewer(reviewer)
    _validate.decision_text("reason", reason)
    _validate.decision_text("expected", expected)
    _validate.decision_text("reason_code", reason_code)
    made = decision(
        ctx,
        approved=False,
        reviewer=who.id,
        roles=sorted(who.roles),
        reason=reason or None,
        metadata=metadata,
        reason_code=reason_code or None,
    )
    review = await reviews.open_review(ctx, thread_id, expected, review_id)
    await assigned_decider(ctx, review, who)
    claim_id = uuid.uuid4().hex
    claimed = await claim_rejection(ctx, review, who, made, claim_id)
    return await resume_claimed(ctx, claimed, claim_id)


async def assigned_decider(ctx: Context, review: ReviewRecord, who: Reviewer) -> None:
    """With `Routing(enforce=True)`, refuse (audited) a decider the review is not assigned to."""
    why = await assigning.refusal(ctx, who, review)
    if why is not None:
        await deny(ctx, review, who, why)


async def four_eyes(ctx: Context, review: ReviewRecord, who: Reviewer) -> str:
    """`who`'s canonical id; the review's requester is refused (audited, NotAuthorizedError)."""
    key = reviews.canonical(ctx, who.id)
    if reviews.is_requester(ctx, key, review):
        await deny(ctx, review, who, "the requester of a review may not approve it")
    return key


async def claim_rejection(
    ctx: Context,
    review: ReviewRecord,
    who: Reviewer,
    made: Decision,
    claim_id: str,
    now: datetime | None = None,
) -> ReviewRecord:
    """The policy on the review's findings, then the claim: the checks every rejection passes.

    Raises:
        ReasonCodeError: the reason code is unknown or missing (nothing written).
        NotAuthorizedError: a reviewer without the roles (audited).
    """
    ctx.check_reason(made, review)
    auth = ctx.policy.authorize(who, review.violations)
    if not auth.allowed:
        await deny(ctx, review, who, auth.reason, auth.missing_roles)
    return await ctx.reviews.claim(
        review.thread_id,
        claim_id=claim_id,
        reviewer=who.id,
        decision=made.to_state(),
        now=made.decided_at if now is None else now,
        review_id=review.review_id,
    )


def _tool_args(tool_args: Mapping[str, Any]) -> dict[str, Any]:
    """Edited tool arguments as the plain JSON a checkpoint keeps (InvalidDecisionError)."""
    if not isinstance(tool_args, Mapping):
        raise InvalidDecisionError(
            f"tool_args must be a mapping of argument names to JSON values, "
            f"got {type(tool_args).__name__}."
        )
    try:
        _validate.check_json(tool_args, ledger=True)
    except ValueError as exc:
        raise InvalidDecisionError(f"tool_args {exc}; pass JSON every store keeps.") from None
    return dict(tool_args)


def check_sizes(ctx: Context, thread_id: str, **given: object) -> None:
    """Refuse a decision's texts and mappings past `ctx.limits` (InputTooLargeError).

    Measured first, before the content checks: measuring is cheap, scanning
    and hashing a huge value is not.
    """
    for name, value in given.items():
        if isinstance(value, str):
            ctx.limits.check_text(name, value, thread_id=thread_id)
        else:
            ctx.limits.check_json(name, value, thread_id=thread_id)


def decision(ctx: Context, **fields: Any) -> Decision:
    """A validated decision stamped with the clock (InvalidDecisionError, nothing changed)."""
    # Checked here, not by LangGraph's serializer after the review is claimed.
    fields["metadata"] = _validate.json_metadata(
        fields.get("metadata"), error=InvalidDecisionError, ledger=True
    )
    try:
        return Decision(decided_at=ctx.now(), **fields)
    except ValidationError as exc:
        raise InvalidDecisionError(f"Invalid decision: {exc}") from exc


async def deny(
    ctx: Context,
    review: ReviewRecord,
    reviewer: Reviewer,
    reason: str,
    missing_roles: frozenset[str] = frozenset(),
) -> None:
    """Record the refusal in the audit log, then raise NotAuthorizedError; nothing else changes."""
    await ctx.reviews.append_audit(
        thread_id=review.thread_id,
        review_id=review.review_id,
        checkpoint_id=review.checkpoint_id,
        event="denied",
        actor=reviewer.id,
        payload={
            "reason": reason,
            "roles": sorted(reviewer.roles),
            "missing_roles": sorted(missing_roles),
        },
        at=ctx.now(),
    )
    raise NotAuthorizedError(
        f"{reviewer.id} may not decide the review of thread {review.thread_id!r}: {reason}.",
        thread_id=review.thread_id,
        reviewer=reviewer.id,
        missing_roles=missing_roles,
    )


async def check_edit(ctx: Context, review: ReviewRecord, made: Decision) -> list[RuleResult]:
    """Run the rules on the decision's edit; a `block` finding refuses the approval."""
    findings = await ctx.driver.edit_findings(review, made)
    blocked = [f for f in findings if f.verdict == "block"]
    if blocked:
        raise PolicyViolationError(
            f"The edited reply breaks {[f.rule for f in blocked]}: "
            + "; ".join(f"{f.rule}: {f.reason} {list(f.evidence)}" for f in blocked),
            thread_id=review.thread_id,
            findings=tuple(findings),
        )
    return findings


def completed_status(made: Decision) -> FinalStatus:
    """The final status a claimed decision completes its review with (from its kind)."""
    if made.kind == "system":
        outcome: DecisionKind | SystemOutcome = EXPIRE
    else:
        outcome = APPROVE if made.approved else REJECT
    assert outcome.status is not None, outcome
    return outcome.status


def final_decision(review: ReviewRecord) -> Decision:
    """The claimed decision, with every approver whose vote counted toward it."""
    if review.decision is None:
        raise HitlError(f"Review {review.review_id!r} has no decision.")
    made = Decision.model_validate(review.decision)
    if not made.approved or made.kind == "system":
        return made  # an SLA outcome is nobody's approval, whatever votes it had
    approvers = [v.reviewer for v in review.votes if v.text_sha256 == made.text_sha256]
    return made.model_copy(update={"approvers": approvers or [made.reviewer]})


async def resume_claimed(
    ctx: Context, review: ReviewRecord, claim_id: str, *, at: datetime | None = None
) -> ProcessResult:
    """Run a claimed review's decision to its outcome and record it, stamped `at`."""
    made = final_decision(review)
    try:
        # Looked up by name at call time: a crash test replaces `resume` to die here.
        work = resume(ctx, review, made)
        tel = ctx.telemetry
        pos = await (work if tel is None else tel.resume(review, made, work))
    except Exception:
        if await _untouched(ctx, review):
            await ctx.reviews.release(review.review_id, claim_id=claim_id)
            raise
        ended = await _ended_around(ctx, review)
        if ended is None:
            raise
        if made.approved:
            await ctx.reviews.release(review.review_id, claim_id=claim_id)
            raise StaleReviewError(
                f"Thread {review.thread_id!r} was ended around review {review.review_id!r} "
                "(update_state(..., as_node='__end__'), as Agent Inbox's 'Mark as resolved' "
                "does): nothing can be delivered from it. Reject the review to close it, "
                "or start a new turn.",
                thread_id=review.thread_id,
                expected=review.checkpoint_id,
                actual=ended.checkpoint_id,
            ) from None
        # A rejection delivers nothing: record it, and the review is closed.
        return await record(ctx, review, claim_id, made, ended, at=at)
    except BaseException:
        if await _untouched(ctx, review):
            await ctx.reviews.release(review.review_id, claim_id=claim_id)
        raise
    return await record(ctx, review, claim_id, made, pos, at=at)


async def _ended_around(ctx: Context, review: ReviewRecord) -> Position | None:
    """The thread's position when someone ended it with `update_state(as_node=END)`, else None.

    That leaves a final checkpoint written by an update (no next node, no task)
    after the pause; a crash mid-resume leaves the paused checkpoint itself, or
    a loop checkpoint with work left, so it is never mistaken for this.
    """
    try:
        pos = await ctx.driver.position(review.thread_id)
    except Exception:
        return None
    snapshot = pos.snapshot
    source = None if snapshot is None else (snapshot.metadata or {}).get("source")
    if pos.next or pos.tasks or source != "update":
        return None
    return None if review.checkpoint_id.startswith(pos.checkpoint_id) else pos


async def resume(ctx: Context, review: ReviewRecord, made: Decision) -> Position:
    """Resume the paused graph with decision `made` and run it to the decided outcome."""
    pos = await ctx.driver.resume(review, made)
    if pos is not None and await ctx.driver.delivered(pos, review, made):
        return pos
    # A wrapper that drops the checkpoint stream, or an outcome not reached: look.
    return await drive(ctx, review, made)


async def drive(ctx: Context, review: ReviewRecord, made: Decision) -> Position:
    """Run a claimed decision to its outcome from wherever the checkpoints stand.

    A process can die at any checkpoint write of a resume. LangGraph may
    then have saved the decision's writes on the paused checkpoint with no
    checkpoint after them (its `next` is then empty although the decided
    node never ran), a checkpoint whose successor (`deliver` / `rejected`)
    never ran, or that successor's writes without the final checkpoint
    (`aget_state` then shows them applied, but the next turn would start
    from the checkpoint before them). Each is finished with
    `ainvoke(None)`, which applies the saved writes without re-running a
    node that wrote them; a graph still cleanly paused is resumed.
    Finished means a final checkpoint later than the pause (nothing next,
    no task left), or, in a graph with gates, a later gate's pause, holding
    this decision's outcome.
    """
    for _ in range(4):
        pos = await ctx.driver.position(review.thread_id)
        at_pause = ctx.driver.at_review(pos, review) or (
            pos.checkpoint_id == review.checkpoint_id and not pos.next
        )
        settled = (not pos.next and not pos.tasks) or pos.paused
        if settled and not at_pause:
            if await ctx.driver.delivered(pos, review, made):
                return pos
            if pos.paused:
                raise HitlError(
                    f"Thread {review.thread_id!r} is paused at another checkpoint than the "
                    f"reviewed one; it was changed outside the coordinator. Inspect it "
                    "before deciding.",
                    thread_id=review.thread_id,
                )
            raise HitlError(
                f"Thread {review.thread_id!r} finished without the decision claimed "
                f"for review {review.review_id!r}; it was changed outside the "
                "coordinator. Inspect its checkpoints before deciding again.",
                thread_id=review.thread_id,
            )
        ran: Position | None
        if ctx.driver.at_review(pos, review):
            ran = await ctx.driver.resume(review, made)
        else:
            ran = await run(ctx, None, review.thread_id, durability="sync")
        if ran is not None and await ctx.driver.delivered(ran, review, made):
            return ran
    raise HitlError(
        f"Thread {review.thread_id!r} did not reach the outcome of review "
        f"{review.review_id!r}; recover() will try again.",
        thread_id=review.thread_id,
    )


def delivered(pos: Position, made: Decision) -> bool:
    """Whether a factory run ended past the pause, with decision `made`'s outcome node run."""
    return factory_delivered(pos, made)


async def _untouched(ctx: Context, review: ReviewRecord) -> bool:
    """Whether the graph is still exactly at the paused checkpoint (safe to release)."""
    try:
        pos = await ctx.driver.position(review.thread_id)
    except Exception:
        return False
    return ctx.driver.at_review(pos, review)


def outcome_payload(review: ReviewRecord, made: Decision, sent: str | None) -> dict[str, Any]:
    """The payload of a decision's audit row: the decision, what was delivered, the edit diff."""
    payload = made.to_state()
    payload["delivered"] = sent
    if made.kind == "system":
        payload.update(FORCED)
        payload["action"] = "approve_draft" if made.approved else "reject"
    if made.approved and sent != review.draft_response:
        payload["diff"] = "".join(
            difflib.unified_diff(
                review.draft_response.splitlines(keepends=True),
                (sent or "").splitlines(keepends=True),
                fromfile="draft",
                tofile="delivered",
            )
        )
    return payload


async def record(
    ctx: Context,
    review: ReviewRecord,
    claim_id: str,
    made: Decision,
    ran: Position | None = None,
    *,
    at: datetime | None = None,
) -> ProcessResult:
    """Record the outcome of a resumed decision, stamped `at` (the clock by default)."""
    pos = await position(ctx, review.thread_id, ran)
    status = completed_status(made)
    payload = await _personal.sealed(
        ctx.reviews,
        outcome_payload(review, made, ctx.driver.delivered_text(pos, review)),
        _personal.DECISION_PERSONAL,
        thread_id=review.thread_id,
        subject=review.requested_by,
    )
    # A raw resume racing on the thread may have run the outcome step from the checkpoint
    # holding this claim's decision, and the graph's authority recorded it under this claim
    # first: complete() is idempotent for the claim, so that is still this decision's win.
    now = ctx.now() if at is None else at
    await ctx.reviews.complete(
        review.review_id,
        claim_id=claim_id,
        status=status,
        now=now,
        actor=made.reviewer,
        payload=payload,
    )
    if ctx.telemetry is not None:
        ctx.telemetry.decided(review, made, payload, now, "coordinator")
    logger.info("thread %s %s by %s", review.thread_id, status, made.reviewer)
    await hooks.dispatch(ctx, review.thread_id)
    if pos.paused:
        # A graph with gates ran on to another gate's pause (the next tool call, say):
        # that pause is a review of its own, opened as a turn's would be.
        return await turns.settle_turn(ctx, review.thread_id, None, pos)
    return result(
        review.thread_id,
        pos,
        review_id=review.review_id,
        reviewer=made.reviewer,
    )
