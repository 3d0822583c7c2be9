"""Benchmark 1, cycle overhead: process -> pause -> approve -> completed, library vs raw.

One cycle is, for the library, `coord.process(t, msg)` (pauses) then
`coord.approve(t, reviewer=...)` (delivers); for the baseline, the hand-written
graph driven the way a careful user must (see `benchmarks._raw`). Every cycle
uses a fresh thread id. The two run interleaved in alternating rounds on
separate but identically configured storage, sequentially (one cycle in
flight), so the ratio of medians is the library's per-cycle overhead.

Rows of kind `turn` time the other common path, a turn whose draft passes the
rules and is delivered at once: `coord.process(t, msg)` returning `completed`
(the library also writes the turn's `replied` ledger record) against the raw
graph's one `ainvoke`.
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any, Literal

from benchmarks._backends import BackendName, BenchContext
from benchmarks._harness import Interleaved, interleave, ms, percentile
from benchmarks._raw import Style, raw_cycle, raw_turn
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER, SAFE_REPLY, safe_draft

__all__ = ["KINDS", "TARGET_RATIO", "Kind", "cycle_row", "run"]

TARGET_RATIO = 1.05
"""Issue 19: library / raw median at most this, for cycles and non-paused turns alike."""
STYLES: tuple[Style, ...] = ("interrupt_before", "command_resume")
Kind = Literal["cycle", "turn"]
KINDS: tuple[Kind, ...] = ("cycle", "turn")


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


async def _measure_turn(
    ctx: BenchContext, backend: BackendName, style: Style, p: dict[str, int]
) -> Interleaved:
    """Interleaved latencies of a turn delivered at once (no pause), library and raw."""
    async with (
        ctx.library(backend, style, drafter=safe_draft) as coord,
        ctx.raw(backend, style, drafter=safe_draft) as graph,
    ):

        async def library_turn() -> None:
            done = await coord.process(uuid.uuid4().hex, MESSAGE)
            if done.status != "completed" or done.agent_response != SAFE_REPLY:
                raise AssertionError(f"library did not deliver at once: {done.status}")

        async def raw_one() -> None:
            await raw_turn(graph, uuid.uuid4().hex)

        return await interleave(
            {"library": library_turn, "raw": raw_one},
            warmup=p["warmup"],
            rounds=p["rounds"],
            per_round=p["per_round"],
        )


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


def cycle_row(
    backend: str, style: str, timed: Interleaved, target: float, kind: Kind = "cycle"
) -> dict[str, Any]:
    """One results row of an interleaved library-vs-raw measurement (a cycle or a turn)."""
    per_round = timed.round_ratios("library", "raw")
    ratio = round(timed.ratio("library", "raw"), 3)  # judged as shown
    return {
        "backend": backend,
        "style": style,
        "kind": kind,
        "cycles_each": len(timed.samples["library"]),
        "library_median_ms": ms(timed.median("library")),
        "raw_median_ms": ms(timed.median("raw")),
        "library_p99_ms": ms(percentile(timed.samples["library"], 99)),
        "raw_p99_ms": ms(percentile(timed.samples["raw"], 99)),
        "overhead_ms": ms(timed.median("library") - timed.median("raw")),
        "ratio": ratio,
        "round_ratio_min": round(min(per_round), 3),
        "round_ratio_median": round(statistics.median(per_round), 3),
        "round_ratio_max": round(max(per_round), 3),
        "target": target,
        "target_met": ratio <= target,
    }


async def run(ctx: BenchContext) -> BenchResult:
    """Measure library and raw cycle latency on every available backend, both styles."""
    params = _params(ctx)
    result = new_result("cycle", "Cycle and turn overhead (sequential, one call in flight)", params)
    result["notes"] += [
        "One cycle = start a turn that pauses for review, then approve it and deliver. "
        "Library: `HitlCoordinator.process` + `approve`. Raw: the hand-written graph "
        "with the same five nodes, the same drafter and rule objects and the same "
        "pydantic `ComplianceState` schema; static style: `ainvoke` + `aget_state` "
        "(to learn it paused) + `aupdate_state(as_node='human_approval')` + "
        "`ainvoke(None)`; dynamic style: `ainvoke` (reads `__interrupt__`) + "
        "`ainvoke(Command(resume=...))`.",
        "Kind `turn` = one turn whose draft passes the rules, delivered at once on a "
        "fresh thread. Library: `HitlCoordinator.process` returning `completed` (it "
        "also appends the turn's `replied` ledger record). Raw: the same graph's one "
        "`ainvoke`, whose returned state shows the reply was sent; nothing else.",
        "The drafter returns at once: all of the time is orchestration and storage.",
        f"Target (issue 19): library/raw <= {TARGET_RATIO} for cycles and turns. The ratio "
        "is median over median; 'per-round ratio' is the range of the ratio computed "
        "within each round. 'Calls each' counts cycles or turns per side.",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    backends: list[BackendName] = ctx.backends("memory", "sqlite", "postgres")
    for kind in KINDS:
        measure = _measure if kind == "cycle" else _measure_turn
        for backend in backends:
            for style in STYLES:
                with guarded(result, f"{kind} {backend}/{style}"):
                    timed = await measure(ctx, backend, style, params[backend])
                    row = cycle_row(backend, style, timed, TARGET_RATIO, kind)
                    result["rows"].append(row)
                    print(
                        f"  {kind:5} {backend:8} {style:16} library "
                        f"{row['library_median_ms']:7.2f} ms  raw {row['raw_median_ms']:7.2f} ms"
                        f"  ratio {row['ratio']:.3f}",
                        flush=True,
                    )
    return result
