"""Bad ids and cursors are typed errors on real backends, at the coordinator and in the store.

On PostgreSQL a NUL character or an int where a text id belongs reached SQL:
`psycopg.DataError` ("text fields cannot contain NUL") and
`psycopg.errors.UndefinedFunction` ("operator does not exist: text = smallint")
crossed the `ReviewStore` Protocol. The coordinator now refuses them first,
and the Postgres store translates what still reaches the driver (a caller
using the store directly) into `InvalidInputError`.
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

from hitl_compliance import HitlCoordinator, InvalidInputError, KeywordRule, build_compliance_graph
from hitl_compliance.backends import open_backend
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.testing.conformance import T0, make_review

RISKY_DRAFT = "You should invest now: guaranteed returns of 8%."
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
# Valid local times whose UTC value is in year 0 or 10000: SQLite stores UTC text
# and raised OverflowError converting them.
EDGE_OF_CALENDAR = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-23))),
]
BAD_IDS: list[Any] = ["nul\x00id", 5, 2**70, ["t1"], {"t": 1}]
# psycopg sends a list of str as an untyped array literal, which PostgreSQL reads as
# text ('{t1}'): no driver error, no match. The coordinator refuses it first.
DRIVER_REFUSED_IDS: list[Any] = ["nul\x00id", 5, 2**70, {"t": 1}]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind: memory, a real SQLite file, the test Postgres schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@dataclass(frozen=True)
class Paused:
    """A coordinator on a backend and the thread it has paused for review."""

    coord: HitlCoordinator
    thread_id: str


@pytest_asyncio.fixture
async def paused(url: str) -> AsyncIterator[Paused]:
    """A coordinator on the backend, with one thread paused for review."""
    async with open_backend(url, table_prefix=f"i{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: RISKY_DRAFT,
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coordinator = HitlCoordinator(graph, reviews=backend.reviews)
        thread = f"t-{uuid.uuid4().hex}"
        assert (await coordinator.process(thread, "Should I buy?")).status == "paused"
        yield Paused(coordinator, thread)


async def snapshot(coord: HitlCoordinator) -> tuple[Any, ...]:
    """The store's pending reviews, audit rows and chain head."""
    return (
        await coord.pending(),
        await coord.reviews.audit_rows(),
        await coord.reviews.audit_head(),
    )


class TestCoordinatorOnEveryBackend:
    """The coordinator refuses bad ids and cursors the same way on every backend."""

    @pytest.mark.parametrize("thread_id", BAD_IDS, ids=repr)
    async def test_verify_and_export_refuse_a_bad_thread_id(
        self, paused: Paused, tmp_path: Path, thread_id: Any
    ) -> None:
        """`verify_audit` / `export_audit` raise InvalidInputError and read nothing."""
        coord = paused.coord
        before = await snapshot(coord)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.verify_audit(thread_id)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.export_audit(tmp_path / "out.jsonl", thread_id=thread_id)
        assert not (tmp_path / "out.jsonl").exists()
        assert await snapshot(coord) == before
        assert (await coord.verify_audit()).ok

    @pytest.mark.parametrize(
        "cursor",
        ["2026-01-01T00:00:00+00:00|r\x00", "2026-01-01T00:00:00+00:00\x00|r", 5, b"x|y"],
        ids=repr,
    )
    async def test_pending_refuses_a_bad_cursor(self, paused: Paused, cursor: Any) -> None:
        """A cursor with NUL or of the wrong type is an InvalidInputError; the review stays."""
        coord = paused.coord
        before = await snapshot(coord)
        with pytest.raises(InvalidInputError, match="cursor"):
            await coord.pending(cursor=cursor)
        assert await snapshot(coord) == before
        assert (await coord.approve(paused.thread_id, reviewer="alice")).status == "completed"

    @pytest.mark.parametrize("when", EDGE_OF_CALENDAR, ids=str)
    async def test_times_beyond_the_utc_calendar_are_refused(
        self, paused: Paused, when: datetime
    ) -> None:
        """An aware time whose UTC value is outside years 1-9999 is refused on every backend."""
        coord = paused.coord
        before = await snapshot(coord)
        with pytest.raises(InvalidInputError, match="now"):
            await coord.expire_overdue(now=when)
        with pytest.raises(InvalidInputError, match="older_than"):
            await coord.pending(older_than=when)
        with pytest.raises(InvalidInputError, match="cursor"):
            await coord.pending(cursor=f"{when.isoformat()}|r1")
        assert await snapshot(coord) == before

    async def test_state_at_decision_refuses_nul(self, paused: Paused) -> None:
        """`state_at_decision` checks its thread id before reading the store."""
        with pytest.raises(InvalidInputError, match="thread_id"):
            await paused.coord.state_at_decision("t\x00")
        assert len(await paused.coord.pending()) == 1


@pytest_asyncio.fixture
async def postgres_store(postgres_dsn: str) -> AsyncIterator[ReviewStore]:
    """A Postgres review store with its own table prefix and one pending review."""
    from hitl_compliance.stores.postgres import PostgresReviewStore

    prefix = f"v{uuid.uuid4().hex[:8]}_"
    async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix) as store:
        await store.begin_turn("t1", owner="o", now=T0)
        await store.open_review(make_review(), owner="o")
        yield store


@pytest.mark.postgres
class TestPostgresStoreTranslatesDriverErrors:
    """What reaches SQL from a caller of the store itself comes back as InvalidInputError."""

    @pytest.mark.parametrize("thread_id", DRIVER_REFUSED_IDS, ids=repr)
    async def test_reads_by_a_bad_thread_id(
        self, postgres_store: ReviewStore, thread_id: Any
    ) -> None:
        """`get_review`, `audit_rows` and `audit_log` translate DataError and type errors."""
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.get_review(thread_id)
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.audit_rows(thread_id)
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.audit_log(thread_id)
        [review] = await postgres_store.list_pending()
        assert review.thread_id == "t1"

    @pytest.mark.parametrize("review_id", ["r\x00", 5], ids=repr)
    async def test_pending_after_a_bad_cursor(
        self, postgres_store: ReviewStore, review_id: Any
    ) -> None:
        """`list_pending(after=...)` with NUL or an int review id is an InvalidInputError."""
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.list_pending(after=(NOW, review_id))
        assert len(await postgres_store.list_pending()) == 1

    async def test_a_refused_write_changes_nothing(self, postgres_store: ReviewStore) -> None:
        """`begin_turn` and `append_audit` with NUL roll back: no turn, no audit row."""
        rows = await postgres_store.audit_rows()
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.begin_turn("t\x00", owner="o", now=T0)
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            await postgres_store.append_audit(
                thread_id="t1",
                review_id=None,
                checkpoint_id=None,
                event="recovered",
                actor="a\x00",
                payload={},
                at=NOW,
            )
        assert await postgres_store.audit_rows() == rows
        assert await postgres_store.stale_turns(started_before=NOW) == []
        await postgres_store.begin_turn("t2", owner="o", now=T0)
        assert [t.thread_id for t in await postgres_store.stale_turns(started_before=NOW)] == ["t2"]


@pytest_asyncio.fixture
async def sqlite_store(sqlite_path: Path) -> AsyncIterator[ReviewStore]:
    """A SQLite review store on a real file, with one pending review."""
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    async with SqliteReviewStore(sqlite_path) as store:
        await store.begin_turn("t1", owner="o", now=T0)
        await store.open_review(make_review(), owner="o")
        yield store


class TestSqliteStoreTranslatesDriverErrors:
    """What sqlite3 cannot bind (a dict, an int beyond 64 bits, a lone surrogate) is typed too."""

    @pytest.mark.parametrize("thread_id", [{"t": 1}, ["t1"], 2**70, "lone \ud800"], ids=repr)
    async def test_reads_by_an_unbindable_thread_id(
        self, sqlite_store: ReviewStore, thread_id: Any
    ) -> None:
        """`get_review` and `audit_rows` raise InvalidInputError, not sqlite3 errors."""
        with pytest.raises(InvalidInputError, match="SQLite"):
            await sqlite_store.get_review(thread_id)
        with pytest.raises(InvalidInputError, match="SQLite"):
            await sqlite_store.audit_rows(thread_id)
        [review] = await sqlite_store.list_pending()
        assert review.thread_id == "t1"

    async def test_a_refused_write_changes_nothing(self, sqlite_store: ReviewStore) -> None:
        """`begin_turn` with an unbindable id rolls back: no turn row, the store still works."""
        with pytest.raises(InvalidInputError, match="SQLite"):
            await sqlite_store.begin_turn({"t": 1}, owner="o", now=T0)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="SQLite"):
            await sqlite_store.list_pending(limit=2**70)
        assert await sqlite_store.stale_turns(started_before=NOW) == []
        await sqlite_store.begin_turn("t2", owner="o", now=T0)
        assert [t.thread_id for t in await sqlite_store.stale_turns(started_before=NOW)] == ["t2"]
