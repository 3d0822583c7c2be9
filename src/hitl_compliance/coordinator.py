"""[`HitlCoordinator`][hitl_compliance.HitlCoordinator]: run turns, list and decide reviews.

The coordinator owns what LangGraph leaves to its users: it validates every
decision before it reaches the graph, claims the review row atomically so one
decision wins per pause (across processes, when the store is shared), resumes
each pause style the one correct way, and records the outcome.

This module is the public facade: configuration and the public methods with
their documentation. Each concern lives in its own private module of
`hitl_compliance._coordination`, read in the order a review lives: `turns`
(process, pause), `reviews` (what waits, who may decide), `decisions`
(decide, resume, record), `recovery`, `sla`, `hooks` and `evidence` (audit).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, cast

from hitl_compliance._coordination import assigning as _assigning
from hitl_compliance._coordination import decisions as _decisions
from hitl_compliance._coordination import erasing as _erasing
from hitl_compliance._coordination import evidence as _evidence
from hitl_compliance._coordination import oversight as _oversight
from hitl_compliance._coordination import packs as _packs
from hitl_compliance._coordination import qa as _qa
from hitl_compliance._coordination import recovery as _recovery
from hitl_compliance._coordination import retention as _retention
from hitl_compliance._coordination import reviews as _reviews
from hitl_compliance._coordination import sla as _sla
from hitl_compliance._coordination import stops as _stops
from hitl_compliance._coordination import turns as _turns
from hitl_compliance._coordination.context import Context
from hitl_compliance._coordination.driver import Driver, check_drivable, driver_for
from hitl_compliance._coordination.hooks import register_hooks
from hitl_compliance._coordination.in_graph import InGraphAuthority, reason_config
from hitl_compliance._coordination.remote import RemoteDriver, is_remote
from hitl_compliance._coordination.telemetry import instruments_for
from hitl_compliance.assignment import Assignment, AssignmentStore, Delegation, Routing
from hitl_compliance.authority import attach
from hitl_compliance.erasure import ErasureReport
from hitl_compliance.errors import ConfigurationError
from hitl_compliance.evidence_pack import EvidencePack
from hitl_compliance.gate import protect_stream
from hitl_compliance.graph import ComplianceGraph, graph_spec, is_factory_graph
from hitl_compliance.hooks import Hooks
from hitl_compliance.ledger import LedgerReport, SealedHead
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, InputLimits
from hitl_compliance.models import AuditRecord, PendingReview, ProcessResult
from hitl_compliance.oversight import OversightReport, OversightThresholds
from hitl_compliance.policy import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    Reviewer,
)
from hitl_compliance.qa import QaReview, QaRuleCount, QaSampling, QaStore, QaVerdict
from hitl_compliance.reasons import ReasonCodeCount, ReasonCodes, ReasonPolicy
from hitl_compliance.retention import Hold, RetentionPolicy, RetentionReport, check_policies
from hitl_compliance.signing import Anchor, KeySource, Sealing
from hitl_compliance.state import ComplianceState
from hitl_compliance.stops import StopScope, StopSwitch
from hitl_compliance.stores._legacy import is_legacy, wrap_legacy
from hitl_compliance.stores.base import ReviewStore, SealStore
from hitl_compliance.stores.memory import InMemoryReviewStore
from hitl_compliance.telemetry import Telemetry

__all__ = ["SLA_ACTOR", "Clock", "HitlCoordinator", "OnTimeout"]

logger = logging.getLogger("hitl_compliance")

Clock = Callable[[], datetime]
"""Returns the current time as a timezone-aware datetime; injectable for tests."""

OnTimeout: TypeAlias = Literal["reject", "approve_draft", "escalate"]
"""What `expire_overdue` does with a review past its deadline."""

SLA_ACTOR: str = _sla.SLA_ACTOR
"""The reviewer and audit actor of every SLA outcome (`"system:sla"`)."""


_warned_no_policy = False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _warn_no_policy() -> None:
    global _warned_no_policy
    if not _warned_no_policy:
        _warned_no_policy = True
        logger.warning(
            "HitlCoordinator has no approval policy: every reviewer may decide every "
            "review. Pass policy=RoleBasedPolicy(...) in production."
        )


class HitlCoordinator:
    """Drive a compliance graph: `process` turns, list `pending` reviews, `approve` / `reject`.

    Args:
        graph: A graph built by [`build_compliance_graph`][hitl_compliance.build_compliance_graph],
            or any compiled graph with a [`compliance_gate`][hitl_compliance.compliance_gate]
            node at any depth (as a node or inside a subgraph), or a `copy()` /
            `with_config()` of either. For a gated graph the coordinator also
            applies [`protect_stream`][hitl_compliance.protect_stream] to it.
            Or a `langgraph.pregel.remote.RemoteGraph` of either kind served by
            LangGraph Server: its client must authenticate as a user holding
            [`COORDINATOR_PERMISSION`][hitl_compliance.COORDINATOR_PERMISSION],
            the served graph must be attached (`attach_authority`) to the same
            `reviews` store (PostgreSQL, shared), and thread ids must be ones the
            server accepts (UUIDs); see the LangGraph Server guide.
        reviews: Where reviews and the audit log live (default: in memory).
            Share one durable store between processes for exactly-once decisions.
        policy: Who may decide which review and how many approvals it needs.
            Without one every reviewer may decide everything (a warning is
            logged once).
        sla: How long a review may wait before `expire_overdue` resolves it.
        sla_by: Per rule name or severity SLAs; a review's deadline uses the
            shortest SLA that applies to any of its findings (and `sla`).
        on_timeout: `"reject"` (default, the safe choice for regulated replies),
            `"approve_draft"` (the customer gets the draft rather than silence) or
            `"escalate"` (stays paused, priority raised, new deadline, hook fired).
        hooks: [`Hooks`][hitl_compliance.Hooks] called after pauses and decisions
            are durable.
        lease: How long a claimed decision or a started turn may run before
            `recover()` treats it as abandoned by a crashed process. Keep it
            longer than your slowest drafter call.
        clock: Returns the current aware datetime (inject a fake in tests).
        retention: One [`RetentionPolicy`][hitl_compliance.RetentionPolicy] per
            record class `apply_retention` prunes (none: it prunes nothing).
        reason_codes: The [`ReasonCodes`][hitl_compliance.ReasonCodes] a decision's
            `reason_code` must be one of (default:
            [`FCA_RETAIL_REASON_CODES`][hitl_compliance.FCA_RETAIL_REASON_CODES]).
        reason_policy: Which actions need a reason code, and the code the SLA
            records ([`ReasonPolicy`][hitl_compliance.ReasonPolicy]; default: none
            required). Checked on every path a decision takes, before anything is
            written.
        sealing: Sign the audit chain head every N rows / T seconds and on
            every export ([`Sealing`][hitl_compliance.Sealing]); needs the
            `signing` extra. The store keeps the policy.
        telemetry: Where OpenTelemetry spans and metrics go
            ([`Telemetry`][hitl_compliance.Telemetry]). By default the global
            providers when `opentelemetry-api` (the `otel` extra) is installed,
            else nothing is recorded.
        qa_sampling: Send a seeded, stratified sample of the replies the rules
            delivered alone to second-line QA ([`QaSampling`][hitl_compliance.QaSampling]):
            listed by `qa_pending()`, judged with `qa_verdict()`, never blocking
            a delivery. Needs a store that keeps QA reviews (the library's three).
            With a `RemoteGraph` the served graph delivers, so pass the same
            `QaSampling` to its `attach_authority`; this coordinator lists and
            records the verdicts.
        stop_roles: The roles that may switch the stop switch
            (`stop_delivery` / `resume_delivery`; default `("compliance-head",)`).
        routing: How reviews are assigned when they pause, reassigned and
            delegated ([`Routing`][hitl_compliance.Routing]; default: not
            assigned). Needs a store with the assignment capability (the
            library's three stores).
        limits: The largest texts and metadata accepted
            ([`InputLimits`][hitl_compliance.InputLimits]; default 1,000,000
            characters per text and 1,000,000 bytes of JSON per metadata). A
            larger input raises [`InputTooLargeError`][hitl_compliance.InputTooLargeError]
            before anything is written; decisions made around the coordinator
            (a raw resume) are held to the same limits in the graph.

    Example:
        ```python
        coord = HitlCoordinator(graph)
        result = await coord.process("thread-1", "Should I buy this fund?")
        if result.awaiting_approval:
            result = await coord.approve("thread-1", reviewer="officer@bank")
        ```
    """

    """Tells each store its coordinator's hooks; shared by the class so coordinators
    on one store instance see each other (and a second one dropping hooks warns)."""

    def __init__(
        self,
        graph: ComplianceGraph,
        *,
        reviews: ReviewStore | None = None,
        policy: ApprovalPolicy | None = None,
        sla: timedelta | None = None,
        sla_by: Mapping[str, timedelta] | None = None,
        on_timeout: OnTimeout = "reject",
        clock: Clock | None = None,
        hooks: Hooks | None = None,
        lease: timedelta = timedelta(seconds=30),
        retention: Sequence[RetentionPolicy] = (),
        reason_codes: ReasonCodes | None = None,
        reason_policy: ReasonPolicy | None = None,
        sealing: Sealing | None = None,
        telemetry: Telemetry | None = None,
        qa_sampling: QaSampling | None = None,
        stop_roles: Iterable[str] = ("compliance-head",),
        routing: Routing | None = None,
        limits: InputLimits | None = None,
    ) -> None:
        remote = is_remote(graph)
        spec = graph_spec(graph) if not remote and is_factory_graph(graph) else None
        if spec is None and not remote:
            check_drivable(graph)
        if not remote and graph.checkpointer is None:
            raise ConfigurationError(
                "HitlCoordinator needs a graph compiled with a checkpointer: it reads the "
                "paused state back from checkpoints. Pass checkpointer= to "
                "build_compliance_graph (also with pause=False)."
            )
        if reviews is not None and is_legacy(reviews):
            reviews = cast(ReviewStore, wrap_legacy(reviews))
        if reviews is not None and not isinstance(reviews, ReviewStore):
            raise ConfigurationError(
                f"reviews must implement ReviewStore, got {type(reviews).__name__}."
            )
        store: ReviewStore = reviews if reviews is not None else InMemoryReviewStore()
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ConfigurationError("lease must be a positive timedelta.")
        if policy is None:
            _warn_no_policy()
            policy = AllowAllPolicy()
        elif not isinstance(policy, ApprovalPolicy):
            raise ConfigurationError(
                f"policy must implement ApprovalPolicy, got {type(policy).__name__}."
            )
        for value in [sla, *(sla_by or {}).values()]:
            if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
                raise ConfigurationError("sla and sla_by values must be positive timedeltas.")
        if on_timeout not in ("reject", "approve_draft", "escalate"):
            raise ConfigurationError(
                f"on_timeout must be 'reject', 'approve_draft' or 'escalate', got {on_timeout!r}."
            )
        if on_timeout == "escalate" and sla is None and not sla_by:
            raise ConfigurationError("on_timeout='escalate' needs an sla to set new deadlines.")
        policies = check_policies(retention)
        if sealing is not None and not isinstance(sealing, Sealing):
            raise ConfigurationError("sealing must be a hitl_compliance.Sealing instance.")
        if sealing is not None and not isinstance(store, SealStore):
            raise ConfigurationError(
                f"sealing needs a store that keeps sealed heads (SealStore); "
                f"{type(store).__name__} does not."
            )
        if qa_sampling is not None and not isinstance(qa_sampling, QaSampling):
            raise ConfigurationError("qa_sampling must be a hitl_compliance.QaSampling instance.")
        if qa_sampling is not None and not isinstance(store, QaStore):
            raise ConfigurationError(
                f"qa_sampling needs a store that keeps QA reviews (QaStore); "
                f"{type(store).__name__} does not."
            )
        if hooks is not None and not isinstance(hooks, Hooks):
            raise ConfigurationError("hooks must be a hitl_compliance.Hooks instance.")
        if routing is not None and not isinstance(routing, Routing):
            raise ConfigurationError("routing must be a hitl_compliance.Routing instance.")
        if routing is not None and not isinstance(store, AssignmentStore):
            raise ConfigurationError(
                f"routing needs a store that keeps assignments (AssignmentStore); "
                f"{type(store).__name__} does not."
            )
        codes, reasons_required = reason_config(reason_codes, reason_policy)
        roles = () if isinstance(stop_roles, str) else tuple(stop_roles)
        if not roles or not all(isinstance(r, str) and r.strip() for r in roles):
            raise ConfigurationError(
                "stop_roles must be an iterable of non-blank role names, such as "
                "('compliance-head',); a single str is not one."
            )
        instruments = instruments_for(telemetry, store)
        driver: Driver
        if remote:
            # A deployment: the server keeps the checkpoints, and the served graph is
            # attached to this store (attach_authority) in its own process.
            driver = RemoteDriver(graph)
        else:
            driver = driver_for(graph, spec, store)
            if spec is None:
                protect_stream(graph)
        self._ctx = Context(
            graph=graph,
            spec=spec,
            reviews=store,
            policy=policy,
            clock=clock or _utcnow,
            lease=lease,
            sla=sla,
            sla_by=MappingProxyType(dict(sla_by or {})),
            on_timeout=on_timeout,
            hooks=hooks or Hooks(),
            driver=driver,
            retention=policies,
            reason_codes=codes,
            reason_policy=reasons_required,
            telemetry=instruments,
            qa_sampling=qa_sampling,
            stop_roles=frozenset(roles),
            routing=routing,
            limits=_limits(limits),
        )
        register_hooks(store, self._ctx.hooks.names())
        if sealing is not None:
            store.configure_sealing(sealing)  # type: ignore[attr-defined]  # checked above
        if not remote:
            # Decisions made around this coordinator (a raw resume, a state write, a server
            # run) pass its checks inside the graph, claimed and audited in its store.
            attach(graph, InGraphAuthority(self._ctx))

    @property
    def graph(self) -> ComplianceGraph:
        """The compiled graph this coordinator drives."""
        return self._ctx.graph

    @property
    def reviews(self) -> ReviewStore:
        """The review/audit store."""
        return self._ctx.reviews

    @property
    def policy(self) -> ApprovalPolicy:
        """The approval policy in force."""
        return self._ctx.policy

    @property
    def reason_codes(self) -> ReasonCodes:
        """The reason-code taxonomy decisions are checked against (what a UI offers)."""
        return self._ctx.reason_codes

    @property
    def reason_policy(self) -> ReasonPolicy:
        """Which actions need a reason code, and the SLA's code."""
        return self._ctx.reason_policy

    @property
    def lease(self) -> timedelta:
        """How long a claim or turn may stay unfinished before `recover()` takes it over."""
        return self._ctx.lease

    @property
    def qa_sampling(self) -> QaSampling | None:
        """Which auto-delivered replies go to second-line QA (None: no QA sampling)."""
        return self._ctx.qa_sampling

    def now(self) -> datetime:
        """The coordinator's clock (timezone-aware): the time it stamps on reviews and audits."""
        return self._ctx.now()

    # -- turns: process -> pause (turns.py) ------------------------------------

    async def process(
        self,
        thread_id: str,
        message: str | Mapping[str, Any],
        *,
        requested_by: str | None = None,
        **fields: Any,
    ) -> ProcessResult:
        """Run one turn: draft a reply, check it, deliver it or pause for review.

        On a completed thread this starts a new turn of the conversation.
        Extra `fields` set fields of a custom `state_schema`. On a graph with
        gates, a `str` message is appended as a `HumanMessage` where the state
        has `messages` (else set as `customer_message`), and a mapping is the
        graph's input as is.

        Raises:
            ThreadBusyError: the thread is paused for review or another turn runs.
            InvalidInputError: `message` or `fields` do not fit the state schema.
        """
        work = _turns.process(
            self._ctx, thread_id, message, requested_by=requested_by, fields=fields
        )
        tel = self._ctx.telemetry
        return await (work if tel is None else tel.process(thread_id, work))

    # -- reviews: what waits, who may decide (reviews.py) ----------------------

    async def pending(
        self,
        *,
        rule: str | None = None,
        reviewer: str | Reviewer | None = None,
        older_than: timedelta | datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        assigned_to: str | None = None,
    ) -> list[PendingReview]:
        """Paused threads awaiting a decision, oldest first, read from the review store.

        Costs O(returned rows) through the store's indexes: no checkpoint is scanned.

        Args:
            rule: Only reviews with a finding of this rule.
            reviewer: Only reviews this reviewer may decide now (authorised by the
                policy, not the requester, not already voted).
            older_than: Only reviews requested before this datetime, or longer ago
                than this timedelta.
            limit: At most this many items.
            cursor: Continue after this item (`PendingReview.cursor` of the last item).
            assigned_to: Only reviews waiting for this reviewer id: assigned to it
                (exactly), to a queue of the routing it belongs to, or to a reviewer
                who delegated to it (until the delegation ends, by the coordinator's
                clock; `delegated_from` names them). Read through an index of the
                store. Needs `routing=`.

        Each item carries its `assigned_to` and `assignment_reason` when the
        coordinator has a routing.

        Raises:
            InvalidInputError: a filter of the wrong type, a `limit` outside 1 to
                2**63 - 1, an `older_than` beyond the calendar or naive, a bad cursor.
            ConfigurationError: `assigned_to` on a coordinator without `routing=`.

        Example:
            ```python
            page = await coord.pending(limit=50)
            more = await coord.pending(limit=50, cursor=page[-1].cursor)
            ```
        """
        return await _reviews.pending(
            self._ctx,
            rule=rule,
            reviewer=reviewer,
            older_than=older_than,
            limit=limit,
            cursor=cursor,
            assigned_to=assigned_to,
        )

    async def review(self, thread_id: str, *, review_id: str | None = None) -> PendingReview:
        """The thread's review awaiting a decision, as `pending()` lists it.

        Args:
            thread_id: The paused thread.
            review_id: Which of its pending reviews; required when it has several
                (a gate's parallel tool-call pauses), optional otherwise.

        Raises:
            ReviewNotFoundError: the thread never paused.
            AlreadyDecidedError: its review is claimed or decided already, or
                `review_id` is not an open review of the thread.
            ReviewIdRequiredError: several reviews are pending and `review_id` is None.
            TamperedError: the review row differs from what its audit rows committed to
                (edited in the database); nothing changed.

        Example:
            ```python
            review = await coord.review("t1")
            print(review.draft_response, [v.rule for v in review.violations])
            ```
        """
        return await _reviews.review(self._ctx, thread_id, review_id)

    async def may_decide(
        self, thread_id: str, reviewer: str | Reviewer, *, review_id: str | None = None
    ) -> Authorization:
        """Whether `reviewer` may decide the thread's pending review now, and if not, why.

        The same checks `approve` makes before anything changes (not the
        requester, no earlier vote, the policy's roles for the review's
        findings), without recording anything: for a UI that greys out the
        buttons. An edit adding findings can still be refused by `approve`.
        `review_id` says which review, as for [`review`][hitl_compliance.HitlCoordinator.review].

        Raises:
            ReviewNotFoundError: the thread never paused.
            AlreadyDecidedError: its review is claimed or decided already, or
                `review_id` is not an open review of the thread.
            ReviewIdRequiredError: several reviews are pending and `review_id` is None.
            TamperedError: the review row differs from what its audit rows committed to
                (edited in the database); nothing changed.
        """
        return await _reviews.may_decide(self._ctx, thread_id, reviewer, review_id)

    # -- assignment and delegation (assigning.py) ------------------------------

    @property
    def routing(self) -> Routing | None:
        """How reviews are assigned at pause (None: they are not)."""
        return self._ctx.routing

    async def reassign(
        self,
        thread_id: str,
        *,
        to: str,
        by: str | Reviewer,
        reason: str,
        review_id: str | None = None,
    ) -> Assignment:
        """Assign the thread's pending review to `to` (a reviewer id or `"queue:<name>"`).

        `by` must hold one of `Routing.supervisor_roles` (default `"supervisor"`).
        Writes a `reassigned` audit row (`to`, `reason`, and `from`: the previous
        assignee) with the change.

        Raises:
            ConfigurationError: the coordinator has no `routing=`.
            NotAuthorizedError: `by` holds none of the supervisor roles; nothing changed.
            ReviewNotFoundError: the thread never paused.
            AlreadyDecidedError: its review is claimed or decided already.
            ReviewIdRequiredError: several reviews are pending and `review_id` is None.
            InvalidInputError: a blank `to` or `reason`.

        Example:
            ```python
            boss = Reviewer("lead@bank", roles=frozenset({"supervisor"}))
            await coord.reassign("t1", to="carol@bank", by=boss, reason="bob is on leave")
            ```
        """
        return await _assigning.reassign(
            self._ctx, thread_id, to=to, by=by, reason=reason, review_id=review_id
        )

    async def delegate(
        self,
        from_reviewer: str,
        to_reviewer: str,
        *,
        until: datetime,
        by: str | Reviewer,
    ) -> Delegation:
        """Let `to_reviewer` see `from_reviewer`'s reviews until `until` (out of office).

        `pending(assigned_to=to_reviewer)` then lists them too, with
        `delegated_from`, until `until` by the coordinator's clock. A second
        delegation of `from_reviewer` replaces the first. `by` is
        `from_reviewer` or a supervisor. Writes a `delegated` audit row (on the
        ledger thread [`DELEGATION_THREAD`][hitl_compliance.DELEGATION_THREAD]).

        Raises:
            ConfigurationError: the coordinator has no `routing=`.
            NotAuthorizedError: `by` is neither `from_reviewer` nor a supervisor.
            InvalidInputError: blank ids, the same reviewer twice, or `until` naive
                or not in the future; nothing changed.

        Example:
            ```python
            await coord.delegate("bob@bank", "carol@bank", until=back_on, by="bob@bank")
            ```
        """
        return await _assigning.delegate(self._ctx, from_reviewer, to_reviewer, until=until, by=by)

    async def revoke_delegation(
        self, from_reviewer: str, *, by: str | Reviewer
    ) -> Delegation | None:
        """End `from_reviewer`'s delegation early (a `delegation_revoked` row); None if none.

        Raises:
            ConfigurationError: the coordinator has no `routing=`.
            NotAuthorizedError: `by` is neither `from_reviewer` nor a supervisor.
        """
        return await _assigning.revoke_delegation(self._ctx, from_reviewer, by=by)

    async def delegations(self) -> list[Delegation]:
        """The delegations in force by the coordinator's clock, by delegator.

        Raises:
            ConfigurationError: the coordinator has no `routing=`.
        """
        return await _assigning.delegations(self._ctx)

    # -- decisions: decide -> resume -> record (decisions.py) ------------------

    async def approve(
        self,
        thread_id: str,
        *,
        reviewer: str | Reviewer,
        response: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected: str | None = None,
        tool_args: Mapping[str, Any] | None = None,
        review_id: str | None = None,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> ProcessResult:
        """Approve a paused draft: deliver it, or deliver the reviewer's edited `response`.

        An edit goes back through the rules first. When the policy needs several
        approvers, each approval is a vote and the graph resumes only at quorum
        (the result stays `paused` until then).

        Args:
            thread_id: The paused thread.
            reviewer: A reviewer id or a [`Reviewer`][hitl_compliance.Reviewer] with roles.
            response: An edited reply to deliver instead of the draft.
            metadata: JSON data merged into the thread's metadata and the audit record.
            expected: The `draft_sha256` or `checkpoint_id` the reviewer saw; refuses
                with [`StaleReviewError`][hitl_compliance.StaleReviewError] if it changed.
            tool_args: For the review of a tool call (a gate's): the arguments to
                run it with instead of the model's; re-checked by the rules as an
                edited reply is.
            review_id: Which of the thread's pending reviews (as `pending()` lists
                them); required when it has several (a gate waiting for several
                tool calls in parallel). Deciding one leaves the others pending.
            reason_code: Why, one of the coordinator's
                [`reason_codes`][hitl_compliance.HitlCoordinator.reason_codes]; required
                for an edit (or a plain approval) where the reason policy says.
            reason: Free text recorded with the decision (required by the code `other`).

        Raises:
            ReviewIdRequiredError: several reviews are pending and `review_id` is None.
            ReviewNotFoundError: the thread never paused for review.
            AlreadyDecidedError: another decision won, or the review was decided.
            NotAuthorizedError: the policy (or four-eyes) forbids this reviewer.
            PolicyViolationError: the edited response breaks a `block` rule.
            StaleReviewError: `expected` does not match the paused state.
            ReasonCodeError: `reason_code` is unknown, or missing where the policy
                needs one; nothing was written.
            InvalidDecisionError: the decision failed validation; nothing changed.
            TamperedError: the review row differs from what its audit rows committed to
                (edited in the database); nothing changed.

        Example:
            ```python
            await coord.approve("t1", reviewer="officer@bank", metadata={"ticket": "C-9"})
            ```
        """
        work = _decisions.approve(
            self._ctx,
            thread_id,
            reviewer=reviewer,
            response=response,
            metadata=metadata,
            expected=expected,
            tool_args=tool_args,
            review_id=review_id,
            reason_code=reason_code,
            reason=reason,
        )
        tel = self._ctx.telemetry
        if tel is None:
            return await work
        return await tel.decide("approve", thread_id, reviewer, review_id, reason_code, work)

    async def reject(
        self,
        thread_id: str,
        *,
        reviewer: str | Reviewer,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        expected: str | None = None,
        review_id: str | None = None,
        reason_code: str | None = None,
    ) -> ProcessResult:
        """Reject a paused draft; the customer gets `rejection_message` (or nothing).

        One authorised rejection ends a review, whatever approvals it had.
        `review_id` says which review, and `reason_code` why (checked against
        the taxonomy and the reason policy), as for
        [`approve`][hitl_compliance.HitlCoordinator.approve].

        Raises:
            ReviewIdRequiredError: several reviews are pending and `review_id` is None.
            ReviewNotFoundError: the thread never paused for review.
            AlreadyDecidedError: another decision won, or the review was decided.
            NotAuthorizedError: the policy forbids this reviewer.
            StaleReviewError: `expected` does not match the paused state.
            ReasonCodeError: `reason_code` is unknown, missing where the policy needs
                one, or `other` without a `reason`; nothing was written.
            InvalidDecisionError: the decision failed validation; nothing changed.
            TamperedError: the review row differs from what its audit rows committed to
                (edited in the database); nothing changed.

        Example:
            ```python
            await coord.reject("t1", reviewer="officer@bank", reason_code="missing_risk_warning")
            ```
        """
        work = _decisions.reject(
            self._ctx,
            thread_id,
            reviewer=reviewer,
            reason=reason,
            metadata=metadata,
            expected=expected,
            review_id=review_id,
            reason_code=reason_code,
        )
        tel = self._ctx.telemetry
        if tel is None:
            return await work
        return await tel.decide("reject", thread_id, reviewer, review_id, reason_code, work)

    # -- recovery (recovery.py) ------------------------------------------------

    async def recover(self) -> list[ProcessResult]:
        """Finish work a crashed process left behind; safe to run from any process.

        Takes over only claims and turns older than the lease, so it never races
        a decider that is merely slow: a claimed decision is resumed (or, with
        the static style, finished from `next == ("deliver",)`) without
        re-running the drafter; a thread that paused without a review row gets
        one, so no paused thread stays invisible to `pending()`. With an SLA,
        pending reviews opened without a deadline (a raw run's gate records its
        pauses with none) get `requested_at` plus their SLA, as `expire_overdue`
        does.

        Returns:
            One result per thread it finished or made pending.
        """
        tel = self._ctx.telemetry
        work = _recovery.recover(self._ctx)
        return await (work if tel is None else tel.batch("hitl.recover", work))

    # -- SLA (sla.py) ----------------------------------------------------------

    async def expire_overdue(self, now: datetime | None = None) -> list[ProcessResult]:
        """Resolve every pending review past its deadline by `on_timeout`, exactly once.

        Idempotent and safe with several sweepers at once: each review is
        claimed (or escalated) atomically, so only one sweeper resolves it. State
        and audit record `{"forced": True, "reason": "sla_timeout"}` with actor
        `system:sla`. Pending reviews without a deadline (a pause a raw run's
        gate recorded, a review opened by a coordinator without an SLA) are
        dated first, from their `requested_at` plus the SLA that applies, so
        they expire like the coordinator's own.

        Args:
            now: Sweep as of this time (the coordinator's clock by default):
                reviews due by then are resolved, and their claims, completions
                and audit rows are stamped with it.

        Returns:
            One result per review this call resolved or escalated.

        Raises:
            InvalidInputError: `now` is not a timezone-aware datetime.
        """
        tel = self._ctx.telemetry
        work = _sla.expire_overdue(self._ctx, now)
        return await (work if tel is None else tel.batch("hitl.sweep", work))

    async def run_sla_sweeper(self, interval: timedelta | float = 60.0) -> None:
        """Run `expire_overdue` every `interval` (seconds or timedelta) until cancelled.

        Errors of one sweep are logged and the loop goes on. An `interval` that
        is not a positive, finite number or timedelta (a str, a bool, NaN)
        raises InvalidInputError at once, before the first sweep.

        Example:
            ```python
            task = asyncio.create_task(coord.run_sla_sweeper(interval=30))
            ...
            task.cancel()
            ```
        """
        await _sla.run_sla_sweeper(self._ctx, interval)

    # -- evidence: audit (evidence.py) -----------------------------------------

    async def verify_audit(
        self,
        thread_id: str | None = None,
        *,
        public_key: KeySource | Sequence[KeySource] | None = None,
        anchors: Iterable[Anchor] | None = None,
    ) -> LedgerReport:
        """Verify the tamper-evident audit ledger (one thread's chain, or the whole store).

        Returns a report with `ok` and `first_broken` (None when ok) naming the
        first row that was edited, deleted, inserted or reordered. For one
        thread, its latest and open review rows are also checked against the
        chain: a decided review without its decision row (the thread's last row
        deleted), or a row whose content differs from its commitment, is a break.
        For the whole store, sealed heads (the store's, and `anchors`', by default
        the sealing policy's) are checked too, and `report.proof` says what they
        prove: with `public_key` (a PEM path or bytes; several after a key
        rotation) their signatures are verified, so truncation and re-hashing back
        to the last sealed head are caught.

        Example:
            ```python
            report = await coord.verify_audit(public_key="audit-key.pub.pem")
            print(report.ok, report.proof.statements())
            ```
        """
        return await _evidence.verify_audit(
            self._ctx, thread_id, public_key=public_key, anchors=anchors
        )

    async def seal_audit(self) -> SealedHead | None:
        """Sign, store and anchor the audit chain head now, whatever the sealing policy's timing.

        Sealing otherwise follows writes (every N rows or T seconds) and
        exports; call this from a scheduler so an idle store's last rows do
        not stay unsealed. Returns None when the ledger is empty.

        Raises:
            ConfigurationError: the store has no sealing policy.

        Example:
            ```python
            head = await coord.seal_audit()
            ```
        """
        store = self._ctx.reviews
        if not isinstance(store, SealStore):
            raise ConfigurationError(
                f"{type(store).__name__} keeps no sealed heads: sealing needs a SealStore."
            )
        return await store.seal_head()

    async def export_audit(
        self, path: str | os.PathLike[str], *, thread_id: str | None = None
    ) -> int:
        """Write the audit ledger as JSON Lines an auditor can verify offline.

        One `{"type": "row", ...}` object per row (all hashed fields plus
        `hash`), then for a whole-store export one `{"type": "seal", ...}` line
        per sealed head (the current head is sealed first when the sealing
        policy says `on_export`) and one `{"type": "head", "seq", "hash"}` line.
        Verify with `python -m hitl_compliance.ledger verify FILE` (or the
        copied `ledger.py` file alone). Returns the number of rows written.
        """
        return await _evidence.export_audit(self._ctx, path, thread_id=thread_id)

    async def reason_code_counts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[ReasonCodeCount, ...]:
        """How many decisions recorded each reason code, by audit event, at `since <= at < until`.

        Counted in the store (one `GROUP BY` on SQLite and PostgreSQL) from the
        `reason_code` of the audit rows' payloads: `approved`, `rejected` and
        `expired` rows, sorted by code then event.

        Raises:
            InvalidInputError: `since` or `until` is not a timezone-aware datetime.

        Example:
            ```python
            for row in await coord.reason_code_counts(since=month_start):
                print(row.code, row.event, row.count)
            ```
        """
        return await _evidence.reason_code_counts(self._ctx, since, until)

    async def oversight_report(
        self,
        *,
        since: datetime,
        until: datetime,
        thresholds: OversightThresholds | None = None,
        period: str = "day",
    ) -> OversightReport:
        """Oversight analytics of the reviews decided at `since <= t < until`.

        Per reviewer, per rule and per `period` (`day`, `week` or `month`, UTC):
        counts of approve / edit / reject / expire / escalate, the override rate,
        the median and 90th percentile time to decision, SLA breaches and reason
        codes; a per-rule QA section (`qa_verdict` audit rows); and rubber-stamp
        flags under `thresholds` (default
        [`OversightThresholds()`][hitl_compliance.OversightThresholds]), each
        naming its reviews. Computed by the store from the window's rows only,
        read through indexes (see the [Oversight guide](../guides/oversight.md)).

        Raises:
            InvalidInputError: `since` or `until` is not timezone-aware, `since`
                is not before `until`, `period` is unknown, or `thresholds` is
                not an `OversightThresholds`.
            ConfigurationError: the review store is not an `OversightSource`.

        Example:
            ```python
            report = await coord.oversight_report(since=month_start, until=month_end)
            for flag in report.flags:
                print(flag.kind, flag.reviewer, len(flag.review_ids))
            ```
        """
        return await _oversight.oversight_report(
            self._ctx, since=since, until=until, thresholds=thresholds, period=period
        )

    async def evidence_pack(
        self,
        thread_id: str,
        *,
        review_id: str | None = None,
        public_key: KeySource | Sequence[KeySource] | None = None,
    ) -> EvidencePack:
        """One review's evidence for a supervisor: a printable page and a JSON document.

        The pack holds the customer's message, the draft with each finding's
        evidence highlighted, the findings and the rule versions in force, every
        vote and decision (reviewer, roles, time, reason code), the edit's diff,
        what was sent, the review's ledger rows with their hashes, and the
        verification of the thread's chain and of the whole store with the last
        signed head (its signatures checked with `public_key`). It reads the
        whole ledger once to verify it.

        Args:
            thread_id: The thread.
            review_id: Which of its reviews (the `review_id` of a `paused` audit
                row); None for its latest review. One pack is of one review.
            public_key: The sealing key(s) to check signed heads with, as for
                [`verify_audit`][hitl_compliance.HitlCoordinator.verify_audit].

        Raises:
            ReviewNotFoundError: the thread never paused, or has no review `review_id`.
            InvalidInputError: a malformed thread id, review id or public key.

        Example:
            ```python
            pack = await coord.evidence_pack("t1")
            pack.write("evidence/t1")  # evidence.html, evidence.json, manifest.json
            ```
        """
        return await _packs.evidence_pack(self._ctx, thread_id, review_id, public_key=public_key)

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit records, oldest first."""
        return await _evidence.audit_log(self._ctx, thread_id)

    async def state_at_decision(self, thread_id: str) -> ComplianceState:
        """The state of the exact paused checkpoint the latest decision was made on.

        Read back from the checkpointer by checkpoint id; once retention has
        deleted the thread's checkpoints, the copy it kept with the review first.

        Raises:
            ReviewNotFoundError: the thread never paused for review.
        """
        return await _evidence.state_at_decision(self._ctx, thread_id)

    # -- retention and legal hold (retention.py) -------------------------------

    async def apply_retention(self, *, now: datetime | None = None) -> RetentionReport:
        """Delete what the retention policies put past their ceiling, except held threads.

        Per policy: records older than `now - ceiling` go, and never one younger
        than its floor by the coordinator's clock. Checkpoints of decided threads
        go through the checkpointer's `adelete_thread`, after the decided state
        is kept with the review (`state_at_decision` still answers). Every
        deletion appends a `pruned` row to the ledger, which still verifies.

        Example:
            ```python
            report = await coord.apply_retention()
            print(report.audit_rows, report.held)
            ```

        Raises:
            ConfigurationError: no `retention=` policies, or a store without
                the retention capability.
            InvalidInputError: `now` is not a timezone-aware datetime.
        """
        return await _retention.apply_retention(self._ctx, self._ctx.retention, now)

    async def place_hold(self, thread_id: str, *, reason: str, by: str) -> Hold:
        """Put the thread under legal hold (a `hold_placed` audit row); the hold in force.

        A held thread is skipped by `apply_retention` and refused by erasure with
        [`LegalHoldError`][hitl_compliance.LegalHoldError]. Idempotent: an existing
        hold is returned unchanged.

        Example:
            ```python
            await coord.place_hold("t1", reason="FCA enquiry 2031-17", by="legal@bank")
            ```
        """
        return await _retention.place_hold(self._ctx, thread_id, reason=reason, by=by)

    async def release_hold(self, thread_id: str, *, by: str) -> Hold | None:
        """Release the thread's legal hold (a `hold_released` audit row); None if it had none."""
        return await _retention.release_hold(self._ctx, thread_id, by=by)

    async def holds(self) -> list[Hold]:
        """Every legal hold in force, oldest first."""
        return await _retention.holds(self._ctx)

    async def ensure_not_held(self, thread_id: str) -> None:
        """Refuse to erase a held thread: call before deleting any of its records.

        Raises:
            LegalHoldError: the thread is under legal hold.
        """
        await _retention.ensure_not_held(self._ctx, thread_id)

    # -- second-line QA (qa.py) --------------------------------------------------

    async def qa_pending(self, *, limit: int | None = None) -> list[QaReview]:
        """Sampled auto-delivered replies awaiting a QA verdict, oldest sampled first.

        Apart from `pending()`: a QA review never blocks its thread, and the SLA
        never sweeps it.

        Raises:
            ConfigurationError: the store keeps no QA reviews.
        """
        return await _qa.qa_pending(self._ctx, limit)

    async def qa_review(self, qa_review_id: str) -> QaReview:
        """One QA review, with its verdict once recorded.

        Raises:
            QaReviewNotFoundError: no QA review has this id.
        """
        return await _qa.qa_review(self._ctx, qa_review_id)

    async def qa_verdict(
        self,
        qa_review_id: str,
        *,
        reviewer: str | Reviewer,
        verdict: QaVerdict,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> QaReview:
        """Record a QA reviewer's verdict on a sampled reply (a `qa_verdict` audit row), once.

        Args:
            qa_review_id: The QA review, `qa:<thread id>:<turn>` (as `qa_pending()` lists it).
            reviewer: Who judged; must hold one of `QaSampling.roles` when it names any.
            verdict: `"agree"` (the rules were right to let the reply through) or
                `"disagree"` (it needed a human).
            reason_code: Why, one of the coordinator's
                [`reason_codes`][hitl_compliance.HitlCoordinator.reason_codes];
                required for `"disagree"`.
            reason: Free text (required by codes that need text, such as `other`).

        Raises:
            QaReviewNotFoundError: no QA review has this id.
            QaAlreadyRecordedError: it holds a verdict already.
            InvalidDecisionError: the verdict is not agree/disagree, or a disagree has no code.
            ReasonCodeError: the reason code is unknown (or needs a reason text).
            NotAuthorizedError: the reviewer holds none of the QA roles.

        Every check runs before anything is written: a refused verdict changes nothing.

        Example:
            ```python
            for qa in await coord.qa_pending():
                await coord.qa_verdict(qa.qa_review_id, reviewer="qa@bank", verdict="agree")
            ```
        """
        return await _qa.qa_verdict(
            self._ctx,
            qa_review_id,
            reviewer=reviewer,
            verdict=verdict,
            reason_code=reason_code,
            reason=reason,
        )

    async def qa_disagreement(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[QaRuleCount, ...]:
        """Per rule, the QA reviews sampled in `[since, until)`: sampled, judged, disagreed.

        [`QaRuleCount.disagreement_rate`][hitl_compliance.QaRuleCount.disagreement_rate]
        is the evidence that a rule catches what it should. Counted in the store.

        Example:
            ```python
            for row in await coord.qa_disagreement():
                print(row.rule, row.reviewed, row.disagreement_rate)
            ```
        """
        return await _qa.qa_disagreement(self._ctx, since, until)

    # -- the stop switch (stops.py) ----------------------------------------------

    async def stop_delivery(
        self, scope: StopScope | str, *, by: str | Reviewer, reason: str
    ) -> StopSwitch:
        """Hold every reply in `scope` for review, whatever the rules say (audited).

        Written to the store (with a `delivery_stopped` audit row) before this
        returns; every process sharing the store honours it within
        [`STOP_REFRESH`][hitl_compliance.stops.STOP_REFRESH] seconds, this one
        at once. Idempotent: a scope already stopped returns its stop unchanged.

        Example:
            ```python
            head = Reviewer("ceo@bank", roles=frozenset({"compliance-head"}))
            await coord.stop_delivery(StopScope.product("isa"), by=head, reason="mis-selling probe")
            ```

        Raises:
            NotAuthorizedError: `by` holds none of `stop_roles` (nothing changed).
            InvalidInputError: a bad scope or an empty reason.
        """
        return await _stops.stop_delivery(self._ctx, scope, by=by, reason=reason)

    async def resume_delivery(
        self, scope: StopScope | str, *, by: str | Reviewer
    ) -> StopSwitch | None:
        """Switch the stop of `scope` off (a `delivery_resumed` audit row); None if it was off.

        Turns paused while it was on stay paused: resuming approves nothing.

        Raises:
            NotAuthorizedError: `by` holds none of `stop_roles` (nothing changed).
        """
        return await _stops.resume_delivery(self._ctx, scope, by=by)

    async def stops(self) -> list[StopSwitch]:
        """Every stop in force in the store, oldest first."""
        return await _stops.stops(self._ctx)

    # -- erasure (erasure.py) ----------------------------------------------------

    async def erase_subject(self, subject: str) -> ErasureReport:
        """Erase a data subject's personal data; every verifier stays green.

        The subject's threads are those whose state named it (`subject_id`, else
        `requested_by`) or whose reviews it requested. For each: the personal
        values kept beside the chain are deleted, the review rows' customer
        message, draft and edited text and the kept decision state are
        redacted, one `erased` audit row (counts only) is appended, and the
        checkpoints are deleted through the checkpointer's `adelete_thread`.
        Rows written before erasure existed cannot be redacted: the report
        says which.

        Example:
            ```python
            report = await coord.erase_subject("customer-42")
            assert (await coord.verify_audit()).ok
            ```

        Raises:
            LegalHoldError: one of the threads is under legal hold (nothing erased).
            ThreadBusyError: one of the threads has an open review (nothing erased):
                decide or expire it first.
            ConfigurationError: the store cannot erase (not a `PersonalStore`).
            InvalidInputError: `subject` is not a non-empty string.
        """
        return await _erasing.erase_subject(self._ctx, subject)


def _limits(limits: InputLimits | None) -> InputLimits:
    """`limits`, or the defaults (ConfigurationError for anything but `InputLimits`)."""
    if limits is None:
        return DEFAULT_INPUT_LIMITS
    if not isinstance(limits, InputLimits):
        raise ConfigurationError(
            f"limits must be a hitl_compliance.InputLimits, got {type(limits).__name__}."
        )
    return limits
