"""SQLite review store: durable reviews and audit on one file, shared safely by several processes.

Needs the `sqlite` extra (`pip install "hitl-compliance[sqlite]"`). Every change
runs in one `BEGIN IMMEDIATE` transaction, so two processes (or two store
instances) on the same file serialise on SQLite's write lock and the
`pending -> claimed` step stays exactly-once across them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable
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
    import aiosqlite
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        'SqliteReviewStore needs aiosqlite: pip install "hitl-compliance[sqlite]"'
    ) from exc

__all__ = ["SqliteReviewStore"]

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_OPEN = "('pending', 'claimed')"
_BUSY_TIMEOUT_MS = 30_000


def _schema(p: str) -> list[str]:
    # review_id is the primary key; the implicit rowid orders a thread's reviews
    # (SQLite always gives a new row a rowid above every existing one).
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}reviews (
            review_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            status TEXT NOT NULL,
            customer_message TEXT NOT NULL,
            draft_response TEXT NOT NULL,
            violations TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            requested_by TEXT,
            claim_id TEXT,
            claimed_at TEXT,
            decided_at TEXT,
            reviewer TEXT,
            decision TEXT,
            UNIQUE (thread_id, checkpoint_id)
        )""",
        # At most one open review per thread: the database, not only the code, says so.
        f"CREATE UNIQUE INDEX IF NOT EXISTS {p}reviews_one_open "
        f"ON {p}reviews (thread_id) WHERE status IN {_OPEN}",
        # list_pending reads only pending rows, in order, whatever the history size.
        f"CREATE INDEX IF NOT EXISTS {p}reviews_pending "
        f"ON {p}reviews (requested_at, review_id) WHERE status = 'pending'",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_thread ON {p}reviews (thread_id)",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_claimed "
        f"ON {p}reviews (claimed_at) WHERE status = 'claimed'",
        f"""CREATE TABLE IF NOT EXISTS {p}audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL,
            review_id TEXT,
            checkpoint_id TEXT,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            payload TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}audit_thread ON {p}audit (thread_id, seq)",
        f"""CREATE TABLE IF NOT EXISTS {p}intents (
            thread_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            started_at TEXT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}intents_started ON {p}intents (started_at)",
    ]


def _check_table_prefix(table_prefix: str) -> str:
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


def _open_and_read(path: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    finally:
        conn.close()


async def _check_sqlite_file(path: str) -> None:
    """Open `path` once (creating it if missing) to fail early with a clear error.

    aiosqlite leaves a worker thread behind when its connect fails, so callers
    check the file with plain `sqlite3` first.

    Raises:
        ConfigurationError: the file cannot be opened or is not an SQLite database.
    """
    if path in ("", ":memory:"):
        return
    try:
        await asyncio.to_thread(_open_and_read, path)
    except sqlite3.Error as exc:
        raise ConfigurationError(
            f"Cannot open SQLite database {path!r}: {exc}. "
            "Check that the directory exists and is writable, and that the file is "
            "an SQLite database."
        ) from exc


def _ts(value: datetime) -> str:
    # Fixed-width UTC ISO-8601 text sorts like the instant it names.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"Review stores need timezone-aware datetimes, got naive {value!r}.")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else _ts(value)


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _review(row: sqlite3.Row) -> ReviewRecord:
    requested_at = _dt(row["requested_at"])
    assert requested_at is not None  # NOT NULL column
    return ReviewRecord(
        review_id=row["review_id"],
        thread_id=row["thread_id"],
        checkpoint_id=row["checkpoint_id"],
        status=row["status"],
        customer_message=row["customer_message"],
        draft_response=row["draft_response"],
        violations=[RuleResult.from_dict(v) for v in json.loads(row["violations"])],
        requested_at=requested_at,
        requested_by=row["requested_by"],
        claim_id=row["claim_id"],
        claimed_at=_dt(row["claimed_at"]),
        decided_at=_dt(row["decided_at"]),
        reviewer=row["reviewer"],
        decision=None if row["decision"] is None else json.loads(row["decision"]),
    )


def _turn(row: sqlite3.Row) -> TurnRecord:
    return TurnRecord(
        thread_id=row["thread_id"],
        owner=row["owner"],
        started_at=datetime.fromisoformat(row["started_at"]),
    )


def _audit(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        thread_id=row["thread_id"],
        review_id=row["review_id"],
        checkpoint_id=row["checkpoint_id"],
        event=row["event"],
        actor=row["actor"],
        payload=json.loads(row["payload"]),
        at=datetime.fromisoformat(row["at"]),
    )


class SqliteReviewStore:
    """A [`ReviewStore`][hitl_compliance.ReviewStore] in an SQLite file.

    Opens its own connection in [`setup`][hitl_compliance.stores.sqlite.SqliteReviewStore.setup]
    (WAL journal, 30 s busy timeout, `synchronous=NORMAL`) and closes it in
    `aclose`; also usable as `async with SqliteReviewStore(path) as store:`.
    Calls on one instance are serialised by an `asyncio.Lock`; instances and
    processes sharing the file are serialised by `BEGIN IMMEDIATE`.

    With `":memory:"` the database is private to this store's connection and
    disappears on `aclose`.

    Args:
        path: the database file (created if missing; its directory must exist),
            or `":memory:"`.
        table_prefix: prefix of the three table names (`hitl_reviews`,
            `hitl_audit`, `hitl_intents` by default).

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    def __init__(self, path: str | os.PathLike[str], *, table_prefix: str = "hitl_") -> None:
        self.path = os.fspath(path)
        self.table_prefix = _check_table_prefix(table_prefix)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        p = table_prefix
        self._reviews = f"{p}reviews"
        self._audit = f"{p}audit"
        self._intents = f"{p}intents"

    def __repr__(self) -> str:
        return f"SqliteReviewStore({self.path!r}, table_prefix={self.table_prefix!r})"

    async def __aenter__(self) -> SqliteReviewStore:
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
        """Open the connection (once) and create tables and indexes if missing; idempotent.

        Raises:
            ConfigurationError: the file cannot be opened or is not an SQLite database.
        """
        async with self._lock:
            if self._conn is None:
                self._conn = await self._connect()
            conn = self._conn
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _schema(self.table_prefix):
                        await conn.execute(statement)
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()
            except sqlite3.Error as exc:
                raise ConfigurationError(
                    f"Cannot create the review tables in SQLite database {self.path!r}: {exc}."
                ) from exc

    async def _connect(self) -> aiosqlite.Connection:
        await _check_sqlite_file(self.path)
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves, so the
        # driver never opens a deferred transaction that could fail to upgrade.
        conn = aiosqlite.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        await conn
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise ConfigurationError(
                    f"Cannot use SQLite database {self.path!r}: {exc}."
                ) from exc
            raise
        return conn

    async def aclose(self) -> None:
        """Close the store's connection; idempotent."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    def _require(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise ConfigurationError(
                f"{self!r} is not open: call `await store.setup()` first "
                "(or use `async with store:`)."
            )
        return self._conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, taken before the first read so check-then-write is atomic."""
        async with self._lock:
            conn = self._require()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        # The lock keeps reads from seeing another coroutine's uncommitted writes
        # on the shared connection.
        async with self._lock:
            yield self._require()

    @staticmethod
    async def _one(
        conn: aiosqlite.Connection, sql: str, params: Iterable[Any]
    ) -> sqlite3.Row | None:
        async with conn.execute(sql, tuple(params)) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    @staticmethod
    async def _all(
        conn: aiosqlite.Connection, sql: str, params: Iterable[Any]
    ) -> list[sqlite3.Row]:
        async with conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    @staticmethod
    async def _change(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> int:
        async with conn.execute(sql, tuple(params)) as cur:
            return int(cur.rowcount)

    async def _latest(self, conn: aiosqlite.Connection, thread_id: str) -> sqlite3.Row | None:
        return await self._one(
            conn,
            f"SELECT * FROM {self._reviews} WHERE thread_id = ? ORDER BY rowid DESC LIMIT 1",
            (thread_id,),
        )

    async def _open_review_id(self, conn: aiosqlite.Connection, thread_id: str) -> str | None:
        row = await self._one(
            conn,
            f"SELECT review_id FROM {self._reviews} WHERE thread_id = ? AND status IN {_OPEN}",
            (thread_id,),
        )
        return None if row is None else str(row["review_id"])

    async def _insert_audit(
        self,
        conn: aiosqlite.Connection,
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: str,
        at: str,
    ) -> int:
        async with conn.execute(
            f"INSERT INTO {self._audit} "
            "(thread_id, review_id, checkpoint_id, event, actor, payload, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (thread_id, review_id, checkpoint_id, event, actor, payload, at),
        ) as cur:
            seq = cur.lastrowid
        assert seq is not None
        return seq

    # -- turns -------------------------------------------------------------------

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Record that a turn starts on `thread_id`.

        Raises:
            ThreadBusyError: the thread has an open review or an unfinished turn.
        """
        started_at = _ts(now)
        async with self._write() as conn:
            if await self._open_review_id(conn, thread_id) is not None:
                raise ThreadBusyError(
                    f"Thread {thread_id!r} is paused for review; approve or reject it first.",
                    thread_id=thread_id,
                )
            inserted = await self._change(
                conn,
                f"INSERT OR IGNORE INTO {self._intents} (thread_id, owner, started_at) "
                "VALUES (?, ?, ?)",
                (thread_id, owner, started_at),
            )
            if inserted == 0:
                raise ThreadBusyError(
                    f"Thread {thread_id!r} has a turn in progress (or one that crashed: "
                    "run `await coord.recover()`).",
                    thread_id=thread_id,
                )

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        """Delete the thread's turn row if `owner` still holds it."""
        async with self._write() as conn:
            await self._change(
                conn,
                f"DELETE FROM {self._intents} WHERE thread_id = ? AND owner = ?",
                (thread_id, owner),
            )

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        """Turn rows started before `started_before`, oldest first."""
        before = _ts(started_before)
        async with self._read() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM {self._intents} WHERE started_at < ? "
                "ORDER BY started_at, thread_id",
                (before,),
            )
        return [_turn(r) for r in rows]

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        """Atomically move a turn row to `new_owner`; False if someone else did first."""
        started_at = _ts(now)
        async with self._write() as conn:
            changed = await self._change(
                conn,
                f"UPDATE {self._intents} SET owner = ?, started_at = ? "
                "WHERE thread_id = ? AND owner = ?",
                (new_owner, started_at, thread_id, old_owner),
            )
        return changed == 1

    # -- reviews -----------------------------------------------------------------

    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        """Insert a pending review, its `paused` audit row, and end the turn, atomically.

        Idempotent per `(thread_id, checkpoint_id)`: when that review exists,
        return it and write nothing.

        Raises:
            ThreadBusyError: another review of the thread is still open.
        """
        values = (
            review.review_id,
            review.thread_id,
            review.checkpoint_id,
            review.status,
            review.customer_message,
            review.draft_response,
            _dumps([v.to_dict() for v in review.violations]),
            _ts(review.requested_at),
            review.requested_by,
            review.claim_id,
            _ts_or_none(review.claimed_at),
            _ts_or_none(review.decided_at),
            review.reviewer,
            None if review.decision is None else _dumps(review.decision),
        )
        audit_payload = _dumps(paused_payload(review))
        async with self._write() as conn:
            existing = await self._one(
                conn,
                f"SELECT * FROM {self._reviews} WHERE thread_id = ? AND checkpoint_id = ?",
                (review.thread_id, review.checkpoint_id),
            )
            if existing is not None:
                return _review(existing)
            open_id = await self._open_review_id(conn, review.thread_id)
            if open_id is not None:
                raise ThreadBusyError(
                    f"Thread {review.thread_id!r} already has open review {open_id!r}; "
                    "decide it before opening another.",
                    thread_id=review.thread_id,
                )
            await conn.execute(
                f"INSERT INTO {self._reviews} (review_id, thread_id, checkpoint_id, status, "
                "customer_message, draft_response, violations, requested_at, requested_by, "
                "claim_id, claimed_at, decided_at, reviewer, decision) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            await self._insert_audit(
                conn,
                thread_id=review.thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event="paused",
                actor=review.requested_by or "system",
                payload=audit_payload,
                at=values[7],
            )
            if owner is not None:
                await conn.execute(
                    f"DELETE FROM {self._intents} WHERE thread_id = ? AND owner = ?",
                    (review.thread_id, owner),
                )
        return review

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""
        async with self._read() as conn:
            row = await self._latest(conn, thread_id)
        return None if row is None else _review(row)

    async def list_pending(self, *, limit: int | None = None) -> list[ReviewRecord]:
        """Reviews with status `pending`, oldest `requested_at` first (ties by `review_id`).

        Raises:
            ValueError: `limit` is negative.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}.")
        async with self._read() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM {self._reviews} WHERE status = 'pending' "
                "ORDER BY requested_at, review_id LIMIT ?",
                (-1 if limit is None else limit,),
            )
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

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: its latest review is claimed or decided.
        """
        params = (claim_id, _ts(now), reviewer, _dumps(decision), thread_id)
        async with self._write() as conn:
            # The partial unique index allows one open review per thread, so the
            # pending row, if any, is the thread's latest review.
            changed = await self._change(
                conn,
                f"UPDATE {self._reviews} SET status = 'claimed', claim_id = ?, claimed_at = ?, "
                "reviewer = ?, decision = ? WHERE thread_id = ? AND status = 'pending'",
                params,
            )
            row = await self._latest(conn, thread_id)
        if row is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review: it never paused.", thread_id=thread_id
            )
        if changed == 0:
            raise AlreadyDecidedError(
                f"The review of thread {thread_id!r} is already {row['status']}.",
                thread_id=thread_id,
                status=row["status"],
            )
        return _review(row)

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim that never reached the graph: back to `pending`."""
        async with self._write() as conn:
            await conn.execute(
                f"UPDATE {self._reviews} SET status = 'pending', claim_id = NULL, "
                "claimed_at = NULL, reviewer = NULL, decision = NULL "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
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
        decided_at = _ts(now)
        payload_json = _dumps(payload)
        async with self._write() as conn:
            changed = await self._change(
                conn,
                f"UPDATE {self._reviews} SET status = ?, decided_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
                (status, decided_at, review_id, claim_id),
            )
            row = await self._one(
                conn, f"SELECT * FROM {self._reviews} WHERE review_id = ?", (review_id,)
            )
            if changed == 0 or row is None:
                raise AlreadyDecidedError(
                    f"Review {review_id!r} is no longer held by this decision.",
                    thread_id=None if row is None else row["thread_id"],
                    status=None if row is None else row["status"],
                )
            await self._insert_audit(
                conn,
                thread_id=row["thread_id"],
                review_id=review_id,
                checkpoint_id=row["checkpoint_id"],
                event=status,
                actor=actor,
                payload=payload_json,
                at=decided_at,
            )
        return _review(row)

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        """Claimed reviews whose claim is older than `claimed_before`, oldest first."""
        before = _ts(claimed_before)
        async with self._read() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM {self._reviews} WHERE status = 'claimed' AND claimed_at < ? "
                "ORDER BY claimed_at, review_id",
                (before,),
            )
        return [_review(r) for r in rows]

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        """Atomically move an abandoned claim to `new_claim_id`; False if it moved already."""
        claimed_at = _ts(now)
        async with self._write() as conn:
            changed = await self._change(
                conn,
                f"UPDATE {self._reviews} SET claim_id = ?, claimed_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
                (new_claim_id, claimed_at, review_id, old_claim_id),
            )
        return changed == 1

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
        at_text = _ts(at)
        async with self._write() as conn:
            seq = await self._insert_audit(
                conn,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=checkpoint_id,
                event=event,
                actor=actor,
                payload=payload_json,
                at=at_text,
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
        async with self._read() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM {self._audit} WHERE thread_id = ? ORDER BY seq",
                (thread_id,),
            )
        return [_audit(r) for r in rows]
