"""Storage I/O per cycle: SQLite thread hops and Postgres round trips, library vs raw.

Wall-clock numbers on a shared 2-core machine move with the neighbours'
load; the number of trips to storage does not. This counts, for a handful of
sequential cycles per backend and style:

* SQLite: trips to a worker thread, each one wake-up of the event loop:
  LangGraph's saver goes through aiosqlite (`aiosqlite.Connection._execute`,
  patched for the count: every `execute`, `fetchone`, cursor `close` and
  `commit` is one hop), the review store through its own one-thread worker
  (`SqliteReviewStore`'s `_Worker.run`, patched likewise: one hop per store
  call, the whole transaction on the thread);
* Postgres: client round trips (libpq trace: each `Sync` of the extended
  protocol or simple `Query` waits for the server), on a pool built like
  `open_backend`'s (one pool shared by saver and store) so every connection
  can be traced; `BEGIN` counts the explicit transactions.

Three workloads: the factory graph's pause-approve `cycle`, the gated ReAct
graph's cycle (`gated`, see `benchmarks.bench_gated`) and a `turn` delivered at
once (no pause; the library appends its `replied` ledger record).
"""

from __future__ import annotations

import collections
import re
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

from benchmarks import bench_gated
from benchmarks._backends import BenchContext
from benchmarks._raw import Style, build_raw_graph, raw_cycle, raw_turn
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER, draft, rules, safe_draft
from hitl_compliance import HitlCoordinator, ReviewStore, build_compliance_graph

__all__ = ["WORKLOADS", "run"]

STYLES: tuple[Style, ...] = ("interrupt_before", "command_resume")
Workload = Literal["cycle", "gated", "turn"]
WORKLOADS: tuple[Workload, ...] = ("cycle", "gated", "turn")
Call = Callable[[], Awaitable[None]]


def _library_call(
    workload: Workload, style: Style, checkpointer: BaseCheckpointSaver[Any], reviews: ReviewStore
) -> Call:
    """One library call of `workload`: a pause and its approval, or a turn delivered at once."""
    if workload == "gated":
        graph = bench_gated.library_graph(checkpointer, style)
    else:
        drafter = safe_draft if workload == "turn" else draft
        graph = build_compliance_graph(
            drafter, rules=rules(), checkpointer=checkpointer, style=style
        )
    coord = HitlCoordinator(graph, reviews=reviews)

    async def call() -> None:
        thread_id = uuid.uuid4().hex
        done = await coord.process(thread_id, MESSAGE)
        if workload != "turn":
            done = await coord.approve(thread_id, reviewer=REVIEWER)
        if done.status != "completed":
            raise AssertionError(f"library {workload} did not deliver: {done.status}")

    return call


def _raw_call(workload: Workload, style: Style, saver: BaseCheckpointSaver[Any]) -> Call:
    """The hand-written baseline's call of `workload`."""
    if workload == "gated":
        gated = bench_gated.raw_graph(saver, style)

        async def gated_call() -> None:
            await bench_gated.raw_cycle(gated, style, uuid.uuid4().hex)

        return gated_call
    graph = build_raw_graph(
        safe_draft if workload == "turn" else draft, rules(), checkpointer=saver, style=style
    )

    async def call() -> None:
        if workload == "turn":
            await raw_turn(graph, uuid.uuid4().hex)
        else:
            await raw_cycle(graph, style, uuid.uuid4().hex)

    return call


_SYNC = re.compile(r"^F\t\d+\t(?:Sync|Query)\b", re.M)
_BEGIN = re.compile(r"^F\t\d+\tQuery\t \"BEGIN", re.M)


@contextmanager
def _count_hops() -> Iterator[collections.Counter[int]]:
    """Count worker-thread trips per connection or store worker (by `id`) while active."""
    import aiosqlite

    from hitl_compliance.stores import sqlite as store_module

    counts: collections.Counter[int] = collections.Counter()
    original: Any = aiosqlite.Connection._execute
    original_run: Any = store_module._Worker.run

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts[id(self)] += 1
        return await original(self, fn, *args, **kwargs)

    def counted_run(self: Any, fn: Any, *args: Any) -> Any:
        counts[id(self)] += 1
        return original_run(self, fn, *args)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    store_module._Worker.run = counted_run  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]
        store_module._Worker.run = original_run  # type: ignore[method-assign]


async def _sqlite(
    ctx: BenchContext, workload: Workload, style: Style, cycles: int, warmup: int
) -> dict[str, Any]:
    async with (
        ctx.library_backend("sqlite", "io-lib") as (opened, _),
        ctx.raw_saver("sqlite", "io-raw") as saver,
    ):
        lib_saver = id(opened.checkpointer.conn)  # type: ignore[attr-defined]
        library_call = _library_call(workload, style, opened.checkpointer, opened.reviews)
        raw_call = _raw_call(workload, style, saver)
        for _ in range(warmup):
            await library_call()
            await raw_call()
        with _count_hops() as lib_counts:
            for _ in range(cycles):
                await library_call()
        with _count_hops() as raw_counts:
            for _ in range(cycles):
                await raw_call()
    lib_checkpoints = lib_counts.get(lib_saver, 0)
    lib_store = sum(lib_counts.values()) - lib_checkpoints
    return {
        "backend": "sqlite",
        "style": style,
        "workload": workload,
        "unit": "thread hops",
        "library_total": round((lib_checkpoints + lib_store) / cycles, 1),
        "library_checkpointer": round(lib_checkpoints / cycles, 1),
        "library_review_store": round(lib_store / cycles, 1),
        "raw_total": round(sum(raw_counts.values()) / cycles, 1),
        "library_transactions": None,
    }


def _start_traces(connections: list[Any], tracedir: Path, side: str, flags: Any) -> list[IO[str]]:
    """Send each connection's libpq protocol trace to a file of its own."""
    files: list[IO[str]] = []
    for i, conn in enumerate(connections):
        handle = (tracedir / f"{side}-{i}.trace").open("w")
        files.append(handle)
        conn.pgconn.trace(handle.fileno())
        conn.pgconn.set_trace_flags(flags)
    return files


def _read_traces(tracedir: Path, side: str) -> str:
    return "".join(p.read_text() for p in sorted(tracedir.glob(f"{side}-*.trace")))


async def _postgres(
    ctx: BenchContext, workload: Workload, style: Style, cycles: int, warmup: int
) -> dict[str, Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg.pq import Trace
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from hitl_compliance.stores.postgres import PostgresReviewStore

    async def measure(side: str, dsn: str, tracedir: Path) -> tuple[int, int]:
        connections: list[AsyncConnection[Any]] = []

        async def remember(conn: AsyncConnection[Any]) -> None:
            connections.append(conn)

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            open=False,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            configure=remember,
        )
        await pool.open(wait=True)
        try:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            if side == "library":
                store = PostgresReviewStore(pool)
                await store.setup()
                cycle = _library_call(workload, style, saver, store)
            else:
                cycle = _raw_call(workload, style, saver)
            for _ in range(warmup):
                await cycle()
            files = _start_traces(connections, tracedir, side, Trace.SUPPRESS_TIMESTAMPS)
            traced = len(connections)
            for _ in range(cycles):
                await cycle()
            if len(connections) != traced:
                raise RuntimeError("the pool opened a connection mid-count; counts would be low")
            for conn in connections:
                conn.pgconn.untrace()  # flushes the trace
            for handle in files:
                handle.close()
        finally:
            await pool.close()
        text = _read_traces(tracedir, side)
        return len(_SYNC.findall(text)), len(_BEGIN.findall(text))

    with tempfile.TemporaryDirectory(prefix="hitl-io-") as tmp:
        async with ctx.postgres_schema("io_lib") as lib_dsn:
            lib_trips, lib_tx = await measure("library", lib_dsn, Path(tmp))
        async with ctx.postgres_schema("io_raw") as raw_dsn:
            raw_trips, _ = await measure("raw", raw_dsn, Path(tmp))
    return {
        "backend": "postgres",
        "style": style,
        "workload": workload,
        "unit": "round trips",
        "library_total": round(lib_trips / cycles, 1),
        "library_checkpointer": None,
        "library_review_store": None,
        "raw_total": round(raw_trips / cycles, 1),
        "library_transactions": round(lib_tx / cycles, 1),
    }


async def run(ctx: BenchContext) -> BenchResult:
    """Trips to storage per cycle on SQLite and Postgres, both styles."""
    cycles, warmup = (3, 1) if ctx.smoke else (40, 3)
    result = new_result("io", "Storage I/O per call (counted, not timed)", {"cycles": cycles})
    result["notes"] += [
        f"{cycles} sequential calls per row after {warmup} warm-up call(s); counts are per call "
        "and do not depend on machine load. Workloads: `cycle` = the factory graph's "
        "pause and approval (as in table 1); `gated` = the gated ReAct graph's cycle "
        "(as in table 1a); `turn` = a turn delivered at once, no pause (the library "
        "appends its `replied` ledger record).",
        "SQLite: trips to a worker thread, each one wake-up of the event loop: for "
        "LangGraph's saver, calls into aiosqlite's thread (each `execute`, `fetchone`, "
        "cursor close and commit is one hop); for the review store, calls into its "
        "own one-thread worker (one per store call: the whole transaction runs "
        "there). Postgres: client round trips (libpq trace: one per `Sync` or "
        "simple `Query`), on a pool built like `open_backend`'s; 'transactions' "
        "counts explicit `BEGIN`s (LangGraph's saver writes in autocommit pipelines).",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    for workload in WORKLOADS:
        for backend in ctx.backends("sqlite", "postgres"):
            for style in STYLES:
                with guarded(result, f"{workload} {backend}/{style}"):
                    measure = _sqlite if backend == "sqlite" else _postgres
                    row = await measure(ctx, workload, style, cycles, warmup)
                    row["ratio"] = round(row["library_total"] / row["raw_total"], 2)
                    result["rows"].append(row)
                    print(
                        f"  io {workload:5} {backend:8} {style:16} library "
                        f"{row['library_total']} vs raw {row['raw_total']} {row['unit']} per call",
                        flush=True,
                    )
    return result
