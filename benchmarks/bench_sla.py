"""Benchmark 4, SLA sweep: how fast `expire_overdue` resolves overdue reviews.

Skipped with a 'not implemented yet' line while `HitlCoordinator` has no
`expire_overdue`. Otherwise, per backend: a coordinator with a 5-minute SLA
(`sla=`, `on_timeout="reject"`) parks N real paused threads through
`process` (each review gets its deadline the normal way), its clock then
moves a day ahead, and one `expire_overdue()` call resolves them all; the
benchmark reports reviews resolved per second of that call. Each resolution
is a real resume of the graph (to `rejected`), so the rate is bounded by
the cycle cost measured in benchmark 1.
"""

from __future__ import annotations

import inspect
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from benchmarks._backends import BackendName, BenchContext
from benchmarks._harness import run_concurrently
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, draft, rules
from hitl_compliance import HitlCoordinator, build_compliance_graph

__all__ = ["run"]

SLA = timedelta(minutes=5)


class MovableClock:
    """A clock the benchmark can push forward to make every review overdue."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def _sizes(smoke: bool) -> dict[str, int]:
    if smoke:
        return {"memory": 10, "sqlite": 10, "postgres": 10}
    # Parking and resolving each cost about one full cycle: about a minute and a
    # half per SQL backend at 10k on the reference machine.
    return {"memory": 10_000, "sqlite": 10_000, "postgres": 10_000}


def _coordinator(opened: Any, clock: MovableClock) -> HitlCoordinator:
    graph = build_compliance_graph(draft, rules=rules(), checkpointer=opened.checkpointer)
    kwargs: dict[str, Any] = {"reviews": opened.reviews, "clock": clock}
    accepted = inspect.signature(HitlCoordinator).parameters
    if "sla" in accepted:
        kwargs["sla"] = SLA
    if "on_timeout" in accepted:
        kwargs["on_timeout"] = "reject"
    return HitlCoordinator(graph, **kwargs)


async def _sweep(ctx: BenchContext, backend: BackendName, n: int) -> dict[str, Any]:
    async with ctx.library_backend(backend, "sla") as (opened, _):
        clock = MovableClock()
        coord = _coordinator(opened, clock)

        async def park(_: int) -> None:
            await coord.process(uuid.uuid4().hex, MESSAGE)

        parked = await run_concurrently(park, concurrency=8, total=n)
        if parked.errors:
            raise RuntimeError(f"parking threads failed: {parked.errors[0]}")
        clock.offset = timedelta(days=1)
        before = len(await coord.pending())
        start = time.perf_counter()
        # Any: the method is looked up at run time (the benchmark predates the feature).
        results = await cast(Any, coord).expire_overdue()
        elapsed = time.perf_counter() - start
        left = len(await coord.pending())
    return {
        "backend": backend,
        "overdue": before,
        "resolved": len(results),
        "still_pending": left,
        "seconds": round(elapsed, 3),
        "resolved_per_s": round(len(results) / elapsed, 1) if elapsed else None,
    }


async def run(ctx: BenchContext) -> BenchResult:
    """Reviews resolved per second by one `expire_overdue()` call, or a skip line."""
    sizes = _sizes(ctx.smoke)
    result = new_result("sla", "SLA sweep over overdue reviews", {"reviews": sizes})
    if not hasattr(HitlCoordinator, "expire_overdue"):
        result["status"] = "skipped"
        result["reason"] = (
            "not implemented yet: HitlCoordinator has no `expire_overdue`; "
            "this benchmark runs once the SLA feature lands."
        )
        print(f"  sla      skipped: {result['reason']}", flush=True)
        return result
    result["notes"] += [
        f"N real paused threads per backend (through `process`, SLA {SLA}, "
        "`on_timeout='reject'`); then the coordinator's clock moves a day ahead "
        "and one `expire_overdue()` call resolves them (each a real graph resume "
        "to `rejected`, plus claim, completion and audit).",
        f"N = {sizes['memory']:,} on memory, {sizes['sqlite']:,} on SQLite and "
        f"{sizes['postgres']:,} on Postgres (overdue reviews are found through a "
        "partial index, so the rate does not depend on N).",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    backends: list[BackendName] = ctx.backends("memory", "sqlite", "postgres")
    for backend in backends:
        with guarded(result, backend):
            row = await _sweep(ctx, backend, sizes[backend])
            result["rows"].append(row)
            print(
                f"  sla      {backend:8} {row['resolved']:,} resolved in {row['seconds']} s "
                f"({row['resolved_per_s']}/s)",
                flush=True,
            )
    return result
