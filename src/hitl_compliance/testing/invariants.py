"""`assert_invariants`: what must hold between a coordinator's store, audit ledger and checkpoints.

Call it from any test, after any sequence of calls (with no call still
running): it reads the review store, the audit ledger and the graph's
checkpoints of every thread the store knows (plus the drafter's threads, and
any you name) and raises [`InvariantViolation`][hitl_compliance.testing.InvariantViolation]
listing every broken promise:

* **No delivery without an authorised decision.** A reply the LLM wrote is
  delivered (`agent_type == "llm"`) only when it had no findings (the graph's
  rules are re-run on it); a human-decided reply has a decision on record
  whose approvers satisfy the coordinator's policy and quorum and are not the
  requester; a delivered text has no `block` finding.
* **Store, ledger and checkpoints agree.** A pending review is the thread's
  latest and the graph is paused at exactly its checkpoint; a paused graph has
  an open review; each review has one `paused` audit row and, once decided,
  exactly one decision row; a claim is no older than the lease; each turn ended
  at most once.
* **The drafter ran once per turn** (given the
  [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter]).
* **The audit ledger verifies** (`verify_audit()`).

On a graph with [`compliance_gate`][hitl_compliance.compliance_gate]s (at any
depth) the same promises are read through the gates: every reply text and tool
call a gate let through was clear of findings or carries a decision that a
decision audit row records; a blocked or rejected tool call never ran (no
`ToolMessage` of its own but the gate's refusal), and no call ran twice; a
pending review is the one a gate waits on, and a waiting gate has an open
review. The drafter check is the factory graph's (its `turn` field).

The checks read the stores and checkpoints directly, also through a
[`FaultInjector`][hitl_compliance.testing.FaultInjector] whose process is
dead: they are the auditor looking at the database, not the crashed process.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import StateSnapshot
from pydantic import BaseModel

from hitl_compliance._coordination.driver import Driver, Position, config_for, driver_for
from hitl_compliance._replies import REPLY_EVENT
from hitl_compliance.coordinator import SLA_ACTOR, HitlCoordinator
from hitl_compliance.errors import HitlError
from hitl_compliance.gate import GATE_KEY, GateItem, GateOutcome
from hitl_compliance.graph import (
    ComplianceGraph,
    GraphSpec,
    graph_spec,
    is_factory_graph,
    run_rules,
)
from hitl_compliance.ledger import verify_rows
from hitl_compliance.models import AuditRecord, ReviewRecord, sha256_text
from hitl_compliance.policy import ApprovalPolicy, Reviewer, canonical_reviewer_id
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.testing.fakes import ScriptedDrafter
from hitl_compliance.testing.faults import unwrap_graph, unwrap_store

__all__ = ["InvariantViolation", "assert_invariants"]

_PAUSED = ("human_approval",)
_RESUMING = (("deliver",), ("rejected",))
_DECISION_EVENTS = frozenset({"approved", "rejected", "expired"})
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)

_VERIFIED: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, ...]]] = weakref.WeakKeyDictionary()
"""Per graph: thread id -> what its history looked like when it last passed."""


class InvariantViolation(AssertionError):  # noqa: N818 - a failed check, named like Hypothesis's
    """One or more of the coordinator's promises is broken; `problems` lists each, precisely.

    An `AssertionError`, so pytest reports it as a test failure and Hypothesis
    shrinks towards it.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{count} invariant violation{'s' * (count != 1)}:\n{lines}")


async def assert_invariants(
    coord: HitlCoordinator,
    *,
    drafter: ScriptedDrafter | None = None,
    threads: Iterable[str] = (),
    crashed: bool = False,
    now: datetime | None = None,
    recheck_rules: bool = True,
) -> None:
    """Check every invariant of `coord`'s store, audit ledger and checkpoints.

    Args:
        coord: The coordinator under test (its store and graph may be wrapped
            by a [`FaultInjector`][hitl_compliance.testing.FaultInjector]).
        drafter: The graph's [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter];
            checks it ran exactly once per turn of every thread.
        threads: More thread ids to check. Threads that never paused leave no
            row in the store; they are found through `drafter`, or name them here.
        crashed: A process crashed and `recover()` has not yet finished its
            work. Allows what a crash legitimately leaves behind until then:
            claims and turns older than the lease, a decision applied to the
            graph but not recorded, a hook call owed but never completed.
            Everything else is still checked.
        now: The time the lease is measured against (default: the
            coordinator's clock, read once).
        recheck_rules: Re-run the graph's rules on delivered texts (turn off for
            rules that are not deterministic, such as an LLM judge).

    Raises:
        InvariantViolation: listing every problem found.

    Example:
        ```python
        await coord.process("t1", "Can I claim for the flood?")
        await coord.approve("t1", reviewer="adjuster@insurer")
        await assert_invariants(coord, drafter=drafter)
        ```
    """
    checker = _Checker(coord, drafter=drafter, crashed=crashed, recheck_rules=recheck_rules)
    await checker.run(list(threads), now)
    if checker.problems:
        raise InvariantViolation(checker.problems)


class _Checker:
    def __init__(
        self,
        coord: HitlCoordinator,
        *,
        drafter: ScriptedDrafter | None,
        crashed: bool,
        recheck_rules: bool,
    ) -> None:
        self.store: ReviewStore = unwrap_store(coord.reviews)
        self.graph: ComplianceGraph = unwrap_graph(coord.graph)
        # A graph with gates has no build spec: the coordinator's driver reads it.
        self.spec: GraphSpec | None = (
            graph_spec(self.graph) if is_factory_graph(self.graph) else None
        )
        self.driver: Driver = driver_for(self.graph, self.spec, self.store)
        self.policy: ApprovalPolicy = coord.policy
        # The coordinator exposes neither its lease nor its clock publicly.
        self.lease: timedelta = coord.lease
        self.clock = coord.now
        self.drafter = drafter
        self.crashed = crashed
        self.recheck_rules = recheck_rules
        self.problems: list[str] = []
        self.rows: list[AuditRecord] = []
        self.open_turns: set[str] = set()

    def problem(self, message: str) -> None:
        self.problems.append(message)

    async def run(self, extra_threads: list[str], now: datetime | None) -> None:
        now = now if now is not None else self.clock()
        self.rows = await self.store.audit_rows()
        head = await self.store.audit_head()
        report = verify_rows([r.to_row() for r in self.rows], head=head or (0, ""))
        if not report.ok and report.first_broken is not None:
            broken = report.first_broken
            self.problem(
                f"audit ledger does not verify at seq {broken.seq} "
                f"(thread {broken.thread_id!r}): {broken.reason}"
            )
        pending = await self.store.list_pending()
        turns = await self.store.stale_turns(started_before=_FAR_FUTURE)
        self.open_turns = {t.thread_id for t in turns}
        known: dict[str, None] = {}
        for thread_id in [
            *(r.thread_id for r in self.rows),
            *(p.thread_id for p in pending),
            *self.open_turns,
            *(self.drafter.thread_counts if self.drafter is not None else ()),
            *extra_threads,
        ]:
            known[thread_id] = None
        for review in pending:
            opened = await self.store.open_reviews(review.thread_id)
            if review.review_id not in {r.review_id for r in opened}:
                self.problem(
                    f"thread {review.thread_id!r}: pending review {review.review_id!r} is "
                    "not among the thread's open reviews"
                )
            # Several open reviews are the items of one pause ("<checkpoint>:<review id>").
            pauses = {r.checkpoint_id.rpartition(":")[0] or r.checkpoint_id for r in opened}
            if len(opened) > 1 and len(pauses) > 1:
                self.problem(
                    f"thread {review.thread_id!r}: open reviews of {len(pauses)} different "
                    f"pauses {sorted(pauses)}; only the items of one pause may be open together"
                )
        for thread_id in known:
            await self.check_thread(thread_id)
        if not self.crashed:
            await self.check_leases(now)

    async def check_leases(self, now: datetime) -> None:
        cutoff = now - self.lease
        for review in await self.store.abandoned_claims(claimed_before=cutoff):
            self.problem(
                f"thread {review.thread_id!r}: review {review.review_id!r} has been claimed "
                f"since {review.claimed_at}, longer than the lease ({self.lease}); a crashed "
                "decision was not finished by recover()"
            )
        for turn in await self.store.stale_turns(started_before=cutoff):
            self.problem(
                f"thread {turn.thread_id!r}: a turn started at {turn.started_at} is still open "
                f"after the lease ({self.lease}); recover() did not finish it"
            )
        for delivery in await self.store.pending_hooks(created_before=cutoff):
            if delivery.lease_until is not None and delivery.lease_until > now:
                continue  # a caller holds it: the call is being made right now
            if delivery.status == "pending":
                taken = "" if delivery.lease_owner is None else " (its caller died)"
                self.problem(
                    f"thread {delivery.record.thread_id!r}: the {delivery.hook} call owed for "
                    f"audit seq {delivery.record.seq} was never completed{taken}; recover() "
                    "did not deliver it"
                )

    # -- one thread --------------------------------------------------------------

    async def check_thread(self, thread_id: str) -> None:
        if self.spec is None:
            await self.check_gated_thread(thread_id)
            return
        config: Any = {"configurable": {"thread_id": thread_id}}
        snapshot = await self.graph.aget_state(config)
        review = await self.store.get_review(thread_id)
        rows = [r for r in self.rows if r.thread_id == thread_id]
        self.check_reviews_in_audit(
            thread_id, rows, review, await self.store.open_reviews(thread_id)
        )
        if review is not None:
            self.check_latest_review(thread_id, review, snapshot)
        self.check_position(thread_id, snapshot, review)
        # Walking the whole history is the expensive part; a thread whose latest
        # checkpoint, audit rows and review are as they were when it last passed
        # has the same history, so it is not walked again.
        key = (
            _checkpoint_id(snapshot),
            len(rows),
            None if review is None else (review.review_id, review.status, review.claim_id),
            self.crashed,
            self.recheck_rules,
        )
        verified = _VERIFIED.setdefault(self.graph, {})
        if verified.get(thread_id) != key:
            found = len(self.problems)
            history = [s async for s in self.graph.aget_state_history(config)]
            await self.check_deliveries(thread_id, history, rows, review)
            if len(self.problems) == found:
                verified[thread_id] = key
        if self.drafter is not None:
            calls = self.drafter.calls_for(thread_id)
            turns = int(snapshot.values.get("turn", 0) or 0)
            if calls != turns:
                self.problem(
                    f"thread {thread_id!r}: the drafter ran {calls} time(s) for {turns} "
                    "drafted turn(s); it must run exactly once per turn"
                )

    def check_reviews_in_audit(
        self,
        thread_id: str,
        rows: list[AuditRecord],
        latest: ReviewRecord | None,
        opened: Sequence[ReviewRecord] = (),
    ) -> None:
        """Each review: one `paused` row; one decision row once decided, none while open.

        `replied` rows (a turn's reply record, see `_replies`) are not counted.

        `opened` are the thread's open reviews (several: the items of one pause,
        each decided on its own); the latest may be decided while others wait.
        """
        still_open = {r.review_id: r for r in opened}
        by_review: dict[str, list[AuditRecord]] = {}
        for row in rows:
            # A turn's `replied` record is not a review event: a gate's names the
            # text item's review id even when its rules blocked the draft outright.
            if row.review_id is not None and row.event != REPLY_EVENT:
                by_review.setdefault(row.review_id, []).append(row)
        if latest is not None and latest.review_id not in by_review:
            self.problem(
                f"thread {thread_id!r}: review {latest.review_id!r} has no audit rows at all"
            )
        for review_id, review_rows in by_review.items():
            events = Counter(r.event for r in review_rows)
            if events["paused"] != 1:
                self.problem(
                    f"thread {thread_id!r}: review {review_id!r} has {events['paused']} "
                    "'paused' audit rows; it must have exactly one"
                )
            decisions = [r for r in review_rows if r.event in _DECISION_EVENTS]
            is_latest = latest is not None and latest.review_id == review_id
            final = is_latest and latest is not None and latest.status in _DECISION_EVENTS
            waiting = review_id in still_open
            expected = 1 if (final or not (is_latest or waiting)) else 0
            if len(decisions) != expected:
                state = (
                    latest.status
                    if is_latest and latest is not None
                    else still_open[review_id].status
                    if waiting
                    else "superseded"
                )
                self.problem(
                    f"thread {thread_id!r}: review {review_id!r} ({state}) has "
                    f"{len(decisions)} decision audit rows "
                    f"{[(r.seq, r.event) for r in decisions]}; expected {expected}"
                )
            paused = next((r for r in review_rows if r.event == "paused"), None)
            for decision in decisions:
                if paused is not None and decision.seq < paused.seq:
                    self.problem(
                        f"thread {thread_id!r}: decision row seq {decision.seq} precedes "
                        f"its review's 'paused' row seq {paused.seq}"
                    )
                requester = latest.requested_by if is_latest and latest is not None else None
                self.check_decision(thread_id, decision, paused, review_rows, requester)

    def canonical(self, reviewer_id: str) -> str:
        """The policy's canonical form of an id, as the coordinator compares them."""
        own = getattr(self.policy, "canonical_id", None)
        try:
            return str(own(reviewer_id)) if own is not None else canonical_reviewer_id(reviewer_id)
        except HitlError:
            return reviewer_id

    def check_decision(
        self,
        thread_id: str,
        row: AuditRecord,
        paused: AuditRecord | None,
        review_rows: list[AuditRecord],
        requester: str | None,
    ) -> None:
        payload = row.payload
        where = f"thread {thread_id!r}: {row.event} (audit seq {row.seq}) by {row.actor!r}"
        if payload.get("kind") == "system":
            if row.actor != SLA_ACTOR or not payload.get("forced"):
                self.problem(f"{where}: a system decision that is not an SLA expiry")
            return
        findings = _findings(paused.payload.get("violations", []) if paused else [])
        if requester is None and paused is not None and paused.actor != "system":
            requester = paused.actor
        if not payload.get("approved"):
            who = Reviewer(str(payload.get("reviewer", row.actor)), _roles(payload))
            auth = self.policy.authorize(who, findings)
            if not auth.allowed:
                self.problem(f"{where}: rejected by an unauthorised reviewer: {auth.reason}")
            return
        for extra in _findings(payload.get("edit_findings") or []):
            if extra not in findings:
                findings.append(extra)
        text_sha = payload.get("text_sha256")
        roles = {
            r.actor: _roles(r.payload)
            for r in review_rows
            if r.event == "voted" and r.payload.get("text_sha256") == text_sha
        }
        roles[str(payload.get("reviewer", row.actor))] = _roles(payload)
        approvers = list(dict.fromkeys(payload.get("approvers") or [payload.get("reviewer")]))
        # People, not spellings: approvers whose ids share a canonical form are one.
        people = {self.canonical(str(a)) for a in approvers}
        if len(people) < len(approvers):
            self.problem(f"{where}: one person counted more than once among {approvers}")
        needed = self.policy.approvals_required(findings)
        if len(approvers) < needed:
            self.problem(
                f"{where}: delivered with {len(approvers)} approver(s) {approvers}; the policy "
                f"requires {needed} for {[f.rule for f in findings]}"
            )
        for approver in approvers:
            if requester is not None and self.canonical(str(approver)) == self.canonical(requester):
                self.problem(f"{where}: approved by its own requester {approver!r}")
            auth = self.policy.authorize(
                Reviewer(str(approver), roles.get(approver, frozenset())), findings
            )
            if not auth.allowed:
                self.problem(f"{where}: approver {approver!r} is not authorised: {auth.reason}")
        delivered = payload.get("delivered")
        if text_sha is not None and delivered is not None and sha256_text(delivered) != text_sha:
            self.problem(f"{where}: the delivered text is not the text the approvers approved")

    def check_latest_review(
        self, thread_id: str, review: ReviewRecord, snapshot: StateSnapshot
    ) -> None:
        at = tuple(snapshot.next)
        checkpoint = _checkpoint_id(snapshot)
        where = f"thread {thread_id!r}: review {review.review_id!r} ({review.status})"
        if review.status == "pending":
            if at != _PAUSED or checkpoint != review.checkpoint_id:
                self.problem(
                    f"{where} is pending at checkpoint {review.checkpoint_id!r}, but the graph "
                    f"is at {at or 'END'} (checkpoint {checkpoint!r})"
                )
        elif review.status == "claimed":
            if review.claim_id is None or review.decision is None:
                self.problem(f"{where} is claimed without a claim id and a decision")
            paused_here = at == _PAUSED and checkpoint == review.checkpoint_id
            resumed = at == () or at in _RESUMING
            if not (paused_here or resumed):
                self.problem(
                    f"{where}: the graph is at {at} (checkpoint {checkpoint!r}), neither at the "
                    "claimed pause nor resumed from it"
                )
        elif at == _PAUSED and checkpoint == review.checkpoint_id:
            self.problem(f"{where} is decided but the graph is still paused at its checkpoint")

    def check_position(
        self, thread_id: str, snapshot: StateSnapshot, review: ReviewRecord | None
    ) -> None:
        at = tuple(snapshot.next)
        if not at or not snapshot.values:
            return
        open_turn = thread_id in self.open_turns
        if at == _PAUSED:
            reviewed = (
                review is not None
                and review.status in ("pending", "claimed")
                and review.checkpoint_id == _checkpoint_id(snapshot)
            )
            if not reviewed and not open_turn:
                self.problem(
                    f"thread {thread_id!r} is paused for review at checkpoint "
                    f"{_checkpoint_id(snapshot)!r} but has no open review: pending() cannot see it"
                )
        elif at in _RESUMING:
            if review is None or review.status != "claimed":
                self.problem(
                    f"thread {thread_id!r} is about to run {at[0]!r} without a claimed decision"
                )
        elif not open_turn and not any(task.error for task in snapshot.tasks):
            self.problem(
                f"thread {thread_id!r} stopped at {at} with neither an error nor an open turn"
            )

    async def check_deliveries(
        self,
        thread_id: str,
        history: list[StateSnapshot],
        rows: list[AuditRecord],
        review: ReviewRecord | None,
    ) -> None:
        ends = 0
        paused_at: str | None = None  # the checkpoint the current turn paused at, if any
        for snapshot in reversed(history):  # oldest first
            if snapshot.metadata is not None and snapshot.metadata.get("source") == "input":
                ends, paused_at = 0, None
            if tuple(snapshot.next) == _PAUSED:
                paused_at = _checkpoint_id(snapshot)
            if snapshot.next or not snapshot.values:
                continue
            ends += 1
            if ends > 1:
                self.problem(
                    f"thread {thread_id!r}: one turn ended {ends} times (checkpoint "
                    f"{_checkpoint_id(snapshot)!r}): a decision was applied twice"
                )
            await self.check_delivery(thread_id, snapshot, paused_at, rows, review)

    async def check_delivery(
        self,
        thread_id: str,
        snapshot: StateSnapshot,
        paused_at: str | None,
        rows: list[AuditRecord],
        review: ReviewRecord | None,
    ) -> None:
        assert self.spec is not None
        state = self.spec.state_schema.model_validate(snapshot.values)
        where = f"thread {thread_id!r} (turn {state.turn}, checkpoint {_checkpoint_id(snapshot)!r})"
        findings = [RuleResult.from_dict(v) for v in state.violations]
        if state.agent_type == "llm":
            if findings or not state.is_compliant or paused_at is not None:
                self.problem(
                    f"{where}: the LLM draft was delivered despite findings "
                    f"{[f.rule for f in findings]}"
                )
            if state.agent_response != state.draft_response:
                self.problem(f"{where}: agent_type 'llm' but the reply is not the draft")
            if self.recheck_rules:
                again = [r for r in await run_rules(self.spec.rules, state) if r.verdict != "pass"]
                if again:
                    self.problem(
                        f"{where}: the LLM draft was delivered without review, but the rules "
                        f"flag it: {[(f.rule, f.verdict) for f in again]}"
                    )
            return
        if state.agent_type == "system":
            if not any(f.verdict == "block" for f in findings) or state.decision is not None:
                self.problem(f"{where}: refused by the system without a block finding")
            if state.agent_response != self.spec.rejection_message:
                self.problem(f"{where}: a blocked draft delivered {state.agent_response!r}")
            return
        if state.agent_type != "human_admin" or state.decision is None or paused_at is None:
            self.problem(
                f"{where}: reply of agent_type {state.agent_type!r} without a paused review "
                "and a decision"
            )
            return
        decision = state.decision
        # The turn's review is the one opened at the checkpoint this turn paused at.
        review_ids = {
            r.review_id for r in rows if r.event == "paused" and r.checkpoint_id == paused_at
        }
        recorded = [
            r
            for r in rows
            if r.event in _DECISION_EVENTS
            and r.review_id in review_ids
            and r.payload.get("decided_at") == decision.get("decided_at")
            and r.payload.get("reviewer") == decision.get("reviewer")
        ]
        in_flight = (
            self.crashed
            and review is not None
            and review.status == "claimed"
            and review.checkpoint_id == paused_at
            and review.decision is not None
            and review.decision.get("decided_at") == decision.get("decided_at")
        )
        if not recorded and not in_flight:
            self.problem(
                f"{where}: the graph applied a decision by {decision.get('reviewer')!r} that "
                "no decision audit row records"
            )
        for row in recorded:
            if row.payload.get("delivered") != state.agent_response:
                self.problem(
                    f"{where}: audit seq {row.seq} records delivering "
                    f"{row.payload.get('delivered')!r}, the graph delivered "
                    f"{state.agent_response!r}"
                )
        if not state.is_compliant:
            if decision.get("approved") or state.agent_response != self.spec.rejection_message:
                self.problem(f"{where}: a rejected draft delivered {state.agent_response!r}")
            return
        if not decision.get("approved"):
            self.problem(f"{where}: a reply was delivered on a rejection")
        if self.recheck_rules and state.agent_response is not None:
            sent = state.model_copy(update={"draft_response": state.agent_response})
            blocked = [r for r in await run_rules(self.spec.rules, sent) if r.verdict == "block"]
            if blocked:
                self.problem(
                    f"{where}: the delivered reply has block findings {[f.rule for f in blocked]}"
                )

    # -- a graph with gates --------------------------------------------------------

    async def check_gated_thread(self, thread_id: str) -> None:
        """The checks of `check_thread`, read through the gates: where each pause is, what ran."""
        pos = await self.driver.position(thread_id)
        review = await self.store.get_review(thread_id)
        opened = await self.store.open_reviews(thread_id)
        rows = [r for r in self.rows if r.thread_id == thread_id]
        self.check_reviews_in_audit(thread_id, rows, review, opened)
        if review is not None:
            self.check_gated_review(thread_id, review, pos)
        for other in opened:
            if review is None or other.review_id != review.review_id:
                self.check_gated_review(thread_id, other, pos)
        self.check_gated_position(thread_id, pos, review, opened)
        key = (
            pos.checkpoint_id,
            len(rows),
            None if review is None else (review.review_id, review.status, review.claim_id),
            tuple((r.review_id, r.status, r.claim_id) for r in opened),
            self.crashed,
        )
        verified = _VERIFIED.setdefault(self.graph, {})
        if verified.get(thread_id) == key:
            return
        found = len(self.problems)
        history = [s async for s in self.graph.aget_state_history(config_for(thread_id))]
        self.check_turn_ends(thread_id, history)
        self.check_gated_deliveries(thread_id, pos, rows, review)
        if len(self.problems) == found:
            verified[thread_id] = key

    def check_gated_review(self, thread_id: str, review: ReviewRecord, pos: Position) -> None:
        here = self.driver.at_review(pos, review)
        where = f"thread {thread_id!r}: review {review.review_id!r} ({review.status})"
        if review.status == "pending":
            if not here:
                self.problem(
                    f"{where} is pending at {review.checkpoint_id!r}, but no gate of the graph "
                    f"waits for it (paused: {pos.paused}, next: {pos.next or 'END'})"
                )
        elif review.status == "claimed":
            if review.claim_id is None or review.decision is None:
                self.problem(f"{where} is claimed without a claim id and a decision")
            if pos.paused and not here:
                self.problem(f"{where}: the graph waits at another review, not the claimed one")
        elif here:
            self.problem(f"{where} is decided but its gate still waits for a decision")

    def check_gated_position(
        self,
        thread_id: str,
        pos: Position,
        review: ReviewRecord | None,
        opened: Sequence[ReviewRecord] = (),
    ) -> None:
        open_turn = thread_id in self.open_turns
        if pos.paused:
            # Any open review the gates wait for: with several (one pause's items),
            # the latest may be decided already while the others wait.
            candidates = [*opened, *([] if review is None else [review])]
            reviewed = any(
                r.status in ("pending", "claimed") and self.driver.at_review(pos, r)
                for r in candidates
            )
            if not reviewed and not open_turn:
                self.problem(
                    f"thread {thread_id!r}: a gate waits for a decision at checkpoint "
                    f"{pos.checkpoint_id!r} but the thread has no open review of it: "
                    "pending() cannot see it"
                )
        elif pos.next and pos.values:
            claimed = any(r.status == "claimed" for r in opened) or (
                review is not None and review.status == "claimed"
            )
            errored = pos.snapshot is not None and any(t.error for t in pos.snapshot.tasks)
            if not (claimed or open_turn or errored):
                self.problem(
                    f"thread {thread_id!r} stopped at {pos.next} with neither a pause, a "
                    "claimed decision, an error nor an open turn"
                )

    def check_turn_ends(self, thread_id: str, history: list[StateSnapshot]) -> None:
        ends = 0
        for snapshot in reversed(history):  # oldest first
            if snapshot.metadata is not None and snapshot.metadata.get("source") == "input":
                ends = 0
            if snapshot.next or not snapshot.values:
                continue
            ends += 1
            if ends > 1:
                self.problem(
                    f"thread {thread_id!r}: one turn ended {ends} times (checkpoint "
                    f"{_checkpoint_id(snapshot)!r}): a decision was applied twice"
                )

    def check_gated_deliveries(
        self,
        thread_id: str,
        pos: Position,
        rows: list[AuditRecord],
        review: ReviewRecord | None,
    ) -> None:
        """Every gate pass in the thread's state: nothing flagged went out without a decision."""
        values = pos.values
        items: dict[str, GateItem] = {}  # tool call id -> its gate item
        for outcome in _gate_outcomes(values):
            for item in outcome.items or (_text_item(outcome),):
                self.check_gated_item(thread_id, outcome, item, rows, review)
                if item.tool_call is not None and item.tool_call.get("id") is not None:
                    items[str(item.tool_call["id"])] = item
        runs: Counter[str] = Counter()
        for message in _messages(values):
            if not isinstance(message, ToolMessage) or message.status == "error":
                continue
            runs[message.tool_call_id] += 1
            ran = items.get(message.tool_call_id)
            where = f"thread {thread_id!r}: tool call {message.tool_call_id!r}"
            if ran is None:
                self.problem(f"{where} ran without passing a gate")
            elif ran.status not in _RUN_STATUSES:
                self.problem(f"{where} ran although its gate item is {ran.status!r}")
        for call_id, count in runs.items():
            if count > 1:
                self.problem(f"thread {thread_id!r}: tool call {call_id!r} ran {count} times")

    def check_gated_item(
        self,
        thread_id: str,
        outcome: GateOutcome,
        item: GateItem,
        rows: list[AuditRecord],
        review: ReviewRecord | None,
    ) -> None:
        where = f"thread {thread_id!r}: gate item {item.review_id!r} ({item.target})"
        flagged = [f.rule for f in item.findings if f.verdict != "pass"]
        if item.status == "clear":
            if flagged or item.decision is not None:
                self.problem(f"{where} went out without review despite findings {flagged}")
            return
        if item.status == "blocked":
            if not any(f.verdict == "block" for f in item.findings) or item.decision is not None:
                self.problem(f"{where} was blocked without a block finding")
            if item.target == "tool_call" and item.args is not None:
                self.problem(f"{where}: a blocked tool call would run")
            return
        if item.status == "pending":
            return  # its pause is checked against the review store
        decision = item.decision
        if decision is None:
            self.problem(f"{where} is {item.status!r} without a decision")
            return
        decided_at = decision.to_state()["decided_at"]
        recorded = [
            r
            for r in rows
            if r.event in _DECISION_EVENTS
            and r.review_id == item.review_id
            and r.payload.get("decided_at") == decided_at
            and r.payload.get("reviewer") == decision.reviewer
        ]
        in_flight = (
            self.crashed
            and review is not None
            and review.status == "claimed"
            and review.review_id == item.review_id
        )
        if not recorded and not in_flight:
            self.problem(
                f"{where}: the gate applied a decision by {decision.reviewer!r} that no "
                "decision audit row records"
            )
        if (item.status == "rejected") == decision.approved:
            self.problem(f"{where} is {item.status!r} on a decision approved={decision.approved}")
        if item.target == "text" and item.status in ("approved", "edited"):
            for row in recorded:
                if row.payload.get("delivered") != outcome.delivered:
                    self.problem(
                        f"{where}: audit seq {row.seq} records delivering "
                        f"{row.payload.get('delivered')!r}, the gate let through "
                        f"{outcome.delivered!r}"
                    )


_RUN_STATUSES = frozenset({"clear", "approved", "edited"})
"""Gate item statuses under which a tool call may run."""


def _messages(values: Any) -> list[Any]:
    if isinstance(values, BaseModel):
        values = dict(values)
    if not isinstance(values, Mapping):
        return []
    return list(values.get("messages") or ())


def _gate_outcomes(values: Any) -> list[GateOutcome]:
    """Every gate pass a state shows: on its AI messages, and the gate's key (deduplicated)."""
    raw: list[Any] = [
        m.response_metadata.get("hitl_compliance")
        for m in _messages(values)
        if isinstance(m, AIMessage)
    ]
    if isinstance(values, BaseModel):
        values = dict(values)
    if isinstance(values, Mapping):
        raw.append(values.get(GATE_KEY))
    found: dict[str, GateOutcome] = {}
    for data in raw:
        if isinstance(data, dict) and data.get("review_id") is not None:
            outcome = GateOutcome.from_dict(data)
            found[outcome.pass_id or outcome.review_id] = outcome
    return list(found.values())


def _text_item(outcome: GateOutcome) -> GateItem:
    return GateItem(
        review_id=outcome.review_id,
        target=outcome.target,
        tool_call=outcome.tool_call,
        draft=outcome.draft,
        findings=outcome.findings,
        status=outcome.status,
        decision=outcome.decision,
    )


def _findings(values: Iterable[Mapping[str, Any]]) -> list[RuleResult]:
    return [RuleResult.from_dict(v) for v in values]


def _roles(payload: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(r) for r in payload.get("roles") or ())


def _checkpoint_id(snapshot: StateSnapshot) -> str | None:
    value = snapshot.config.get("configurable", {}).get("checkpoint_id")
    return None if value is None else str(value)
