"""Benchmark 2, throughput under concurrency: N conversations cycling at once.

`concurrency` asyncio tasks in one process each run full cycles (fresh thread
id per cycle, static `interrupt_before` style) until the level's total is
done. Reports cycles per second of wall time and the p50/p99 latency of one
cycle. Library and raw alternate per repeat (library, raw, raw, library, ...),
each on its own storage that lives for the whole backend.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._backends import BackendName, BenchContext
from benchmarks._harness import ConcurrentRun, ms, percentile, run_concurrently
from benchmarks._raw import Style, raw_cycle
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER

__all__ = ["run"]

STYLE: Style = "interrupt_before"


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


async def run(ctx: BenchContext) -> BenchResult:
    """Cycles/s and latency percentiles at each concurrency level, SQLite and Postgres."""
    params = Params.for_run(ctx.smoke)
    levels, min_cycles = params.levels, params.min_cycles
    per_task, repeats = params.cycles_per_task, params.repeats
    result = new_result("throughput", "Throughput under concurrency (one process)", asdict(params))
    result["notes"] += [
        f"Style `{STYLE}`. Each level runs max({min_cycles}, {per_task} x concurrency) "
        f"full cycles per repeat, {repeats} repeat(s) per side in alternating order; "
        "cycles/s is the median over repeats, latencies pool all repeats.",
        "All tasks share one event loop (one process), as in one web worker. "
        "The library and the baseline each use a pool of at most 10 Postgres "
        "connections, and one connection per SQLite file (the library opens two: "
        "checkpoints and reviews).",
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
                    order = ["library", "raw"]
                    for r in range(repeats):
                        for side in order if r % 2 == 0 else order[::-1]:
                            call = library_cycle if side == "library" else raw_one
                            runs[side].append(
                                await run_concurrently(call, concurrency=level, total=total)
                            )
                    row: dict[str, Any] = {
                        "backend": backend,
                        "concurrency": level,
                        "cycles_each": total * repeats,
                    }
                    for side in ("library", "raw"):
                        latencies = [x for run_ in runs[side] for x in run_.latencies]
                        errors = [e for run_ in runs[side] for e in run_.errors]
                        row[f"{side}_cycles_per_s"] = round(
                            statistics.median(run_.per_second for run_ in runs[side]), 1
                        )
                        row[f"{side}_p50_ms"] = ms(percentile(latencies, 50)) if latencies else None
                        row[f"{side}_p99_ms"] = ms(percentile(latencies, 99)) if latencies else None
                        row[f"{side}_errors"] = len(errors)
                        if errors:
                            result["notes"].append(
                                f"{side} on {backend} at concurrency {level}: {len(errors)} "
                                f"failed cycle(s), first: {errors[0]}"
                            )
                    lib_rate = float(row["library_cycles_per_s"])
                    raw_rate = float(row["raw_cycles_per_s"])
                    row["throughput_ratio"] = round(lib_rate / raw_rate, 3) if raw_rate else None
                    result["rows"].append(row)
                    print(
                        f"  throughput {backend:8} x{level:<4} library {lib_rate:7.1f}/s "
                        f"(p50 {row['library_p50_ms']} p99 {row['library_p99_ms']} ms)  "
                        f"raw {raw_rate:7.1f}/s "
                        f"(p50 {row['raw_p50_ms']} p99 {row['raw_p99_ms']} ms)",
                        flush=True,
                    )
    return result
