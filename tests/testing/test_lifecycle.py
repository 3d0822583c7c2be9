"""`hitl_compliance.testing.lifecycle`: steps as data; generated lifecycles keep every invariant."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AlreadyDecidedError,
    HitlCoordinator,
    NotAuthorizedError,
    PauseStyle,
    ReviewNotFoundError,
    RoleBasedPolicy,
    ThreadBusyError,
    build_compliance_graph,
)
from hitl_compliance.testing import (
    FAULT_POINTS,
    FakeClock,
    FaultInjector,
    HumanDecision,
    ScriptedDrafter,
    Step,
    assert_invariants,
    play,
    run_step,
)
from hitl_compliance.testing.strategies import decisions, lifecycles
from tests.helpers import CLEAN, RISKY, SCRIPT, SECRET, default_rules

STYLES: tuple[PauseStyle, ...] = ("interrupt_before", "command_resume")


class Rig:
    """A coordinator behind a fault injector, with an SLA of five minutes and a 30 s lease."""

    def __init__(self, style: PauseStyle = "interrupt_before", **options: object) -> None:
        self.clock = FakeClock()
        self.drafter = ScriptedDrafter(SCRIPT)
        self.injector = FaultInjector()
        graph = build_compliance_graph(
            self.drafter, rules=default_rules(), checkpointer=InMemorySaver(), style=style
        )
        self.coord = self.injector.coordinator(
            graph, clock=self.clock, sla=timedelta(minutes=5), **options
        )


lifecycle = lifecycles(
    threads=("a", "b"),
    messages=st.sampled_from([CLEAN, RISKY, SECRET]),
    decision=decisions(reviewer=st.sampled_from(["ann", "bo"]), responses=st.just("Call us.")),
    faults=FAULT_POINTS,
    tick_seconds=(10.0, 400.0),
)


@given(steps=lifecycle, style=st.sampled_from(STYLES))
def test_generated_lifecycles_keep_every_invariant(steps: list[Step], style: PauseStyle) -> None:
    """Any generated lifecycle, crashes included, ends with every invariant holding."""
    rig = Rig(style)

    async def story() -> None:
        outcomes = await play(rig.coord, steps, clock=rig.clock, injector=rig.injector)
        assert [o.step for o in outcomes] == steps
        await assert_invariants(rig.coord, drafter=rig.drafter)

    asyncio.run(story())


class TestRunStep:
    """Each step kind runs, and refusals and crashes become outcomes."""

    async def test_results_refusals_and_crashes(self) -> None:
        """A pause, a busy refusal, a crash (and restart), then recovery, as outcomes."""
        rig = Rig()
        paused = await run_step(rig.coord, Step("process", "t1", message=RISKY))
        assert [r.status for r in paused.results] == ["paused"]
        busy = await run_step(rig.coord, Step("process", "t1", message=CLEAN))
        assert isinstance(busy.error, ThreadBusyError)
        crashed = await run_step(
            rig.coord,
            Step("decide", "t1", decision=HumanDecision("reject", "ann"), fault="after_claim"),
            injector=rig.injector,
        )
        assert crashed.crash is not None
        assert not rig.injector.dead
        again = await run_step(rig.coord, Step("decide", "t1", decision=HumanDecision("approve")))
        assert isinstance(again.error, AlreadyDecidedError)
        await play(rig.coord, [Step("tick", seconds=31), Step("recover")], clock=rig.clock)
        await assert_invariants(rig.coord, drafter=rig.drafter)

    async def test_a_fault_that_does_not_fire_is_disarmed(self) -> None:
        """A fault armed for a step that never reaches it does not linger."""
        rig = Rig()
        outcome = await run_step(
            rig.coord,
            Step("process", "t1", message=CLEAN, fault="after_claim"),
            injector=rig.injector,
        )
        assert outcome.crash is None
        assert rig.injector.armed is None

    async def test_refusals_of_decisions(self) -> None:
        """Deciding a thread that never paused, or without authority, is refused."""
        rig = Rig(policy=RoleBasedPolicy(default_roles="officer"))
        outcome = await run_step(rig.coord, Step("decide", "t9", decision=HumanDecision("approve")))
        assert isinstance(outcome.error, ReviewNotFoundError)
        await rig.coord.process("t1", RISKY)
        outcome = await run_step(rig.coord, Step("decide", "t1", decision=HumanDecision("edit")))
        assert isinstance(outcome.error, NotAuthorizedError)

    @pytest.mark.parametrize(
        ("step", "message"),
        [
            (Step("tick", seconds=1), "clock="),
            (Step("recover", fault="in_hook"), "injector="),
            (Step("decide", "t1"), "decision="),
        ],
    )
    async def test_missing_collaborators(self, step: Step, message: str) -> None:
        """A step missing what it needs says what to pass."""
        with pytest.raises(ValueError, match=message):
            await run_step(Rig().coord, step)


class TestHumanDecision:
    """Each kind of decision applies through the public API."""

    @pytest.mark.parametrize(
        ("decision", "status", "delivered"),
        [
            (HumanDecision("approve"), "completed", SCRIPT[RISKY]),
            (HumanDecision("edit", response="Call us."), "completed", "Call us."),
            (HumanDecision("reject", reason="no"), "rejected", None),
            (HumanDecision("expire"), "rejected", None),
        ],
    )
    async def test_apply(self, decision: HumanDecision, status: str, delivered: str | None) -> None:
        """approve / edit / reject decide as a reviewer; expire lets the SLA decide."""
        rig = Rig()
        await rig.coord.process("t1", RISKY)
        result = await decision.apply(rig.coord, "t1")
        assert (result.status, result.agent_response) == (status, delivered)
        await assert_invariants(rig.coord, drafter=rig.drafter)

    async def test_expire_needs_an_sla(self) -> None:
        """Expiring a review without a deadline says the coordinator needs an SLA."""
        graph = build_compliance_graph(
            ScriptedDrafter(SCRIPT), rules=default_rules(), checkpointer=InMemorySaver()
        )
        coord = HitlCoordinator(graph)
        await coord.process("t1", RISKY)
        with pytest.raises(ValueError, match="sla"):
            await HumanDecision("expire").apply(coord, "t1")
        with pytest.raises(ReviewNotFoundError):
            await HumanDecision("expire").apply(coord, "t2")
