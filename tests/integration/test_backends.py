"""open_backend against memory, SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance.backends import Backend, mask_url, open_backend
from hitl_compliance.errors import ConfigurationError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def review(thread_id: str = "t1") -> ReviewRecord:
    """A pending review of `thread_id`."""
    return ReviewRecord(
        review_id=f"r-{thread_id}",
        thread_id=thread_id,
        checkpoint_id="c1",
        status="pending",
        draft_response="draft",
        requested_at=T0,
    )


async def checkpoint_round_trip(backend: Backend, thread_id: str) -> None:
    """Write one checkpoint through the backend's saver and read it back."""
    from langgraph.checkpoint.base import empty_checkpoint

    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    await backend.checkpointer.aput(config, checkpoint, {"source": "input", "step": -1}, {})
    loaded = await backend.checkpointer.aget_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["id"] == checkpoint["id"]


class TestMaskUrl:
    @pytest.mark.parametrize(
        ("url", "masked"),
        [
            ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
            ("postgres://u:s%40x@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            (
                "postgresql://h/db?user=u&password=secret&x=1",
                "postgresql://h/db?user=u&password=***&x=1",
            ),
            ("postgresql://u:secret@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
            ("postgresql://u:secret@[::1/db", "postgresql://u:***@[::1/db"),
            ("sqlite:///x.db", "sqlite:///x.db"),
            ("memory://", "memory://"),
        ],
    )
    def test_mask_url(self, url: str, masked: str) -> None:
        """Passwords in the user info or a password parameter become ***; the rest is kept."""
        assert mask_url(url) == masked


class TestMemory:
    async def test_memory_backend(self) -> None:
        """memory:// gives an InMemorySaver and an InMemoryReviewStore."""
        async with open_backend("memory://") as backend:
            assert backend.url == "memory://"
            assert isinstance(backend.checkpointer, InMemorySaver)
            assert isinstance(backend.reviews, InMemoryReviewStore)
            assert isinstance(backend.reviews, ReviewStore)
            await checkpoint_round_trip(backend, "t1")

    async def test_backend_is_frozen(self) -> None:
        """Backend is an immutable value."""
        async with open_backend("memory://") as backend:
            with pytest.raises(AttributeError):
                backend.url = "x"  # type: ignore[misc]


class TestSqlite:
    async def test_data_persists_across_reopen(
        self, sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Checkpoints and reviews written to a file are there after reopening it."""
        monkeypatch.chdir(sqlite_path.parent)
        url = f"sqlite:///{sqlite_path.name}"
        async with open_backend(url) as backend:
            assert backend.url == url
            await checkpoint_round_trip(backend, "t1")
            await backend.reviews.open_review(review(), owner=None)
        async with open_backend(f"sqlite:///{sqlite_path}") as backend:  # absolute form
            assert (await backend.reviews.get_review("t1")) == review()
            tuple_ = await backend.checkpointer.aget_tuple({"configurable": {"thread_id": "t1"}})
            assert tuple_ is not None

    async def test_in_memory_sqlite(self) -> None:
        """sqlite:///:memory: opens a working, throwaway backend."""
        async with open_backend("sqlite:///:memory:") as backend:
            await checkpoint_round_trip(backend, "t1")
            await backend.reviews.open_review(review(), owner=None)
            assert [r.thread_id for r in await backend.reviews.list_pending()] == ["t1"]

    async def test_table_prefix_is_used(self, sqlite_path: Path) -> None:
        """table_prefix names the review tables."""
        import aiosqlite

        async with open_backend(f"sqlite:///{sqlite_path}", table_prefix="acme_"):
            pass
        async with (
            aiosqlite.connect(sqlite_path) as conn,
            conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur,
        ):
            names = {row[0] for row in await cur.fetchall()}
        assert {"acme_reviews", "acme_audit", "acme_intents", "checkpoints"} <= names

    @pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:///x.db?mode=ro"])
    async def test_malformed_sqlite_url(self, url: str) -> None:
        """SQLite URLs with a host, no path or a query are refused with the accepted forms."""
        with pytest.raises(ConfigurationError, match=r"sqlite:///"):
            async with open_backend(url):
                pass

    async def test_missing_directory(self, tmp_path: Path) -> None:
        """A file in a directory that does not exist is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="directory"):
            async with open_backend(f"sqlite:///{tmp_path}/missing/x.db"):
                pass


class TestErrors:
    @pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "reviews.db", ""])
    async def test_unknown_scheme(self, url: str) -> None:
        """An unsupported URL names the supported schemes and never the password."""
        with pytest.raises(ConfigurationError, match="memory://") as info:
            async with open_backend(url):
                pass
        assert "secret" not in str(info.value)

    async def test_unreachable_postgres_masks_password(self) -> None:
        """An unreachable server fails fast with a ConfigurationError that masks the password."""
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as info:
            async with open_backend("postgresql://u:secret@127.0.0.1:1/x", connect_timeout=3):
                pass
        message = str(info.value)
        assert "postgresql://u:***@127.0.0.1:1/x" in message
        assert "secret" not in message
        assert info.value.__cause__ is None or "secret" not in str(info.value.__cause__)
        assert time.monotonic() - started < 10

    async def test_bad_table_prefix(self) -> None:
        """A table prefix that is not an identifier is refused before any table is made."""
        with pytest.raises(ConfigurationError, match="table_prefix"):
            async with open_backend("sqlite:///:memory:", table_prefix="a-b"):
                pass


@pytest.mark.postgres
class TestPostgres:
    async def test_postgres_backend(self, postgres_dsn: str) -> None:
        """A postgresql:// URL opens a saver and a review store on one pool in the test schema."""
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        from hitl_compliance.stores.postgres import PostgresReviewStore

        async with open_backend(postgres_dsn) as backend:
            assert isinstance(backend.checkpointer, AsyncPostgresSaver)
            assert isinstance(backend.reviews, PostgresReviewStore)
            await checkpoint_round_trip(backend, "pg-t1")
            await backend.reviews.open_review(review("pg-t1"), owner=None)
        async with open_backend(postgres_dsn.replace("postgresql://", "postgres://", 1)) as again:
            assert (await again.reviews.get_review("pg-t1")) == review("pg-t1")
            assert (
                await again.checkpointer.aget_tuple({"configurable": {"thread_id": "pg-t1"}})
                is not None
            )

    async def test_tables_live_in_the_search_path_schema(self, postgres_dsn: str) -> None:
        """With options=-csearch_path the review and checkpoint tables are made in that schema."""
        import psycopg

        async with open_backend(postgres_dsn, table_prefix="schemacheck_"):
            pass
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
            names = {row[0] for row in await cur.fetchall()}
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or [""])[0]
        assert schema.startswith("hitl_test_")
        assert {"schemacheck_reviews", "schemacheck_audit", "schemacheck_intents"} <= names
        assert "checkpoints" in names

    async def test_missing_schema_is_a_configuration_error(self, postgres_base_dsn: str) -> None:
        """A search_path schema that does not exist fails with a ConfigurationError."""
        sep = "&" if "?" in postgres_base_dsn else "?"
        url = f"{postgres_base_dsn}{sep}options=-csearch_path%3Dhitl_no_such_schema"
        with pytest.raises(ConfigurationError, match="schema"):
            async with open_backend(url):
                pass

    async def test_concurrent_first_open_on_a_fresh_schema(self, postgres_base_dsn: str) -> None:
        """Three backends opened at once on an empty schema all set up (no race, no deadlock)."""
        import asyncio
        from contextlib import AsyncExitStack

        import psycopg
        from psycopg import sql

        schema = f"hitl_fresh_{uuid.uuid4().hex[:8]}"
        async with await psycopg.AsyncConnection.connect(postgres_base_dsn, autocommit=True) as c:
            await c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            sep = "&" if "?" in postgres_base_dsn else "?"
            url = f"{postgres_base_dsn}{sep}options=-csearch_path%3D{schema}"
            async with AsyncExitStack() as stack:
                backends = await asyncio.wait_for(
                    asyncio.gather(
                        *(stack.enter_async_context(open_backend(url)) for _ in range(3))
                    ),
                    timeout=60,
                )
                await backends[0].reviews.open_review(review(), owner=None)
                assert await backends[2].reviews.get_review("t1") == review()
        finally:
            async with await psycopg.AsyncConnection.connect(
                postgres_base_dsn, autocommit=True
            ) as c:
                await c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
