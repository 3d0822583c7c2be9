"""Fixtures for tests against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hitl_compliance.stores import InMemoryReviewStore, ReviewStore
from hitl_compliance.testing.databases import POSTGRES_DSN_ENV, postgres_schema


@pytest.fixture(scope="session")
def postgres_base_dsn() -> str:
    """The server DSN from the environment; skips the test when it is not set."""
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn and os.environ.get("HITL_REQUIRE_POSTGRES"):
        pytest.fail(f"HITL_REQUIRE_POSTGRES is set (CI) but {POSTGRES_DSN_ENV} is not.")
    if not dsn:
        pytest.skip(
            f"{POSTGRES_DSN_ENV} is not set; set it to e.g. "
            "postgresql://postgres@127.0.0.1:5432/test to run the Postgres tests"
        )
    return dsn


@pytest.fixture(scope="session")
def postgres_dsn(postgres_base_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped with everything in it afterwards."""
    with postgres_schema(postgres_base_dsn) as dsn:
        yield dsn


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A fresh SQLite database file path in the test's temporary directory."""
    return tmp_path / "reviews.db"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def review_store(
    request: pytest.FixtureRequest, sqlite_path: Path
) -> AsyncIterator[ReviewStore]:
    """Each review store adapter, set up on empty tables, closed afterwards."""
    store: ReviewStore
    if request.param == "memory":
        store = InMemoryReviewStore()
    elif request.param == "sqlite":
        from hitl_compliance.stores.sqlite import SqliteReviewStore

        store = SqliteReviewStore(sqlite_path)
    else:
        from hitl_compliance.stores.postgres import PostgresReviewStore

        dsn = request.getfixturevalue("postgres_dsn")
        # A table prefix per test keeps tests apart inside the session's schema.
        store = PostgresReviewStore.from_conn_string(dsn, table_prefix=f"t{uuid.uuid4().hex[:8]}_")
    await store.setup()
    try:
        yield store
    finally:
        await store.aclose()
