"""Make a review store and policy the authority over a graph's pauses, wherever it runs.

[`HitlCoordinator`][hitl_compliance.HitlCoordinator] does this for the graph it
is given. Where no coordinator can be built beside the graph (a module served
by LangGraph Server, which compiles it without a checkpointer and resumes it
through its own API), call [`attach_authority`][hitl_compliance.attach_authority]
on it: every decision then passes the checks `approve()` / `reject()` make,
inside the graph, and is claimed and audited in `reviews`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from hitl_compliance._authority import COORDINATOR_PERMISSION, AuthoritySlot, DecisionAuthority
from hitl_compliance._coordination.in_graph import InGraphAuthority, authority_context
from hitl_compliance._coordination.telemetry import instruments_for
from hitl_compliance.errors import ConfigurationError
from hitl_compliance.gate import gates_in, is_gate
from hitl_compliance.graph import graph_spec, is_factory_graph
from hitl_compliance.hooks import Hooks
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, InputLimits
from hitl_compliance.models import ReviewRecord
from hitl_compliance.policy import ApprovalPolicy, Reviewer
from hitl_compliance.qa import QaSampling, QaStore
from hitl_compliance.reasons import ReasonCodes, ReasonPolicy
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision
from hitl_compliance.stores._legacy import is_legacy, wrap_legacy
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.telemetry import Telemetry

__all__ = ["COORDINATOR_PERMISSION", "attach_authority"]


def slots_of(graph: Any) -> list[AuthoritySlot]:
    """Where an authority attaches in `graph`: a factory graph's approval step, or its gates.

    Raises:
        ConfigurationError: `graph` is neither a factory graph nor holds a gate.
    """
    if is_factory_graph(graph):
        return [graph_spec(graph).authority]
    slots = [gate.slot for gate in gates_in(graph)]
    if not slots:
        raise ConfigurationError(
            "attach_authority needs a graph made by build_compliance_graph() or one "
            f"holding a compliance_gate(); got {type(graph).__name__}."
        )
    return slots


def attach(graph: Any, authority: DecisionAuthority) -> None:
    """Make `authority` the one every decision on `graph`'s pauses answers to."""
    for slot in slots_of(graph):
        slot.authority = authority


class _SetUpFirst:
    """An authority whose store is set up (idempotently) before its first use."""

    def __init__(self, inner: InGraphAuthority) -> None:
        self._inner = inner
        self._ready: asyncio.Future[None] | None = None

    @property
    def reviews(self) -> ReviewStore:
        return self._inner.reviews

    @property
    def limits(self) -> InputLimits:
        return self._inner.limits

    async def ready(self) -> None:
        """Set the store up (once per event loop); what a trusted coordinator's run needs."""
        await self._setup()

    async def _setup(self) -> None:
        if self._ready is None or self._ready.get_loop() is not asyncio.get_running_loop():
            self._ready = asyncio.ensure_future(self._inner.reviews.setup())
        await asyncio.shield(self._ready)

    async def decide(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        made: Decision,
        edit_findings: list[RuleResult],
        reviewer: Reviewer | None,
    ) -> Any:
        await self._setup()
        return await self._inner.decide(
            thread_id=thread_id,
            review_id=review_id,
            made=made,
            edit_findings=edit_findings,
            reviewer=reviewer,
        )

    async def complete(
        self, *, thread_id: str, review_id: str | None, made: Decision, delivered: str | None
    ) -> None:
        await self._setup()
        await self._inner.complete(
            thread_id=thread_id, review_id=review_id, made=made, delivered=delivered
        )

    async def record_pause(self, review: ReviewRecord) -> None:
        await self._setup()
        await self._inner.record_pause(review)

    async def sample_for_qa(
        self,
        *,
        thread_id: str,
        turn: str,
        rules: tuple[str, ...],
        product: str | None,
        reply_seq: int | None,
    ) -> None:
        await self._setup()
        await self._inner.sample_for_qa(
            thread_id=thread_id, turn=turn, rules=rules, product=product, reply_seq=reply_seq
        )


def attach_authority(
    graph: Any,
    *,
    reviews: ReviewStore,
    policy: ApprovalPolicy | None = None,
    hooks: Hooks | None = None,
    clock: Callable[[], datetime] | None = None,
    setup: bool = True,
    sla: timedelta | None = None,
    sla_by: Mapping[str, timedelta] | None = None,
    reason_codes: ReasonCodes | None = None,
    reason_policy: ReasonPolicy | None = None,
    telemetry: Telemetry | None = None,
    qa_sampling: QaSampling | None = None,
    limits: InputLimits | None = None,
) -> Any:
    """Check, claim and audit every decision on `graph`'s pauses in `reviews`, under `policy`.

    For a graph resumed by others than a [`HitlCoordinator`][hitl_compliance.HitlCoordinator]
    in this process: LangGraph Server (`runs.create(command={"resume": ...})`,
    `threads.update_state`), a script's `Command(resume=...)`. Each decision is
    refused (the thread stays paused, the refusal audited) or claimed once and
    audited, exactly as `approve()` / `reject()` would; on the server the
    reviewer is the authenticated user. Gates also record their pauses in
    `reviews`, so a coordinator on the same store lists and decides them. A
    coordinator built on the graph later takes over (it attaches itself).

    Args:
        graph: A graph from `build_compliance_graph` or one holding `compliance_gate`s
            (a copy shares the attachment).
        reviews: The review store (share it, say on PostgreSQL, with your coordinators).
        policy: Who may decide what (default: everyone, as a coordinator without one).
        hooks: Called after decisions are durable.
        clock: The time stamped on decisions (timezone-aware).
        setup: Run `reviews.setup()` (idempotent) before the first decision, for a
            module that cannot await at import.
        sla: The deadline of every pause the graph records (runs no coordinator
            drives), as `HitlCoordinator(sla=...)` gives the pauses it records; an
            SLA worker on the store (`hitl-compliance expire --every`) resolves them.
        sla_by: Per rule name or severity SLAs, as `HitlCoordinator(sla_by=...)`.
        reason_codes: The reason-code taxonomy decisions are checked against, as
            `HitlCoordinator(reason_codes=...)` (default: `FCA_RETAIL_REASON_CODES`).
        reason_policy: Which actions need a reason code, as `HitlCoordinator(reason_policy=...)`.
        telemetry: Where the `hitl.decide` spans and decision metrics of decisions
            claimed in the graph go, as `HitlCoordinator(telemetry=...)` (default:
            the global providers when the `otel` extra is installed).
        qa_sampling: Sample the replies the rules deliver alone for second-line QA,
            as `HitlCoordinator(qa_sampling=...)` (on LangGraph Server, where the
            served graph delivers them); needs a store that keeps QA reviews.
        limits: The largest texts and metadata a decision may carry, as
            `HitlCoordinator(limits=...)` (default: `InputLimits()`); a larger one
            is refused (the thread stays paused, the refusal shown at the pause).

    Returns:
        `graph`, for `graph = attach_authority(builder.compile(), ...)`.

    Raises:
        ConfigurationError: `graph` has no pause of this library, or a bad argument.

    Example:
        ```python
        graph = attach_authority(
            builder.compile(),  # LangGraph Server adds its own checkpointer
            reviews=PostgresReviewStore.from_conn_string(os.environ["REVIEWS_DSN"]),
            policy=RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"}),
        )
        ```
    """
    if is_gate(graph):
        raise ConfigurationError(
            "Attach the authority to the compiled graph holding the gate, not to the gate."
        )
    if is_legacy(reviews):
        reviews = cast(ReviewStore, wrap_legacy(reviews))  # a store from before newer methods
    if not isinstance(reviews, ReviewStore):
        raise ConfigurationError(
            f"reviews must implement ReviewStore, got {type(reviews).__name__}."
        )
    if policy is not None and not isinstance(policy, ApprovalPolicy):
        raise ConfigurationError(
            f"policy must implement ApprovalPolicy, got {type(policy).__name__}."
        )
    if hooks is not None and not isinstance(hooks, Hooks):
        raise ConfigurationError("hooks must be a hitl_compliance.Hooks instance.")
    for value in [sla, *(sla_by or {}).values()]:
        if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
            raise ConfigurationError("sla and sla_by values must be positive timedeltas.")
    if limits is not None and not isinstance(limits, InputLimits):
        raise ConfigurationError(
            f"limits must be a hitl_compliance.InputLimits, got {type(limits).__name__}."
        )
    if qa_sampling is not None and not isinstance(qa_sampling, QaSampling):
        raise ConfigurationError("qa_sampling must be a hitl_compliance.QaSampling instance.")
    if qa_sampling is not None and not isinstance(reviews, QaStore):
        raise ConfigurationError(
            f"qa_sampling needs a store that keeps QA reviews (QaStore); "
            f"{type(reviews).__name__} does not."
        )
    ctx = authority_context(
        reviews,
        policy=policy,
        hooks=hooks,
        clock=clock,
        sla=sla,
        sla_by=sla_by,
        reason_codes=reason_codes,
        reason_policy=reason_policy,
        telemetry=instruments_for(telemetry, reviews),
        qa_sampling=qa_sampling,
        limits=DEFAULT_INPUT_LIMITS if limits is None else limits,
    )
    inner = InGraphAuthority(ctx)
    attach(graph, _SetUpFirst(inner) if setup else inner)
    return graph
