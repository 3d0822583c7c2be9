"""`pending(reviewer=)` through the finding-kinds index on every backend.

The same pages as the per-row reference on memory, SQLite and PostgreSQL; the
SQL reads are ranges of the partial `reviews_kinds` index (EXPLAIN); and a
database one migration step old gains the index with its open reviews in it.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._coordination.reviews import authorization
from hitl_compliance.backends import Backend
from tests.property.test_pending_reviewer import Ask, Row, _check

POLICY = RoleBasedPolicy(
    rule_roles={"r1": "a", "r2": {"a", "b"}}, severity_roles={"critical": "boss"}
)


def _rows() -> list[Row]:
    """120 reviews: mostly r2 (roles a or b), every 9th r1 (role a), some critical."""
    out = []
    for i in range(120):
        findings = [("r1" if i % 9 == 0 else "r2", "critical" if i % 25 == 0 else "low", "x")]
        if i % 7 == 0:
            findings.append(("r3", "medium", "x"))
        out.append(Row(tuple(findings), i % 6, "ann" if i % 11 == 0 else None, None))
    return out


QUESTIONS = [
    Ask("ann", frozenset({"a"}), None, None, 5),
    Ask("bob", frozenset({"a"}), "r1", None, 3),
    Ask("bob", frozenset({"b"}), None, 3, 50),
    Ask("bob", frozenset({"b"}), "r1", None, 5),
    Ask("cy", frozenset({"a", "boss"}), None, None, None),
]


async def test_reviewer_pages_match_the_reference(backend_url: str) -> None:
    """On each backend, `pending(reviewer=)` pages equal the per-row reference filter."""
    async with open_backend(backend_url, table_prefix=f"k{uuid.uuid4().hex[:8]}_") as backend:
        await _check(backend.reviews, _rows(), POLICY, QUESTIONS)  # type: ignore[arg-type]


async def test_sqlite_reads_the_kinds_index(tmp_path: Path) -> None:
    """Both SQLite reads behind `pending(reviewer=)` use `reviews_kinds` (EXPLAIN QUERY PLAN)."""
    path = tmp_path / "plan.db"
    async with open_backend(f"sqlite:///{path}") as backend:
        store: Any = backend.reviews
        distinct = store.distinct_kinds_query()
        page, params = store.by_kinds_query(
            ['[["r1","low"]]', '[["r2","low"]]'], limit=50, requested_before=None, after=None
        )
    with sqlite3.connect(path) as conn:
        for sql, args in ((distinct, ()), (page, params)):
            plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert "hitl_reviews_kinds" in plan, plan
            assert "SCAN r" not in plan, plan
            assert "SCAN hitl_reviews" not in plan, plan


async def test_postgres_reads_the_kinds_index(postgres_dsn: str) -> None:
    """On PostgreSQL the reads can use the expression index `reviews_kinds` (EXPLAIN)."""
    prefix = f"x{uuid.uuid4().hex[:8]}_"
    async with open_backend(postgres_dsn, table_prefix=prefix) as backend:
        store: Any = backend.reviews
        page, params = store.by_kinds_query(
            ['[["r1", "low"]]'], limit=50, requested_before=None, after=None
        )
        async with store._pool.connection() as conn:
            await conn.execute("SET LOCAL enable_seqscan = off")
            for sql, args in ((store.distinct_kinds_query(), ()), (page, params)):
                cur = await conn.execute(f"EXPLAIN {sql}", args)
                plan = " ".join(str(v) for row in await cur.fetchall() for v in dict(row).values())
                assert f"{prefix}reviews_kinds" in plan, plan


def _coordinator(backend: Backend) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[KeywordRule("r1", ["guaranteed"], severity="high")],
        checkpointer=backend.checkpointer,
    )
    return HitlCoordinator(graph, reviews=backend.reviews, policy=POLICY)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_previous_version_database_gains_the_kinds_index(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A review left pending by the previous schema is listed for its reviewers after the
    upgrade, and not for others."""
    if kind == "sqlite":
        import hitl_compliance.stores.sqlite as module

        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        pytest.importorskip("psycopg")
        import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

        url = str(request.getfixturevalue("postgres_dsn"))
    prefix = f"m{uuid.uuid4().hex[:8]}_"
    previous = len(module._MIGRATIONS) - 1
    if kind == "sqlite":
        # SQLite's new write path fills the column: write today, then undo step 15.
        async with open_backend(url, table_prefix=prefix) as old:
            await _coordinator(old).process("t", "Guaranteed")
        with sqlite3.connect(tmp_path / "old.db") as conn:
            conn.execute(f"DROP INDEX {prefix}reviews_kinds")
            conn.execute(f"ALTER TABLE {prefix}reviews DROP COLUMN finding_kinds")
            conn.execute(f"UPDATE {prefix}schema_version SET version = ?", (previous,))
    else:
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:previous])
            patch.setattr(module, "SCHEMA_VERSION", previous)
            async with open_backend(url, table_prefix=prefix) as old:
                await _coordinator(old).process("t", "Guaranteed")
    for _ in range(2):  # a second open changes nothing
        async with open_backend(url, table_prefix=prefix) as new:
            coord = _coordinator(new)
            store: Any = new.reviews
            assert await store.pending_finding_kinds() is not None
            (item,) = await coord.pending(reviewer=Reviewer("ann", roles=frozenset({"a"})))
            assert item.thread_id == "t"
            assert await coord.pending(reviewer=Reviewer("bob", roles=frozenset({"b"}))) == []
            assert (await coord.verify_audit()).ok


async def test_sqlite_row_without_kinds_is_still_listed(tmp_path: Path) -> None:
    """A pending SQLite row with no kinds value (older code) sends `pending(reviewer=)`
    back to reading every pending review, and the pages still equal the reference."""
    path = tmp_path / "unset.db"
    async with open_backend(f"sqlite:///{path}") as backend:
        await _check(backend.reviews, _rows(), POLICY, [])  # type: ignore[arg-type]
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE hitl_reviews SET finding_kinds = NULL WHERE review_id = "
            "(SELECT min(review_id) FROM hitl_reviews)"
        )
    async with open_backend(f"sqlite:///{path}") as backend:
        store: Any = backend.reviews
        assert await store.pending_finding_kinds() is None
        coord = _coordinator(backend)
        everything = await store.list_pending()
        for ask in QUESTIONS:
            who = Reviewer(ask.reviewer, roles=ask.roles)
            expected = [
                r.review_id
                for r in everything
                if authorization(coord._ctx, who, r).allowed
                and (ask.rule is None or any(v.rule == ask.rule for v in r.violations))
            ][: ask.limit]
            got = await coord.pending(reviewer=who, rule=ask.rule, limit=ask.limit)
            assert [p.review_id for p in got] == expected, ask
