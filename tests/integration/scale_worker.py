"""One process of the scale-out proof: decide every thread of a list, racing the others.

Usage: python scale_worker.py ROLE URL THREADS_FILE SEED
ROLE `coordinator` decides through `HitlCoordinator.approve` / `reject`; ROLE
`raw` resumes the graph itself with `Command(resume=...)`, as LangGraph Server or
a script would, the graph attached to the same store and policy
(`attach_authority`). Each thread gets several attempts at once (approvals by
different reviewers, and a rejection); the proof checks that exactly one
outcome won per thread, whoever sent it. Prints one JSON line of counts.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langgraph.types import Command

from hitl_compliance import HitlCoordinator, HitlError, attach_authority
from hitl_compliance.backends import open_backend
from tests.integration.worker import make_graph

ATTEMPTS = 5


def value(approved: bool, reviewer: str) -> dict[str, Any]:
    decision: dict[str, Any] = {
        "approved": approved,
        "reviewer": reviewer,
        "decided_at": datetime.now(timezone.utc).isoformat(),
    }
    if not approved:
        decision["reason"] = "no"
    return decision


async def main(role: str, url: str, threads_file: str, seed: int) -> None:
    threads = (await asyncio.to_thread(Path(threads_file).read_text)).split()
    rng = random.Random(seed)
    rng.shuffle(threads)
    counts = {"won": 0, "refused": 0, "errors": 0}
    async with open_backend(url) as backend:
        graph = make_graph(backend.checkpointer, "command_resume", Path("/dev/null"))
        if role == "coordinator":
            coord = HitlCoordinator(graph, reviews=backend.reviews)
        else:
            attach_authority(graph, reviews=backend.reviews)

        async def attempt(thread: str, i: int) -> None:
            approved = i != 0
            reviewer = f"{role}{seed}-r{i}@bank"
            try:
                if role == "coordinator":
                    if approved:
                        await coord.approve(thread, reviewer=reviewer)
                    else:
                        await coord.reject(thread, reviewer=reviewer, reason="no")
                    counts["won"] += 1
                else:
                    config = {"configurable": {"thread_id": thread}}
                    out = await graph.ainvoke(Command(resume=value(approved, reviewer)), config)
                    # A raw resume returns normally whoever won: it won if the outcome is its own.
                    mine = (out.get("metadata") or {}).get("reviewer") == reviewer
                    counts["won" if mine and "__interrupt__" not in out else "refused"] += 1
            except HitlError:
                counts["refused"] += 1
            except Exception:
                counts["errors"] += 1

        for start in range(0, len(threads), 10):
            batch = threads[start : start + 10]
            await asyncio.gather(*(attempt(t, i) for t in batch for i in range(ATTEMPTS)))
    print(json.dumps(counts))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
