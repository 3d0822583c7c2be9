"""Unit tests of `_coordination.decisions`: validate, claim, resume to the outcome, record."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hitl_compliance import (
    HitlError,
    InvalidDecisionError,
    NotAuthorizedError,
    PolicyViolationError,
    Reviewer,
    RoleBasedPolicy,
)
from hitl_compliance._coordination import decisions, turns
from hitl_compliance._coordination.context import Context, Position, config_for
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.models import ReviewRecord, Vote, sha256_text
from hitl_compliance.state import Decision
from tests.helpers import RISKY, SCRIPT, FakeClock
from tests.unit.conftest import ContextFactory

EDIT = "Please speak to an adviser before investing."


async def paused(ctx: Context) -> ReviewRecord:
    await turns.process(ctx, "t", RISKY, requested_by="agent", fields={})
    review = await ctx.reviews.get_review("t")
    assert review is not None
    return review


async def claimed(ctx: Context, review: ReviewRecord, made: Decision) -> tuple[ReviewRecord, str]:
    claim_id = uuid.uuid4().hex
    row = await ctx.reviews.claim(
        "t",
        claim_id=claim_id,
        reviewer=made.reviewer,
        decision=made.to_state(),
        now=made.decided_at,
        review_id=review.review_id,
    )
    return row, claim_id


async def events(ctx: Context) -> list[str]:
    return [r.event for r in await ctx.reviews.audit_log("t") if r.event != REPLIED]


class TestApprove:
    async def test_delivers_the_draft(self, ctx: Context) -> None:
        """An approval resumes the graph to delivery and records who approved what."""
        await paused(ctx)
        out = await decisions.approve(
            ctx, "t", reviewer="alice", response=None, metadata={"ticket": 1}, expected=None
        )
        assert (out.status, out.agent_response, out.reviewer) == (
            "completed",
            SCRIPT[RISKY],
            "alice",
        )
        (row,) = [r for r in await ctx.reviews.audit_log("t") if r.event == "approved"]
        assert (row.actor, row.payload["delivered"]) == ("alice", SCRIPT[RISKY])
        assert "diff" not in row.payload

    async def test_edit_is_delivered_with_a_diff(self, ctx: Context) -> None:
        """An edited reply passes the rules, is delivered, and its diff is recorded."""
        await paused(ctx)
        out = await decisions.approve(
            ctx, "t", reviewer="alice", response=EDIT, metadata=None, expected=None
        )
        assert out.agent_response == EDIT
        (row,) = [r for r in await ctx.reviews.audit_log("t") if r.event == "approved"]
        assert EDIT in row.payload["diff"]

    async def test_blocked_edit_changes_nothing(self, ctx: Context) -> None:
        """An edit breaking a block rule is refused; the review stays pending."""
        review = await paused(ctx)
        with pytest.raises(PolicyViolationError):
            await decisions.approve(
                ctx, "t", reviewer="alice", response="SSN 123-45-6789", metadata=None, expected=None
            )
        assert await ctx.reviews.get_review("t") == review
        assert await events(ctx) == ["paused"]

    async def test_vote_below_quorum_stays_paused(self, context_factory: ContextFactory) -> None:
        """Below quorum an approval is a vote: the result stays paused, the graph does not move."""
        ctx = context_factory(policy=RoleBasedPolicy(quorum={"medium": 2}))
        review = await paused(ctx)
        out = await decisions.approve(
            ctx, "t", reviewer="alice", response=None, metadata=None, expected=None
        )
        assert (out.status, out.approvals_required, len(out.votes)) == ("paused", 2, 1)
        assert (await ctx.graph.aget_state(config_for("t"))).next == ("human_approval",)
        done = await decisions.approve(
            ctx, "t", reviewer="bob", response=None, metadata=None, expected=review.checkpoint_id
        )
        assert done.status == "completed"


class TestDeny:
    async def test_requester_refused_and_audited(self, ctx: Context) -> None:
        """A refused reviewer gets NotAuthorizedError and a `denied` audit row, nothing else."""
        await paused(ctx)
        with pytest.raises(NotAuthorizedError) as info:
            await decisions.approve(
                ctx, "t", reviewer="agent", response=None, metadata=None, expected=None
            )
        assert info.value.reviewer == "agent"
        assert await events(ctx) == ["paused", "denied"]
        review = await ctx.reviews.get_review("t")
        assert review is not None
        assert review.status == "pending"

    async def test_reject_checks_the_policy(self, context_factory: ContextFactory) -> None:
        """A rejection by someone without the findings' roles is denied with the missing roles."""
        ctx = context_factory(policy=RoleBasedPolicy(rule_roles={"guarantee": "approver"}))
        await paused(ctx)
        with pytest.raises(NotAuthorizedError) as info:
            await decisions.reject(
                ctx, "t", reviewer="junior", reason="no", metadata=None, expected=None
            )
        assert info.value.missing_roles == frozenset({"approver"})
        out = await decisions.reject(
            ctx,
            "t",
            reviewer=Reviewer("boss", roles=frozenset({"approver"})),
            reason="no",
            metadata=None,
            expected=None,
        )
        assert out.status == "rejected"


class TestDecisionValue:
    def test_stamped_by_the_clock(self, ctx: Context, clock: FakeClock) -> None:
        """A decision carries the clock's time and validated metadata."""
        made = decisions.decision(ctx, approved=True, reviewer="a", metadata={"k": 1})
        assert (made.decided_at, made.metadata) == (clock.now, {"k": 1})

    def test_bad_metadata(self, ctx: Context) -> None:
        """Metadata no store can keep is InvalidDecisionError before anything is claimed."""
        with pytest.raises(InvalidDecisionError):
            decisions.decision(ctx, approved=True, reviewer="a", metadata={"k": float("inf")})

    async def test_final_decision_names_the_approvers(self, ctx: Context) -> None:
        """The final decision lists every voter whose approved text it delivers."""
        review = await paused(ctx)
        made = decisions.decision(ctx, approved=True, reviewer="bob", metadata=None)
        made = made.model_copy(update={"text_sha256": sha256_text("x")})

        def vote(who: str, text: str) -> Vote:
            return Vote(
                reviewer=who, reviewer_key=who, at=made.decided_at, text_sha256=sha256_text(text)
            )

        row = review.model_copy(
            update={"decision": made.to_state(), "votes": [vote("alice", "x"), vote("carol", "y")]}
        )
        assert decisions.final_decision(row).approvers == ["alice"]
        with pytest.raises(HitlError, match="no decision"):
            decisions.final_decision(review)


class TestResume:
    async def test_failure_before_the_graph_moved_releases(
        self, ctx: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A resume failing with the graph still at the pause releases the claim."""
        await paused(ctx)

        async def lost(*args: Any) -> Any:
            raise ConnectionError("checkpointer down")

        monkeypatch.setattr(decisions, "resume", lost)
        with pytest.raises(ConnectionError):
            await decisions.reject(
                ctx, "t", reviewer="bob", reason="", metadata=None, expected=None
            )
        row = await ctx.reviews.get_review("t")
        assert row is not None
        assert row.status == "pending"

    async def test_drive_finishes_a_claim(self, ctx: Context) -> None:
        """drive() resumes a claimed decision from the paused checkpoint to its outcome."""
        review = await paused(ctx)
        made = decisions.decision(ctx, approved=False, reviewer="bob", metadata=None)
        row, claim_id = await claimed(ctx, review, made)
        pos = await decisions.drive(ctx, row, made)
        assert decisions.delivered(pos, made)
        out = await decisions.record(ctx, row, claim_id, made, pos)
        assert out.status == "rejected"
        assert await events(ctx) == ["paused", "rejected"]

    async def test_drive_refuses_a_foreign_outcome(self, ctx: Context) -> None:
        """A thread finished by another decision than the claimed one is an error, not a record."""
        review = await paused(ctx)
        made = decisions.decision(ctx, approved=True, reviewer="bob", metadata=None)
        row, _ = await claimed(ctx, review, made)
        await decisions.drive(ctx, row, made)
        other = made.model_copy(update={"reviewer": "mallory"})
        with pytest.raises(HitlError, match="outside the coordinator"):
            await decisions.drive(ctx, row, other)

    async def test_delivered_needs_the_same_decision(self, ctx: Context) -> None:
        """delivered() is false while paused and for a decision the state does not hold."""
        review = await paused(ctx)
        made = decisions.decision(ctx, approved=True, reviewer="bob", metadata=None)
        state = (await ctx.graph.aget_state(config_for("t"))).values
        assert not decisions.delivered(Position(ctx.state(state), True, review.checkpoint_id), made)
        row, _ = await claimed(ctx, review, made)
        pos = await decisions.resume(ctx, row, made)
        assert decisions.delivered(pos, made)
        assert not decisions.delivered(pos, made.model_copy(update={"approved": False}))
