"""The testing kit's state machine on every backend and pause style, with crashes and SLAs.

Any interleaving of process / approve / edit / reject / SLA expiry / a crash at
every fault point / recover keeps the review store, the audit ledger and the
checkpointed graph state in agreement (`assert_invariants`), and `recover()`
finishes every crashed decision exactly once. Backends and styles come from
the library's own pytest plugin (`hitl_backend_url`, `hitl_both_styles`). Each
runs on three kinds of graph: the factory graph, a gated `MessagesState` ReAct
agent, and a parent graph with that agent as a subgraph.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from hitl_compliance import OnTimeout, PauseStyle, Reviewer, RoleBasedPolicy
from hitl_compliance.testing import run_machine
from hitl_compliance.testing.faults import FAULT_POINTS
from tests.gate_graphs import GRAPH_KINDS, GraphKind
from tests.helpers import GatedSuiteMachine, SuiteMachine

EXAMPLES = {"memory": 25, "sqlite": 10, "postgres": 5}
# The gated graphs run fewer examples per backend: the factory graph covers the
# lifecycle's shapes; these prove the same model holds through gates.
GATED_EXAMPLES = {"memory": 15, "sqlite": 6, "postgres": 4}


class CrashingMachine(SuiteMachine):
    """The suite's machine with every fault point, an SLA and reviewers with and without roles."""

    faults = FAULT_POINTS
    sla = timedelta(minutes=5)
    on_timeout: OnTimeout = "approve_draft"
    policy = RoleBasedPolicy(rule_roles={"guarantee": "compliance"})
    reviewers = (
        "intern",  # no role: refused
        Reviewer("alice", roles=frozenset({"compliance"})),
        Reviewer("bob", roles=frozenset({"compliance"})),
    )
    rejection_message = "A colleague will contact you."


class CrashingGatedMachine(GatedSuiteMachine):
    """`CrashingMachine`'s faults, SLA and reviewers on a graph with a gate."""

    faults = CrashingMachine.faults
    sla = CrashingMachine.sla
    on_timeout: OnTimeout = CrashingMachine.on_timeout
    policy = CrashingMachine.policy
    reviewers = CrashingMachine.reviewers


@pytest.mark.hitl_both_styles
@pytest.mark.parametrize(
    "graph_kind",
    # The gated kinds run once in CI (marker `once`), not on every Python version.
    [k if k == "factory" else pytest.param(k, marks=pytest.mark.once) for k in GRAPH_KINDS],
)
def test_lifecycle(hitl_backend_url: str, hitl_style: PauseStyle, graph_kind: GraphKind) -> None:
    """Random lifecycles with crashes keep store, audit and checkpoints consistent everywhere."""
    kind = hitl_backend_url.partition(":")[0].replace("postgresql", "postgres")
    machine: type[SuiteMachine] = CrashingMachine
    examples = EXAMPLES[kind]
    if graph_kind != "factory":
        machine = type(
            f"Crashing{graph_kind.title()}Machine",
            (CrashingGatedMachine,),
            {"graph_kind": graph_kind},
        )
        examples = GATED_EXAMPLES[kind]
    run_machine(
        machine,
        backend_url=hitl_backend_url,
        style=hitl_style,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
