"""Assignment and delegation on every backend: routed at pause, moved, delegated, all in the ledger.

A review is assigned when it pauses (first matching rule, else the default
queue), `pending(assigned_to=x)` lists exactly what waits for `x` (directly,
through a queue, through a delegation in force), every change is one audit
row through the hash chain (which still verifies), and `Routing(enforce=True)`
refuses a decider the review does not wait for, and a row edited in the
database.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    DELEGATION_THREAD,
    AssignmentRule,
    ConfigurationError,
    HitlCoordinator,
    InvalidInputError,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    RoleBasedPolicy,
    Routing,
    TamperedError,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._replies import REPLY_EVENT
from hitl_compliance.backends import Backend
from hitl_compliance.testing import FakeClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BOSS = Reviewer("lead@bank", roles=frozenset({"supervisor"}))
ROUTING = Routing(
    rules=[
        AssignmentRule("queue:l2", rule="guarantee"),
        AssignmentRule("alice@bank", severity="high"),
        AssignmentRule("smcr@bank", role="smcr_approver"),
    ],
    queues={"l2": {"bob@bank", "carol@bank"}},
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'assign.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    """An open backend with tables of its own."""
    async with open_backend(url, table_prefix=f"a{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def coordinator(backend: Backend, clock: FakeClock, **kwargs: Any) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[
            KeywordRule("guarantee", ["guaranteed"], reason="promise"),
            KeywordRule("leverage", ["leverage"], reason="risk", severity="high"),
            KeywordRule("advice", ["you should buy"], reason="advice"),
        ],
        checkpointer=backend.checkpointer,
    )
    kwargs.setdefault("routing", ROUTING)
    return HitlCoordinator(graph, reviews=backend.reviews, clock=clock, **kwargs)


def events(rows: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.event, r.actor, r.payload) for r in rows if r.event != REPLY_EVENT]


class TestRouting:
    async def test_first_matching_rule_assigns_and_the_ledger_says_so(
        self, backend: Backend
    ) -> None:
        """Each pause is assigned by the first rule one of its findings matches, in one row."""
        coord = coordinator(backend, FakeClock(T0))
        await coord.process("g", "Guaranteed gains with leverage")
        await coord.process("h", "Use leverage")
        await coord.process("n", "Nothing to see, you should buy")
        by_thread = {p.thread_id: p for p in await coord.pending()}
        assert by_thread["g"].assigned_to == "queue:l2"
        assert by_thread["g"].assignment_reason == "rule guarantee -> queue:l2"
        assert by_thread["h"].assigned_to == "alice@bank"
        assert by_thread["h"].assignment_reason == "severity high -> alice@bank"
        assert by_thread["n"].assigned_to == "queue:default"
        assert by_thread["n"].assignment_reason == "no routing rule matched -> queue:default"
        assert events(await coord.audit_log("g")) == [
            ("paused", "system", (await coord.audit_log("g"))[0].payload),
            (
                "assigned",
                "system:routing",
                {"to": "queue:l2", "reason": "rule guarantee -> queue:l2"},
            ),
        ]
        assert (await coord.verify_audit()).ok

    async def test_role_rule_uses_the_policy_roles(self, backend: Backend) -> None:
        """A `role=` rule matches a finding the policy requires that role for."""
        policy = RoleBasedPolicy(rule_roles={"advice": "smcr_approver"}, default_roles="officer")
        coord = coordinator(backend, FakeClock(T0), policy=policy)
        await coord.process("t", "you should buy")
        (item,) = await coord.pending()
        assert (item.assigned_to, item.assignment_reason) == (
            "smcr@bank",
            "role smcr_approver required -> smcr@bank",
        )

    async def test_without_routing_nothing_is_assigned(self, backend: Backend) -> None:
        """No routing: no assignment rows, the fields stay None, assignment calls refuse."""
        coord = coordinator(backend, FakeClock(T0), routing=None)
        await coord.process("t", "Guaranteed")
        (item,) = await coord.pending()
        assert item.assigned_to is None
        assert item.assignment_reason is None
        assert [e for e, _, _ in events(await coord.audit_log("t"))] == ["paused"]
        with pytest.raises(ConfigurationError):
            await coord.pending(assigned_to="bob@bank")
        with pytest.raises(ConfigurationError):
            await coord.reassign("t", to="x", by=BOSS, reason="r")


class TestPendingAssignedTo:
    async def test_exact_queue_and_delegation(self, backend: Backend) -> None:
        """`assigned_to=x` lists x's reviews, its queues', and its delegators' until expiry."""
        clock = FakeClock(T0)
        coord = coordinator(backend, clock)
        await coord.process("q", "Guaranteed")  # queue:l2
        clock.advance(seconds=1)
        await coord.process("a", "leverage")  # alice
        clock.advance(seconds=1)
        await coord.process("d", "hello")  # queue:default
        assert [p.thread_id for p in await coord.pending(assigned_to="bob@bank")] == ["q"]
        assert [p.thread_id for p in await coord.pending(assigned_to="alice@bank")] == ["a"]
        assert await coord.pending(assigned_to="dave@bank") == []
        await coord.delegate(
            "alice@bank", "dave@bank", until=T0 + timedelta(hours=1), by="alice@bank"
        )
        (item,) = await coord.pending(assigned_to="dave@bank")
        assert (item.thread_id, item.assigned_to, item.delegated_from) == (
            "a",
            "alice@bank",
            "alice@bank",
        )
        clock.advance(hours=2)
        assert await coord.pending(assigned_to="dave@bank") == []
        assert await coord.delegations() == []

    async def test_filters_and_pages_combine(self, backend: Backend) -> None:
        """`assigned_to` combines with `rule`, `limit` and `cursor`; no row lost or repeated."""
        clock = FakeClock(T0)
        coord = coordinator(backend, clock)
        for i in range(5):
            clock.advance(seconds=1)
            await coord.process(f"t{i}", "Guaranteed" if i % 2 else "Guaranteed leverage")
        first = await coord.pending(assigned_to="carol@bank", limit=2)
        rest = await coord.pending(assigned_to="carol@bank", cursor=first[-1].cursor)
        assert [p.thread_id for p in first + rest] == [f"t{i}" for i in range(5)]
        only = await coord.pending(assigned_to="carol@bank", rule="leverage", limit=1)
        assert [p.thread_id for p in only] == ["t0"]


class TestReassignAndDelegate:
    async def test_reassign_is_audited_and_authorised(self, backend: Backend) -> None:
        """A supervisor moves a review (a `reassigned` row naming both); others are refused."""
        coord = coordinator(backend, FakeClock(T0))
        await coord.process("t", "Guaranteed")
        with pytest.raises(NotAuthorizedError):
            await coord.reassign("t", to="zed@bank", by="bob@bank", reason="mine now")
        done = await coord.reassign("t", to="zed@bank", by=BOSS, reason="bob is away")
        assert (done.assigned_to, done.reason) == ("zed@bank", "bob is away")
        assert events(await coord.audit_log("t"))[-1] == (
            "reassigned",
            "lead@bank",
            {"to": "zed@bank", "reason": "bob is away", "from": "queue:l2"},
        )
        assert [p.thread_id for p in await coord.pending(assigned_to="zed@bank")] == ["t"]
        assert await coord.pending(assigned_to="bob@bank") == []
        with pytest.raises(InvalidInputError):
            await coord.reassign("t", to=" ", by=BOSS, reason="r")
        assert len(events(await coord.audit_log("t"))) == 3
        assert (await coord.verify_audit()).ok

    async def test_delegate_and_revoke_rows(self, backend: Backend) -> None:
        """Delegating and revoking each append one row on the delegation ledger thread."""
        clock = FakeClock(T0)
        coord = coordinator(backend, clock)
        until = T0 + timedelta(days=3)
        with pytest.raises(NotAuthorizedError):
            await coord.delegate("bob@bank", "carol@bank", until=until, by="carol@bank")
        with pytest.raises(InvalidInputError):
            await coord.delegate("bob@bank", "carol@bank", until=T0, by="bob@bank")
        with pytest.raises(InvalidInputError):
            await coord.delegate("bob@bank", "bob@bank", until=until, by="bob@bank")
        made = await coord.delegate("bob@bank", "carol@bank", until=until, by="bob@bank")
        assert await coord.delegations() == [made]
        gone = await coord.revoke_delegation("bob@bank", by=BOSS)
        assert gone == made
        assert await coord.revoke_delegation("bob@bank", by=BOSS) is None
        payload = {"from": "bob@bank", "to": "carol@bank", "until": until.isoformat()}
        assert events(await coord.audit_log(DELEGATION_THREAD)) == [
            ("delegated", "bob@bank", payload),
            ("delegation_revoked", "lead@bank", payload),
        ]
        assert (await coord.verify_audit()).ok


class TestEvidence:
    async def test_thread_verifies_and_the_pack_lists_assignments(self, backend: Backend) -> None:
        """A routed, reassigned, decided review's thread verifies; its pack shows the moves."""
        coord = coordinator(backend, FakeClock(T0))
        await coord.process("t", "Guaranteed")
        await coord.reassign("t", to="zed@bank", by=BOSS, reason="cover")
        await coord.approve("t", reviewer="zed@bank")
        assert (await coord.verify_audit("t")).ok
        assert [e for e, _, _ in events(await coord.audit_log("t"))] == [
            "paused",
            "assigned",
            "reassigned",
            "approved",
        ]
        pack = await coord.evidence_pack("t")
        assert "Reassigned" in pack.html
        assert "Assigned by the routing" in pack.html


class TestEnforce:
    async def test_enforce_refuses_others_and_allows_the_delegate(self, backend: Backend) -> None:
        """With enforce only the assignee, its queue and its delegates decide (refusals audited)."""
        routing = Routing(rules=ROUTING.rules, queues=ROUTING.queues, enforce=True)
        coord = coordinator(backend, FakeClock(T0), routing=routing)
        await coord.process("t", "leverage")  # alice
        with pytest.raises(NotAuthorizedError):
            await coord.approve("t", reviewer="bob@bank")
        assert events(await coord.audit_log("t"))[-1][0] == "denied"
        await coord.delegate(
            "alice@bank", "bob@bank", until=T0 + timedelta(days=1), by="alice@bank"
        )
        result = await coord.approve("t", reviewer="bob@bank")
        assert not result.awaiting_approval

    async def test_default_does_not_restrict_deciders(self, backend: Backend) -> None:
        """Without enforce, anyone the policy allows decides, assignment or not."""
        coord = coordinator(backend, FakeClock(T0))
        await coord.process("t", "leverage")
        assert not (await coord.approve("t", reviewer="bob@bank")).awaiting_approval


async def test_sql_row_edited_is_refused_under_enforce(tmp_path: Path) -> None:
    """An assignee edited in the database is not trusted: the decision raises TamperedError."""
    path = tmp_path / "edit.db"
    async with open_backend(f"sqlite:///{path}") as backend:
        routing = Routing(rules=ROUTING.rules, queues=ROUTING.queues, enforce=True)
        coord = coordinator(backend, FakeClock(T0), routing=routing)
        await coord.process("t", "leverage")
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE hitl_reviews SET assigned_to = 'mallory@bank'")
        with pytest.raises(TamperedError):
            await coord.approve("t", reviewer="mallory@bank")
        (item,) = await coord.pending()
        assert item.thread_id == "t"


async def test_sqlite_assigned_query_uses_the_partial_index(tmp_path: Path) -> None:
    """`pending(assigned_to=)` reads the partial `reviews_assigned` index (EXPLAIN QUERY PLAN)."""
    path = tmp_path / "plan.db"
    async with open_backend(f"sqlite:///{path}") as backend:
        store: Any = backend.reviews
        sql, params = store.assigned_query(
            ["bob@bank", "queue:l2"], limit=10, requested_before=None, after=None
        )
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "hitl_reviews_assigned" in plan


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_previous_version_database_gains_assignment(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Tables one step old are upgraded in place; their pending review can then be assigned."""
    if kind == "sqlite":
        import hitl_compliance.stores.sqlite as module

        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        pytest.importorskip("psycopg")
        import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

        url = str(request.getfixturevalue("postgres_dsn"))
    prefix = f"m{uuid.uuid4().hex[:8]}_"
    previous = len(module._MIGRATIONS) - 1
    with monkeypatch.context() as patch:
        patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:previous])
        patch.setattr(module, "SCHEMA_VERSION", previous)
        async with open_backend(url, table_prefix=prefix) as old:
            await coordinator(old, FakeClock(T0), routing=None).process("t", "Guaranteed")
    for _ in range(2):  # a second open changes nothing
        async with open_backend(url, table_prefix=prefix) as new:
            coord = coordinator(new, FakeClock(T0))
            (item,) = await coord.pending()
            assert item.assigned_to is None
    async with open_backend(url, table_prefix=prefix) as new:
        coord = coordinator(new, FakeClock(T0))
        await coord.reassign("t", to="bob@bank", by=BOSS, reason="adopted")
        (item,) = await coord.pending(assigned_to="bob@bank")
        assert (item.thread_id, item.assignment_reason) == ("t", "adopted")
        assert (await coord.verify_audit()).ok


async def test_postgres_assigned_query_uses_the_partial_index(postgres_dsn: str) -> None:
    """On PostgreSQL too, `pending(assigned_to=)` can read the partial index (EXPLAIN)."""
    prefix = f"x{uuid.uuid4().hex[:8]}_"
    async with open_backend(postgres_dsn, table_prefix=prefix) as backend:
        store: Any = backend.reviews
        sql, params = store.assigned_query(
            ["bob@bank"], limit=10, requested_before=None, after=None
        )
        async with store._pool.connection() as conn:
            await conn.execute("SET LOCAL enable_seqscan = off")
            cur = await conn.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(str(v) for row in await cur.fetchall() for v in dict(row).values())
    assert f"{prefix}reviews_assigned" in plan
