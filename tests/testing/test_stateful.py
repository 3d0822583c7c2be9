"""`hitl_compliance.testing.stateful`: the reusable machine runs, and catches planted bugs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from langgraph.checkpoint.base import BaseCheckpointSaver

import hitl_compliance.testing
from hitl_compliance import (
    ComplianceGraph,
    ComplianceState,
    KeywordRule,
    PauseStyle,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
)
from hitl_compliance.testing import InvariantViolation, ScriptedDrafter
from hitl_compliance.testing.stateful import CoordinatorMachine, run_machine

FAST = settings(
    max_examples=8,
    stateful_step_count=15,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# A planted bug must be found, not shrunk: skip the (slow) shrinking phase.
FIND = settings(FAST, max_examples=40, phases=[Phase.generate])


class ClaimsMachine(CoordinatorMachine):
    """An insurance domain: payout promises need an adjuster; quorum two on critical ones."""

    compliance_rules: ClassVar[list[Any]] = [
        KeywordRule("payout", ["guaranteed payout"], reason="promises a payout"),
        KeywordRule("fraud", ["not covered"], severity="critical"),
    ]
    script: ClassVar[dict[str, str]] = {
        "Will you pay?": "Your claim has a guaranteed payout.",
        "Am I covered?": "Flood damage is not covered by your policy.",
        "Hello": "Hello! How can we help with your claim?",
    }
    policy = RoleBasedPolicy(default_roles="adjuster", quorum={"critical": 2})
    reviewers: ClassVar[tuple[str | Reviewer, ...]] = (
        "temp",
        Reviewer("ann", roles=frozenset({"adjuster"})),
        Reviewer("bo", roles=frozenset({"adjuster"})),
    )
    sla = timedelta(hours=4)
    on_timeout = "escalate"


@pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
def test_a_downstream_machine_runs(style: PauseStyle) -> None:
    """A subclass with its own rules, script, policy and SLA runs clean in both styles."""
    run_machine(ClaimsMachine, style=style, settings=FAST)


def test_it_runs_as_a_test_case() -> None:
    """`Machine.TestCase` is the usual unittest entry point."""
    case = ClaimsMachine.TestCase()
    case.settings = FAST
    case.runTest()


def test_a_drafter_called_twice_is_caught() -> None:
    """A graph that runs the LLM twice per turn fails the drafter-once-per-turn invariant."""

    class TwiceMachine(ClaimsMachine):
        def build_graph(
            self, drafter: ScriptedDrafter, checkpointer: BaseCheckpointSaver[Any]
        ) -> ComplianceGraph:
            def twice(state: ComplianceState) -> Any:
                drafter(state)
                return drafter(state)

            return build_compliance_graph(
                twice, rules=self.compliance_rules, checkpointer=checkpointer, style=self.style
            )

    with pytest.raises(InvariantViolation, match="the drafter ran 2 time"):
        run_machine(TwiceMachine, settings=FIND)


def test_a_wrong_expectation_is_caught() -> None:
    """`expected_status` is checked for every processed message."""

    class WrongMachine(ClaimsMachine):
        expected_status: ClassVar[dict[str, str]] = {"Hello": "paused"}

    with pytest.raises(AssertionError, match="'Hello' gave 'completed', expected 'paused'"):
        run_machine(WrongMachine, settings=FIND)


def test_run_machine_overrides_backend_and_style() -> None:
    """run_machine runs a subclass with the given backend URL and style; the class is unchanged."""
    seen: set[tuple[str, str]] = set()

    class Spy(ClaimsMachine):
        faults = ()

        def __init__(self) -> None:
            super().__init__()
            seen.add((self.backend_url, self.style))

    run_machine(Spy, backend_url="memory://", style="command_resume", settings=FAST)
    assert seen == {("memory://", "command_resume")}
    assert (Spy.backend_url, Spy.style) == ("memory://", "interrupt_before")


def test_loaded_lazily_from_the_package() -> None:
    """`hitl_compliance.testing.CoordinatorMachine` is the stateful module's class."""
    assert hitl_compliance.testing.CoordinatorMachine is CoordinatorMachine
    assert hitl_compliance.testing.run_machine is run_machine
    with pytest.raises(AttributeError):
        _ = hitl_compliance.testing.no_such_thing  # type: ignore[attr-defined]
