"""Lifecycles as data: steps a test (or Hypothesis) builds, runs and replays against a coordinator.

A lifecycle is a list of [`Step`][hitl_compliance.testing.Step]s: process a
customer message, decide a review, move the clock, sweep SLAs, recover, any
of them with a fault armed. [`run_step`][hitl_compliance.testing.run_step]
applies one and returns an [`Outcome`][hitl_compliance.testing.Outcome]: the
results, the refusal a correct coordinator gives to an impossible request
(deciding a thread that is not paused, an unauthorised reviewer...), or the
simulated crash. Anything else propagates: it is a bug.

Example:
    ```python
    steps = [
        Step("process", "t1", message="Can I claim for the flood?"),
        Step("decide", "t1", decision=HumanDecision("approve", "adjuster"), fault="after_claim"),
        Step("tick", seconds=60),
        Step("recover"),
    ]
    await play(coord, steps, clock=clock, injector=injector)
    await assert_invariants(coord)
    ```
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.errors import (
    AlreadyDecidedError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    StaleReviewError,
    ThreadBusyError,
)
from hitl_compliance.models import ProcessResult
from hitl_compliance.policy import Reviewer
from hitl_compliance.testing.fakes import FakeClock, ScriptedDrafterError
from hitl_compliance.testing.faults import FaultInjector, FaultPoint, SimulatedCrash

__all__ = [
    "REFUSALS",
    "DecisionKind",
    "HumanDecision",
    "Outcome",
    "Step",
    "StepKind",
    "play",
    "run_step",
]

DecisionKind: TypeAlias = Literal["approve", "edit", "reject", "expire"]
"""Approve the draft, approve an edited reply, reject, or let the review's SLA run out."""

StepKind: TypeAlias = Literal["process", "decide", "tick", "expire", "recover"]
"""What a [`Step`][hitl_compliance.testing.Step] does."""

REFUSALS: tuple[type[Exception], ...] = (
    ThreadBusyError,
    ReviewNotFoundError,
    AlreadyDecidedError,
    NotAuthorizedError,
    PolicyViolationError,
    StaleReviewError,
    ScriptedDrafterError,
)
"""Errors a step may end with: refusals of impossible requests, or a failing drafter."""


@dataclass(frozen=True)
class HumanDecision:
    """A decision a reviewer (or the SLA) could make on a paused review.

    Attributes:
        kind: `approve`, `edit` (approve with `response`), `reject`, or
            `expire` (the review's deadline passes; needs a coordinator with an SLA).
        reviewer: Who decides: an id or a [`Reviewer`][hitl_compliance.Reviewer] with roles.
        response: The edited reply, for `edit`.
        reason: The rejection reason, for `reject`.
    """

    kind: DecisionKind
    reviewer: str | Reviewer = "officer@example.com"
    response: str | None = None
    reason: str = ""

    async def apply(
        self, coord: HitlCoordinator, thread_id: str, *, clock: FakeClock | None = None
    ) -> ProcessResult:
        """Make this decision on `thread_id`'s pending review; return the thread's result.

        `expire` moves `clock` (the coordinator's fake clock) to the review's
        deadline and sweeps; without `clock` it sweeps as of the deadline.

        Raises:
            ValueError: `expire` on a review without a deadline (no SLA configured).
        """
        for result in await _decide(coord, thread_id, self, clock):
            if result.thread_id == thread_id:
                return result
        raise AlreadyDecidedError(
            f"The SLA sweep did not resolve thread {thread_id!r}.", thread_id=thread_id
        )


@dataclass(frozen=True)
class Step:
    """One step of a lifecycle.

    Attributes:
        kind: `process` (`message` on `thread_id`), `decide` (`decision` on
            `thread_id`), `tick` (advance the clock by `seconds`), `expire`
            (`expire_overdue()`) or `recover` (`recover()`).
        fault: A [`FaultPoint`][hitl_compliance.testing.FaultPoint] armed for
            this step only (on `thread_id`, when it names one).
    """

    kind: StepKind
    thread_id: str = ""
    message: str = ""
    decision: HumanDecision | None = None
    seconds: float = 0.0
    fault: FaultPoint | None = None


@dataclass(frozen=True)
class Outcome:
    """What one step did: its results, the refusal it met, or the crash it caused."""

    step: Step
    results: tuple[ProcessResult, ...] = ()
    error: Exception | None = None
    crash: SimulatedCrash | None = None


async def run_step(
    coord: HitlCoordinator,
    step: Step,
    *,
    clock: FakeClock | None = None,
    injector: FaultInjector | None = None,
) -> Outcome:
    """Apply `step` to `coord`; refusals and simulated crashes become the outcome.

    After a crash the injector is restarted (the next step runs in a "new
    process"); a fault that did not fire is disarmed.

    Raises:
        ValueError: a `tick` without `clock`, a `fault` without `injector`, or
            a `process` / `decide` step missing its message or decision.
    """
    if step.fault is not None:
        if injector is None:
            raise ValueError("A step with a fault needs injector=.")
        injector.arm(step.fault, thread_id=step.thread_id or None)
    try:
        return Outcome(step, tuple(await _run(coord, step, clock)))
    except REFUSALS as exc:
        return Outcome(step, error=exc)
    except SimulatedCrash as crash:
        if injector is not None:
            injector.restart()
        return Outcome(step, crash=crash)
    finally:
        if injector is not None:
            injector.disarm()


async def play(
    coord: HitlCoordinator,
    steps: Iterable[Step],
    *,
    clock: FakeClock | None = None,
    injector: FaultInjector | None = None,
) -> list[Outcome]:
    """Run every step in order with [`run_step`][hitl_compliance.testing.run_step]."""
    return [await run_step(coord, step, clock=clock, injector=injector) for step in steps]


async def _run(coord: HitlCoordinator, step: Step, clock: FakeClock | None) -> list[ProcessResult]:
    if step.kind == "process":
        return [await coord.process(step.thread_id, step.message)]
    if step.kind == "decide":
        if step.decision is None:
            raise ValueError("A decide step needs decision=.")
        return await _decide(coord, step.thread_id, step.decision, clock)
    if step.kind == "tick":
        if clock is None:
            raise ValueError("A tick step needs clock= (a FakeClock).")
        clock.advance(seconds=step.seconds)
        return []
    if step.kind == "expire":
        return await coord.expire_overdue()
    if step.kind == "recover":
        return await coord.recover()
    raise ValueError(f"Unknown step kind {step.kind!r}.")


async def _decide(
    coord: HitlCoordinator, thread_id: str, decision: HumanDecision, clock: FakeClock | None
) -> list[ProcessResult]:
    if decision.kind == "reject":
        return [await coord.reject(thread_id, reviewer=decision.reviewer, reason=decision.reason)]
    if decision.kind in ("approve", "edit"):
        response = decision.response if decision.kind == "edit" else None
        return [await coord.approve(thread_id, reviewer=decision.reviewer, response=response)]
    # The coordinator's own check: ReviewNotFoundError / AlreadyDecidedError, as a reviewer gets.
    review = await coord.review(thread_id)
    if review.deadline is None:
        raise ValueError(
            f"The review of thread {thread_id!r} has no deadline: give the coordinator an sla."
        )
    # The deadline passes: other reviews due by then expire too, as they would.
    if clock is None:
        return await coord.expire_overdue(now=review.deadline)
    clock.now = max(clock.now, review.deadline)
    return await coord.expire_overdue()
