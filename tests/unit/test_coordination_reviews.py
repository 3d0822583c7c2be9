"""Unit tests of `_coordination.reviews`: what waits for a decision, and who may make it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from hitl_compliance import (
    AllowAllPolicy,
    AlreadyDecidedError,
    Authorization,
    ConfigurationError,
    InvalidInputError,
    Reviewer,
    ReviewNotFoundError,
    RoleBasedPolicy,
    RuleResult,
    StaleReviewError,
)
from hitl_compliance._coordination import decisions, reviews, turns
from hitl_compliance._coordination.context import Context
from hitl_compliance.models import ReviewRecord, sha256_text
from hitl_compliance.policy import canonical_reviewer_id
from tests.helpers import RISKY, FakeClock
from tests.unit.conftest import ContextFactory

OFFICER = Reviewer("officer@bank", roles=frozenset({"approver"}))


async def paused(
    ctx: Context, thread_id: str = "t", requested_by: str | None = None
) -> ReviewRecord:
    await turns.process(ctx, thread_id, RISKY, requested_by=requested_by, fields={})
    review = await ctx.reviews.get_review(thread_id)
    assert review is not None
    return review


class OddPolicy(AllowAllPolicy):
    """A policy whose hooks return what a buggy policy might."""

    def __init__(self, *, key: Any = "same", quorum: Any = 1) -> None:
        self.key, self.required = key, quorum

    def canonical_id(self, reviewer_id: str) -> Any:
        return self.key

    def approvals_required(self, findings: Sequence[RuleResult]) -> Any:
        return self.required


class TestOpenReview:
    async def test_pending_review(self, ctx: Context) -> None:
        """The thread's pending review, accepted by its checkpoint id or its draft's sha256."""
        review = await paused(ctx)
        assert await reviews.open_review(ctx, "t", None) == review
        assert await reviews.open_review(ctx, "t", review.checkpoint_id) == review
        assert await reviews.open_review(ctx, "t", sha256_text(review.draft_response)) == review

    async def test_never_paused(self, ctx: Context) -> None:
        """A thread with no review row is ReviewNotFoundError."""
        with pytest.raises(ReviewNotFoundError):
            await reviews.open_review(ctx, "t", None)

    async def test_stale(self, ctx: Context) -> None:
        """An `expected` naming neither checkpoint nor draft is StaleReviewError."""
        review = await paused(ctx)
        with pytest.raises(StaleReviewError) as info:
            await reviews.open_review(ctx, "t", "old")
        assert info.value.actual == review.checkpoint_id

    async def test_decided(self, ctx: Context) -> None:
        """A decided review is AlreadyDecidedError carrying its status."""
        await paused(ctx)
        await decisions.reject(ctx, "t", reviewer="bob", reason="", metadata=None, expected=None)
        with pytest.raises(AlreadyDecidedError) as info:
            await reviews.open_review(ctx, "t", None)
        assert info.value.status == "rejected"


class TestAuthorization:
    async def test_four_eyes(self, ctx: Context) -> None:
        """The requester may not decide their own review, however they spell their id."""
        review = await paused(ctx, requested_by="Agent@Bank")
        auth = reviews.authorization(ctx, Reviewer("agent@bank"), review)
        assert auth == Authorization(False, "the requester of a review may not approve it")

    async def test_one_vote_each(self, context_factory: ContextFactory) -> None:
        """A reviewer who voted may not vote again."""
        ctx = context_factory(policy=RoleBasedPolicy(quorum={"medium": 2}))
        await paused(ctx)
        await decisions.approve(
            ctx, "t", reviewer="alice", response=None, metadata=None, expected=None
        )
        review = await reviews.open_review(ctx, "t", None)
        assert not reviews.authorization(ctx, Reviewer("alice"), review).allowed
        assert reviews.authorization(ctx, Reviewer("bob"), review).allowed

    async def test_policy_roles(self, context_factory: ContextFactory) -> None:
        """Otherwise the policy decides, by the roles the findings need."""
        ctx = context_factory(policy=RoleBasedPolicy(rule_roles={"guarantee": "approver"}))
        review = await paused(ctx)
        assert reviews.authorization(ctx, OFFICER, review).allowed
        denied = reviews.authorization(ctx, Reviewer("junior"), review)
        assert (denied.allowed, denied.missing_roles) == (False, frozenset({"approver"}))


class TestPolicyValues:
    def test_canonical_default_and_own(self, context_factory: ContextFactory) -> None:
        """Ids are canonicalised by the policy's canonical_id, else the library's default."""
        default = reviews.canonical(context_factory(), " Alice@Bank ")
        assert default == canonical_reviewer_id("alice@bank")
        assert reviews.canonical(context_factory(policy=OddPolicy()), "x") == "same"

    @pytest.mark.parametrize("key", ["", None, 3])
    def test_bad_canonical_id(self, context_factory: ContextFactory, key: Any) -> None:
        """A canonical_id returning no non-empty str is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="canonical_id"):
            reviews.canonical(context_factory(policy=OddPolicy(key=key)), "x")

    @pytest.mark.parametrize("required", [0, True, "2", 1.5])
    def test_bad_quorum(self, context_factory: ContextFactory, required: Any) -> None:
        """A quorum that is not an int >= 1 is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="approvals"):
            reviews.quorum(context_factory(policy=OddPolicy(quorum=required)), [])

    def test_good_quorum(self, context_factory: ContextFactory) -> None:
        """A valid quorum is returned as the policy gave it."""
        assert reviews.quorum(context_factory(policy=OddPolicy(quorum=3)), []) == 3


class TestPending:
    async def test_pages_and_cursor(self, ctx: Context, clock: FakeClock) -> None:
        """Pages follow the cursor of the last item, oldest first."""
        for name in ("a", "b", "c"):
            await paused(ctx, name)
            clock.advance(minutes=1)
        first = await reviews.pending(
            ctx, rule=None, reviewer=None, older_than=None, limit=2, cursor=None
        )
        rest = await reviews.pending(
            ctx, rule=None, reviewer=None, older_than=None, limit=2, cursor=first[-1].cursor
        )
        assert [p.thread_id for p in first + rest] == ["a", "b", "c"]

    async def test_reviewer_filter(self, ctx: Context) -> None:
        """A reviewer sees only the reviews they may decide now."""
        await paused(ctx, "mine", requested_by="alice")
        await paused(ctx, "theirs", requested_by="bob")
        listed = await reviews.pending(
            ctx, rule=None, reviewer="alice", older_than=None, limit=1, cursor=None
        )
        assert [p.thread_id for p in listed] == ["theirs"]

    def test_cursor_round_trip(self, clock: FakeClock) -> None:
        """A cursor names (requested_at, review_id); anything else is InvalidInputError."""
        assert reviews.parse_cursor(f"{clock.now.isoformat()}|r1") == (clock.now, "r1")
        assert reviews.parse_cursor(None) is None
        for bad in ("nope", "2025-01-01T00:00:00|r1", f"{clock.now.isoformat()}|"):
            with pytest.raises(InvalidInputError, match="cursor"):
                reviews.parse_cursor(bad)


class TestReviewAndMayDecide:
    async def test_review_is_the_pending_item(self, ctx: Context) -> None:
        """review() is the thread's item as pending() lists it."""
        await paused(ctx)
        listed = await reviews.pending(
            ctx, rule=None, reviewer=None, older_than=None, limit=None, cursor=None
        )
        assert [await reviews.review(ctx, "t")] == listed

    async def test_may_decide_records_nothing(self, ctx: Context) -> None:
        """may_decide() answers as approve() would, and writes no audit row."""
        await paused(ctx, requested_by="agent")
        assert not (await reviews.may_decide(ctx, "t", "agent")).allowed
        assert (await reviews.may_decide(ctx, "t", OFFICER)).allowed
        assert [r.event for r in await ctx.reviews.audit_log("t")] == ["paused"]

    async def test_thread_id_checked(self, ctx: Context) -> None:
        """An invalid thread id is refused before the store is read."""
        with pytest.raises(InvalidInputError):
            await reviews.review(ctx, "")
        with pytest.raises(InvalidInputError):
            await reviews.may_decide(ctx, "", "alice")
