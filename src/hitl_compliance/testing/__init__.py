"""A testing kit for compliance graphs: fakes, faults, invariants, strategies, a state machine.

Installed with the package; the parts built on Hypothesis and pytest need the
`testing` extra (`pip install "hitl-compliance[testing]"`), which also
registers the pytest plugin.

* [`hitl_compliance.testing.fakes`][hitl_compliance.testing.fakes]:
  [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter],
  [`FakeClock`][hitl_compliance.testing.FakeClock],
  [`memory_backend`][hitl_compliance.testing.memory_backend].
* [`hitl_compliance.testing.chat`][hitl_compliance.testing.chat]:
  [`ScriptedChatModel`][hitl_compliance.testing.ScriptedChatModel], a chat
  model for gated agents (tool calls kept, streamed or not).
* [`hitl_compliance.testing.faults`][hitl_compliance.testing.faults]:
  [`FaultInjector`][hitl_compliance.testing.FaultInjector] crashes a
  coordinator at a named step.
* [`hitl_compliance.testing.invariants`][hitl_compliance.testing.invariants]:
  [`assert_invariants`][hitl_compliance.testing.assert_invariants].
* [`hitl_compliance.testing.lifecycle`][hitl_compliance.testing.lifecycle]:
  lifecycles as data ([`Step`][hitl_compliance.testing.Step],
  [`play`][hitl_compliance.testing.play]).
* [`hitl_compliance.testing.strategies`][hitl_compliance.testing.strategies]
  (Hypothesis): messages, drafts, rule sets, reviewers, decisions, lifecycles.
* [`hitl_compliance.testing.stateful`][hitl_compliance.testing.stateful]
  (Hypothesis): [`CoordinatorMachine`][hitl_compliance.testing.CoordinatorMachine].
* [`hitl_compliance.testing.conformance`][hitl_compliance.testing.conformance]
  (pytest): [`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance],
  the tests a review store adapter must pass, composed of one mixin per
  capability (turns, reviews, votes, SLA, outbox, ledger, inputs).
* The pytest plugin, module `pytest_hitl_compliance` (re-exported as
  `hitl_compliance.testing.plugin`): fixtures `hitl_backend`, `hitl_style`,
  `hitl_clock`, `scripted_drafter`, `hitl_faults` and the `hitl_both_styles`
  marker.

This module imports neither Hypothesis nor pytest; `CoordinatorMachine` and
`run_machine` are loaded from `stateful` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hitl_compliance.testing.chat import ScriptedChatModel
from hitl_compliance.testing.fakes import (
    EPOCH,
    FakeClock,
    ScriptedDrafter,
    ScriptedDrafterError,
    memory_backend,
)
from hitl_compliance.testing.faults import (
    FAULT_POINTS,
    FaultInjector,
    FaultPoint,
    HookCall,
    SimulatedCrash,
)
from hitl_compliance.testing.invariants import InvariantViolation, assert_invariants
from hitl_compliance.testing.lifecycle import (
    REFUSALS,
    DecisionKind,
    HumanDecision,
    Outcome,
    Step,
    StepKind,
    play,
    run_step,
)

if TYPE_CHECKING:
    from hitl_compliance.testing.stateful import CoordinatorMachine, run_machine

__all__ = [
    "EPOCH",
    "FAULT_POINTS",
    "REFUSALS",
    "CoordinatorMachine",
    "DecisionKind",
    "FakeClock",
    "FaultInjector",
    "FaultPoint",
    "HookCall",
    "HumanDecision",
    "InvariantViolation",
    "Outcome",
    "ScriptedChatModel",
    "ScriptedDrafter",
    "ScriptedDrafterError",
    "SimulatedCrash",
    "Step",
    "StepKind",
    "assert_invariants",
    "memory_backend",
    "play",
    "run_machine",
    "run_step",
]

_NEEDS_HYPOTHESIS = frozenset({"CoordinatorMachine", "run_machine"})


def __getattr__(name: str) -> Any:
    # Hypothesis is an optional dependency: load the state machine only when asked for.
    if name in _NEEDS_HYPOTHESIS:
        from hitl_compliance.testing import stateful

        return getattr(stateful, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
