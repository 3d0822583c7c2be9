"""Unit tests of `_coordination.sla`: deadlines, and resolving overdue reviews exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hitl_compliance import AlreadyDecidedError, InvalidInputError, RuleResult
from hitl_compliance._coordination import sla, turns
from hitl_compliance._coordination.context import Context
from hitl_compliance.models import ReviewRecord
from tests.helpers import CLEAN, RISKY, SCRIPT, FakeClock
from tests.unit.conftest import ContextFactory

HOUR = timedelta(hours=1)


def finding(rule: str, severity: Any = "medium") -> RuleResult:
    return RuleResult(rule=rule, verdict="review", reason="r", severity=severity)


async def overdue(ctx: Context, clock: FakeClock, thread_id: str = "t") -> ReviewRecord:
    await turns.process(ctx, thread_id, RISKY, requested_by=None, fields={})
    review = await ctx.reviews.get_review(thread_id)
    assert review is not None
    clock.advance(hours=2)
    return review


class TestSlaFor:
    def test_shortest_applies(self, context_factory: ContextFactory) -> None:
        """The deadline uses the shortest of `sla` and the rule's or severity's SLA."""
        ctx = context_factory(sla=4 * HOUR, sla_by={"advice": 2 * HOUR, "high": HOUR})
        assert sla.sla_for(ctx, []) == 4 * HOUR
        assert sla.sla_for(ctx, [finding("advice")]) == 2 * HOUR
        assert sla.sla_for(ctx, [finding("advice"), finding("x", "high")]) == HOUR

    def test_no_sla(self, ctx: Context) -> None:
        """Without any SLA a review has no deadline."""
        assert sla.sla_for(ctx, [finding("advice")]) is None


class TestExpire:
    async def test_reject_by_default(
        self, context_factory: ContextFactory, clock: FakeClock
    ) -> None:
        """An overdue review is rejected by the SLA actor, forced, and only once."""
        ctx = context_factory(sla=HOUR)
        await overdue(ctx, clock)
        (out,) = await sla.expire_overdue(ctx)
        assert (out.status, out.reviewer) == ("rejected", sla.SLA_ACTOR)
        (row,) = [r for r in await ctx.reviews.audit_log("t") if r.event == "expired"]
        assert (row.payload["forced"], row.payload["action"]) == (True, "reject")
        assert await sla.expire_overdue(ctx) == []

    async def test_approve_draft(self, context_factory: ContextFactory, clock: FakeClock) -> None:
        """`approve_draft` delivers the draft as a system decision."""
        ctx = context_factory(sla=HOUR, on_timeout="approve_draft")
        await overdue(ctx, clock)
        (out,) = await sla.expire_overdue(ctx)
        assert (out.status, out.agent_response) == ("completed", SCRIPT[RISKY])

    async def test_not_yet_due_is_left(
        self, context_factory: ContextFactory, clock: FakeClock
    ) -> None:
        """A review within its SLA, or a delivered turn, is not touched."""
        ctx = context_factory(sla=3 * HOUR)
        await overdue(ctx, clock)
        await turns.process(ctx, "clean", CLEAN, requested_by=None, fields={})
        assert await sla.expire_overdue(ctx) == []

    async def test_as_of_stamps_the_completion(
        self, context_factory: ContextFactory, clock: FakeClock
    ) -> None:
        """A sweep as of an explicit time stamps its audit rows with that time."""
        ctx = context_factory(sla=HOUR)
        await overdue(ctx, clock)
        at = clock.now + HOUR
        await sla.expire_overdue(ctx, at)
        (row,) = [r for r in await ctx.reviews.audit_log("t") if r.event == "expired"]
        assert row.at == at

    async def test_escalate(self, context_factory: ContextFactory, clock: FakeClock) -> None:
        """`escalate` keeps the review pending with priority raised and a new deadline."""
        ctx = context_factory(sla=HOUR, on_timeout="escalate")
        review = await overdue(ctx, clock)
        now = ctx.now()
        (out,) = await sla.expire_overdue(ctx)
        assert out.status == "paused"
        row = await ctx.reviews.get_review("t")
        assert row is not None
        assert (row.priority, row.deadline) == (review.priority + 1, now + HOUR)
        with pytest.raises(AlreadyDecidedError):  # the stale row is no longer overdue
            await sla.expire(ctx, review, now, as_of=None)


class TestSweeper:
    async def test_bad_interval(self, ctx: Context) -> None:
        """An interval that is not a positive finite number fails before the first sweep."""
        with pytest.raises(InvalidInputError):
            await sla.run_sla_sweeper(ctx, float("nan"))

    async def test_a_failed_sweep_does_not_stop_it(
        self, ctx: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A sweep that raises is logged and the next sweep still runs."""
        sweeps: list[int] = []
        third = asyncio.Event()

        async def flaky(ctx: Context, now: Any = None) -> list[Any]:
            sweeps.append(1)
            if len(sweeps) == 1:
                raise ConnectionError("store down")
            if len(sweeps) == 3:
                third.set()
            return []

        monkeypatch.setattr(sla, "expire_overdue", flaky)
        task = asyncio.create_task(sla.run_sla_sweeper(ctx, 0.001))
        await asyncio.wait_for(third.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(sweeps) >= 3
