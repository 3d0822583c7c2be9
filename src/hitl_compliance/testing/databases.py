"""Throw-away PostgreSQL schemas for tests against a real server.

The plugin's `hitl_backend` and `hitl_backend_url` fixtures use these when
`HITL_TEST_POSTGRES_DSN` is set; use them directly for your own fixtures.
Needs the `postgres` extra (psycopg).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["POSTGRES_DSN_ENV", "postgres_dsn_from_env", "postgres_schema", "with_search_path"]

POSTGRES_DSN_ENV = "HITL_TEST_POSTGRES_DSN"
"""The environment variable naming the PostgreSQL server tests may use."""


def postgres_dsn_from_env() -> str | None:
    """The DSN in `HITL_TEST_POSTGRES_DSN`, or None when it is unset or empty."""
    return os.environ.get(POSTGRES_DSN_ENV) or None


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` with `options=-csearch_path=<schema>` added to its query string.

    Example:
        >>> with_search_path("postgresql://u@h/db", "s1")
        'postgresql://u@h/db?options=-csearch_path%3Ds1'
    """
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@contextmanager
def postgres_schema(dsn: str, *, prefix: str = "hitl_test_") -> Iterator[str]:
    """Create a fresh schema, yield a DSN whose search_path is that schema, then drop it.

    Everything created through the yielded DSN (LangGraph's checkpoint tables,
    the review store's tables) lives in the schema and goes with it.

    Example:
        ```python
        with postgres_schema(os.environ["HITL_TEST_POSTGRES_DSN"]) as dsn:
            async with open_backend(dsn) as backend:
                ...
        ```
    """
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise ImportError(
            "PostgreSQL test schemas need the postgres extra: "
            'pip install "hitl-compliance[postgres]"'
        ) from exc
    schema = f"{prefix}{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _drop_schema(conn, schema)


_DROP_BATCH = 100
"""Tables dropped per transaction when a test schema goes."""


def _drop_schema(conn: Any, schema: str) -> None:
    """Drop `schema` and everything in it, its tables a batch per transaction.

    One `DROP SCHEMA ... CASCADE` locks every table, index and sequence in one
    transaction: a test session that made thousands of them fails with "out of
    shared memory" (`max_locks_per_transaction`) and leaves the schema behind.
    `conn` is an autocommit psycopg connection.
    """
    from psycopg import sql

    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (schema,)
    ).fetchall()
    tables = [str(row[0]) for row in rows]
    for start in range(0, len(tables), _DROP_BATCH):
        names = [sql.Identifier(schema, t) for t in tables[start : start + _DROP_BATCH]]
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.SQL(", ").join(names)))
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
