"""Property tests of the library's promises, over generated drafts, rules and decisions.

* Both pause styles give the same outcome for the same story.
* No draft with a review or block finding reaches the customer without a human.
* The drafter runs exactly once per turn, across process and decision.

Hypothesis drives sync test functions; each example runs its async story in a
fresh event loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    PauseStyle,
    ProcessResult,
    build_compliance_graph,
)
from hitl_compliance.rules import worst_verdict
from tests.helpers import FakeClock, ScriptedDrafter, config_for
from tests.strategies import BuiltinRule, HumanDecision, Scenario, rule_sets, scenarios

REJECTION = "A compliance officer will contact you."
THREADS = ("a", "b")


@dataclass
class Turn:
    """What happened in one turn of a story."""

    thread_id: str
    scenario: Scenario
    first: ProcessResult
    decided: ProcessResult | None
    audit_events: list[str]  # the events this turn added


@dataclass
class Story:
    """A run of several turns on a few threads in one pause style."""

    turns: list[Turn]
    final_values: dict[str, dict[str, Any]]
    drafter: ScriptedDrafter


async def decide(coord: HitlCoordinator, thread_id: str, decision: HumanDecision) -> ProcessResult:
    """Apply a generated decision through the public API."""
    if decision.kind == "reject":
        return await coord.reject(thread_id, reviewer=decision.reviewer, reason=decision.reason)
    return await coord.approve(thread_id, reviewer=decision.reviewer, response=decision.response)


async def tell(
    style: PauseStyle,
    rules: list[BuiltinRule],
    plot: list[tuple[str, Scenario]],
    rejection_message: str | None,
) -> Story:
    """Run each (thread, scenario) turn in order; decide every pause at once."""
    drafter = ScriptedDrafter({f"m{i}": s.draft for i, (_, s) in enumerate(plot)})
    graph = build_compliance_graph(
        drafter,
        rules=rules,
        checkpointer=InMemorySaver(),
        style=style,
        rejection_message=rejection_message,
    )
    coord = HitlCoordinator(graph, clock=FakeClock())
    turns: list[Turn] = []
    for index, (thread_id, scenario) in enumerate(plot):
        seen = len(await coord.audit_log(thread_id))
        first = await coord.process(thread_id, f"m{index}")
        decided = None
        if first.awaiting_approval:
            decided = await decide(coord, thread_id, scenario.decision)
        audit = [r.event for r in (await coord.audit_log(thread_id))[seen:]]
        turns.append(Turn(thread_id, scenario, first, decided, audit))
    assert await coord.pending() == []
    final = {t: (await graph.aget_state(config_for(t))).values for t in {t for t, _ in plot}}
    return Story(turns, final, drafter)


def comparable(result: ProcessResult | None) -> dict[str, Any] | None:
    """A result without the ids that legitimately differ between runs."""
    if result is None:
        return None
    return result.model_dump(exclude={"checkpoint_id", "review_id"})


plots = st.lists(st.tuples(st.sampled_from(THREADS), scenarios()), min_size=1, max_size=4)


@given(rules=rule_sets(), plot=plots, rejection_message=st.sampled_from([None, REJECTION]))
def test_styles_equivalent(
    rules: list[BuiltinRule],
    plot: list[tuple[str, Scenario]],
    rejection_message: str | None,
) -> None:
    """interrupt_before and command_resume give equal results and equal final state."""

    async def both() -> tuple[Story, Story]:
        static = await tell("interrupt_before", rules, plot, rejection_message)
        dynamic = await tell("command_resume", rules, plot, rejection_message)
        return static, dynamic

    static, dynamic = asyncio.run(both())
    for s_turn, d_turn in zip(static.turns, dynamic.turns, strict=True):
        assert comparable(s_turn.first) == comparable(d_turn.first)
        assert comparable(s_turn.decided) == comparable(d_turn.decided)
        assert s_turn.audit_events == d_turn.audit_events
    assert static.final_values == dynamic.final_values


@given(rules=rule_sets(), plot=plots, rejection_message=st.sampled_from([None, REJECTION]))
def test_no_flagged_draft_without_human(
    rules: list[BuiltinRule],
    plot: list[tuple[str, Scenario]],
    rejection_message: str | None,
) -> None:
    """A draft with a review/block finding is never delivered unless a human approved it."""
    for style in ("interrupt_before", "command_resume"):
        story = asyncio.run(tell(style, rules, plot, rejection_message))
        for turn in story.turns:
            findings = [
                r.evaluate(ComplianceState(draft_response=turn.scenario.draft)) for r in rules
            ]
            worst = worst_verdict(findings)
            first, decided = turn.first, turn.decided
            assert [v.verdict for v in first.violations] == [
                f.verdict for f in findings if f.verdict != "pass"
            ]
            if worst == "pass":
                assert (first.status, first.agent_type) == ("completed", "llm")
                assert first.agent_response == turn.scenario.draft
                assert decided is None
                assert turn.audit_events == []
            elif worst == "block":
                assert (first.status, first.agent_type) == ("rejected", "system")
                assert first.agent_response == rejection_message
                assert decided is None
                assert turn.audit_events == []
            else:
                assert (first.status, first.agent_response, first.agent_type) == (
                    "paused",
                    None,
                    None,
                )
                assert decided is not None
                decision = turn.scenario.decision
                assert decided.agent_type == "human_admin"
                assert decided.reviewer == decision.reviewer
                assert turn.audit_events == [
                    "paused",
                    "rejected" if decision.kind == "reject" else "approved",
                ]
                if decision.kind == "approve":
                    assert decided.agent_response == turn.scenario.draft
                elif decision.kind == "edit":
                    assert decided.agent_response == decision.response
                else:
                    assert decided.agent_response == rejection_message
            final = decided or first
            assert (final.agent_type == "llm") == (not first.violations)


@given(rules=rule_sets(), plot=plots)
def test_drafter_once_per_turn(rules: list[BuiltinRule], plot: list[tuple[str, Scenario]]) -> None:
    """The drafter runs exactly once per turn, whatever the findings and decisions."""
    for style in ("interrupt_before", "command_resume"):
        story = asyncio.run(tell(style, rules, plot, None))
        assert story.drafter.counts == {f"m{i}": 1 for i in range(len(plot))}
        for thread_id in {t for t, _ in plot}:
            turns = sum(1 for t, _ in plot if t == thread_id)
            assert story.final_values[thread_id]["turn"] == turns
