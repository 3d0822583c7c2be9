"""Open a checkpointer and a review store together from one URL.

`memory://` keeps everything in the process; `sqlite:///path.db` keeps it in
one file; `postgresql://...` (or a libpq key/value string, `host=db dbname=app`)
keeps it in PostgreSQL. The checkpointer holds
LangGraph's state, the review store holds reviews, turns and the audit log,
and both are set up (tables created) before [`open_backend`][hitl_compliance.backends.open_backend]
yields them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance._secrets import is_keyvalue_dsn, mask_dsn, scrub
from hitl_compliance.errors import ConfigurationError
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = ["Backend", "mask_url", "open_backend", "review_store"]

_SQLITE_BUSY_TIMEOUT_S = 30.0
_SAVER_SETUP_LOCK = "hashtextextended('hitl_compliance.saver_setup', 0)"

logger = logging.getLogger("hitl_compliance")


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
    """`url` with every password replaced by `***`: a URL's or a libpq key/value string's.

    Masks the user info password and `password=` / `sslpassword=` query
    parameters of a URL, and `password` / `sslpassword` values of a key/value
    string (bare, single-quoted, with backslash escapes). A key/value string
    that stops parsing is masked from that point on, so a typo never prints a
    password. Every error message and log line of the library shows DSNs this way.

    Example:
        >>> mask_url("postgresql://app:s3cret@db.internal:5432/prod?sslmode=require")
        'postgresql://app:***@db.internal:5432/prod?sslmode=require'
        >>> mask_url("host=db.internal user=app password='s3 cret' dbname=prod")
        'host=db.internal user=app password=*** dbname=prod'
    """
    return mask_dsn(url)


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
    * `postgresql://...` / `postgres://...`, or a libpq key/value string
      (`host=db user=app dbname=prod`): one `psycopg_pool.AsyncConnectionPool`
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
            with its password masked (see [`mask_url`][hitl_compliance.backends.mask_url]).
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if not scheme and is_keyvalue_dsn(url):
        scheme = "postgresql"  # libpq's key/value spelling
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
        logger.info("opened backend %s", backend.url)
        yield backend


def review_store(url: str, *, table_prefix: str = "hitl_") -> ReviewStore:
    """A review store for `url` (as `open_backend` reads it), not yet open: `setup()` opens it.

    For a module that cannot await where it builds its graph, such as one served
    by LangGraph Server: pass it to
    [`attach_authority`][hitl_compliance.attach_authority], which sets it up
    before its first use. The checkpointer is the server's.

    Example:
        ```python
        reviews = review_store(os.environ.get("HITL_REVIEWS_URL", "sqlite:///reviews.db"))
        graph = attach_authority(builder.compile(), reviews=reviews, policy=policy)
        ```

    Raises:
        ConfigurationError: unknown scheme or missing optional dependency.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if not scheme and is_keyvalue_dsn(url):
        scheme = "postgresql"
    if scheme == "memory":
        return InMemoryReviewStore()
    try:
        if scheme == "sqlite":
            from hitl_compliance.stores.sqlite import SqliteReviewStore

            return SqliteReviewStore(_sqlite_path(url), table_prefix=table_prefix)
        if scheme in ("postgresql", "postgres"):
            from hitl_compliance.stores.postgres import PostgresReviewStore

            return PostgresReviewStore.from_conn_string(url, table_prefix=table_prefix)
    except ImportError as exc:
        extra = "sqlite" if scheme == "sqlite" else "postgres"
        raise ConfigurationError(
            f"Review store {mask_url(url)!r} needs the {extra} extra: "
            f'pip install "hitl-compliance[{extra}]"'
        ) from exc
    raise ConfigurationError(
        f"Unsupported review store URL {mask_url(url)!r}: use memory://, "
        "sqlite:///path/to/file.db or postgresql://user:password@host/dbname."
    )


async def _setup_store(store: ReviewStore, masked_url: str, stack: AsyncExitStack) -> None:
    # Registered before setup(): a half-done setup still closes its connection.
    stack.push_async_callback(store.aclose)
    try:
        await store.setup()
    except ConfigurationError as exc:
        raise ConfigurationError(f"Backend {masked_url!r}: {exc.message}") from exc


def _sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///...` URL (`:memory:` for a private in-memory database)."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigurationError(
            f"Malformed SQLite URL {mask_url(url)!r}: use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite:///:memory:."
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"SQLite URL {mask_url(url)!r} has a query or fragment, which is not supported; "
            "remove everything after the file name."
        )
    return unquote(parts.path[1:])


async def _open_sqlite(url: str, table_prefix: str, stack: AsyncExitStack) -> Backend:
    path = _sqlite_path(url)
    url = mask_url(url)  # from here on, only for messages
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
            f"Cannot create LangGraph's checkpoint tables in {url!r}: {scrub(str(exc), url)}."
        ) from exc
    return Backend(url=url, checkpointer=saver, reviews=store)


async def _open_postgres(
    url: str, table_prefix: str, connect_timeout: float, stack: AsyncExitStack
) -> Backend:
    masked = mask_url(url)
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.conninfo import conninfo_to_dict
        from psycopg.rows import DictRow, dict_row
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        from hitl_compliance.stores.postgres import PostgresReviewStore
    except ImportError as exc:
        raise ConfigurationError(
            f'Backend {masked!r} needs the postgres extra: pip install "hitl-compliance[postgres]"'
        ) from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"Backend {masked!r}: {exc.message}") from exc

    def reason(exc: BaseException) -> str:
        # libpq's connection errors do not echo the password, but its parse
        # errors quote the text around the fault: scrub every secret of the DSN.
        return scrub(" ".join(str(exc).split()) or type(exc).__name__, url)

    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        # Caught before any connection or pool exists: the pool would log the
        # parse error (quoting the DSN) on every retry until it timed out.
        raise ConfigurationError(
            f"Malformed PostgreSQL connection string {masked!r}: {reason(exc)}. Use "
            "postgresql://user:password@host:port/dbname or libpq's key/value form "
            "(host=... dbname=...; quote values with spaces: password='a b')."
        ) from None

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
