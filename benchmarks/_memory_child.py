"""Child process of the memory benchmark: park N paused threads, print RSS growth as JSON.

Run as `python -m benchmarks._memory_child {library|raw|store} N`. A fresh
process per variant keeps each measurement free of the others' garbage and of
the allocator's high-water mark.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from benchmarks._raw import build_raw_graph, raw_pause
from benchmarks._workload import MESSAGE, RISKY_REPLY, draft, rules
from hitl_compliance import (
    HitlCoordinator,
    InMemoryReviewStore,
    ReviewRecord,
    RuleResult,
    build_compliance_graph,
)

WARMUP = 50


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


async def _park(variant: str, n: int) -> None:
    if variant == "library":
        coord = HitlCoordinator(
            build_compliance_graph(draft, rules=rules(), checkpointer=InMemorySaver())
        )

        async def one() -> None:
            result = await coord.process(uuid.uuid4().hex, MESSAGE)
            assert result.status == "paused"

    elif variant == "raw":
        graph = build_raw_graph(
            draft, rules(), checkpointer=InMemorySaver(), style="interrupt_before"
        )

        async def one() -> None:
            await raw_pause(graph, "interrupt_before", uuid.uuid4().hex)

    elif variant == "store":
        store = InMemoryReviewStore()
        finding = RuleResult("guarantee", "review", "promises returns", ("guaranteed returns",))

        async def one() -> None:
            await store.open_review(
                ReviewRecord(
                    review_id=uuid.uuid4().hex,
                    thread_id=uuid.uuid4().hex,
                    checkpoint_id=uuid.uuid4().hex,
                    status="pending",
                    customer_message=MESSAGE,
                    draft_response=RISKY_REPLY,
                    violations=[finding],
                    requested_at=datetime.now(timezone.utc),
                ),
                owner=None,
            )

    else:
        raise SystemExit(f"unknown variant {variant!r}")

    for _ in range(WARMUP):
        await one()
    gc.collect()
    before_rss, before_peak = _status_kib("VmRSS"), _status_kib("VmHWM")
    start = time.perf_counter()
    for _ in range(n):
        await one()
    elapsed = time.perf_counter() - start
    gc.collect()
    after_rss, after_peak = _status_kib("VmRSS"), _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "variant": variant,
                "n": n,
                "rss_before_kib": before_rss,
                "rss_after_kib": after_rss,
                "peak_before_kib": before_peak,
                "peak_after_kib": after_peak,
                "seconds": round(elapsed, 2),
            }
        )
    )


def main() -> None:
    """Entry point: `python -m benchmarks._memory_child VARIANT N`."""
    variant, n = sys.argv[1], int(sys.argv[2])
    asyncio.run(_park(variant, n))


if __name__ == "__main__":
    main()
