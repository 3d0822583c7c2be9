"""What waits for a decision, and who may make it: `pending`, `review`, `may_decide`.

Reads only the review store (never a checkpoint), so listing costs
O(returned rows). The authority checks here (four-eyes, one vote each, the
policy's roles, a valid quorum) are the ones `approve` / `reject` make
before anything changes, so a UI's answer and the decision agree.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from hitl_compliance import _validate
from hitl_compliance._coordination import assigning, integrity
from hitl_compliance._coordination.context import Context, check_thread_id
from hitl_compliance.errors import (
    ConfigurationError,
    HitlError,
    InvalidDecisionError,
    InvalidInputError,
    ReviewIdRequiredError,
    StaleReviewError,
)
from hitl_compliance.models import AuditRecord, PendingReview, ReviewRecord, sha256_text
from hitl_compliance.policy import (
    AllowAllPolicy,
    Authorization,
    Reviewer,
    RoleBasedPolicy,
    as_reviewer,
    canonical_reviewer_id,
)
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores._machine import Refusal, refusal_error

__all__ = [
    "ReviewsWithLog",
    "authorization",
    "canonical",
    "is_requester",
    "may_decide",
    "open_review",
    "parse_cursor",
    "pending",
    "quorum",
    "review",
]


async def pending(
    ctx: Context,
    *,
    rule: str | None,
    reviewer: str | Reviewer | None,
    older_than: timedelta | datetime | None,
    limit: int | None,
    cursor: str | None,
    assigned_to: str | None = None,
) -> list[PendingReview]:
    """Paused reviews, oldest first, filtered (contract: `HitlCoordinator.pending`)."""
    _validate.page_limit(limit)
    before = _validate.older_than_cutoff(older_than, ctx.now)
    if rule is not None:
        _validate.text("rule", rule)
    after = parse_cursor(_validate.cursor_text(cursor))
    who = None if reviewer is None else as_reviewer(reviewer)
    via: dict[str, str | None] | None = None
    if assigned_to is not None:
        if not isinstance(assigned_to, str) or not assigned_to.strip():
            raise InvalidInputError("assigned_to must be a non-empty str (a reviewer id).")
        _validate.text("assigned_to", assigned_to)
        via = await assigning.assignees_for(ctx, assigned_to)
    # Filters the store's index does not answer drop rows after the read: fetch wider
    # pages, doubling up to _MAX_PAGE, so a selective filter costs few round trips.
    narrowed = who is not None or (via is not None and rule is not None)
    may = None if who is None else _Eligibility(ctx, who)
    kinds = None if may is None or via is not None else await may.kinds(rule)
    if kinds == []:
        return []
    out: list[PendingReview] = []
    width = None if limit is None else max(limit, 50) if narrowed else limit
    while True:
        if kinds is not None:
            # Only reviews whose finding kinds the policy allows (and that have `rule`).
            page = await ctx.reviews.list_pending_by_kinds(  # type: ignore[attr-defined]
                kinds, limit=width, requested_before=before, after=after
            )
        elif via is None:
            page = await ctx.reviews.list_pending(
                limit=width, rule=rule, requested_before=before, after=after
            )
        else:
            page = await assigning.list_assigned(
                ctx, list(via), limit=width, requested_before=before, after=after
            )
        kept = [
            record
            for record in page
            if (may is None or may.allowed(record))
            and (
                (via is None and kinds is None)
                or rule is None
                or any(v.rule == rule for v in record.violations)
            )
        ]
        for view in await assigning.annotate(ctx, kept, via):
            out.append(view)
            if limit is not None and len(out) == limit:
                return out
        if not narrowed or limit is None or not page:
            return out
        after = (page[-1].requested_at, page[-1].review_id)
        if width is not None:
            width = max(width, min(width * 2, _MAX_PAGE))


_MAX_PAGE = 1000
"""The widest page a filtered `pending()` reads at once (rows dropped after the read)."""


_SEVERITIES = frozenset({"low", "medium", "high", "critical"})


def _pairs(value: str) -> list[tuple[str, str]] | None:
    """The `(rule, severity)` pairs of a finding-kinds value, or None if it is not one."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if not isinstance(parsed, list):
        return None
    out: list[tuple[str, str]] = []
    for item in parsed:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in _SEVERITIES
        ):
            return None
        out.append((item[0], item[1]))
    return out


class _Eligibility:
    """`authorization(ctx, reviewer, r).allowed` over many reviews, with its pure parts memoised.

    The reviewer's canonical id is computed once, each requester's once, and, for
    the library's own policies (whose answer depends only on the findings' rules
    and severities), the policy once per distinct set of those.
    """

    def __init__(self, ctx: Context, reviewer: Reviewer) -> None:
        self._ctx = ctx
        self._reviewer = reviewer
        self._key: str | None = None
        self._requesters: dict[str, bool] = {}
        self._by_kinds = type(ctx.policy) in (AllowAllPolicy, RoleBasedPolicy)
        self._policy: dict[frozenset[tuple[str, str]], bool] = {}

    async def kinds(self, rule: str | None) -> list[str] | None:
        """The finding-kinds values of pending reviews the policy may allow (with a
        finding of `rule`, if given), or None when the store or policy cannot say.

        Only the library's role-based policy decides from `(rule, severity)` pairs
        alone (and the allow-all one needs no narrowing); any other policy, or a
        store without the kinds index, reads every pending review instead.
        """
        ctx = self._ctx
        store: Any = ctx.reviews
        if type(ctx.policy) is not RoleBasedPolicy or not hasattr(store, "list_pending_by_kinds"):
            return None
        values: list[str] | None = await store.pending_finding_kinds()
        if values is None:
            return None
        out: list[str] = []
        for value in values:
            pairs = _pairs(value)
            if pairs is None:
                # Not a value this library wrote: let the per-row check decide.
                out.append(value)
                continue
            if rule is not None and all(r != rule for r, _ in pairs):
                continue
            findings = [RuleResult(r, "review", severity=s) for r, s in pairs]  # type: ignore[arg-type]
            if ctx.policy.authorize(self._reviewer, findings).allowed:
                out.append(value)
        return out

    def allowed(self, review: ReviewRecord) -> bool:
        """Whether the reviewer may decide `review` now (as `authorization` answers)."""
        ctx = self._ctx
        if self._key is None:
            self._key = canonical(ctx, self._reviewer.id)
        key = self._key
        requester = review.requested_by
        if requester is not None:
            mine = self._requesters.get(requester)
            if mine is None:
                mine = self._requesters[requester] = is_requester(ctx, key, review)
            if mine:
                return False
        if any(key in (v.reviewer_key, canonical(ctx, v.reviewer)) for v in review.votes):
            return False
        if not self._by_kinds:
            return ctx.policy.authorize(self._reviewer, review.violations).allowed
        kinds = frozenset((v.rule, v.severity) for v in review.violations)
        found = self._policy.get(kinds)
        if found is None:
            found = self._policy[kinds] = ctx.policy.authorize(
                self._reviewer, review.violations
            ).allowed
        return found


async def review(ctx: Context, thread_id: str, review_id: str | None = None) -> PendingReview:
    """The thread's review awaiting a decision, as `pending()` lists it."""
    check_thread_id(thread_id)
    found = await open_review(ctx, thread_id, None, review_id)
    return (await assigning.annotate(ctx, [found]))[0]


async def may_decide(
    ctx: Context, thread_id: str, reviewer: str | Reviewer, review_id: str | None = None
) -> Authorization:
    """Whether `reviewer` may decide the thread's pending review now; records nothing."""
    check_thread_id(thread_id)
    found = await open_review(ctx, thread_id, None, review_id)
    return authorization(ctx, as_reviewer(reviewer), found)


async def open_review(
    ctx: Context, thread_id: str, expected: str | None, review_id: str | None = None
) -> ReviewRecord:
    """The thread's pending review, checked against what the reviewer saw (`expected`).

    With `review_id`, that review of the thread; without, its only pending one.

    Raises:
        ReviewNotFoundError: the thread never paused.
        AlreadyDecidedError: its review is claimed or decided, or `review_id` is not
            an open review of the thread.
        ReviewIdRequiredError: several reviews are pending and `review_id` is None.
        StaleReviewError: `expected` is neither its checkpoint id nor its draft's sha256.
        TamperedError: the row differs from what its audit rows committed to.
    """
    if review_id is not None:
        _validate.text("review_id", review_id)
    log: list[AuditRecord] | None = None
    if isinstance(ctx.reviews, ReviewsWithLog):
        opened, log = await ctx.reviews.open_reviews_with_log(thread_id)
    else:
        opened = await ctx.reviews.open_reviews(thread_id)
    waiting = [r for r in opened if r.status == "pending"]
    if review_id is None and len(waiting) > 1:
        ids = tuple(r.review_id for r in waiting)
        raise ReviewIdRequiredError(
            f"Thread {thread_id!r} has {len(ids)} pending reviews {list(ids)} (a gate "
            "waiting for several tool calls); pass review_id= to say which one.",
            thread_id=thread_id,
            review_ids=ids,
        )
    # The thread's latest review only when no open one is the answer (one read saved).
    if review_id is None:
        review = waiting[0] if len(waiting) == 1 else await ctx.reviews.get_review(thread_id)
    else:
        review = next((r for r in opened if r.review_id == review_id), None)
        if review is None:
            review = await ctx.reviews.get_review(thread_id)
    if review is None:
        raise refusal_error(Refusal.NO_REVIEW, thread_id=thread_id)
    if review_id is not None and review.review_id != review_id:
        # Decided already (or never the thread's): as the store's claim would say.
        raise refusal_error(Refusal.NOT_OPEN_REVIEW, thread_id=thread_id, review_id=review_id)
    if review.status != "pending":
        raise refusal_error(Refusal.DECIDED, thread_id=thread_id, status=review.status)
    if expected is not None:
        if not isinstance(expected, str):
            raise InvalidDecisionError("expected must be a draft_sha256 or checkpoint id.")
        current = (review.checkpoint_id, sha256_text(review.draft_response))
        if expected not in current:
            raise StaleReviewError(
                f"Thread {thread_id!r} changed since it was loaded: expected {expected!r}, "
                f"now checkpoint {review.checkpoint_id!r} with draft sha256 "
                f"{current[1]!r}. Reload the review and decide again.",
                thread_id=thread_id,
                expected=expected,
                actual=review.checkpoint_id,
            )
    # Authorisation reads this row: refuse one that differs from its ledger rows.
    if log is None:
        await integrity.check(ctx.reviews, review)
    else:
        integrity.check_rows(review, log)
    return review


@runtime_checkable
class ReviewsWithLog(Protocol):
    """A store that reads a thread's open reviews and its audit log in one trip."""

    async def open_reviews_with_log(
        self, thread_id: str
    ) -> tuple[list[ReviewRecord], list[AuditRecord]]:
        """`open_reviews(thread_id)` and `audit_log(thread_id)`, read together."""
        ...


def authorization(ctx: Context, reviewer: Reviewer, review: ReviewRecord) -> Authorization:
    """Whether `reviewer` may decide `review` now: not its requester, no vote yet, the policy."""
    key = canonical(ctx, reviewer.id)
    if is_requester(ctx, key, review):
        return Authorization(False, "the requester of a review may not approve it")
    # The stored key is what the store compares; the id recomputed covers a vote
    # whose key came from another canonical form.
    if any(key in (v.reviewer_key, canonical(ctx, v.reviewer)) for v in review.votes):
        return Authorization(False, "they have voted on this review already")
    return ctx.policy.authorize(reviewer, review.violations)


def canonical(ctx: Context, reviewer_id: str) -> str:
    """The policy's canonical form of an id (the default when it defines none)."""
    own = getattr(ctx.policy, "canonical_id", None)
    if own is None:
        return canonical_reviewer_id(reviewer_id)
    key = own(reviewer_id)
    if not isinstance(key, str) or not key:
        raise ConfigurationError(
            f"The approval policy's canonical_id returned {key!r} for {reviewer_id!r}; "
            "it must return a non-empty str."
        )
    return key


def is_requester(ctx: Context, key: str, review: ReviewRecord) -> bool:
    """Whether the canonical id `key` is the review's requester, however they spelt it."""
    if review.requested_by is None:
        return False
    try:
        return key == canonical(ctx, review.requested_by)
    except HitlError:
        # A requester id with no visible character names no one a reviewer could be.
        return False


def quorum(ctx: Context, findings: list[RuleResult]) -> int:
    """How many approvals the policy requires for these findings (checked to be an int >= 1)."""
    required = ctx.policy.approvals_required(findings)
    if isinstance(required, bool) or not isinstance(required, int) or required < 1:
        raise ConfigurationError(
            f"The approval policy returned {required!r} approvals; it must be an int >= 1."
        )
    return required


def parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The `(requested_at, review_id)` position a `PendingReview.cursor` names.

    Raises:
        InvalidInputError: `cursor` is not one `PendingReview.cursor` produced.
    """
    if cursor is None:
        return None
    try:
        at, review_id = cursor.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (AttributeError, ValueError):
        raise InvalidInputError(f"{cursor!r} is not a cursor from PendingReview.cursor.") from None
    if parsed.tzinfo is None or not review_id:
        raise InvalidInputError(f"{cursor!r} is not a cursor from PendingReview.cursor.")
    return _validate.aware_datetime("cursor", parsed), review_id
