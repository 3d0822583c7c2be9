"""Benchmark 2, throughput under concurrency: N conversations cycling at once.

`concurrency` asyncio tasks in one process each run full cycles (fresh thread
id per cycle, static `interrupt_before` style) until the level's total is
done. Reports cycles per second of wall time and the p50/p99 latency of one
cycle. Library and raw alternate per repeat (library, raw, raw, library, ...),
each on its own storage that lives for the whole backend.

The multi-process rows run the same cycles from several OS processes
(`multiprocessing`, spawn) on one PostgreSQL database, as several web workers
would: each process keeps `concurrency` cycles in flight on a pool of its own;
the processes start together (a barrier, after a warm-up) and cycles/s is all
processes' cycles over the span from the first start to the last finish.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from benchmarks._backends import BackendName, BenchContext, raw_postgres_saver
from benchmarks._harness import ConcurrentRun, ms, percentile, run_concurrently
from benchmarks._raw import Style, build_raw_graph, raw_cycle
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER, draft, rules
from hitl_compliance import HitlCoordinator, build_compliance_graph
from hitl_compliance.backends import open_backend

__all__ = ["TARGET_RATIO", "ProcessParams", "run", "run_processes"]

STYLE: Style = "interrupt_before"
TARGET_RATIO = 0.95
"""Issue 19: one process's library cycles/s at least this times raw's, at every level."""
SIDES = ("library", "raw")
_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Params:
    """Sizes of one throughput run."""

    levels: tuple[int, ...]
    min_cycles: int
    cycles_per_task: int
    repeats: int

    @classmethod
    def for_run(cls, smoke: bool) -> Params:
        """Tiny sizes in smoke mode, the documented ones otherwise."""
        if smoke:
            return cls(levels=(1, 4), min_cycles=4, cycles_per_task=1, repeats=1)
        return cls(levels=(1, 8, 32, 128), min_cycles=120, cycles_per_task=3, repeats=2)


@dataclass(frozen=True)
class ProcessParams:
    """Sizes of the multi-process run: `levels` are cycles in flight per process."""

    processes: int
    levels: tuple[int, ...]
    min_cycles: int
    cycles_per_task: int
    repeats: int
    warmup: int

    @classmethod
    def for_run(cls, smoke: bool) -> ProcessParams:
        """Two processes and a handful of cycles in smoke mode, four processes otherwise."""
        if smoke:
            return cls(
                processes=2, levels=(2,), min_cycles=2, cycles_per_task=1, repeats=1, warmup=1
            )
        return cls(
            processes=4, levels=(8, 32), min_cycles=60, cycles_per_task=3, repeats=2, warmup=8
        )


def _summarise(
    row: dict[str, Any], runs: dict[str, list[ConcurrentRun]], notes: list[str]
) -> dict[str, Any]:
    """Fill `row` with each side's cycles/s (median of repeats), percentiles and failures."""
    for side in SIDES:
        latencies = [x for run_ in runs[side] for x in run_.latencies]
        errors = [e for run_ in runs[side] for e in run_.errors]
        row[f"{side}_cycles_per_s"] = round(
            statistics.median(run_.per_second for run_ in runs[side]), 1
        )
        row[f"{side}_p50_ms"] = ms(percentile(latencies, 50)) if latencies else None
        row[f"{side}_p99_ms"] = ms(percentile(latencies, 99)) if latencies else None
        row[f"{side}_errors"] = len(errors)
        if errors:
            notes.append(
                f"{side} on {row['backend']} ({row['processes']} process(es)) at concurrency "
                f"{row['concurrency']}: {len(errors)} failed cycle(s), first: {errors[0]}"
            )
    lib_rate = float(row["library_cycles_per_s"])
    raw_rate = float(row["raw_cycles_per_s"])
    row["throughput_ratio"] = round(lib_rate / raw_rate, 3) if raw_rate else None
    return row


def _print(row: dict[str, Any]) -> None:
    print(
        f"  throughput {row['backend']:8} {row['processes']}p x{row['concurrency']:<4} "
        f"library {row['library_cycles_per_s']:7.1f}/s "
        f"(p50 {row['library_p50_ms']} p99 {row['library_p99_ms']} ms)  "
        f"raw {row['raw_cycles_per_s']:7.1f}/s "
        f"(p50 {row['raw_p50_ms']} p99 {row['raw_p99_ms']} ms)",
        flush=True,
    )


# -- several processes on one Postgres ------------------------------------------


@asynccontextmanager
async def _cycler(side: str, dsn: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """One side's full cycle on tables the parent created, over a pool of this process."""
    if side == "library":
        async with open_backend(dsn) as opened:
            coord = HitlCoordinator(
                build_compliance_graph(
                    draft, rules=rules(), checkpointer=opened.checkpointer, style=STYLE
                ),
                reviews=opened.reviews,
            )

            async def library_cycle(_: int) -> None:
                thread_id = uuid.uuid4().hex
                await coord.process(thread_id, MESSAGE)
                done = await coord.approve(thread_id, reviewer=REVIEWER)
                if done.status != "completed":
                    raise AssertionError(f"library did not deliver: {done.status}")

            yield library_cycle
    else:
        async with raw_postgres_saver(dsn) as saver:
            graph = build_raw_graph(draft, rules(), checkpointer=saver, style=STYLE)

            async def raw_one(_: int) -> None:
                await raw_cycle(graph, STYLE, uuid.uuid4().hex)

            yield raw_one


async def _serve(
    dsns: dict[str, str], commands: Queue[Any], results: Queue[Any], barrier: Barrier
) -> None:
    """Run the parent's commands `(side, concurrency, total, warmup)` until `None`."""
    while (command := await asyncio.to_thread(commands.get)) is not None:
        side, concurrency, total, warmup = command
        try:
            async with _cycler(side, dsns[side]) as call:
                await run_concurrently(call, concurrency=min(concurrency, warmup), total=warmup)
                await asyncio.to_thread(barrier.wait, _TIMEOUT_S)
                start = time.monotonic()
                done = await run_concurrently(call, concurrency=concurrency, total=total)
                end = time.monotonic()
        except Exception as exc:  # the parent reports it; the others must not wait forever
            barrier.abort()
            results.put({"failed": f"{type(exc).__name__}: {exc}"})
            continue
        results.put(
            {"start": start, "end": end, "latencies": done.latencies, "errors": done.errors}
        )


def _worker(
    dsns: dict[str, str], commands: Queue[Any], results: Queue[Any], barrier: Barrier
) -> None:
    """A worker process's entry point (module level, so `spawn` can import it)."""
    asyncio.run(_serve(dsns, commands, results, barrier))


def _drive(dsns: dict[str, str], p: ProcessParams) -> dict[int, dict[str, list[ConcurrentRun]]]:
    """Start the workers, run every level and repeat (sides alternating), stop them.

    Returns, per level, each side's runs: one `ConcurrentRun` per repeat whose
    wall time spans all processes (first start to last finish).
    """
    ctx = mp.get_context("spawn")
    results: Queue[Any] = ctx.Queue()
    barrier = ctx.Barrier(p.processes)
    commands: list[Queue[Any]] = [ctx.Queue() for _ in range(p.processes)]
    workers = [
        ctx.Process(target=_worker, args=(dsns, queue, results, barrier), daemon=True)
        for queue in commands
    ]
    for worker in workers:
        worker.start()
    out: dict[int, dict[str, list[ConcurrentRun]]] = {}
    try:
        for level in p.levels:
            total = max(p.min_cycles, p.cycles_per_task * level)
            out[level] = {side: [] for side in SIDES}
            for r in range(p.repeats):
                for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                    for queue in commands:
                        queue.put((side, level, total, p.warmup))
                    reports = [results.get(timeout=_TIMEOUT_S) for _ in workers]
                    failed = [x["failed"] for x in reports if "failed" in x]
                    if failed:
                        raise RuntimeError(f"a {side} worker process failed: {failed[0]}")
                    wall = max(x["end"] for x in reports) - min(x["start"] for x in reports)
                    out[level][side].append(
                        ConcurrentRun(
                            wall,
                            [v for x in reports for v in x["latencies"]],
                            [e for x in reports for e in x["errors"]],
                        )
                    )
        for queue in commands:
            queue.put(None)
        for worker in workers:
            worker.join(timeout=60)
            if worker.exitcode != 0:
                raise RuntimeError(f"a worker process exited with code {worker.exitcode}")
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)
    return out


async def run_processes(
    ctx: BenchContext, p: ProcessParams, notes: list[str]
) -> list[dict[str, Any]]:
    """Library and raw cycles/s from `p.processes` processes on one Postgres, one row per level.

    Each side works in a schema of its own, its tables created here first so
    the workers never race to set them up. Failed cycles are counted in the
    rows and described in `notes`.
    """
    async with ctx.postgres_schema("mp_lib") as lib_dsn, ctx.postgres_schema("mp_raw") as raw_dsn:
        async with open_backend(lib_dsn):
            pass  # creates the library's tables
        async with raw_postgres_saver(raw_dsn) as saver:
            await saver.setup()
        runs = await asyncio.to_thread(_drive, {"library": lib_dsn, "raw": raw_dsn}, p)
    rows: list[dict[str, Any]] = []
    for level, by_side in runs.items():
        total = max(p.min_cycles, p.cycles_per_task * level)
        row: dict[str, Any] = {
            "backend": "postgres",
            "processes": p.processes,
            "concurrency": level * p.processes,
            "cycles_each": total * p.processes * p.repeats,
            "target": None,
            "target_met": None,
        }
        rows.append(_summarise(row, by_side, notes))
    return rows


# -- the benchmark ----------------------------------------------------------------


async def run(ctx: BenchContext) -> BenchResult:
    """Cycles/s and latency percentiles at each concurrency level, SQLite and Postgres."""
    params = Params.for_run(ctx.smoke)
    multi = ProcessParams.for_run(ctx.smoke)
    levels, min_cycles = params.levels, params.min_cycles
    per_task, repeats = params.cycles_per_task, params.repeats
    result = new_result(
        "throughput",
        "Throughput under concurrency (one process; several on Postgres)",
        {**asdict(params), "multi_process": asdict(multi), "target_ratio": TARGET_RATIO},
    )
    result["notes"] += [
        f"Style `{STYLE}`. Each level runs max({min_cycles}, {per_task} x concurrency) "
        f"full cycles per repeat, {repeats} repeat(s) per side in alternating order; "
        "cycles/s is the median over repeats, latencies pool all repeats.",
        "One-process rows: all tasks share one event loop, as in one web worker. "
        "The library and the baseline each use a pool of at most 10 Postgres "
        "connections, and one connection per SQLite file (the library opens two: "
        "checkpoints and reviews).",
        f"Multi-process rows (Postgres): {multi.processes} OS processes (spawned once, "
        "kept for the whole run) on one database, each with its own pool of at most 10 "
        f"connections and {' or '.join(map(str, multi.levels))} cycles in flight "
        "(so 'concurrent threads' is processes x that); each process runs "
        f"max({multi.min_cycles}, {multi.cycles_per_task} x in-flight) cycles per repeat "
        f"after {multi.warmup} warm-up cycle(s), all starting together at a barrier; "
        "cycles/s is all processes' cycles over the first start to the last finish, "
        f"median of {multi.repeats} repeat(s) per side, sides alternating.",
        f"Target (issue 19): library/raw >= {TARGET_RATIO} at every one-process level on "
        "SQLite and Postgres; the multi-process rows are reported beside them, without a "
        "target.",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    backends: list[BackendName] = ctx.backends("sqlite", "postgres")
    for backend in backends:
        with guarded(result, backend):
            async with (
                ctx.library(backend, STYLE) as coord,
                ctx.raw(backend, STYLE) as graph,
            ):

                async def library_cycle(_: int) -> None:
                    thread_id = uuid.uuid4().hex
                    await coord.process(thread_id, MESSAGE)
                    done = await coord.approve(thread_id, reviewer=REVIEWER)
                    if done.status != "completed":
                        raise AssertionError(f"library did not deliver: {done.status}")

                async def raw_one(_: int) -> None:
                    await raw_cycle(graph, STYLE, uuid.uuid4().hex)

                # Warm both sides (connections, caches) before the first level.
                await run_concurrently(library_cycle, concurrency=4, total=4 if ctx.smoke else 40)
                await run_concurrently(raw_one, concurrency=4, total=4 if ctx.smoke else 40)
                for level in levels:
                    total = max(min_cycles, per_task * level)
                    runs: dict[str, list[ConcurrentRun]] = {"library": [], "raw": []}
                    for r in range(repeats):
                        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                            call = library_cycle if side == "library" else raw_one
                            runs[side].append(
                                await run_concurrently(call, concurrency=level, total=total)
                            )
                    row: dict[str, Any] = {
                        "backend": backend,
                        "processes": 1,
                        "concurrency": level,
                        "cycles_each": total * repeats,
                    }
                    _summarise(row, runs, result["notes"])
                    ratio = row["throughput_ratio"]
                    row["target"] = TARGET_RATIO
                    row["target_met"] = ratio is not None and ratio >= TARGET_RATIO
                    result["rows"].append(row)
                    _print(row)
    if "postgres" in backends:
        with guarded(result, f"postgres/{multi.processes} processes"):
            for row in await run_processes(ctx, multi, result["notes"]):
                result["rows"].append(row)
                _print(row)
    return result
