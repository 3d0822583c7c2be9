"""`review()`, `may_decide()`, `lease` and `now()`: what a reviewer UI reads before it decides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AlreadyDecidedError,
    Authorization,
    HitlCoordinator,
    Hooks,
    InMemoryReviewStore,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    ReviewNotFoundError,
    RoleBasedPolicy,
    build_compliance_graph,
)
from hitl_compliance.graph import PauseStyle
from hitl_compliance.testing import FakeClock, ScriptedDrafter

ADVICE = "You should invest: guaranteed returns."
OFFICER = Reviewer("officer@bank", roles=frozenset({"smcr_approver"}))
JUNIOR = Reviewer("junior@bank", roles=frozenset({"compliance"}))


def make(style: PauseStyle, clock: FakeClock, *, quorum: int = 1) -> HitlCoordinator:
    graph = build_compliance_graph(
        ScriptedDrafter({"q": ADVICE, "hi": "Hello."}),
        rules=[KeywordRule("advice", ["you should invest"], reason="advice")],
        checkpointer=InMemorySaver(),
        style=style,
    )
    policy = RoleBasedPolicy(rule_roles={"advice": "smcr_approver"}, quorum={"medium": quorum})
    return HitlCoordinator(graph, policy=policy, clock=clock, lease=timedelta(seconds=45))


async def test_review_is_what_pending_lists(style: PauseStyle, clock: FakeClock) -> None:
    coord = make(style, clock)
    await coord.process("t1", "q", requested_by="agent-7")
    review = await coord.review("t1")
    assert [review] == await coord.pending()
    assert review.draft_response == ADVICE
    assert [v.rule for v in review.violations] == ["advice"]


async def test_review_of_a_thread_that_never_paused_or_is_decided(
    style: PauseStyle, clock: FakeClock
) -> None:
    coord = make(style, clock)
    with pytest.raises(ReviewNotFoundError):
        await coord.review("nobody")
    assert (await coord.process("t2", "hi")).status == "completed"
    with pytest.raises(ReviewNotFoundError):
        await coord.review("t2")
    await coord.process("t1", "q")
    await coord.approve("t1", reviewer=OFFICER)
    with pytest.raises(AlreadyDecidedError):
        await coord.review("t1")
    with pytest.raises(AlreadyDecidedError):
        await coord.may_decide("t1", OFFICER)


async def test_may_decide_answers_like_approve_and_records_nothing(
    style: PauseStyle, clock: FakeClock
) -> None:
    coord = make(style, clock, quorum=2)
    await coord.process("t1", "q", requested_by="officer@bank")
    assert await coord.may_decide("t1", OFFICER) == Authorization(
        False, "the requester of a review may not approve it"
    )
    junior = await coord.may_decide("t1", JUNIOR)
    assert not junior.allowed
    assert junior.missing_roles == frozenset({"smcr_approver"})
    senior = Reviewer("senior@bank", roles=frozenset({"smcr_approver"}))
    assert (await coord.may_decide("t1", senior)).allowed
    assert [r.event for r in await coord.audit_log("t1")] == ["paused"]  # nothing recorded
    # approve() agrees with each answer.
    with pytest.raises(NotAuthorizedError):
        await coord.approve("t1", reviewer=JUNIOR)
    assert (await coord.approve("t1", reviewer=senior)).status == "paused"  # 1 of 2 votes
    voted = await coord.may_decide("t1", senior)
    assert (voted.allowed, voted.reason) == (False, "they have voted on this review already")


def test_lease_and_clock_are_public(style: PauseStyle, clock: FakeClock) -> None:
    coord = make(style, clock)
    assert coord.lease == timedelta(seconds=45)
    assert coord.now() == clock.now
    clock.now += timedelta(minutes=5)
    assert coord.now() == clock.now


def test_a_second_coordinator_dropping_hooks_on_a_shared_store_is_loud(
    style: PauseStyle, caplog: pytest.LogCaptureFixture
) -> None:
    """A store writes outbox rows for the last coordinator's hooks: loud when that drops some."""
    graph = build_compliance_graph(
        ScriptedDrafter({"q": ADVICE}), checkpointer=InMemorySaver(), style=style
    )
    store = InMemoryReviewStore()
    HitlCoordinator(graph, reviews=store, hooks=Hooks(on_decided=print))
    HitlCoordinator(graph, reviews=store, hooks=Hooks(on_decided=print, on_paused=print))
    assert "outbox" not in caplog.text  # a superset drops nothing
    HitlCoordinator(graph, reviews=store)
    assert "stops outbox rows for hooks ['on_decided', 'on_paused']" in caplog.text
    caplog.clear()
    HitlCoordinator(graph, reviews=InMemoryReviewStore())  # its own store: quiet
    assert caplog.text == ""
