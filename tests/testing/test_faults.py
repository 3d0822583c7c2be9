"""`hitl_compliance.testing.faults`: every injected crash is survived, and the injector is honest.

The survival tests run on every backend of the plugin's `hitl_backend` fixture
(memory, SQLite, and PostgreSQL when `HITL_TEST_POSTGRES_DSN` is set) and in
both pause styles: after a crash at each fault point, a restart, the clock
moved past the lease and `recover()`, the invariants hold and nothing is lost
or doubled: one drafter call per turn, one decision audit row, one delivery,
one call of each hook. They run on three kinds of graph: the factory graph, a
gated `MessagesState` ReAct agent, and a parent graph with that agent as a
subgraph; on the gated ones both a reviewed reply text and a reviewed tool
call (approve runs it once, an edit runs the edited call once, a rejection
never runs it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    Backend,
    ComplianceGraph,
    HitlCoordinator,
    Hooks,
    InMemoryReviewStore,
    PauseStyle,
    ProcessResult,
    Reviewer,
    ReviewStore,
    RoleBasedPolicy,
    build_compliance_graph,
)
from hitl_compliance.gate import DEFAULT_REJECTION
from hitl_compliance.testing import (
    FAULT_POINTS,
    FakeClock,
    FaultInjector,
    FaultPoint,
    ScriptedDrafter,
    SimulatedCrash,
    assert_invariants,
    memory_backend,
)
from hitl_compliance.testing.faults import unwrap_graph, unwrap_store
from tests.gate_graphs import PAY_BIG, PAYMENTS, TOOL_EDIT, Bank, GraphKind, build_agent
from tests.helpers import CLEAN, RISKY, SCRIPT, config_for, default_rules, finished_runs

LEASE = timedelta(seconds=30)
EDIT = "Please speak to an adviser."
DECIDED = {"approve": "approved", "edit": "approved", "reject": "rejected"}
DELIVERED = {"approve": SCRIPT[RISKY], "edit": EDIT, "reject": None}
PAID = {"approve": [PAYMENTS[PAY_BIG]], "edit": [tuple(TOOL_EDIT.values())], "reject": []}

Subject = Literal["text", "tool"]
# (graph kind, what is reviewed): the factory graph reviews reply text; each gated
# graph both a reply text and a tool call.
SUBJECTS: list[Any] = [
    ("factory", "text"),
    # The gated kinds quadruple the suite's run time: CI runs them once (marker `once`).
    pytest.param("react", "text", marks=pytest.mark.once),
    pytest.param("react", "tool", marks=pytest.mark.once),
    pytest.param("subgraph", "text", marks=pytest.mark.once),
    pytest.param("subgraph", "tool", marks=pytest.mark.once),
]


def build(drafter: ScriptedDrafter, checkpointer: Any, style: PauseStyle) -> ComplianceGraph:
    """The suite's rules around `drafter`, in `style`."""
    return build_compliance_graph(
        drafter, rules=default_rules(), checkpointer=checkpointer, style=style
    )


async def decide(
    coord: HitlCoordinator, thread_id: str, how: str, subject: Subject = "text"
) -> ProcessResult:
    """Approve, approve with an edit (of the text, or of the tool call's arguments), or reject."""
    if how == "reject":
        return await coord.reject(thread_id, reviewer="officer")
    if how == "edit" and subject == "tool":
        return await coord.approve(thread_id, reviewer="officer", tool_args=TOOL_EDIT)
    return await coord.approve(
        thread_id, reviewer="officer", response=EDIT if how == "edit" else None
    )


class Rig:
    """A coordinator behind a fault injector, with the fakes a survival test inspects."""

    def __init__(
        self,
        backend: Backend,
        style: PauseStyle,
        clock: FakeClock,
        graph_kind: GraphKind = "factory",
        **options: Any,
    ):
        self.backend = backend
        self.clock = clock
        self.graph_kind = graph_kind
        self.drafter = ScriptedDrafter(SCRIPT)
        self.bank = Bank()
        self.injector = FaultInjector()
        if graph_kind == "factory":
            graph = build(self.drafter, backend.checkpointer, style)
        else:
            # The gate answers to the store too, so no resume around the coordinator
            # (say, by a half-dead process) could deliver unrecorded.
            graph = build_agent(
                graph_kind,
                style,
                backend.checkpointer,
                default_rules(),
                dict(SCRIPT),
                bank=self.bank,
                reviews=backend.reviews,
            )
        self.coord = self.injector.coordinator(
            graph,
            reviews=backend.reviews,
            clock=clock,
            lease=LEASE,
            **options,
        )

    @classmethod
    def in_memory(cls, style: PauseStyle = "interrupt_before") -> Rig:
        """A rig on a fresh in-memory backend."""
        return cls(memory_backend(), style, FakeClock())

    async def restart_and_recover(self) -> list[ProcessResult]:
        """A new process, once the lease has passed, recovers."""
        self.injector.restart()
        self.clock.advance(LEASE + timedelta(seconds=1))
        return await self.coord.recover()

    async def decision_events(self, thread_id: str) -> list[str]:
        """The thread's decision audit events."""
        log = await self.backend.reviews.audit_log(thread_id)
        return [r.event for r in log if r.event in ("approved", "rejected", "expired")]

    def hooks_called(self, thread_id: str) -> list[str]:
        """The hooks that reached the application for the thread, in order."""
        return [c.hook for c in self.injector.hook_calls if c.thread_id == thread_id]

    async def messages(self, thread_id: str) -> list[Any]:
        """The thread's messages (a gated graph's), read past the injector."""
        final = await unwrap_graph(self.coord.graph).aget_state(config_for(thread_id))
        return list(final.values["messages"])

    async def drafted_once_per_turn(self, thread_id: str, turns: int) -> bool:
        """Whether the thread's model / drafter ran once per turn (once more per tool round)."""
        if self.graph_kind == "factory":
            return self.drafter.calls_for(thread_id) == turns
        messages = await self.messages(thread_id)
        humans = sum(isinstance(m, HumanMessage) for m in messages)
        calls = sum(bool(isinstance(m, AIMessage) and m.tool_calls) for m in messages)
        replies = sum(isinstance(m, AIMessage) for m in messages)
        return humans == turns and replies == turns + calls


def message_for(subject: Subject) -> str:
    """The customer message whose turn pauses for `subject`."""
    return RISKY if subject == "text" else PAY_BIG


@pytest.mark.hitl_both_styles
@pytest.mark.parametrize("how", ["approve", "edit", "reject"])
@pytest.mark.parametrize("point", FAULT_POINTS)
@pytest.mark.parametrize(("graph_kind", "subject"), SUBJECTS)
async def test_a_crash_in_a_decision_is_survived(
    hitl_backend: Backend,
    hitl_style: PauseStyle,
    hitl_clock: FakeClock,
    point: FaultPoint,
    how: str,
    graph_kind: GraphKind,
    subject: Subject,
) -> None:
    """Crashed at any point of any decision, recover() finishes it once and loses nothing."""
    rig = Rig(hitl_backend, hitl_style, hitl_clock, graph_kind)
    paused = await rig.coord.process("t1", message_for(subject))
    await rig.coord.process("t2", CLEAN)
    rig.injector.arm(point, thread_id="t1")
    with pytest.raises(SimulatedCrash) as crash:
        await decide(rig.coord, "t1", how, subject)
    assert (crash.value.point, crash.value.thread_id) == (point, "t1")
    await assert_invariants(rig.coord, drafter=rig.drafter, crashed=True)

    recovered = await rig.restart_and_recover()

    await assert_invariants(rig.coord, drafter=rig.drafter)
    assert [r.thread_id for r in recovered] == ([] if point == "in_hook" else ["t1"])
    assert await rig.drafted_once_per_turn("t1", 1)
    assert await rig.drafted_once_per_turn("t2", 1)
    assert await rig.decision_events("t1") == [DECIDED[how]]
    assert await finished_runs(rig.coord, "t1") == 1
    assert rig.hooks_called("t1") == ["on_paused", "on_decided"]
    state = await rig.coord.state_at_decision("t1")
    assert state.draft_response == paused.draft_response
    assert await rig.coord.pending() == []
    if graph_kind == "factory":
        final = await unwrap_graph(rig.coord.graph).aget_state(config_for("t1"))
        assert final.values["agent_response"] == DELIVERED[how]
    elif subject == "text":
        last = (await rig.messages("t1"))[-1]
        assert last.content == (DELIVERED[how] or DEFAULT_REJECTION)
    else:
        assert rig.bank.transfers == PAID[how]


@pytest.mark.hitl_both_styles
@pytest.mark.parametrize(("graph_kind", "subject"), SUBJECTS)
async def test_a_crash_in_the_paused_hook_is_survived(
    hitl_backend: Backend,
    hitl_style: PauseStyle,
    hitl_clock: FakeClock,
    graph_kind: GraphKind,
    subject: Subject,
) -> None:
    """A crash calling on_paused leaves a visible review; recover() makes the owed call once."""
    rig = Rig(hitl_backend, hitl_style, hitl_clock, graph_kind)
    rig.injector.arm("in_hook", hook="on_paused")
    with pytest.raises(SimulatedCrash):
        await rig.coord.process("t1", message_for(subject))
    await assert_invariants(rig.coord, drafter=rig.drafter, crashed=True)
    assert rig.hooks_called("t1") == []

    await rig.restart_and_recover()

    await assert_invariants(rig.coord, drafter=rig.drafter)
    assert rig.hooks_called("t1") == ["on_paused"]
    assert [p.thread_id for p in await rig.coord.pending()] == ["t1"]
    await rig.coord.approve("t1", reviewer="officer")
    await assert_invariants(rig.coord, drafter=rig.drafter)
    assert rig.hooks_called("t1") == ["on_paused", "on_decided"]
    assert await rig.drafted_once_per_turn("t1", 1)
    if subject == "tool":
        assert rig.bank.transfers == PAID["approve"]


@pytest.mark.hitl_both_styles
@pytest.mark.parametrize("point", FAULT_POINTS)
@pytest.mark.parametrize(("graph_kind", "subject"), SUBJECTS)
async def test_a_crash_in_an_sla_sweep_is_survived(
    hitl_backend: Backend,
    hitl_style: PauseStyle,
    hitl_clock: FakeClock,
    point: FaultPoint,
    graph_kind: GraphKind,
    subject: Subject,
) -> None:
    """A sweeper that dies expiring a review leaves it to recover(), which expires it once."""
    rig = Rig(hitl_backend, hitl_style, hitl_clock, graph_kind, sla=timedelta(minutes=5))
    await rig.coord.process("t1", message_for(subject))
    hitl_clock.advance(minutes=6)
    rig.injector.arm(point)
    with pytest.raises(SimulatedCrash):
        await rig.coord.expire_overdue()
    await assert_invariants(rig.coord, drafter=rig.drafter, crashed=True)

    await rig.restart_and_recover()

    await assert_invariants(rig.coord, drafter=rig.drafter)
    assert await rig.decision_events("t1") == ["expired"]
    assert await rig.coord.expire_overdue() == []
    assert rig.hooks_called("t1") == ["on_paused", "on_expired"]
    assert await finished_runs(rig.coord, "t1") == 1
    assert rig.bank.transfers == []  # an expired review is rejected: the call never runs


async def test_a_crash_completing_a_quorum_is_survived(hitl_clock: FakeClock) -> None:
    """A vote below the quorum claims nothing; the crash at the deciding vote is recovered."""
    backend = memory_backend()
    policy = RoleBasedPolicy(default_roles="officer", quorum={"guarantee": 2})
    rig = Rig(backend, "command_resume", hitl_clock, policy=policy)
    ann, bo = (Reviewer(n, roles=frozenset({"officer"})) for n in ("ann", "bo"))
    await rig.coord.process("t1", RISKY)
    rig.injector.arm("after_claim")
    assert (await rig.coord.approve("t1", reviewer=ann)).status == "paused"
    assert rig.injector.armed == "after_claim"
    with pytest.raises(SimulatedCrash):
        await rig.coord.approve("t1", reviewer=bo)

    [result] = await rig.restart_and_recover()

    assert result.agent_response == SCRIPT[RISKY]
    await assert_invariants(rig.coord, drafter=rig.drafter)
    [approved] = [r for r in await backend.reviews.audit_log("t1") if r.event == "approved"]
    assert approved.payload["approvers"] == ["ann", "bo"]


class TestDeadProcess:
    """Once a fault fires, the injected process is dead until restarted."""

    async def test_everything_through_the_injector_raises(self) -> None:
        """Store, graph and hook calls all raise SimulatedCrash; the wrapped objects still work."""
        rig = Rig.in_memory()
        coord, injector, store = rig.coord, rig.injector, rig.backend.reviews
        await coord.process("t1", RISKY)
        injector.arm("after_claim")
        with pytest.raises(SimulatedCrash):
            await coord.reject("t1", reviewer="officer")
        assert injector.dead
        assert injector.fired == ["after_claim"]
        for call in (coord.pending(), coord.process("t2", CLEAN), coord.recover()):
            with pytest.raises(SimulatedCrash, match="restart"):
                await call
        with pytest.raises(SimulatedCrash):
            await coord.graph.aget_state({"configurable": {"thread_id": "t1"}})
        with pytest.raises(SimulatedCrash):
            coord.reviews.configure_hooks(frozenset())
        with pytest.raises(RuntimeError, match="restart"):
            injector.arm("in_hook")
        assert (await store.get_review("t1")).status == "claimed"  # type: ignore[union-attr]
        injector.restart()
        assert not injector.dead
        assert [p.thread_id for p in await coord.pending()] == []

    async def test_the_coordinators_cleanup_cannot_run(self) -> None:
        """A crash before resuming keeps the claim the coordinator would otherwise release."""
        rig = Rig.in_memory("command_resume")
        await rig.coord.process("t1", RISKY)
        rig.injector.arm("before_resume")
        with pytest.raises(SimulatedCrash):
            await rig.coord.approve("t1", reviewer="officer")
        review = await rig.backend.reviews.get_review("t1")
        assert review is not None
        assert review.status == "claimed"

    def test_a_crash_is_not_an_exception(self) -> None:
        """`except Exception` does not swallow a crash: a dead process does not carry on."""
        assert not issubclass(SimulatedCrash, Exception)
        assert issubclass(SimulatedCrash, BaseException)


class TestArming:
    """Faults fire where and when they are armed, once."""

    async def test_only_on_the_armed_thread(self) -> None:
        """A fault armed for one thread lets decisions on others through."""
        rig = Rig.in_memory()
        coord, injector = rig.coord, rig.injector
        await coord.process("t1", RISKY)
        await coord.process("t2", RISKY)
        injector.arm("after_resume_before_record", thread_id="t2")
        assert (await coord.approve("t1", reviewer="officer")).status == "completed"
        with pytest.raises(SimulatedCrash):
            await coord.approve("t2", reviewer="officer")

    async def test_disarm(self) -> None:
        """A disarmed fault never fires."""
        rig = Rig.in_memory()
        coord, injector = rig.coord, rig.injector
        await coord.process("t1", RISKY)
        injector.arm("before_resume")
        injector.disarm()
        assert injector.armed is None
        assert (await coord.approve("t1", reviewer="officer")).status == "completed"
        assert injector.fired == []

    @pytest.mark.parametrize(
        ("point", "hook"),
        [("nowhere", None), ("after_claim", "on_paused"), ("in_hook", "on_whatever")],
    )
    def test_bad_arguments(self, point: Any, hook: str | None) -> None:
        """Unknown points and hooks, and a hook for another point, are refused."""
        with pytest.raises(ValueError, match=r"hook|point"):
            FaultInjector().arm(point, hook=hook)


class TestWrapping:
    """The wrappers stand in for the real store, graph and hooks."""

    def test_store_wrapper_is_a_review_store(self) -> None:
        """The wrapper implements the whole protocol and passes other attributes through."""
        store = InMemoryReviewStore()
        wrapped = FaultInjector().wrap_store(store)
        assert isinstance(wrapped, ReviewStore)
        assert unwrap_store(wrapped) is store
        assert unwrap_store(store) is store
        assert wrapped._reviews is store._reviews  # type: ignore[attr-defined]

    def test_graph_wrapper_leaves_the_graph_alone(self) -> None:
        """The wrapper is a registered copy; the original is unchanged and cannot be rewrapped."""
        graph = build(ScriptedDrafter(SCRIPT), InMemorySaver(), "command_resume")
        injector = FaultInjector()
        wrapped = injector.wrap_graph(graph)
        assert wrapped is not graph
        assert "ainvoke" not in vars(graph)
        assert unwrap_graph(wrapped) is graph
        assert HitlCoordinator(wrapped).graph is wrapped
        with pytest.raises(ValueError, match="wrapped already"):
            injector.wrap_graph(wrapped)

    async def test_hooks_wrapper_calls_the_applications_hooks(self) -> None:
        """Wrapped hooks call the application's (sync or async) hooks; missing ones stay unset."""
        seen: list[str] = []

        async def on_decided(event: Any) -> None:
            seen.append(f"decided {event.thread_id}")

        injector = FaultInjector()
        hooks = injector.wrap_hooks(Hooks(on_paused=lambda e: seen.append(f"paused {e.thread_id}")))
        assert hooks.names() == {"on_paused"}
        assert injector.wrap_hooks().names() == {"on_paused", "on_decided", "on_expired"}
        graph = build(ScriptedDrafter(SCRIPT), InMemorySaver(), "interrupt_before")
        coord = injector.coordinator(
            graph, hooks=Hooks(on_paused=lambda e: seen.append("paused"), on_decided=on_decided)
        )
        await coord.process("t1", RISKY)
        await coord.approve("t1", reviewer="officer")
        assert seen == ["paused", "decided t1"]
        assert [(c.hook, c.thread_id) for c in injector.hook_calls] == [
            ("on_paused", "t1"),
            ("on_decided", "t1"),
        ]
