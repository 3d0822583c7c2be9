"""Benchmark 6, large edits: time and memory of one `approve(response=...)` per edit size.

Per backend, a coordinator whose `InputLimits` are raised to 12 million
characters pauses a fresh thread, and one reviewer approves it with an edited
reply of 1, 2, 5 and 10 MB (ASCII prose, a different text per call, so no
cache is hit). Each size is measured twice on fresh threads: once for wall
time (nothing traced), once under `tracemalloc` for the peak of Python
allocations during the call. Where Linux allows (`/proc/self/clear_refs`), the
peak resident set growth of the timed call is reported too, which also counts
what SQLite and the database driver allocate. The per-MB slope of a
least-squares fit over the sizes shows whether the cost is linear: the fitted
line and the per-size figures agree when it is.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from benchmarks._backends import BackendName, BenchContext
from benchmarks._result import BenchResult, guarded, new_result
from benchmarks._workload import MESSAGE, REVIEWER, draft, rules
from hitl_compliance import HitlCoordinator, InputLimits, build_compliance_graph

__all__ = ["edit_text", "fit", "run"]

MB = 1_000_000
LIMITS = InputLimits(max_text_chars=12 * MB)
"""Raised past the default (1,000,000 characters) so a 10 MB edit is under the limit."""

_PROSE = (
    "The value of investments can fall as well as rise and you may get back less "
    "than you invested. Past performance is not a reliable indicator of future results.\n"
)
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _sizes(smoke: bool) -> list[int]:
    """Edit sizes in characters (bytes: the text is ASCII)."""
    if smoke:
        return [10_000, 20_000, 50_000, 100_000]
    return [1 * MB, 2 * MB, 5 * MB, 10 * MB]


def edit_text(chars: int) -> str:
    """`chars` characters of prose that trips no rule, different on every call."""
    head = f"Edited {uuid.uuid4().hex}. "
    body = _PROSE * (chars // len(_PROSE) + 1)
    return (head + body)[:chars]


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of `ys` over `xs`."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    )
    return slope, mean_y - slope * mean_x


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


async def _paused(coord: HitlCoordinator) -> str:
    thread = uuid.uuid4().hex
    result = await coord.process(thread, MESSAGE)
    if result.status != "paused":
        raise RuntimeError(f"the benchmark turn did not pause: {result.status}")
    return thread


async def _timed(coord: HitlCoordinator, chars: int) -> tuple[float, float | None]:
    """Seconds of one approve with an edit of `chars`, and the peak RSS growth (MiB) or None."""
    thread = await _paused(coord)
    text = edit_text(chars)
    gc.collect()
    rss = _status_kib("VmRSS") if _reset_peak_rss() else None
    start = time.perf_counter()
    result = await coord.approve(thread, reviewer=REVIEWER, response=text)
    elapsed = time.perf_counter() - start
    hwm = _status_kib("VmHWM")
    if result.agent_response != text:
        raise RuntimeError("the edit was not delivered as given")
    growth = None if rss is None or hwm is None else (hwm - rss) / 1024
    return elapsed, growth


async def _traced(coord: HitlCoordinator, chars: int) -> float:
    """The tracemalloc peak (MiB) of one approve with an edit of `chars`."""
    thread = await _paused(coord)
    text = edit_text(chars)
    gc.collect()
    tracemalloc.start()
    try:
        await coord.approve(thread, reviewer=REVIEWER, response=text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


async def _measure(
    ctx: BenchContext, backend: BackendName, sizes: list[int]
) -> list[dict[str, Any]]:
    async with ctx.library_backend(backend, "edit") as (opened, _):
        graph = build_compliance_graph(draft, rules=rules(), checkpointer=opened.checkpointer)
        coord = HitlCoordinator(graph, reviews=opened.reviews, limits=LIMITS)
        await _timed(coord, sizes[0])  # warm-up: imports, statements, caches
        rows: list[dict[str, Any]] = []
        for chars in sizes:
            seconds, rss = await _timed(coord, chars)
            peak = await _traced(coord, chars)
            mb = chars / MB
            rows.append(
                {
                    "backend": backend,
                    "edit_mb": mb,
                    "seconds": round(seconds, 3),
                    "s_per_mb": round(seconds / mb, 3),
                    "peak_mib": round(peak, 1),
                    "peak_mib_per_mb": round(peak / mb, 2),
                    "rss_peak_mib": None if rss is None else round(rss, 1),
                }
            )
    xs = [r["edit_mb"] for r in rows]
    s_slope, s_icpt = fit(xs, [r["seconds"] for r in rows])
    m_slope, m_icpt = fit(xs, [r["peak_mib"] for r in rows])
    rows.append(
        {
            "backend": backend,
            "edit_mb": "fit",
            "seconds": f"{s_icpt:+.3f} + {s_slope:.3f}/MB",
            "s_per_mb": round(s_slope, 3),
            "peak_mib": f"{m_icpt:+.1f} + {m_slope:.2f}/MB",
            "peak_mib_per_mb": round(m_slope, 2),
            "rss_peak_mib": None,
        }
    )
    return rows


async def run(ctx: BenchContext) -> BenchResult:
    """Seconds and peak memory of one edit per size and backend, with the per-MB slope."""
    sizes = _sizes(ctx.smoke)
    result = new_result(
        "edit", "Large edits: one approve with an edited reply", {"sizes_chars": sizes}
    )
    result["notes"] += [
        "One `approve(thread, reviewer=..., response=edit)` per size on a freshly paused "
        f"thread, with `InputLimits(max_text_chars={LIMITS.max_text_chars:,})` (the "
        "default, 1,000,000 characters, refuses anything past 1 MB). The edit is ASCII "
        "prose that trips no rule, different each call. The call re-runs the rules on the "
        "edit, claims and audits it (two salted commitments to the text), resumes the "
        "graph and delivers it.",
        "Seconds: one timed call per size. Peak MiB: the `tracemalloc` peak of a second "
        "call (Python allocations only). RSS peak: growth of the resident set's peak "
        "during the timed call (includes SQLite and driver buffers; Linux only).",
        "The `fit` row is a least-squares line over the sizes: linear cost means the "
        "per-MB figures of every size sit near its slope.",
    ]
    if "postgres" not in ctx.backends("postgres") and ctx.postgres_skip_reason:
        result["skipped"].append(f"postgres: {ctx.postgres_skip_reason}")
    for backend in ctx.backends("memory", "sqlite", "postgres"):
        with guarded(result, backend):
            rows = await _measure(ctx, backend, sizes)
            result["rows"] += rows
            for row in rows:
                print(
                    f"  edit     {backend:8} {row['edit_mb']!s:>5} MB: {row['seconds']} s, "
                    f"peak {row['peak_mib']} MiB, RSS peak {row['rss_peak_mib']} MiB",
                    flush=True,
                )
    return result
