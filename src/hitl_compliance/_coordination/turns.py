"""A turn: `process` validates the input, runs the graph, then opens a review or ends the turn.

The store's turn row (`begin_turn` / `end_turn`) keeps one turn per thread
at a time across processes; a turn that pauses hands the row over to the
review it opens, in one store call, so the thread is never both free and
paused. The run's own checkpoint stream says where it stopped
([`run`][hitl_compliance._coordination.context.run]), so a turn reads no
checkpoint back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from hitl_compliance._coordination import assigning, hooks, reviews, sla
from hitl_compliance._coordination.context import (
    Context,
    Position,
    check_thread_id,
    position,
    result,
    run,
)
from hitl_compliance._coordination.driver import RESERVED, each_pause
from hitl_compliance.assignment import DELEGATION_THREAD
from hitl_compliance.errors import HitlError, InvalidInputError
from hitl_compliance.models import ProcessResult, ReviewRecord
from hitl_compliance.stops import STOP_THREAD

__all__ = ["RESERVED", "process", "settle_turn", "turn_input"]

logger = logging.getLogger("hitl_compliance")

LEDGER_THREADS = frozenset({STOP_THREAD, DELEGATION_THREAD})
"""Audit-ledger threads the library writes itself; no conversation may use their ids."""


async def process(
    ctx: Context,
    thread_id: str,
    message: str | Mapping[str, Any],
    *,
    requested_by: str | None,
    fields: Mapping[str, Any],
) -> ProcessResult:
    """Run one turn: begin it, run the graph, settle it (contract: `HitlCoordinator.process`)."""
    check_thread_id(thread_id)
    if thread_id in LEDGER_THREADS:
        raise InvalidInputError(
            f"Thread id {thread_id!r} is the library's own ledger thread (the stop switch's "
            "or the delegations' rows): give the conversation another id.",
            thread_id=thread_id,
        )
    values = turn_input(ctx, message, requested_by, fields, thread_id=thread_id)
    owner = uuid.uuid4().hex
    await ctx.reviews.begin_turn(thread_id, owner=owner, now=ctx.now())
    try:
        pos = await run(ctx, values, thread_id)
    except BaseException as exc:
        # The run raised (drafter error, cancellation): nothing paused, so free the thread.
        await ctx.reviews.end_turn(thread_id, owner=owner)
        if isinstance(exc, HitlError) and exc.thread_id is None:
            exc.thread_id = thread_id
        raise
    return await settle_turn(ctx, thread_id, owner, pos)


def turn_input(
    ctx: Context,
    message: str | Mapping[str, Any],
    requested_by: str | None,
    fields: Mapping[str, Any],
    *,
    thread_id: str | None = None,
) -> Any:
    """The graph input of a turn, validated (and, for a pydantic schema, coerced).

    Raises:
        InputTooLargeError: the message or metadata exceeds `ctx.limits`.
        InvalidInputError: a bad message or requester, an unknown or reserved
            field, or a value no checkpoint could keep; nothing was written.
    """
    limits = ctx.limits
    given = message if isinstance(message, Mapping) else {"customer_message": message}
    limits.check_text("message", given.get("customer_message"), thread_id=thread_id)
    limits.check_text("requested_by", requested_by, thread_id=thread_id)
    for source in (given, fields):
        limits.check_json("metadata", source.get("metadata"), thread_id=thread_id)
    return ctx.driver.turn_input(message, requested_by, fields)


async def _open(ctx: Context, thread_id: str, owner: str | None, pos: Position) -> ReviewRecord:
    """Open the review of the pause `pos` shows (idempotent per pause)."""
    state = pos.state
    findings = state.rule_results
    requested_at = ctx.now()
    quorum = reviews.quorum(ctx, findings)
    due = sla.sla_for(ctx, findings)
    review = ReviewRecord(
        review_id=ctx.driver.review_id(pos) or uuid.uuid4().hex,
        thread_id=thread_id,
        checkpoint_id=pos.review_checkpoint,
        status="pending",
        customer_message=state.customer_message,
        draft_response=state.draft_response or "",
        violations=findings,
        requested_at=requested_at,
        requested_by=state.requested_by,
        approvals_required=quorum,
        deadline=None if due is None else requested_at + due,
    )
    review = await ctx.reviews.open_review(review, owner=owner)
    await assigning.route(ctx, review)
    logger.info("thread %s paused for review %s", thread_id, review.review_id)
    return review


async def settle_turn(
    ctx: Context, thread_id: str, owner: str | None, ran: Position | None = None
) -> ProcessResult:
    """After a run: open a review if the graph paused, else end the turn.

    `owner` is the turn row's owner (None when no turn row is held); `ran`
    is where the run stopped, if its stream said so (else the snapshot is read).
    """
    pos = await position(ctx, thread_id, ran)
    if pos.paused:
        # One review per waiting pause: the flagged calls of one message wait in
        # parallel, each decided on its own (the store opens them as one pause's).
        # Only the last ends the turn, so a crash before it leaves the turn row for
        # recover(), which opens the rest (opening is idempotent per pause).
        waiting = each_pause(pos)
        opened = [
            await _open(ctx, thread_id, owner if i == len(waiting) - 1 else None, each)
            for i, each in enumerate(waiting)
        ]
        await hooks.dispatch(ctx, thread_id)
        return result(thread_id, pos, review_id=opened[0].review_id)
    if owner is not None:
        await ctx.reviews.end_turn(thread_id, owner=owner)
    if pos.next:
        raise HitlError(
            f"Thread {thread_id!r} stopped before {list(pos.next)} without a compliance "
            "pause (another interrupt of the graph?); HitlCoordinator drives only the "
            "pauses of build_compliance_graph() graphs and compliance_gate() nodes.",
            thread_id=thread_id,
        )
    return result(thread_id, pos)
