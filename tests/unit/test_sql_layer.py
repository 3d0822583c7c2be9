"""The shared SQL layer (`stores._sql`): dialects, names, values, mappers, migrations, errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hitl_compliance.errors import ConfigurationError, StoreError
from hitl_compliance.ledger import GENESIS, row_hash, verify_rows
from hitl_compliance.models import ReviewRecord, Vote, sha256_text
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import _sql
from hitl_compliance.stores._sql import ColumnTypes, Dialect, Statements, Tables

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def text_time(value: datetime) -> str:
    """The SQLite store's time encoding (aware, UTC ISO-8601 text)."""
    return _sql.aware(value).astimezone(timezone.utc).isoformat(timespec="microseconds")


# The two shapes a dialect takes: times and JSON as text, or as driver values.
TEXT = Dialect(
    placeholder="?",
    rule_join="CROSS JOIN",
    time=text_time,
    no_limit=-1,
    read_time=datetime.fromisoformat,
    read_json=json.loads,
    same="IS",
    latest="rowid",
    types=ColumnTypes(id="TEXT", time="TEXT", seq="INTEGER"),
)
NATIVE = Dialect(
    placeholder="%s",
    rule_join="JOIN",
    time=_sql.aware,
    no_limit=None,
    read_time=_sql.utc,
    read_json=lambda value: value,
    same="IS NOT DISTINCT FROM",
    latest="seq",
    types=ColumnTypes(id='TEXT COLLATE "C"', time="TIMESTAMPTZ", seq="BIGINT"),
)


def review(**changes: Any) -> ReviewRecord:
    """A pending review with one finding, one vote and a deadline."""
    draft = "We guarantee 9% returns."
    base = ReviewRecord(
        review_id="r1",
        thread_id="t1",
        checkpoint_id="c1",
        status="pending",
        customer_message="Should I invest?",
        draft_response=draft,
        violations=[
            RuleResult("guarantee", "review", "promises returns", ("guarantee",)),
            RuleResult("guarantee", "review", "promises again", ("9%",)),
        ],
        requested_at=T0,
        votes=[Vote(reviewer="alice", text_sha256=sha256_text(draft), at=T0)],
        approvals_required=2,
        deadline=T0 + timedelta(hours=1),
    )
    return base.model_copy(update=changes)


def as_row(d: Dialect, record: ReviewRecord) -> dict[str, Any]:
    """The row a driver returns for `record` as written by `review_values`."""
    values = dict(zip(_sql.REVIEW_COLUMNS.split(", "), _sql.review_values(d, record), strict=True))
    if d is NATIVE:  # JSONB comes back parsed
        for column in ("violations", "decision", "votes"):
            if values[column] is not None:
                values[column] = json.loads(values[column])
    return values


class TestDialect:
    def test_placeholders(self) -> None:
        """Statements written with `?` come out in the dialect's placeholder."""
        assert TEXT.sql("a = ? AND b = ?") == "a = ? AND b = ?"
        assert NATIVE.sql("a = ? AND b = ?") == "a = %s AND b = %s"

    def test_limit(self) -> None:
        """No limit is the dialect's spelling of "all rows"; a number stays a number."""
        assert (TEXT.limit(None), NATIVE.limit(None), NATIVE.limit(3)) == (-1, None, 3)

    def test_naive_times_refused(self) -> None:
        """A naive datetime is refused before it reaches a driver."""
        with pytest.raises(ValueError, match="timezone-aware"):
            _sql.aware(datetime(2026, 1, 1))


class TestNames:
    def test_tables_follow_the_prefix(self) -> None:
        """Every table name carries the prefix."""
        tables = Tables.of("x_")
        assert (tables.reviews, tables.outbox, tables.audit_head) == (
            "x_reviews",
            "x_hook_outbox",
            "x_audit_head",
        )

    @pytest.mark.parametrize("prefix", ["1x", "a-b", "a b", "x" * 42, ""])
    def test_unsafe_prefix_refused(self, prefix: str) -> None:
        """A prefix that is not a plain identifier is a ConfigurationError (it is spliced)."""
        with pytest.raises(ConfigurationError, match="table_prefix"):
            Tables.of(prefix)

    def test_statements_in_each_dialect(self) -> None:
        """The shared statements use the dialect's placeholder, null-safe test and order."""
        text = Statements.of(TEXT, Tables.of("h_"))
        native = Statements.of(NATIVE, Tables.of("h_"))
        assert text.latest_review.endswith("ORDER BY rowid DESC LIMIT 1")
        assert "thread_id = %s" in native.latest_review
        assert native.latest_review.endswith("ORDER BY seq DESC LIMIT 1")
        assert "lease_owner IS ?" in text.finish_delivered
        assert "lease_owner IS NOT DISTINCT FROM %s" in native.finish_failed
        assert "lease_owner = NULL" in native.finish_failed
        assert "lease_owner = NULL" not in native.finish_delivered
        assert _sql.OPEN_SQL == "('pending', 'claimed')"


class TestReviewRows:
    @pytest.mark.parametrize("d", [TEXT, NATIVE], ids=["text", "native"])
    def test_round_trip(self, d: Dialect) -> None:
        """A review written with `review_values` reads back equal through `review_from_row`."""
        for record in (review(), review(status="claimed", claim_id="k", claimed_at=T0)):
            assert _sql.review_from_row(d, as_row(d, record)) == record

    def test_values_check_times_first(self) -> None:
        """A naive time in a review is refused while building its values."""
        with pytest.raises(ValueError, match="timezone-aware"):
            _sql.review_values(TEXT, review(deadline=datetime(2026, 1, 2)))

    def test_indexed_rules(self) -> None:
        """An open review indexes each rule once; a final one indexes none."""
        assert _sql.indexed_rules(review()) == ["guarantee"]
        assert _sql.indexed_rules(review(status="approved")) == []


class TestMigrations:
    def test_steps_to_run(self) -> None:
        """Tables at version n run the steps after n; none when current."""
        steps = [lambda p: [f"{p}1"], lambda p: [f"{p}2"], lambda p: [f"{p}3"]]
        assert _sql.steps_to_run(None, steps, where="t") == steps
        assert _sql.steps_to_run({"version": 2}, steps, where="t") == steps[2:]
        assert _sql.steps_to_run({"version": 3}, steps, where="t") == []

    def test_newer_schema_refused(self) -> None:
        """Tables written by a newer version are a ConfigurationError naming both versions."""
        with pytest.raises(ConfigurationError, match=r"schema version 4, newer .* \(3\)"):
            _sql.steps_to_run({"version": 4}, [lambda p: []] * 3, where="in x.db")

    def test_shared_ddl_uses_the_dialect_types(self) -> None:
        """The shared DDL spells ids, times and sequence numbers in each dialect's types."""
        assert 'thread_id TEXT COLLATE "C" PRIMARY KEY' in _sql.intents_table(NATIVE, "h_")[0]
        assert "started_at TEXT NOT NULL" in _sql.intents_table(TEXT, "h_")[0]
        assert "seq BIGINT NOT NULL" in _sql.audit_head_table(NATIVE, "h_")

    def test_ledger_backfill_chains_rows(self) -> None:
        """The backfill seals rows in seq order, per thread and store-wide, across pages."""
        backfill = _sql.LedgerBackfill(TEXT, "h_")
        rows = [
            {
                "seq": seq,
                "thread_id": thread,
                "review_id": None,
                "checkpoint_id": None,
                "event": "paused",
                "actor": "system",
                "payload": "{}",
                "at": text_time(T0),
            }
            for seq, thread in ((1, "a"), (2, "b"), (3, "a"))
        ]
        assert backfill.page_params == (0, _sql.LedgerBackfill.PAGE)
        updates = backfill.seal_page(rows[:2]) + backfill.seal_page(rows[2:])
        sealed: list[dict[str, Any]] = [
            # As read back: the payload parsed from the JSON text stored.
            {**row, "payload": {}, "prev_hash": u[0], "global_prev_hash": u[1], "hash": u[2]}
            for row, u in zip(rows, updates, strict=True)
        ]
        assert verify_rows(sealed).ok
        assert sealed[0]["prev_hash"] == GENESIS
        assert sealed[2]["prev_hash"] == sealed[0]["hash"]
        assert backfill.head == (3, row_hash(sealed[2]))


class TestStoreError:
    def test_one_message_and_backend(self) -> None:
        """A driver failure becomes a StoreError naming the store and saying nothing changed."""
        error = _sql.store_error("SQLite", "database is locked", backend="sqlite")
        assert isinstance(error, StoreError)
        assert error.backend == "sqlite"
        assert "database is locked" in str(error)
        assert "changed nothing" in str(error)
