"""`hitl_compliance.testing.invariants`: healthy runs pass, and each broken promise is named.

Every violation is provoked the way a bug (or someone going around the
coordinator) would cause it: resuming the graph directly, writing audit rows by
hand, deciding under a weaker policy, tampering with the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from hitl_compliance import (
    ComplianceState,
    Decision,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    PauseStyle,
    RegexRule,
    Reviewer,
    RoleBasedPolicy,
    RuleResult,
    build_compliance_graph,
)
from hitl_compliance.authority import slots_of
from hitl_compliance.gate import gate_pauses
from hitl_compliance.testing import (
    EPOCH,
    FakeClock,
    FaultInjector,
    InvariantViolation,
    ScriptedDrafter,
    SimulatedCrash,
    assert_invariants,
)
from tests.gate_graphs import (
    PAY_BIG,
    PAY_HUGE,
    PAY_SMALL,
    TOOL_EDIT,
    Bank,
    build_agent,
    decision,
)
from tests.helpers import CLEAN, RISKY, SCRIPT, SECRET, config_for, default_rules

GUARANTEE = KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")
SSN = RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block")


class ExactIdPolicy(RoleBasedPolicy):
    """Ids compare exactly as spelt: what the coordinator did before canonical ids."""

    def canonical_id(self, reviewer_id: str) -> str:
        """The id itself."""
        return reviewer_id


@contextmanager
def unattached(graph: Any) -> Iterator[None]:
    """The graph as run by a process that attached no coordinator or authority to it.

    A coordinator attaches its checks to the graph it drives, so a resume around
    it is checked, claimed and recorded; only a process running the same graph
    without them can apply a decision the store never sees (the violations below).
    """
    slots = slots_of(graph)
    saved = [slot.authority for slot in slots]
    for slot in slots:
        slot.authority = None
    try:
        yield
    finally:
        for slot, authority in zip(slots, saved, strict=True):
            slot.authority = authority


class Setup:
    """A coordinator on an in-memory saver and store, with a scripted drafter and a fake clock."""

    def __init__(self, style: PauseStyle = "interrupt_before", **options: Any) -> None:
        self.clock = FakeClock()
        self.drafter = ScriptedDrafter(SCRIPT)
        self.saver = InMemorySaver()
        self.store = InMemoryReviewStore()
        self.graph = build_compliance_graph(
            self.drafter,
            rules=options.pop("rules", default_rules()),
            checkpointer=self.saver,
            style=style,
            rejection_message=options.pop("rejection_message", None),
        )
        self.coord = HitlCoordinator(self.graph, reviews=self.store, clock=self.clock, **options)

    def behind_injector(self) -> tuple[FaultInjector, HitlCoordinator]:
        """A fault injector and a coordinator through it, over the same graph and store."""
        injector = FaultInjector()
        coord = injector.coordinator(self.graph, reviews=self.store, clock=self.clock)
        return injector, coord

    def checker(self, **options: Any) -> HitlCoordinator:
        """Another coordinator over the same graph and store (say, with a stricter policy)."""
        graph = options.pop("graph", self.graph)
        return HitlCoordinator(graph, reviews=self.store, clock=self.clock, **options)

    async def bypass_resume(self, thread_id: str, *, approved: bool = True) -> None:
        """Resume a static pause the way the coordinator does, but without telling the store."""
        decision = Decision(approved=approved, reviewer="rogue", decided_at=EPOCH)
        config = config_for(thread_id)
        with unattached(self.graph):
            await self.graph.aupdate_state(
                config, {"decision": decision.to_state()}, as_node="human_approval"
            )
            await self.graph.ainvoke(None, config)


async def violations(coord: HitlCoordinator, **options: Any) -> list[str]:
    """The problems assert_invariants reports (none: an empty list)."""
    try:
        await assert_invariants(coord, **options)
    except InvariantViolation as exc:
        return exc.problems
    return []


def one(problems: list[str], fragment: str) -> str:
    """The single problem mentioning `fragment`."""
    matching = [p for p in problems if fragment in p]
    assert len(matching) == 1, problems
    return matching[0]


class TestHealthy:
    """Everything the coordinator does on its own keeps every invariant."""

    @pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
    async def test_a_full_day(self, style: PauseStyle) -> None:
        """Deliveries, blocks, approvals, edits, rejections, votes, expiry, a second turn: pass."""
        policy = RoleBasedPolicy(default_roles="officer", quorum={"guarantee": 2})
        setup = Setup(style, policy=policy, sla=timedelta(minutes=5), rejection_message="Sorry.")
        ann, bo = (Reviewer(n, roles=frozenset({"officer"})) for n in ("ann", "bo"))
        coord = setup.coord
        await coord.process("clean", CLEAN)
        await coord.process("blocked", SECRET)
        for thread in ("approved", "edited", "rejected", "expired"):
            await coord.process(thread, RISKY, requested_by="agent")
        await coord.approve("approved", reviewer=ann)
        await coord.approve("approved", reviewer=bo)
        await coord.approve("edited", reviewer=ann, response="Call us.")
        await coord.approve("edited", reviewer=bo, response="Call us.")
        await coord.reject("rejected", reviewer=bo, reason="no")
        setup.clock.advance(minutes=6)
        await coord.expire_overdue()
        await coord.process("approved", CLEAN)
        await assert_invariants(coord, drafter=setup.drafter)

    async def test_a_pending_review_and_a_failed_drafter(self) -> None:
        """An open review and a turn whose drafter failed are legitimate resting states."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        setup.drafter.fail_next()
        with pytest.raises(RuntimeError):
            await setup.coord.process("t2", CLEAN)
        await assert_invariants(setup.coord, drafter=setup.drafter)

    async def test_is_an_assertion_error_listing_every_problem(self) -> None:
        """InvariantViolation is an AssertionError whose message lists each problem."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.bypass_resume("t1")
        with pytest.raises(AssertionError) as raised:
            await assert_invariants(setup.coord)
        error = raised.value
        assert isinstance(error, InvariantViolation)
        assert len(error.problems) >= 2
        assert str(error).startswith(f"{len(error.problems)} invariant violations:")
        assert all(f"  - {p}" in str(error) for p in error.problems)


class TestNoDeliveryWithoutAuthorisedDecision:
    """A risky draft reaches the customer only through an authorised, recorded decision."""

    async def test_a_resume_around_the_coordinator(self) -> None:
        """A decision applied to the graph but not to the store is caught from both sides."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.bypass_resume("t1")
        problems = await violations(setup.coord)
        one(problems, "that no decision audit row records")
        one(problems, "is pending at checkpoint")

    async def test_an_unauthorised_approver(self) -> None:
        """An approval a stricter policy would refuse is reported against that policy."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="intern")
        strict = setup.checker(policy=RoleBasedPolicy(rule_roles={"guarantee": "officer"}))
        problem = one(await violations(strict), "is not authorised")
        assert "'intern'" in problem

    async def test_an_unauthorised_rejection(self) -> None:
        """A rejection by a reviewer without the role is reported too."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.reject("t1", reviewer="intern")
        strict = setup.checker(policy=RoleBasedPolicy(rule_roles={"guarantee": "officer"}))
        one(await violations(strict), "rejected by an unauthorised reviewer")

    async def test_a_missing_quorum(self) -> None:
        """One approver where the policy needs two is reported."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="ann")
        four_eyes = setup.checker(policy=RoleBasedPolicy(quorum={"guarantee": 2}))
        one(await violations(four_eyes), "the policy requires 2")

    async def test_one_person_counted_twice(self) -> None:
        """Two spellings of one id counted as two approvers are reported under the default form."""
        setup = Setup(policy=ExactIdPolicy(quorum={"guarantee": 2}))
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="ann")
        done = await setup.coord.approve("t1", reviewer="ANN ")
        assert done.status == "completed"
        four_eyes = setup.checker(policy=RoleBasedPolicy(quorum={"guarantee": 2}))
        one(await violations(four_eyes), "one person counted more than once")
        assert await violations(setup.coord) == []

    async def test_a_requester_under_another_spelling(self) -> None:
        """An approval by the requester spelt otherwise is reported under the default form."""
        setup = Setup(policy=ExactIdPolicy())
        await setup.coord.process("t1", RISKY, requested_by="ann")
        await setup.coord.approve("t1", reviewer="\u0430nn")  # Cyrillic а
        checker = setup.checker(policy=RoleBasedPolicy())
        one(await violations(checker), "approved by its own requester")
        assert await violations(setup.coord) == []

    async def test_a_block_finding_in_the_delivered_text(self) -> None:
        """An edit the graph's rules block, approved under rules that missed it, is reported."""
        setup = Setup(rules=[GUARANTEE])
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="ann", response="Your SSN is 123-45-6789.")
        stricter = build_compliance_graph(
            setup.drafter, rules=[GUARANTEE, SSN], checkpointer=setup.saver
        )
        problem = one(await violations(setup.checker(graph=stricter)), "block findings")
        assert "['ssn']" in problem

    async def test_an_llm_draft_the_rules_flag(self) -> None:
        """A draft delivered without review is re-checked; recheck_rules=False skips that."""

        class FlipRule:
            """Passes the draft in the graph, flags it when asked again."""

            name = "flip"
            calls = 0

            def evaluate(self, state: ComplianceState) -> RuleResult:
                FlipRule.calls += 1
                return RuleResult("flip", "pass" if FlipRule.calls == 1 else "review")

        setup = Setup(rules=[FlipRule()])
        await setup.coord.process("t1", CLEAN)
        problems = await violations(setup.coord, threads=["t1"])
        one(problems, "but the rules flag it: [('flip', 'review')]")
        assert await violations(setup.coord, threads=["t1"], recheck_rules=False) == []


class TestStoreLedgerAndCheckpointsAgree:
    """The review store, the audit ledger and the checkpoints tell one story."""

    async def test_a_second_decision_row(self) -> None:
        """A decided review with two decision audit rows is reported."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="ann")
        review = await setup.store.get_review("t1")
        assert review is not None
        await setup.store.append_audit(
            thread_id="t1",
            review_id=review.review_id,
            checkpoint_id=review.checkpoint_id,
            event="approved",
            actor="ann",
            payload={},
            at=EPOCH,
        )
        one(await violations(setup.coord), "has 2 decision audit rows")

    async def test_a_tampered_ledger(self) -> None:
        """An audit row edited in place breaks the ledger."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.reject("t1", reviewer="ann")
        rows = setup.store._audit
        rows[0] = rows[0].model_copy(update={"actor": "someone-else"})
        one(await violations(setup.coord), "audit ledger does not verify at seq 1")

    async def test_a_paused_thread_without_a_review(self) -> None:
        """A thread paused outside the coordinator is invisible to pending(): reported."""
        setup = Setup()
        await setup.graph.ainvoke({"customer_message": RISKY}, config_for("ghost"))
        problems = await violations(setup.coord, threads=["ghost"])
        one(problems, "pending() cannot see it")

    async def test_a_turn_that_ended_twice(self) -> None:
        """A second resume of a finished static pause (LangGraph allows it) is reported."""
        setup = Setup()
        await setup.coord.process("t1", RISKY)
        await setup.coord.approve("t1", reviewer="ann")
        await setup.bypass_resume("t1", approved=False)
        one(await violations(setup.coord), "one turn ended 2 times")

    async def test_a_drafter_run_twice(self) -> None:
        """A drafter called for more turns than the thread had is reported."""
        setup = Setup()
        await setup.coord.process("t1", CLEAN)
        other = build_compliance_graph(setup.drafter, checkpointer=InMemorySaver())
        await other.ainvoke({"customer_message": CLEAN}, config_for("t1"))
        problem = one(await violations(setup.coord, drafter=setup.drafter), "the drafter ran")
        assert "2 time(s) for 1 drafted turn(s)" in problem

    async def test_a_claim_older_than_the_lease(self) -> None:
        """An abandoned claim is allowed while crashed, reported once recovery is due."""
        setup = Setup()
        injector, coord = setup.behind_injector()
        await coord.process("t1", RISKY)
        injector.arm("after_claim")
        with pytest.raises(SimulatedCrash):
            await coord.approve("t1", reviewer="ann")
        injector.restart()
        assert await violations(coord) == []  # within the lease: a decider may be at work
        setup.clock.advance(minutes=1)
        assert await violations(coord, crashed=True) == []
        one(await violations(coord), "longer than the lease")

    async def test_a_turn_older_than_the_lease(self) -> None:
        """A turn row nobody finished is reported once the lease is over."""
        setup = Setup()
        await setup.store.begin_turn("t1", owner="dead", now=EPOCH)
        setup.clock.advance(minutes=1)
        one(await violations(setup.coord), "is still open after the lease")
        assert await violations(setup.coord, crashed=True) == []

    async def test_a_hook_call_never_attempted(self) -> None:
        """A hook call lost to a crash is reported until recover() makes it."""
        setup = Setup()
        injector, coord = setup.behind_injector()
        injector.arm("in_hook")
        with pytest.raises(SimulatedCrash):
            await coord.process("t1", RISKY)
        injector.restart()
        setup.clock.advance(minutes=1)
        one(
            await violations(coord),
            "on_paused call owed for audit seq 1 was never completed (its caller died)",
        )
        await coord.recover()
        assert await violations(coord) == []

    async def test_reads_through_a_dead_injector(self) -> None:
        """The checks read the stores directly, so they run while the injected process is dead."""
        setup = Setup()
        injector, coord = setup.behind_injector()
        await coord.process("t1", RISKY)
        injector.arm("after_resume_before_record")
        with pytest.raises(SimulatedCrash):
            await coord.approve("t1", reviewer="ann")
        assert injector.dead
        await assert_invariants(coord, drafter=setup.drafter, crashed=True)
        problems = await violations(coord, drafter=setup.drafter)
        one(problems, "that no decision audit row records")


class GatedSetup:
    """A coordinator on a gated ReAct agent (alone or as a subgraph), in memory."""

    def __init__(
        self,
        kind: Literal["react", "subgraph"],
        style: PauseStyle = "command_resume",
        *,
        guarded: bool = False,
        **options: Any,
    ) -> None:
        self.clock = FakeClock()
        self.store = InMemoryReviewStore()
        self.bank = Bank()
        self.graph = build_agent(
            kind,
            style,
            InMemorySaver(),
            default_rules(),
            dict(SCRIPT),
            bank=self.bank,
            reviews=self.store if guarded else None,
        )
        self.coord = HitlCoordinator(self.graph, reviews=self.store, clock=self.clock, **options)


KINDS = ("react", "subgraph")


class TestGatedGraphs:
    """On graphs with gates, the invariants are read through the gates."""

    @pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
    @pytest.mark.parametrize("kind", KINDS)
    async def test_a_full_day(self, kind: Literal["react", "subgraph"], style: PauseStyle) -> None:
        """Clear, blocked, approved, edited and rejected texts and tool calls, expiry: pass."""
        setup = GatedSetup(kind, style, sla=timedelta(minutes=5))
        coord = setup.coord
        for thread, message in [
            ("clean", CLEAN),
            ("blocked", SECRET),
            ("text", RISKY),
            ("text-edit", RISKY),
            ("text-reject", RISKY),
            ("small", PAY_SMALL),
            ("huge", PAY_HUGE),
            ("pay", PAY_BIG),
            ("pay-edit", PAY_BIG),
            ("pay-reject", PAY_BIG),
            ("pay-expire", PAY_BIG),
        ]:
            await coord.process(thread, message)
        await coord.approve("text", reviewer="ann")
        await coord.approve("text-edit", reviewer="ann", response="Call us.")
        await coord.reject("text-reject", reviewer="ann", reason="no")
        await coord.approve("pay", reviewer="ann")
        await coord.approve("pay-edit", reviewer="ann", tool_args=TOOL_EDIT)
        await coord.reject("pay-reject", reviewer="ann", reason="no")
        setup.clock.advance(minutes=6)
        await coord.expire_overdue()
        await coord.process("pay", PAY_BIG)
        await assert_invariants(coord)
        assert setup.bank.transfers == [(500, "11111111"), (5_000, "12345678"), (900, "12345678")]

    @pytest.mark.parametrize("kind", KINDS)
    async def test_a_paused_gate_without_a_review(self, kind: Literal["react", "subgraph"]) -> None:
        """A gate paused by a raw run, with no store to record it, is a pause pending() misses."""
        setup = GatedSetup(kind)
        with unattached(setup.graph):
            await setup.graph.ainvoke({"messages": [HumanMessage(PAY_BIG)]}, config_for("raw"))
        problem = one(await violations(setup.coord, threads=["raw"]), "raw")
        assert "no open review" in problem

    async def test_a_resume_around_the_coordinator(self) -> None:
        """A raw resume in a process without the checks applies a decision no row records."""
        setup = GatedSetup("react")
        await setup.coord.process("t1", PAY_BIG)
        [pause] = await gate_pauses(setup.graph, config_for("t1"))
        assert pause.interrupt_id is not None
        resume = {pause.interrupt_id: decision().to_state()}
        with unattached(setup.graph):
            await setup.graph.ainvoke(Command(resume=resume), config_for("t1"))
        problems = await violations(setup.coord)
        assert "no gate of the graph waits for it" in one(problems, "(pending)")
        assert "no decision audit row records" in one(problems, "applied a decision")

    async def test_an_attached_gate_checks_and_records_the_same_resume(self) -> None:
        """With the coordinator attached, that raw resume is claimed and recorded: no violation."""
        setup = GatedSetup("react", guarded=True)
        await setup.coord.process("t1", PAY_BIG)
        [pause] = await gate_pauses(setup.graph, config_for("t1"))
        assert pause.interrupt_id is not None
        resume = {pause.interrupt_id: decision().to_state()}
        await setup.graph.ainvoke(Command(resume=resume), config_for("t1"))
        await assert_invariants(setup.coord)
        assert setup.bank.transfers == [(5_000, "12345678")]
        rows = await setup.coord.audit_log("t1")
        # A raw resume: the outcome, then the graph's records of the run's two replies.
        assert [r.event for r in rows][-3:] == ["approved", "replied", "replied"]

    async def test_a_tool_call_run_twice(self) -> None:
        """A second result of one tool call (a double run) is named."""
        setup = GatedSetup("react")
        await setup.coord.process("t1", PAY_SMALL)
        again = ToolMessage("sent again", tool_call_id="pay-1")
        await setup.graph.aupdate_state(config_for("t1"), {"messages": [again]}, as_node="tools")
        problems = await violations(setup.coord, threads=["t1"])
        assert "ran 2 times" in one(problems, "'pay-1'")

    async def test_a_tool_call_that_never_passed_a_gate(self) -> None:
        """A tool result for a call no gate checked is named."""
        setup = GatedSetup("react")
        await setup.coord.process("t1", CLEAN)
        sneaky = ToolMessage("sent", tool_call_id="sneaky")
        await setup.graph.aupdate_state(config_for("t1"), {"messages": [sneaky]}, as_node="tools")
        problems = await violations(setup.coord, threads=["t1"])
        assert "ran without passing a gate" in one(problems, "'sneaky'")
