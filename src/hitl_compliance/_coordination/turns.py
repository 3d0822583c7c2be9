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

from pydantic import ValidationError

from hitl_compliance import _validate
from hitl_compliance._coordination import hooks, reviews, sla
from hitl_compliance._coordination.context import (
    Context,
    Position,
    check_thread_id,
    position,
    result,
    run,
)
from hitl_compliance.errors import HitlError, InvalidInputError
from hitl_compliance.graph import TURN_FIELDS
from hitl_compliance.models import ProcessResult, ReviewRecord

__all__ = ["RESERVED", "process", "settle_turn", "turn_input"]

logger = logging.getLogger("hitl_compliance")

RESERVED = frozenset({*TURN_FIELDS, "customer_message", "requested_by", "turn"})
"""State fields the library sets on every turn, never `process(**fields)`."""


async def process(
    ctx: Context,
    thread_id: str,
    message: str,
    *,
    requested_by: str | None,
    fields: Mapping[str, Any],
) -> ProcessResult:
    """Run one turn: begin it, run the graph, settle it (contract: `HitlCoordinator.process`)."""
    check_thread_id(thread_id)
    values = turn_input(ctx, message, requested_by, fields)
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
    ctx: Context, message: str, requested_by: str | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The graph input of a turn, validated and coerced by the state schema.

    Raises:
        InvalidInputError: a bad message or requester, an unknown or reserved
            field, or a value no checkpoint could keep; nothing was written.
    """
    _validate.text("message", message)
    if requested_by is not None:
        _validate.text("requested_by", requested_by)
    schema = ctx.spec.state_schema
    if fields:
        unknown = fields.keys() - schema.model_fields.keys()
        if unknown:
            raise InvalidInputError(
                f"Unknown state fields {sorted(unknown)} for {schema.__name__}; "
                "add them to your state_schema subclass."
            )
        clash = fields.keys() & RESERVED
        if clash:
            raise InvalidInputError(f"Fields {sorted(clash)} are set by the library.")
        if "metadata" in fields:
            # Refused exactly as a decision's metadata is: LangGraph would checkpoint
            # NaN or NUL as given and fail only later, in a store or the serializer.
            fields = {**fields, "metadata": _validate.json_metadata(fields["metadata"])}
    # The previous turn's draft, findings and decision are cleared by the `draft`
    # node, only where set (a first turn writes no resets to its checkpoints).
    values: dict[str, Any] = {
        "customer_message": message,
        "requested_by": requested_by,
        **fields,
    }
    try:
        # LangGraph does not validate input against a pydantic schema before
        # checkpointing it; validate here so bad input changes nothing, and send
        # the validated (coerced) values rather than the raw ones.
        validated = schema.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(f"Invalid input for this graph: {exc}") from exc
    dumped = validated.model_dump(include=set(values))
    for name in fields:
        try:
            _validate.check_storable(dumped[name])
        except ValueError as exc:
            raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
    return dumped


async def settle_turn(
    ctx: Context, thread_id: str, owner: str | None, ran: Position | None = None
) -> ProcessResult:
    """After a run: open a review if the graph paused, else end the turn.

    `owner` is the turn row's owner (None when no turn row is held); `ran`
    is where the run stopped, if its stream said so (else the snapshot is read).
    """
    pos = await position(ctx, thread_id, ran)
    if pos.paused:
        state = pos.state
        findings = state.rule_results
        requested_at = ctx.now()
        quorum = reviews.quorum(ctx, findings)
        due = sla.sla_for(ctx, findings)
        review = ReviewRecord(
            review_id=uuid.uuid4().hex,
            thread_id=thread_id,
            checkpoint_id=pos.checkpoint_id,
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
        logger.info("thread %s paused for review %s", thread_id, review.review_id)
        await hooks.dispatch(ctx, thread_id)
        return result(thread_id, pos, review_id=review.review_id)
    if owner is not None:
        await ctx.reviews.end_turn(thread_id, owner=owner)
    return result(thread_id, pos)
