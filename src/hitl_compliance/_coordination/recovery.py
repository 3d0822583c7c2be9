"""`recover`: finish the claims and turns a crashed process left, from any process.

Only work older than the lease is taken over (atomically, by a new owner id),
so recovery never races a decider or a turn that is merely slow. A claimed
decision is driven to its outcome from wherever its checkpoints stand and
recorded; a turn that died mid-run is finished from its checkpoint (the
drafter does not run again) and settled like any turn; pending reviews
without a deadline get one from the coordinator's SLA; hook calls still owed
are retried. Each takeover is written to the audit log first.
"""

from __future__ import annotations

import uuid
from typing import Any

from hitl_compliance._coordination import decisions, hooks, integrity, sla, turns
from hitl_compliance._coordination.context import Context, checkpoint_id, config_for
from hitl_compliance._coordination.remote import missing_thread
from hitl_compliance.errors import TamperedError
from hitl_compliance.models import ProcessResult

__all__ = ["RECOVER_ACTOR", "audit_recovery", "recover"]

RECOVER_ACTOR = "system:recover"
"""The audit actor of a takeover."""


async def recover(ctx: Context) -> list[ProcessResult]:
    """Finish abandoned claims and turns (contract: `HitlCoordinator.recover`)."""
    now = ctx.now()
    cutoff = now - ctx.lease
    results: list[ProcessResult] = []
    for review in await ctx.reviews.abandoned_claims(claimed_before=cutoff):
        claim_id = uuid.uuid4().hex
        if review.claim_id is None or review.decision is None:
            continue
        try:
            # Its votes name the approvers the decision row will record.
            await integrity.check(ctx.reviews, review)
        except TamperedError:
            continue  # logged; left claimed for a person to investigate
        if not await ctx.reviews.take_over_claim(
            review.review_id, old_claim_id=review.claim_id, new_claim_id=claim_id, now=now
        ):
            continue
        await audit_recovery(
            ctx,
            review.thread_id,
            review.review_id,
            review.checkpoint_id,
            {"recovered": "claim", "abandoned_by": review.reviewer},
        )
        made = decisions.final_decision(review)
        pos = await decisions.drive(ctx, review, made)
        results.append(await decisions.record(ctx, review, claim_id, made, pos))
    for turn in await ctx.reviews.stale_turns(started_before=cutoff):
        owner = uuid.uuid4().hex
        if not await ctx.reviews.take_over_turn(
            turn.thread_id, old_owner=turn.owner, new_owner=owner, now=now
        ):
            continue
        config = config_for(turn.thread_id)
        try:
            snapshot = await ctx.graph.aget_state(config)
        except Exception as exc:
            if not missing_thread(exc):
                raise
            # A deployment's thread the dead turn never created: nothing ran.
            await ctx.reviews.end_turn(turn.thread_id, owner=owner)
            continue
        if "checkpoint_id" not in snapshot.config.get("configurable", {}):
            # Died before the graph's first checkpoint: nothing ran, nothing to finish.
            await ctx.reviews.end_turn(turn.thread_id, owner=owner)
            continue
        await audit_recovery(
            ctx, turn.thread_id, None, checkpoint_id(snapshot), {"recovered": "turn"}
        )
        pos = await ctx.driver.position(turn.thread_id)
        if pos.next and not pos.paused:
            # The run died mid-way (say, in `compliance`): finish it from its checkpoint.
            await ctx.driver.run(None, turn.thread_id)
        results.append(await turns.settle_turn(ctx, turn.thread_id, owner))
    # Pauses recorded without a deadline (by a raw run's gate) get one now.
    await sla.adopt_undated(ctx)
    await hooks.dispatch(ctx, None, created_before=cutoff)
    return results


async def audit_recovery(
    ctx: Context,
    thread_id: str,
    review_id: str | None,
    checkpoint_id: str | None,
    payload: dict[str, Any],
) -> None:
    """Append the `recovered` audit row of a takeover, before the work is finished."""
    await ctx.reviews.append_audit(
        thread_id=thread_id,
        review_id=review_id,
        checkpoint_id=checkpoint_id,
        event="recovered",
        actor=RECOVER_ACTOR,
        payload=payload,
        at=ctx.now(),
    )
