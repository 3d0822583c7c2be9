"""The testing kit's state machine on every backend and pause style, with crashes and SLAs.

Any interleaving of process / approve / edit / reject / SLA expiry / a crash at
every fault point / recover keeps the review store, the audit ledger and the
checkpointed graph state in agreement (`assert_invariants`), and `recover()`
finishes every crashed decision exactly once. Backends and styles come from
the library's own pytest plugin (`hitl_backend_url`, `hitl_both_styles`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from hitl_compliance import OnTimeout, PauseStyle, Reviewer, RoleBasedPolicy
from hitl_compliance.testing import run_machine
from hitl_compliance.testing.faults import FAULT_POINTS
from tests.helpers import SuiteMachine

EXAMPLES = {"memory": 25, "sqlite": 10, "postgres": 5}


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


@pytest.mark.hitl_both_styles
def test_lifecycle(hitl_backend_url: str, hitl_style: PauseStyle) -> None:
    """Random lifecycles with crashes keep store, audit and checkpoints consistent everywhere."""
    kind = hitl_backend_url.partition(":")[0].replace("postgresql", "postgres")
    run_machine(
        CrashingMachine,
        backend_url=hitl_backend_url,
        style=hitl_style,
        settings=settings(
            max_examples=EXAMPLES[kind],
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
