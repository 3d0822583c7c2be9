"""The read queries the SQL stores share, written once for both dialects.

SQLite and PostgreSQL differ here only in the parameter placeholder, in how a
time is passed, in how "no limit" is spelled, and in SQLite needing `CROSS
JOIN` to keep the join order that reads the rule index first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL backends in the shared queries."""

    placeholder: str
    """`?` (sqlite3) or `%s` (psycopg)."""
    rule_join: str
    """The join of the rule side table to the reviews (`CROSS JOIN` fixes SQLite's order)."""
    time: Callable[[datetime], Any]
    """A datetime as the driver takes it (ISO text for SQLite, aware datetime for psycopg)."""
    no_limit: Any
    """The LIMIT parameter meaning "all rows" (-1 for SQLite, NULL for PostgreSQL)."""

    def limit(self, limit: int | None) -> Any:
        return self.no_limit if limit is None else limit


def pending_query(
    d: Dialect,
    reviews: str,
    review_rules: str,
    *,
    limit: int | None,
    rule: str | None,
    requested_before: datetime | None,
    after: tuple[datetime, str] | None,
) -> tuple[str, list[Any]]:
    """`list_pending`: oldest first; every filter is a range of an index."""
    p = d.placeholder
    params: list[Any] = []
    if rule is None:
        # The partial index on (requested_at, review_id) WHERE status = 'pending'.
        t = "r"
        sql = f"SELECT r.* FROM {reviews} AS r WHERE r.status = 'pending'"
    else:
        # The side table's (rule, requested_at, review_id) index drives the scan; each
        # row is joined by primary key, and claimed reviews are skipped.
        t = "rr"
        sql = (
            f"SELECT r.* FROM {review_rules} AS rr {d.rule_join} {reviews} AS r "
            f"ON r.review_id = rr.review_id WHERE rr.rule = {p} AND r.status = 'pending'"
        )
        params.append(rule)
    if requested_before is not None:
        sql += f" AND {t}.requested_at < {p}"
        params.append(d.time(requested_before))
    if after is not None:
        sql += f" AND ({t}.requested_at, {t}.review_id) > ({p}, {p})"
        params.extend((d.time(after[0]), after[1]))
    sql += f" ORDER BY {t}.requested_at, {t}.review_id LIMIT {p}"
    params.append(d.limit(limit))
    return sql, params


def overdue_query(
    d: Dialect, reviews: str, *, now: datetime, limit: int | None
) -> tuple[str, list[Any]]:
    """`list_overdue`: earliest deadline first, a range of the partial overdue index."""
    p = d.placeholder
    return (
        f"SELECT * FROM {reviews} WHERE status = 'pending' AND deadline IS NOT NULL "
        f"AND deadline <= {p} ORDER BY deadline, review_id LIMIT {p}",
        [d.time(now), d.limit(limit)],
    )


def hooks_query(
    d: Dialect,
    outbox: str,
    audit: str,
    *,
    thread_id: str | None,
    created_before: datetime | None,
) -> tuple[str, list[Any]]:
    """`pending_hooks`: undelivered outbox rows with their audit rows, a partial index range."""
    p = d.placeholder
    sql = (
        "SELECT o.delivery_id AS o_delivery_id, o.hook AS o_hook, o.status AS o_status, "
        "o.attempts AS o_attempts, o.last_error AS o_last_error, "
        f"o.created_at AS o_created_at, a.* FROM {outbox} AS o "
        f"JOIN {audit} AS a ON a.seq = o.seq WHERE o.status <> 'delivered'"
    )
    params: list[Any] = []
    if thread_id is not None:
        sql += f" AND o.thread_id = {p}"
        params.append(thread_id)
    if created_before is not None:
        sql += f" AND (o.status = 'failed' OR o.created_at < {p})"
        params.append(d.time(created_before))
    sql += " ORDER BY o.seq"
    return sql, params
