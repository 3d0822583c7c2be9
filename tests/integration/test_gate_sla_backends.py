"""A pause a raw run's gate recorded gets an SLA deadline, on every backend.

The gate records a pause it makes outside any coordinator (a raw `ainvoke`)
without a deadline: it knows no SLA. A coordinator with one adopts such a
review at its next sweep (or `recover()`): the deadline is `requested_at`
plus the SLA that applies, and the review then expires, is approved or is
escalated by `on_timeout` like the coordinator's own reviews, with its audit
rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from examples.command_resume_tool_approval import SENT
from examples.gated_agent import build

from hitl_compliance import HitlCoordinator, OnTimeout, RoleBasedPolicy, open_backend
from hitl_compliance._commitments import deadline_text
from hitl_compliance.backends import Backend
from hitl_compliance.testing import FakeClock

SLA = timedelta(minutes=5)
PAY = "Pay £5,000 to my landlord"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@dataclass
class RawPause:
    """A gated agent paused by a raw `ainvoke`, and its backend."""

    backend: Backend
    graph: Any
    thread: str

    def coordinator(self, clock: FakeClock, **options: Any) -> HitlCoordinator:
        """A coordinator on the same graph and store, with `options` (sla=, on_timeout=...)."""
        policy = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
        return HitlCoordinator(
            self.graph, reviews=self.backend.reviews, policy=policy, clock=clock, **options
        )


@pytest_asyncio.fixture
async def raw(url: str) -> AsyncIterator[RawPause]:
    """The example's gated agent paused on its transfer by `graph.ainvoke`, no coordinator."""
    SENT.clear()
    # Own tables per test: a sweep dates and expires every undated review of its store.
    prefix = f"sla{uuid.uuid4().hex[:8]}_"
    async with open_backend(url, table_prefix=prefix) as backend:
        graph = build(backend)
        thread = f"raw-{uuid.uuid4().hex[:8]}"
        await graph.ainvoke({"messages": [("user", PAY)]}, {"configurable": {"thread_id": thread}})
        yield RawPause(backend, graph, thread)


def later() -> FakeClock:
    """A clock an hour ahead of the wall clock the gate stamps `requested_at` with."""
    return FakeClock(datetime.now(timezone.utc) + timedelta(hours=1))


class TestRawPauseSla:
    async def test_recorded_without_a_deadline_then_dated(self, raw: RawPause) -> None:
        """The gate's review has no deadline; recover() of an SLA coordinator dates it once."""
        clock = later()
        coord = raw.coordinator(clock, sla=SLA)
        [review] = await coord.pending()
        assert (review.thread_id, review.deadline) == (raw.thread, None)
        assert await coord.recover() == []
        [dated] = await coord.pending()
        assert dated.deadline == review.requested_at + SLA
        # Another coordinator with a shorter SLA does not move a deadline once set.
        await raw.coordinator(clock, sla=timedelta(minutes=1)).recover()
        assert [r.deadline for r in await coord.pending()] == [dated.deadline]
        # The dating is audited (the deadline is committed); the second recover() wrote none.
        rows = await coord.audit_log(raw.thread)
        assert [(row.event, row.actor) for row in rows] == [
            ("paused", "system"),
            ("dated", "system:sla"),
        ]
        assert rows[1].payload["deadline"] == deadline_text(dated.deadline)

    @pytest.mark.parametrize(
        ("on_timeout", "delivered", "event"),
        [("reject", [], "expired"), ("approve_draft", ["£5,000 to 12345678"], "expired")],
        ids=["reject", "approve_draft"],
    )
    async def test_sweep_expires_it_by_on_timeout(
        self, raw: RawPause, on_timeout: OnTimeout, delivered: list[str], event: str
    ) -> None:
        """expire_overdue dates the raw pause and resolves it: the call runs only if approved."""
        coord = raw.coordinator(later(), sla=SLA, on_timeout=on_timeout)
        [result] = await coord.expire_overdue()
        assert (result.thread_id, result.status) == (raw.thread, "completed")
        assert await coord.pending() == []
        assert delivered == SENT
        rows = await coord.audit_log(raw.thread)
        # The resumed run replies twice (the pass with the decided call, then the agent's
        # answer) before the coordinator records the outcome.
        assert [(row.event, row.actor) for row in rows] == [
            ("paused", "system"),
            ("dated", "system:sla"),
            ("replied", "auto"),
            ("replied", "auto"),
            (event, "system:sla"),
        ]
        [call] = rows[2].payload["tool_calls"]
        assert (call["name"], call["decided_by"]) == ("transfer", "system:sla")
        assert call["status"] == ("approved" if delivered else "rejected")
        assert "tool_calls" not in rows[3].payload
        assert rows[4].payload["forced"] is True
        assert (await coord.verify_audit(raw.thread)).ok
        assert await coord.expire_overdue() == []  # exactly once

    async def test_sla_by_rule_applies(self, raw: RawPause) -> None:
        """Only sla_by: the review's rule picks its SLA; an SLA for another rule dates nothing."""
        clock = later()
        other = raw.coordinator(clock, sla_by={"another_rule": timedelta(minutes=1)})
        assert await other.expire_overdue() == []
        assert [r.deadline for r in await other.pending()] == [None]
        coord = raw.coordinator(clock, sla_by={"transfer_limits": SLA})
        [result] = await coord.expire_overdue()
        assert result.status == "completed"
        assert SENT == []

    async def test_escalate(self, raw: RawPause) -> None:
        """on_timeout='escalate': the dated raw pause is escalated, stays pending, new deadline."""
        clock = later()
        coord = raw.coordinator(clock, sla=SLA, on_timeout="escalate")
        [result] = await coord.expire_overdue()
        assert result.status == "paused"
        [review] = await coord.pending()
        assert review.priority == 1
        assert review.deadline == clock.now + SLA
        assert [row.event for row in await coord.audit_log(raw.thread)] == [
            "paused",
            "dated",
            "escalated",
        ]

    async def test_not_yet_due_is_dated_but_left(self, raw: RawPause) -> None:
        """A sweep before the adopted deadline dates the review and leaves it pending."""
        clock = FakeClock(datetime.now(timezone.utc))
        coord = raw.coordinator(clock, sla=timedelta(hours=4))
        assert await coord.expire_overdue() == []
        [review] = await coord.pending()
        assert review.deadline == review.requested_at + timedelta(hours=4)
        clock.advance(hours=5)
        [result] = await coord.expire_overdue()
        assert result.status == "completed"
