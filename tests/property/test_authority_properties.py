"""Property tests of reviewer authority over generated reviewers, roles, rules and actions."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    HitlError,
    KeywordRule,
    Reviewer,
    RoleBasedPolicy,
    RuleResult,
    build_compliance_graph,
)

WORDS = ["alpha", "beta", "gamma", "delta", "hello"]
ROLES = ["a", "b", "c"]
SEVERITIES = ["low", "medium", "high", "critical"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A rule set, a role-based policy, a draft, a requester and a sequence of decisions."""
    triggers = draw(st.lists(st.sampled_from(WORDS[:4]), min_size=1, max_size=4, unique=True))
    rules = [
        KeywordRule(
            f"r_{word}",
            [word],
            verdict=draw(st.sampled_from(["review", "review", "block"])),
            severity=draw(st.sampled_from(SEVERITIES)),
        )
        for word in triggers
    ]
    policy = RoleBasedPolicy(
        rule_roles={
            r.name: draw(st.sets(st.sampled_from(ROLES), min_size=1))
            for r in rules
            if draw(st.booleans())
        },
        severity_roles={
            s: draw(st.sets(st.sampled_from(ROLES), min_size=1))
            for s in SEVERITIES
            if draw(st.booleans())
        },
        quorum={s: draw(st.integers(1, 3)) for s in SEVERITIES if draw(st.booleans())},
    )
    reviewers = [
        Reviewer(f"rev{i}", roles=frozenset(draw(st.sets(st.sampled_from(ROLES)))))
        for i in range(4)
    ]
    actions = draw(
        st.lists(
            st.tuples(
                st.sampled_from(reviewers),
                st.sampled_from(["approve", "approve", "edit", "reject"]),
                st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
            ),
            max_size=6,
        )
    )
    return {
        "rules": rules,
        "policy": policy,
        "draft": " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))),
        "requester": draw(st.sampled_from([None, "rev0", "rev1"])),
        "actions": actions,
        "reviewers": {r.id: r for r in reviewers},
    }


def findings_of(rules: list[KeywordRule], text: str) -> list[RuleResult]:
    """Non-pass results of `rules` on `text`."""
    state = ComplianceState(draft_response=text)
    return [r for r in (rule.evaluate(state) for rule in rules) if r.verdict != "pass"]


async def run(scn: dict[str, Any]) -> None:
    rules, policy = scn["rules"], scn["policy"]
    graph = build_compliance_graph(
        lambda state: scn["draft"], rules=rules, checkpointer=InMemorySaver()
    )
    coord = HitlCoordinator(graph, policy=policy)
    first = await coord.process("t", "q", requested_by=scn["requester"])
    for reviewer, action, text in scn["actions"]:
        try:
            if action == "reject":
                await coord.reject("t", reviewer=reviewer)
            else:
                await coord.approve(
                    "t", reviewer=reviewer, response=text if action == "edit" else None
                )
        except HitlError:
            pass
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    original = findings_of(rules, scn["draft"])
    if state.get("agent_type") == "llm":
        assert not original, "a flagged draft was delivered without a human"
    if state.get("is_compliant") and state.get("agent_type") == "human_admin":
        delivered = state["agent_response"]
        covered = original + findings_of(rules, delivered)
        assert not [f for f in findings_of(rules, delivered) if f.verdict == "block"]
        decision = state["decision"]
        approvers = decision["approvers"]
        assert len(approvers) == len(set(approvers)), "a vote counted twice"
        assert len(approvers) >= policy.approvals_required(covered)
        for approver in approvers:
            assert approver != scn["requester"]
            assert policy.authorize(scn["reviewers"][approver], covered).allowed
    log = await coord.audit_log("t")
    votes = [a.actor for a in log if a.event in ("voted", "approved")]
    assert len(votes) == len(set(votes)), "the same reviewer counted twice"
    assert sum(a.event in ("approved", "rejected") for a in log) <= 1
    assert first.status in ("paused", "completed", "rejected")


@given(scenarios())
def test_authority_invariants(scn: dict[str, Any]) -> None:
    """Never a delivery without an authorised quorum, never a block finding delivered,
    never one reviewer counted twice."""
    asyncio.run(run(scn))
