"""The claims assistant's compliance graph, tested with hitl-compliance's testing kit alone."""

import pytest
from claims_assistant import HANDOFF, POLICY, RULES, build_graph
from hypothesis import settings

from hitl_compliance import Reviewer
from hitl_compliance import testing as kit

pytestmark = pytest.mark.hitl_both_styles  # every test below runs in both pause styles
SCRIPT = {
    "Will you pay for my flood damage?": "Yes, it is a guaranteed payout.",
    "What is my policy number?": "Your policy is POL-12345678.",
    "How do I file a claim?": "Use the Claims page of our app.",
}
ADJUSTER = Reviewer("ann@insurer", roles=frozenset({"claims_adjuster"}))


class ClaimsMachine(kit.CoordinatorMachine):
    """Random lifecycles (decisions, crashes, recovery) of the assistant keep every invariant."""

    compliance_rules, script, policy, rejection_message = RULES, SCRIPT, POLICY, HANDOFF
    reviewers = (ADJUSTER, "intern@insurer")


TestClaimsLifecycle = ClaimsMachine.TestCase
TestClaimsLifecycle.settings = settings(max_examples=20, stateful_step_count=20, deadline=None)


@pytest.fixture
def coord(hitl_backend, hitl_style, hitl_clock, hitl_faults, scripted_drafter):
    """The assistant on each backend, drafting from SCRIPT, behind a fault injector."""
    scripted_drafter.script.update(SCRIPT)
    graph = build_graph(scripted_drafter, checkpointer=hitl_backend.checkpointer, style=hitl_style)
    return hitl_faults.coordinator(
        graph, reviews=hitl_backend.reviews, policy=POLICY, clock=hitl_clock
    )


async def test_payout_promises_wait_for_an_adjuster(coord, scripted_drafter):
    """A payout promise pauses until an adjuster edits it; a policy number is blocked."""
    assert (await coord.process("c1", "Will you pay for my flood damage?")).status == "paused"
    assert (await coord.process("c2", "What is my policy number?")).agent_response == HANDOFF
    done = await coord.approve("c1", reviewer=ADJUSTER, response="An adjuster will call you.")
    assert done.agent_response == "An adjuster will call you."
    await kit.assert_invariants(coord, drafter=scripted_drafter)


@pytest.mark.parametrize("point", kit.FAULT_POINTS)
async def test_a_crash_is_recovered(coord, scripted_drafter, hitl_faults, hitl_clock, point):
    """Whatever step an approval dies at, recover() finishes it exactly once."""
    await coord.process("c1", "Will you pay for my flood damage?")
    hitl_faults.arm(point)
    with pytest.raises(kit.SimulatedCrash):
        await coord.approve("c1", reviewer=ADJUSTER)
    hitl_faults.restart()
    hitl_clock.advance(minutes=1)  # past the lease: recover() takes the dead approval over
    await coord.recover()
    await kit.assert_invariants(coord, drafter=scripted_drafter)
