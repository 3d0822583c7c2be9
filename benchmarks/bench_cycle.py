"""Benchmark 1, cycle overhead: process -> pause -> approve -> completed, library vs raw.

One cycle is, for the library, `coord.process(t, msg)` (pauses) then
`coord.approve(t, reviewer=...)` (delivers); for the baseline, the hand-written
graph driven the way a careful user must (see `benchmarks._raw`). Every cycle
uses a fresh thread id. The two run interleaved in alternating rounds on
separate but identically configured storage, sequentially (one cycle in
flight), so the ratio of medians is the library's per-cycle overhead.
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from benchmarks._backends import BackendName, BenchContext
from benchmarks._harness import Interleaved, interleave, ms, percentile
from benchmarks._raw import Style, raw_cycle
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER

__all__ = ["TARGET_RATIO", "cycle_row", "run"]

TARGET_RATIO = 1.15
STYLES: tuple[Style, ...] = ("interrupt_before", "command_resume")


def _params(ctx: BenchContext) -> dict[str, dict[str, int]]:
    if ctx.smoke:
        return {
            b: {"warmup": 2, "rounds": 2, "per_round": 2} for b in ("memory", "sqlite", "postgres")
        }
    return {
        "memory": {"warmup": 40, "rounds": 20, "per_round": 40},
        "sqlite": {"warmup": 30, "rounds": 10, "per_round": 30},
        "postgres": {"warmup": 30, "rounds": 10, "per_round": 30},
    }


async def _measure(
    ctx: BenchContext, backend: BackendName, style: Style, p: dict[str, int]
) -> Interleaved:
    """Interleaved cycle latencies of library and raw on fresh storage."""
    async with (
        ctx.library(backend, style) as coord,
        ctx.raw(backend, style) as graph,
    ):

        async def library_cycle() -> None:
            thread_id = uuid.uuid4().hex
            paused = await coord.process(thread_id, MESSAGE)
            if paused.status != "paused":
                raise AssertionError(f"library did not pause: {paused.status}")
            done = await coord.approve(thread_id, reviewer=REVIEWER)
            if done.status != "completed":
                raise AssertionError(f"library did not deliver: {done.status}")

        async def raw_one() -> None:
            await raw_cycle(graph, style, uuid.uuid4().hex)

        return await interleave(
            {"library": library_cycle, "raw": raw_one},
            warmup=p["warmup"],
            rounds=p["rounds"],
            per_round=p["per_round"],
        )


def cycle_row(backend: str, style: str, timed: Interleaved, target: float) -> dict[str, Any]:
    """One results row of an interleaved library-vs-raw cycle measurement."""
    per_round = timed.round_ratios("library", "raw")
    ratio = timed.ratio("library", "raw")
    return {
        "backend": backend,
        "style": style,
        "cycles_each": len(timed.samples["library"]),
        "library_median_ms": ms(timed.median("library")),
        "raw_median_ms": ms(timed.median("raw")),
        "library_p99_ms": ms(percentile(timed.samples["library"], 99)),
        "raw_p99_ms": ms(percentile(timed.samples["raw"], 99)),
        "overhead_ms": ms(timed.median("library") - timed.median("raw")),
        "ratio": round(ratio, 3),
        "round_ratio_min": round(min(per_round), 3),
        "round_ratio_median": round(statistics.median(per_round), 3),
        "round_ratio_max": round(max(per_round), 3),
        "target_met": ratio <= target,
    }


async def run(ctx: BenchContext) -> BenchResult:
    """Measure library and raw cycle latency on every available backend, both styles."""
    params = _params(ctx)
    result = new_result("cycle", "Cycle overhead (sequential, one cycle in flight)", params)
    result["notes"] += [
        "One cycle = start a turn that pauses for review, then approve it and deliver. "
        "Library: `HitlCoordinator.process` + `approve`. Raw: the hand-written graph "
        "with the same five nodes, the same drafter and rule objects and the same "
        "pydantic `ComplianceState` schema; static style: `ainvoke` + `aget_state` "
        "(to learn it paused) + `aupdate_state(as_node='human_approval')` + "
        "`ainvoke(None)`; dynamic style: `ainvoke` (reads `__interrupt__`) + "
        "`ainvoke(Command(resume=...))`.",
        "The drafter returns at once: all of the time is orchestration and storage.",
        f"Target: library/raw <= {TARGET_RATIO}. The ratio is median over median; "
        "'per-round ratio' is the range of the ratio computed within each round.",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    backends: list[BackendName] = ctx.backends("memory", "sqlite", "postgres")
    for backend in backends:
        p = params[backend]
        for style in STYLES:
            with guarded(result, f"{backend}/{style}"):
                timed = await _measure(ctx, backend, style, p)
                row = cycle_row(backend, style, timed, TARGET_RATIO)
                result["rows"].append(row)
                print(
                    f"  cycle {backend:8} {style:16} library {row['library_median_ms']:7.2f} ms"
                    f"  raw {row['raw_median_ms']:7.2f} ms  ratio {row['ratio']:.3f}",
                    flush=True,
                )
    return result
