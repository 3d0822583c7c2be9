"""PostgreSQL review store: durable reviews and audit shared by any number of processes.

Needs the `postgres` extra (`pip install "hitl-compliance[postgres]"`). Every
change runs in one explicit transaction, so the store works on the pool
LangGraph's `AsyncPostgresSaver` uses (`autocommit=True`, `dict_row`) as well
as on an ordinary pool. Turn and review changes of one thread are serialised
by a transaction-scoped advisory lock, which keeps "is the thread free? then
take it" race-free across processes.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    ReviewNotFoundError,
    ThreadBusyError,
)
from hitl_compliance.models import AuditRecord, ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores.base import FinalStatus, TurnRecord, paused_payload

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

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_OPEN = "('pending', 'claimed')"


def _schema(p: str) -> list[str]:
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
    )


def _audit(row: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        thread_id=row["thread_id"],
        review_id=row["review_id"],
        checkpoint_id=row["checkpoint_id"],
        event=row["event"],
        actor=row["actor"],
        payload=row["payload"],
        at=row["at"].astimezone(timezone.utc),
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
        table_prefix: prefix of the three table names (`hitl_reviews`,
            `hitl_audit`, `hitl_intents` by default).

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
        """Create tables and indexes if missing; idempotent and safe to run concurrently.

        Opens the pool first when the store owns it.

        Raises:
            ConfigurationError: the server cannot be reached or the DDL fails
                (for example the `search_path` schema does not exist).
        """
        try:
            if self._owns_pool and self._pool.closed:
                await self._pool.open(wait=True, timeout=self._open_timeout)
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                # CREATE ... IF NOT EXISTS is not safe against itself running in
                # two sessions at once; the lock makes concurrent setups queue.
                await cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"hitl_compliance.setup:{self.table_prefix}",),
                )
                for statement in _schema(self.table_prefix):
                    await cur.execute(statement)
        except (psycopg.Error, PoolTimeout) as exc:
            raise ConfigurationError(
                f"Cannot create the review tables ({self._reviews}, ...) in PostgreSQL: "
                f"{exc}. Check the server is reachable and the search_path schema exists."
            ) from exc

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
    ) -> int:
        await cur.execute(
            f"INSERT INTO {self._audit} "
            "(thread_id, review_id, checkpoint_id, event, actor, payload, at) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING seq",
            (thread_id, review_id, checkpoint_id, event, actor, payload, at),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row["seq"])

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
        for value in (review.requested_at, review.claimed_at, review.decided_at):
            if value is not None:
                _aware(value)
        violations = _dumps([v.to_dict() for v in review.violations])
        decision = None if review.decision is None else _dumps(review.decision)
        audit_payload = _dumps(paused_payload(review))
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
                "claim_id, claimed_at, decided_at, reviewer, decision) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s::jsonb)",
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
                ),
            )
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
            if owner is not None:
                await cur.execute(
                    f"DELETE FROM {self._intents} WHERE thread_id = %s AND owner = %s",
                    (review.thread_id, owner),
                )
        return review

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""
        async with self._read() as cur:
            row = await self._latest(cur, thread_id)
        return None if row is None else _review(row)

    async def list_pending(self, *, limit: int | None = None) -> list[ReviewRecord]:
        """Reviews with status `pending`, oldest `requested_at` first (ties by `review_id`).

        Raises:
            ValueError: `limit` is negative.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}.")
        async with self._read() as cur:
            await cur.execute(
                f"SELECT * FROM {self._reviews} WHERE status = 'pending' "
                "ORDER BY requested_at, review_id LIMIT %s",
                (limit,),
            )
            rows = await cur.fetchall()
        return [_review(r) for r in rows]

    async def claim(
        self,
        thread_id: str,
        *,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
    ) -> ReviewRecord:
        """Atomically move the thread's pending review to `claimed` with `decision`.

        Concurrent claims queue on the row lock; after the winner commits, the
        others see a row that is no longer `pending` and update nothing.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: its latest review is claimed or decided.
        """
        decision_json = _dumps(decision)
        async with self._write() as cur:
            # The partial unique index allows one open review per thread, so the
            # pending row, if any, is the thread's latest review.
            await cur.execute(
                f"UPDATE {self._reviews} SET status = 'claimed', claim_id = %s, "
                "claimed_at = %s, reviewer = %s, decision = %s::jsonb "
                "WHERE thread_id = %s AND status = 'pending' RETURNING *",
                (claim_id, _aware(now), reviewer, decision_json, thread_id),
            )
            claimed = await cur.fetchone()
            latest = None if claimed is not None else await self._latest(cur, thread_id)
        if claimed is not None:
            return _review(claimed)
        if latest is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review: it never paused.", thread_id=thread_id
            )
        raise AlreadyDecidedError(
            f"The review of thread {thread_id!r} is already {latest['status']}.",
            thread_id=thread_id,
            status=latest["status"],
        )

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim that never reached the graph: back to `pending`."""
        async with self._write() as cur:
            await cur.execute(
                f"UPDATE {self._reviews} SET status = 'pending', claim_id = NULL, "
                "claimed_at = NULL, reviewer = NULL, decision = NULL "
                "WHERE review_id = %s AND status = 'claimed' AND claim_id = %s",
                (review_id, claim_id),
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
        """Append one audit row."""
        payload_json = _dumps(payload)
        _aware(at)
        async with self._write() as cur:
            seq = await self._insert_audit(
                cur,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=checkpoint_id,
                event=event,
                actor=actor,
                payload=payload_json,
                at=at,
            )
        return AuditRecord(
            seq=seq,
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event=event,
            actor=actor,
            payload=json.loads(payload_json),
            at=at,
        )

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit rows, oldest first."""
        async with self._read() as cur:
            await cur.execute(
                f"SELECT * FROM {self._audit} WHERE thread_id = %s ORDER BY seq",
                (thread_id,),
            )
            rows = await cur.fetchall()
        return [_audit(r) for r in rows]
