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

The writes themselves (checks, statements, the sealing of audit rows) are the
shared ones of `SqlStore` (`stores/_sqlwrites.py`); this module supplies
their transaction primitive (`_transaction`: `BEGIN IMMEDIATE` on the worker
thread), the dialect, the connection and the translation of sqlite3's errors.
Under the write lock each audit append reads the chain head
(`<prefix>audit_head`) and the thread's last row, seals the row at `seq =
head + 1` and moves the head, so the chain has no gaps and no forks whatever
the number of writers; hook calls owed by an audit row go to
`<prefix>hook_outbox` in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from queue import SimpleQueue
from typing import Any, TypeVar

from hitl_compliance.errors import ConfigurationError, InvalidInputError
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores._seals import seals_table
from hitl_compliance.stores._sql import (
    OPEN_SQL,
    ColumnTypes,
    Dialect,
    LedgerBackfill,
    Row,
    audit_head_table,
    audit_thread_index,
    claimed_index,
    intents_table,
    open_and_pending_indexes,
    outbox_tables,
    overdue_index,
    oversight_indexes,
    review_rules_index,
    several_open_reviews,
    steps_to_run,
    store_error,
    undated_index,
)
from hitl_compliance.stores._sqlassign import (
    AssignmentWrites,
    assignment_columns,
    assignment_tables,
)
from hitl_compliance.stores._sqlerasure import personal_tables
from hitl_compliance.stores._sqlkinds import KindsReads, finding_kinds, sqlite_kinds_index
from hitl_compliance.stores._sqlqa import QaWrites, qa_tables
from hitl_compliance.stores._sqlretention import retention_tables
from hitl_compliance.stores._sqlstops import StopWrites, stop_tables
from hitl_compliance.stores._sqlwrites import Body, Tx, run_sync

__all__ = ["SqliteReviewStore"]

_OPEN = OPEN_SQL
_BUSY_TIMEOUT_MS = 30_000

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
        *open_and_pending_indexes(p),
        f"CREATE INDEX IF NOT EXISTS {p}reviews_thread ON {p}reviews (thread_id)",
        claimed_index(p),
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
        audit_thread_index(p),
        *intents_table(_DIALECT, p),
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
        review_rules_index(p),
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
        overdue_index(p),
        f"ALTER TABLE {p}audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN global_prev_hash TEXT NOT NULL DEFAULT ''",
        f"ALTER TABLE {p}audit ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
        # The store-wide chain head: seq and hash of the last appended audit row
        # (seq 0 and GENESIS while there is none). Always exactly one row.
        audit_head_table(_DIALECT, p),
        # One row per hook call owed by an audit row (`seq`), written with it.
        *outbox_tables(_DIALECT, p),
        _backfill_ledger,
    ]


def _backfill_ledger(conn: sqlite3.Connection, p: str) -> None:
    """Seal the audit rows written before the ledger existed, in seq order, and set the head.

    Pages through the table, so memory holds one page plus one hash per thread.
    """
    backfill = LedgerBackfill(_DIALECT, p)
    while rows := _all(conn, backfill.select_page, backfill.page_params):
        conn.executemany(backfill.update, backfill.seal_page(rows)).close()
    _run_sql(conn, backfill.set_head, backfill.head)


def _schema_v4(p: str) -> list[_Step]:
    # Hook leases: a caller claims an outbox row (owner, until when) before it
    # calls the hook, so no other caller makes the same call while it runs.
    return [
        f"ALTER TABLE {p}hook_outbox ADD COLUMN lease_owner TEXT",
        f"ALTER TABLE {p}hook_outbox ADD COLUMN lease_until TEXT",
    ]


# Ordered migration steps: step i (1-based) brings the tables to schema version i.
# Append new steps; never edit or reorder released ones.
def _schema_v5(p: str) -> list[_Step]:
    # Several open reviews per thread, all of one pause (one gate's parallel items).
    return [*several_open_reviews(p)]


def _schema_v6(p: str) -> list[_Step]:
    # The SLA adopts pending reviews without a deadline (a raw run's gate records
    # its pauses with none): list_undated reads only those, oldest first.
    return [undated_index(p)]


def _schema_v7(p: str) -> list[_Step]:
    # Ledger format per audit row: 1 (Python's json.dumps) for the rows before,
    # 2 (RFC 8785 JCS) for new ones, which name it when they are written.
    return [_add_ledger_format]


def _add_ledger_format(conn: sqlite3.Connection, p: str) -> None:
    """Add `ledger_format` (1 on existing rows) unless a run of this step at another
    position in the step order added it (SQLite has no ADD COLUMN IF NOT EXISTS)."""
    columns = {row[1] for row in _all(conn, f"PRAGMA table_info({p}audit)", ())}
    if "ledger_format" not in columns:
        _run_sql(conn, f"ALTER TABLE {p}audit ADD COLUMN ledger_format INTEGER NOT NULL DEFAULT 1")


def _schema_v9(p: str) -> list[_Step]:
    # Retention and legal hold: held threads, and the decided state kept before
    # retention deletes a thread's checkpoints. (Step 8 of the released order;
    # every statement is IF NOT EXISTS, so it is safe after any earlier step.)
    return [*retention_tables(_DIALECT, p)]


def _schema_seals(p: str) -> list[_Step]:
    # Signed heads: one row per sealed (signed) chain head. Appends now refuse
    # to run without the chain head row instead of rebuilding it (in Python).
    return [seals_table(_DIALECT, p)]


def _schema_personal(p: str) -> list[_Step]:
    # Erasure: personal values of audit payloads, kept beside the chain by their
    # salted commitment's digest. IF NOT EXISTS: safe after any earlier step.
    return [*personal_tables(_DIALECT, p)]


def _schema_qa(p: str) -> list[_Step]:
    # Second-line QA: sampled auto-delivered replies and their verdicts, apart from
    # the first-line reviews. IF NOT EXISTS: safe after any earlier step.
    return [*qa_tables(_DIALECT, p)]


def _schema_stops(p: str) -> list[_Step]:
    # The stop switch: one row per stopped scope. IF NOT EXISTS: safe after any step.
    return [*stop_tables(_DIALECT, p)]


def _schema_assignment(p: str) -> list[_Step]:
    # Assignment: the review row's assignee and why, the partial index that
    # pending(assigned_to=) reads, and one delegation row per delegator.
    return [*assignment_columns(p, if_not_exists=False), *assignment_tables(_DIALECT, p)]


def _schema_oversight(p: str) -> list[_Step]:
    # Oversight reports read decided reviews by decided_at and audit rows by
    # (event, at): the window's rows only. IF NOT EXISTS: safe after any step.
    return [*oversight_indexes(p)]


def _fill_kinds(conn: sqlite3.Connection, p: str) -> None:
    """The kinds value of every open review written before step 15 (SQL cannot sort
    and de-duplicate the pairs the way `finding_kinds` does)."""
    rows = conn.execute(
        f"SELECT review_id, violations FROM {p}reviews WHERE status IN {_OPEN}"
    ).fetchall()
    conn.executemany(
        f"UPDATE {p}reviews SET finding_kinds = ? WHERE review_id = ?",
        [(finding_kinds([RuleResult.from_dict(v) for v in json.loads(r[1])]), r[0]) for r in rows],
    )


def _schema_kinds(p: str) -> list[_Step]:
    # pending(reviewer=) reads pending reviews by their findings' (rule, severity)
    # pairs: the column, its value on open reviews already written, its index.
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN finding_kinds TEXT",
        _fill_kinds,
        sqlite_kinds_index(p),
    ]


_MIGRATIONS: Sequence[Callable[[str], list[_Step]]] = (
    _schema_v1,
    _schema_v2,
    _schema_v3,
    _schema_v4,
    _schema_v5,
    _schema_v6,
    _schema_v7,  # 7: ledger format per row (RFC 8785)
    _schema_v9,  # 8: retention and legal hold
    _schema_seals,  # 9: signed heads
    _schema_personal,  # 10: personal values beside the chain (erasure)
    _schema_qa,  # 11: second-line QA reviews (QaSampling)
    _schema_stops,  # 12: the stop switch
    _schema_assignment,  # 13: assignment and delegation
    _schema_oversight,  # 14: oversight report ranges (decided_at; audit event, at)
    _schema_kinds,  # 15: pending reviews by finding kinds (pending(reviewer=))
)
SCHEMA_VERSION = len(_MIGRATIONS)


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


class _SqliteTx:
    """The statements of an open transaction on the store's connection (on its thread).

    Its methods are coroutines that never suspend: a body awaiting them runs
    to its end under [`run_sync`][hitl_compliance.stores._sqlwrites.run_sync].
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return _one(self._conn, sql, params)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(_all(self._conn, sql, params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _run_sql(self._conn, sql, params)

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows]).close()


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


_DIALECT = Dialect(
    placeholder="?",
    rule_join="CROSS JOIN",
    time=_ts,
    no_limit=-1,
    read_time=datetime.fromisoformat,  # stored as UTC ISO-8601 text with its offset
    read_json=json.loads,
    same="IS",
    latest="rowid",
    types=ColumnTypes(id="TEXT", time="TEXT", seq="INTEGER"),
)


class SqliteReviewStore(QaWrites, StopWrites, AssignmentWrites, KindsReads):
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
            `hitl_review_rules`, `hitl_holds`, `hitl_evidence` and
            `hitl_schema_version` by default).

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    dialect = _DIALECT

    def __init__(self, path: str | os.PathLike[str], *, table_prefix: str = "hitl_") -> None:
        self.path = os.fspath(path)
        super().__init__(table_prefix=table_prefix)
        # The connection and the single thread that runs everything on it; both
        # set while the store is open, both None before setup and after aclose.
        self._conn: sqlite3.Connection | None = None
        self._worker: _Worker | None = None
        # Held by setup and aclose only: calls are serialised by the worker thread.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteReviewStore({self.path!r}, table_prefix={self.table_prefix!r})"

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
        # The kinds column and index exist once their step has run (tests run fewer).
        self.kinds_column = self.kinds_ready = _schema_kinds in _MIGRATIONS
        _run_sql(conn, self._sql.create_schema_version)
        version = _one(conn, self._sql.schema_version, ())
        steps = steps_to_run(version, _MIGRATIONS, where=f"in SQLite database {self.path!r}")
        if not steps:
            return
        for step in steps:
            for statement in step(self.table_prefix):
                if isinstance(statement, str):
                    _run_sql(conn, statement)
                else:
                    statement(conn, self.table_prefix)
        _run_sql(conn, self._sql.set_schema_version, (SCHEMA_VERSION,))

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

    async def _fetch_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One read statement, in one trip to the store's thread."""
        return list(await self._read(lambda conn: _all(conn, sql, params)))

    async def _fetch_alls(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        """Several read statements, in one trip to the store's thread."""
        return await self._read(lambda conn: [list(_all(conn, q, p)) for q, p in queries])

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> Row | None:
        """One read statement's first row, in one trip to the store's thread."""
        return await self._read(lambda conn: _one(conn, sql, params))

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """One write statement in its own `BEGIN IMMEDIATE` transaction; rows changed."""
        return await self._write(lambda conn: _run_sql(conn, sql, params))

    async def _transaction(self, body: Body[_T], *, lock: str | None = None) -> _T:
        """`body` in one `BEGIN IMMEDIATE` transaction, run to its end in one trip to the thread.

        The file's write lock, taken before the first read, serialises every
        write of every connection and process, so `lock` needs nothing more.
        """
        staged = self._take_staged()
        if not staged:
            return await self._write(lambda conn: run_sync(body(_SqliteTx(conn))))
        keep = self._params(staged)

        async def with_staged(tx: Tx) -> _T:
            await tx.run_many(self._personal_sql.insert, keep)
            return await body(tx)

        try:
            return await self._write(lambda conn: run_sync(with_staged(_SqliteTx(conn))))
        except BaseException:
            self._restage(staged)
            raise
