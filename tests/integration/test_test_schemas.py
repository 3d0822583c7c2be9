"""`hitl_compliance.testing.databases`: a throw-away PostgreSQL schema goes, however full."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from hitl_compliance.testing import databases
from hitl_compliance.testing.databases import postgres_schema


@pytest.mark.postgres
def test_a_full_schema_is_dropped_a_batch_of_tables_at_a_time(
    postgres_base_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables go in batches before the schema (a regression: one DROP SCHEMA CASCADE of a
    session's thousands of tables ran out of lock memory and left the schema behind)."""
    monkeypatch.setattr(databases, "_DROP_BATCH", 2)
    statements: list[str] = []
    with (
        postgres_schema(postgres_base_dsn, prefix="hitl_drop_") as dsn,
        psycopg.connect(dsn) as conn,
    ):
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        for name in ("a", "b", "c", "d", "e"):
            conn.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, body text)")
        conn.commit()
        real_execute = psycopg.Connection.execute

        def spy(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(query.as_string(self) if hasattr(query, "as_string") else str(query))
            return real_execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "execute", spy)
    monkeypatch.undo()
    drops = [s for s in statements if s.startswith("DROP TABLE")]
    assert len(drops) == 3  # five tables, two a batch
    assert statements[-1].startswith("DROP SCHEMA")
    with psycopg.connect(postgres_base_dsn) as conn:
        left = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchall()
    assert left == []
