"""Authorisation reads only tamper-evident data: review rows edited in the database are refused.

Each test pauses a thread through a real coordinator on memory, a real SQLite
file or real PostgreSQL tables, edits the review row (or deletes an audit row)
as someone with database access would (plain SQL, or the memory store's dicts),
and checks that the decision paths raise `TamperedError` before writing
anything, and that `verify_audit(thread_id)` reports the break.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    RoleBasedPolicy,
    TamperedError,
    Vote,
    build_compliance_graph,
    gate_pauses,
    open_backend,
)
from hitl_compliance.models import ReviewRecord
from hitl_compliance.policy import ApprovalPolicy
from hitl_compliance.stores.postgres import PostgresReviewStore
from hitl_compliance.stores.sqlite import SqliteReviewStore
from tests.gate_graphs import Bank, build_react, call

RISKY = "Guaranteed returns, invest now."
POLICY = RoleBasedPolicy(rule_roles={"guarantee": "compliance"})
QUORUM = RoleBasedPolicy(rule_roles={"guarantee": "compliance"}, quorum={"guarantee": 2})


@dataclass
class Desk:
    """A coordinator on one backend, and a way to edit its tables as a DBA would."""

    backend: str
    url: str
    store: Any
    checkpointer: Any

    def coordinator(self, policy: ApprovalPolicy = POLICY, **kwargs: Any) -> HitlCoordinator:
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=self.checkpointer,
        )
        return HitlCoordinator(graph, reviews=self.store, policy=policy, **kwargs)

    async def review(self, thread_id: str) -> ReviewRecord:
        found = await self.store.get_review(thread_id)
        assert found is not None
        return found

    async def set_review(self, review_id: str, **fields: Any) -> None:
        """Overwrite review columns directly (JSON columns given as Python values)."""
        if isinstance(self.store, InMemoryReviewStore):
            row = self.store._reviews[review_id]
            self.store._reviews[review_id] = ReviewRecord.model_validate(
                {**row.model_dump(), **fields}
            )
            if fields.get("status") == "pending":
                self.store._pending[review_id] = None
            return
        names = list(fields)
        values = [json.dumps(v) if n in ("violations", "votes") else v for n, v in fields.items()]
        if isinstance(self.store, SqliteReviewStore):
            values = [v.isoformat() if isinstance(v, datetime) else v for v in values]
        sets = ", ".join(f"{n} = %s" for n in names)
        await self.sql(f"UPDATE {{p}}reviews SET {sets} WHERE review_id = %s", (*values, review_id))

    async def delete_audit(self, seq: int) -> None:
        if isinstance(self.store, InMemoryReviewStore):
            self.store._audit = [r for r in self.store._audit if r.seq != seq]
            for thread, rows in self.store._audit_by_thread.items():
                self.store._audit_by_thread[thread] = [r for r in rows if r.seq != seq]
            return
        await self.sql("DELETE FROM {p}audit WHERE seq = %s", (seq,))

    async def sql(self, statement: str, params: tuple[Any, ...]) -> None:
        statement = statement.replace("{p}", self.store.table_prefix)
        if isinstance(self.store, PostgresReviewStore):
            async with self.store._pool.connection() as conn, conn.transaction():
                await conn.execute(statement, params)
            return
        conn = sqlite3.connect(self.store.path)
        try:
            with conn:
                conn.execute(statement.replace("%s", "?"), params)
        finally:
            conn.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tamper.db'}"
    else:
        url = str(request.getfixturevalue("postgres_dsn"))
    async with open_backend(url, table_prefix=f"r{uuid.uuid4().hex[:8]}_") as backend:
        yield Desk(request.param, url, backend.reviews, backend.checkpointer)


def officer(reviewer_id: str) -> Reviewer:
    """A reviewer holding the role the policy requires."""
    return Reviewer(reviewer_id, roles=frozenset({"compliance"}))


def thread() -> str:
    return f"t-{uuid.uuid4().hex}"


async def events(coord: HitlCoordinator, thread_id: str) -> list[str]:
    return [r.event for r in await coord.audit_log(thread_id)]


class TestApprove:
    async def test_emptied_violations_do_not_lift_the_role_requirement(self, desk: Desk) -> None:
        """Emptying a review's findings is refused, not an approval by a reviewer without roles."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY)
        review = await desk.review(t)
        await desk.set_review(review.review_id, violations=[])
        with pytest.raises(TamperedError) as caught:
            await coord.approve(t, reviewer="intern@bank")
        assert caught.value.review_id == review.review_id
        assert "violations" in caught.value.mismatch
        with pytest.raises(TamperedError):
            await coord.may_decide(t, "intern@bank")
        assert (await desk.review(t)).status == "pending"
        assert await events(coord, t) == ["paused"]  # no denied, no decision row
        report = await coord.verify_audit(t)
        assert not report.ok
        assert report.first_broken is not None
        assert "violations" in report.first_broken.reason

    async def test_forged_vote_adds_no_approver(self, desk: Desk) -> None:
        """A vote written into the row without a `voted` audit row does not count to the quorum."""
        coord = desk.coordinator(QUORUM)
        t = thread()
        await coord.process(t, RISKY)
        await coord.approve(t, reviewer=officer("alice@bank"))
        review = await desk.review(t)
        (real,) = review.votes
        forged = real.model_copy(
            update={"reviewer": "mallory@bank", "reviewer_key": "mallory@bank"}
        )
        votes = [v.model_dump(mode="json") for v in (real, forged)]
        await desk.set_review(review.review_id, votes=votes)
        with pytest.raises(TamperedError, match="mallory"):
            await coord.approve(t, reviewer=officer("bob@bank"))
        assert (await desk.review(t)).status == "pending"
        assert await events(coord, t) == ["paused", "voted"]
        assert not (await coord.verify_audit(t)).ok

    async def test_real_votes_reach_the_quorum(self, desk: Desk) -> None:
        """Two real votes pass the check and complete the review (the happy path is unchanged)."""
        coord = desk.coordinator(QUORUM)
        t = thread()
        await coord.process(t, RISKY)
        await coord.approve(t, reviewer=officer("alice@bank"))
        done = await coord.approve(t, reviewer=officer("bob@bank"))
        assert done.status == "completed"
        assert (await coord.verify_audit(t)).ok

    async def test_rewritten_draft_is_refused(self, desk: Desk) -> None:
        """A draft rewritten in the row (what reviewers see) is refused by review and approve."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY)
        review = await desk.review(t)
        await desk.set_review(review.review_id, draft_response="A balanced, safe reply.")
        with pytest.raises(TamperedError, match="draft_sha256"):
            await coord.review(t)
        with pytest.raises(TamperedError):
            await coord.approve(t, reviewer=officer("lead@bank"))
        assert await events(coord, t) == ["paused"]

    async def test_cleared_requester_is_refused(self, desk: Desk) -> None:
        """A requester cleared from the row cannot then approve their own review."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY, requested_by="agent@bank")
        review = await desk.review(t)
        await desk.set_review(review.review_id, requested_by=None)
        with pytest.raises(TamperedError, match="requested_by"):
            await coord.approve(t, reviewer=officer("agent@bank"))
        assert await events(coord, t) == ["paused"]

    async def test_changed_quorum_is_refused(self, desk: Desk) -> None:
        """A quorum changed in the row is refused."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY)
        review = await desk.review(t)
        await desk.set_review(review.review_id, approvals_required=5)
        with pytest.raises(TamperedError, match="approvals_required"):
            await coord.reject(t, reviewer=officer("lead@bank"), reason="x")
        assert (await desk.review(t)).status == "pending"


class TestStatus:
    async def test_decided_review_reset_to_pending_is_not_approved_twice(self, desk: Desk) -> None:
        """A decided review set back to `pending` is refused: its decision row is in the chain."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY)
        lead = officer("lead@bank")
        await coord.approve(t, reviewer=lead)
        review = await desk.review(t)
        await desk.set_review(
            review.review_id, status="pending", claim_id=None, claimed_at=None, decision=None
        )
        with pytest.raises(TamperedError, match="records it approved"):
            await coord.approve(t, reviewer=officer("other@bank"))
        assert await events(coord, t) == ["paused", "replied", "approved"]
        assert not (await coord.verify_audit(t)).ok

    async def test_deleted_decision_row_breaks_the_thread(self, desk: Desk) -> None:
        """Deleting a thread's final decision row is a break of `verify_audit(thread_id)`."""
        coord = desk.coordinator()
        t = thread()
        await coord.process(t, RISKY)
        await coord.reject(t, reviewer=officer("lead@bank"), reason="no")
        assert (await coord.verify_audit(t)).ok
        rows = await coord.audit_log(t)
        paused = rows[0]
        [rejected] = [r for r in rows if r.event == "rejected"]
        await desk.delete_audit(rejected.seq)
        report = await coord.verify_audit(t)
        assert not report.ok
        assert report.first_broken is not None
        assert report.first_broken.seq == paused.seq
        assert "without its rejected audit row" in report.first_broken.reason

    async def test_deleted_middle_row_is_refused(self, desk: Desk) -> None:
        """A row deleted from the thread's chain (a denial hidden) is refused at the next vote."""
        coord = desk.coordinator(QUORUM)
        t = thread()
        await coord.process(t, RISKY)
        with pytest.raises(NotAuthorizedError):
            await coord.approve(t, reviewer="intern@bank")
        await coord.approve(t, reviewer=officer("alice@bank"))
        _, denied, _ = await coord.audit_log(t)
        await desk.delete_audit(denied.seq)
        with pytest.raises(TamperedError, match="chain breaks"):
            await coord.approve(t, reviewer=officer("bob@bank"))
        assert (await desk.review(t)).status == "pending"


class TestSla:
    async def test_deadline_moved_earlier_is_not_expired(
        self, desk: Desk, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A deadline pulled into the past is refused by the sweeper: logged, nothing written."""
        coord = desk.coordinator(sla=timedelta(hours=1), on_timeout="approve_draft")
        t = thread()
        await coord.process(t, RISKY)
        review = await desk.review(t)
        past = datetime.now(timezone.utc) - timedelta(minutes=5)
        await desk.set_review(review.review_id, deadline=past)
        with caplog.at_level(logging.WARNING, logger="hitl_compliance"):
            assert await coord.expire_overdue() == []
        assert "does not match its audit ledger" in caplog.text
        assert (await desk.review(t)).status == "pending"
        assert await events(coord, t) == ["paused"]

    async def test_adopted_and_escalated_deadlines_are_committed(self, desk: Desk) -> None:
        """An undated review dated by the SLA, then escalated, still passes the check."""
        opener = desk.coordinator()  # no SLA: the review opens undated
        t = thread()
        await opener.process(t, RISKY)
        review = await desk.review(t)
        coord = desk.coordinator(sla=timedelta(hours=1), on_timeout="escalate")
        later = review.requested_at + timedelta(hours=2)
        (escalated,) = await coord.expire_overdue(now=later)
        assert escalated.status == "paused"
        assert await events(coord, t) == ["paused", "dated", "escalated"]
        row = await desk.review(t)
        assert row.deadline == later + timedelta(hours=1)
        assert (await coord.may_decide(t, officer("lead@bank"))).allowed
        assert (await coord.verify_audit(t)).ok
        await desk.set_review(review.review_id, deadline=review.requested_at + timedelta(hours=1))
        with pytest.raises(TamperedError, match="deadline"):
            await coord.approve(t, reviewer=officer("lead@bank"))


PAYMENTS = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})


class TestInGraph:
    async def test_raw_resume_checks_the_row(self, desk: Desk) -> None:
        """A raw `Command` resume meets the same check inside the graph: refused, nothing run."""
        bank = Bank()
        turn = AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=5_000, to_account="1")])
        graph, _ = build_react("command_resume", desk.checkpointer, bank, turn, AIMessage("Done."))
        HitlCoordinator(graph, reviews=desk.store, policy=PAYMENTS)
        config: Any = {"configurable": {"thread_id": thread()}}
        await graph.ainvoke({"messages": [("user", "Pay")]}, config)
        (pause,) = await gate_pauses(graph, config)
        assert pause.review_id is not None
        await desk.set_review(pause.review_id, violations=[])
        intern = Decision(
            approved=True, reviewer="intern@bank", decided_at=datetime.now(timezone.utc)
        ).to_state()
        await graph.ainvoke(Command(resume={pause.interrupt_id: intern}), config)
        (still,) = await gate_pauses(graph, config)
        assert "does not match its audit ledger" in (still.outcome.refused or "")
        assert bank.transfers == []
        rows = await desk.store.audit_log(config["configurable"]["thread_id"])
        assert [r.event for r in rows] == ["paused"]


class TestRecover:
    async def test_abandoned_claim_with_a_forged_vote_is_left(self, desk: Desk) -> None:
        """recover() does not finish an abandoned claim whose row gained a forged vote."""
        coord = desk.coordinator(QUORUM)
        t = thread()
        await coord.process(t, RISKY)
        review = await desk.review(t)
        an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
        made = Decision(approved=False, reviewer="lead@bank", decided_at=an_hour_ago)
        await desk.store.claim(
            t,
            claim_id="k1",
            reviewer="lead@bank",
            decision=made.to_state(),
            now=an_hour_ago,
            review_id=review.review_id,
        )
        forged = Vote(reviewer="eve@bank", at=an_hour_ago, text_sha256="0" * 64)
        await desk.set_review(review.review_id, votes=[forged.model_dump(mode="json")])
        assert await coord.recover() == []
        assert (await desk.review(t)).status == "claimed"
        assert await events(coord, t) == ["paused"]
        await desk.set_review(review.review_id, votes=[])  # restored: recover() finishes it
        (done,) = await coord.recover()
        assert done.status == "rejected"
        assert await events(coord, t) == ["paused", "recovered", "replied", "rejected"]
