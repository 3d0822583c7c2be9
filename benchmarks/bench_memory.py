"""Benchmark 5, memory: resident memory per 10k pending reviews on the in-memory backend.

Each variant runs in a fresh child process (`benchmarks._memory_child`):
after a 50-thread warm-up and `gc.collect()`, it parks N threads at the
review pause and reports the growth of resident memory (VmRSS) and of its
peak (VmHWM), scaled to 10k reviews.

* library: `HitlCoordinator.process` on `InMemorySaver` + `InMemoryReviewStore`;
* raw: the hand-written graph on `InMemorySaver` (checkpoints only);
* store only: `InMemoryReviewStore.open_review` with nothing else, to split
  the library's figure into checkpoints and review rows.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._backends import BenchContext
from benchmarks._result import BenchResult, new_result

__all__ = ["TARGET_RATIO", "run"]

TARGET_RATIO = 1.15
"""Issue 19: the library's RSS per 10k paused threads at most this times raw's."""

_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("library", "raw", "store")


def _child(variant: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._memory_child", variant, str(n)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child {variant} failed:\n{done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


async def run(ctx: BenchContext) -> BenchResult:
    """RSS growth per 10k paused threads: library, raw baseline, review store alone."""
    n = 100 if ctx.smoke else 10_000
    result = new_result(
        "memory",
        "Memory per 10k pending reviews (in-memory backend)",
        {"n": n, "target_ratio": TARGET_RATIO},
    )
    result["notes"] += [
        f"Each variant parks {n:,} threads in a fresh process after a 50-thread "
        "warm-up; figures are growth of VmRSS (after `gc.collect()`) and of the "
        "peak VmHWM, scaled to 10k reviews. Static style.",
        "'store only' is `InMemoryReviewStore.open_review` alone (review row + "
        "'paused' audit row, no checkpoints).",
    ]
    measured: dict[str, dict[str, Any]] = {}
    if ctx.smoke:
        # Each child is its own process, so running them side by side changes no
        # figure; it only saves the smoke run two interpreter start-ups.
        done = await asyncio.gather(*(asyncio.to_thread(_child, v, n) for v in VARIANTS))
        measured = dict(zip(VARIANTS, done, strict=True))
    else:
        for variant in VARIANTS:
            measured[variant] = await asyncio.to_thread(_child, variant, n)
    for variant in VARIANTS:
        data = measured[variant]
        scale = 10_000 / data["n"]
        rss_mib = (data["rss_after_kib"] - data["rss_before_kib"]) * scale / 1024
        peak_mib = (data["peak_after_kib"] - data["peak_before_kib"]) * scale / 1024
        result["rows"].append(
            {
                "variant": {"store": "store only"}.get(variant, variant),
                "threads": data["n"],
                "rss_mib_per_10k": round(rss_mib, 1),
                "peak_growth_mib_per_10k": round(peak_mib, 1),
                "kib_per_review": round(rss_mib * 1024 / 10_000, 2),
                "seconds": data["seconds"],
            }
        )
        print(
            f"  memory   {variant:8} {rss_mib:7.1f} MiB RSS per 10k "
            f"(peak growth {peak_mib:.1f} MiB)",
            flush=True,
        )
    lib, raw = result["rows"][0]["rss_mib_per_10k"], result["rows"][1]["rss_mib_per_10k"]
    if raw:
        met = "met" if lib / raw <= TARGET_RATIO else "not met"
        result["notes"].append(
            f"library/raw RSS ratio: {lib / raw:.2f} (target <= {TARGET_RATIO}: {met})."
        )
    return result
