"""Where each benchmark runs: the library and the raw baseline on memory, SQLite, Postgres.

Both sides get the same kind of storage, configured the way their docs say:

* memory: `InMemorySaver` (plus `InMemoryReviewStore` for the library);
* SQLite: a fresh file per side in the run's temporary directory; the library
  through `open_backend("sqlite:///...")`, the baseline through
  `AsyncSqliteSaver.from_conn_string(path)`;
* Postgres: a fresh schema per side (`?options=-csearch_path%3D<schema>`),
  created first and dropped at the end, so runs never collide; the library
  through `open_backend(dsn)`, the baseline through an `AsyncPostgresSaver` on
  the pool LANGGRAPH_FACTS.md recommends (autocommit, `prepare_threshold=0`,
  `dict_row`) with the same `max_size=10` as the library's pool.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks._raw import RawGraph, Style, build_raw_graph
from benchmarks._workload import draft, rules
from hitl_compliance import ComplianceState, HitlCoordinator, build_compliance_graph
from hitl_compliance.backends import Backend, open_backend

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

__all__ = [
    "BACKENDS",
    "BackendName",
    "BenchContext",
    "Drafter",
    "raw_postgres_saver",
    "with_search_path",
]

BackendName = Literal["memory", "sqlite", "postgres"]
BACKENDS: tuple[BackendName, ...] = ("memory", "sqlite", "postgres")
Drafter = Callable[[ComplianceState], str]
POOL_MAX_SIZE = 10
"""The library's `open_backend` pool size; the baseline's pool gets the same."""


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` with `options=-csearch_path=<schema>` added to its query string."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def raw_postgres_saver(dsn: str) -> AsyncIterator[AsyncPostgresSaver]:
    """An `AsyncPostgresSaver` on the pool LangGraph documents (no `setup()`: the caller's)."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        open=False,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    try:
        yield AsyncPostgresSaver(pool)
    finally:
        await pool.close()


@dataclass
class BenchContext:
    """Settings of one run and the resources it hands out (temp files, schemas).

    Attributes:
        smoke: tiny sizes, to prove every benchmark runs (CI).
        tmpdir: where SQLite files go; removed by the runner at the end.
        postgres_dsn: the server, or `None` to skip Postgres with a reason.
        postgres_skip_reason: why Postgres is skipped, printed in every table.
        only_backends: the backends this run may use (`--backends`).
    """

    smoke: bool
    tmpdir: Path
    postgres_dsn: str | None
    postgres_skip_reason: str | None = None
    only_backends: tuple[BackendName, ...] = BACKENDS
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def backends(self, *wanted: BackendName) -> list[BackendName]:
        """The backends among `wanted` this run can and may use (Postgres needs a DSN)."""
        return [
            b
            for b in wanted
            if b in self.only_backends and (b != "postgres" or self.postgres_dsn is not None)
        ]

    def _label(self, label: str) -> str:
        return f"{label}_{next(self._counter)}"

    @asynccontextmanager
    async def postgres_schema(self, label: str) -> AsyncIterator[str]:
        """A DSN whose `search_path` is a new schema, dropped with its tables on exit."""
        import psycopg
        from psycopg import sql

        assert self.postgres_dsn is not None
        schema = f"hitl_bench_{self.run_id}_{self._label(label)}"
        async with await psycopg.AsyncConnection.connect(
            self.postgres_dsn, autocommit=True
        ) as conn:
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield with_search_path(self.postgres_dsn, schema)
        finally:
            async with await psycopg.AsyncConnection.connect(
                self.postgres_dsn, autocommit=True
            ) as conn:
                await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    def sqlite_path(self, label: str) -> Path:
        """A fresh SQLite file path in the run's temporary directory."""
        return self.tmpdir / f"{self._label(label)}.db"

    @asynccontextmanager
    async def library_backend(
        self, backend: BackendName, label: str
    ) -> AsyncIterator[tuple[Backend, str]]:
        """`open_backend(url)` on fresh storage of kind `backend`; yields it and its URL."""
        if backend == "memory":
            url = "memory://"
            async with open_backend(url) as opened:
                yield opened, url
        elif backend == "sqlite":
            url = f"sqlite:///{self.sqlite_path(label)}"
            async with open_backend(url) as opened:
                yield opened, url
        else:
            async with self.postgres_schema(label) as dsn, open_backend(dsn) as opened:
                yield opened, dsn

    @asynccontextmanager
    async def library(
        self, backend: BackendName, style: Style, label: str = "lib", *, drafter: Drafter = draft
    ) -> AsyncIterator[HitlCoordinator]:
        """A coordinator over the shared drafter (or `drafter`) and rules, on fresh storage."""
        async with self.library_backend(backend, label) as (opened, _):
            graph = build_compliance_graph(
                drafter, rules=rules(), checkpointer=opened.checkpointer, style=style
            )
            yield HitlCoordinator(graph, reviews=opened.reviews)

    @asynccontextmanager
    async def raw_saver(
        self, backend: BackendName, label: str = "raw"
    ) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        """A LangGraph saver on fresh storage, set up the way LangGraph documents it."""
        if backend == "memory":
            yield InMemorySaver()
        elif backend == "sqlite":
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            async with AsyncSqliteSaver.from_conn_string(str(self.sqlite_path(label))) as saver:
                await saver.setup()
                yield saver
        else:
            async with self.postgres_schema(label) as dsn, raw_postgres_saver(dsn) as pg_saver:
                await pg_saver.setup()
                yield pg_saver

    @asynccontextmanager
    async def raw(
        self, backend: BackendName, style: Style, label: str = "raw", *, drafter: Drafter = draft
    ) -> AsyncIterator[RawGraph]:
        """The hand-written baseline graph (over `drafter`) on fresh storage."""
        async with self.raw_saver(backend, label) as saver:
            yield build_raw_graph(drafter, rules(), checkpointer=saver, style=style)
