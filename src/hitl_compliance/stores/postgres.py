"""PostgreSQL review store: durable reviews and audit shared by any number of processes.

Needs the `postgres` extra (`pip install "hitl-compliance[postgres]"`). Every
change runs in one explicit transaction, so the store works on the pool
LangGraph's `AsyncPostgresSaver` uses (`autocommit=True`, `dict_row`) as well
as on an ordinary pool. Turn and review changes of one thread are serialised
by a transaction-scoped advisory lock, which keeps "is the thread free? then
take it" race-free across processes; `claim` and `vote` lock the review row
(`SELECT ... FOR UPDATE`) before they check it.

`setup()` creates the tables and upgrades tables written by an older version
in place, under a setup advisory lock: the `<prefix>schema_version` row records
which of the ordered migration steps ran, and the missing ones run in one
transaction.

Audit rows form the tamper-evident ledger of [`ledger`][hitl_compliance.ledger].
Each append locks the single chain-head row (`<prefix>audit_head`, `SELECT ...
FOR UPDATE`), reads the thread's last row, seals the new row with
[`seal`][hitl_compliance.models.seal] at `seq = head + 1` and moves the head in
the same transaction. That serialises audit appends store-wide (the price of
one global chain), so every append is the last statement of its transaction
and holds the head lock for three short statements. Hook calls owed by an
audit row go to `<prefix>hook_outbox` in the same statement as the row.
Payloads are stored as JSON text, not `jsonb`: `jsonb` rewrites numbers
(`1e16` comes back as an integer), which would change what was hashed.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    DuplicateVoteError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.ledger import GENESIS
from hitl_compliance.models import AuditRecord, HookDelivery, ReviewRecord, Vote, seal
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores.base import HOOK_FOR_EVENT, FinalStatus, TurnRecord, paused_payload

try:
    import psycopg
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "PostgresReviewStore needs psycopg and psycopg-pool: "
        'pip install "hitl-compliance[postgres]"'
    ) from exc

__all__ = ["PostgresReviewStore"]

logger = logging.getLogger("hitl_compliance")

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_OPEN = "('pending', 'claimed')"
_BACKFILL_PAGE = 1000

# A migration step is SQL statements and, where SQL alone cannot do it, Python
# steps run on the cursor (inside the migration's transaction) with the prefix.
_PyStep = Callable[["AsyncCursor[dict[str, Any]]", str], Awaitable[None]]
_Step = str | _PyStep


def _schema_v1(p: str) -> list[_Step]:
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
        # At most one open review per thread: the database, not only the code, says so.
        f"CREATE UNIQUE INDEX IF NOT EXISTS {p}reviews_one_open "
        f"ON {p}reviews (thread_id) WHERE status IN {_OPEN}",
        # list_pending reads only pending rows, in order, whatever the history size.
        f"CREATE INDEX IF NOT EXISTS {p}reviews_pending "
        f"ON {p}reviews (requested_at, review_id) WHERE status = 'pending'",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_thread ON {p}reviews (thread_id, seq)",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_claimed "
        f"ON {p}reviews (claimed_at) WHERE status = 'claimed'",
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
        f"CREATE INDEX IF NOT EXISTS {p}audit_thread ON {p}audit (thread_id, seq)",
        f"""CREATE TABLE IF NOT EXISTS {p}intents (
            thread_id TEXT COLLATE "C" PRIMARY KEY,
            owner TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}intents_started ON {p}intents (started_at)",
    ]


def _schema_v2(p: str) -> list[_Step]:
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
        f"CREATE INDEX IF NOT EXISTS {p}review_rules_pending "
        f"ON {p}review_rules (rule, requested_at, review_id)",
        # Open reviews written before this step get their rule rows too.
        f"INSERT INTO {p}review_rules (review_id, rule, requested_at) "
        f"SELECT DISTINCT r.review_id, v->>'rule', r.requested_at FROM {p}reviews AS r "
        f"CROSS JOIN LATERAL jsonb_array_elements(r.violations) AS v "
        f"WHERE r.status IN {_OPEN} ON CONFLICT DO NOTHING",
    ]


def _schema_v3(p: str) -> list[_Step]:
    # SLA deadlines and priority, the hash-chained audit ledger and the hook outbox.
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS deadline TIMESTAMPTZ",
        f"ALTER TABLE {p}reviews ADD COLUMN IF NOT EXISTS priority INTEGER NOT NULL DEFAULT 0",
        # list_overdue reads only overdue pending rows, earliest deadline first.
        f"CREATE INDEX IF NOT EXISTS {p}reviews_overdue ON {p}reviews (deadline, review_id) "
        "WHERE status = 'pending' AND deadline IS NOT NULL",
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
        f"""CREATE TABLE IF NOT EXISTS {p}audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL
        )""",
        # One row per hook call owed by an audit row (`seq`), written with it.
        f"""CREATE TABLE IF NOT EXISTS {p}hook_outbox (
            delivery_id TEXT COLLATE "C" PRIMARY KEY,
            seq BIGINT NOT NULL,
            thread_id TEXT COLLATE "C" NOT NULL,
            hook TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'delivered')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            attempted_at TIMESTAMPTZ
        )""",
        # pending_hooks reads only undelivered rows, store-wide or of one thread.
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_undelivered "
        f"ON {p}hook_outbox (seq) WHERE status <> 'delivered'",
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_thread "
        f"ON {p}hook_outbox (thread_id, seq) WHERE status <> 'delivered'",
        _backfill_ledger,
    ]


async def _backfill_ledger(cur: AsyncCursor[dict[str, Any]], p: str) -> None:
    """Seal the audit rows written before the ledger existed, in seq order, and set the head.

    Pages through the table, so memory holds one page plus one hash per thread.
    """
    thread_prev: dict[str, str] = {}
    head_seq, head_hash = 0, GENESIS
    while True:
        await cur.execute(
            f"SELECT * FROM {p}audit WHERE seq > %s ORDER BY seq LIMIT %s",
            (head_seq, _BACKFILL_PAGE),
        )
        rows = await cur.fetchall()
        if not rows:
            break
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
                at=row["at"],
                prev_hash=thread_prev.get(row["thread_id"], GENESIS),
                global_prev_hash=head_hash,
            )
            updates.append((record.prev_hash, record.global_prev_hash, record.hash, record.seq))
            thread_prev[record.thread_id] = record.hash
            head_seq, head_hash = record.seq, record.hash
        await cur.executemany(
            f"UPDATE {p}audit SET prev_hash = %s, global_prev_hash = %s, hash = %s WHERE seq = %s",
            updates,
        )
    await cur.execute(
        f"INSERT INTO {p}audit_head (id, seq, hash) VALUES (1, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (head_seq, head_hash),
    )


# Ordered migration steps: step i (1-based) brings the tables to schema version i.
# Append new steps; never edit or reorder released ones.
_MIGRATIONS: Sequence[Callable[[str], list[_Step]]] = (_schema_v1, _schema_v2, _schema_v3)
SCHEMA_VERSION = len(_MIGRATIONS)


def _check_table_prefix(table_prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(table_prefix):
        raise ConfigurationError(
            f"table_prefix must be letters, digits and '_' (not starting with a digit, "
            f"at most 41 characters), got {table_prefix!r}."
        )
    return table_prefix


def _aware(value: datetime) -> datetime:
    # A naive datetime would be read in the session's TimeZone: refuse to guess.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"Review stores need timezone-aware datetimes, got naive {value!r}.")
    return value


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def _dumps(value: Any) -> str:
    # Serialised before the transaction starts, so a bad payload changes nothing.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _review(row: Mapping[str, Any]) -> ReviewRecord:
    return ReviewRecord(
        review_id=row["review_id"],
        thread_id=row["thread_id"],
        checkpoint_id=row["checkpoint_id"],
        status=row["status"],
        customer_message=row["customer_message"],
        draft_response=row["draft_response"],
        violations=[RuleResult.from_dict(v) for v in row["violations"]],
        requested_at=row["requested_at"].astimezone(timezone.utc),
        requested_by=row["requested_by"],
        claim_id=row["claim_id"],
        claimed_at=_utc(row["claimed_at"]),
        decided_at=_utc(row["decided_at"]),
        reviewer=row["reviewer"],
        decision=row["decision"],
        votes=[Vote.model_validate(v) for v in row["votes"]],
        approvals_required=row["approvals_required"],
        deadline=_utc(row["deadline"]),
        priority=row["priority"],
    )


def _audit(row: Mapping[str, Any]) -> AuditRecord:
    # As stored: never re-sealed, so an edited row keeps its (now wrong) hash.
    return AuditRecord(
        seq=row["seq"],
        thread_id=row["thread_id"],
        review_id=row["review_id"],
        checkpoint_id=row["checkpoint_id"],
        event=row["event"],
        actor=row["actor"],
        payload=json.loads(row["payload"]),
        at=row["at"].astimezone(timezone.utc),
        prev_hash=row["prev_hash"],
        global_prev_hash=row["global_prev_hash"],
        hash=row["hash"],
    )


def _delivery(row: Mapping[str, Any]) -> HookDelivery:
    """An outbox row joined with its audit row (outbox columns prefixed `o_`)."""
    return HookDelivery(
        delivery_id=row["o_delivery_id"],
        hook=row["o_hook"],
        status=row["o_status"],
        attempts=row["o_attempts"],
        last_error=row["o_last_error"],
        created_at=row["o_created_at"].astimezone(timezone.utc),
        record=_audit(row),
    )


class PostgresReviewStore:
    """A [`ReviewStore`][hitl_compliance.ReviewStore] in PostgreSQL tables.

    Give it a `psycopg_pool.AsyncConnectionPool` you own (it is never closed
    by the store; LangGraph's `AsyncPostgresSaver` pool is fine), or let
    [`from_conn_string`][hitl_compliance.stores.postgres.PostgresReviewStore.from_conn_string]
    create a pool the store owns. Tables live in the connection's first
    `search_path` schema; add `?options=-csearch_path%3Dmyschema` to the DSN
    to isolate them.

    Args:
        pool: the connection pool; any `autocommit` setting and row factory work.
        table_prefix: prefix of the table names (`hitl_reviews`, `hitl_audit`,
            `hitl_audit_head`, `hitl_hook_outbox`, `hitl_intents`,
            `hitl_review_rules` and `hitl_schema_version` by default).

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], *, table_prefix: str = "hitl_") -> None:
        self.table_prefix = _check_table_prefix(table_prefix)
        self._pool = pool
        self._owns_pool = False
        self._open_timeout = 30.0
        p = table_prefix
        self._reviews = f"{p}reviews"
        self._audit = f"{p}audit"
        self._intents = f"{p}intents"
        self._review_rules = f"{p}review_rules"
        self._schema_version = f"{p}schema_version"
        self._audit_head = f"{p}audit_head"
        self._outbox = f"{p}hook_outbox"
        self._hooks: frozenset[str] = frozenset()

    @classmethod
    def from_conn_string(
        cls,
        conninfo: str,
        *,
        table_prefix: str = "hitl_",
        max_size: int = 10,
        open_timeout: float = 30.0,
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
        """
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            conninfo,
            open=False,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        store = cls(pool, table_prefix=table_prefix)
        store._owns_pool = True
        store._open_timeout = open_timeout
        return store

    def __repr__(self) -> str:
        return f"PostgresReviewStore(<pool {self._pool.name}>, table_prefix={self.table_prefix!r})"

    async def __aenter__(self) -> PostgresReviewStore:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

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
        except (psycopg.Error, PoolTimeout) as exc:
            raise ConfigurationError(
                f"Cannot create the review tables ({self._reviews}, ...) in PostgreSQL: "
                f"{exc}. Check the server is reachable and the search_path schema exists."
            ) from exc

    async def _migrate(self, cur: AsyncCursor[dict[str, Any]]) -> None:
        """Run the migration steps the tables miss; the caller holds the setup lock."""
        await cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self._schema_version} ("
            "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        await cur.execute(f"SELECT version FROM {self._schema_version} WHERE id = 1")
        row = await cur.fetchone()
        # No row: a new database, or one created before versioning (version 1's
        # tables, which step 1 creates only if missing).
        current = 0 if row is None else int(row["version"])
        if current > SCHEMA_VERSION:
            raise ConfigurationError(
                f"The review tables ({self._reviews}, ...) are at schema version {current}, "
                f"newer than this hitl-compliance understands ({SCHEMA_VERSION}); "
                "upgrade hitl-compliance."
            )
        if current == SCHEMA_VERSION:
            return
        for step in _MIGRATIONS[current:]:
            for statement in step(self.table_prefix):
                if isinstance(statement, str):
                    await cur.execute(statement)
                else:
                    await statement(cur, self.table_prefix)
        await cur.execute(
            f"INSERT INTO {self._schema_version} (id, version) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )

    async def aclose(self) -> None:
        """Close the pool if the store owns it (a pool passed in is left open); idempotent."""
        if self._owns_pool and not self._pool.closed:
            await self._pool.close()

    @asynccontextmanager
    async def _write(
        self, lock_thread: str | None = None
    ) -> AsyncIterator[AsyncCursor[dict[str, Any]]]:
        """One transaction; with `lock_thread`, serialised against others on that thread."""
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if lock_thread is not None:
                await cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                    (f"hitl_compliance:{self.table_prefix}", lock_thread),
                )
            yield cur

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncCursor[dict[str, Any]]]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            if conn.autocommit:
                yield cur
            else:
                # Without autocommit a SELECT opens a transaction; close it so
                # the pool gets the connection back idle.
                async with conn.transaction():
                    yield cur

    async def _latest(
        self, cur: AsyncCursor[dict[str, Any]], thread_id: str
    ) -> dict[str, Any] | None:
        await cur.execute(
            f"SELECT * FROM {self._reviews} WHERE thread_id = %s ORDER BY seq DESC LIMIT 1",
            (thread_id,),
        )
        return await cur.fetchone()

    async def _open_review_id(self, cur: AsyncCursor[dict[str, Any]], thread_id: str) -> str | None:
        await cur.execute(
            f"SELECT review_id FROM {self._reviews} WHERE thread_id = %s AND status IN {_OPEN}",
            (thread_id,),
        )
        row = await cur.fetchone()
        return None if row is None else str(row["review_id"])

    async def _insert_audit(
        self,
        cur: AsyncCursor[dict[str, Any]],
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: str,
        at: datetime,
    ) -> AuditRecord:
        """Seal and append one audit row, move the chain head, queue its hook call.

        Locks the head row (`FOR UPDATE`) until the caller's transaction ends,
        so call it as the transaction's last step. The thread's last row is
        read after the lock is held (a fresh snapshot under READ COMMITTED),
        so it cannot be a row some other append is still writing. `payload` is
        the JSON text stored; the row is sealed over its parsed form, which is
        exactly what reading the row back gives.
        """
        await cur.execute(f"SELECT seq, hash FROM {self._audit_head} WHERE id = 1 FOR UPDATE")
        head = await cur.fetchone()
        if head is None:
            head = await self._rebuild_head(cur)
        await cur.execute(
            f"SELECT hash FROM {self._audit} WHERE thread_id = %s ORDER BY seq DESC LIMIT 1",
            (thread_id,),
        )
        prev = await cur.fetchone()
        record = seal(
            seq=int(head["seq"]) + 1,
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event=event,
            actor=actor,
            payload=json.loads(payload),
            at=at,
            prev_hash=GENESIS if prev is None else str(prev["hash"]),
            global_prev_hash=str(head["hash"]),
        )
        params: list[Any] = [
            record.seq,
            thread_id,
            review_id,
            checkpoint_id,
            event,
            actor,
            payload,
            at,
            record.prev_hash,
            record.global_prev_hash,
            record.hash,
        ]
        # One round trip for the row, its outbox row and the head.
        sql = (
            f"WITH audit_row AS (INSERT INTO {self._audit} (seq, thread_id, review_id, "
            "checkpoint_id, event, actor, payload, at, prev_hash, global_prev_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s))"
        )
        hook = HOOK_FOR_EVENT.get(event)
        if hook is not None and hook in self._hooks:
            sql += (
                f", outbox_row AS (INSERT INTO {self._outbox} (delivery_id, seq, thread_id, "
                "hook, status, attempts, created_at) VALUES (%s, %s, %s, %s, 'pending', 0, %s))"
            )
            params += [uuid.uuid4().hex, record.seq, thread_id, hook, at]
        sql += f" UPDATE {self._audit_head} SET seq = %s, hash = %s WHERE id = 1"
        params += [record.seq, record.hash]
        await cur.execute(sql, params)
        return record

    async def _rebuild_head(self, cur: AsyncCursor[dict[str, Any]]) -> dict[str, Any]:
        """Recreate a deleted chain-head row from the last audit row, and lock it.

        Only a direct edit of the database deletes it; `verify_audit()` reports
        the missing head until this runs, and any rows cut from the end with it
        stay undetectable, as with a forged head.
        """
        logger.warning(
            "%s has no chain head row (edited outside hitl-compliance?); "
            "rebuilding it from the last audit row",
            self._audit_head,
        )
        await cur.execute(
            f"INSERT INTO {self._audit_head} (id, seq, hash) "
            f"SELECT 1, COALESCE(MAX(seq), 0), COALESCE((SELECT hash FROM {self._audit} "
            f"ORDER BY seq DESC LIMIT 1), %s) FROM {self._audit} ON CONFLICT (id) DO NOTHING",
            (GENESIS,),
        )
        await cur.execute(f"SELECT seq, hash FROM {self._audit_head} WHERE id = 1 FOR UPDATE")
        head = await cur.fetchone()
        assert head is not None  # inserted just above, by us or a concurrent append
        return head

    # -- turns -------------------------------------------------------------------

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Record that a turn starts on `thread_id`.

        Raises:
            ThreadBusyError: the thread has an open review or an unfinished turn.
        """
        _aware(now)
        async with self._write(lock_thread=thread_id) as cur:
            if await self._open_review_id(cur, thread_id) is not None:
                raise ThreadBusyError(
                    f"Thread {thread_id!r} is paused for review; approve or reject it first.",
                    thread_id=thread_id,
                )
            await cur.execute(
                f"INSERT INTO {self._intents} (thread_id, owner, started_at) "
                "VALUES (%s, %s, %s) ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, owner, now),
            )
            if cur.rowcount == 0:
                raise ThreadBusyError(
                    f"Thread {thread_id!r} has a turn in progress (or one that crashed: "
                    "run `await coord.recover()`).",
                    thread_id=thread_id,
                )

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        """Delete the thread's turn row if `owner` still holds it."""
        async with self._write() as cur:
            await cur.execute(
                f"DELETE FROM {self._intents} WHERE thread_id = %s AND owner = %s",
                (thread_id, owner),
            )

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        """Turn rows started before `started_before`, oldest first."""
        async with self._read() as cur:
            await cur.execute(
                f"SELECT * FROM {self._intents} WHERE started_at < %s "
                "ORDER BY started_at, thread_id",
                (_aware(started_before),),
            )
            rows = await cur.fetchall()
        return [
            TurnRecord(
                thread_id=r["thread_id"],
                owner=r["owner"],
                started_at=r["started_at"].astimezone(timezone.utc),
            )
            for r in rows
        ]

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        """Atomically move a turn row to `new_owner`; False if someone else did first."""
        _aware(now)
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._intents} SET owner = %s, started_at = %s "
                "WHERE thread_id = %s AND owner = %s",
                (new_owner, now, thread_id, old_owner),
            )
            return cur.rowcount == 1

    # -- reviews -----------------------------------------------------------------

    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        """Insert a pending review, its `paused` audit row, and end the turn, atomically.

        Idempotent per `(thread_id, checkpoint_id)`: when that review exists,
        return it and write nothing.

        Raises:
            ThreadBusyError: another review of the thread is still open.
        """
        for value in (review.requested_at, review.claimed_at, review.decided_at, review.deadline):
            if value is not None:
                _aware(value)
        violations = _dumps([v.to_dict() for v in review.violations])
        decision = None if review.decision is None else _dumps(review.decision)
        votes = _dumps([v.model_dump(mode="json") for v in review.votes])
        audit_payload = _dumps(paused_payload(review))
        rules = list(dict.fromkeys(v.rule for v in review.violations))
        async with self._write(lock_thread=review.thread_id) as cur:
            await cur.execute(
                f"SELECT * FROM {self._reviews} WHERE thread_id = %s AND checkpoint_id = %s",
                (review.thread_id, review.checkpoint_id),
            )
            existing = await cur.fetchone()
            if existing is not None:
                return _review(existing)
            open_id = await self._open_review_id(cur, review.thread_id)
            if open_id is not None:
                raise ThreadBusyError(
                    f"Thread {review.thread_id!r} already has open review {open_id!r}; "
                    "decide it before opening another.",
                    thread_id=review.thread_id,
                )
            await cur.execute(
                f"INSERT INTO {self._reviews} (review_id, thread_id, checkpoint_id, status, "
                "customer_message, draft_response, violations, requested_at, requested_by, "
                "claim_id, claimed_at, decided_at, reviewer, decision, votes, "
                "approvals_required, deadline, priority) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s::jsonb, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
                (
                    review.review_id,
                    review.thread_id,
                    review.checkpoint_id,
                    review.status,
                    review.customer_message,
                    review.draft_response,
                    violations,
                    review.requested_at,
                    review.requested_by,
                    review.claim_id,
                    review.claimed_at,
                    review.decided_at,
                    review.reviewer,
                    decision,
                    votes,
                    review.approvals_required,
                    review.deadline,
                    review.priority,
                ),
            )
            if rules and review.status in ("pending", "claimed"):
                await cur.execute(
                    f"INSERT INTO {self._review_rules} (review_id, rule, requested_at) "
                    "SELECT %s, rule, %s FROM unnest(%s::text[]) AS rule",
                    (review.review_id, review.requested_at, rules),
                )
            if owner is not None:
                await cur.execute(
                    f"DELETE FROM {self._intents} WHERE thread_id = %s AND owner = %s",
                    (review.thread_id, owner),
                )
            # Last: it holds the store-wide audit head lock until the commit.
            await self._insert_audit(
                cur,
                thread_id=review.thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event="paused",
                actor=review.requested_by or "system",
                payload=audit_payload,
                at=review.requested_at,
            )
        return review

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""
        async with self._read() as cur:
            row = await self._latest(cur, thread_id)
        return None if row is None else _review(row)

    def _pending_query(
        self,
        *,
        limit: int | None,
        rule: str | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_pending`; every filter is an index range."""
        params: list[Any] = []
        if rule is None:
            # The partial index on (requested_at, review_id) WHERE status = 'pending'.
            t = "r"
            sql = f"SELECT r.* FROM {self._reviews} AS r WHERE r.status = 'pending'"
        else:
            # The side table's (rule, requested_at, review_id) index drives the
            # scan; each row is joined by primary key, and claimed reviews are skipped.
            t = "rr"
            sql = (
                f"SELECT r.* FROM {self._review_rules} AS rr JOIN {self._reviews} AS r "
                "ON r.review_id = rr.review_id WHERE rr.rule = %s AND r.status = 'pending'"
            )
            params.append(rule)
        if requested_before is not None:
            sql += f" AND {t}.requested_at < %s"
            params.append(_aware(requested_before))
        if after is not None:
            sql += f" AND ({t}.requested_at, {t}.review_id) > (%s, %s)"
            params.extend((_aware(after[0]), after[1]))
        sql += f" ORDER BY {t}.requested_at, {t}.review_id LIMIT %s"
        params.append(limit)
        return sql, params

    async def list_pending(
        self,
        *,
        limit: int | None = None,
        rule: str | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Reviews with status `pending`, ordered by `(requested_at, review_id)`.

        Filters: a finding of `rule`; requested strictly before
        `requested_before`; strictly after the `(requested_at, review_id)`
        cursor `after`. Each reads an index range, so the cost is O(returned rows).

        Raises:
            ValueError: `limit` is negative, or a datetime is naive.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}.")
        sql, params = self._pending_query(
            limit=limit, rule=rule, requested_before=requested_before, after=after
        )
        async with self._read() as cur:
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        return [_review(r) for r in rows]

    async def _pending_row(
        self, cur: AsyncCursor[dict[str, Any]], thread_id: str, review_id: str | None
    ) -> dict[str, Any]:
        """Lock the thread's latest review, which must be pending (and `review_id`, if given).

        `FOR UPDATE` makes concurrent deciders queue on the row; after the one
        ahead commits, the next one reads the row as that one left it.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the latest review is not pending, or is not `review_id`.
        """
        await cur.execute(
            f"SELECT * FROM {self._reviews} WHERE thread_id = %s "
            "ORDER BY seq DESC LIMIT 1 FOR UPDATE",
            (thread_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review: it never paused.", thread_id=thread_id
            )
        if review_id is not None and row["review_id"] != review_id:
            await cur.execute(
                f"SELECT status FROM {self._reviews} WHERE review_id = %s", (review_id,)
            )
            other = await cur.fetchone()
            raise AlreadyDecidedError(
                f"The review {review_id!r} of thread {thread_id!r} is no longer the open one.",
                thread_id=thread_id,
                status=None if other is None else other["status"],
            )
        if row["status"] != "pending":
            raise AlreadyDecidedError(
                f"The review of thread {thread_id!r} is already {row['status']}.",
                thread_id=thread_id,
                status=row["status"],
            )
        return row

    async def _set_claimed(
        self,
        cur: AsyncCursor[dict[str, Any]],
        review_id: str,
        *,
        claim_id: str,
        claimed_at: datetime,
        reviewer: str,
        decision: str,
        votes: str | None,
    ) -> ReviewRecord:
        """Claim a review whose row this transaction locked; `votes=None` keeps them."""
        await cur.execute(
            f"UPDATE {self._reviews} SET status = 'claimed', claim_id = %s, claimed_at = %s, "
            "reviewer = %s, decision = %s::jsonb, votes = COALESCE(%s::jsonb, votes) "
            "WHERE review_id = %s RETURNING *",
            (claim_id, claimed_at, reviewer, decision, votes, review_id),
        )
        row = await cur.fetchone()
        assert row is not None  # the row is locked by this transaction
        return _review(row)

    async def claim(
        self,
        thread_id: str,
        *,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
        review_id: str | None = None,
    ) -> ReviewRecord:
        """Atomically move the thread's pending review to `claimed` with `decision`.

        With `review_id`, only that review may be claimed (the one the decider
        loaded). Votes already on the review stay on it. Concurrent claims and
        votes queue on the row lock; after the winner commits, the others see a
        row that is no longer `pending`.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: its latest review is claimed or decided, or is
                not `review_id`.
        """
        _aware(now)
        decision_json = _dumps(decision)
        async with self._write() as cur:
            row = await self._pending_row(cur, thread_id, review_id)
            return await self._set_claimed(
                cur,
                row["review_id"],
                claim_id=claim_id,
                claimed_at=now,
                reviewer=reviewer,
                decision=decision_json,
                votes=None,
            )

    async def vote(
        self,
        thread_id: str,
        *,
        review_id: str,
        vote: Vote,
        quorum: int,
        claim_id: str,
        decision: dict[str, Any],
        now: datetime,
    ) -> ReviewRecord:
        """Record an approval vote; claim the review when it completes the quorum, atomically.

        Counts the votes already on the review for the same `text_sha256`, plus
        this one. Below `quorum`: append the vote, write a `voted` audit row and
        return the still-`pending` record. At `quorum`: append the vote and
        claim the review for `vote.reviewer` with `claim_id` and `decision`.
        The review row is locked (`SELECT ... FOR UPDATE`) for the whole
        read-check-write transaction.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the review is not pending, or is not `review_id`.
            DuplicateVoteError: `vote.reviewer` already voted on this review.
        """
        _aware(now)
        vote_data = vote.model_dump(mode="json")
        vote_json = _dumps(vote_data)
        decision_json = _dumps(decision)
        async with self._write() as cur:
            row = await self._pending_row(cur, thread_id, review_id)
            votes: list[dict[str, Any]] = list(row["votes"])
            if any(v["reviewer"] == vote.reviewer for v in votes):
                raise DuplicateVoteError(
                    f"{vote.reviewer!r} already approved the review of thread {thread_id!r}; "
                    "it needs another approver.",
                    thread_id=thread_id,
                    status=row["status"],
                )
            votes.append(vote_data)
            votes_json = _dumps(votes)
            if sum(v["text_sha256"] == vote.text_sha256 for v in votes) >= quorum:
                return await self._set_claimed(
                    cur,
                    review_id,
                    claim_id=claim_id,
                    claimed_at=now,
                    reviewer=vote.reviewer,
                    decision=decision_json,
                    votes=votes_json,
                )
            await cur.execute(
                f"UPDATE {self._reviews} SET votes = %s::jsonb WHERE review_id = %s RETURNING *",
                (votes_json, review_id),
            )
            updated = await cur.fetchone()
            assert updated is not None  # the row is locked by this transaction
            await self._insert_audit(
                cur,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=row["checkpoint_id"],
                event="voted",
                actor=vote.reviewer,
                payload=vote_json,
                at=now,
            )
        return _review(updated)

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim that never reached the graph: back to `pending`.

        Clears the claim and drops the claiming reviewer's vote, if any.
        """
        async with self._write() as cur:
            await cur.execute(
                f"SELECT reviewer, votes FROM {self._reviews} "
                "WHERE review_id = %s AND status = 'claimed' AND claim_id = %s FOR UPDATE",
                (review_id, claim_id),
            )
            row = await cur.fetchone()
            if row is None:
                return
            # The claimer's vote never reached the graph: it does not count.
            votes = [v for v in row["votes"] if v["reviewer"] != row["reviewer"]]
            await cur.execute(
                f"UPDATE {self._reviews} SET status = 'pending', claim_id = NULL, "
                "claimed_at = NULL, reviewer = NULL, decision = NULL, votes = %s::jsonb "
                "WHERE review_id = %s",
                (_dumps(votes), review_id),
            )

    async def complete(
        self,
        review_id: str,
        *,
        claim_id: str,
        status: FinalStatus,
        now: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord:
        """Move a claimed review to its final status and append the decision audit row.

        Raises:
            AlreadyDecidedError: `claim_id` no longer holds the review.
        """
        payload_json = _dumps(payload)
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._reviews} SET status = %s, decided_at = %s "
                "WHERE review_id = %s AND status = 'claimed' AND claim_id = %s RETURNING *",
                (status, _aware(now), review_id, claim_id),
            )
            done = await cur.fetchone()
            if done is None:
                await cur.execute(
                    f"SELECT thread_id, status FROM {self._reviews} WHERE review_id = %s",
                    (review_id,),
                )
                row = await cur.fetchone()
                raise AlreadyDecidedError(
                    f"Review {review_id!r} is no longer held by this decision.",
                    thread_id=None if row is None else row["thread_id"],
                    status=None if row is None else row["status"],
                )
            # Final: list_pending(rule=...) never needs the rule rows again.
            await cur.execute(
                f"DELETE FROM {self._review_rules} WHERE review_id = %s", (review_id,)
            )
            await self._insert_audit(
                cur,
                thread_id=done["thread_id"],
                review_id=review_id,
                checkpoint_id=done["checkpoint_id"],
                event=status,
                actor=actor,
                payload=payload_json,
                at=now,
            )
        return _review(done)

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        """Claimed reviews whose claim is older than `claimed_before`, oldest first."""
        async with self._read() as cur:
            await cur.execute(
                f"SELECT * FROM {self._reviews} WHERE status = 'claimed' AND claimed_at < %s "
                "ORDER BY claimed_at, review_id",
                (_aware(claimed_before),),
            )
            rows = await cur.fetchall()
        return [_review(r) for r in rows]

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        """Atomically move an abandoned claim to `new_claim_id`; False if it moved already."""
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._reviews} SET claim_id = %s, claimed_at = %s "
                "WHERE review_id = %s AND status = 'claimed' AND claim_id = %s",
                (new_claim_id, _aware(now), review_id, old_claim_id),
            )
            return cur.rowcount == 1

    # -- audit -------------------------------------------------------------------

    async def append_audit(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: dict[str, Any],
        at: datetime,
    ) -> AuditRecord:
        """Append one sealed audit row (and its outbox row, if a configured hook is owed)."""
        payload_json = _dumps(payload)
        _aware(at)
        async with self._write() as cur:
            return await self._insert_audit(
                cur,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=checkpoint_id,
                event=event,
                actor=actor,
                payload=payload_json,
                at=at,
            )

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit rows, oldest first."""
        return await self.audit_rows(thread_id)

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        """Every audit row (or one thread's), in `seq` order, exactly as stored."""
        async with self._read() as cur:
            if thread_id is None:
                await cur.execute(f"SELECT * FROM {self._audit} ORDER BY seq")
            else:
                await cur.execute(
                    f"SELECT * FROM {self._audit} WHERE thread_id = %s ORDER BY seq",
                    (thread_id,),
                )
            rows = await cur.fetchall()
        return [_audit(r) for r in rows]

    async def audit_head(self) -> tuple[int, str] | None:
        """The chain head `(seq, hash)` of the last appended row; None before the first."""
        async with self._read() as cur:
            await cur.execute(f"SELECT seq, hash FROM {self._audit_head} WHERE id = 1")
            row = await cur.fetchone()
        if row is None or int(row["seq"]) == 0:
            return None
        return int(row["seq"]), str(row["hash"])

    # -- SLA ---------------------------------------------------------------------

    async def list_overdue(self, *, now: datetime, limit: int | None = None) -> list[ReviewRecord]:
        """Pending reviews whose `deadline` is at or before `now`, earliest first.

        Reads the partial `(deadline, review_id)` index of pending reviews with
        a deadline, so the cost is O(overdue rows returned).

        Raises:
            ValueError: `limit` is negative, or `now` is naive.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}.")
        sql, params = self._overdue_query(now=now, limit=limit)
        async with self._read() as cur:
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        return [_review(r) for r in rows]

    def _overdue_query(self, *, now: datetime, limit: int | None) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_overdue`: a range of the partial overdue index."""
        return (
            f"SELECT * FROM {self._reviews} WHERE status = 'pending' AND deadline IS NOT NULL "
            "AND deadline <= %s ORDER BY deadline, review_id LIMIT %s",
            [_aware(now), limit],
        )

    async def escalate(
        self,
        review_id: str,
        *,
        now: datetime,
        new_deadline: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord | None:
        """Raise an overdue pending review's priority and move its deadline, atomically.

        One conditional UPDATE (still pending, `deadline <= now`) locks the row;
        a concurrent sweeper waits on that lock and then finds the condition
        false, so exactly one escalates. The `escalated` audit row is written
        in the same transaction.
        """
        _aware(now)
        _aware(new_deadline)
        payload_json = _dumps(payload)
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._reviews} SET priority = priority + 1, deadline = %s "
                "WHERE review_id = %s AND status = 'pending' AND deadline IS NOT NULL "
                "AND deadline <= %s RETURNING *",
                (new_deadline, review_id, now),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await self._insert_audit(
                cur,
                thread_id=row["thread_id"],
                review_id=review_id,
                checkpoint_id=row["checkpoint_id"],
                event="escalated",
                actor=actor,
                payload=payload_json,
                at=now,
            )
        return _review(row)

    # -- hook outbox -------------------------------------------------------------

    def configure_hooks(self, hooks: frozenset[str]) -> None:
        """Write an outbox row, with each audit row, for these hooks (see the protocol)."""
        self._hooks = frozenset(hooks)

    async def pending_hooks(
        self, *, thread_id: str | None = None, created_before: datetime | None = None
    ) -> list[HookDelivery]:
        """Undelivered outbox rows in `seq` order, each with its audit record.

        `failed` rows always; `pending` rows only if created before
        `created_before` (all of them when it is None). Reads the partial index
        of undelivered rows (of one thread, with `thread_id`).
        """
        sql, params = self._hooks_query(thread_id=thread_id, created_before=created_before)
        async with self._read() as cur:
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        return [_delivery(r) for r in rows]

    def _hooks_query(
        self, *, thread_id: str | None, created_before: datetime | None
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `pending_hooks`: a range of a partial undelivered index."""
        sql = (
            "SELECT o.delivery_id AS o_delivery_id, o.hook AS o_hook, o.status AS o_status, "
            "o.attempts AS o_attempts, o.last_error AS o_last_error, "
            f"o.created_at AS o_created_at, a.* FROM {self._outbox} AS o "
            f"JOIN {self._audit} AS a ON a.seq = o.seq WHERE o.status <> 'delivered'"
        )
        params: list[Any] = []
        if thread_id is not None:
            sql += " AND o.thread_id = %s"
            params.append(thread_id)
        if created_before is not None:
            sql += " AND (o.status = 'failed' OR o.created_at < %s)"
            params.append(_aware(created_before))
        sql += " ORDER BY o.seq"
        return sql, params

    async def finish_hook(
        self, delivery_id: str, *, ok: bool, error: str | None, now: datetime
    ) -> None:
        """Record one delivery attempt: `delivered` when ok, else `failed` with `error`.

        A row already delivered is left alone.
        """
        _aware(now)
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._outbox} SET status = %s, attempts = attempts + 1, "
                "last_error = %s, attempted_at = %s "
                "WHERE delivery_id = %s AND status <> 'delivered'",
                ("delivered" if ok else "failed", error, now, delivery_id),
            )
