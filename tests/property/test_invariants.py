"""Property tests of the library's promises, over generated drafts, rules and decisions.

* Both pause styles give the same outcome for the same story.
* No draft with a review or block finding reaches the customer without a human.
* The drafter runs exactly once per turn, across process and decision.

Each runs on three kinds of graph: the factory graph, a gated `MessagesState`
ReAct agent whose scripted model replies with the generated draft, and a
parent graph with that agent as a subgraph. Hypothesis drives sync test
functions; each example runs its async story in a fresh event loop with
`asyncio.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    PauseStyle,
    ProcessResult,
    build_compliance_graph,
)
from hitl_compliance.gate import DEFAULT_REJECTION, GateOutcome
from hitl_compliance.rules import worst_verdict
from tests.gate_graphs import GRAPH_KINDS, GraphKind, build_agent
from tests.helpers import FakeClock, ScriptedDrafter, config_for
from tests.strategies import BuiltinRule, HumanDecision, Scenario, rule_sets, scenarios

REJECTION = "A compliance officer will contact you."
THREADS = ("a", "b")
# The gated graphs run a third of the profile's examples (each test runs both styles
# on each graph kind); the factory graph keeps the profile's count.
GATED = settings(max_examples=max(1, settings().max_examples // 3))


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
    kind: GraphKind = "factory",
) -> Story:
    """Run each (thread, scenario) turn in order; decide every pause at once."""
    script = {f"m{i}": s.draft for i, (_, s) in enumerate(plot)}
    drafter = ScriptedDrafter(script)
    graph: Any
    if kind == "factory":
        graph = build_compliance_graph(
            drafter,
            rules=rules,
            checkpointer=InMemorySaver(),
            style=style,
            rejection_message=rejection_message,
        )
    else:
        graph = build_agent(
            kind, style, InMemorySaver(), rules, script, rejection_message=rejection_message
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
    if kind != "factory":
        final = {t: gated_values(v) for t, v in final.items()}
    return Story(turns, final, drafter)


def gated_values(values: dict[str, Any]) -> dict[str, Any]:
    """A gated graph's final state without the ids that legitimately differ between runs.

    Its messages as (type, text), and the gate's last outcome as what it found,
    decided and let through.
    """
    outcome = GateOutcome.from_state(values)
    decided = None
    if outcome is not None and outcome.decision is not None:
        made = outcome.decision
        decided = (made.approved, made.reviewer, made.response, made.reason)
    return {
        "messages": [(type(m).__name__, m.content) for m in values["messages"]],
        "outcome": None
        if outcome is None
        else (
            outcome.status,
            outcome.draft,
            outcome.delivered,
            [f.to_dict() for f in outcome.findings],
            decided,
        ),
    }


def comparable(result: ProcessResult | None) -> dict[str, Any] | None:
    """A result without the ids that legitimately differ between runs."""
    if result is None:
        return None
    return result.model_dump(exclude={"checkpoint_id", "review_id"})


plots = st.lists(st.tuples(st.sampled_from(THREADS), scenarios()), min_size=1, max_size=4)


STORIES = {
    "rules": rule_sets(),
    "plot": plots,
    "rejection_message": st.sampled_from([None, REJECTION]),
}


def run_given(body: Callable[..., None], kind: GraphKind, **strategies: Any) -> None:
    """Run `body` on `kind` as a Hypothesis test over `strategies` (fewer examples if gated).

    Each call wraps `body` anew, so the settings of one kind never leak into another.
    """
    test = given(**strategies)(body)
    if kind != "factory":
        test = GATED(test)
    test(kind=kind)


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_styles_equivalent(kind: GraphKind) -> None:
    """interrupt_before and command_resume give equal results and equal final state."""
    run_given(styles_equivalent, kind, **STORIES)


def styles_equivalent(
    kind: GraphKind,
    rules: list[BuiltinRule],
    plot: list[tuple[str, Scenario]],
    rejection_message: str | None,
) -> None:
    """interrupt_before and command_resume give equal results and equal final state."""

    async def both() -> tuple[Story, Story]:
        static = await tell("interrupt_before", rules, plot, rejection_message, kind)
        dynamic = await tell("command_resume", rules, plot, rejection_message, kind)
        return static, dynamic

    static, dynamic = asyncio.run(both())
    for s_turn, d_turn in zip(static.turns, dynamic.turns, strict=True):
        assert comparable(s_turn.first) == comparable(d_turn.first)
        assert comparable(s_turn.decided) == comparable(d_turn.decided)
        assert s_turn.audit_events == d_turn.audit_events
    assert static.final_values == dynamic.final_values


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_no_flagged_draft_without_human(kind: GraphKind) -> None:
    """A draft with a review/block finding is never delivered unless a human approved it."""
    run_given(no_flagged_draft_without_human, kind, **STORIES)


def no_flagged_draft_without_human(
    kind: GraphKind,
    rules: list[BuiltinRule],
    plot: list[tuple[str, Scenario]],
    rejection_message: str | None,
) -> None:
    """A draft with a review/block finding is never delivered unless a human approved it."""
    if kind != "factory" and rejection_message is None:
        rejection_message = DEFAULT_REJECTION  # a gate's default
    for style in ("interrupt_before", "command_resume"):
        story = asyncio.run(tell(style, rules, plot, rejection_message, kind))
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
                assert turn.audit_events == ["replied"]  # no review, but a record
            elif worst == "block":
                assert (first.status, first.agent_type) == ("rejected", "system")
                assert first.agent_response == rejection_message
                assert decided is None
                assert turn.audit_events == ["replied"]
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
                    "replied",  # written by the graph as it sends, before the outcome row
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
        for thread_id, values in story.final_values.items():
            if kind != "factory":  # what reached the customer: the thread's last AI message
                [*_, last] = [m for m in values["messages"] if m[0] == "AIMessage"]
                [*_, turn] = [t for t in story.turns if t.thread_id == thread_id]
                assert last[1] == (turn.decided or turn.first).agent_response


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_drafter_once_per_turn(kind: GraphKind) -> None:
    """The drafter (a gated graph's model) runs exactly once per turn."""
    run_given(drafter_once_per_turn, kind, rules=rule_sets(), plot=plots)


def drafter_once_per_turn(
    kind: GraphKind, rules: list[BuiltinRule], plot: list[tuple[str, Scenario]]
) -> None:
    """The drafter runs exactly once per turn, whatever the findings and decisions."""
    for style in ("interrupt_before", "command_resume"):
        story = asyncio.run(tell(style, rules, plot, None, kind))
        for thread_id in {t for t, _ in plot}:
            turns = sum(1 for t, _ in plot if t == thread_id)
            if kind == "factory":
                assert story.drafter.counts == {f"m{i}": 1 for i in range(len(plot))}
                assert story.final_values[thread_id]["turn"] == turns
            else:  # one customer message and one model reply per turn, none re-run
                kinds = [m[0] for m in story.final_values[thread_id]["messages"]]
                assert kinds == [HumanMessage.__name__, AIMessage.__name__] * turns
