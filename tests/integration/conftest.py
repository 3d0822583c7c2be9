"""Fixtures for tests against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind: in memory, a fresh SQLite file, the test Postgres schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))
