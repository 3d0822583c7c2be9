"""Fixtures for tests against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from hitl_compliance.stores import InMemoryReviewStore, ReviewStore

POSTGRES_DSN_ENV = "HITL_TEST_POSTGRES_DSN"


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` with `options=-csearch_path=<schema>` added to its query string."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


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
    import psycopg
    from psycopg import sql

    schema = f"hitl_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_base_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(postgres_base_dsn, schema)
    finally:
        with psycopg.connect(postgres_base_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


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
