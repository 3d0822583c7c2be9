"""SQLite review store: durable reviews and audit on one file, shared safely by several processes.

Every change runs in one `BEGIN IMMEDIATE` transaction, so two processes (or
two store instances) on the same file serialise on SQLite's write lock and the
`pending -> claimed` step (by `claim` or by the vote completing a quorum)
stays exactly-once across them.

The store drives the standard library's `sqlite3` from a worker thread of its
own: each call runs its whole transaction (or read) as one function on that
thread, so a call costs the event loop one trip to the thread, however many
statements it runs. (The `sqlite` extra brings LangGraph's SQLite saver; the
store itself needs only the standard library.)

`setup()` creates the tables and upgrades tables written by an older version
in place: the `<prefix>schema_version` row records which of the ordered
migration steps ran, and the missing ones run in one transaction.

Audit rows form the tamper-evident ledger of [`ledger`][hitl_compliance.ledger]:
each append reads the chain head (`<prefix>audit_head`) and the thread's last
row inside the `BEGIN IMMEDIATE` transaction, seals the row with
[`seal`][hitl_compliance.models.seal] at `seq = head + 1`, and moves the head,
so the chain has no gaps and no forks whatever the number of writers. Hook
calls owed by an audit row go to `<prefix>hook_outbox` in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from queue import SimpleQueue
from types import TracebackType
from typing import Any, TypeVar

from hitl_compliance.errors import ConfigurationError, InvalidInputError
from hitl_compliance.ledger import GENESIS
from hitl_compliance.models import AuditRecord, HookDelivery, ReviewRecord, Vote, seal
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores import _machine as machine
from hitl_compliance.stores._machine import Refusal, refusal_error
from hitl_compliance.stores._sql import (
    Dialect,
    claimable_query,
    delivery_columns,
    hooks_query,
    overdue_query,
    pending_query,
    store_error,
)
from hitl_compliance.stores.base import (
    HOOK_FOR_EVENT,
    FinalStatus,
    TurnRecord,
    check_limit,
    paused_payload,
)

__all__ = ["SqliteReviewStore"]

logger = logging.getLogger("hitl_compliance")

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_OPEN = "('pending', 'claimed')"
_BUSY_TIMEOUT_MS = 30_000
_BACKFILL_PAGE = 1000

_T = TypeVar("_T")

# A migration step is SQL statements and, where SQL alone cannot do it, Python
# steps run on the connection (inside the migration's transaction, on the
# store's worker thread) with the prefix.
_PyStep = Callable[[sqlite3.Connection, str], None]
_Step = str | _PyStep


def _schema_v1(p: str) -> list[_Step]:
    # The tables of the first release, unchanged: a database created then has
    # exactly these, so later steps ALTER instead of editing this list.
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


def _schema_v2(p: str) -> list[_Step]:
    # Approval votes on a review, and the rule side table behind list_pending(rule=).
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN votes TEXT NOT NULL DEFAULT '[]'",
        f"ALTER TABLE {p}reviews ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 1",
        # One row per distinct rule of a review's findings, while the review is
        # open (pending or claimed); complete() deletes them.
        f"""CREATE TABLE IF NOT EXISTS {p}review_rules (
            review_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            PRIMARY KEY (review_id, rule)
        ) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {p}review_rules_pending "
        f"ON {p}review_rules (rule, requested_at, review_id)",
        # Open reviews written before this step get their rule rows too.
        f"INSERT OR IGNORE INTO {p}review_rules (review_id, rule, requested_at) "
        f"SELECT r.review_id, json_extract(v.value, '$.rule'), r.requested_at "
        f"FROM {p}reviews AS r, json_each(r.violations) AS v WHERE r.status IN {_OPEN}",
    ]


def _schema_v3(p: str) -> list[_Step]:
    # SLA deadlines and priority, the hash-chained audit ledger and the hook outbox.
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN deadline TEXT",
        f"ALTER TABLE {p}reviews ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        # list_overdue reads only overdue pending rows, earliest deadline first.
        f"CREATE INDEX IF NOT EXISTS {p}reviews_overdue ON {p}reviews (deadline, review_id) "
        "WHERE status = 'pending' AND deadline IS NOT NULL",
        f"ALTER TABLE {p}audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN global_prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
        # The store-wide chain head: seq and hash of the last appended audit row
        # (seq 0 and GENESIS while there is none). Always exactly one row.
        f"""CREATE TABLE IF NOT EXISTS {p}audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
        )""",
        # One row per hook call owed by an audit row (`seq`), written with it.
        f"""CREATE TABLE IF NOT EXISTS {p}hook_outbox (
            delivery_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            thread_id TEXT NOT NULL,
            hook TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'delivered')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            attempted_at TEXT
        )""",
        # pending_hooks reads only undelivered rows, store-wide or of one thread.
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_undelivered "
        f"ON {p}hook_outbox (seq) WHERE status <> 'delivered'",
        f"CREATE INDEX IF NOT EXISTS {p}hook_outbox_thread "
        f"ON {p}hook_outbox (thread_id, seq) WHERE status <> 'delivered'",
        _backfill_ledger,
    ]


def _backfill_ledger(conn: sqlite3.Connection, p: str) -> None:
    """Seal the audit rows written before the ledger existed, in seq order, and set the head.

    Pages through the table, so memory holds one page plus one hash per thread.
    """
    thread_prev: dict[str, str] = {}
    head_seq, head_hash = 0, GENESIS
    while True:
        rows = _all(
            conn,
            f"SELECT * FROM {p}audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (head_seq, _BACKFILL_PAGE),
        )
        if not rows:
            break
        updates = []
        for row in rows:
            at = _dt(row["at"])
            assert at is not None  # NOT NULL column
            record = seal(
                seq=row["seq"],
                thread_id=row["thread_id"],
                review_id=row["review_id"],
                checkpoint_id=row["checkpoint_id"],
                event=row["event"],
                actor=row["actor"],
                payload=json.loads(row["payload"]),
                at=at,
                prev_hash=thread_prev.get(row["thread_id"], GENESIS),
                global_prev_hash=head_hash,
            )
            updates.append((record.prev_hash, record.global_prev_hash, record.hash, record.seq))
            thread_prev[record.thread_id] = record.hash
            head_seq, head_hash = record.seq, record.hash
        conn.executemany(
            f"UPDATE {p}audit SET prev_hash = ?, global_prev_hash = ?, hash = ? WHERE seq = ?",
            updates,
        ).close()
    _run_sql(
        conn,
        f"INSERT INTO {p}audit_head (id, seq, hash) VALUES (1, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (head_seq, head_hash),
    )


def _schema_v4(p: str) -> list[_Step]:
    # Hook leases: a caller claims an outbox row (owner, until when) before it
    # calls the hook, so no other caller makes the same call while it runs.
    return [
        f"ALTER TABLE {p}hook_outbox ADD COLUMN lease_owner TEXT",
        f"ALTER TABLE {p}hook_outbox ADD COLUMN lease_until TEXT",
    ]


# Ordered migration steps: step i (1-based) brings the tables to schema version i.
# Append new steps; never edit or reorder released ones.
_MIGRATIONS: Sequence[Callable[[str], list[_Step]]] = (
    _schema_v1,
    _schema_v2,
    _schema_v3,
    _schema_v4,
)
SCHEMA_VERSION = len(_MIGRATIONS)


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


def _one(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> sqlite3.Row | None:
    """The first row of a query (None without one); the statement is reset at once."""
    cur = conn.execute(sql, tuple(params))
    try:
        row: sqlite3.Row | None = cur.fetchone()
        return row
    finally:
        cur.close()


def _all(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> list[sqlite3.Row]:
    cur = conn.execute(sql, tuple(params))
    try:
        return cur.fetchall()
    finally:
        cur.close()


def _run_sql(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run one statement; the number of rows it changed."""
    cur = conn.execute(sql, tuple(params))
    try:
        return int(cur.rowcount)
    finally:
        cur.close()


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """`fn(conn)` in one write transaction, taken before its first read.

    `BEGIN IMMEDIATE` takes SQLite's write lock up front (waiting up to the busy
    timeout), so check-then-write inside `fn` is atomic across connections and
    processes. Commits on return; rolls back on any exception (from `fn` or from
    the commit itself, so the connection is never left inside a transaction)
    and re-raises it.
    """
    conn.execute("BEGIN IMMEDIATE").close()
    try:
        result = fn(conn)
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return result


# One job for the worker thread: run `fn(*args)`, hand the outcome to `future` on `loop`.
_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting call was cancelled; the job ran anyway
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _work(jobs: SimpleQueue[_Job | None]) -> None:
    """The worker thread: run jobs in order until told to stop (None)."""
    while True:
        job = jobs.get()
        if job is None:
            return
        fn, args, loop, future = job
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, future, result, error)
        del job, fn, args, loop, future, result, error


class _Worker:
    """A single thread running the store's jobs one at a time, in submission order.

    Like `aiosqlite`'s worker, minus the per-statement trips: one job is one
    whole store call. The thread is a daemon (an unclosed store never blocks
    interpreter exit), and stops when the worker is stopped or garbage collected.
    """

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread = threading.Thread(target=_work, args=(self._jobs,), name=name, daemon=True)
        self._thread.start()
        # Stop the thread with the worker, whichever comes first.
        self._stop = weakref.finalize(self, self._jobs.put, None)

    def run(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue `fn(*args)` now; the future resolves on the running loop once it has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        return future

    def stop(self) -> None:
        """Let the thread finish the queued jobs, then end; idempotent."""
        self._stop()


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, retrying while another connection holds a lock.

    Changing the journal mode can fail with "database is locked" at once,
    without waiting for the busy timeout (two stores opening a new file
    together), so wait here, up to that timeout. Runs on the store's worker
    thread, so the sleeps never block the event loop.
    """
    give_up = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= give_up:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _connect(path: str) -> sqlite3.Connection:
    """Open and configure the store's connection (on its worker thread).

    The connection is opened, used and closed on that thread only (the store
    sees to it); `check_same_thread=False` just lets an unclosed one be
    finalised from any thread.
    `isolation_level=None`: we issue `BEGIN IMMEDIATE` / `COMMIT` ourselves, so
    the driver never opens a deferred transaction that could fail to upgrade.

    Raises:
        ConfigurationError: the file cannot be opened or is not an SQLite
            database, or cannot be configured.
    """
    try:
        conn = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise _cannot_open(path, exc) from exc
    try:
        if path not in ("", ":memory:"):
            # Fail early with a clear error on a file that is not a database.
            try:
                conn.execute("PRAGMA schema_version").close()
            except sqlite3.Error as exc:
                raise _cannot_open(path, exc) from exc
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}").close()
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL").close()
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise ConfigurationError(f"Cannot use SQLite database {path!r}: {exc}.") from exc
        raise
    return conn


def _is_argument_error(exc: Exception) -> bool:
    """Whether sqlite3 failed to bind a parameter (its type, or an int beyond 64 bits)."""
    # sqlite3 has no error code for these; its messages are stable across 3.10-3.13
    # ("Error binding parameter 1: type 'dict' is not supported", 3.10's
    # "Error binding parameter 0 - probably unsupported type.", "Python int too
    # large to convert to SQLite INTEGER"). Other ProgrammingErrors (a closed
    # database) are the program's, not the argument's.
    text = str(exc)
    return "binding parameter" in text or "to SQLite INTEGER" in text


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """Translate sqlite3's exceptions into the library's tree: the store's one boundary.

    Every call of the store runs inside it once (`_submit`). A write rolled
    back in `_transaction`, so nothing changed: an argument sqlite3 cannot
    bind is the caller's `InvalidInputError`, any other driver failure a
    `StoreError`; no sqlite3 exception crosses the ReviewStore Protocol.
    """
    try:
        yield
    except (sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError) as exc:
        if not _is_argument_error(exc):
            if isinstance(exc, sqlite3.Error):
                raise store_error("SQLite", str(exc), backend="sqlite") from exc
            raise
        raise InvalidInputError(
            f"SQLite cannot bind an argument of this store call: {exc}. Pass ids and "
            "text as str, and ints within 64 bits."
        ) from exc
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"SQLite cannot store an argument of this store call: {exc}. Pass text "
            "without lone surrogates."
        ) from exc
    except sqlite3.Error as exc:
        raise store_error("SQLite", str(exc), backend="sqlite") from exc


def _cannot_open(path: str, exc: sqlite3.Error) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot open SQLite database {path!r}: {exc}. "
        "Check that the directory exists and is writable, and that the file is "
        "an SQLite database."
    )


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


def _vote_dicts(text: str) -> list[dict[str, Any]]:
    votes: list[dict[str, Any]] = json.loads(text)
    return votes


_DIALECT = Dialect(placeholder="?", rule_join="CROSS JOIN", time=_ts, no_limit=-1)


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
        votes=[Vote.model_validate(v) for v in _vote_dicts(row["votes"])],
        approvals_required=row["approvals_required"],
        deadline=_dt(row["deadline"]),
        priority=row["priority"],
    )


def _turn(row: sqlite3.Row) -> TurnRecord:
    return TurnRecord(
        thread_id=row["thread_id"],
        owner=row["owner"],
        started_at=datetime.fromisoformat(row["started_at"]),
    )


def _audit(row: sqlite3.Row) -> AuditRecord:
    # As stored: never re-sealed, so an edited row keeps its (now wrong) hash.
    return AuditRecord(
        seq=row["seq"],
        thread_id=row["thread_id"],
        review_id=row["review_id"],
        checkpoint_id=row["checkpoint_id"],
        event=row["event"],
        actor=row["actor"],
        payload=json.loads(row["payload"]),
        at=datetime.fromisoformat(row["at"]),
        prev_hash=row["prev_hash"],
        global_prev_hash=row["global_prev_hash"],
        hash=row["hash"],
    )


def _delivery(row: sqlite3.Row) -> HookDelivery:
    """An outbox row joined with its audit row (outbox columns prefixed `o_`)."""
    return HookDelivery(
        delivery_id=row["o_delivery_id"],
        hook=row["o_hook"],
        status=row["o_status"],
        attempts=row["o_attempts"],
        last_error=row["o_last_error"],
        created_at=datetime.fromisoformat(row["o_created_at"]),
        record=_audit(row),
        lease_owner=row["o_lease_owner"],
        lease_until=_dt(row["o_lease_until"]),
    )


class SqliteReviewStore:
    """A [`ReviewStore`][hitl_compliance.ReviewStore] in an SQLite file.

    Opens its own connection in [`setup`][hitl_compliance.stores.sqlite.SqliteReviewStore.setup]
    (WAL journal, 30 s busy timeout, `synchronous=NORMAL`) and closes it in
    `aclose`; also usable as `async with SqliteReviewStore(path) as store:`.
    The connection lives on a worker thread of the store's own, which runs each
    call's whole transaction as one function: calls on one instance are
    serialised by that thread (first come, first served); instances and
    processes sharing the file are serialised by `BEGIN IMMEDIATE`.

    With `":memory:"` the database is private to this store's connection and
    disappears on `aclose`.

    Args:
        path: the database file (created if missing; its directory must exist),
            or `":memory:"`.
        table_prefix: prefix of the table names (`hitl_reviews`, `hitl_audit`,
            `hitl_audit_head`, `hitl_hook_outbox`, `hitl_intents`,
            `hitl_review_rules` and `hitl_schema_version` by default).

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    def __init__(self, path: str | os.PathLike[str], *, table_prefix: str = "hitl_") -> None:
        self.path = os.fspath(path)
        self.table_prefix = _check_table_prefix(table_prefix)
        # The connection and the single thread that runs everything on it; both
        # set while the store is open, both None before setup and after aclose.
        self._conn: sqlite3.Connection | None = None
        self._worker: _Worker | None = None
        # Held by setup and aclose only: calls are serialised by the worker thread.
        self._lock = asyncio.Lock()
        p = table_prefix
        self._reviews = f"{p}reviews"
        self._audit = f"{p}audit"
        self._intents = f"{p}intents"
        self._review_rules = f"{p}review_rules"
        self._schema_version = f"{p}schema_version"
        self._audit_head = f"{p}audit_head"
        self._outbox = f"{p}hook_outbox"
        self._hooks: frozenset[str] = frozenset()

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
        """Open the connection (once), then create or upgrade the tables; idempotent.

        Tables written by an older version are migrated in place, in one
        transaction, keeping their rows.

        Raises:
            ConfigurationError: the file cannot be opened or is not an SQLite
                database, or its tables were written by a newer version.
        """
        async with self._lock:
            if self._conn is None:
                worker = _Worker(f"hitl-sqlite {self.path}")
                try:
                    conn = await worker.run(_connect, self.path)
                except BaseException:
                    worker.stop()
                    raise
                self._conn, self._worker = conn, worker
            await self._submit(self._create_tables)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        try:
            _transaction(conn, self._migrate)
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"Cannot create the review tables in SQLite database {self.path!r}: {exc}."
            ) from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Run the migration steps the tables miss; the caller holds the write lock."""
        _run_sql(
            conn,
            f"CREATE TABLE IF NOT EXISTS {self._schema_version} ("
            "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
        )
        row = _one(conn, f"SELECT version FROM {self._schema_version} WHERE id = 1", ())
        # No row: a new database, or one created before versioning (version 1's
        # tables, which step 1 creates only if missing).
        current = 0 if row is None else int(row["version"])
        if current > SCHEMA_VERSION:
            raise ConfigurationError(
                f"The review tables in SQLite database {self.path!r} are at schema version "
                f"{current}, newer than this hitl-compliance understands ({SCHEMA_VERSION}); "
                "upgrade hitl-compliance."
            )
        if current == SCHEMA_VERSION:
            return
        for step in _MIGRATIONS[current:]:
            for statement in step(self.table_prefix):
                if isinstance(statement, str):
                    _run_sql(conn, statement)
                else:
                    statement(conn, self.table_prefix)
        _run_sql(
            conn,
            f"INSERT INTO {self._schema_version} (id, version) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )

    async def aclose(self) -> None:
        """Close the store's connection and stop its thread; idempotent.

        Calls already started finish first.
        """
        async with self._lock:
            conn, self._conn = self._conn, None
            worker, self._worker = self._worker, None
            if worker is None or conn is None:
                return
            try:
                # Queued behind every call already submitted.
                await worker.run(conn.close)
            finally:
                worker.stop()

    def _require(self) -> tuple[sqlite3.Connection, _Worker]:
        if self._conn is None or self._worker is None:
            raise ConfigurationError(
                f"{self!r} is not open: call `await store.setup()` first "
                "(or use `async with store:`)."
            )
        return self._conn, self._worker

    async def _submit(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `fn(conn)` on the store's thread: the one trip to it of a store call.

        Every call of the store goes through here, once.
        """
        if self._conn is None and self._lock.locked():
            # setup() (or aclose()) is running: wait for it, as the caller would
            # have waited for the connection.
            async with self._lock:
                pass
        conn, worker = self._require()
        with _driver_errors():
            return await worker.run(fn, conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn(conn)` in one `BEGIN IMMEDIATE` transaction, in one trip to the thread."""
        return await self._submit(lambda conn: _transaction(conn, fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn(conn)` outside a transaction (each statement reads a committed state).

        The thread runs one call at a time, so reads never see another call's
        uncommitted writes on the shared connection.
        """
        return await self._submit(fn)

    def _latest(self, conn: sqlite3.Connection, thread_id: str) -> sqlite3.Row | None:
        return _one(
            conn,
            f"SELECT * FROM {self._reviews} WHERE thread_id = ? ORDER BY rowid DESC LIMIT 1",
            (thread_id,),
        )

    def _open_review_id(self, conn: sqlite3.Connection, thread_id: str) -> str | None:
        row = _one(
            conn,
            f"SELECT review_id FROM {self._reviews} WHERE thread_id = ? AND status IN {_OPEN}",
            (thread_id,),
        )
        return None if row is None else str(row["review_id"])

    def _insert_audit(
        self,
        conn: sqlite3.Connection,
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

        The caller holds the write transaction (`BEGIN IMMEDIATE`), so the head
        and the thread's last row cannot move between reading and writing them.
        `payload` is the JSON text stored; the row is sealed over its parsed
        form, which is exactly what reading the row back gives.
        """
        # One read for both links: nothing moves inside this write transaction.
        head_sql = (
            f"SELECT seq, hash, (SELECT hash FROM {self._audit} WHERE thread_id = ? "
            f"ORDER BY seq DESC LIMIT 1) AS thread_hash FROM {self._audit_head} WHERE id = 1"
        )
        head = _one(conn, head_sql, (thread_id,))
        if head is None:
            self._rebuild_head(conn)
            head = _one(conn, head_sql, (thread_id,))
            assert head is not None  # just rebuilt
        prev = head["thread_hash"]
        record = seal(
            seq=int(head["seq"]) + 1,
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event=event,
            actor=actor,
            payload=json.loads(payload),
            at=at,
            prev_hash=GENESIS if prev is None else str(prev),
            global_prev_hash=str(head["hash"]),
        )
        _run_sql(
            conn,
            f"INSERT INTO {self._audit} (seq, thread_id, review_id, checkpoint_id, event, "
            "actor, payload, at, prev_hash, global_prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.seq,
                thread_id,
                review_id,
                checkpoint_id,
                event,
                actor,
                payload,
                _ts(at),
                record.prev_hash,
                record.global_prev_hash,
                record.hash,
            ),
        )
        _run_sql(
            conn,
            f"UPDATE {self._audit_head} SET seq = ?, hash = ? WHERE id = 1",
            (record.seq, record.hash),
        )
        hook = HOOK_FOR_EVENT.get(event)
        if hook is not None and hook in self._hooks:
            _run_sql(
                conn,
                f"INSERT INTO {self._outbox} (delivery_id, seq, thread_id, hook, status, "
                "attempts, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?)",
                (uuid.uuid4().hex, record.seq, thread_id, hook, _ts(at)),
            )
        return record

    def _rebuild_head(self, conn: sqlite3.Connection) -> None:
        """Recreate a deleted chain-head row from the last audit row.

        Only a direct edit of the database deletes it; `verify_audit()` reports
        the missing head until this runs, and any rows cut from the end with it
        stay undetectable, as with a forged head.
        """
        logger.warning(
            "%s has no chain head row (edited outside hitl-compliance?); "
            "rebuilding it from the last audit row",
            self._audit_head,
        )
        _run_sql(
            conn,
            f"INSERT INTO {self._audit_head} (id, seq, hash) "
            f"SELECT 1, COALESCE(MAX(seq), 0), COALESCE((SELECT hash FROM {self._audit} "
            f"ORDER BY seq DESC LIMIT 1), ?) FROM {self._audit}",
            (GENESIS,),
        )

    # -- turns -------------------------------------------------------------------

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Record that a turn starts on `thread_id`.

        Raises:
            ThreadBusyError: the thread has an open review or an unfinished turn.
        """
        started_at = _ts(now)

        def begin(conn: sqlite3.Connection) -> None:
            if self._open_review_id(conn, thread_id) is not None:
                raise refusal_error(Refusal.THREAD_PAUSED, thread_id=thread_id)
            inserted = _run_sql(
                conn,
                f"INSERT OR IGNORE INTO {self._intents} (thread_id, owner, started_at) "
                "VALUES (?, ?, ?)",
                (thread_id, owner, started_at),
            )
            if inserted == 0:
                raise refusal_error(Refusal.TURN_IN_PROGRESS, thread_id=thread_id)

        await self._write(begin)

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        """Delete the thread's turn row if `owner` still holds it."""

        def end(conn: sqlite3.Connection) -> None:
            _run_sql(
                conn,
                f"DELETE FROM {self._intents} WHERE thread_id = ? AND owner = ?",
                (thread_id, owner),
            )

        await self._write(end)

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        """Turn rows started before `started_before`, oldest first."""
        before = _ts(started_before)

        def stale(conn: sqlite3.Connection) -> list[TurnRecord]:
            rows = _all(
                conn,
                f"SELECT * FROM {self._intents} WHERE started_at < ? "
                "ORDER BY started_at, thread_id",
                (before,),
            )
            return [_turn(r) for r in rows]

        return await self._read(stale)

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        """Atomically move a turn row to `new_owner`; False if someone else did first."""
        started_at = _ts(now)

        def take_over(conn: sqlite3.Connection) -> bool:
            changed = _run_sql(
                conn,
                f"UPDATE {self._intents} SET owner = ?, started_at = ? "
                "WHERE thread_id = ? AND owner = ?",
                (new_owner, started_at, thread_id, old_owner),
            )
            return changed == 1

        return await self._write(take_over)

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
            _dumps([v.model_dump(mode="json") for v in review.votes]),
            review.approvals_required,
            _ts_or_none(review.deadline),
            review.priority,
        )
        audit_payload = _dumps(paused_payload(review))
        rules = list(dict.fromkeys(v.rule for v in review.violations))

        def insert(conn: sqlite3.Connection) -> ReviewRecord:
            existing = _one(
                conn,
                f"SELECT * FROM {self._reviews} WHERE thread_id = ? AND checkpoint_id = ?",
                (review.thread_id, review.checkpoint_id),
            )
            if existing is not None:
                return _review(existing)
            open_id = self._open_review_id(conn, review.thread_id)
            if open_id is not None:
                raise refusal_error(
                    Refusal.REVIEW_OPEN, thread_id=review.thread_id, review_id=open_id
                )
            _run_sql(
                conn,
                f"INSERT INTO {self._reviews} (review_id, thread_id, checkpoint_id, status, "
                "customer_message, draft_response, violations, requested_at, requested_by, "
                "claim_id, claimed_at, decided_at, reviewer, decision, votes, "
                "approvals_required, deadline, priority) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            if review.status in ("pending", "claimed"):
                conn.executemany(
                    f"INSERT INTO {self._review_rules} (review_id, rule, requested_at) "
                    "VALUES (?, ?, ?)",
                    [(review.review_id, rule, values[7]) for rule in rules],
                ).close()
            self._insert_audit(
                conn,
                thread_id=review.thread_id,
                review_id=review.review_id,
                checkpoint_id=review.checkpoint_id,
                event="paused",
                actor=review.requested_by or "system",
                payload=audit_payload,
                at=review.requested_at,
            )
            if owner is not None:
                _run_sql(
                    conn,
                    f"DELETE FROM {self._intents} WHERE thread_id = ? AND owner = ?",
                    (review.thread_id, owner),
                )
            return review

        return await self._write(insert)

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""

        def latest(conn: sqlite3.Connection) -> ReviewRecord | None:
            row = self._latest(conn, thread_id)
            return None if row is None else _review(row)

        return await self._read(latest)

    def _pending_query(
        self,
        *,
        limit: int | None,
        rule: str | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_pending`; every filter is an index range."""
        return pending_query(
            _DIALECT,
            self._reviews,
            self._review_rules,
            limit=limit,
            rule=rule,
            requested_before=requested_before,
            after=after,
        )

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
        check_limit(limit)
        sql, params = self._pending_query(
            limit=limit, rule=rule, requested_before=requested_before, after=after
        )
        return await self._read(lambda conn: [_review(r) for r in _all(conn, sql, params)])

    def _pending_row(
        self, conn: sqlite3.Connection, thread_id: str, review_id: str | None
    ) -> sqlite3.Row:
        """The thread's latest review, which must be pending (and `review_id`, if given).

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the latest review is not pending, or is not `review_id`.
        """
        row = self._latest(conn, thread_id)
        refusal = machine.decide_refusal(
            latest_id=None if row is None else row["review_id"],
            latest_status=None if row is None else row["status"],
            review_id=review_id,
        )
        if refusal is Refusal.NOT_OPEN_REVIEW:
            other = _one(
                conn, f"SELECT status FROM {self._reviews} WHERE review_id = ?", (review_id,)
            )
            raise refusal_error(
                refusal,
                thread_id=thread_id,
                review_id=review_id,
                status=None if other is None else other["status"],
            )
        if refusal is not None:
            raise refusal_error(
                refusal, thread_id=thread_id, status=None if row is None else row["status"]
            )
        assert row is not None  # no refusal: the thread has a review
        return row

    def _set_claimed(
        self,
        conn: sqlite3.Connection,
        review_id: str,
        *,
        claim_id: str,
        claimed_at: str,
        reviewer: str,
        decision: str,
        votes: str,
    ) -> ReviewRecord:
        _run_sql(
            conn,
            f"UPDATE {self._reviews} SET status = 'claimed', claim_id = ?, claimed_at = ?, "
            "reviewer = ?, decision = ?, votes = ? WHERE review_id = ?",
            (claim_id, claimed_at, reviewer, decision, votes, review_id),
        )
        return self._by_id(conn, review_id)

    def _by_id(self, conn: sqlite3.Connection, review_id: str) -> ReviewRecord:
        row = _one(conn, f"SELECT * FROM {self._reviews} WHERE review_id = ?", (review_id,))
        assert row is not None  # read inside the transaction that found it
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

        With `review_id`, only that review may be claimed (the one the decider loaded).
        Votes already on the review stay on it.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: its latest review is claimed or decided, or is
                not `review_id`.
        """
        claimed_at = _ts(now)
        decision_json = _dumps(decision)

        def claim(conn: sqlite3.Connection) -> ReviewRecord:
            row = self._pending_row(conn, thread_id, review_id)
            return self._set_claimed(
                conn,
                row["review_id"],
                claim_id=claim_id,
                claimed_at=claimed_at,
                reviewer=reviewer,
                decision=decision_json,
                votes=row["votes"],
            )

        return await self._write(claim)

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
        Read, check and write happen in one `BEGIN IMMEDIATE` transaction.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the review is not pending, or is not `review_id`.
            DuplicateVoteError: `vote.reviewer` already voted on this review.
        """
        at = _ts(now)
        vote_data = vote.model_dump(mode="json")
        vote_json = _dumps(vote_data)
        decision_json = _dumps(decision)

        def cast(conn: sqlite3.Connection) -> ReviewRecord:
            row = self._pending_row(conn, thread_id, review_id)
            votes = _vote_dicts(row["votes"])
            keys = (Vote.model_validate(v).reviewer_key for v in votes)
            if machine.is_duplicate_vote(keys, vote.reviewer_key):
                raise refusal_error(
                    Refusal.DUPLICATE_VOTE,
                    thread_id=thread_id,
                    status=row["status"],
                    reviewer=vote.reviewer,
                )
            votes.append(vote_data)
            votes_json = _dumps(votes)
            if machine.quorum_met((v["text_sha256"] for v in votes), vote.text_sha256, quorum):
                return self._set_claimed(
                    conn,
                    review_id,
                    claim_id=claim_id,
                    claimed_at=at,
                    reviewer=vote.reviewer,
                    decision=decision_json,
                    votes=votes_json,
                )
            _run_sql(
                conn,
                f"UPDATE {self._reviews} SET votes = ? WHERE review_id = ?",
                (votes_json, review_id),
            )
            self._insert_audit(
                conn,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=row["checkpoint_id"],
                event="voted",
                actor=vote.reviewer,
                payload=vote_json,
                at=now,
            )
            return self._by_id(conn, review_id)

        return await self._write(cast)

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim that never reached the graph: back to `pending`.

        Clears the claim and drops the claiming reviewer's vote, if any.
        """

        def release(conn: sqlite3.Connection) -> None:
            row = _one(
                conn,
                f"SELECT reviewer, votes FROM {self._reviews} "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
                (review_id, claim_id),
            )
            if row is None:
                return
            votes = machine.kept_on_release(
                _vote_dicts(row["votes"]), row["reviewer"], lambda v: str(v["reviewer"])
            )
            _run_sql(
                conn,
                f"UPDATE {self._reviews} SET status = 'pending', claim_id = NULL, "
                "claimed_at = NULL, reviewer = NULL, decision = NULL, votes = ? "
                "WHERE review_id = ?",
                (_dumps(votes), review_id),
            )

        await self._write(release)

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

        def complete(conn: sqlite3.Connection) -> ReviewRecord:
            changed = _run_sql(
                conn,
                f"UPDATE {self._reviews} SET status = ?, decided_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
                (status, decided_at, review_id, claim_id),
            )
            row = _one(conn, f"SELECT * FROM {self._reviews} WHERE review_id = ?", (review_id,))
            if changed == 0 or row is None:
                raise refusal_error(
                    Refusal.CLAIM_LOST,
                    review_id=review_id,
                    thread_id=None if row is None else row["thread_id"],
                    status=None if row is None else row["status"],
                )
            # Final: list_pending(rule=...) never needs the rule rows again.
            _run_sql(conn, f"DELETE FROM {self._review_rules} WHERE review_id = ?", (review_id,))
            self._insert_audit(
                conn,
                thread_id=row["thread_id"],
                review_id=review_id,
                checkpoint_id=row["checkpoint_id"],
                event=status,
                actor=actor,
                payload=payload_json,
                at=now,
            )
            return _review(row)

        return await self._write(complete)

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        """Claimed reviews whose claim is older than `claimed_before`, oldest first."""
        before = _ts(claimed_before)
        sql = (
            f"SELECT * FROM {self._reviews} WHERE status = 'claimed' AND claimed_at < ? "
            "ORDER BY claimed_at, review_id"
        )
        return await self._read(lambda conn: [_review(r) for r in _all(conn, sql, (before,))])

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        """Atomically move an abandoned claim to `new_claim_id`; False if it moved already."""
        claimed_at = _ts(now)

        def take_over(conn: sqlite3.Connection) -> bool:
            changed = _run_sql(
                conn,
                f"UPDATE {self._reviews} SET claim_id = ?, claimed_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?",
                (new_claim_id, claimed_at, review_id, old_claim_id),
            )
            return changed == 1

        return await self._write(take_over)

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
        _ts(at)

        def append(conn: sqlite3.Connection) -> AuditRecord:
            return self._insert_audit(
                conn,
                thread_id=thread_id,
                review_id=review_id,
                checkpoint_id=checkpoint_id,
                event=event,
                actor=actor,
                payload=payload_json,
                at=at,
            )

        return await self._write(append)

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit rows, oldest first."""
        return await self.audit_rows(thread_id)

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        """Every audit row (or one thread's), in `seq` order, exactly as stored."""
        params: tuple[str, ...] = ()
        if thread_id is None:
            sql = f"SELECT * FROM {self._audit} ORDER BY seq"
        else:
            sql = f"SELECT * FROM {self._audit} WHERE thread_id = ? ORDER BY seq"
            params = (thread_id,)
        return await self._read(lambda conn: [_audit(r) for r in _all(conn, sql, params)])

    async def audit_head(self) -> tuple[int, str] | None:
        """The chain head `(seq, hash)` of the last appended row; None before the first."""
        sql = f"SELECT seq, hash FROM {self._audit_head} WHERE id = 1"
        row = await self._read(lambda conn: _one(conn, sql, ()))
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
        check_limit(limit)
        sql, params = self._overdue_query(now=now, limit=limit)
        return await self._read(lambda conn: [_review(r) for r in _all(conn, sql, params)])

    def _overdue_query(self, *, now: datetime, limit: int | None) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_overdue`: a range of the partial overdue index."""
        return overdue_query(_DIALECT, self._reviews, now=now, limit=limit)

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

        One conditional UPDATE (still pending, `deadline <= now`) and the
        `escalated` audit row in one `BEGIN IMMEDIATE` transaction: of several
        concurrent sweepers exactly one escalates; the others get None.
        """
        now_text = _ts(now)
        deadline_text = _ts(new_deadline)
        payload_json = _dumps(payload)

        def escalate(conn: sqlite3.Connection) -> ReviewRecord | None:
            changed = _run_sql(
                conn,
                f"UPDATE {self._reviews} SET priority = priority + 1, deadline = ? "
                "WHERE review_id = ? AND status = 'pending' AND deadline IS NOT NULL "
                "AND deadline <= ?",
                (deadline_text, review_id, now_text),
            )
            if changed == 0:
                return None
            escalated = self._by_id(conn, review_id)
            self._insert_audit(
                conn,
                thread_id=escalated.thread_id,
                review_id=review_id,
                checkpoint_id=escalated.checkpoint_id,
                event="escalated",
                actor=actor,
                payload=payload_json,
                at=now,
            )
            return escalated

        return await self._write(escalate)

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
        return await self._read(lambda conn: [_delivery(r) for r in _all(conn, sql, params)])

    def _hooks_query(
        self, *, thread_id: str | None, created_before: datetime | None
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `pending_hooks`: a range of a partial undelivered index."""
        return hooks_query(
            _DIALECT,
            self._outbox,
            self._audit,
            thread_id=thread_id,
            created_before=created_before,
        )

    async def claim_hooks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        thread_id: str | None = None,
        hooks: frozenset[str] | None = None,
        created_before: datetime | None = None,
        include_failed: bool = True,
        limit: int | None = None,
    ) -> list[HookDelivery]:
        """Lease claimable outbox rows to `owner` (see the protocol), in one write transaction.

        `BEGIN IMMEDIATE` holds the file's write lock from the read of the
        claimable rows to the lease, so two processes never lease one row.
        """
        check_limit(limit)
        if hooks is not None and not hooks:
            return []
        sql, params = claimable_query(
            _DIALECT,
            self._outbox,
            now=now,
            thread_id=thread_id,
            hooks=hooks,
            created_before=created_before,
            include_failed=include_failed,
            limit=limit,
        )
        until = _ts(lease_until)
        read = (
            f"{delivery_columns('o')} FROM {self._outbox} AS o "
            f"JOIN {self._audit} AS a ON a.seq = o.seq WHERE o.delivery_id = ?"
        )

        def lease(conn: sqlite3.Connection) -> list[HookDelivery]:
            ids = [str(r["delivery_id"]) for r in _all(conn, sql, params)]
            conn.executemany(
                f"UPDATE {self._outbox} SET lease_owner = ?, lease_until = ? WHERE delivery_id = ?",
                [(owner, until, i) for i in ids],
            ).close()
            rows = [_one(conn, read, (i,)) for i in ids]
            return [_delivery(r) for r in rows if r is not None]

        return await self._write(lease)

    async def renew_hook(self, delivery_id: str, *, owner: str, lease_until: datetime) -> bool:
        """Extend `owner`'s lease on an undelivered row (see the protocol)."""
        sql = (
            f"UPDATE {self._outbox} SET lease_until = ? WHERE delivery_id = ? "
            "AND status <> 'delivered' AND lease_owner = ?"
        )
        params = (_ts(lease_until), delivery_id, owner)
        return await self._write(lambda conn: _run_sql(conn, sql, params)) == 1

    async def finish_hook(
        self,
        delivery_id: str,
        *,
        ok: bool,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """Record one delivery attempt by the lease holder (see the protocol).

        `delivered` when ok (final), else `failed` with `error` and the lease
        released. False when the row is unknown, delivered, or another's.
        """
        attempted_at = _ts(now)
        release = "" if ok else ", lease_owner = NULL, lease_until = NULL"
        sql = (
            f"UPDATE {self._outbox} SET status = ?, attempts = attempts + 1, "
            f"last_error = ?, attempted_at = ?{release} WHERE delivery_id = ? "
            "AND status <> 'delivered' AND lease_owner IS ?"
        )
        params = ("delivered" if ok else "failed", error, attempted_at, delivery_id, owner)
        return await self._write(lambda conn: _run_sql(conn, sql, params)) == 1
