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

from hitl_compliance.errors import StoreError


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
    sql = f"{delivery_columns('o')} FROM {outbox} AS o JOIN {audit} AS a ON a.seq = o.seq "
    sql += "WHERE o.status <> 'delivered'"
    params: list[Any] = []
    if thread_id is not None:
        sql += f" AND o.thread_id = {p}"
        params.append(thread_id)
    if created_before is not None:
        sql += f" AND (o.status = 'failed' OR o.created_at < {p})"
        params.append(d.time(created_before))
    sql += " ORDER BY o.seq"
    return sql, params


def delivery_columns(o: str) -> str:
    """The SELECT list of an outbox row `o` joined with its audit row `a` (outbox columns `o_*`)."""
    return (
        f"SELECT {o}.delivery_id AS o_delivery_id, {o}.hook AS o_hook, {o}.status AS o_status, "
        f"{o}.attempts AS o_attempts, {o}.last_error AS o_last_error, "
        f"{o}.created_at AS o_created_at, {o}.lease_owner AS o_lease_owner, "
        f"{o}.lease_until AS o_lease_until, a.*"
    )


def claimable_query(
    d: Dialect,
    outbox: str,
    *,
    now: datetime,
    thread_id: str | None,
    hooks: frozenset[str] | None,
    created_before: datetime | None,
    include_failed: bool,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """`claim_hooks`: the ids of the rows it may lease, oldest first (a partial index range).

    A row nobody holds has no `lease_until`; one whose lease ran out (a crashed
    or too slow caller) is claimable again, whatever `created_before` says.
    """
    p = d.placeholder
    sql = (
        f"SELECT o.delivery_id FROM {outbox} AS o WHERE o.status <> 'delivered' "
        f"AND (o.lease_until IS NULL OR o.lease_until <= {p})"
    )
    params: list[Any] = [d.time(now)]
    if thread_id is not None:
        sql += f" AND o.thread_id = {p}"
        params.append(thread_id)
    if hooks is not None:
        names = sorted(hooks)
        sql += f" AND o.hook IN ({', '.join([p] * len(names))})"
        params.extend(names)
    if not include_failed:
        sql += " AND o.status = 'pending'"
    if created_before is not None:
        sql += f" AND (o.status = 'failed' OR o.lease_until IS NOT NULL OR o.created_at < {p})"
        params.append(d.time(created_before))
    sql += f" ORDER BY o.seq LIMIT {p}"
    params.append(d.limit(limit))
    return sql, params


def store_error(name: str, reason: str, *, backend: str) -> StoreError:
    """The error a SQL store raises for a driver failure `reason`: the one message for all.

    Each store translates its driver's exceptions at its boundary (one context
    manager, as httpx's `map_httpcore_exceptions`) and chains the original.
    """
    return StoreError(
        f"The {name} review store failed: {reason}. The call changed nothing (its "
        "transaction rolled back); check that the database is reachable, not locked, "
        "and its tables as setup() made them, then call again.",
        backend=backend,
    )
