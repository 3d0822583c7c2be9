"""What every concern of the coordinator shares: its configuration and how a graph run is read.

A [`Context`][hitl_compliance._coordination.context.Context] is built once by
[`HitlCoordinator`][hitl_compliance.HitlCoordinator] from its validated
arguments and passed to every function of the other `_coordination` modules.
A run of the graph ends at a [`Position`][hitl_compliance._coordination.context.Position]
(its state, whether it waits for review, its checkpoint), read from the run's
own checkpoint stream so the hot path reads no checkpoint back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from langgraph.types import Durability

from hitl_compliance import _validate
from hitl_compliance._coordination.driver import (
    PAUSED,
    Driver,
    Position,
    checkpoint_config,
    checkpoint_id,
    config_for,
    driver_for,
)
from hitl_compliance._coordination.telemetry import Instruments
from hitl_compliance.assignment import Routing
from hitl_compliance.errors import ConfigurationError
from hitl_compliance.graph import ComplianceGraph, GraphSpec
from hitl_compliance.hooks import Hooks
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, InputLimits
from hitl_compliance.models import ProcessResult, ReviewRecord
from hitl_compliance.policy import ApprovalPolicy
from hitl_compliance.qa import QaSampling
from hitl_compliance.reasons import (
    FCA_RETAIL_REASON_CODES,
    ReasonCodes,
    ReasonPolicy,
    check_reason,
    reason_action,
)
from hitl_compliance.retention import RetentionPolicy
from hitl_compliance.state import ComplianceState, Decision
from hitl_compliance.stores.base import ReviewStore

if TYPE_CHECKING:
    from hitl_compliance.coordinator import OnTimeout

__all__ = [
    "PAUSED",
    "Context",
    "Position",
    "check_thread_id",
    "checkpoint_config",
    "checkpoint_id",
    "config_for",
    "paused_result",
    "position",
    "result",
    "run",
]


_NO_REASON_REQUIRED = ReasonPolicy()


@dataclass(frozen=True, slots=True)
class Context:
    """The coordinator's validated configuration, shared read-only by its concerns.

    Frozen so no concern can re-point another's store or graph mid-flight;
    `HitlCoordinator.__init__` checks every value before building it. `driver`
    is how the graph is read and resumed (derived from `graph` and `spec`
    when not given): the factory graph's, or one for a graph with gates.
    Each call site of `telemetry` is one `is None` branch when it is off.
    """

    graph: ComplianceGraph
    spec: GraphSpec | None
    reviews: ReviewStore
    policy: ApprovalPolicy
    clock: Callable[[], datetime]
    lease: timedelta
    sla: timedelta | None
    sla_by: Mapping[str, timedelta]
    on_timeout: OnTimeout
    hooks: Hooks
    driver: Driver = None  # type: ignore[assignment]
    retention: tuple[RetentionPolicy, ...] = ()
    reason_codes: ReasonCodes = FCA_RETAIL_REASON_CODES
    reason_policy: ReasonPolicy = _NO_REASON_REQUIRED
    telemetry: Instruments | None = None
    """Spans and metrics (None: off, or `opentelemetry-api` not installed)."""
    qa_sampling: QaSampling | None = None
    """Which auto-delivered replies go to second-line QA (None: none)."""
    stop_roles: frozenset[str] = frozenset({"compliance-head"})
    """The roles that may switch the stop (`stop_delivery`, `resume_delivery`)."""
    routing: Routing | None = None
    """How reviews are assigned at pause (None: they are not)."""
    limits: InputLimits = DEFAULT_INPUT_LIMITS
    """The largest texts and metadata accepted (checked before anything is written)."""

    def __post_init__(self) -> None:
        if self.driver is None:
            object.__setattr__(self, "driver", driver_for(self.graph, self.spec, self.reviews))

    def now(self) -> datetime:
        """The clock's time; a naive one is a configuration error (stamps must compare)."""
        now = self.clock()
        if now.tzinfo is None:
            raise ConfigurationError(
                "The coordinator's clock must return timezone-aware datetimes."
            )
        return now

    def check_reason(self, made: Decision, review: ReviewRecord) -> None:
        """Refuse `made` if its reason code is unknown or missing where the policy needs one.

        An approval is an edit when it changes the reply (or the tool call's
        arguments). Called before anything is written (ReasonCodeError).
        """
        edited = made.tool_args is not None or (
            made.response is not None and made.response != review.draft_response
        )
        action = reason_action(approved=made.approved, system=made.kind == "system", edited=edited)
        check_reason(
            self.reason_codes,
            self.reason_policy,
            action=action,
            code=made.reason_code,
            text=made.reason,
            thread_id=review.thread_id,
        )

    def state(self, values: Any) -> ComplianceState:
        """The graph's state values as the `ComplianceState` the coordinator reasons on."""
        return self.driver.view(values)


def check_thread_id(thread_id: str) -> None:
    """Refuse a thread id no store or checkpointer could key (InvalidInputError)."""
    _validate.thread_id(thread_id)


async def run(
    ctx: Context, graph_input: Any, thread_id: str, *, durability: Durability | None = None
) -> Position | None:
    """Run the graph on the thread; where it stopped, from its last checkpoint event.

    With `stream_mode="checkpoints"`, `ainvoke` returns every checkpoint the
    run created, in the format of `aget_state`. A run that returns normally
    stops at its last checkpoint: finished (`next` empty) or paused for
    review. A node that raises propagates. Without a top-level event (say, a
    wrapper that drops the stream mode) the caller reads the snapshot back.

    A decision's resume runs with `durability="sync"`: each step's
    checkpoint is saved before the next node runs, so a crash never leaves
    a later node's writes ahead of the checkpoint they build on.
    """
    return await ctx.driver.run(graph_input, thread_id, durability=durability)


async def position(ctx: Context, thread_id: str, pos: Position | None = None) -> Position:
    """Where the thread stands: `pos` from the run that just ended, else the snapshot."""
    if pos is not None:
        return pos
    return await ctx.driver.position(thread_id)


def paused_result(review: ReviewRecord, quorum: int) -> ProcessResult:
    """A review still waiting (for more approvals), described from its store row."""
    return ProcessResult(
        status="paused",
        thread_id=review.thread_id,
        awaiting_approval=True,
        violations=list(review.violations),
        draft_response=review.draft_response,
        customer_message=review.customer_message,
        checkpoint_id=review.checkpoint_id,
        review_id=review.review_id,
        votes=list(review.votes),
        approvals_required=quorum,
    )


def result(
    thread_id: str,
    pos: Position,
    *,
    review_id: str | None = None,
    reviewer: str | None = None,
) -> ProcessResult:
    """The caller's view of a run that ended at `pos`: paused, completed or rejected."""
    state = pos.state
    if pos.paused:
        status = "paused"
    elif state.is_compliant:
        status = "completed"
    else:
        status = "rejected"
    return ProcessResult(
        status=status,
        thread_id=thread_id,
        awaiting_approval=pos.paused,
        agent_response=None if pos.paused else state.agent_response,
        violations=state.rule_results,
        draft_response=state.draft_response,
        customer_message=state.customer_message,
        agent_type=None if pos.paused else state.agent_type,
        is_compliant=state.is_compliant,
        reviewer=reviewer,
        checkpoint_id=pos.review_checkpoint,
        review_id=review_id,
        metadata=dict(state.metadata),
    )
