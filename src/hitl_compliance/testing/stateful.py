"""A reusable Hypothesis state machine of the coordinator lifecycle.

[`CoordinatorMachine`][hitl_compliance.testing.CoordinatorMachine] drives one
coordinator through random interleavings of `process`, approve, approve with
an edit, reject, SLA expiry by the clock, crashes at every
[`FaultPoint`][hitl_compliance.testing.FaultPoint] and `recover()`, on a few
threads. After every step it checks
[`assert_invariants`][hitl_compliance.testing.assert_invariants] and a small
model of which threads are paused, in flight or decided. Subclass it with your
own rules, drafts, reviewers and policy:

```python
class ClaimsMachine(CoordinatorMachine):
    compliance_rules = [KeywordRule("payout_promise", ["guaranteed payout"])]
    script = {"Will you pay my claim?": "Your claim has a guaranteed payout."}
    reviewers = ["adjuster@insurer"]

TestClaims = ClaimsMachine.TestCase
```

Needs Hypothesis: `pip install "hitl-compliance[testing]"`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

try:
    import hypothesis
    from hypothesis import HealthCheck
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        invariant,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'hitl_compliance.testing.stateful needs Hypothesis: pip install "hitl-compliance[testing]"'
    ) from exc

from langgraph.checkpoint.base import BaseCheckpointSaver

from hitl_compliance._coordination.driver import driver_for
from hitl_compliance.backends import Backend, open_backend
from hitl_compliance.coordinator import OnTimeout
from hitl_compliance.errors import (
    AlreadyDecidedError,
    DuplicateVoteError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.graph import (
    ComplianceGraph,
    PauseStyle,
    build_compliance_graph,
    is_factory_graph,
)
from hitl_compliance.hooks import Hooks
from hitl_compliance.models import ProcessResult
from hitl_compliance.policy import ApprovalPolicy, Reviewer
from hitl_compliance.rules import ComplianceRule
from hitl_compliance.testing.fakes import FakeClock, ScriptedDrafter
from hitl_compliance.testing.faults import (
    FAULT_POINTS,
    FaultInjector,
    FaultPoint,
    unwrap_graph,
    unwrap_store,
)
from hitl_compliance.testing.invariants import assert_invariants
from hitl_compliance.testing.lifecycle import DecisionKind, HumanDecision, Outcome, Step, run_step
from hitl_compliance.testing.strategies import customer_messages, decisions

__all__ = ["CoordinatorMachine", "run_machine"]

T = TypeVar("T")
_DECISION_EVENTS = ("approved", "rejected", "expired")


class CoordinatorMachine(RuleBasedStateMachine):
    """The coordinator lifecycle as a `RuleBasedStateMachine`: subclass it, set class attributes.

    Each example opens a fresh backend from `backend_url` (its own table
    prefix and thread ids, so examples sharing a database never meet), builds
    the graph with [`build_graph`][hitl_compliance.testing.stateful.CoordinatorMachine.build_graph]
    and wraps everything in a [`FaultInjector`][hitl_compliance.testing.FaultInjector].

    Rules: `process` (a message from `messages`, default the keys of `script`),
    `decide` (approve, approve with one of `edits`, reject, or expire when
    `sla` is set, by one of `reviewers`), `tick` (half the lease, past the
    lease, past the SLA), `expire` (`expire_overdue()`), `recover`, and
    `crash` (one of those decisions, a process or a sweep with one of `faults`
    armed). A crashed call leaves its thread "in flight" until `recover()`
    after the lease must finish it.

    Invariants: [`assert_invariants`][hitl_compliance.testing.assert_invariants]
    (with `crashed=True` while a crash is not yet recovered), `pending()` lists
    exactly the threads the model says are paused, each thread has exactly the
    decision audit rows the model counted, and each result is what its step
    should give (the draft, the edit, or `rejection_message`).
    """

    compliance_rules: ClassVar[Sequence[ComplianceRule]] = ()
    """The rules of the graph under test."""
    script: ClassVar[Mapping[str, str]] = {}
    """Customer message -> the draft the scripted drafter writes for it."""
    messages: ClassVar[Sequence[str]] = ()
    """Messages to process (default: the keys of `script`; random ones if both are empty)."""
    expected_status: ClassVar[Mapping[str, str]] = {}
    """Message -> the status `process` must return for it (`paused`, `completed`, `rejected`)."""
    reviewers: ClassVar[Sequence[str | Reviewer]] = ("officer@example.com",)
    """Who decides; include unauthorised ones to exercise the policy."""
    edits: ClassVar[Sequence[str]] = ("Please call us so we can talk this through.",)
    """Replies reviewers approve instead of the draft."""
    policy: ClassVar[ApprovalPolicy | None] = None
    """The coordinator's approval policy (None: everyone may decide)."""
    sla: ClassVar[timedelta | None] = None
    """The coordinator's SLA; enables the `expire` rule and expire decisions."""
    on_timeout: ClassVar[OnTimeout] = "reject"
    """What an expired review becomes."""
    lease: ClassVar[timedelta] = timedelta(seconds=30)
    """The coordinator's lease."""
    rejection_message: ClassVar[str | None] = None
    """What the customer gets on rejection."""
    threads: ClassVar[Sequence[str]] = ("t1", "t2", "t3")
    """Thread names the rules pick from."""
    faults: ClassVar[Sequence[FaultPoint]] = FAULT_POINTS
    """Fault points the `crash` rule arms (empty: no crashes)."""
    style: ClassVar[PauseStyle] = "interrupt_before"
    """The pause style of the graph."""
    backend_url: ClassVar[str] = "memory://"
    """Where each example keeps its checkpoints, reviews and audit log."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.run_id = uuid.uuid4().hex[:8]
        self.clock = FakeClock()
        self.drafter = self.make_drafter()
        self.injector = FaultInjector()
        self._backend_cm = self.open_backend()
        self.backend: Backend = self.run(self._backend_cm.__aenter__())
        try:
            graph = self.build_graph(self.drafter, self.backend.checkpointer)
            self.coord = self.injector.coordinator(
                graph,
                reviews=self.backend.reviews,
                hooks=self.make_hooks(),
                policy=self.policy,
                clock=self.clock,
                lease=self.lease,
                sla=self.sla,
                on_timeout=self.on_timeout,
            )
        except BaseException:
            self.teardown()
            raise
        self.status: dict[str, str] = {}  # thread id -> paused | in_flight | done
        self.drafts: dict[str, str] = {}  # thread id -> the draft its open review shows
        self.in_flight: dict[str, datetime] = {}  # thread id -> when its decision crashed
        self.unrecovered: list[datetime] = []  # crash times recover() has not yet passed
        self.decisions: Counter[str] = Counter()

    # -- what a subclass may override --------------------------------------------

    def make_drafter(self) -> ScriptedDrafter:
        """The drafter of the graph: a `ScriptedDrafter` over `script`."""
        return ScriptedDrafter(self.script)

    def build_graph(
        self, drafter: ScriptedDrafter, checkpointer: BaseCheckpointSaver[Any]
    ) -> ComplianceGraph:
        """Your graph factory; the default builds `compliance_rules` around `drafter` in `style`.

        Return a `build_compliance_graph` graph or your own graph with
        [`compliance_gate`][hitl_compliance.compliance_gate]s in it (then
        `drafter` is not used: script your model so its reply depends on the
        conversation only, and give the gate `rejection_message`).
        """
        return build_compliance_graph(
            drafter,
            rules=self.compliance_rules,
            checkpointer=checkpointer,
            style=self.style,
            rejection_message=self.rejection_message,
        )

    def make_hooks(self) -> Hooks | None:
        """The application's hooks (default None: no-op hooks, so every event owes a call)."""
        return None

    def open_backend(self) -> AbstractAsyncContextManager[Backend]:
        """Open this example's backend (default: `open_backend(backend_url)`, own table prefix)."""
        return open_backend(self.backend_url, table_prefix=f"m{self.run_id}_")

    # -- plumbing ------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this example's event loop."""
        return self.loop.run_until_complete(coro)

    def tid(self, thread: str) -> str:
        """The thread id of `thread` in this example."""
        return f"{thread}-{self.run_id}"

    def teardown(self) -> None:
        """Close the backend and the event loop."""
        try:
            if hasattr(self, "backend"):
                self.run(self._backend_cm.__aexit__(None, None, None))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def _messages(self) -> st.SearchStrategy[str]:
        messages = list(self.messages or self.script)
        return st.sampled_from(messages) if messages else customer_messages()

    def _decisions(self) -> st.SearchStrategy[HumanDecision]:
        kinds: list[DecisionKind] = ["approve", "approve", "reject"]
        if self.edits:
            kinds.append("edit")
        if self.sla is not None:
            kinds.append("expire")
        return decisions(
            kinds=kinds,
            reviewer=st.sampled_from(list(self.reviewers)),
            responses=st.sampled_from(list(self.edits)) if self.edits else None,
        )

    def _ticks(self) -> list[float]:
        lease = self.lease.total_seconds()
        ticks = [lease / 2, lease + 1]
        if self.sla is not None:
            ticks.append(self.sla.total_seconds() + 1)
        return ticks

    def apply(self, step: Step) -> Outcome:
        """Run `step` through [`run_step`][hitl_compliance.testing.run_step] and check it."""
        outcome = self.run(run_step(self.coord, step, clock=self.clock, injector=self.injector))
        if hypothesis.currently_in_test_context():
            hypothesis.event(_describe(outcome))
        if outcome.crash is not None:
            self._after_crash(step, outcome)
        elif step.kind == "process":
            self._after_process(step, outcome)
        elif step.kind == "decide":
            self._after_decision(step, outcome)
        elif step.kind == "expire":
            self._after_results(outcome.results, None)
        elif step.kind == "recover":
            self._after_recover(outcome)
        return outcome

    # -- rules ---------------------------------------------------------------------

    def _paused(self) -> list[str]:
        return [t for t in self.threads if self.status.get(self.tid(t)) == "paused"]

    @rule(data=st.data())
    def process(self, data: st.DataObject) -> None:
        """Process a customer message on a thread."""
        thread = data.draw(st.sampled_from(list(self.threads)), label="thread")
        message = data.draw(self._messages(), label="message")
        self.apply(Step("process", self.tid(thread), message=message))

    @precondition(lambda self: bool(self._paused()))
    @rule(data=st.data())
    def decide(self, data: st.DataObject) -> None:
        """Approve, edit, reject or expire the review of a paused thread."""
        thread = data.draw(st.sampled_from(self._paused()), label="thread")
        decision = data.draw(self._decisions(), label="decision")
        self.apply(Step("decide", self.tid(thread), decision=decision))

    @rule(data=st.data())
    def decide_any_thread(self, data: st.DataObject) -> None:
        """Decide any thread: one that is not paused must refuse, changing nothing."""
        thread = data.draw(st.sampled_from(list(self.threads)), label="thread")
        decision = data.draw(self._decisions(), label="decision")
        self.apply(Step("decide", self.tid(thread), decision=decision))

    @rule(data=st.data())
    def tick(self, data: st.DataObject) -> None:
        """Move the clock: within the lease, past it, or past the SLA."""
        self.apply(Step("tick", seconds=data.draw(st.sampled_from(self._ticks()), label="sec")))

    @precondition(lambda self: self.sla is not None and bool(self._paused()))
    @rule()
    def expire(self) -> None:
        """Sweep the reviews past their deadline."""
        self.apply(Step("expire"))

    # With crashes on, recover only after one (so examples stay busy); without, it
    # must always find nothing to do.
    @precondition(lambda self: bool(self.unrecovered) or not self.faults)
    @rule()
    def recover(self) -> None:
        """Finish what crashed calls left behind (only claims older than the lease)."""
        self.apply(Step("recover"))

    @precondition(lambda self: bool(self.faults))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """A decision on a paused thread, a process or a sweep, with a fault point armed."""
        point = data.draw(st.sampled_from(list(self.faults)), label="fault")
        actions = ["process"]
        if self._paused():
            actions += ["decide", "decide"] + (["expire"] if self.sla is not None else [])
        action = data.draw(st.sampled_from(actions), label="action")
        if action == "decide":
            thread = self.tid(data.draw(st.sampled_from(self._paused()), label="thread"))
            step = Step("decide", thread, decision=data.draw(self._decisions()), fault=point)
        elif action == "process":
            thread = self.tid(data.draw(st.sampled_from(list(self.threads)), label="thread"))
            step = Step("process", thread, message=data.draw(self._messages()), fault=point)
        else:
            step = Step("expire", fault=point)
        self.apply(step)

    # -- checks --------------------------------------------------------------------

    def _after_process(self, step: Step, outcome: Outcome) -> None:
        thread = step.thread_id
        if self.status.get(thread) in ("paused", "in_flight"):
            assert isinstance(outcome.error, ThreadBusyError), (
                f"processing busy thread {thread!r} gave {outcome}"
            )
            return
        assert outcome.error is None, f"processing idle thread {thread!r} failed: {outcome.error!r}"
        [result] = outcome.results
        expected = self.expected_status.get(step.message)
        assert expected in (None, result.status), (
            f"{step.message!r} gave {result.status!r}, expected {expected!r}"
        )
        if result.status == "paused":
            assert result.agent_response is None, "a paused turn delivered a reply"
            self.status[thread] = "paused"
            self.drafts[thread] = result.draft_response or ""
        elif result.status == "completed":
            assert (result.agent_type, result.agent_response) == ("llm", result.draft_response)
            self.status[thread] = "done"
        else:
            assert (result.agent_type, result.agent_response) == ("system", self.rejection_message)
            self.status[thread] = "done"

    def _after_decision(self, step: Step, outcome: Outcome) -> None:
        thread = step.thread_id
        if self.status.get(thread) != "paused":
            assert isinstance(outcome.error, (ReviewNotFoundError, AlreadyDecidedError)), (
                f"deciding {thread!r} ({self.status.get(thread, 'never paused')}) gave {outcome}"
            )
            return
        if outcome.error is not None:
            refusals = (NotAuthorizedError, PolicyViolationError, DuplicateVoteError)
            assert isinstance(outcome.error, refusals), f"deciding {thread!r} gave {outcome}"
            return
        self._after_results(outcome.results, step.decision)

    def _after_results(
        self, results: Sequence[ProcessResult], decision: HumanDecision | None
    ) -> None:
        for result in results:
            thread = result.thread_id
            assert self.status.get(thread) == "paused", f"{thread!r} was not paused: {result}"
            if result.status == "paused":
                continue  # a vote below the quorum, or an escalation
            self.status[thread] = "done"
            self.decisions[thread] += 1
            if result.status == "rejected":
                assert result.agent_response == self.rejection_message
            elif decision is not None and decision.kind == "edit":
                assert result.agent_response == decision.response
            else:
                assert result.agent_response == self.drafts[thread]

    def _after_recover(self, outcome: Outcome) -> None:
        cutoff = self.clock.now - self.lease
        due = {t for t, since in self.in_flight.items() if since < cutoff}
        finished = {r.thread_id for r in outcome.results}
        assert finished == due, f"recover() finished {finished}, expected {due}"
        for thread in due:
            review = self.run(self.backend.reviews.get_review(thread))
            assert review is not None
            assert review.status in _DECISION_EVENTS, f"recover() left {review}"
            del self.in_flight[thread]
            self.status[thread] = "done"
            self.decisions[thread] += 1
        self.unrecovered = [t for t in self.unrecovered if t >= cutoff]

    def _after_crash(self, step: Step, outcome: Outcome) -> None:
        assert outcome.crash is not None
        point = outcome.crash.point
        reviews = self.backend.reviews
        changed: list[str] = []
        for thread in {*self.status, step.thread_id} - {""}:
            review = self.run(reviews.get_review(thread))
            before = self.status.get(thread)
            if review is None:
                continue
            if review.status == "pending" and before not in ("paused", "in_flight"):
                self.status[thread] = "paused"  # the crash hit the on_paused hook
                self.drafts[thread] = review.draft_response
            elif review.status == "claimed" and before == "paused":
                self.status[thread] = "in_flight"
                self.in_flight[thread] = review.claimed_at or self.clock.now
                self.unrecovered.append(self.in_flight[thread])
                changed.append(thread)
            elif review.status in _DECISION_EVENTS and before == "paused":
                self.status[thread] = "done"  # decided; only the hook call was lost
                self.decisions[thread] += 1
        if point == "in_hook":
            assert not changed, f"a crash in a hook left claims behind: {changed}"
            owed = [
                d.created_at for d in self.run(reviews.pending_hooks()) if d.status == "pending"
            ]
            assert owed, "a crash in a hook left no hook call owed"
            self.unrecovered.append(max(owed))
            return
        assert len(changed) == 1, f"a crash at {point!r} left {changed} in flight"
        [thread] = changed
        graph = unwrap_graph(self.coord.graph)
        if not is_factory_graph(graph):
            self._check_gated_crash(point, thread)
            return
        snapshot = self.run(self.coord.graph.aget_state({"configurable": {"thread_id": thread}}))
        if point == "after_resume_before_record":
            assert snapshot.next == (), f"{point}: the graph of {thread!r} did not finish"
        else:
            assert snapshot.next == ("human_approval",), f"{point}: the graph of {thread!r} moved"

    def _check_gated_crash(self, point: FaultPoint, thread: str) -> None:
        """A graph with gates: the claimed review's gate still waits, or the run went on."""
        reviews = unwrap_store(self.backend.reviews)
        driver = driver_for(unwrap_graph(self.coord.graph), None, reviews)
        pos = self.run(driver.position(thread))
        review = self.run(reviews.get_review(thread))
        assert review is not None
        if point == "after_resume_before_record":
            assert not driver.at_review(pos, review), f"{point}: {thread!r} still waits"
            assert not pos.next, f"{point}: the graph of {thread!r} did not finish"
        else:
            assert driver.at_review(pos, review), f"{point}: the graph of {thread!r} moved"

    @invariant()
    def invariants_hold(self) -> None:
        """Store, audit, checkpoints and the model agree (see `assert_invariants`)."""
        self.run(
            assert_invariants(
                self.coord,
                drafter=self.drafter,
                threads=list(self.status),
                crashed=bool(self.unrecovered),
            )
        )
        pending = {p.thread_id for p in self.run(self.coord.pending())}
        paused = {t for t, s in self.status.items() if s == "paused"}
        assert pending == paused, f"pending() lists {pending}, the model says {paused}"
        for thread in self.status:
            log = self.run(self.backend.reviews.audit_log(thread))
            decided = sum(r.event in _DECISION_EVENTS for r in log)
            assert decided == self.decisions[thread], (
                f"{thread!r} has {decided} decision audit rows, the model counted "
                f"{self.decisions[thread]}"
            )


def _describe(outcome: Outcome) -> str:
    """A label for Hypothesis's statistics (`pytest --hypothesis-show-statistics`)."""
    step = outcome.step
    kind = step.kind if step.decision is None else f"decide {step.decision.kind}"
    if outcome.crash is not None:
        return f"{kind}: crashed at {outcome.crash.point}"
    if outcome.error is not None:
        return f"{kind}: refused ({type(outcome.error).__name__})"
    statuses = sorted({r.status for r in outcome.results})
    return f"{kind}: {', '.join(statuses) or 'nothing to do'}"


def run_machine(
    machine: type[CoordinatorMachine],
    *,
    backend_url: str | None = None,
    style: PauseStyle | None = None,
    settings: hypothesis.settings | None = None,
) -> None:
    """Run `machine` as a test, on another backend or pause style than its class says.

    For use inside a pytest test, for example with the plugin's
    `hitl_backend_url` and `hitl_style` fixtures (run it from a synchronous
    test: the machine runs its own event loops).

    Example:
        ```python
        @pytest.mark.hitl_both_styles
        def test_claims_lifecycle(hitl_backend_url, hitl_style):
            run_machine(ClaimsMachine, backend_url=hitl_backend_url, style=hitl_style)
        ```
    """
    overrides: dict[str, Any] = {}
    if backend_url is not None:
        overrides["backend_url"] = backend_url
    if style is not None:
        overrides["style"] = style
    configured = type(machine.__name__, (machine,), overrides) if overrides else machine
    run_state_machine_as_test(
        configured,
        settings=settings
        or hypothesis.settings(deadline=None, suppress_health_check=list(HealthCheck)),
    )
