"""Property: for any story of delegations, expiries, revocations and reassignments,
`pending(assigned_to=x)` lists exactly what a plain model says waits for `x`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    DELEGATION_THREAD,
    AssignmentRule,
    HitlCoordinator,
    KeywordRule,
    Reviewer,
    Routing,
    build_compliance_graph,
)
from hitl_compliance.testing import FakeClock
from tests.strategies import ASSIGNEES, assignment_stories

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BOSS = Reviewer("boss", roles=frozenset({"supervisor"}))
QUEUES = {"q": {"ann"}}
ROUTING = Routing(
    rules=[
        AssignmentRule("ann", rule="r_alpha"),
        AssignmentRule("ben", rule="r_beta"),
        AssignmentRule("queue:q", rule="r_gamma"),
    ],
    default="dan",
    queues=QUEUES,
)
MESSAGES = ["alpha", "beta", "gamma", "delta"]  # ann, ben, queue:q, dan (no rule: default)


def own(reviewer: str) -> set[str]:
    """What waits for `reviewer` itself: its id and its queues."""
    return {reviewer} | {f"queue:{q}" for q, members in QUEUES.items() if reviewer in members}


def expected(
    reviewer: str,
    assigned: dict[str, str],
    delegations: dict[str, tuple[str, datetime]],
    now: datetime,
) -> set[str]:
    """The model: threads assigned to the reviewer, its queues, or an active delegator's."""
    names = own(reviewer)
    for source, (target, until) in delegations.items():
        if target == reviewer and now < until:
            names |= own(source)
    return {t for t, a in assigned.items() if a in names}


async def replay(story: Iterable[tuple[Any, ...]]) -> None:
    clock = FakeClock(T0)
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[KeywordRule(f"r_{w}", [w]) for w in ("alpha", "beta", "gamma", "delta")],
        checkpointer=InMemorySaver(),
    )
    coord = HitlCoordinator(graph, clock=clock, routing=ROUTING)
    threads = [f"t{i}" for i in range(len(MESSAGES))]
    assigned = {"t0": "ann", "t1": "ben", "t2": "queue:q", "t3": "dan"}
    for thread, message in zip(threads, MESSAGES, strict=True):
        clock.advance(seconds=1)
        await coord.process(thread, message)
    delegations: dict[str, tuple[str, datetime]] = {}
    counts = {"delegated": 0, "delegation_revoked": 0, "reassigned": 0}
    for step in story:
        if step[0] == "delegate":
            _, source, target, hours = step
            await coord.delegate(source, target, until=clock() + timedelta(hours=hours), by=source)
            delegations[source] = (target, clock() + timedelta(hours=hours))
            counts["delegated"] += 1
        elif step[0] == "revoke":
            if await coord.revoke_delegation(step[1], by=step[1]) is not None:
                counts["delegation_revoked"] += 1
                del delegations[step[1]]
            else:
                assert step[1] not in delegations
        elif step[0] == "advance":
            clock.advance(hours=step[1])
        else:
            _, index, target = step
            await coord.reassign(threads[index], to=target, by=BOSS, reason="story")
            assigned[threads[index]] = target
            counts["reassigned"] += 1
        now = clock()
        for reviewer in ASSIGNEES:
            listed = await coord.pending(assigned_to=reviewer)
            assert {p.thread_id for p in listed} == expected(
                reviewer, assigned, delegations, now
            ), (reviewer, step)
            for item in listed:
                assert item.assigned_to == assigned[item.thread_id]
                if item.assigned_to in own(reviewer):
                    assert item.delegated_from is None
                else:
                    assert item.delegated_from is not None
                    assert item.assigned_to in own(item.delegated_from)
        active = {d.from_reviewer for d in await coord.delegations()}
        assert active == {s for s, (_, until) in delegations.items() if now < until}
    rows = await coord.reviews.audit_rows()
    for event, count in counts.items():
        assert sum(r.event == event for r in rows) == count
    assert sum(r.event == "assigned" for r in rows) == len(threads)
    assert {r.thread_id for r in rows if r.event.startswith("deleg")} <= {DELEGATION_THREAD}
    assert (await coord.verify_audit()).ok


@settings(max_examples=25)  # each example runs four turns: keep the suite fast
@given(story=assignment_stories())
def test_pending_assigned_to_matches_the_model(story: list[tuple[Any, ...]]) -> None:
    """`pending(assigned_to=x)` equals the model after every step; every change is one row."""
    asyncio.run(replay(story))
