"""Second-line QA: sample the replies the rules delivered alone, record QA verdicts.

[`sample`][hitl_compliance._coordination.qa.sample] runs in the step that
sends a turn's reply, right after its `replied` row: a delivered reply that
no human decided is sampled when its seeded draw falls below its stratum's
rate (see [`hitl_compliance.qa`][hitl_compliance.qa]). The QA review's id is
`qa:<thread id>:<turn>` and the store inserts it only if absent, so a step
re-run after a crash, or `recover()`, never samples a turn twice. The
delivery is never held back: the reply is already in the graph's update.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from hitl_compliance import _validate
from hitl_compliance._coordination.context import Context
from hitl_compliance.errors import ConfigurationError, NotAuthorizedError
from hitl_compliance.policy import Reviewer, as_reviewer
from hitl_compliance.qa import (
    QaReview,
    QaRuleCount,
    QaSampling,
    QaStore,
    check_verdict,
    qa_not_found,
    qa_recorded,
    qa_review_id,
    stratum_of,
)
from hitl_compliance.reasons import ReasonPolicy, check_reason

__all__ = ["qa_disagreement", "qa_pending", "qa_review", "qa_verdict", "sample"]

logger = logging.getLogger("hitl_compliance")

_NO_REQUIREMENT = ReasonPolicy()


def qa_store(ctx: Context) -> QaStore:
    """The coordinator's store as a `QaStore` (ConfigurationError when it keeps no QA reviews)."""
    if not isinstance(ctx.reviews, QaStore):
        raise ConfigurationError(
            f"QA sampling needs a store that keeps QA reviews (QaStore); "
            f"{type(ctx.reviews).__name__} does not. Use one of the library's stores."
        )
    return ctx.reviews


async def sample(
    ctx: Context,
    sampling: QaSampling,
    *,
    thread_id: str,
    turn: str,
    rules: tuple[str, ...],
    product: str | None,
    reply_seq: int | None,
) -> QaReview | None:
    """Sample the delivered turn for QA when its draw says so; the review, or None.

    Idempotent per turn: the second call writes nothing (and returns None).
    """
    rate = sampling.rate_for(product)
    if not sampling.selects(thread_id, turn, product):
        return None
    review = QaReview(
        qa_review_id=qa_review_id(thread_id, turn),
        thread_id=thread_id,
        turn=turn,
        stratum=stratum_of(rules, product),
        rate=rate,
        rules=rules,
        product=product,
        reply_seq=reply_seq,
        sampled_at=ctx.now(),
    )
    payload: dict[str, Any] = {
        "qa_review_id": review.qa_review_id,
        "rules": list(rules),
        "stratum": review.stratum,
        "rate": rate,
        "reply_seq": reply_seq,
        "turn": turn,
        "product": product,
    }
    if not await qa_store(ctx).open_qa_review(review, payload=payload):
        return None
    logger.info("thread %s turn %s sampled for QA (rate %s)", thread_id, turn, rate)
    return review


async def qa_pending(ctx: Context, limit: int | None) -> list[QaReview]:
    """QA reviews awaiting a verdict, oldest first."""
    return await qa_store(ctx).list_qa_pending(limit=_validate.page_limit(limit))


async def qa_review(ctx: Context, qa_id: str) -> QaReview:
    """One QA review (QaReviewNotFoundError for an unknown id)."""
    _validate.text("qa_review_id", qa_id)
    found = await qa_store(ctx).get_qa_review(qa_id)
    if found is None:
        raise qa_not_found(qa_id)
    return found


def _check_role(ctx: Context, who: Reviewer, review: QaReview) -> None:
    sampling = ctx.qa_sampling
    roles = frozenset() if sampling is None else sampling.roles
    if roles and not roles & who.roles:
        raise NotAuthorizedError(
            f"{who.id!r} may not record a QA verdict: it needs one of the QA roles "
            f"{sorted(roles)} (QaSampling.roles). Ask a QA reviewer.",
            thread_id=review.thread_id,
            reviewer=who.id,
            missing_roles=roles,
        )


async def qa_verdict(
    ctx: Context,
    qa_id: str,
    *,
    reviewer: str | Reviewer,
    verdict: str,
    reason_code: str | None,
    reason: str | None,
) -> QaReview:
    """Record a QA reviewer's verdict once; every check runs before anything is written.

    The arguments are checked before the QA review is read (InvalidInputError
    whether or not it exists), then the review's state and the reviewer's role.
    """
    _validate.text("qa_review_id", qa_id)
    who = as_reviewer(reviewer)
    checked = check_verdict(verdict, reason_code, qa_id=qa_id)
    note = _validate.decision_text("reason", reason)
    if reason_code is not None:
        # The coordinator's taxonomy: a code outside it is refused (only a
        # disagreement needs a code, checked above, so no policy applies).
        check_reason(
            ctx.reason_codes, _NO_REQUIREMENT, action="reject", code=reason_code, text=note
        )
    review = await qa_review(ctx, qa_id)
    if review.verdict is not None:
        raise qa_recorded(review)
    _check_role(ctx, who, review)
    payload: dict[str, Any] = {
        "verdict": checked,
        "reason_code": reason_code,
        "rules": list(review.rules),
        "sampled_review_id": review.qa_review_id,
    }
    if note:
        payload["reason"] = note
    return await qa_store(ctx).record_qa_verdict(
        qa_id,
        verdict=checked,
        reason_code=reason_code,
        reviewer=who.id,
        now=ctx.now(),
        payload=payload,
    )


async def qa_disagreement(
    ctx: Context, since: datetime | None, until: datetime | None
) -> tuple[QaRuleCount, ...]:
    """Per rule QA counts in `[since, until)` of sampling time, counted in the store."""
    start = None if since is None else _validate.aware_datetime("since", since)
    end = None if until is None else _validate.aware_datetime("until", until)
    return await qa_store(ctx).qa_disagreement(since=start, until=end)
