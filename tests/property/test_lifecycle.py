"""The testing kit's coordinator state machine, in memory, in both pause styles, without crashes.

Random interleavings of `process`, approve, edit, reject, `recover` and clock
moves on a few threads are checked by `CoordinatorMachine` against its model
and `assert_invariants` (the crash and backend variants are in
`tests/integration/test_lifecycle_machine.py`).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from hitl_compliance import PauseStyle
from tests.helpers import SuiteMachine

# The profile's example count (the CI profile: 50) with shorter runs: each step is checked
# against the whole store, ledger and checkpoints.
LIFECYCLE_SETTINGS = settings(
    stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
)


class StaticLifecycle(SuiteMachine):
    """The lifecycle with the static pause (`interrupt_before`)."""

    style: PauseStyle = "interrupt_before"


class DynamicLifecycle(SuiteMachine):
    """The lifecycle with the dynamic pause (`command_resume`)."""

    style: PauseStyle = "command_resume"


TestStaticLifecycle = StaticLifecycle.TestCase
TestStaticLifecycle.settings = LIFECYCLE_SETTINGS
TestDynamicLifecycle = DynamicLifecycle.TestCase
TestDynamicLifecycle.settings = LIFECYCLE_SETTINGS
