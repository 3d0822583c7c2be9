"""Unit tests of `_coordination.turns`: a turn runs, then opens a review or ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hitl_compliance import InvalidInputError, RoleBasedPolicy, ThreadBusyError
from hitl_compliance._coordination import turns
from hitl_compliance._coordination.context import Context, run
from tests.helpers import CLEAN, RISKY, SCRIPT, FakeClock
from tests.unit.conftest import ContextFactory


class TestProcess:
    async def test_risky_turn_opens_a_review(
        self, context_factory: ContextFactory, clock: FakeClock
    ) -> None:
        """A paused turn opens a pending review with the policy's quorum and the SLA deadline."""
        ctx = context_factory(
            sla=timedelta(hours=4),
            sla_by={"guarantee": timedelta(hours=1)},
            policy=RoleBasedPolicy(quorum={"medium": 2}),
        )
        out = await turns.process(ctx, "t", RISKY, requested_by="agent", fields={})
        review = await ctx.reviews.get_review("t")
        assert review is not None
        assert (out.status, out.review_id) == ("paused", review.review_id)
        assert (review.status, review.approvals_required) == ("pending", 2)
        assert review.deadline == clock.now + timedelta(hours=1)
        assert (review.requested_by, review.draft_response) == ("agent", SCRIPT[RISKY])
        assert review.checkpoint_id == out.checkpoint_id
        with pytest.raises(ThreadBusyError):  # the turn row passed to the review
            await turns.process(ctx, "t", CLEAN, requested_by=None, fields={})

    async def test_clean_turn_ends(self, ctx: Context) -> None:
        """A delivered turn frees the thread for the next turn and opens no review."""
        out = await turns.process(ctx, "t", CLEAN, requested_by=None, fields={})
        assert (out.status, out.agent_response) == ("completed", SCRIPT[CLEAN])
        assert await ctx.reviews.get_review("t") is None
        again = await turns.process(ctx, "t", CLEAN, requested_by=None, fields={})
        assert again.status == "completed"

    async def test_failed_run_frees_the_thread(self, context_factory: ContextFactory) -> None:
        """A drafter that raises ends the turn, so the thread takes the next turn."""
        calls: list[str] = []

        def flaky(state: Any) -> str:
            calls.append(state.customer_message)
            if len(calls) == 1:
                raise ConnectionError("LLM down")
            return "Fine."

        ctx = context_factory(draft=flaky)
        with pytest.raises(ConnectionError):
            await turns.process(ctx, "t", CLEAN, requested_by=None, fields={})
        out = await turns.process(ctx, "t", CLEAN, requested_by=None, fields={})
        assert out.status == "completed"


class TestTurnInput:
    def test_validated_values(self, ctx: Context) -> None:
        """The input is the message and requester, coerced by the state schema."""
        assert turns.turn_input(ctx, CLEAN, "agent", {}) == {
            "customer_message": CLEAN,
            "requested_by": "agent",
        }

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"nope": 1}, "Unknown state fields"),
            ({"draft_response": "x"}, "set by the library"),
            ({"metadata": {"x": float("nan")}}, "finite"),
        ],
    )
    async def test_bad_fields_change_nothing(
        self, ctx: Context, fields: dict[str, Any], match: str
    ) -> None:
        """Unknown, reserved or unstorable fields are refused before the turn begins."""
        with pytest.raises(InvalidInputError, match=match):
            await turns.process(ctx, "t", CLEAN, requested_by=None, fields=fields)
        assert await ctx.reviews.stale_turns(started_before=ctx.now() + timedelta(days=1)) == []

    def test_reserved_covers_turn_fields(self) -> None:
        """Every field the library sets on a turn is reserved."""
        assert {"customer_message", "requested_by", "draft_response"} <= turns.RESERVED


class TestSettleTurn:
    async def test_settles_from_the_snapshot(self, ctx: Context) -> None:
        """Without the run's position, settle_turn reads the snapshot and opens the review."""
        await run(ctx, {"customer_message": RISKY, "requested_by": None}, "t")
        out = await turns.settle_turn(ctx, "t", None)
        review = await ctx.reviews.get_review("t")
        assert review is not None
        assert out.review_id == review.review_id
        assert [r.event for r in await ctx.reviews.audit_log("t")] == ["paused"]


async def test_thread_id_checked_first(ctx: Context) -> None:
    """An invalid thread id is refused before the input is validated or a turn begins."""
    with pytest.raises(InvalidInputError, match="thread"):
        await turns.process(ctx, "", "", requested_by=None, fields={"nope": 1})


@pytest.mark.parametrize("thread_id", sorted(turns.LEDGER_THREADS))
async def test_the_library_ledger_threads_are_no_conversation(ctx: Context, thread_id: str) -> None:
    """The stop switch's and the delegations' ledger threads cannot start a turn."""
    with pytest.raises(InvalidInputError, match="ledger thread"):
        await turns.process(ctx, thread_id, "hello", requested_by=None, fields={})
    assert await ctx.reviews.audit_log(thread_id) == []
    assert await ctx.reviews.get_review(thread_id) is None
