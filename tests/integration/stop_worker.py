"""A second process for the stop-switch latency test: run turns until one pauses.

Usage: python stop_worker.py URL PREFIX READY

Opens a coordinator on the store (a factory graph whose drafts break no rule),
runs one turn so its caches are warm, creates READY, then runs turns back to
back on fresh threads. Each turn's line is `<outcome> <start> <end>` (wall
clock, seconds) on stdout; it exits after the first paused turn, or with
status 3 after 20 s without one.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph
from hitl_compliance.backends import open_backend


def _say_ready(path: str) -> None:
    Path(path).touch()


async def main(url: str, prefix: str, ready: str) -> int:
    async with open_backend(url, table_prefix=prefix) as backend:
        graph = build_compliance_graph(
            lambda state: "Our fund carries risk.",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        await coord.process(f"warm-{uuid.uuid4().hex}", "Q?")
        _say_ready(ready)
        deadline = time.time() + 20
        while time.time() < deadline:
            start = time.time()
            result = await coord.process(f"w-{uuid.uuid4().hex}", "Q?")
            print(result.status, start, time.time(), flush=True)
            if result.awaiting_approval:
                return 0
    return 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
