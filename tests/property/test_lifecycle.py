"""The testing kit's coordinator state machine, in memory, in both pause styles, without crashes.

Random interleavings of `process`, approve, edit, reject, `recover` and clock
moves on a few threads are checked by `CoordinatorMachine` against its model
and `assert_invariants` (the crash and backend variants are in
`tests/integration/test_lifecycle_machine.py`), on three kinds of graph: the
factory graph, a gated `MessagesState` ReAct agent, and a parent graph with
that agent (and its gate) as a subgraph; and on the ReAct agent paused on two
tool calls at once, each decided by its `review_id`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from hitl_compliance import PauseStyle
from tests.helpers import GatedSuiteMachine, ParallelToolsMachine, SuiteMachine

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

# The gated graphs run half as many examples: each step reads every gate's subgraph
# checkpoints, and the factory graph's runs above already cover the lifecycle's
# shapes; these prove the same model holds through gates.
GATED_SETTINGS = settings(LIFECYCLE_SETTINGS, max_examples=max(1, settings().max_examples // 2))


class StaticReactLifecycle(GatedSuiteMachine):
    """The lifecycle on a gated ReAct agent, static pause."""

    style: PauseStyle = "interrupt_before"


class DynamicReactLifecycle(GatedSuiteMachine):
    """The lifecycle on a gated ReAct agent, dynamic pause."""

    style: PauseStyle = "command_resume"


class StaticSubgraphLifecycle(GatedSuiteMachine):
    """The lifecycle on a parent graph with the gated agent as a subgraph, static pause."""

    graph_kind = "subgraph"
    style: PauseStyle = "interrupt_before"


class DynamicSubgraphLifecycle(GatedSuiteMachine):
    """The lifecycle on a parent graph with the gated agent as a subgraph, dynamic pause."""

    graph_kind = "subgraph"
    style: PauseStyle = "command_resume"


TestStaticReactLifecycle = StaticReactLifecycle.TestCase
TestStaticReactLifecycle.settings = GATED_SETTINGS
TestDynamicReactLifecycle = DynamicReactLifecycle.TestCase
TestDynamicReactLifecycle.settings = GATED_SETTINGS
TestStaticSubgraphLifecycle = StaticSubgraphLifecycle.TestCase
TestStaticSubgraphLifecycle.settings = GATED_SETTINGS
TestDynamicSubgraphLifecycle = DynamicSubgraphLifecycle.TestCase
TestDynamicSubgraphLifecycle.settings = GATED_SETTINGS


class DynamicReactParallelLifecycle(ParallelToolsMachine):
    """The lifecycle on a gated ReAct agent, dynamic pause, with two tool calls waiting at once."""

    style: PauseStyle = "command_resume"


# Decisions by review_id (with and without edited tool_args), rejections, decisions
# without review_id; the `once` marker keeps it to one Python in CI, as the crash suite.
TestDynamicReactParallelLifecycle = DynamicReactParallelLifecycle.TestCase
TestDynamicReactParallelLifecycle.settings = GATED_SETTINGS
TestDynamicReactParallelLifecycle.pytestmark = [pytest.mark.once]  # type: ignore[attr-defined]
