"""The SQL layer the SQLite and PostgreSQL stores share: statements, row mappers, names.

Written once for both backends, the way LangGraph's Postgres saver keeps its
SQL constants in one base module. What differs between the backends is a
small [`Dialect`][hitl_compliance.stores._sql.Dialect]: the parameter
placeholder, how a time or a JSON column travels through the driver, how "no
limit" and "the same value, NULL included" are spelt, which column orders a
thread's reviews, and SQLite needing `CROSS JOIN` to keep the join order that
reads the rule index first. The multi-statement writes are in
[`_sqlwrites`][hitl_compliance.stores._sqlwrites]; each store module keeps only
what its driver and its locking need (SQLite's worker thread and `BEGIN
IMMEDIATE`, Postgres's pool, advisory lock and server-side write functions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from hitl_compliance.errors import ConfigurationError, StoreError
from hitl_compliance.ledger import GENESIS, LANES_FORMAT
from hitl_compliance.models import (
    AuditRecord,
    HookDelivery,
    ReviewRecord,
    Vote,
    check_audit_payload,
    seal,
)
from hitl_compliance.oversight import (
    ERASED_DRAFT,
    QA_EVENT,
    DecisionFact,
    EscalationFact,
    outcome_of,
)
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores._machine import OPEN_STATUSES, is_open
from hitl_compliance.stores.base import TurnRecord

OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"
"""`('pending', 'claimed')`: the SQL list of the statuses that keep a thread paused."""

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


class Row(Protocol):
    """A result row read by column name (`sqlite3.Row` and psycopg's `dict_row` both are)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class ColumnTypes:
    """The column types a dialect's tables use where the backends differ."""

    id: str
    """An id column (`TEXT`; Postgres's `TEXT COLLATE "C"` orders ties as Python does)."""
    time: str
    """A time column (UTC ISO-8601 `TEXT` in SQLite, `TIMESTAMPTZ` in PostgreSQL)."""
    seq: str
    """An audit sequence number (`INTEGER` in SQLite, `BIGINT` in PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL backends in the shared statements and row mappers."""

    placeholder: str
    """`?` (sqlite3) or `%s` (psycopg)."""
    rule_join: str
    """The join of the rule side table to the reviews (`CROSS JOIN` fixes SQLite's order)."""
    time: Callable[[datetime], Any]
    """A datetime as the driver takes it (ISO text for SQLite, aware datetime for psycopg).

    Refuses a naive datetime (ValueError): it would be read in some local zone."""
    no_limit: Any
    """The LIMIT parameter meaning "all rows" (-1 for SQLite, NULL for PostgreSQL)."""
    read_time: Callable[[Any], datetime]
    """A time column as the driver returns it, as an aware UTC datetime."""
    read_json: Callable[[Any], Any]
    """A JSON column as the driver returns it (text for SQLite, parsed JSONB for psycopg)."""
    same: str
    """The null-safe equality operator (`IS` in SQLite, `IS NOT DISTINCT FROM` in PostgreSQL)."""
    latest: str
    """The column that orders a thread's reviews, newest last (`rowid`, or Postgres's `seq`)."""
    types: ColumnTypes
    """The column types of the tables the backends share the shape of."""
    for_update: str = ""
    """The suffix locking the rows a write transaction reads (`" FOR UPDATE"`).

    Empty where the transaction holds a lock on everything already (SQLite's
    `BEGIN IMMEDIATE`)."""
    skip_locked: str = ""
    """The suffix leasing outbox rows no other transaction holds (`" FOR UPDATE SKIP LOCKED"`)."""
    json_text: str = "json_extract({column}, '$.{key}')"
    """A top-level key of a JSON text column as SQL text (SQLite's `json_extract`,
    PostgreSQL's `::jsonb ->>`); `{column}` and `{key}` are filled in."""
    rule_list: str = (
        "(SELECT group_concat(json_extract(v.value, '$.rule'), char(31)) "
        "FROM json_each({column}) AS v)"
    )
    """The `rule` of each finding in a JSON array column, joined by U+001F (the unit
    separator), as SQL text: the rule ids only, without parsing the findings in Python."""

    def limit(self, limit: int | None) -> Any:
        """The LIMIT parameter for `limit` (None: all rows)."""
        return self.no_limit if limit is None else limit

    def sql(self, text: str) -> str:
        """`text`, written with `?` placeholders, in this dialect's placeholder."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def read_optional_time(self, value: Any) -> datetime | None:
        """[`read_time`][.read_time] of a nullable column."""
        return None if value is None else self.read_time(value)


def aware(value: datetime) -> datetime:
    """`value`, refusing a naive datetime (it would be read in some session's zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"Review stores need timezone-aware datetimes, got naive {value!r}.")
    return value


def dumps(value: Any) -> str:
    """The JSON text a store writes: compact, and refusing NaN (not JSON)."""
    # Serialised before the transaction starts, so a bad payload changes nothing.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def audit_json(payload: Any, *, event: str, thread_id: str | None) -> str:
    """The JSON text of an audit payload, once the ledger can hash it (else LedgerValueError)."""
    # Before the transaction starts, like `dumps`: a refused row changes nothing. (An int
    # no double equals is refused by `seal` inside it, which rolls back.)
    try:
        return dumps(payload)
    except ValueError:
        check_audit_payload(payload, event=event, thread_id=thread_id)  # NaN: say where
        raise


def check_table_prefix(table_prefix: str) -> str:
    """Return `table_prefix` if it is a safe SQL identifier prefix, else raise.

    Raises:
        ConfigurationError: the prefix is not letters, digits and `_` (it is
            spliced into SQL, so nothing else is allowed).
    """
    if not _PREFIX_RE.fullmatch(table_prefix):
        raise ConfigurationError(
            f"table_prefix must be letters, digits and '_' (not starting with a digit, "
            f"at most 41 characters), got {table_prefix!r}."
        )
    return table_prefix


@dataclass(frozen=True, slots=True)
class Tables:
    """The store's table names under one prefix."""

    reviews: str
    audit: str
    intents: str
    review_rules: str
    schema_version: str
    audit_head: str
    outbox: str

    @classmethod
    def of(cls, prefix: str) -> Tables:
        """The names under `prefix` (checked: see [`check_table_prefix`][..check_table_prefix])."""
        p = check_table_prefix(prefix)
        return cls(
            reviews=f"{p}reviews",
            audit=f"{p}audit",
            intents=f"{p}intents",
            review_rules=f"{p}review_rules",
            schema_version=f"{p}schema_version",
            audit_head=f"{p}audit_head",
            outbox=f"{p}hook_outbox",
        )


# -- row mappers ------------------------------------------------------------------


def indexed_rules(review: ReviewRecord) -> list[str]:
    """The rules of a review's rows in the rule side table (`list_pending(rule=...)`).

    Each rule once, in finding order; none for a review stored already final.
    """
    if not is_open(review.status):
        return []
    return list(dict.fromkeys(v.rule for v in review.violations))


REVIEW_COLUMNS = (
    "review_id, thread_id, checkpoint_id, status, customer_message, draft_response, "
    "violations, requested_at, requested_by, claim_id, claimed_at, decided_at, reviewer, "
    "decision, votes, approvals_required, deadline, priority"
)
"""The review table's columns in the order of [`review_values`][..review_values]."""


def review_values(d: Dialect, review: ReviewRecord) -> list[Any]:
    """A review's column values (`REVIEW_COLUMNS` order) as the driver takes them.

    Every time is checked aware and converted here, and every JSON value
    serialised, before any transaction starts: a bad value changes nothing.
    """

    def time(value: datetime | None) -> Any:
        return None if value is None else d.time(value)

    return [
        review.review_id,
        review.thread_id,
        review.checkpoint_id,
        review.status,
        review.customer_message,
        review.draft_response,
        dumps([v.to_dict() for v in review.violations]),
        d.time(review.requested_at),
        review.requested_by,
        review.claim_id,
        time(review.claimed_at),
        time(review.decided_at),
        review.reviewer,
        None if review.decision is None else dumps(review.decision),
        dumps([v.model_dump(mode="json") for v in review.votes]),
        review.approvals_required,
        time(review.deadline),
        review.priority,
    ]


def review_from_row(d: Dialect, row: Row) -> ReviewRecord:
    """A review row as its frozen record."""
    decision = row["decision"]
    return ReviewRecord(
        review_id=row["review_id"],
        thread_id=row["thread_id"],
        checkpoint_id=row["checkpoint_id"],
        status=row["status"],
        customer_message=row["customer_message"],
        draft_response=row["draft_response"],
        violations=[RuleResult.from_dict(v) for v in d.read_json(row["violations"])],
        requested_at=d.read_time(row["requested_at"]),
        requested_by=row["requested_by"],
        claim_id=row["claim_id"],
        claimed_at=d.read_optional_time(row["claimed_at"]),
        decided_at=d.read_optional_time(row["decided_at"]),
        reviewer=row["reviewer"],
        decision=None if decision is None else d.read_json(decision),
        votes=[Vote.model_validate(v) for v in d.read_json(row["votes"])],
        approvals_required=row["approvals_required"],
        deadline=d.read_optional_time(row["deadline"]),
        priority=row["priority"],
    )


def turn_from_row(d: Dialect, row: Row) -> TurnRecord:
    """An intent row as its frozen record."""
    return TurnRecord(
        thread_id=row["thread_id"], owner=row["owner"], started_at=d.read_time(row["started_at"])
    )


def audit_from_row(d: Dialect, row: Row) -> AuditRecord:
    """An audit row exactly as stored: never re-sealed, so an edited row keeps its wrong hash."""
    return AuditRecord(
        seq=row["seq"],
        thread_id=row["thread_id"],
        review_id=row["review_id"],
        checkpoint_id=row["checkpoint_id"],
        event=row["event"],
        actor=row["actor"],
        # TEXT in both backends: the hash covers the payload as written.
        payload=json.loads(row["payload"]),
        at=d.read_time(row["at"]),
        prev_hash=row["prev_hash"],
        global_prev_hash=row["global_prev_hash"],
        hash=row["hash"],
        ledger_format=row["ledger_format"],
        # Only a store with lanes (PostgreSQL) has the column, and writes format 3.
        lane=row["lane"] if row["ledger_format"] >= LANES_FORMAT else 0,
    )


def delivery_from_row(d: Dialect, row: Row) -> HookDelivery:
    """An outbox row joined with its audit row (outbox columns prefixed `o_`)."""
    return HookDelivery(
        delivery_id=row["o_delivery_id"],
        hook=row["o_hook"],
        status=row["o_status"],
        attempts=row["o_attempts"],
        last_error=row["o_last_error"],
        created_at=d.read_time(row["o_created_at"]),
        record=audit_from_row(d, row),
        lease_owner=row["o_lease_owner"],
        lease_until=d.read_optional_time(row["o_lease_until"]),
    )


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC (how the stores return every time)."""
    return value.astimezone(timezone.utc)


# -- statements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statements:
    """The fixed statements both SQL stores run, in one dialect, built once per store."""

    latest_review: str
    open_reviews: str
    review_by_id: str
    end_turn: str
    stale_turns: str
    take_over_turn: str
    abandoned_claims: str
    take_over_claim: str
    undated: str
    count_pending: str
    set_deadline: str
    audit_rows: str
    thread_audit_rows: str
    audit_head: str
    renew_hook: str
    finish_delivered: str
    finish_failed: str
    create_schema_version: str
    schema_version: str
    set_schema_version: str

    @classmethod
    def of(cls, d: Dialect, t: Tables) -> Statements:
        """The statements on tables `t` in dialect `d`."""
        finish = (
            f"UPDATE {t.outbox} SET status = ?, attempts = attempts + 1, "
            "last_error = ?, attempted_at = ?{release} WHERE delivery_id = ? "
            f"AND status <> 'delivered' AND lease_owner {d.same} ?"
        )
        return cls(
            latest_review=d.sql(
                f"SELECT * FROM {t.reviews} WHERE thread_id = ? ORDER BY {d.latest} DESC LIMIT 1"
            ),
            open_reviews=d.sql(
                f"SELECT * FROM {t.reviews} WHERE thread_id = ? AND status IN {OPEN_SQL} "
                f"ORDER BY {d.latest}"
            ),
            review_by_id=d.sql(f"SELECT * FROM {t.reviews} WHERE review_id = ?"),
            end_turn=d.sql(f"DELETE FROM {t.intents} WHERE thread_id = ? AND owner = ?"),
            stale_turns=d.sql(
                f"SELECT * FROM {t.intents} WHERE started_at < ? ORDER BY started_at, thread_id"
            ),
            take_over_turn=d.sql(
                f"UPDATE {t.intents} SET owner = ?, started_at = ? "
                "WHERE thread_id = ? AND owner = ?"
            ),
            abandoned_claims=d.sql(
                f"SELECT * FROM {t.reviews} WHERE status = 'claimed' AND claimed_at < ? "
                "ORDER BY claimed_at, review_id"
            ),
            take_over_claim=d.sql(
                f"UPDATE {t.reviews} SET claim_id = ?, claimed_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?"
            ),
            undated=d.sql(
                f"SELECT * FROM {t.reviews} WHERE status = 'pending' AND deadline IS NULL "
                "ORDER BY requested_at, review_id LIMIT ?"
            ),
            # Counted from the partial pending index (reviews_pending), not the history.
            count_pending=f"SELECT COUNT(*) AS n FROM {t.reviews} WHERE status = 'pending'",
            set_deadline=d.sql(
                f"UPDATE {t.reviews} SET deadline = ? "
                "WHERE review_id = ? AND status = 'pending' AND deadline IS NULL"
            ),
            audit_rows=f"SELECT * FROM {t.audit} ORDER BY seq",
            thread_audit_rows=d.sql(f"SELECT * FROM {t.audit} WHERE thread_id = ? ORDER BY seq"),
            audit_head=f"SELECT seq, hash FROM {t.audit_head} WHERE id = 1",
            renew_hook=d.sql(
                f"UPDATE {t.outbox} SET lease_until = ? WHERE delivery_id = ? "
                "AND status <> 'delivered' AND lease_owner = ?"
            ),
            finish_delivered=d.sql(finish.replace("{release}", "")),
            finish_failed=d.sql(
                finish.replace("{release}", ", lease_owner = NULL, lease_until = NULL")
            ),
            create_schema_version=(
                f"CREATE TABLE IF NOT EXISTS {t.schema_version} ("
                "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            ),
            schema_version=f"SELECT version FROM {t.schema_version} WHERE id = 1",
            set_schema_version=d.sql(
                f"INSERT INTO {t.schema_version} (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version"
            ),
        )


# -- schema -----------------------------------------------------------------------
# The DDL the backends' migration steps share, in the exact text those steps have
# run since they landed (a test compares every step's statements with the
# released ones): each step picks these where its tables are the same in both.


def open_and_pending_indexes(p: str) -> list[str]:
    """Step 1: one open review per thread (the database says so too); the pending queue."""
    return [
        f"CREATE UNIQUE INDEX IF NOT EXISTS {p}reviews_one_open "
        f"ON {p}reviews (thread_id) WHERE status IN {OPEN_SQL}",
        # list_pending reads only pending rows, in order, whatever the history size.
        f"CREATE INDEX IF NOT EXISTS {p}reviews_pending "
        f"ON {p}reviews (requested_at, review_id) WHERE status = 'pending'",
    ]


def several_open_reviews(p: str) -> list[str]:
    """Several open reviews per thread, of one pause: the unique index of step 1 goes.

    The rule (open reviews of one thread all belong to one pause, the state
    machine's `same_pause`) is checked by `open_review` under the thread's lock;
    a plain partial index keeps `open_reviews` and `begin_turn`'s check O(open rows).
    """
    return [
        f"DROP INDEX IF EXISTS {p}reviews_one_open",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_open "
        f"ON {p}reviews (thread_id) WHERE status IN {OPEN_SQL}",
    ]


def claimed_index(p: str) -> str:
    """Step 1: the claimed reviews by claim time (`abandoned_claims`)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {p}reviews_claimed "
        f"ON {p}reviews (claimed_at) WHERE status = 'claimed'"
    )


def audit_thread_index(p: str) -> str:
    """Step 1: a thread's audit rows in order."""
    return f"CREATE INDEX IF NOT EXISTS {p}audit_thread ON {p}audit (thread_id, seq)"


def intents_table(d: Dialect, p: str) -> list[str]:
    """Step 1: the turn (intent) rows and their index by start time (`stale_turns`)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}intents (
            thread_id {d.types.id} PRIMARY KEY,
            owner TEXT NOT NULL,
            started_at {d.types.time} NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}intents_started ON {p}intents (started_at)",
    ]


def review_rules_index(p: str) -> str:
    """Step 2: the rule side table's range of one rule's open reviews, oldest first."""
    return (
        f"CREATE INDEX IF NOT EXISTS {p}review_rules_pending "
        f"ON {p}review_rules (rule, requested_at, review_id)"
    )


def overdue_index(p: str) -> str:
    """Step 3: overdue pending rows only, earliest deadline first (`list_overdue`)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {p}reviews_overdue ON {p}reviews (deadline, review_id) "
        "WHERE status = 'pending' AND deadline IS NOT NULL"
    )


def undated_index(p: str) -> str:
    """Pending rows without a deadline, oldest first (`list_undated`: the SLA adopts them)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {p}reviews_undated ON {p}reviews (requested_at, review_id) "
        "WHERE status = 'pending' AND deadline IS NULL"
    )


def audit_head_table(d: Dialect, p: str) -> str:
    """Step 3: the store-wide chain head (seq 0 and GENESIS while there is none); one row."""
    return f"""CREATE TABLE IF NOT EXISTS {p}audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq {d.types.seq} NOT NULL,
            hash TEXT NOT NULL
        )"""


def outbox_tables(d: Dialect, p: str) -> list[str]:
    """Step 3: one outbox row per hook call an audit row (`seq`) owes, and its indexes.

    `pending_hooks` and `claim_hooks` read only undelivered rows, store-wide
    or of one thread.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}hook_outbox (
            delivery_id {d.types.id} PRIMARY KEY,
            seq {d.types.seq} NOT NULL,
            thread_id {d.types.id} NOT NULL,
            hook TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'delivered')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at {d.types.time} NOT NULL,
            attempted_at {d.types.time}
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_undelivered "
        f"ON {p}hook_outbox (seq) WHERE status <> 'delivered'",
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_thread "
        f"ON {p}hook_outbox (thread_id, seq) WHERE status <> 'delivered'",
    ]


class LedgerBackfill:
    """Seals the audit rows written before the ledger existed (migration step 3 of both stores).

    The store pages through its audit table in `seq` order (`select_page`,
    from `after` on), hands each page to [`seal_page`][.seal_page] and runs
    `update` for the rows it returns, then `set_head` with `head`; memory holds
    one page plus one hash per thread.
    """

    PAGE = 1000
    """Rows per page."""

    def __init__(self, d: Dialect, prefix: str) -> None:
        self._d = d
        self._thread_prev: dict[str, str] = {}
        self.head: tuple[int, str] = (0, GENESIS)
        """`(seq, hash)` of the last row sealed so far."""
        self.select_page = d.sql(f"SELECT * FROM {prefix}audit WHERE seq > ? ORDER BY seq LIMIT ?")
        self.update = d.sql(
            f"UPDATE {prefix}audit SET prev_hash = ?, global_prev_hash = ?, hash = ? WHERE seq = ?"
        )
        self.set_head = d.sql(
            f"INSERT INTO {prefix}audit_head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
        )

    @property
    def page_params(self) -> tuple[int, int]:
        """The `select_page` parameters of the next page."""
        return self.head[0], self.PAGE

    def seal_page(self, rows: Sequence[Row]) -> list[tuple[str, str, str, int]]:
        """The `update` parameters sealing `rows`, chained after the rows sealed before."""
        updates = []
        for row in rows:
            record = seal(
                seq=row["seq"],
                thread_id=row["thread_id"],
                review_id=row["review_id"],
                checkpoint_id=row["checkpoint_id"],
                event=row["event"],
                actor=row["actor"],
                payload=json.loads(row["payload"]),
                at=self._d.read_time(row["at"]),
                prev_hash=self._thread_prev.get(row["thread_id"], GENESIS),
                global_prev_hash=self.head[1],
                # Step 3 ran before rows named a format: they are format 1 (the
                # column added later defaults to 1), whatever new rows use.
                ledger_format=1,
            )
            updates.append((record.prev_hash, record.global_prev_hash, record.hash, record.seq))
            self._thread_prev[record.thread_id] = record.hash
            self.head = (record.seq, record.hash)
        return updates


def steps_to_run(
    version_row: Row | None, migrations: Sequence[Callable[[str], list[Any]]], *, where: str
) -> Sequence[Callable[[str], list[Any]]]:
    """The migration steps tables at the version in `version_row` miss, in order.

    No row: a new database, or one created before versioning (version 1's
    tables, which step 1 creates only if missing).

    Raises:
        ConfigurationError: the tables (`where` names them) are newer than this library.
    """
    current = 0 if version_row is None else int(version_row["version"])
    if current > len(migrations):
        raise ConfigurationError(
            f"The review tables {where} are at schema version {current}, newer than this "
            f"hitl-compliance understands ({len(migrations)}); upgrade hitl-compliance."
        )
    return migrations[current:]


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


def reason_counts_query(
    d: Dialect, audit: str, *, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    """`reason_code_counts`: audit rows with a payload `reason_code`, grouped by code and event."""
    p = d.placeholder
    code = d.json_text.format(column="payload", key="reason_code")
    where = [f"{code} IS NOT NULL"]
    params: list[Any] = []
    if since is not None:
        where.append(f"at >= {p}")
        params.append(d.time(since))
    if until is not None:
        where.append(f"at < {p}")
        params.append(d.time(until))
    return (
        f"SELECT code, event, COUNT(*) AS n FROM (SELECT {code} AS code, event FROM {audit} "
        f"WHERE {' AND '.join(where)}) AS coded GROUP BY code, event ORDER BY code, event",
        params,
    )


def oversight_indexes(p: str) -> list[str]:
    """The oversight report's ranges: decided reviews by `decided_at`, audit rows by event and time.

    `oversight_report` reads only the window's rows through these, whatever
    the history's size (a test checks the plans).
    """
    return [
        f"CREATE INDEX IF NOT EXISTS {p}reviews_decided ON {p}reviews (decided_at)",
        f"CREATE INDEX IF NOT EXISTS {p}audit_event_at ON {p}audit (event, at)",
    ]


@dataclass(frozen=True, slots=True)
class OversightQueries:
    """`oversight_report`'s three reads of one window, each a range of an index."""

    decisions: str
    """Reviews decided in the window (`reviews_decided`), with what a report needs of them."""
    escalations: str
    """`escalated` audit rows of the window (`audit_event_at`) with their reviews' findings."""
    qa: str
    """`qa_verdict` audit rows of the window (`audit_event_at`)."""

    @classmethod
    def of(cls, d: Dialect, t: Tables) -> OversightQueries:
        """The queries on tables `t` in dialect `d` (parameters: since, until)."""
        response = d.json_text.format(column="decision", key="response")
        tool_args = d.json_text.format(column="decision", key="tool_args")
        code = d.json_text.format(column="decision", key="reason_code")
        escalated_rules = d.rule_list.format(column="r.violations")
        return cls(
            decisions=d.sql(
                "SELECT review_id, reviewer, status, requested_at, decided_at, deadline, "
                f"CASE WHEN draft_response = '{ERASED_DRAFT}' THEN NULL "
                "ELSE LENGTH(draft_response) END AS draft_characters, "
                f"{d.rule_list.format(column='violations')} AS rules, "
                f"{code} AS reason_code, "
                f"CASE WHEN {response} IS NOT NULL OR {tool_args} IS NOT NULL "
                "THEN 1 ELSE 0 END AS edited "
                f"FROM {t.reviews} WHERE decided_at >= ? AND decided_at < ? "
                "AND status IN ('approved', 'rejected', 'expired')"
            ),
            # A scalar subquery: each row's review is found by its primary key (a join
            # may hash the whole review table instead).
            escalations=d.sql(
                f"SELECT a.review_id, a.actor, a.at, (SELECT {escalated_rules} "
                f"FROM {t.reviews} AS r WHERE r.review_id = a.review_id) AS rules "
                f"FROM {t.audit} AS a WHERE a.event = 'escalated' AND a.at >= ? AND a.at < ?"
            ),
            qa=d.sql(
                f"SELECT at, payload FROM {t.audit} "
                f"WHERE event = '{QA_EVENT}' AND at >= ? AND at < ?"
            ),
        )


def decision_fact_from_row(d: Dialect, row: Row) -> DecisionFact | None:
    """A row of `OversightQueries.decisions` as its fact."""
    outcome = outcome_of(row["status"], edited=bool(row["edited"]))
    if outcome is None:
        return None
    chars = row["draft_characters"]
    code = row["reason_code"]
    return DecisionFact(
        review_id=row["review_id"],
        reviewer=row["reviewer"] or "",
        outcome=outcome,
        requested_at=d.read_time(row["requested_at"]),
        decided_at=d.read_time(row["decided_at"]),
        deadline=d.read_optional_time(row["deadline"]),
        draft_characters=None if chars is None else int(chars),
        rules=split_rules(row["rules"]),
        reason_code=None if code is None else str(code),
    )


def escalation_fact_from_row(d: Dialect, row: Row) -> EscalationFact:
    """A row of `OversightQueries.escalations` as its fact."""
    rules = split_rules(row["rules"])
    return EscalationFact(row["review_id"] or "", row["actor"], d.read_time(row["at"]), rules)


def split_rules(value: str | None) -> tuple[str, ...]:
    """The rule ids of a `Dialect.rule_list` value, each once, in order."""
    return tuple(dict.fromkeys(value.split("\x1f"))) if value else ()


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
