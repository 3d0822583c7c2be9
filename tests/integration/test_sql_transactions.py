"""Each SQL backend's transaction primitive (`_transaction`), on a real database.

The shared writes (`stores._sqlwrites`) rely on three things of it: all of
a body commits or none of it; transactions given the same `lock` key never
overlap; SQLite runs a whole body in one trip to its worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance.stores._sqlwrites import SqlStore, Tx
from hitl_compliance.testing.conformance import at


async def insert_turn_then_fail(tx: Tx, store: SqlStore) -> None:
    await tx.run(store._writes.insert_turn, ("t1", "o", store.dialect.time(at(0))))
    raise LookupError("after the write")


class PrimitiveContract:
    """What every backend's `_transaction` does; subclasses give the `store` fixture."""

    async def test_a_failing_body_changes_nothing(self, store: SqlStore) -> None:
        with pytest.raises(LookupError):
            await store._transaction(lambda tx: insert_turn_then_fail(tx, store), lock="t1")
        assert await store.stale_turns(started_before=at(9)) == []

    async def test_a_body_commits_all_its_writes(self, store: SqlStore) -> None:
        async def two_turns(tx: Tx) -> int:
            now = store.dialect.time(at(0))
            a = await tx.run(store._writes.insert_turn, ("t1", "o", now))
            b = await tx.run(store._writes.insert_turn, ("t2", "o", now))
            return a + b

        assert await store._transaction(two_turns) == 2
        turns = await store.stale_turns(started_before=at(9))
        assert [t.thread_id for t in turns] == ["t1", "t2"]


class TestSqliteTransaction(PrimitiveContract):
    @pytest_asyncio.fixture
    async def store(self, sqlite_path: Path) -> AsyncIterator[SqlStore]:
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        async with SqliteReviewStore(sqlite_path) as s:
            yield s

    async def test_a_write_is_one_trip_to_the_thread(
        self, store: SqlStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`open_review` runs seven statements, all in the one job it submits."""
        from hitl_compliance.stores import sqlite
        from hitl_compliance.testing.conformance import make_review

        jobs: list[Any] = []
        run = sqlite._Worker.run

        def counted(worker: Any, fn: Any, *args: Any) -> Any:
            jobs.append(fn)
            return run(worker, fn, *args)

        monkeypatch.setattr(sqlite._Worker, "run", counted)
        await store.open_review(make_review(), owner="o")
        assert len(jobs) == 1

    async def test_a_body_awaiting_anything_else_is_refused_and_rolled_back(
        self, store: SqlStore
    ) -> None:
        async def suspends(tx: Tx) -> None:
            await tx.run(store._writes.insert_turn, ("t1", "o", store.dialect.time(at(0))))
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="other than its Tx"):
            await store._transaction(suspends)
        assert await store.stale_turns(started_before=at(9)) == []


@pytest.mark.postgres
class TestPostgresTransaction(PrimitiveContract):
    @pytest_asyncio.fixture
    async def store(self, postgres_base_dsn: str) -> AsyncIterator[SqlStore]:
        """A store on a schema of the test's own (the session schema stays small)."""
        from hitl_compliance.stores.postgres import PostgresReviewStore
        from hitl_compliance.testing.databases import postgres_schema

        with postgres_schema(postgres_base_dsn) as dsn:
            async with PostgresReviewStore.from_conn_string(dsn) as s:
                yield s

    async def test_transactions_with_one_lock_key_never_overlap(self, store: SqlStore) -> None:
        """The second waits for the first to end; another key does not."""
        events: list[str] = []
        holding, release = asyncio.Event(), asyncio.Event()

        async def holder(tx: Tx) -> None:
            events.append("first in")
            holding.set()
            await release.wait()
            events.append("first out")

        def entered(name: str) -> Any:
            async def body(tx: Tx) -> None:
                events.append(name)

            return body

        first = asyncio.create_task(store._transaction(holder, lock="t1"))
        await holding.wait()
        same = asyncio.create_task(store._transaction(entered("same key"), lock="t1"))
        await store._transaction(entered("other key"), lock="t2")
        await asyncio.sleep(0.2)
        assert events == ["first in", "other key"]
        release.set()
        await asyncio.gather(first, same)
        assert events == ["first in", "other key", "first out", "same key"]
