"""Unit tests of `_coordination.recovery`: finishing the claims and turns a crash left."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hitl_compliance._coordination import decisions, recovery, turns
from hitl_compliance._coordination.context import Context, config_for, run
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from tests.helpers import RISKY, SCRIPT, FakeClock


async def events(ctx: Context, thread_id: str = "t") -> list[str]:
    return [r.event for r in await ctx.reviews.audit_log(thread_id) if r.event != REPLIED]


async def abandon_claim(ctx: Context) -> None:
    """Pause the thread and claim its review as a process that then died."""
    await turns.process(ctx, "t", RISKY, requested_by=None, fields={})
    review = await ctx.reviews.get_review("t")
    assert review is not None
    made = decisions.decision(ctx, approved=True, reviewer="alice", metadata=None)
    await ctx.reviews.claim(
        "t",
        claim_id=uuid.uuid4().hex,
        reviewer="alice",
        decision=made.to_state(),
        now=made.decided_at,
        review_id=review.review_id,
    )


class TestAbandonedClaims:
    async def test_claim_older_than_the_lease_is_finished(
        self, ctx: Context, clock: FakeClock
    ) -> None:
        """A claim past the lease is taken over, audited, driven to its outcome and recorded."""
        await abandon_claim(ctx)
        clock.advance(seconds=31)
        (out,) = await recovery.recover(ctx)
        assert (out.status, out.reviewer, out.agent_response) == (
            "completed",
            "alice",
            SCRIPT[RISKY],
        )
        assert await events(ctx) == ["paused", "recovered", "approved"]
        (row,) = [r for r in await ctx.reviews.audit_log("t") if r.event == "recovered"]
        assert (row.actor, row.payload) == (
            recovery.RECOVER_ACTOR,
            {"recovered": "claim", "abandoned_by": "alice"},
        )

    async def test_a_live_claim_is_left(self, ctx: Context, clock: FakeClock) -> None:
        """A claim younger than the lease belongs to a decider still running."""
        await abandon_claim(ctx)
        clock.advance(seconds=29)
        assert await recovery.recover(ctx) == []
        assert await events(ctx) == ["paused"]


class TestStaleTurns:
    async def test_turn_dead_before_any_checkpoint_is_ended(
        self, ctx: Context, clock: FakeClock
    ) -> None:
        """A turn that died before its first checkpoint is ended, with nothing recorded."""
        await ctx.reviews.begin_turn("t", owner="dead", now=ctx.now())
        clock.advance(minutes=1)
        assert await recovery.recover(ctx) == []
        assert await events(ctx) == []
        assert await ctx.reviews.stale_turns(started_before=ctx.now()) == []

    async def test_paused_turn_without_a_review_gets_one(
        self, ctx: Context, clock: FakeClock
    ) -> None:
        """A turn that paused but died before opening its review is made pending."""
        await ctx.reviews.begin_turn("t", owner="dead", now=ctx.now())
        await run(ctx, {"customer_message": RISKY, "requested_by": None}, "t")
        clock.advance(minutes=1)
        (out,) = await recovery.recover(ctx)
        assert out.status == "paused"
        review = await ctx.reviews.get_review("t")
        assert review is not None
        assert review.review_id == out.review_id
        assert await events(ctx) == ["recovered", "paused"]
        snap = await ctx.graph.aget_state(config_for("t"))
        assert review.checkpoint_id == snap.config["configurable"]["checkpoint_id"]


async def test_audit_recovery_row(ctx: Context) -> None:
    """audit_recovery appends a `recovered` row by the recovery actor."""
    await recovery.audit_recovery(ctx, "t", None, None, {"recovered": "turn"})
    (row,) = await ctx.reviews.audit_log("t")
    assert (row.event, row.actor, row.payload) == (
        "recovered",
        "system:recover",
        {"recovered": "turn"},
    )
    assert timedelta(0) <= ctx.now() - row.at
