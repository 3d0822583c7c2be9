"""Decisions that reach a pause around the coordinator, checked and recorded inside the graph.

[`InGraphAuthority`][hitl_compliance._coordination.in_graph.InGraphAuthority]
is what a coordinator attaches to its graph (and what a gate built with
`reviews=` uses when no coordinator is attached): the same functions
`approve()` and `reject()` use to authorise and claim (`claim_approval`,
`claim_rejection`), and the same audit payload when the outcome is applied.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from hitl_compliance import _personal
from hitl_compliance._coordination import assigning, hooks, integrity, qa
from hitl_compliance._coordination.context import Context
from hitl_compliance._coordination.decisions import (
    claim_approval,
    claim_rejection,
    completed_status,
    final_decision,
    outcome_payload,
)
from hitl_compliance._coordination.sla import sla_for
from hitl_compliance._coordination.telemetry import Instruments
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    HitlError,
    QuorumPendingError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.hooks import Hooks
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, InputLimits
from hitl_compliance.models import ReviewRecord
from hitl_compliance.policy import AllowAllPolicy, ApprovalPolicy, Reviewer
from hitl_compliance.qa import QaSampling
from hitl_compliance.reasons import FCA_RETAIL_REASON_CODES, ReasonCodes, ReasonPolicy
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision
from hitl_compliance.stores.base import ReviewStore

__all__ = ["InGraphAuthority", "store_authority"]

logger = logging.getLogger("hitl_compliance")

_SAME = ("reviewer", "approved", "response", "reason", "tool_args", "reason_code")


def _same(held: dict[str, Any] | None, made: Decision) -> bool:
    """Whether the store holds `made` (a node re-executed: its clock stamp may differ)."""
    if held is None:
        return False
    mine = made.to_state()
    return all(held.get(k) == mine.get(k) for k in _SAME)


class InGraphAuthority:
    """A coordinator's checks for decisions it did not make: see `DecisionAuthority`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @property
    def limits(self) -> InputLimits:
        """The largest texts and metadata a decision may carry."""
        return self._ctx.limits

    @property
    def reviews(self) -> ReviewStore:
        """The coordinator's review store."""
        return self._ctx.reviews

    def now(self) -> datetime:
        """The coordinator's clock: rows the graph writes for it are timed as its own."""
        return self._ctx.now()

    async def sample_for_qa(
        self,
        *,
        thread_id: str,
        turn: str,
        rules: tuple[str, ...],
        product: str | None,
        reply_seq: int | None,
    ) -> None:
        """Sample a reply the rules delivered alone for second-line QA (see `_coordination.qa`).

        Nothing without `qa_sampling`; once per turn however often the step runs.
        """
        sampling = self._ctx.qa_sampling
        if sampling is None:
            return
        await qa.sample(
            self._ctx,
            sampling,
            thread_id=thread_id,
            turn=turn,
            rules=rules,
            product=product,
            reply_seq=reply_seq,
        )

    async def record_pause(self, review: ReviewRecord) -> None:
        """Open the pending review of a pause nobody else records (idempotent per pause).

        A thread whose open review belongs to an earlier checkpoint (its state was
        written to since it paused) keeps that review: decisions are claimed on it.
        With an SLA (`attach_authority(sla=...)`), the review gets its deadline, so
        an SLA worker sweeping the store expires it.
        """
        due = sla_for(self._ctx, list(review.violations))
        if due is not None and review.deadline is None:
            review = review.model_copy(update={"deadline": review.requested_at + due})
        try:
            opened = await self._ctx.reviews.open_review(review, owner=None)
        except ThreadBusyError:
            logger.info("thread %s: pause already under review", review.thread_id)
        else:
            await assigning.route(self._ctx, opened)

    async def _find(self, thread_id: str, review_id: str | None) -> ReviewRecord | None:
        opened = await self._ctx.reviews.open_reviews(thread_id)
        if review_id is None:
            waiting = [r for r in opened if r.status == "pending"]
            if len(waiting) == 1:
                return waiting[0]
            claimed = [r for r in opened if r.status == "claimed"]
            if len(claimed) == 1 and not waiting:
                return claimed[0]
        for review in opened:
            if review.review_id == review_id:
                return review
        latest = await self._ctx.reviews.get_review(thread_id)
        if latest is not None and review_id in (None, latest.review_id):
            return latest
        return None

    async def _recorded(self, thread_id: str, review_id: str | None) -> dict[str, Any] | None:
        """The decision recorded for a review no longer open (read from its audit row)."""
        if review_id is None:
            return None
        for row in reversed(await self._ctx.reviews.audit_log(thread_id)):
            if row.review_id == review_id and row.event in ("approved", "rejected"):
                return {k: v for k, v in row.payload.items() if k in Decision.model_fields}
        return None

    async def decide(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        made: Decision,
        edit_findings: list[RuleResult],
        reviewer: Reviewer | None,
    ) -> Decision | HitlError:
        """Claim `made` through the checks `approve()` / `reject()` make (see the protocol)."""
        work = self._decide(thread_id, review_id, made, edit_findings, reviewer)
        tel = self._ctx.telemetry
        if tel is None:
            return await work
        return await tel.decide_in_graph(thread_id, review_id, made, work)

    async def _decide(
        self,
        thread_id: str,
        review_id: str | None,
        made: Decision,
        edit_findings: list[RuleResult],
        reviewer: Reviewer | None,
    ) -> Decision | HitlError:
        ctx = self._ctx
        if reviewer is not None:
            if made.reviewer != reviewer.id and made.reviewer.strip():
                logger.info(
                    "thread %s: decision named %r, made by authenticated %r",
                    thread_id,
                    made.reviewer,
                    reviewer.id,
                )
            made = made.model_copy(
                update={"reviewer": reviewer.id, "roles": sorted(reviewer.roles)}
            )
        who = reviewer or Reviewer(made.reviewer, roles=frozenset(made.roles))
        review = await self._find(thread_id, review_id)
        if review is None:
            held = await self._recorded(thread_id, review_id)
            if held is not None and _same(held, made):
                return Decision.model_validate(held)  # recorded before a crash: as it was
            return ReviewNotFoundError(
                f"This pause of thread {thread_id!r} is not recorded in the review store, so "
                "no decision on it can be claimed or audited. Run turns with "
                "HitlCoordinator.process() (or give the gate reviews=), then decide.",
                thread_id=thread_id,
            )
        if review.status != "pending":
            if _same(review.decision, made):
                return Decision.model_validate(review.decision)
            return AlreadyDecidedError(
                f"Review {review.review_id} of thread {thread_id!r} is {review.status} "
                "already; exactly one decision is claimed per review.",
                thread_id=thread_id,
                status=review.status,
            )
        try:
            await integrity.check(ctx.reviews, review)
        except HitlError as exc:
            return exc
        # The decision keeps the time it was made (the graph's state holds it as sent);
        # the claim is stamped now, so its lease runs from when it was taken.
        claim_id = uuid.uuid4().hex
        now = ctx.now()
        try:
            if made.approved:
                updated = await claim_approval(ctx, review, who, made, edit_findings, claim_id, now)
                if updated.status == "pending":
                    return QuorumPendingError(
                        f"{who.id}'s approval is recorded ({len(updated.votes)} of "
                        f"{updated.approvals_required}); review {review.review_id} waits for "
                        "another approver and nothing was applied.",
                        thread_id=thread_id,
                        votes=len(updated.votes),
                        required=updated.approvals_required,
                    )
            else:
                updated = await claim_rejection(ctx, review, who, made, claim_id, now)
        except HitlError as exc:
            return exc
        return final_decision(updated)

    async def complete(
        self, *, thread_id: str, review_id: str | None, made: Decision, delivered: str | None
    ) -> None:
        """Record the applied outcome of a claimed decision, once (see the protocol)."""
        ctx = self._ctx
        review = await self._find(thread_id, review_id)
        if review is None or review.claim_id is None:
            return
        if review.status != "claimed" or not _same(review.decision, made):
            return
        held = final_decision(review)
        now = ctx.now()
        payload = await _personal.sealed(
            ctx.reviews,
            {**outcome_payload(review, held, delivered), "via": "graph"},
            _personal.DECISION_PERSONAL,
            thread_id=thread_id,
            subject=review.requested_by,
        )
        await ctx.reviews.complete(
            review.review_id,
            claim_id=review.claim_id,
            status=completed_status(held),
            now=now,
            actor=held.reviewer,
            payload=payload,
        )
        if ctx.telemetry is not None:
            ctx.telemetry.decided(review, held, payload, now, "graph")
            await ctx.telemetry.refresh_pending()
        logger.info("thread %s %s by %s (in the graph)", thread_id, review.status, held.reviewer)
        await hooks.dispatch(ctx, thread_id)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _NoDriver:
    """An authority inside the graph never reads or resumes the graph itself."""


def authority_context(
    reviews: ReviewStore,
    *,
    policy: ApprovalPolicy | None = None,
    hooks: Hooks | None = None,
    clock: Callable[[], datetime] | None = None,
    sla: timedelta | None = None,
    sla_by: Mapping[str, timedelta] | None = None,
    reason_codes: ReasonCodes | None = None,
    reason_policy: ReasonPolicy | None = None,
    telemetry: Instruments | None = None,
    qa_sampling: QaSampling | None = None,
    limits: InputLimits = DEFAULT_INPUT_LIMITS,
) -> Context:
    """A coordinator's context without a graph: what the checks inside the graph need."""
    codes, rules = reason_config(reason_codes, reason_policy)
    return Context(
        graph=None,  # type: ignore[arg-type]
        spec=None,
        reviews=reviews,
        policy=policy or AllowAllPolicy(),
        clock=clock or _utcnow,
        lease=timedelta(seconds=30),
        sla=sla,
        sla_by=MappingProxyType(dict(sla_by or {})),
        on_timeout="reject",
        hooks=hooks or Hooks(),
        driver=_NoDriver(),  # type: ignore[arg-type]
        reason_codes=codes,
        reason_policy=rules,
        telemetry=telemetry,
        qa_sampling=qa_sampling,
        limits=limits,
    )


def reason_config(
    reason_codes: ReasonCodes | None, reason_policy: ReasonPolicy | None
) -> tuple[ReasonCodes, ReasonPolicy]:
    """The taxonomy and policy in force (defaults: FCA retail codes, none required), checked.

    Raises:
        ConfigurationError: a value of the wrong type, or an `expiry_code` not in the codes.
    """
    codes = FCA_RETAIL_REASON_CODES if reason_codes is None else reason_codes
    rules = ReasonPolicy() if reason_policy is None else reason_policy
    if not isinstance(codes, ReasonCodes):
        raise ConfigurationError(
            f"reason_codes must be a hitl_compliance.ReasonCodes, got {type(codes).__name__}."
        )
    if not isinstance(rules, ReasonPolicy):
        raise ConfigurationError(
            f"reason_policy must be a hitl_compliance.ReasonPolicy, got {type(rules).__name__}."
        )
    rules.check(codes)
    return codes, rules


def store_authority(store: ReviewStore) -> InGraphAuthority:
    """The authority of a gate built with `reviews=` that no coordinator has attached to.

    Every reviewer may decide (as a coordinator without a policy allows), once,
    with the claim and the audit row; attach a `HitlCoordinator` with a policy
    (or call `attach_authority`) for roles, quorum and hooks.
    """
    return InGraphAuthority(authority_context(store))
