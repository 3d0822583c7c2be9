"""Assignment and delegation: route a review at pause, reassign it, delegate, list by assignee.

Every change goes through the store's [`AssignmentStore`][hitl_compliance.AssignmentStore]
capability, which writes the change and its audit row in one transaction.
Who may move work (`Routing.supervisor_roles`) is checked here, before
anything is written; with `Routing(enforce=True)`, `check_decider` refuses a
decision by someone the review is not assigned to. The assignee it reads is
the one the ledger committed to: a row edited in the database is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from hitl_compliance import _validate
from hitl_compliance._coordination.context import Context, check_thread_id
from hitl_compliance.assignment import (
    Assignment,
    AssignmentStore,
    Delegation,
    Routing,
)
from hitl_compliance.errors import (
    ConfigurationError,
    InvalidInputError,
    NotAuthorizedError,
    ReviewNotFoundError,
    TamperedError,
)
from hitl_compliance.models import PendingReview, ReviewRecord
from hitl_compliance.policy import Reviewer, as_reviewer

__all__ = [
    "ROUTING_ACTOR",
    "annotate",
    "assignees_for",
    "delegate",
    "delegations",
    "list_assigned",
    "reassign",
    "refusal",
    "revoke_delegation",
    "route",
]

logger = logging.getLogger("hitl_compliance")

ROUTING_ACTOR = "system:routing"
"""The audit actor of the routing at pause."""


def _store(ctx: Context) -> AssignmentStore:
    store = ctx.reviews
    if not isinstance(store, AssignmentStore):
        raise ConfigurationError(
            f"{type(store).__name__} cannot keep assignments (it is not an AssignmentStore); "
            "use InMemoryReviewStore, SqliteReviewStore or PostgresReviewStore."
        )
    return store


def _routing(ctx: Context) -> Routing:
    if ctx.routing is None:
        raise ConfigurationError(
            "This coordinator has no routing: pass HitlCoordinator(routing=Routing(...)) "
            "to assign, reassign and delegate reviews."
        )
    return ctx.routing


def _name(value: object, name: str, longest: int = 256) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise InvalidInputError(f"{name} must be a non-empty str of at most {longest} chars.")
    _validate.text(name, value)
    return value


async def route(ctx: Context, review: ReviewRecord) -> Assignment | None:
    """Assign a review that just paused by the routing (idempotent per review)."""
    routing = ctx.routing
    if routing is None:
        return None
    roles_for = getattr(ctx.policy, "required_roles", None)
    to, reason = routing.route(list(review.violations), roles_for)
    return await _store(ctx).assign(
        review.review_id, to=to, reason=reason, by=ROUTING_ACTOR, now=ctx.now(), initial=True
    )


def _supervises(routing: Routing, who: Reviewer) -> bool:
    return not routing.supervisor_roles or bool(routing.supervisor_roles & who.roles)


async def reassign(
    ctx: Context,
    thread_id: str,
    *,
    to: str,
    by: str | Reviewer,
    reason: str,
    review_id: str | None,
) -> Assignment:
    """Move the thread's pending review to `to` (contract: `HitlCoordinator.reassign`)."""
    from hitl_compliance._coordination.reviews import open_review

    check_thread_id(thread_id)
    _name(to, "to")
    _name(reason, "reason", 2000)
    if review_id is not None:
        _validate.text("review_id", review_id)
    who = as_reviewer(by)
    routing = _routing(ctx)
    if not _supervises(routing, who):
        raise NotAuthorizedError(
            f"{who.id!r} may not reassign reviews: it needs one of the roles "
            f"{sorted(routing.supervisor_roles)} (Routing.supervisor_roles). Nothing changed.",
            thread_id=thread_id,
            reviewer=who.id,
            missing_roles=routing.supervisor_roles,
        )
    review = await open_review(ctx, thread_id, None, review_id)
    done = await _store(ctx).assign(
        review.review_id, to=to, reason=reason, by=who.id, now=ctx.now(), initial=False
    )
    if done is None:
        # Decided between the read and the write: as the store's claim would say.
        await open_review(ctx, thread_id, None, review.review_id)
        raise ReviewNotFoundError(f"Thread {thread_id!r} has no pending review to reassign.")
    return done


async def delegate(
    ctx: Context,
    from_reviewer: str,
    to_reviewer: str,
    *,
    until: datetime,
    by: str | Reviewer,
) -> Delegation:
    """Hand `from_reviewer`'s reviews to `to_reviewer` until `until` (contract: `delegate`)."""
    _name(from_reviewer, "from_reviewer")
    _name(to_reviewer, "to_reviewer")
    if from_reviewer == to_reviewer:
        raise InvalidInputError("A reviewer cannot delegate to themselves: name someone else.")
    _validate.aware_datetime("until", until)
    now = ctx.now()
    if until <= now:
        raise InvalidInputError(
            f"until ({until.isoformat()}) is not after now ({now.isoformat()}): a "
            "delegation must end in the future."
        )
    who = as_reviewer(by)
    routing = _routing(ctx)
    if who.id != from_reviewer and not _supervises(routing, who):
        raise NotAuthorizedError(
            f"{who.id!r} may not delegate {from_reviewer!r}'s reviews: only they or a "
            f"reviewer with one of {sorted(routing.supervisor_roles)} may. Nothing changed.",
            reviewer=who.id,
            missing_roles=routing.supervisor_roles,
        )
    delegation = Delegation(
        from_reviewer=from_reviewer, to_reviewer=to_reviewer, until=until, by=who.id, created_at=now
    )
    return await _store(ctx).delegate(delegation)


async def revoke_delegation(
    ctx: Context, from_reviewer: str, *, by: str | Reviewer
) -> Delegation | None:
    """End `from_reviewer`'s delegation (contract: `HitlCoordinator.revoke_delegation`)."""
    _name(from_reviewer, "from_reviewer")
    who = as_reviewer(by)
    routing = _routing(ctx)
    if who.id != from_reviewer and not _supervises(routing, who):
        raise NotAuthorizedError(
            f"{who.id!r} may not revoke {from_reviewer!r}'s delegation: only they or a "
            f"reviewer with one of {sorted(routing.supervisor_roles)} may. Nothing changed.",
            reviewer=who.id,
            missing_roles=routing.supervisor_roles,
        )
    return await _store(ctx).revoke_delegation(from_reviewer, by=who.id, now=ctx.now())


async def delegations(ctx: Context) -> list[Delegation]:
    """The delegations in force by the coordinator's clock, by delegator."""
    _routing(ctx)
    now = ctx.now()
    return [d for d in await _store(ctx).delegations() if d.active(now)]


async def assignees_for(ctx: Context, reviewer_id: str) -> dict[str, str | None]:
    """Every assignee whose reviews wait for `reviewer_id`, each with the delegator it
    comes through (None: the reviewer itself or one of its queues)."""
    routing = _routing(ctx)
    out: dict[str, str | None] = {reviewer_id: None}
    for queue in routing.queues_of(reviewer_id):
        out[queue] = None
    for d in await delegations(ctx):
        if d.to_reviewer == reviewer_id and d.from_reviewer not in out:
            out[d.from_reviewer] = d.from_reviewer
            for queue in routing.queues_of(d.from_reviewer):
                out.setdefault(queue, d.from_reviewer)
    return out


async def list_assigned(
    ctx: Context,
    assignees: Sequence[str],
    *,
    limit: int | None,
    requested_before: datetime | None,
    after: tuple[datetime, str] | None,
) -> list[ReviewRecord]:
    """Pending reviews assigned to any of `assignees`, oldest first (the store's index)."""
    return await _store(ctx).list_assigned(
        assignees, limit=limit, requested_before=requested_before, after=after
    )


async def annotate(
    ctx: Context, records: Sequence[ReviewRecord], via: dict[str, str | None] | None = None
) -> list[PendingReview]:
    """The reviewer-facing views of `records`, with their assignee, why, and the delegator."""
    if ctx.routing is None or not isinstance(ctx.reviews, AssignmentStore) or not records:
        return [r.to_pending() for r in records]
    found = {a.review_id: a for a in await ctx.reviews.assignments([r.review_id for r in records])}
    out: list[PendingReview] = []
    for record in records:
        view = record.to_pending()
        a = found.get(record.review_id)
        if a is not None:
            view = view.model_copy(
                update={
                    "assigned_to": a.assigned_to,
                    "assignment_reason": a.reason,
                    "delegated_from": None if via is None else via.get(a.assigned_to),
                }
            )
        out.append(view)
    return out


async def _committed_assignee(ctx: Context, review: ReviewRecord) -> str | None:
    """The review's assignee as its latest `assigned` / `reassigned` audit row says."""
    assignee: str | None = None
    for row in await ctx.reviews.audit_log(review.thread_id):
        if row.review_id == review.review_id and row.event in ("assigned", "reassigned"):
            value = row.payload.get("to")
            assignee = value if isinstance(value, str) else None
    return assignee


async def refusal(ctx: Context, reviewer: Reviewer, review: ReviewRecord) -> str | None:
    """With `Routing(enforce=True)`, why `reviewer` may not decide `review` (None: they may).

    A review waits for its assignee, the members of its queue, and whoever the
    assignee delegated to (in force by the coordinator's clock).

    Raises:
        TamperedError: the row's assignee differs from the ledger's.
    """
    routing = ctx.routing
    if routing is None or not routing.enforce or not isinstance(ctx.reviews, AssignmentStore):
        return None
    found = await ctx.reviews.assignments([review.review_id])
    stored = found[0].assigned_to if found else None
    committed = await _committed_assignee(ctx, review)
    if stored != committed:
        raise TamperedError(
            f"Review {review.review_id!r} of thread {review.thread_id!r} is assigned to "
            f"{stored!r} in its row but to {committed!r} in the audit ledger: the row was "
            "edited. Nothing changed; investigate, then reassign it.",
            thread_id=review.thread_id,
            review_id=review.review_id,
            mismatch="assigned_to",
        )
    if committed is None or committed in await assignees_for(ctx, reviewer.id):
        return None
    return (
        f"the review is assigned to {committed!r} (not to them, a queue of theirs or a "
        "delegation in force) and the routing enforces assignment; ask the assignee or "
        "have a supervisor reassign it"
    )
