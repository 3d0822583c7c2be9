"""Our three review stores run the conformance suite; then SQLite- and Postgres-only tests.

The shared tests live in `hitl_compliance.testing.conformance`, so a third-party
adapter runs exactly what ours do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    DuplicateVoteError,
    StoreError,
    ThreadBusyError,
)
from hitl_compliance.ledger import GENESIS
from hitl_compliance.models import ReviewRecord, sha256_text
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore
from hitl_compliance.stores._sqlwrites import SqlStore
from hitl_compliance.testing.conformance import (
    DRAFT,
    T0,
    ReviewStoreConformance,
    assert_chain,
    at,
    cast_vote,
    claim,
    make_review,
    make_vote,
    rules,
)


async def raw_sql(store: ReviewStore, *statements: str) -> None:
    """Run SQL directly against an SQL store's database, outside the store."""
    from hitl_compliance.stores.postgres import PostgresReviewStore
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    if isinstance(store, SqliteReviewStore):
        import sqlite3

        conn = sqlite3.connect(store.path)
        try:
            with conn:
                for statement in statements:
                    conn.execute(statement.replace("{p}", store.table_prefix))
        finally:
            conn.close()
    elif isinstance(store, PostgresReviewStore):
        async with store._pool.connection() as conn, conn.transaction():
            for statement in statements:
                await conn.execute(statement.replace("{p}", store.table_prefix))
    else:
        raise TypeError(f"not an SQL store: {store!r}")


class TestInMemoryStoreConformance(ReviewStoreConformance):
    @pytest_asyncio.fixture
    async def review_store(self) -> AsyncIterator[ReviewStore]:
        store = InMemoryReviewStore()
        await store.setup()
        yield store
        await store.aclose()


class SqlStoreTests(ReviewStoreConformance):
    """The conformance suite plus what only a store with real transactions can show."""

    async def test_driver_errors_become_store_errors(self, review_store: ReviewStore) -> None:
        """A database failure on reads and writes is a StoreError, never the driver's exception."""
        await review_store.open_review(make_review(), owner=None)
        await raw_sql(review_store, "ALTER TABLE {p}reviews RENAME TO {p}reviews_gone")
        try:
            with pytest.raises(StoreError, match=r"review store failed: .*reviews") as read:
                await review_store.get_review("t1")
            with pytest.raises(StoreError) as write:
                await review_store.begin_turn("t2", owner="o", now=at(1))
        finally:
            await raw_sql(review_store, "ALTER TABLE {p}reviews_gone RENAME TO {p}reviews")
        for caught in (read, write):
            assert isinstance(caught.value.__cause__, Exception)
            assert type(caught.value.__cause__).__module__.split(".")[0] in ("sqlite3", "psycopg")
        assert await review_store.stale_turns(started_before=at(9)) == []
        assert (await review_store.get_review("t1")) is not None

    async def test_outbox_row_is_written_in_the_audit_rows_transaction(
        self, review_store: ReviewStore
    ) -> None:
        """When the outbox insert fails, the decision and its audit row roll back too."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        review_store.configure_hooks(frozenset({"on_decided"}))
        review = await review_store.open_review(make_review(), owner=None)
        await claim(review_store)
        head = await review_store.audit_head()
        driver_error: type[Exception]
        if isinstance(review_store, PostgresReviewStore):
            import psycopg

            driver_error = psycopg.errors.CheckViolation
            backend = "postgres"
            block = ["ALTER TABLE {p}hook_outbox ADD CONSTRAINT block CHECK (false) NOT VALID"]
            unblock = ["ALTER TABLE {p}hook_outbox DROP CONSTRAINT block"]
        else:
            import sqlite3

            driver_error = sqlite3.IntegrityError
            backend = "sqlite"
            block = [
                "CREATE TRIGGER {p}block BEFORE INSERT ON {p}hook_outbox "
                "BEGIN SELECT RAISE(ABORT, 'outbox down'); END"
            ]
            unblock = ["DROP TRIGGER {p}block"]
        await raw_sql(review_store, *block)
        # Translated at the store boundary: the library's error, the driver's as its cause.
        with pytest.raises(StoreError, match=r"outbox down|block") as caught:
            await review_store.complete(
                review.review_id,
                claim_id="k1",
                status="approved",
                now=at(2),
                actor="a",
                payload={},
            )
        assert isinstance(caught.value.__cause__, driver_error)
        assert caught.value.backend == backend
        await raw_sql(review_store, *unblock)
        stored = await review_store.get_review("t1")
        assert stored is not None
        assert stored.status == "claimed"
        assert [a.event for a in await review_store.audit_rows()] == ["paused"]
        assert await review_store.audit_head() == head
        assert await review_store.pending_hooks() == []
        await review_store.complete(
            review.review_id, claim_id="k1", status="approved", now=at(2), actor="a", payload={}
        )
        [delivery] = await review_store.pending_hooks()
        assert delivery.record.event == "approved"
        assert_chain(await review_store.audit_rows(), await review_store.audit_head())


class TestSqliteStoreConformance(SqlStoreTests):
    @pytest_asyncio.fixture
    async def review_store(self, sqlite_path: Path) -> AsyncIterator[ReviewStore]:
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            yield store

    @pytest_asyncio.fixture
    async def review_store_pair(
        self, sqlite_path: Path
    ) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
        """Two stores (two connections) on one file."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as a, SqliteReviewStore(sqlite_path) as b:
            yield a, b


@pytest.mark.postgres
class TestPostgresStoreConformance(SqlStoreTests):
    @pytest_asyncio.fixture
    async def review_store(self, postgres_dsn: str) -> AsyncIterator[ReviewStore]:
        from hitl_compliance.stores.postgres import PostgresReviewStore

        # A table prefix per test keeps tests apart inside the session's schema.
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix) as s:
            yield s

    @pytest_asyncio.fixture
    async def review_store_pair(
        self, postgres_dsn: str
    ) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
        """Two stores (two pools) on the same tables."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        prefix = f"t{uuid.uuid4().hex[:8]}_"
        a = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        b = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        await asyncio.gather(a.setup(), b.setup())
        try:
            yield a, b
        finally:
            await a.aclose()
            await b.aclose()


def shared_writes_postgres_store(dsn: str, prefix: str) -> ReviewStore:
    """A PostgreSQL store running the shared writes (`SqlStore`) instead of its functions.

    The shared transactions over Postgres's `_transaction` (pool connection,
    advisory lock, `FOR UPDATE`): what a row-locking backend such as MySQL
    runs. The store itself keeps its one-round-trip server-side functions.
    """
    from hitl_compliance.stores._sqlwrites import SqlStore
    from hitl_compliance.stores.postgres import PostgresReviewStore

    class SharedWrites(PostgresReviewStore):
        begin_turn = SqlStore.begin_turn
        open_review = SqlStore.open_review
        claim = SqlStore.claim
        vote = SqlStore.vote
        release = SqlStore.release
        complete = SqlStore.complete
        append_audit = SqlStore.append_audit
        escalate = SqlStore.escalate
        _lease = SqlStore._lease

    store: ReviewStore = SharedWrites.from_conn_string(dsn, table_prefix=prefix)
    return store


@pytest.fixture
def own_schema_dsn(postgres_base_dsn: str) -> Iterator[str]:
    """A DSN on a schema of the test's own, dropped after it.

    Keeps the session schema from growing past what one `DROP SCHEMA ...
    CASCADE` can lock (`max_locks_per_transaction`).
    """
    from hitl_compliance.testing.databases import postgres_schema

    with postgres_schema(postgres_base_dsn) as dsn:
        yield dsn


@pytest.mark.postgres
class TestPostgresSharedWritesConformance(SqlStoreTests):
    """The conformance suite on the shared multi-statement writes, on a row-locking server."""

    @pytest_asyncio.fixture
    async def review_store(self, own_schema_dsn: str) -> AsyncIterator[ReviewStore]:
        store = shared_writes_postgres_store(own_schema_dsn, "hitl_")
        await store.setup()
        yield store
        await store.aclose()

    @pytest_asyncio.fixture
    async def review_store_pair(
        self, own_schema_dsn: str
    ) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
        """Two stores (two pools) on the same tables."""
        a = shared_writes_postgres_store(own_schema_dsn, "hitl_")
        b = shared_writes_postgres_store(own_schema_dsn, "hitl_")
        await asyncio.gather(a.setup(), b.setup())
        try:
            yield a, b
        finally:
            await a.aclose()
            await b.aclose()


# -- SQLite only -------------------------------------------------------------------------


@pytest.fixture
async def two_sqlite_stores(sqlite_path: Path) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
    """Two independent SQLite stores (two connections) on the same file."""
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    async with SqliteReviewStore(sqlite_path) as a, SqliteReviewStore(sqlite_path) as b:
        yield a, b


class TestSqliteReviewStore:
    async def test_two_stores_on_one_file_claim_exactly_once(
        self, two_sqlite_stores: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Claims racing through two connections to one file: exactly one wins."""
        a, b = two_sqlite_stores
        await a.open_review(make_review(), owner=None)
        results = await asyncio.gather(
            *(claim(a if i % 2 else b, claim_id=f"k{i}") for i in range(20)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, ReviewRecord)]
        assert len(winners) == 1
        assert all(isinstance(r, AlreadyDecidedError) for r in results if r not in winners)
        assert (await b.get_review("t1")) == winners[0]

    async def test_two_stores_on_one_file_begin_turn_exactly_once(
        self, two_sqlite_stores: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """begin_turn racing through two connections: exactly one turn starts."""
        a, b = two_sqlite_stores
        results = await asyncio.gather(
            *(s.begin_turn("t1", owner=f"o{i}", now=T0) for i, s in enumerate([a, b] * 5)),
            return_exceptions=True,
        )
        assert results.count(None) == 1
        assert all(isinstance(r, ThreadBusyError) for r in results if r is not None)

    async def test_vote_stored_without_a_key_still_counts_its_person(
        self, sqlite_path: Path
    ) -> None:
        """A vote written before canonical keys loads with the default key and blocks variants."""
        import json

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            await store.open_review(make_review(review_id="r1"), owner=None)
            legacy = make_vote("Alice@Bank").model_dump(mode="json")
            del legacy["reviewer_key"]
            await raw_sql(
                store,
                "UPDATE {p}reviews SET votes = '" + json.dumps([legacy]).replace("'", "''") + "'",
            )
            before = await store.get_review("t1")
            assert before is not None
            assert [v.reviewer_key for v in before.votes] == ["allce@bank"]
            with pytest.raises(DuplicateVoteError):
                await cast_vote(store, " alice@bank", review_id="r1", quorum=1)
            assert await store.get_review("t1") == before
            claimed = await cast_vote(store, "bob", review_id="r1", quorum=2)
            assert claimed.status == "claimed"

    async def test_data_survives_reopening_the_file(self, sqlite_path: Path) -> None:
        """A review written, closed and reopened from the file is unchanged."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            review = await store.open_review(make_review(), owner=None)
        async with SqliteReviewStore(sqlite_path) as store:
            assert await store.get_review("t1") == review
            assert len(await store.audit_log("t1")) == 1

    async def test_table_prefix_separates_stores(self, sqlite_path: Path) -> None:
        """Two prefixes on one file are two independent stores."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with (
            SqliteReviewStore(sqlite_path) as a,
            SqliteReviewStore(sqlite_path, table_prefix="other_") as b,
        ):
            await a.open_review(make_review(), owner=None)
            assert await b.get_review("t1") is None

    async def test_bad_prefix_and_use_before_setup(self, sqlite_path: Path) -> None:
        """A non-identifier prefix and a call before setup raise ConfigurationError."""
        from hitl_compliance.errors import ConfigurationError
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        with pytest.raises(ConfigurationError, match="table_prefix"):
            SqliteReviewStore(sqlite_path, table_prefix="x; DROP TABLE y")
        with pytest.raises(ConfigurationError, match="setup"):
            await SqliteReviewStore(sqlite_path).get_review("t1")

    async def test_missing_directory_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A database in a directory that does not exist fails setup with ConfigurationError."""
        from hitl_compliance.errors import ConfigurationError
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        store = SqliteReviewStore(tmp_path / "missing" / "x.db")
        with pytest.raises(ConfigurationError, match="directory"):
            await store.setup()
        await store.aclose()

    async def test_pending_query_uses_the_partial_index(self, sqlite_path: Path) -> None:
        """list_pending reads the partial pending index, not the whole table."""
        import aiosqlite

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path):
            pass
        async with (
            aiosqlite.connect(sqlite_path) as conn,
            conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM hitl_reviews WHERE status = 'pending' "
                "ORDER BY requested_at, review_id LIMIT 10"
            ) as cur,
        ):
            plan = " ".join(str(row[-1]) for row in await cur.fetchall())
        assert "hitl_reviews_pending" in plan
        assert "TEMP B-TREE" not in plan

    async def test_filtered_pending_queries_use_indexes(self, sqlite_path: Path) -> None:
        """The queries list_pending runs read an index range and never sort.

        rule= scans the side table's (rule, requested_at, review_id) index and
        joins reviews by primary key; requested_before/after without a rule
        are a range of the partial pending index.
        """
        import aiosqlite

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async def plan(**filters: Any) -> str:
            async with SqliteReviewStore(sqlite_path) as store:
                sql, params = store._pending_query(
                    limit=10,
                    rule=filters.get("rule"),
                    requested_before=filters.get("requested_before"),
                    after=filters.get("after"),
                )
            async with (
                aiosqlite.connect(sqlite_path) as conn,
                conn.execute("EXPLAIN QUERY PLAN " + sql, params) as cur,
            ):
                return " | ".join(str(row[-1]) for row in await cur.fetchall())

        cursor = (T0, "r-1")
        filters: dict[str, Any]
        for filters in (
            {"rule": "guarantee"},
            {"rule": "guarantee", "after": cursor},
            {"rule": "guarantee", "after": cursor, "requested_before": at(9)},
        ):
            text = await plan(**filters)
            assert "SEARCH rr USING COVERING INDEX hitl_review_rules_pending (rule=?" in text
            assert "SEARCH r USING INDEX sqlite_autoindex_hitl_reviews_1 (review_id=?)" in text
            assert "SCAN" not in text
            assert "TEMP B-TREE" not in text
        text = await plan(rule="guarantee", after=cursor)
        assert "(requested_at,review_id)>(?,?)" in text
        for filters in (
            {"after": cursor},
            {"after": cursor, "requested_before": at(9)},
            {"requested_before": at(9)},
        ):
            text = await plan(**filters)
            assert text.startswith("SEARCH r USING INDEX hitl_reviews_pending (")
            assert "TEMP B-TREE" not in text
        assert "(requested_at,review_id)>(?,?)" in await plan(after=cursor)
        assert await plan() == "SCAN r USING INDEX hitl_reviews_pending"

    async def test_overdue_and_outbox_queries_use_partial_indexes(self, sqlite_path: Path) -> None:
        """list_overdue and pending_hooks read partial indexes in order, never sorting."""
        import aiosqlite

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            queries = [
                store._overdue_query(now=at(5), limit=10),
                *(
                    store._hooks_query(thread_id=thread, created_before=before)
                    for thread in (None, "t1")
                    for before in (None, at(5))
                ),
            ]
        plans = []
        async with aiosqlite.connect(sqlite_path) as conn:
            for sql, params in queries:
                async with conn.execute("EXPLAIN QUERY PLAN " + sql, params) as cur:
                    plans.append(" | ".join(str(row[-1]) for row in await cur.fetchall()))
        overdue, *hooks = plans
        assert overdue.startswith("SEARCH hitl_reviews USING INDEX hitl_reviews_overdue (")
        assert "hitl_hook_outbox_undelivered" in hooks[0]
        assert "hitl_hook_outbox_undelivered" in hooks[1]
        assert "hitl_hook_outbox_thread (thread_id=?)" in hooks[2]
        assert "hitl_hook_outbox_thread (thread_id=?)" in hooks[3]
        for text in plans:
            assert "TEMP B-TREE" not in text
        for text in hooks:
            assert "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)" in text

    async def test_undated_query_reads_its_partial_index(self, sqlite_path: Path) -> None:
        """list_undated reads the partial index of undated pending reviews in order."""
        import aiosqlite

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as store:
            sql, params = store._sql.undated, (10,)
        async with (
            aiosqlite.connect(sqlite_path) as conn,
            conn.execute("EXPLAIN QUERY PLAN " + sql, params) as cur,
        ):
            text = " | ".join(str(row[-1]) for row in await cur.fetchall())
        assert text == "SCAN hitl_reviews USING INDEX hitl_reviews_undated"


# The tables as the first release of the SQLite store created them (no
# schema_version table, no votes, no rule side table).
OLD_SQLITE_DDL = [
    """CREATE TABLE IF NOT EXISTS hitl_reviews (
        review_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        status TEXT NOT NULL,
        customer_message TEXT NOT NULL,
        draft_response TEXT NOT NULL,
        violations TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        requested_by TEXT,
        claim_id TEXT,
        claimed_at TEXT,
        decided_at TEXT,
        reviewer TEXT,
        decision TEXT,
        UNIQUE (thread_id, checkpoint_id)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS hitl_reviews_one_open "
    "ON hitl_reviews (thread_id) WHERE status IN ('pending', 'claimed')",
    "CREATE INDEX IF NOT EXISTS hitl_reviews_pending "
    "ON hitl_reviews (requested_at, review_id) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS hitl_reviews_thread ON hitl_reviews (thread_id)",
    "CREATE INDEX IF NOT EXISTS hitl_reviews_claimed "
    "ON hitl_reviews (claimed_at) WHERE status = 'claimed'",
    """CREATE TABLE IF NOT EXISTS hitl_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id TEXT NOT NULL,
        review_id TEXT,
        checkpoint_id TEXT,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        payload TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_audit_thread ON hitl_audit (thread_id, seq)",
    """CREATE TABLE IF NOT EXISTS hitl_intents (
        thread_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        started_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_intents_started ON hitl_intents (started_at)",
]

OLD_REVIEWS = [
    # (review_id, thread_id, status, requested_at, violations, claim, decided)
    ("o-pending", "tp", "pending", at(1), ["guarantee", "pii", "guarantee"], None, None),
    ("o-claimed", "tc", "claimed", at(2), ["guarantee"], ("k-old", at(3)), None),
    ("o-done", "td", "approved", at(0), ["guarantee"], ("k-done", at(1)), at(2)),
]


def old_review_record(review_id: str) -> ReviewRecord:
    """The ReviewRecord the new code reads back for one of OLD_REVIEWS."""
    (row,) = [r for r in OLD_REVIEWS if r[0] == review_id]
    _, thread, status, requested, names, claim_data, decided = row
    return ReviewRecord(
        review_id=review_id,
        thread_id=thread,
        checkpoint_id="c1",
        status=status,
        customer_message="Can I get my money back?",
        draft_response=DRAFT,
        violations=rules(*names),
        requested_at=requested,
        requested_by="bot",
        claim_id=None if claim_data is None else claim_data[0],
        claimed_at=None if claim_data is None else claim_data[1],
        decided_at=decided,
        reviewer=None if claim_data is None else "alice",
        decision=None if claim_data is None else {"approved": True},
    )


# Audit rows as schema version 2 (votes, before the ledger) wrote them:
# (thread_id, review_id, event, actor, payload, at), in seq order.
V2_AUDIT: list[tuple[str, str | None, str, str, dict[str, Any], datetime]] = [
    ("tv", "rv", "paused", "bot", {"draft_sha256": sha256_text(DRAFT), "violations": []}, at(0)),
    ("tw", None, "recovered", "ops ✓", {"n": 1.5, "big": 1e16, "text": 'ünï "q"'}, at(1)),
    ("tv", "rv", "voted", "alice", {"reviewer": "alice", "nested": {"b": [1, None]}}, at(2)),
    ("tw", None, "denied", "mallory", {}, at(3)),
]


def v2_review() -> ReviewRecord:
    """The pending review `rv` of V2_AUDIT, with alice's vote on it (quorum 2)."""
    return make_review("tv", review_id="rv", approvals_required=2, votes=[make_vote("alice")])


class TestSqliteSchemaMigration:
    @staticmethod
    def _create_old_database(path: Path) -> None:
        import json
        import sqlite3

        def ts(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(timespec="microseconds")

        with sqlite3.connect(path) as conn:
            for statement in OLD_SQLITE_DDL:
                conn.execute(statement)
            for review_id in ("o-pending", "o-claimed", "o-done"):
                r = old_review_record(review_id)
                conn.execute(
                    "INSERT INTO hitl_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.review_id,
                        r.thread_id,
                        r.checkpoint_id,
                        r.status,
                        r.customer_message,
                        r.draft_response,
                        json.dumps([v.to_dict() for v in r.violations]),
                        ts(r.requested_at),
                        r.requested_by,
                        r.claim_id,
                        ts(r.claimed_at),
                        ts(r.decided_at),
                        r.reviewer,
                        None if r.decision is None else json.dumps(r.decision),
                    ),
                )
                conn.execute(
                    "INSERT INTO hitl_audit (thread_id, review_id, checkpoint_id, event, actor, "
                    "payload, at) VALUES (?, ?, 'c1', 'paused', 'bot', '{}', ?)",
                    (r.thread_id, r.review_id, ts(r.requested_at)),
                )
            conn.execute("INSERT INTO hitl_intents VALUES ('ti', 'worker', ?)", (ts(T0),))
        conn.close()

    @staticmethod
    def _schema(path: Path) -> dict[str, Any]:
        import sqlite3

        with sqlite3.connect(path) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            out: dict[str, Any] = {
                t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables
            }
            out["indexes"] = conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' ORDER BY name"
            ).fetchall()
            out["version"] = conn.execute("SELECT * FROM hitl_schema_version").fetchall()
        conn.close()
        return out

    async def test_old_database_is_upgraded_in_place(
        self, sqlite_path: Path, tmp_path: Path
    ) -> None:
        """setup() on a file written by the first release keeps its rows and adds the rest."""
        from hitl_compliance.stores.sqlite import SCHEMA_VERSION, SqliteReviewStore

        self._create_old_database(sqlite_path)
        async with SqliteReviewStore(sqlite_path) as store:
            for review_id in ("o-pending", "o-claimed", "o-done"):
                expected = old_review_record(review_id)
                assert await store.get_review(expected.thread_id) == expected
            assert [r.review_id for r in await store.list_pending()] == ["o-pending"]
            # Open reviews got their rule rows: claimed ones show up once released.
            assert [r.review_id for r in await store.list_pending(rule="pii")] == ["o-pending"]
            assert [r.review_id for r in await store.list_pending(rule="guarantee")] == [
                "o-pending"
            ]
            await store.release("o-claimed", claim_id="k-old")
            assert [r.review_id for r in await store.list_pending(rule="guarantee")] == [
                "o-pending",
                "o-claimed",
            ]
            assert [t.thread_id for t in await store.stale_turns(started_before=at(1))] == ["ti"]
            assert [a.event for a in await store.audit_log("tp")] == ["paused"]
            # The old audit rows were sealed and chained, in seq order.
            old_rows = await store.audit_rows()
            assert [r.thread_id for r in old_rows] == ["tp", "tc", "td"]
            assert_chain(old_rows, await store.audit_head())
            # The new methods work on the migrated rows.
            await cast_vote(store, "alice", review_id="o-pending", thread_id="tp")
            done = await cast_vote(store, "bob", review_id="o-pending", thread_id="tp")
            assert (done.status, done.reviewer) == ("claimed", "bob")
            assert [a.event for a in await store.audit_log("tp")] == ["paused", "voted"]
            await store.complete(
                "o-pending", claim_id="k-bob", status="approved", now=at(5), actor="b", payload={}
            )
            assert await store.list_pending(rule="pii") == []
            await store.setup()  # idempotent once migrated
            assert [r.review_id for r in await store.list_pending()] == ["o-claimed"]
            rows = await store.audit_rows()
            assert rows[:3] == old_rows
            assert_chain(rows, await store.audit_head())

        migrated = self._schema(sqlite_path)
        assert migrated["version"] == [(1, SCHEMA_VERSION)]
        fresh_path = tmp_path / "fresh.db"
        async with SqliteReviewStore(fresh_path):
            pass
        assert migrated == self._schema(fresh_path)

    async def test_two_stores_migrate_an_old_file_at_once(self, sqlite_path: Path) -> None:
        """Concurrent setups on an old file migrate it once; both stores then work."""
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        self._create_old_database(sqlite_path)
        a, b = SqliteReviewStore(sqlite_path), SqliteReviewStore(sqlite_path)
        try:
            await asyncio.gather(a.setup(), b.setup())
            assert await a.list_pending(rule="pii") == await b.list_pending(rule="pii")
            assert len(await b.list_pending(rule="pii")) == 1
        finally:
            await a.aclose()
            await b.aclose()

    async def test_version_two_database_is_upgraded_and_its_ledger_verifies(
        self, sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file at schema version 2 gets deadlines, the ledger and the outbox.

        Its audit rows are sealed and chained in seq order by the migration, and
        new appends continue that chain.
        """
        import json
        import sqlite3

        import hitl_compliance.stores.sqlite as module

        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:2])
            patch.setattr(module, "SCHEMA_VERSION", 2)
            async with module.SqliteReviewStore(sqlite_path):
                pass
        review = v2_review()
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute(
                "INSERT INTO hitl_reviews (review_id, thread_id, checkpoint_id, status, "
                "customer_message, draft_response, violations, requested_at, requested_by, "
                "votes, approvals_required) VALUES (?, ?, ?, 'pending', ?, ?, '[]', ?, ?, ?, 2)",
                (
                    review.review_id,
                    review.thread_id,
                    review.checkpoint_id,
                    review.customer_message,
                    review.draft_response,
                    review.requested_at.isoformat(timespec="microseconds"),
                    review.requested_by,
                    json.dumps([v.model_dump(mode="json") for v in review.votes]),
                ),
            )
            conn.executemany(
                "INSERT INTO hitl_audit (thread_id, review_id, checkpoint_id, event, actor, "
                "payload, at) VALUES (?, ?, 'c1', ?, ?, ?, ?)",
                [
                    (t, r, e, a, json.dumps(p), w.isoformat(timespec="microseconds"))
                    for t, r, e, a, p, w in V2_AUDIT
                ],
            )
            assert conn.execute("SELECT version FROM hitl_schema_version").fetchall() == [(2,)]
        conn.close()

        async with module.SqliteReviewStore(sqlite_path) as store:
            rows = await store.audit_rows()
            assert [(r.thread_id, r.event, r.actor, r.payload, r.at) for r in rows] == [
                (t, e, a, p, w) for t, _, e, a, p, w in V2_AUDIT
            ]
            assert_chain(rows, await store.audit_head())
            stored = await store.get_review("tv")
            assert stored == review.model_copy(update={"violations": []})
            assert (stored.deadline, stored.priority) == (None, 0)
            store.configure_hooks(frozenset({"on_decided"}))
            done = await cast_vote(store, "bob", review_id="rv", thread_id="tv", minutes=4)
            assert done.status == "claimed"
            await store.complete(
                "rv", claim_id="k-bob", status="approved", now=at(5), actor="bob", payload={}
            )
            rows = await store.audit_rows()
            assert rows[-1].seq == len(V2_AUDIT) + 1
            assert rows[-1].prev_hash == rows[2].hash  # tv's last row before the upgrade
            assert_chain(rows, await store.audit_head())
            [delivery] = await store.pending_hooks()
            assert delivery.record == rows[-1]
        with sqlite3.connect(sqlite_path) as conn:
            assert conn.execute("SELECT version FROM hitl_schema_version").fetchall() == [
                (module.SCHEMA_VERSION,)
            ]
        conn.close()

    async def test_outbox_rows_from_before_hook_leases_are_claimable(
        self, sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Step 4 adds the lease columns; an owed call written at version 3 keeps its id."""
        import sqlite3

        import hitl_compliance.stores.sqlite as module
        from hitl_compliance.models import seal

        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:3])
            patch.setattr(module, "SCHEMA_VERSION", 3)
            async with module.SqliteReviewStore(sqlite_path):
                pass
        # The rows version 3 wrote (today's store writes columns it did not have).
        row = seal(
            seq=1,
            thread_id="t1",
            review_id="r1",
            checkpoint_id="c1",
            event="paused",
            actor="system",
            payload={},
            at=at(0),
            prev_hash=GENESIS,
            global_prev_hash=GENESIS,
            ledger_format=1,
        )
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute(
                "INSERT INTO hitl_audit (seq, thread_id, review_id, checkpoint_id, event, actor, "
                "payload, at, prev_hash, global_prev_hash, hash) "
                "VALUES (1, 't1', 'r1', 'c1', 'paused', 'system', '{}', ?, ?, ?, ?)",
                (at(0).isoformat(timespec="microseconds"), GENESIS, GENESIS, row.hash),
            )
            conn.execute(
                "INSERT INTO hitl_hook_outbox (delivery_id, seq, thread_id, hook, status, "
                "attempts, created_at) VALUES ('d1', 1, 't1', 'on_paused', 'pending', 0, ?)",
                (at(0).isoformat(timespec="microseconds"),),
            )
        conn.close()
        async with module.SqliteReviewStore(sqlite_path) as store:
            [owed] = await store.pending_hooks()
            assert (owed.status, owed.lease_owner, owed.lease_until) == ("pending", None, None)
            [claimed] = await store.claim_hooks(owner="a", now=at(1), lease_until=at(2))
            assert (claimed.delivery_id, claimed.lease_owner) == (owed.delivery_id, "a")
            assert await store.finish_hook(
                owed.delivery_id, ok=True, error=None, now=at(1), owner="a"
            )
            assert await store.pending_hooks() == []

    async def test_newer_schema_is_refused(self, sqlite_path: Path) -> None:
        """A file migrated by a newer version fails setup with ConfigurationError."""
        import sqlite3

        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path):
            pass
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute("UPDATE hitl_schema_version SET version = 99")
        conn.close()
        store = SqliteReviewStore(sqlite_path)
        with pytest.raises(ConfigurationError, match="schema version 99"):
            await store.setup()
        await store.aclose()


# -- PostgreSQL only ---------------------------------------------------------------------


@pytest.mark.postgres
class TestPostgresReviewStore:
    async def test_works_on_a_plain_pool(self, postgres_dsn: str) -> None:
        """The store works on a pool without autocommit and with tuple rows."""
        from psycopg_pool import AsyncConnectionPool

        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=2, open=False) as pool:
            store = PostgresReviewStore(pool, table_prefix=f"p{uuid.uuid4().hex[:8]}_")
            await store.setup()
            await store.begin_turn("t1", owner="a", now=T0)
            await store.open_review(make_review(), owner="a")
            claimed = await claim(store)
            await store.complete(
                claimed.review_id,
                claim_id="k1",
                status="approved",
                now=at(2),
                actor="a",
                payload={},
            )
            assert [a.event for a in await store.audit_log("t1")] == ["paused", "approved"]
            assert await store.list_pending() == []
            await store.aclose()
            assert not pool.closed  # a pool passed in is the caller's to close

    async def test_two_pools_claim_and_begin_turn_exactly_once(self, postgres_dsn: str) -> None:
        """Claims and begin_turns racing through two pools: exactly one of each wins."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        prefix = f"p{uuid.uuid4().hex[:8]}_"
        a = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        b = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        # Concurrent setup on fresh tables must not fail either.
        await asyncio.gather(a.setup(), b.setup())
        try:
            await a.open_review(make_review(), owner=None)
            claims = await asyncio.gather(
                *(claim(a if i % 2 else b, claim_id=f"k{i}") for i in range(20)),
                return_exceptions=True,
            )
            assert sum(isinstance(r, ReviewRecord) for r in claims) == 1
            assert sum(isinstance(r, AlreadyDecidedError) for r in claims) == 19

            turns = await asyncio.gather(
                *(s.begin_turn("t2", owner=f"o{i}", now=T0) for i, s in enumerate([a, b] * 5)),
                return_exceptions=True,
            )
            assert turns.count(None) == 1
            assert all(isinstance(r, ThreadBusyError) for r in turns if r is not None)
        finally:
            await a.aclose()
            await b.aclose()

    async def test_begin_turn_races_open_review(self, postgres_dsn: str) -> None:
        """A begin_turn racing the open_review that ends a turn never leaves both open."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=f"p{uuid.uuid4().hex[:8]}_"
        ) as store:
            for i in range(20):
                thread = f"t{i}"
                await store.begin_turn(thread, owner="a", now=T0)
                results = await asyncio.gather(
                    store.open_review(make_review(thread), owner="a"),
                    store.begin_turn(thread, owner="b", now=T0),
                    return_exceptions=True,
                )
                assert isinstance(results[0], ReviewRecord)
                assert isinstance(results[1], ThreadBusyError)
            assert await store.stale_turns(started_before=at(60)) == []


# The tables as the first release of the Postgres store created them; `{p}` is the prefix.
OLD_POSTGRES_DDL = [
    """CREATE TABLE IF NOT EXISTS {p}reviews (
        review_id TEXT COLLATE "C" PRIMARY KEY,
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        thread_id TEXT COLLATE "C" NOT NULL,
        checkpoint_id TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL,
        customer_message TEXT NOT NULL,
        draft_response TEXT NOT NULL,
        violations JSONB NOT NULL,
        requested_at TIMESTAMPTZ NOT NULL,
        requested_by TEXT,
        claim_id TEXT,
        claimed_at TIMESTAMPTZ,
        decided_at TIMESTAMPTZ,
        reviewer TEXT,
        decision JSONB,
        UNIQUE (thread_id, checkpoint_id)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS {p}reviews_one_open "
    "ON {p}reviews (thread_id) WHERE status IN ('pending', 'claimed')",
    "CREATE INDEX IF NOT EXISTS {p}reviews_pending "
    "ON {p}reviews (requested_at, review_id) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS {p}reviews_thread ON {p}reviews (thread_id, seq)",
    "CREATE INDEX IF NOT EXISTS {p}reviews_claimed "
    "ON {p}reviews (claimed_at) WHERE status = 'claimed'",
    """CREATE TABLE IF NOT EXISTS {p}audit (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        thread_id TEXT COLLATE "C" NOT NULL,
        review_id TEXT COLLATE "C",
        checkpoint_id TEXT COLLATE "C",
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        payload JSONB NOT NULL,
        at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS {p}audit_thread ON {p}audit (thread_id, seq)",
    """CREATE TABLE IF NOT EXISTS {p}intents (
        thread_id TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS {p}intents_started ON {p}intents (started_at)",
]


@pytest.mark.postgres
class TestPostgresSchemaMigration:
    @staticmethod
    async def _create_old_tables(dsn: str, prefix: str) -> None:
        import json

        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for statement in OLD_POSTGRES_DDL:
                await conn.execute(statement.replace("{p}", prefix))
            for review_id in ("o-pending", "o-claimed", "o-done"):
                r = old_review_record(review_id)
                await conn.execute(
                    f"INSERT INTO {prefix}reviews (review_id, thread_id, checkpoint_id, "
                    "status, customer_message, draft_response, violations, requested_at, "
                    "requested_by, claim_id, claimed_at, decided_at, reviewer, decision) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                    (
                        r.review_id,
                        r.thread_id,
                        r.checkpoint_id,
                        r.status,
                        r.customer_message,
                        r.draft_response,
                        json.dumps([v.to_dict() for v in r.violations]),
                        r.requested_at,
                        r.requested_by,
                        r.claim_id,
                        r.claimed_at,
                        r.decided_at,
                        r.reviewer,
                        None if r.decision is None else json.dumps(r.decision),
                    ),
                )
                await conn.execute(
                    f"INSERT INTO {prefix}audit (thread_id, review_id, checkpoint_id, event, "
                    "actor, payload, at) VALUES (%s, %s, 'c1', 'paused', 'bot', '{}', %s)",
                    (r.thread_id, r.review_id, r.requested_at),
                )
            await conn.execute(
                f"INSERT INTO {prefix}intents VALUES ('ti', 'worker', %s)",
                (T0,),
            )

    @staticmethod
    async def _schema(dsn: str, prefix: str) -> dict[str, Any]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT substr(table_name, %s), column_name, data_type, is_nullable, "
                "column_default, collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name LIKE %s "
                "ORDER BY table_name, ordinal_position",
                (len(prefix) + 1, prefix.replace("_", r"\_") + "%"),
            )
            columns = await cur.fetchall()
            cur = await conn.execute(
                "SELECT substr(indexname, %s), replace(indexdef, %s, '') FROM pg_indexes "
                "WHERE schemaname = current_schema() AND indexname LIKE %s ORDER BY indexname",
                (len(prefix) + 1, prefix, prefix.replace("_", r"\_") + "%"),
            )
            indexes = await cur.fetchall()
            cur = await conn.execute(f"SELECT * FROM {prefix}schema_version")
            version = await cur.fetchall()
        return {"columns": columns, "indexes": indexes, "version": version}

    async def test_old_tables_are_upgraded_in_place(self, postgres_dsn: str) -> None:
        """Concurrent setups on the first release's tables keep the rows and add the rest."""
        from hitl_compliance.stores.postgres import SCHEMA_VERSION, PostgresReviewStore

        prefix = f"m{uuid.uuid4().hex[:8]}_"
        await self._create_old_tables(postgres_dsn, prefix)
        a = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        b = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        try:
            await asyncio.gather(a.setup(), b.setup())
            for review_id in ("o-pending", "o-claimed", "o-done"):
                expected = old_review_record(review_id)
                assert await a.get_review(expected.thread_id) == expected
            assert [r.review_id for r in await b.list_pending()] == ["o-pending"]
            assert [r.review_id for r in await b.list_pending(rule="pii")] == ["o-pending"]
            await a.release("o-claimed", claim_id="k-old")
            assert [r.review_id for r in await b.list_pending(rule="guarantee")] == [
                "o-pending",
                "o-claimed",
            ]
            assert [t.thread_id for t in await a.stale_turns(started_before=at(1))] == ["ti"]
            # The old audit rows were sealed and chained, in seq order.
            old_rows = await b.audit_rows()
            assert [r.thread_id for r in old_rows] == ["tp", "tc", "td"]
            assert_chain(old_rows, await a.audit_head())
            await cast_vote(a, "alice", review_id="o-pending", thread_id="tp")
            done = await cast_vote(b, "bob", review_id="o-pending", thread_id="tp")
            assert (done.status, done.reviewer) == ("claimed", "bob")
            assert [e.event for e in await a.audit_log("tp")] == ["paused", "voted"]
            await a.complete(
                "o-pending", claim_id="k-bob", status="approved", now=at(5), actor="b", payload={}
            )
            assert await b.list_pending(rule="pii") == []
            await a.setup()  # idempotent once migrated
            assert [r.review_id for r in await a.list_pending()] == ["o-claimed"]
            rows = await a.audit_rows()
            assert rows[:3] == old_rows
            assert_chain(rows, await b.audit_head())
        finally:
            await a.aclose()
            await b.aclose()

        migrated = await self._schema(postgres_dsn, prefix)
        assert migrated["version"] == [(1, SCHEMA_VERSION)]
        fresh = f"f{uuid.uuid4().hex[:8]}_"
        async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=fresh):
            pass
        assert migrated == await self._schema(postgres_dsn, fresh)

    async def test_votes_of_open_reviews_get_canonical_keys(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Votes written at schema version 4 get their canonical key, so variants stay refused."""
        import json

        import psycopg

        import hitl_compliance.stores.postgres as module

        prefix = f"k{uuid.uuid4().hex[:8]}_"
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:4])
            patch.setattr(module, "SCHEMA_VERSION", 4)
            # Version 4 kept no personal values beside the chain (it had no such table).
            patch.setattr(module.PostgresReviewStore, "_paused_payload", SqlStore._paused_payload)
            async with module.PostgresReviewStore.from_conn_string(
                postgres_dsn, table_prefix=prefix
            ) as old:
                await old.open_review(make_review(review_id="r1"), owner=None)
                await old.open_review(make_review("t2", review_id="r2"), owner=None)
        legacy = make_vote("Alice@Bank").model_dump(mode="json")
        del legacy["reviewer_key"]
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(
                f"UPDATE {prefix}reviews SET votes = %s::jsonb", (json.dumps([legacy]),)
            )
            await conn.execute(
                f"UPDATE {prefix}reviews SET status = 'approved' WHERE review_id = 'r2'"
            )

        async with module.PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=prefix
        ) as store:
            async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
                cur = await conn.execute(
                    f"SELECT review_id, votes FROM {prefix}reviews ORDER BY review_id"
                )
                rows = await cur.fetchall()
            # The open review's vote got its key; the final one was left as it was.
            assert [(r, [v.get("reviewer_key") for v in votes]) for r, votes in rows] == [
                ("r1", ["allce@bank"]),
                ("r2", [None]),
            ]
            before = await store.get_review("t1")
            with pytest.raises(DuplicateVoteError):
                await cast_vote(store, "alice@bank", review_id="r1", quorum=1)
            assert await store.get_review("t1") == before
            claimed = await cast_vote(store, "bob", review_id="r1", quorum=2)
            assert claimed.status == "claimed"

    async def test_version_two_tables_are_upgraded_and_their_ledger_verifies(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tables at schema version 2 get deadlines, the ledger and the outbox.

        The jsonb payloads become text; the audit rows are sealed and chained in
        seq order by the migration, and new appends (numbered after them, now
        that seq is no identity) continue that chain.
        """
        import json

        import psycopg

        import hitl_compliance.stores.postgres as module

        prefix = f"v{uuid.uuid4().hex[:8]}_"
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:2])
            patch.setattr(module, "SCHEMA_VERSION", 2)
            async with module.PostgresReviewStore.from_conn_string(
                postgres_dsn, table_prefix=prefix
            ):
                pass
        review = v2_review()
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(
                f"INSERT INTO {prefix}reviews (review_id, thread_id, checkpoint_id, status, "
                "customer_message, draft_response, violations, requested_at, requested_by, "
                "votes, approvals_required) "
                "VALUES (%s, %s, %s, 'pending', %s, %s, '[]', %s, %s, %s::jsonb, 2)",
                (
                    review.review_id,
                    review.thread_id,
                    review.checkpoint_id,
                    review.customer_message,
                    review.draft_response,
                    review.requested_at,
                    review.requested_by,
                    json.dumps([v.model_dump(mode="json") for v in review.votes]),
                ),
            )
            for t, r, e, a, p, w in V2_AUDIT:
                await conn.execute(
                    f"INSERT INTO {prefix}audit (thread_id, review_id, checkpoint_id, event, "
                    "actor, payload, at) VALUES (%s, %s, 'c1', %s, %s, %s::jsonb, %s)",
                    (t, r, e, a, json.dumps(p), w),
                )
            cur = await conn.execute(f"SELECT version FROM {prefix}schema_version")
            assert await cur.fetchall() == [(2,)]

        async with module.PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=prefix
        ) as store:
            rows = await store.audit_rows()
            # jsonb wrote 1e16 as an integer: equal, and hashed as read.
            assert [(r.thread_id, r.event, r.actor, r.payload, r.at) for r in rows] == [
                (t, e, a, p, w) for t, _, e, a, p, w in V2_AUDIT
            ]
            assert_chain(rows, await store.audit_head())
            stored = await store.get_review("tv")
            assert stored == review.model_copy(update={"violations": []})
            assert stored is not None
            assert (stored.deadline, stored.priority) == (None, 0)
            store.configure_hooks(frozenset({"on_decided"}))
            done = await cast_vote(store, "bob", review_id="rv", thread_id="tv", minutes=4)
            assert done.status == "claimed"
            await store.complete(
                "rv", claim_id="k-bob", status="approved", now=at(5), actor="bob", payload={}
            )
            rows = await store.audit_rows()
            assert rows[-1].seq == len(V2_AUDIT) + 1
            assert rows[-1].prev_hash == rows[2].hash  # tv's last row before the upgrade
            assert_chain(rows, await store.audit_head())
            [delivery] = await store.pending_hooks()
            assert delivery.record == rows[-1]
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            cur = await conn.execute(f"SELECT version FROM {prefix}schema_version")
            assert await cur.fetchall() == [(module.SCHEMA_VERSION,)]

    async def test_outbox_rows_from_before_hook_leases_are_claimable(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Step 5 adds the lease columns; an owed call written at version 4 keeps its id."""
        import hitl_compliance.stores.postgres as module

        prefix = f"v{uuid.uuid4().hex[:8]}_"
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:4])
            patch.setattr(module, "SCHEMA_VERSION", 4)
            # Version 4 kept no personal values beside the chain (it had no such table).
            patch.setattr(module.PostgresReviewStore, "_paused_payload", SqlStore._paused_payload)
            async with module.PostgresReviewStore.from_conn_string(
                postgres_dsn, table_prefix=prefix
            ) as old:
                old.configure_hooks(frozenset({"on_paused"}))
                await old.open_review(make_review(), owner=None)
        async with module.PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=prefix
        ) as store:
            [owed] = await store.pending_hooks()
            assert (owed.status, owed.lease_owner, owed.lease_until) == ("pending", None, None)
            [claimed] = await store.claim_hooks(owner="a", now=at(1), lease_until=at(2))
            assert (claimed.delivery_id, claimed.lease_owner) == (owed.delivery_id, "a")
            assert await store.finish_hook(
                owed.delivery_id, ok=True, error=None, now=at(1), owner="a"
            )
            assert await store.pending_hooks() == []

    async def test_newer_schema_is_refused(self, postgres_dsn: str) -> None:
        """Tables migrated by a newer version fail setup with ConfigurationError."""
        import psycopg

        from hitl_compliance.stores.postgres import PostgresReviewStore

        prefix = f"n{uuid.uuid4().hex[:8]}_"
        async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix):
            pass
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(f"UPDATE {prefix}schema_version SET version = 99")
        store = PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix)
        try:
            with pytest.raises(ConfigurationError, match="schema version 99"):
                await store.setup()
        finally:
            await store.aclose()

    async def test_cursor_reads_the_partial_index(self, postgres_dsn: str) -> None:
        """The cursor and requested_before are conditions on the partial pending index."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=f"q{uuid.uuid4().hex[:8]}_"
        ) as store:
            sql, params = store._pending_query(
                limit=10, rule=None, requested_before=at(9), after=(T0, "r-1")
            )
            async with store._pool.connection() as conn, conn.transaction():
                # Tiny tables: forbid the sequential scan the planner would prefer.
                await conn.execute("SET LOCAL enable_seqscan = off")
                cur = await conn.execute("EXPLAIN " + sql, params)
                text = " ".join(str(next(iter(row.values()))) for row in await cur.fetchall())
        assert f"Index Scan using {store.table_prefix}reviews_pending" in text
        assert "ROW(requested_at, review_id) > ROW(" in text
        assert "Sort" not in text

    async def test_overdue_and_outbox_queries_read_partial_indexes(self, postgres_dsn: str) -> None:
        """list_overdue, pending_hooks and list_undated are ranges of partial indexes, unsorted."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=f"q{uuid.uuid4().hex[:8]}_"
        ) as store:
            p = store.table_prefix
            queries = [
                store._overdue_query(now=at(5), limit=10),
                store._hooks_query(thread_id=None, created_before=at(5)),
                store._hooks_query(thread_id="t1", created_before=None),
                (store._sql.undated, [10]),
            ]
            plans = []
            async with store._pool.connection() as conn, conn.transaction():
                # Empty tables: forbid the scans and sorts the planner would prefer,
                # so the plan shows that the partial indexes serve these queries.
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    await conn.execute(f"SET LOCAL {setting} = off")
                for sql, params in queries:
                    cur = await conn.execute("EXPLAIN " + sql, params)
                    plans.append(
                        " ".join(str(next(iter(row.values()))) for row in await cur.fetchall())
                    )
        overdue, all_hooks, thread_hooks, undated = plans
        assert f"Index Scan using {p}reviews_overdue" in overdue
        assert f"Index Scan using {p}reviews_undated" in undated
        assert f"{p}hook_outbox_undelivered" in all_hooks
        assert f"{p}hook_outbox_thread" in thread_hooks
        for text in plans:
            assert "Sort" not in text
