"""A small timing harness: warm-up, interleaved repeats, medians and percentiles.

Kept deliberately plain (no pytest-benchmark, no pyperf) so the method is
visible in thirty lines: every variant is warmed up first, then the variants
run in rounds whose order alternates (`A B`, `B A`, `A B`, ...), so slow drift
of the machine (page cache, autovacuum, CPU frequency, a growing database)
hits all variants alike. A full `gc.collect()` precedes every block so no
variant pays for another's garbage.
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConcurrentRun",
    "Interleaved",
    "interleave",
    "ms",
    "percentile",
    "run_concurrently",
    "summary",
]

Call = Callable[[], Awaitable[object]]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, linearly interpolated.

    Raises:
        ValueError: `values` is empty.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for reports."""
    return round(seconds * 1000, 3)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Count, median, p99 and mean of latencies in seconds, as milliseconds."""
    return {
        "n": len(values),
        "median_ms": ms(statistics.median(values)),
        "p99_ms": ms(percentile(values, 99)),
        "mean_ms": ms(statistics.fmean(values)),
    }


@dataclass
class Interleaved:
    """Per-call latencies (seconds) of each variant, overall and per round."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    rounds: dict[str, list[list[float]]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median latency of `name` over all measured calls."""
        return statistics.median(self.samples[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median of `numerator` over median of `denominator`."""
        return self.median(numerator) / self.median(denominator)

    def round_ratios(self, numerator: str, denominator: str) -> list[float]:
        """The ratio of medians computed within each round (its spread shows the noise)."""
        return [
            statistics.median(a) / statistics.median(b)
            for a, b in zip(self.rounds[numerator], self.rounds[denominator], strict=True)
        ]


async def interleave(
    variants: Mapping[str, Call],
    *,
    warmup: int,
    rounds: int,
    per_round: int,
) -> Interleaved:
    """Time each variant `rounds * per_round` times, alternating the order every round.

    Args:
        variants: name -> a coroutine function doing one measured operation
            (each call must use fresh state, e.g. a fresh thread id).
        warmup: untimed calls of each variant before measuring.
        rounds: number of rounds; round `r` runs the variants in order, or in
            reverse order when `r` is odd.
        per_round: timed calls of each variant per round.
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            await variants[name]()
    result = Interleaved(samples={n: [] for n in names}, rounds={n: [] for n in names})
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            call = variants[name]
            gc.collect()
            block: list[float] = []
            for _ in range(per_round):
                start = time.perf_counter()
                await call()
                block.append(time.perf_counter() - start)
            result.samples[name].extend(block)
            result.rounds[name].append(block)
    return result


@dataclass
class ConcurrentRun:
    """Outcome of `run_concurrently`: wall time, per-call latencies, failures."""

    wall_s: float
    latencies: list[float]
    errors: list[str]

    @property
    def per_second(self) -> float:
        """Successful calls per second of wall time."""
        return len(self.latencies) / self.wall_s if self.wall_s > 0 else 0.0


async def run_concurrently(
    call: Callable[[int], Awaitable[Any]], *, concurrency: int, total: int
) -> ConcurrentRun:
    """Run `call(i)` for `i in range(total)` with `concurrency` calls in flight at a time.

    A failing call is recorded (its first line) and does not stop the run, so
    a concurrency bug shows up as an error count rather than a crash.
    """
    next_index = 0
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            start = time.perf_counter()
            try:
                await call(index)
            except Exception as exc:  # recorded and reported, never swallowed silently
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            latencies.append(time.perf_counter() - start)

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ConcurrentRun(time.perf_counter() - start, latencies, errors)
