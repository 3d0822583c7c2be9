"""PostgreSQL review store: durable reviews and audit shared by any number of processes.

Needs the `postgres` extra (`pip install "hitl-compliance[postgres]"`). Every
store call is one SQL statement, so on the pool LangGraph's
`AsyncPostgresSaver` uses (`autocommit=True`, `dict_row`) it is one round trip
and its own transaction; on a pool without autocommit it runs in one explicit
transaction. The writes that read before they write are server-side PL/pgSQL
functions installed by `setup()` and called by `ServerSideWrites`
(`stores/_pgwrites.py`, which also says how they lock and seal).

This module is what any SQL backend writes: the pool's lifecycle, the
dialect, the migration steps, the one-statement primitives, the translation
of psycopg's errors, and the transaction primitive the shared writes of
`SqlStore` (`stores/_sqlwrites.py`) run on (a pool connection, one
transaction, the thread's advisory lock; rows read to change are locked
`FOR UPDATE`). The conformance suite runs the store both ways.

`setup()` creates the tables and functions and upgrades those written by an
older version in place, under a setup advisory lock: the
`<prefix>schema_version` row records which of the ordered migration steps
ran, and the missing ones run in one transaction. Payloads are stored as JSON
text, not `jsonb`: `jsonb` rewrites numbers (`1e16` comes back as an
integer), which would change what was hashed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn, TypeVar

from hitl_compliance._secrets import mask_dsn, scrub
from hitl_compliance._validate import INT64_MAX, INT64_MIN
from hitl_compliance.erasure import PersonalValue
from hitl_compliance.errors import ConfigurationError, InvalidInputError
from hitl_compliance.ledger import GENESIS, SealedHead, combined_head
from hitl_compliance.stores._seals import head_missing, seals_table
from hitl_compliance.stores._sql import (
    OPEN_SQL,
    ColumnTypes,
    Dialect,
    LedgerBackfill,
    Row,
    audit_head_table,
    audit_thread_index,
    aware,
    claimed_index,
    intents_table,
    open_and_pending_indexes,
    outbox_tables,
    overdue_index,
    oversight_indexes,
    review_rules_index,
    steps_to_run,
    store_error,
    undated_index,
    utc,
)
from hitl_compliance.stores._sqlassign import assignment_columns, assignment_tables
from hitl_compliance.stores._sqlerasure import personal_tables
from hitl_compliance.stores._sqlkinds import KindsReads, postgres_kinds_steps
from hitl_compliance.stores._sqlqa import qa_tables
from hitl_compliance.stores._sqlretention import retention_tables
from hitl_compliance.stores._sqlstops import stop_tables
from hitl_compliance.stores._sqlwrites import Body, LaneStatements

try:
    import psycopg
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "PostgresReviewStore needs psycopg and psycopg-pool: "
        'pip install "hitl-compliance[postgres]"'
    ) from exc

from hitl_compliance.stores._pgwrites import (
    DEFAULT_LANES,
    HEAD_MISSING_SQLSTATE,
    ServerSideWrites,
    Step,
    headless_append,
    schema_lanes,
    schema_v4,
    schema_v6,
    schema_v7,
    schema_v9,
)

__all__ = ["PostgresReviewStore"]

_T = TypeVar("_T")

_OPEN = OPEN_SQL
_MAX_LANES = 1024
# SQLSTATEs of a parameter PostgreSQL cannot use where it is bound (an int or a
# list where a text id belongs): the caller's argument, not the schema, is wrong.
_ARGUMENT_SQLSTATES = frozenset({"42883", "42804", "42P18", "42725"})


def _schema_v1(p: str) -> list[Step]:
    # The tables of the first release, unchanged: a database created then has
    # exactly these, so later steps ALTER instead of editing this list.
    # Ids compare as bytes (COLLATE "C") so ordering ties break exactly as in
    # Python and SQLite, whatever the database's locale.
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}reviews (
            review_id TEXT COLLATE "C" PRIMARY KEY,
            seq BIGINT GENERATED ALWAYS AS IDENTITY,
            thread_id TEXT COLLATE "C" NOT NULL,
            checkpoint_id TEXT COLLATE "C" NOT NULL,
            status TEXT NOT NULL,
            customer_message TEXT NOT NULL,
            draft_response TEXT NOT NULL,
            violations JSONB NOT NULL,
            requested_at TIMESTAMPTZ NOT NULL,
            requested_by TEXT,
            claim_id TEXT,
            claimed_at TIMESTAMPTZ,
            decided_at TIMESTAMPTZ,
            reviewer TEXT,
            decision JSONB,
            UNIQUE (thread_id, checkpoint_id)
        )""",
        *open_and_pending_indexes(p),
        f"CREATE INDEX IF NOT EXISTS {p}reviews_thread ON {p}reviews (thread_id, seq)",
        claimed_index(p),
        f"""CREATE TABLE IF NOT EXISTS {p}audit (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            thread_id TEXT COLLATE "C" NOT NULL,
            review_id TEXT COLLATE "C",
            checkpoint_id TEXT COLLATE "C",
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            payload JSONB NOT NULL,
            at TIMESTAMPTZ NOT NULL
        )""",
        audit_thread_index(p),
        *intents_table(_DIALECT, p),
    ]


def _schema_v2(p: str) -> list[Step]:
    # Approval votes on a review, and the rule side table behind list_pending(rule=).
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS votes JSONB NOT NULL DEFAULT '[]'::jsonb",
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS approvals_required INTEGER "
        "NOT NULL DEFAULT 1",
        # One row per distinct rule of a review's findings, while the review is
        # open (pending or claimed); complete() deletes them.
        f"""CREATE TABLE IF NOT EXISTS {p}review_rules (
            review_id TEXT COLLATE "C" NOT NULL,
            rule TEXT COLLATE "C" NOT NULL,
            requested_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (review_id, rule)
        )""",
        review_rules_index(p),
        # Open reviews written before this step get their rule rows too.
        f"INSERT INTO {p}review_rules (review_id, rule, requested_at) "
        f"SELECT DISTINCT r.review_id, v->>'rule', r.requested_at FROM {p}reviews AS r "
        f"CROSS JOIN LATERAL jsonb_array_elements(r.violations) AS v "
        f"WHERE r.status IN {_OPEN} ON CONFLICT DO NOTHING",
    ]


def _schema_v3(p: str) -> list[Step]:
    # SLA deadlines and priority, the hash-chained audit ledger and the hook outbox.
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS deadline TIMESTAMPTZ",
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS priority INTEGER NOT NULL DEFAULT 0",
        # list_overdue reads only overdue pending rows, earliest deadline first.
        overdue_index(p),
        # seq is now assigned by the append (head + 1) under the head lock.
        f"ALTER TABLE {p}audit ALTER COLUMN seq DROP IDENTITY IF EXISTS",
        # The hash covers the payload as written: keep its JSON text as is.
        f"ALTER TABLE {p}audit ALTER COLUMN payload TYPE TEXT USING payload::text",
        f"ALTER TABLE {p}audit ADD COLUMN IF NOT EXISTS prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN IF NOT EXISTS global_prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN IF NOT EXISTS hash TEXT NOT NULL DEFAULT ''",
        # The store-wide chain head: seq and hash of the last appended audit row
        # (seq 0 and GENESIS while there is none). Always exactly one row, the
        # one every append locks.
        audit_head_table(_DIALECT, p),
        # One row per hook call owed by an audit row (`seq`), written with it.
        *outbox_tables(_DIALECT, p),
        _backfill_ledger,
    ]


async def _backfill_ledger(cur: AsyncCursor[dict[str, Any]], p: str) -> None:
    """Seal the audit rows written before the ledger existed, in seq order, and set the head.

    Pages through the table, so memory holds one page plus one hash per thread.
    """
    backfill = LedgerBackfill(_DIALECT, p)
    while True:
        await cur.execute(backfill.select_page, backfill.page_params)
        rows = await cur.fetchall()
        if not rows:
            break
        await cur.executemany(backfill.update, backfill.seal_page(rows))
    await cur.execute(backfill.set_head, backfill.head)


def _schema_v5(p: str) -> list[Step]:
    # Hook leases: a caller claims an outbox row (owner, until when) before it
    # calls the hook, so no other caller makes the same call while it runs.
    return [
        f"ALTER TABLE {p}hook_outbox ADD COLUMN IF NOT EXISTS lease_owner TEXT",
        f"ALTER TABLE {p}hook_outbox ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ",
    ]


def _schema_v11(p: str) -> list[Step]:
    # Retention and legal hold: held threads, and the decided state kept before
    # retention deletes a thread's checkpoints. (Step 10 of the released order;
    # every statement is IF NOT EXISTS, so it is safe after any earlier step.)
    return [*retention_tables(_DIALECT, p)]


def _schema_v8(p: str) -> list[Step]:
    # The SLA adopts pending reviews without a deadline (a raw run's gate records
    # its pauses with none): list_undated reads only those, oldest first.
    return [undated_index(p)]


def _schema_seals(p: str) -> list[Step]:
    # Signed heads: the sealed heads table, and an append that refuses to run
    # (LedgerHeadMissingError) when the chain head row was deleted, instead of
    # rebuilding it from the last row and hiding a cut.
    return [seals_table(_DIALECT, p), headless_append(p)]


def _schema_personal(p: str) -> list[Step]:
    # Erasure: personal values of audit payloads, kept beside the chain by their
    # salted commitment's digest. IF NOT EXISTS: safe after any earlier step.
    return [*personal_tables(_DIALECT, p)]


def _schema_qa(p: str) -> list[Step]:
    # Second-line QA: sampled auto-delivered replies and their verdicts, apart from
    # the first-line reviews. IF NOT EXISTS: safe after any earlier step.
    return [*qa_tables(_DIALECT, p)]


def _schema_stops(p: str) -> list[Step]:
    # The stop switch: one row per stopped scope. IF NOT EXISTS: safe after any step.
    return [*stop_tables(_DIALECT, p)]


def _schema_assignment(p: str) -> list[Step]:
    # Assignment: the review row's assignee and why, the partial index that
    # pending(assigned_to=) reads, and one delegation row per delegator.
    return [*assignment_columns(p, if_not_exists=True), *assignment_tables(_DIALECT, p)]


def _schema_oversight(p: str) -> list[Step]:
    # Oversight reports read decided reviews by decided_at and audit rows by
    # (event, at): the window's rows only. IF NOT EXISTS: safe after any step.
    return [*oversight_indexes(p)]


def _schema_kinds(p: str) -> list[Step]:
    # pending(reviewer=) reads pending reviews by their findings' (rule, severity)
    # pairs: an immutable function of the row and a partial index on it.
    return [*postgres_kinds_steps(p)]


# Ordered migration steps: step i (1-based) brings the tables to schema version i.
# Append new steps; never edit or reorder released ones.
_MIGRATIONS: Sequence[Callable[[str], list[Step]]] = (
    _schema_v1,
    _schema_v2,
    _schema_v3,
    schema_v4,
    _schema_v5,
    schema_v6,
    schema_v7,
    _schema_v8,
    schema_v9,  # 9: ledger format per row (RFC 8785)
    _schema_v11,  # 10: retention and legal hold
    _schema_seals,  # 11: signed heads
    _schema_personal,  # 12: personal values beside the chain (erasure)
    schema_lanes,  # 13: ledger lanes (one head per lane, seq from a sequence)
    _schema_qa,  # 14: second-line QA reviews (QaSampling)
    _schema_stops,  # 15: the stop switch
    _schema_assignment,  # 16: assignment and delegation
    _schema_oversight,  # 17: oversight report ranges (decided_at; audit event, at)
    _schema_kinds,  # 18: pending reviews by finding kinds (pending(reviewer=))
)
SCHEMA_VERSION = len(_MIGRATIONS)


def _is_argument_error(exc: psycopg.ProgrammingError) -> bool:
    """Whether psycopg could not adapt a parameter, or the server not use its type."""
    # Client-side adaptation errors ("cannot adapt type 'dict'") carry no SQLSTATE.
    return exc.sqlstate is None or exc.sqlstate in _ARGUMENT_SQLSTATES


def _read_jsonb(value: Any) -> Any:
    """A jsonb value as written: an int beyond 64 bits back to the float it was.

    jsonb keeps numbers as `numeric` and prints an integral one without its
    fraction, so `1e21` comes back as the int 10**21, which no checkpoint keeps.
    The stores refuse ints beyond 64 bits, so such an int was a float.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else float(value)
    if isinstance(value, dict):
        return {key: _read_jsonb(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_read_jsonb(child) for child in value]
    return value


_DIALECT = Dialect(
    placeholder="%s",
    rule_join="JOIN",
    time=aware,
    no_limit=None,
    read_time=utc,
    read_json=_read_jsonb,  # JSONB columns arrive parsed
    same="IS NOT DISTINCT FROM",
    latest="seq",
    types=ColumnTypes(id='TEXT COLLATE "C"', time="TIMESTAMPTZ", seq="BIGINT"),
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    json_text="({column}::jsonb ->> '{key}')",
    rule_list="(SELECT string_agg(v ->> 'rule', chr(31)) FROM jsonb_array_elements({column}) AS v)",
)


class _PgTx:
    """The statements of an open transaction on one pool connection's cursor."""

    def __init__(self, cur: AsyncCursor[dict[str, Any]]) -> None:
        self._cur = cur

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        await self._cur.execute(sql, params)
        return await self._cur.fetchone() if self._cur.description is not None else None

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        await self._cur.execute(sql, params)
        return list(await self._cur.fetchall())

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._cur.execute(sql, params)
        return self._cur.rowcount

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._cur.executemany(sql, rows)


class PostgresReviewStore(ServerSideWrites, KindsReads):
    """A [`ReviewStore`][hitl_compliance.ReviewStore] in PostgreSQL tables.

    Give it a `psycopg_pool.AsyncConnectionPool` you own (it is never closed
    by the store; LangGraph's `AsyncPostgresSaver` pool is fine), or let
    [`from_conn_string`][hitl_compliance.stores.postgres.PostgresReviewStore.from_conn_string]
    create a pool the store owns. Tables and the store's functions live in
    the connection's first `search_path` schema; add
    `?options=-csearch_path%3Dmyschema` to the DSN to isolate them.

    Args:
        pool: the connection pool; any `autocommit` setting and row factory work.
        table_prefix: prefix of the table names (`hitl_reviews`, `hitl_audit`,
            `hitl_audit_lanes`, `hitl_audit_config`, `hitl_hook_outbox`, `hitl_intents`,
            `hitl_review_rules`, `hitl_holds`, `hitl_evidence` and
            `hitl_schema_version` by default) and of
            the store's functions (`hitl_open_review`, ...).

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    dialect = _DIALECT
    kinds_expr = "{p}finding_kinds(violations)"
    kinds_nullable = False  # the function returns '[]' for no findings, never NULL

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        table_prefix: str = "hitl_",
        ledger_lanes: int = DEFAULT_LANES,
    ) -> None:
        super().__init__(table_prefix=table_prefix)
        self._personal_many = (
            f"INSERT INTO {self.table_prefix}personal (digest, thread_id, subject, salt, value) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (digest) DO NOTHING"
        )
        if (
            isinstance(ledger_lanes, bool)
            or not isinstance(ledger_lanes, int)
            or not (1 <= ledger_lanes <= _MAX_LANES)
        ):
            raise ConfigurationError(
                f"ledger_lanes is an int from 1 to {_MAX_LANES} (the audit ledger's "
                f"independent chains), got {ledger_lanes!r}."
            )
        self._ledger_lanes = ledger_lanes
        self._lane_count = ledger_lanes
        self._lane_sql = LaneStatements.of(self.dialect, table_prefix)
        self._audit_lanes = f"{table_prefix}audit_lanes"
        self._audit_config = f"{table_prefix}audit_config"
        self._pool = pool
        self._owns_pool = False
        self._open_timeout = 30.0

    @classmethod
    def from_conn_string(
        cls,
        conninfo: str,
        *,
        table_prefix: str = "hitl_",
        max_size: int = 10,
        open_timeout: float = 30.0,
        ledger_lanes: int = DEFAULT_LANES,
    ) -> PostgresReviewStore:
        """A store that owns its own pool: opened by `setup()`, closed by `aclose()`.

        Example:
            ```python
            async with PostgresReviewStore.from_conn_string(dsn) as store:
                print(await store.list_pending())
            ```

        Args:
            conninfo: a libpq URL or key/value string.
            table_prefix: prefix of the table names.
            max_size: most connections the pool opens.
            open_timeout: seconds `setup()` waits for the first connection.
            ledger_lanes: the audit ledger's lanes when `setup()` creates the
                tables (or adds lanes to an older ledger); kept from then on.
        """
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            conninfo,
            open=False,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        store = cls(pool, table_prefix=table_prefix, ledger_lanes=ledger_lanes)
        store._owns_pool = True
        store._open_timeout = open_timeout
        return store

    def __repr__(self) -> str:
        return f"PostgresReviewStore(<pool {self._pool.name}>, table_prefix={self.table_prefix!r})"

    # -- lifecycle ---------------------------------------------------------------

    async def setup(self) -> None:
        """Create or upgrade the tables; idempotent and safe to run concurrently.

        Tables written by an older version are migrated in place, in one
        transaction, keeping their rows. Opens the pool first when the store owns it.

        Raises:
            ConfigurationError: the server cannot be reached, the DDL fails
                (for example the `search_path` schema does not exist), or the
                tables were written by a newer version.
        """
        # A pool may take a function returning the conninfo; then there is no text to check.
        conninfo = self._pool.conninfo if isinstance(self._pool.conninfo, str) else ""
        if conninfo and self._owns_pool and self._pool.closed:
            try:
                conninfo_to_dict(conninfo)
            except psycopg.Error as exc:
                # Refused before the pool opens: the pool would log libpq's parse
                # error, which quotes the DSN around the fault, on every retry.
                raise ConfigurationError(
                    f"Malformed PostgreSQL connection string {mask_dsn(conninfo)!r}: "
                    f"{scrub(str(exc).strip(), conninfo)}. Use postgresql://user@host/dbname "
                    "or libpq's key/value form (quote values with spaces: password='a b')."
                ) from None
        try:
            if self._owns_pool and self._pool.closed:
                await self._pool.open(wait=True, timeout=self._open_timeout)
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                # CREATE ... IF NOT EXISTS is not safe against itself running in
                # two sessions at once; the lock makes concurrent setups queue.
                await cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"hitl_compliance.setup:{self.table_prefix}",),
                )
                await self._migrate(cur)
                await self._read_lanes(cur)
        except (psycopg.Error, PoolTimeout) as exc:
            reason = scrub(str(exc), conninfo)
            error = ConfigurationError(
                f"Cannot create the review tables ({self._reviews}, ...) in PostgreSQL at "
                f"{mask_dsn(conninfo)}: {reason}. Check the server is reachable and the "
                "search_path schema exists."
            )
            # Chain the driver's error for its diagnostics, unless its text held a secret.
            raise error from (exc if reason == str(exc) else None)

    async def _migrate(self, cur: AsyncCursor[dict[str, Any]]) -> None:
        """Run the migration steps the tables miss; the caller holds the setup lock."""
        # The kinds function and index exist once their step has run (tests run fewer).
        self.kinds_ready = _schema_kinds in _MIGRATIONS
        await cur.execute(self._sql.create_schema_version)
        await cur.execute(self._sql.schema_version)
        steps = steps_to_run(await cur.fetchone(), _MIGRATIONS, where=f"({self._reviews}, ...)")
        if not steps:
            return
        for step in steps:
            for statement in step(self.table_prefix):
                if isinstance(statement, str):
                    await cur.execute(statement)
                else:
                    await statement(cur, self.table_prefix)
        if schema_lanes in steps:
            await self._persist_lanes(cur)
        await cur.execute(self._sql.set_schema_version, (SCHEMA_VERSION,))

    async def _read_lanes(self, cur: AsyncCursor[dict[str, Any]]) -> None:
        """Use the lanes persisted at creation; one chain (`audit_head`) on older tables.

        (Older tables exist only while a test builds a database of an earlier version.)
        """
        await cur.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (self._audit_config,))
        present = await cur.fetchone()
        found = None
        if present is not None and present["present"]:
            await cur.execute(f"SELECT lanes FROM {self._audit_config} WHERE id = 1")
            found = await cur.fetchone()
        if found is None:
            self._lane_sql, self._lane_count = None, 1
        else:
            self._lane_sql = LaneStatements.of(self.dialect, self.table_prefix)
            self._lane_count = int(found["lanes"])

    async def _persist_lanes(self, cur: AsyncCursor[dict[str, Any]]) -> None:
        """Write the lane count once, with its lanes' empty heads (never again: a
        deleted lane head must stay missing, and the thread-to-lane map fixed)."""
        await cur.execute(
            f"INSERT INTO {self._audit_config} (id, lanes) VALUES (1, %s) "
            "ON CONFLICT (id) DO NOTHING RETURNING lanes",
            (self._ledger_lanes,),
        )
        if await cur.fetchone() is None:
            return
        await cur.execute(
            f"INSERT INTO {self._audit_lanes} (lane, seq, hash) "
            "SELECT g, 0, %s FROM generate_series(1, %s) AS g ON CONFLICT (lane) DO NOTHING",
            (GENESIS, self._ledger_lanes - 1),
        )

    # -- ledger lanes --------------------------------------------------------------

    async def audit_lanes(self) -> tuple[tuple[int, int, str], ...] | None:
        """Every lane's head `(lane, seq, hash)`, read in one snapshot; None if one is missing.

        On tables without lanes (an older schema), the one chain head as lane 0.

        A lane head row deleted outside hitl-compliance is never rebuilt: the
        ledger then has no head (verification reports it, appends to that lane
        raise LedgerHeadMissingError).
        """
        if self._lane_sql is None:
            return await super().audit_lanes()
        rows = await self._fetch_all(
            f"SELECT (SELECT c.lanes FROM {self._audit_config} AS c WHERE c.id = 1) AS n, "
            f"h.lane, h.seq, h.hash FROM {self._audit_lanes} AS h ORDER BY h.lane",
            (),
        )
        lanes = tuple((int(r["lane"]), int(r["seq"]), str(r["hash"])) for r in rows)
        count = int(rows[0]["n"]) if rows and rows[0]["n"] is not None else self._lane_count
        if [lane for lane, _, _ in lanes] != list(range(count)):
            return None
        return lanes

    async def audit_head(self) -> tuple[int, str] | None:
        """The ledger head: [`combined_head`][hitl_compliance.ledger.combined_head] of the lanes.

        None before the first row, or when a lane head row is missing.
        """
        if self._lane_sql is None:
            return await super().audit_head()
        lanes = await self.audit_lanes()
        return None if lanes is None else combined_head(lanes)

    async def seals(self) -> list[SealedHead]:
        """Every sealed head in the seals table (with its lane heads), by seq."""
        if self._lane_sql is None:
            return await super().seals()
        rows = await self._fetch_all(
            f"SELECT seq, key_id, hash, sealed_at, signature, lanes FROM "
            f"{self.table_prefix}audit_seals ORDER BY seq, key_id",
            (),
        )
        return [
            SealedHead.from_record(
                {
                    "seq": int(r["seq"]),
                    "hash": r["hash"],
                    "sealed_at": self.dialect.read_time(r["sealed_at"]).isoformat(),
                    "key_id": r["key_id"],
                    "signature": r["signature"],
                    "lanes": json.loads(r["lanes"]) if r["lanes"] else [],
                }
            )
            for r in rows
        ]

    async def _add_seal(self, head: SealedHead) -> None:
        """Store one sealed head with its lane heads (once per seq and key)."""
        if self._lane_sql is None:
            await super()._add_seal(head)
            return
        lanes = json.dumps([list(h) for h in head.lanes]) if head.lanes else None
        await self._execute(
            f"INSERT INTO {self.table_prefix}audit_seals (seq, key_id, hash, sealed_at, "
            "signature, lanes) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (seq, key_id) DO NOTHING",
            (head.seq, head.key_id, head.hash, head.sealed_at, head.signature, lanes),
        )

    async def aclose(self) -> None:
        """Close the pool if the store owns it (a pool passed in is left open); idempotent."""
        if self._owns_pool and not self._pool.closed:
            await self._pool.close()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncCursor[dict[str, Any]]]:
        """A cursor for one statement, which is atomic on its own.

        On an autocommit connection the statement is its own transaction: one
        round trip. Otherwise it runs in an explicit transaction, so the pool
        gets the connection back idle.
        """
        with self._driver_errors():
            async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                if conn.autocommit:
                    yield cur
                else:
                    async with conn.transaction():
                        yield cur

    async def put_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep these values (see `PersonalStore`): one statement, one round trip."""
        if values:
            await self._execute(self._personal_many, self._personal_arrays(values))

    def _personal_arrays(self, values: Sequence[PersonalValue]) -> list[list[Any]]:
        """`_personal_many`'s parameters: one array per column."""
        columns: list[list[Any]] = [[], [], [], [], []]
        for row in self._params(values):
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        return columns

    async def _transaction(self, body: Body[_T], *, lock: str | None = None) -> _T:
        """`body` in one transaction on one pool connection (the shared writes' primitive).

        With `lock`, the transaction first takes the advisory lock the store's
        write functions take for that thread, so both kinds of write queue on
        it. The store's own writes are its functions (one round trip each);
        this runs the shared ones of `SqlStore`, which a test runs against
        the same conformance suite.
        """
        with self._driver_errors():
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                if lock is not None:
                    await cur.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                        (self._lock_ns, lock),
                    )
                staged = self._take_staged()
                try:
                    if staged:
                        await cur.execute(self._personal_many, self._personal_arrays(staged))
                    return await body(_PgTx(cur))
                except BaseException:
                    self._restage(staged)
                    raise

    @contextmanager
    def _driver_errors(self) -> Iterator[None]:
        """Translate psycopg's exceptions into the library's tree: the store's one boundary.

        Every call after `setup()` runs inside it once (`_read`). The statement
        failed as a whole (its own or a rolled-back transaction), so nothing
        changed: an argument the server refused is the caller's
        `InvalidInputError`, any other failure (connection, pool timeout, lock,
        constraint) a `StoreError`, its text scrubbed of the DSN's secrets; no
        psycopg exception crosses the ReviewStore Protocol.
        """
        try:
            yield
        except psycopg.Error as exc:
            self._raise_translated(exc)
        except PoolTimeout as exc:
            self._raise_store_error(exc)

    def _raise_translated(self, exc: psycopg.Error) -> NoReturn:
        """Raise the library's error for psycopg's `exc` (see `_driver_errors`)."""
        if exc.sqlstate == HEAD_MISSING_SQLSTATE:
            raise head_missing(self._audit_lanes, backend="postgres") from None
        argument = isinstance(exc, psycopg.DataError) or (
            isinstance(exc, psycopg.ProgrammingError) and _is_argument_error(exc)
        )
        if not argument:
            self._raise_store_error(exc)
        raise InvalidInputError(
            f"PostgreSQL refused an argument of this store call: {exc}. Pass ids "
            "and text as str without NUL characters, and JSON without NaN."
        ) from exc

    def _raise_store_error(self, exc: BaseException) -> NoReturn:
        conninfo = self._pool.conninfo if isinstance(self._pool.conninfo, str) else ""
        reason = scrub(str(exc), conninfo) if conninfo else str(exc)
        # Chain the driver's error for its diagnostics, unless its text held a secret.
        raise store_error("PostgreSQL", reason, backend="postgres") from (
            exc if reason == str(exc) else None
        )

    async def _fetch_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run one read statement (its own transaction); all its rows."""
        async with self._read() as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> Row | None:
        """Run one read statement (its own transaction); its first row, or None."""
        return await self._one(sql, params)

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement, atomic on its own; the number of rows it changed."""
        async with self._read() as cur:
            await cur.execute(sql, params)
            return cur.rowcount

    async def _fetch_alls(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        """Several read statements in one pipeline: one round trip."""
        async with self._read() as cur:
            conn = cur.connection
            async with conn.pipeline():
                cursors = []
                for sql, params in queries:
                    each = conn.cursor(row_factory=dict_row)
                    await each.execute(sql, params)
                    cursors.append(each)
            return [list(await each.fetchall()) for each in cursors]

    async def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        """Run one statement and return its first row (None when it returns none).

        Staged personal values (`stage_personal`) go first, in the same round trip.
        """
        staged = self._take_staged()
        try:
            async with self._read() as cur:
                if staged:
                    async with cur.connection.pipeline():
                        await cur.connection.execute(
                            self._personal_many, self._personal_arrays(staged)
                        )
                        await cur.execute(sql, params)
                else:
                    await cur.execute(sql, params)
                return await cur.fetchone() if cur.description is not None else None
        except BaseException:
            self._restage(staged)
            raise
