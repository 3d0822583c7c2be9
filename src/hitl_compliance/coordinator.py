"""[`HitlCoordinator`][hitl_compliance.HitlCoordinator]: run turns, list and decide reviews.

The coordinator owns what LangGraph leaves to its users: it validates every
decision before it reaches the graph, claims the review row atomically so one
decision wins per pause (across processes, when the store is shared), resumes
each pause style the one correct way, and records the outcome.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import logging
import os
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeAlias, cast

from langgraph.types import Command, Durability, StateSnapshot
from pydantic import ValidationError

from hitl_compliance import _validate
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    HitlError,
    InvalidDecisionError,
    InvalidInputError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    StaleReviewError,
)
from hitl_compliance.graph import TURN_FIELDS, ComplianceGraph, graph_spec, run_rules
from hitl_compliance.hooks import Hooks, event_for
from hitl_compliance.ledger import LedgerReport, verify_rows
from hitl_compliance.models import (
    AuditRecord,
    PendingReview,
    ProcessResult,
    ReviewRecord,
    Vote,
    sha256_text,
)
from hitl_compliance.policy import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    Reviewer,
    as_reviewer,
    canonical_reviewer_id,
)
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import ComplianceState, Decision
from hitl_compliance.stores._legacy import is_leaseless, wrap_leaseless
from hitl_compliance.stores.base import FinalStatus, ReviewStore
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = ["SLA_ACTOR", "Clock", "HitlCoordinator", "OnTimeout"]

logger = logging.getLogger("hitl_compliance")

Clock = Callable[[], datetime]
"""Returns the current time as a timezone-aware datetime; injectable for tests."""

OnTimeout: TypeAlias = Literal["reject", "approve_draft", "escalate"]
"""What `expire_overdue` does with a review past its deadline."""

SLA_ACTOR = "system:sla"
_FORCED = {"forced": True, "reason": "sla_timeout"}

_PAUSED = ("human_approval",)
# Set by the library on every turn, never by `process(**fields)`.
_RESERVED = frozenset({*TURN_FIELDS, "customer_message", "requested_by", "turn"})


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
        graph: A graph built by [`build_compliance_graph`][hitl_compliance.build_compliance_graph].
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

    Example:
        ```python
        coord = HitlCoordinator(graph)
        result = await coord.process("thread-1", "Should I buy this fund?")
        if result.awaiting_approval:
            result = await coord.approve("thread-1", reviewer="officer@bank")
        ```
    """

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
    ) -> None:
        self._spec = graph_spec(graph)
        if graph.checkpointer is None:
            raise ConfigurationError(
                "HitlCoordinator needs a graph compiled with a checkpointer: it reads the "
                "paused state back from checkpoints. Pass checkpointer= to "
                "build_compliance_graph (also with pause=False)."
            )
        self._graph = graph
        if reviews is not None and is_leaseless(reviews):
            reviews = cast(ReviewStore, wrap_leaseless(reviews))
        if reviews is not None and not isinstance(reviews, ReviewStore):
            raise ConfigurationError(
                f"reviews must implement ReviewStore, got {type(reviews).__name__}."
            )
        self._reviews: ReviewStore = reviews if reviews is not None else InMemoryReviewStore()
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ConfigurationError("lease must be a positive timedelta.")
        self._lease = lease
        self._clock: Clock = clock or _utcnow
        if policy is None:
            _warn_no_policy()
            policy = AllowAllPolicy()
        elif not isinstance(policy, ApprovalPolicy):
            raise ConfigurationError(
                f"policy must implement ApprovalPolicy, got {type(policy).__name__}."
            )
        self._policy: ApprovalPolicy = policy
        for value in [sla, *(sla_by or {}).values()]:
            if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
                raise ConfigurationError("sla and sla_by values must be positive timedeltas.")
        if on_timeout not in ("reject", "approve_draft", "escalate"):
            raise ConfigurationError(
                f"on_timeout must be 'reject', 'approve_draft' or 'escalate', got {on_timeout!r}."
            )
        if on_timeout == "escalate" and sla is None and not sla_by:
            raise ConfigurationError("on_timeout='escalate' needs an sla to set new deadlines.")
        self._sla = sla
        self._sla_by = dict(sla_by or {})
        self._on_timeout: OnTimeout = on_timeout
        if hooks is not None and not isinstance(hooks, Hooks):
            raise ConfigurationError("hooks must be a hitl_compliance.Hooks instance.")
        self._hooks = hooks or Hooks()
        _name_hooks(self._reviews, self._hooks.names())

    @property
    def graph(self) -> ComplianceGraph:
        """The compiled graph this coordinator drives."""
        return self._graph

    @property
    def reviews(self) -> ReviewStore:
        """The review/audit store."""
        return self._reviews

    @property
    def policy(self) -> ApprovalPolicy:
        """The approval policy in force."""
        return self._policy

    @property
    def lease(self) -> timedelta:
        """How long a claim or turn may stay unfinished before `recover()` takes it over."""
        return self._lease

    def now(self) -> datetime:
        """The coordinator's clock (timezone-aware): the time it stamps on reviews and audits."""
        return self._now()

    async def review(self, thread_id: str) -> PendingReview:
        """The thread's review awaiting a decision, as `pending()` lists it.

        Raises:
            ReviewNotFoundError: the thread never paused.
            AlreadyDecidedError: its review is claimed or decided already.

        Example:
            ```python
            review = await coord.review("t1")
            print(review.draft_response, [v.rule for v in review.violations])
            ```
        """
        _check_thread_id(thread_id)
        return (await self._open_review(thread_id, None)).to_pending()

    async def may_decide(self, thread_id: str, reviewer: str | Reviewer) -> Authorization:
        """Whether `reviewer` may decide the thread's pending review now, and if not, why.

        The same checks `approve` makes before anything changes (not the
        requester, no earlier vote, the policy's roles for the review's
        findings), without recording anything: for a UI that greys out the
        buttons. An edit adding findings can still be refused by `approve`.

        Raises:
            ReviewNotFoundError: the thread never paused.
            AlreadyDecidedError: its review is claimed or decided already.
        """
        _check_thread_id(thread_id)
        review = await self._open_review(thread_id, None)
        return self._authorization(as_reviewer(reviewer), review)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ConfigurationError(
                "The coordinator's clock must return timezone-aware datetimes."
            )
        return now

    # -- turns -----------------------------------------------------------------

    async def process(
        self,
        thread_id: str,
        message: str,
        *,
        requested_by: str | None = None,
        **fields: Any,
    ) -> ProcessResult:
        """Run one turn: draft a reply, check it, deliver it or pause for review.

        On a completed thread this starts a new turn of the conversation.
        Extra `fields` set fields of a custom `state_schema`.

        Raises:
            ThreadBusyError: the thread is paused for review or another turn runs.
            InvalidInputError: `message` or `fields` do not fit the state schema.
        """
        _check_thread_id(thread_id)
        values = self._turn_input(message, requested_by, fields)
        owner = uuid.uuid4().hex
        await self._reviews.begin_turn(thread_id, owner=owner, now=self._now())
        try:
            pos = await self._run(values, thread_id)
        except BaseException as exc:
            # The run raised (drafter error, cancellation): nothing paused, so free the thread.
            await self._reviews.end_turn(thread_id, owner=owner)
            if isinstance(exc, HitlError) and exc.thread_id is None:
                exc.thread_id = thread_id
            raise
        return await self._settle_turn(thread_id, owner, pos)

    def _turn_input(
        self, message: str, requested_by: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        _validate.text("message", message)
        if requested_by is not None:
            _validate.text("requested_by", requested_by)
        schema = self._spec.state_schema
        if fields:
            unknown = fields.keys() - schema.model_fields.keys()
            if unknown:
                raise InvalidInputError(
                    f"Unknown state fields {sorted(unknown)} for {schema.__name__}; "
                    "add them to your state_schema subclass."
                )
            clash = fields.keys() & _RESERVED
            if clash:
                raise InvalidInputError(f"Fields {sorted(clash)} are set by the library.")
            if "metadata" in fields:
                # Refused exactly as a decision's metadata is: LangGraph would checkpoint
                # NaN or NUL as given and fail only later, in a store or the serializer.
                fields = {**fields, "metadata": _validate.json_metadata(fields["metadata"])}
        # The previous turn's draft, findings and decision are cleared by the `draft`
        # node, only where set (a first turn writes no resets to its checkpoints).
        values: dict[str, Any] = {
            "customer_message": message,
            "requested_by": requested_by,
            **fields,
        }
        try:
            # LangGraph does not validate input against a pydantic schema before
            # checkpointing it; validate here so bad input changes nothing, and send
            # the validated (coerced) values rather than the raw ones.
            validated = schema.model_validate(values)
        except ValidationError as exc:
            raise InvalidInputError(f"Invalid input for this graph: {exc}") from exc
        dumped = validated.model_dump(include=set(values))
        for name in fields:
            try:
                _validate.check_storable(dumped[name])
            except ValueError as exc:
                raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
        return dumped

    async def _run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> _Position | None:
        """Run the graph on the thread; where it stopped, from its last checkpoint event.

        With `stream_mode="checkpoints"`, `ainvoke` returns every checkpoint the
        run created, in the format of `aget_state` (config with the checkpoint id,
        `next`, values). A run that returns normally stops at its last
        checkpoint: finished (`next` empty) or paused before `human_approval`
        (static style: the breakpoint; dynamic style: the node's `interrupt()` is
        saved as a pending write of that checkpoint, no new checkpoint is made).
        A node that raises propagates. Events of nested graphs (other namespaces)
        are skipped; without a top-level event (say, a wrapper that drops the
        stream mode) the caller reads the snapshot back instead.

        A decision's resume runs with `durability="sync"`: each step's
        checkpoint is saved before the next node runs, so a crash never leaves
        a later node's writes ahead of the checkpoint they build on.
        """
        events = await self._graph.ainvoke(
            graph_input, _config_for(thread_id), stream_mode="checkpoints", durability=durability
        )
        if not isinstance(events, list):
            return None
        for event in reversed(events):
            if not isinstance(event, dict) or "next" not in event:
                return None
            configurable = event["config"]["configurable"]
            if not configurable.get("checkpoint_ns"):
                return _Position(
                    self._state(event["values"]),
                    tuple(event["next"]) == _PAUSED,
                    str(configurable["checkpoint_id"]),
                )
        return None

    async def _position(self, thread_id: str, pos: _Position | None = None) -> _Position:
        """Where the thread stands: `pos` from the run that just ended, else the snapshot."""
        if pos is not None:
            return pos
        snapshot = await self._graph.aget_state(_config_for(thread_id))
        return _Position(
            self._state(snapshot.values), tuple(snapshot.next) == _PAUSED, _checkpoint_id(snapshot)
        )

    async def _settle_turn(
        self, thread_id: str, owner: str | None, run: _Position | None = None
    ) -> ProcessResult:
        """After a run: open a review if the graph paused, else end the turn."""
        pos = await self._position(thread_id, run)
        if pos.paused:
            state = pos.state
            findings = state.rule_results
            requested_at = self._now()
            quorum = self._quorum(findings)
            sla = self._sla_for(findings)
            review = ReviewRecord(
                review_id=uuid.uuid4().hex,
                thread_id=thread_id,
                checkpoint_id=pos.checkpoint_id,
                status="pending",
                customer_message=state.customer_message,
                draft_response=state.draft_response or "",
                violations=findings,
                requested_at=requested_at,
                requested_by=state.requested_by,
                approvals_required=quorum,
                deadline=None if sla is None else requested_at + sla,
            )
            review = await self._reviews.open_review(review, owner=owner)
            logger.info("thread %s paused for review %s", thread_id, review.review_id)
            await self._dispatch_hooks(thread_id)
            return _result(thread_id, pos, review_id=review.review_id)
        if owner is not None:
            await self._reviews.end_turn(thread_id, owner=owner)
        return _result(thread_id, pos)

    # -- reviews ---------------------------------------------------------------

    async def pending(
        self,
        *,
        rule: str | None = None,
        reviewer: str | Reviewer | None = None,
        older_than: timedelta | datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
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

        Raises:
            InvalidInputError: a filter of the wrong type, a `limit` outside 1 to
                2**63 - 1, an `older_than` beyond the calendar or naive, a bad cursor.

        Example:
            ```python
            page = await coord.pending(limit=50)
            more = await coord.pending(limit=50, cursor=page[-1].cursor)
            ```
        """
        _validate.page_limit(limit)
        before = _validate.older_than_cutoff(older_than, self._now)
        if rule is not None:
            _validate.text("rule", rule)
        after = _parse_cursor(_validate.cursor_text(cursor))
        who = None if reviewer is None else as_reviewer(reviewer)
        out: list[PendingReview] = []
        while True:
            page = await self._reviews.list_pending(
                limit=None if limit is None else max(limit, 50) if who else limit,
                rule=rule,
                requested_before=before,
                after=after,
            )
            for record in page:
                if who is None or self._may_decide(who, record):
                    out.append(record.to_pending())
                    if limit is not None and len(out) == limit:
                        return out
            if who is None or limit is None or not page:
                return out
            after = (page[-1].requested_at, page[-1].review_id)

    def _may_decide(self, reviewer: Reviewer, review: ReviewRecord) -> bool:
        return self._authorization(reviewer, review).allowed

    def _authorization(self, reviewer: Reviewer, review: ReviewRecord) -> Authorization:
        key = self._canonical(reviewer.id)
        if self._is_requester(key, review):
            return Authorization(False, "the requester of a review may not approve it")
        # The stored key is what the store compares; the id recomputed covers a vote
        # whose key came from another canonical form.
        if any(key in (v.reviewer_key, self._canonical(v.reviewer)) for v in review.votes):
            return Authorization(False, "they have voted on this review already")
        return self._policy.authorize(reviewer, review.violations)

    def _canonical(self, reviewer_id: str) -> str:
        """The policy's canonical form of an id (the default when it defines none)."""
        own = getattr(self._policy, "canonical_id", None)
        if own is None:
            return canonical_reviewer_id(reviewer_id)
        key = own(reviewer_id)
        if not isinstance(key, str) or not key:
            raise ConfigurationError(
                f"The approval policy's canonical_id returned {key!r} for {reviewer_id!r}; "
                "it must return a non-empty str."
            )
        return key

    def _is_requester(self, key: str, review: ReviewRecord) -> bool:
        """Whether the canonical id `key` is the review's requester, however they spelt it."""
        if review.requested_by is None:
            return False
        try:
            return key == self._canonical(review.requested_by)
        except HitlError:
            # A requester id with no visible character names no one a reviewer could be.
            return False

    def _quorum(self, findings: list[RuleResult]) -> int:
        required = self._policy.approvals_required(findings)
        if isinstance(required, bool) or not isinstance(required, int) or required < 1:
            raise ConfigurationError(
                f"The approval policy returned {required!r} approvals; it must be an int >= 1."
            )
        return required

    async def approve(
        self,
        thread_id: str,
        *,
        reviewer: str | Reviewer,
        response: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected: str | None = None,
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

        Raises:
            ReviewNotFoundError: the thread never paused for review.
            AlreadyDecidedError: another decision won, or the review was decided.
            NotAuthorizedError: the policy (or four-eyes) forbids this reviewer.
            PolicyViolationError: the edited response breaks a `block` rule.
            StaleReviewError: `expected` does not match the paused state.
            InvalidDecisionError: the decision failed validation; nothing changed.

        Example:
            ```python
            await coord.approve("t1", reviewer="officer@bank", metadata={"ticket": "C-9"})
            ```
        """
        _check_thread_id(thread_id)
        who = as_reviewer(reviewer)
        _validate.decision_text("response", response)
        _validate.decision_text("expected", expected)
        decision = self._decision(
            approved=True,
            reviewer=who.id,
            roles=sorted(who.roles),
            response=response,
            metadata=metadata,
        )
        review = await self._open_review(thread_id, expected)
        key = self._canonical(who.id)
        if self._is_requester(key, review):
            await self._deny(review, who, "the requester of a review may not approve it")
        findings = list(review.violations)
        text = review.draft_response
        edit_findings: list[RuleResult] = []
        if response is not None and response != review.draft_response:
            edit_findings = await self._check_edit(review, response)
            findings += [f for f in edit_findings if f not in findings]
            text = response
        auth = self._policy.authorize(who, findings)
        if not auth.allowed:
            await self._deny(review, who, auth.reason, auth.missing_roles)
        decision = decision.model_copy(
            update={
                "text_sha256": sha256_text(text),
                "edit_findings": [f.to_dict() for f in edit_findings],
            }
        )
        quorum = max(review.approvals_required, self._quorum(findings))
        claim_id = uuid.uuid4().hex
        vote = Vote(
            reviewer=who.id,
            reviewer_key=key,
            roles=sorted(who.roles),
            at=decision.decided_at,
            text_sha256=sha256_text(text),
            response=response,
            metadata=dict(decision.metadata),
        )
        updated = await self._reviews.vote(
            thread_id,
            review_id=review.review_id,
            vote=vote,
            quorum=quorum,
            claim_id=claim_id,
            decision=decision.to_state(),
            now=decision.decided_at,
        )
        if updated.status == "pending":
            logger.info(
                "thread %s: %s voted (%d of %d)",
                thread_id,
                who.id,
                len(updated.votes),
                quorum,
            )
            return _paused_result(updated, quorum)
        return await self._resume_claimed(updated, claim_id)

    async def reject(
        self,
        thread_id: str,
        *,
        reviewer: str | Reviewer,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        expected: str | None = None,
    ) -> ProcessResult:
        """Reject a paused draft; the customer gets `rejection_message` (or nothing).

        One authorised rejection ends a review, whatever approvals it had.

        Raises:
            ReviewNotFoundError: the thread never paused for review.
            AlreadyDecidedError: another decision won, or the review was decided.
            NotAuthorizedError: the policy forbids this reviewer.
            StaleReviewError: `expected` does not match the paused state.
            InvalidDecisionError: the decision failed validation; nothing changed.
        """
        _check_thread_id(thread_id)
        who = as_reviewer(reviewer)
        _validate.decision_text("reason", reason)
        _validate.decision_text("expected", expected)
        decision = self._decision(
            approved=False,
            reviewer=who.id,
            roles=sorted(who.roles),
            reason=reason or None,
            metadata=metadata,
        )
        review = await self._open_review(thread_id, expected)
        auth = self._policy.authorize(who, review.violations)
        if not auth.allowed:
            await self._deny(review, who, auth.reason, auth.missing_roles)
        claim_id = uuid.uuid4().hex
        claimed = await self._reviews.claim(
            thread_id,
            claim_id=claim_id,
            reviewer=who.id,
            decision=decision.to_state(),
            now=decision.decided_at,
            review_id=review.review_id,
        )
        return await self._resume_claimed(claimed, claim_id)

    def _decision(self, **fields: Any) -> Decision:
        # Checked here, not by LangGraph's serializer after the review is claimed.
        fields["metadata"] = _validate.json_metadata(
            fields.get("metadata"), error=InvalidDecisionError
        )
        try:
            return Decision(decided_at=self._now(), **fields)
        except ValidationError as exc:
            raise InvalidDecisionError(f"Invalid decision: {exc}") from exc

    async def _open_review(self, thread_id: str, expected: str | None) -> ReviewRecord:
        """The thread's pending review, checked against what the reviewer saw."""
        review = await self._reviews.get_review(thread_id)
        if review is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review: it never paused.", thread_id=thread_id
            )
        if review.status != "pending":
            raise AlreadyDecidedError(
                f"The review of thread {thread_id!r} is already {review.status}.",
                thread_id=thread_id,
                status=review.status,
            )
        if expected is not None:
            if not isinstance(expected, str):
                raise InvalidDecisionError("expected must be a draft_sha256 or checkpoint id.")
            current = (review.checkpoint_id, sha256_text(review.draft_response))
            if expected not in current:
                raise StaleReviewError(
                    f"Thread {thread_id!r} changed since it was loaded: expected {expected!r}, "
                    f"now checkpoint {review.checkpoint_id!r} with draft sha256 "
                    f"{current[1]!r}. Reload the review and decide again.",
                    thread_id=thread_id,
                    expected=expected,
                    actual=review.checkpoint_id,
                )
        return review

    async def _deny(
        self,
        review: ReviewRecord,
        reviewer: Reviewer,
        reason: str,
        missing_roles: frozenset[str] = frozenset(),
    ) -> None:
        """Record the refusal in the audit log, then raise; nothing else changes."""
        await self._reviews.append_audit(
            thread_id=review.thread_id,
            review_id=review.review_id,
            checkpoint_id=review.checkpoint_id,
            event="denied",
            actor=reviewer.id,
            payload={
                "reason": reason,
                "roles": sorted(reviewer.roles),
                "missing_roles": sorted(missing_roles),
            },
            at=self._now(),
        )
        raise NotAuthorizedError(
            f"{reviewer.id} may not decide the review of thread {review.thread_id!r}: {reason}.",
            thread_id=review.thread_id,
            reviewer=reviewer.id,
            missing_roles=missing_roles,
        )

    async def _check_edit(self, review: ReviewRecord, response: str) -> list[RuleResult]:
        """Run the rules on the edited reply; a `block` finding refuses the approval."""
        paused = await self._graph.aget_state(_checkpoint_config(review))
        state = self._state(paused.values).model_copy(update={"draft_response": response})
        findings = [r for r in await run_rules(self._spec.rules, state) if r.verdict != "pass"]
        blocked = [f for f in findings if f.verdict == "block"]
        if blocked:
            raise PolicyViolationError(
                f"The edited reply breaks {[f.rule for f in blocked]}: "
                + "; ".join(f"{f.rule}: {f.reason} {list(f.evidence)}" for f in blocked),
                thread_id=review.thread_id,
                findings=tuple(findings),
            )
        return findings

    def _final_decision(self, review: ReviewRecord) -> Decision:
        """The claimed decision, with every approver whose vote counted toward it."""
        if review.decision is None:
            raise HitlError(f"Review {review.review_id!r} has no decision.")
        decision = Decision.model_validate(review.decision)
        if not decision.approved or decision.kind == "system":
            return decision  # an SLA outcome is nobody's approval, whatever votes it had
        approvers = [v.reviewer for v in review.votes if v.text_sha256 == decision.text_sha256]
        return decision.model_copy(update={"approvers": approvers or [decision.reviewer]})

    async def _resume_claimed(
        self, review: ReviewRecord, claim_id: str, *, at: datetime | None = None
    ) -> ProcessResult:
        decision = self._final_decision(review)
        try:
            pos = await self._resume(review, decision)
        except BaseException:
            if await self._untouched(review):
                await self._reviews.release(review.review_id, claim_id=claim_id)
            raise
        return await self._record(review, claim_id, decision, pos, at=at)

    async def _resume(self, review: ReviewRecord, decision: Decision) -> _Position:
        """Resume the paused graph with `decision` and run it to the decided outcome."""
        pos = await self._resume_paused(review, decision)
        if pos is not None and _delivered(pos, decision):
            return pos
        # A wrapper that drops the checkpoint stream, or an outcome not reached: look.
        return await self._drive(review, decision)

    async def _resume_paused(self, review: ReviewRecord, decision: Decision) -> _Position | None:
        """Resume from the paused checkpoint, the one correct way for the graph's style."""
        payload = decision.to_state()
        if self._spec.style == "interrupt_before":
            # as_node="human_approval" skips the node body and routes on its edge;
            # Command(goto=...) here would run rejected twice (LANGGRAPH_FACTS.md).
            config = _config_for(review.thread_id)
            await self._graph.aupdate_state(config, {"decision": payload}, as_node="human_approval")
            return await self._run(None, review.thread_id, durability="sync")
        return await self._run(Command(resume=payload), review.thread_id, durability="sync")

    async def _drive(self, review: ReviewRecord, decision: Decision) -> _Position:
        """Run a claimed decision to its outcome from wherever the checkpoints stand.

        A process can die at any checkpoint write of a resume. LangGraph may
        then have saved the decision's writes on the paused checkpoint with no
        checkpoint after them (its `next` is then empty although the decided
        node never ran), a checkpoint whose successor (`deliver` / `rejected`)
        never ran, or that successor's writes without the final checkpoint
        (`aget_state` then shows them applied, but the next turn would start
        from the checkpoint before them). Each is finished with
        `ainvoke(None)`, which applies the saved writes without re-running a
        node that wrote them; a graph still cleanly paused is resumed.
        Finished means a final checkpoint later than the pause (nothing next,
        no task left) holding this decision.
        """
        config = _config_for(review.thread_id)
        for _ in range(4):
            snapshot = await self._graph.aget_state(config)
            nxt = tuple(snapshot.next)
            at_pause = _checkpoint_id(snapshot) == review.checkpoint_id
            pos: _Position | None = _Position(
                self._state(snapshot.values), nxt == _PAUSED, _checkpoint_id(snapshot)
            )
            if not nxt and not at_pause and not snapshot.tasks:
                assert pos is not None
                if not _delivered(pos, decision):
                    raise HitlError(
                        f"Thread {review.thread_id!r} finished without the decision claimed "
                        f"for review {review.review_id!r}; it was changed outside the "
                        "coordinator. Inspect its checkpoints before deciding again.",
                        thread_id=review.thread_id,
                    )
                return pos
            if nxt == _PAUSED and not at_pause:
                raise HitlError(
                    f"Thread {review.thread_id!r} is paused at another checkpoint than the "
                    f"reviewed one; it was changed outside the coordinator. Inspect it "
                    "before deciding.",
                    thread_id=review.thread_id,
                )
            if nxt == _PAUSED:
                pos = await self._resume_paused(review, decision)
            else:
                pos = await self._run(None, review.thread_id, durability="sync")
            if pos is not None and _delivered(pos, decision):
                return pos
        raise HitlError(
            f"Thread {review.thread_id!r} did not reach the outcome of review "
            f"{review.review_id!r}; recover() will try again.",
            thread_id=review.thread_id,
        )

    async def _untouched(self, review: ReviewRecord) -> bool:
        """Whether the graph is still exactly at the paused checkpoint (safe to release)."""
        try:
            snapshot = await self._graph.aget_state(_config_for(review.thread_id))
        except Exception:
            return False
        return tuple(snapshot.next) == _PAUSED and _checkpoint_id(snapshot) == review.checkpoint_id

    async def _record(
        self,
        review: ReviewRecord,
        claim_id: str,
        decision: Decision,
        run: _Position | None = None,
        *,
        at: datetime | None = None,
    ) -> ProcessResult:
        """Record the outcome of a resumed decision, stamped `at` (the clock by default)."""
        pos = await self._position(review.thread_id, run)
        state = pos.state
        status: FinalStatus = "approved" if decision.approved else "rejected"
        payload = decision.to_state()
        payload["delivered"] = state.agent_response
        if decision.kind == "system":
            status = "expired"
            payload.update(_FORCED)
            payload["action"] = "approve_draft" if decision.approved else "reject"
        if decision.approved and state.agent_response != review.draft_response:
            payload["diff"] = "".join(
                difflib.unified_diff(
                    review.draft_response.splitlines(keepends=True),
                    (state.agent_response or "").splitlines(keepends=True),
                    fromfile="draft",
                    tofile="delivered",
                )
            )
        await self._reviews.complete(
            review.review_id,
            claim_id=claim_id,
            status=status,
            now=self._now() if at is None else at,
            actor=decision.reviewer,
            payload=payload,
        )
        logger.info("thread %s %s by %s", review.thread_id, status, decision.reviewer)
        await self._dispatch_hooks(review.thread_id)
        return _result(
            review.thread_id,
            pos,
            review_id=review.review_id,
            reviewer=decision.reviewer,
        )

    # -- recovery --------------------------------------------------------------

    async def recover(self) -> list[ProcessResult]:
        """Finish work a crashed process left behind; safe to run from any process.

        Takes over only claims and turns older than the lease, so it never races
        a decider that is merely slow: a claimed decision is resumed (or, with
        the static style, finished from `next == ("deliver",)`) without
        re-running the drafter; a thread that paused without a review row gets
        one, so no paused thread stays invisible to `pending()`.

        Returns:
            One result per thread it finished or made pending.
        """
        now = self._now()
        cutoff = now - self._lease
        results: list[ProcessResult] = []
        for review in await self._reviews.abandoned_claims(claimed_before=cutoff):
            claim_id = uuid.uuid4().hex
            if review.claim_id is None or review.decision is None:
                continue
            if not await self._reviews.take_over_claim(
                review.review_id, old_claim_id=review.claim_id, new_claim_id=claim_id, now=now
            ):
                continue
            await self._audit_recovery(
                review.thread_id,
                review.review_id,
                review.checkpoint_id,
                {"recovered": "claim", "abandoned_by": review.reviewer},
            )
            decision = self._final_decision(review)
            pos = await self._drive(review, decision)
            results.append(await self._record(review, claim_id, decision, pos))
        for turn in await self._reviews.stale_turns(started_before=cutoff):
            owner = uuid.uuid4().hex
            if not await self._reviews.take_over_turn(
                turn.thread_id, old_owner=turn.owner, new_owner=owner, now=now
            ):
                continue
            config = _config_for(turn.thread_id)
            snapshot = await self._graph.aget_state(config)
            if "checkpoint_id" not in snapshot.config.get("configurable", {}):
                # Died before the graph's first checkpoint: nothing ran, nothing to finish.
                await self._reviews.end_turn(turn.thread_id, owner=owner)
                continue
            await self._audit_recovery(
                turn.thread_id, None, _checkpoint_id(snapshot), {"recovered": "turn"}
            )
            if snapshot.next and tuple(snapshot.next) != _PAUSED:
                # The run died mid-way (say, in `compliance`): finish it from its checkpoint.
                await self._graph.ainvoke(None, config)
            results.append(await self._settle_turn(turn.thread_id, owner))
        await self._dispatch_hooks(None, created_before=cutoff)
        return results

    async def _audit_recovery(
        self,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        payload: dict[str, Any],
    ) -> None:
        await self._reviews.append_audit(
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event="recovered",
            actor="system:recover",
            payload=payload,
            at=self._now(),
        )

    # -- SLA -------------------------------------------------------------------

    def _sla_for(self, findings: list[RuleResult]) -> timedelta | None:
        candidates = [self._sla] if self._sla is not None else []
        for finding in findings:
            for key in (finding.rule, finding.severity):
                if key in self._sla_by:
                    candidates.append(self._sla_by[key])
        return min(candidates) if candidates else None

    async def expire_overdue(self, now: datetime | None = None) -> list[ProcessResult]:
        """Resolve every pending review past its deadline by `on_timeout`, exactly once.

        Idempotent and safe with several sweepers at once: each review is
        claimed (or escalated) atomically, so only one sweeper resolves it. State
        and audit record `{"forced": True, "reason": "sla_timeout"}` with actor
        `system:sla`.

        Args:
            now: Sweep as of this time (the coordinator's clock by default):
                reviews due by then are resolved, and their claims, completions
                and audit rows are stamped with it.

        Returns:
            One result per review this call resolved or escalated.

        Raises:
            InvalidInputError: `now` is not a timezone-aware datetime.
        """
        as_of = None if now is None else _validate.aware_datetime("now", now)
        now = self._now() if as_of is None else as_of
        results: list[ProcessResult] = []
        for review in await self._reviews.list_overdue(now=now):
            try:
                results.append(await self._expire(review, now, as_of=as_of))
            except AlreadyDecidedError:
                continue  # another sweeper, or a reviewer, got there first
        return results

    async def _expire(
        self, review: ReviewRecord, now: datetime, *, as_of: datetime | None
    ) -> ProcessResult:
        if self._on_timeout == "escalate":
            sla = self._sla_for(review.violations)
            assert sla is not None  # checked in __init__
            escalated = await self._reviews.escalate(
                review.review_id,
                now=now,
                new_deadline=now + sla,
                actor=SLA_ACTOR,
                payload={**_FORCED, "action": "escalate", "priority": review.priority + 1},
            )
            if escalated is None:
                raise AlreadyDecidedError("escalated already", thread_id=review.thread_id)
            await self._dispatch_hooks(review.thread_id)
            return _paused_result(escalated, escalated.approvals_required)
        approve = self._on_timeout == "approve_draft"
        decision = Decision(
            approved=approve,
            reviewer=SLA_ACTOR,
            kind="system",
            reason=None if approve else "sla_timeout",
            metadata=dict(_FORCED),
            decided_at=now,
            text_sha256=sha256_text(review.draft_response) if approve else None,
        )
        claim_id = uuid.uuid4().hex
        claimed = await self._reviews.claim(
            review.thread_id,
            claim_id=claim_id,
            reviewer=SLA_ACTOR,
            decision=decision.to_state(),
            now=now,
            review_id=review.review_id,
        )
        # A sweep "as of" an explicit `now` stamps its completions with it too, so
        # no review is recorded as completed before it was claimed.
        return await self._resume_claimed(claimed, claim_id, at=as_of)

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
        seconds = _validate.interval_seconds(interval)
        while True:
            try:
                resolved = await self.expire_overdue()
                if resolved:
                    logger.info("SLA sweep resolved %d review(s)", len(resolved))
            except Exception:
                logger.exception("SLA sweep failed; retrying in %s s", seconds)
            await asyncio.sleep(seconds)

    # -- hooks -----------------------------------------------------------------

    async def _dispatch_hooks(
        self, thread_id: str | None, *, created_before: datetime | None = None
    ) -> None:
        """Call the hooks owed by durable events, each under a lease; failures go to recover().

        The rows are claimed first, so another replica, turn or `recover()`
        never calls a hook this call is making, and the outcome is recorded
        only while the lease is still ours.
        """
        names = self._hooks.names()
        if not names:
            return
        owner = uuid.uuid4().hex
        now = self._now()
        lease_until = now + self._lease
        deliveries = await self._reviews.claim_hooks(
            owner=owner,
            now=now,
            lease_until=lease_until,
            thread_id=thread_id,
            hooks=names,
            created_before=created_before,
            # Failed calls are retried by recover(), not by the next decision on the thread.
            include_failed=thread_id is None,
        )
        for delivery in deliveries:
            if self._now() >= lease_until:
                # Earlier hooks used up the lease: another process may take this row
                # over now, so calling it here could make the same call twice at once.
                logger.warning(
                    "hook %s for thread %s (audit seq %s) not called: the lease ran out "
                    "while earlier hooks ran; recover() will call it",
                    delivery.hook,
                    delivery.record.thread_id,
                    delivery.record.seq,
                )
                continue
            hook = getattr(self._hooks, delivery.hook)
            error: str | None = None
            try:
                outcome = hook(event_for(delivery))
                if inspect.isawaitable(outcome):
                    await self._under_lease(outcome, delivery.delivery_id, owner)
            except Exception as exc:
                error = repr(exc)
                logger.exception(
                    "hook %s failed for thread %s (audit seq %s); recover() will retry it",
                    delivery.hook,
                    delivery.record.thread_id,
                    delivery.record.seq,
                )
            recorded = await self._reviews.finish_hook(
                delivery.delivery_id, ok=error is None, error=error, now=self._now(), owner=owner
            )
            if not recorded:
                logger.warning(
                    "hook %s for thread %s (audit seq %s, delivery %s) outran its lease of %s "
                    "and another caller took it over: it may have been called twice (with the "
                    "same delivery_id); raise the coordinator's lease= above the hook's run time",
                    delivery.hook,
                    delivery.record.thread_id,
                    delivery.record.seq,
                    delivery.delivery_id,
                    self._lease,
                )

    async def _under_lease(self, call: Awaitable[object], delivery_id: str, owner: str) -> None:
        """Await an async hook call, renewing its lease every third of the lease meanwhile.

        So a live call keeps its row however long it runs, and only a caller
        that died (or whose event loop stalls for a whole lease) is taken over.
        """
        renewer = asyncio.create_task(self._renew_lease(delivery_id, owner))
        try:
            await call
        finally:
            renewer.cancel()
            # Reaps the renewer; unlike `await renewer`, never swallows our own cancellation.
            await asyncio.gather(renewer, return_exceptions=True)

    async def _renew_lease(self, delivery_id: str, owner: str) -> None:
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._reviews.renew_hook(
                    delivery_id, owner=owner, lease_until=self._now() + self._lease
                )
            except Exception:
                logger.exception("could not renew the lease of hook delivery %s", delivery_id)
                continue
            if not held:
                logger.warning(
                    "hook delivery %s lost its lease to another caller while running",
                    delivery_id,
                )
                return

    # -- evidence --------------------------------------------------------------

    async def verify_audit(self, thread_id: str | None = None) -> LedgerReport:
        """Verify the tamper-evident audit ledger (one thread's chain, or the whole store).

        Returns a report with `ok` and `first_broken` (None when ok) naming the
        first row that was edited, deleted, inserted or reordered.
        """
        _validate.optional_thread_id(thread_id)
        rows = [r.to_row() for r in await self._reviews.audit_rows(thread_id)]
        head = None if thread_id is not None else await self._reviews.audit_head()
        return verify_rows(rows, head=head or (0, ""), thread_id=thread_id)

    async def export_audit(
        self, path: str | os.PathLike[str], *, thread_id: str | None = None
    ) -> int:
        """Write the audit ledger as JSON Lines an auditor can verify offline.

        One `{"type": "row", ...}` object per row (all hashed fields plus
        `hash`), then for a whole-store export one `{"type": "head", "seq",
        "hash"}` line. Verify with `python -m hitl_compliance.ledger verify FILE`
        (or the copied `ledger.py` file alone). Returns the number of rows written.
        """
        target = _validate.export_path(path)
        _validate.optional_thread_id(thread_id)
        rows = await self._reviews.audit_rows(thread_id)
        head = None if thread_id is not None else await self._reviews.audit_head()
        lines = [json.dumps({"type": "row", **r.to_row()}, ensure_ascii=False) for r in rows]
        if thread_id is None:
            seq, digest = head or (0, "")
            lines.append(json.dumps({"type": "head", "seq": seq, "hash": digest}))
        text = "".join(line + "\n" for line in lines)
        # Written in a worker thread: an export can be large, and must not block the loop.
        await asyncio.to_thread(_write_text, target, text)
        return len(rows)

    # -- evidence --------------------------------------------------------------

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit records, oldest first."""
        _check_thread_id(thread_id)
        return await self._reviews.audit_log(thread_id)

    async def state_at_decision(self, thread_id: str) -> ComplianceState:
        """The state of the exact paused checkpoint the latest decision was made on.

        Read back from the checkpointer by checkpoint id, not copied.

        Raises:
            ReviewNotFoundError: the thread never paused for review.
        """
        _check_thread_id(thread_id)
        review = await self._reviews.get_review(thread_id)
        if review is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review to show.", thread_id=thread_id
            )
        snapshot = await self._graph.aget_state(_checkpoint_config(review))
        return self._state(snapshot.values)

    def _state(self, values: Mapping[str, Any]) -> ComplianceState:
        # A command_resume run's output carries "__interrupt__"; the schema ignores it.
        return self._spec.state_schema.model_validate(values)


# The hooks each store instance was last told about by a coordinator of this process.
_STORE_HOOKS: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def _name_hooks(store: ReviewStore, names: frozenset[str]) -> None:
    """Tell the store which hooks get outbox rows; warn when that drops another's hooks."""
    try:
        previous = _STORE_HOOKS.get(store)
        _STORE_HOOKS[store] = names
    except TypeError:  # a store that cannot be weakly referenced: nothing to compare
        previous = None
    if previous is not None and previous - names:
        logger.warning(
            "A second HitlCoordinator on the same %s instance stops outbox rows for "
            "hooks %s of the first; give each coordinator its own store instance.",
            type(store).__name__,
            sorted(previous - names),
        )
    store.configure_hooks(names)


def _check_thread_id(thread_id: str) -> None:
    _validate.thread_id(thread_id)


def _config_for(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _checkpoint_config(review: ReviewRecord) -> Any:
    """Config reading the exact paused checkpoint of `review`."""
    return {
        "configurable": {
            "thread_id": review.thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": review.checkpoint_id,
        }
    }


def _parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        at, review_id = cursor.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (AttributeError, ValueError):
        raise InvalidInputError(f"{cursor!r} is not a cursor from PendingReview.cursor.") from None
    if parsed.tzinfo is None or not review_id:
        raise InvalidInputError(f"{cursor!r} is not a cursor from PendingReview.cursor.")
    return _validate.aware_datetime("cursor", parsed), review_id


def _paused_result(review: ReviewRecord, quorum: int) -> ProcessResult:
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


def _delivered(pos: _Position, decision: Decision) -> bool:
    """Whether the run ended past the pause, with `decision`'s outcome node having run."""
    if pos.paused or pos.state.agent_type != "human_admin" or pos.state.decision is None:
        return False
    held = pos.state.decision
    return bool(
        held.get("reviewer") == decision.reviewer
        and held.get("approved") == decision.approved
        and held.get("decided_at") == decision.to_state()["decided_at"]
    )


def _checkpoint_id(snapshot: StateSnapshot) -> str:
    return str(snapshot.config["configurable"]["checkpoint_id"])


@dataclass(frozen=True, slots=True)
class _Position:
    """A thread after a run: its state, whether it waits at `human_approval`, its checkpoint."""

    state: ComplianceState
    paused: bool
    checkpoint_id: str


def _result(
    thread_id: str,
    pos: _Position,
    *,
    review_id: str | None = None,
    reviewer: str | None = None,
) -> ProcessResult:
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
        checkpoint_id=pos.checkpoint_id,
        review_id=review_id,
        metadata=dict(state.metadata),
    )
