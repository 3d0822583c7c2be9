"""Open a checkpointer and a review store together from one URL.

`memory://` keeps everything in the process; `sqlite:///path.db` keeps it in
one file; `postgresql://...` keeps it in PostgreSQL. The checkpointer holds
LangGraph's state, the review store holds reviews, turns and the audit log,
and both are set up (tables created) before [`open_backend`][hitl_compliance.backends.open_backend]
yields them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance.errors import ConfigurationError
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = ["Backend", "mask_url", "open_backend"]

_SQLITE_BUSY_TIMEOUT_S = 30.0
_SAVER_SETUP_LOCK = "hashtextextended('hitl_compliance.saver_setup', 0)"
_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):[^@]*@")


@dataclass(frozen=True)
class Backend:
    """A checkpointer and a review store opened together by `open_backend`.

    Attributes:
        url: the URL it was opened from, with any password replaced by `***`.
        checkpointer: the LangGraph checkpoint saver to compile the graph with.
        reviews: the review/audit store on the same database.
    """

    url: str
    checkpointer: BaseCheckpointSaver[Any]
    reviews: ReviewStore


def mask_url(url: str) -> str:
    """`url` with its password (in the user info or a `password=` parameter) replaced by `***`.

    Example:
        >>> mask_url("postgresql://app:s3cret@db.internal:5432/prod?sslmode=require")
        'postgresql://app:***@db.internal:5432/prod?sslmode=require'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        url = urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
    else:
        # urlsplit gives up on some libpq URLs (several hosts, odd brackets):
        # mask anything that looks like `scheme://user:password@`.
        url = _USERINFO.sub(r"\1:***@", url)
    return _PASSWORD_PARAM.sub(r"\1***", url)


@asynccontextmanager
async def open_backend(
    url: str, *, table_prefix: str = "hitl_", connect_timeout: float = 10.0
) -> AsyncIterator[Backend]:
    """Open a checkpointer and a review store from one URL; close both on exit.

    Supported URLs:

    * `memory://`: `InMemorySaver` and
      [`InMemoryReviewStore`][hitl_compliance.InMemoryReviewStore]; nothing survives the process.
    * `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: LangGraph's
      `AsyncSqliteSaver` and a `SqliteReviewStore`, each with its own connection
      to the same file. `sqlite:///:memory:` gives each of them a private
      in-memory database (they share no tables, so this is fine).
    * `postgresql://...` / `postgres://...`: one `psycopg_pool.AsyncConnectionPool`
      (autocommit, `dict_row`, at most 10 connections) shared by LangGraph's
      `AsyncPostgresSaver` and a `PostgresReviewStore`. The whole URL is the
      conninfo, so `?options=-csearch_path%3Dmyschema` puts every table in
      `myschema` (which must exist).

    Example:
        ```python
        async with open_backend("sqlite:///reviews.db") as backend:
            graph = build_compliance_graph(my_drafter, checkpointer=backend.checkpointer)
            coord = HitlCoordinator(graph, reviews=backend.reviews)
            result = await coord.process("thread-1", "Can I get my money back?")
        ```

    Args:
        url: where to keep checkpoints, reviews and the audit log.
        table_prefix: prefix of the review store's table names.
        connect_timeout: seconds to wait for a PostgreSQL server.

    Raises:
        ConfigurationError: unknown scheme, missing optional dependency,
            unreachable server or unusable database. The message shows the URL
            with its password masked.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    async with AsyncExitStack() as stack:
        if scheme == "memory":
            backend = Backend(
                url=mask_url(url), checkpointer=InMemorySaver(), reviews=InMemoryReviewStore()
            )
        elif scheme == "sqlite":
            backend = await _open_sqlite(url, table_prefix, stack)
        elif scheme in ("postgresql", "postgres"):
            backend = await _open_postgres(url, table_prefix, connect_timeout, stack)
        else:
            raise ConfigurationError(
                f"Unsupported backend URL {mask_url(url)!r}: use memory://, "
                "sqlite:///path/to/file.db or postgresql://user:password@host/dbname."
            )
        yield backend


async def _setup_store(store: ReviewStore, masked_url: str, stack: AsyncExitStack) -> None:
    # Registered before setup(): a half-done setup still closes its connection.
    stack.push_async_callback(store.aclose)
    try:
        await store.setup()
    except ConfigurationError as exc:
        raise ConfigurationError(f"Backend {masked_url!r}: {exc.message}") from exc


def _sqlite_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigurationError(
            f"Malformed SQLite URL {url!r}: use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite:///:memory:."
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"SQLite URL {url!r} has a query or fragment, which is not supported; "
            "remove everything after the file name."
        )
    return unquote(parts.path[1:])


async def _open_sqlite(url: str, table_prefix: str, stack: AsyncExitStack) -> Backend:
    path = _sqlite_path(url)
    try:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        from hitl_compliance.stores.sqlite import SqliteReviewStore
    except ImportError as exc:
        raise ConfigurationError(
            f'Backend {url!r} needs the sqlite extra: pip install "hitl-compliance[sqlite]"'
        ) from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"Backend {url!r}: {exc.message}") from exc

    # The store opens (and so checks) the file before the saver's connection does.
    store = SqliteReviewStore(path, table_prefix=table_prefix)
    await _setup_store(store, url, stack)
    # Our own connection rather than AsyncSqliteSaver.from_conn_string: the same
    # file is written by the review store, so the saver needs a generous busy
    # timeout too (the driver's default is 5 s).
    conn = await aiosqlite.connect(path, timeout=_SQLITE_BUSY_TIMEOUT_S)
    stack.push_async_callback(conn.close)
    saver = AsyncSqliteSaver(conn)
    try:
        await saver.setup()
    except Exception as exc:
        raise ConfigurationError(
            f"Cannot create LangGraph's checkpoint tables in {url!r}: {exc}."
        ) from exc
    return Backend(url=mask_url(url), checkpointer=saver, reviews=store)


async def _open_postgres(
    url: str, table_prefix: str, connect_timeout: float, stack: AsyncExitStack
) -> Backend:
    masked = mask_url(url)
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import DictRow, dict_row
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        from hitl_compliance.stores.postgres import PostgresReviewStore
    except ImportError as exc:
        raise ConfigurationError(
            f'Backend {masked!r} needs the postgres extra: pip install "hitl-compliance[postgres]"'
        ) from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"Backend {masked!r}: {exc.message}") from exc

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None

    def reason(exc: BaseException) -> str:
        # libpq messages do not normally echo the password; make sure of it.
        text = " ".join(str(exc).split()) or type(exc).__name__
        if password:
            text = text.replace(password, "***").replace(unquote(password), "***")
        return text

    # One direct attempt first: it fails fast with libpq's reason (refused,
    # bad password, unknown database) where the pool would only time out.
    try:
        probe = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(url, connect_timeout=max(2, round(connect_timeout))),
            timeout=connect_timeout,
        )
    except (psycopg.Error, OSError, asyncio.TimeoutError) as exc:
        raise ConfigurationError(
            f"Cannot connect to PostgreSQL at {masked}: {reason(exc)}. "
            "Check the server is running and the URL (host, port, user, password, "
            "database) is right."
        ) from None
    await probe.close()

    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
        conninfo=url,
        open=False,
        min_size=1,
        max_size=10,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    stack.push_async_callback(pool.close)
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout:
        raise ConfigurationError(
            f"Cannot open a connection pool to PostgreSQL at {masked} within "
            f"{connect_timeout} s. Check the server accepts more connections."
        ) from None
    saver = AsyncPostgresSaver(pool)
    try:
        # AsyncPostgresSaver.setup() races with itself in two processes (both
        # see no migrations and create the same objects), so setups queue on a
        # session advisory lock. It is polled with pg_try_advisory_lock: a
        # session blocked in pg_advisory_lock holds a snapshot, and the
        # holder's CREATE INDEX CONCURRENTLY waits for every older snapshot,
        # so a blocking wait deadlocks (observed: both sides hang).
        async with pool.connection() as lock_conn:
            while True:
                cur = await lock_conn.execute(
                    f"SELECT pg_try_advisory_lock({_SAVER_SETUP_LOCK}) AS locked"
                )
                row = await cur.fetchone()
                if row is not None and row["locked"]:
                    break
                await asyncio.sleep(0.05)
            try:
                await saver.setup()
            finally:
                await lock_conn.execute(f"SELECT pg_advisory_unlock({_SAVER_SETUP_LOCK})")
    except psycopg.Error as exc:
        raise ConfigurationError(
            f"Cannot create LangGraph's checkpoint tables in PostgreSQL at {masked}: "
            f"{reason(exc)}. If the URL sets search_path, create that schema first."
        ) from None
    store = PostgresReviewStore(pool, table_prefix=table_prefix)
    await _setup_store(store, masked, stack)
    return Backend(url=masked, checkpointer=saver, reviews=store)
