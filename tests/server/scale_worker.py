"""One process of the server scale-out proof: decide every thread of a list, racing the others.

Usage: python scale_worker.py ROLE SERVER REVIEWS_URL THREADS_FILE SEED

THREADS_FILE holds one `THREAD_ID GRAPH_ID` a line. ROLE `coordinator` decides
through `HitlCoordinator(RemoteGraph(...))` authenticated with the coordinator's
service token, on the review store the deployment shares (`REVIEWS_URL`); it
drives each thread with the graph the server runs it with. ROLE `sdk` resumes
the served graph itself,
`client.runs.wait(thread, graph, command={"resume": ...})` with the officer's
token, as any client of LangGraph Server would. Each thread gets several
attempts at once (approvals, and one rejection), each tagged in the decision's
metadata (`{"attempt": "<role><seed>-r<i>"}`), so the proof can tell whose
outcome was recorded. Prints one JSON line: the counts, the threads this
process was told it won (with the winning attempt's tag), and the errors by kind.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from langgraph.pregel.remote import RemoteGraph

from hitl_compliance import HitlCoordinator, HitlError, Reviewer, review_store
from tests.server._helpers import (
    COORDINATOR_TOKEN,
    OFFICER_TOKEN,
    POLICY,
    decision,
    outcome_of,
    sdk_client,
)

Threads = dict[str, str]
"""thread id -> the served graph it runs."""

ATTEMPTS = 5
"""Decisions each process sends at once per thread (attempt 0 rejects, the others approve)."""
BATCH = 4
"""Threads each process decides at once: enough to keep the server's queue full."""
COORDINATOR_GRAPH = "compliance"
"""The graph the coordinator's `RemoteGraph` names (it drives each thread with the thread's)."""


class Tally:
    """What one process was told: each attempt won, refused or failed."""

    def __init__(self) -> None:
        self.won: dict[str, str] = {}  # thread -> the attempt told it won
        self.refused: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def refuse(self, exc: BaseException | None = None) -> None:
        """Count a refusal: a HitlError, or (None) a resume that returned another's outcome."""
        self.refused["another outcome" if exc is None else _kind(exc)] += 1

    def error(self, exc: BaseException) -> None:
        """Count a failure that is no refusal (the proof expects none)."""
        self.errors[_kind(exc)] += 1

    def report(self) -> dict[str, Any]:
        """The counts, the wins by thread, and the commonest refusals and errors."""
        return {
            "won": len(self.won),
            "refused": sum(self.refused.values()),
            "errors": sum(self.errors.values()),
            "wins": self.won,
            "refusal_kinds": dict(self.refused.most_common(8)),
            "error_kinds": dict(self.errors.most_common(5)),
        }


def _kind(exc: BaseException) -> str:
    """An exception's type and the start of its message, with thread ids cut out."""
    text = str(exc).split("'")[0][:90]
    return f"{type(exc).__name__}: {text}"


async def coordinate(server: str, reviews_url: str, threads: Threads, seed: int) -> Tally:
    """Decide every thread through `HitlCoordinator` over `RemoteGraph`."""
    tally = Tally()
    reviews = review_store(reviews_url)
    await reviews.setup()
    graph = RemoteGraph(
        COORDINATOR_GRAPH,
        url=server,
        headers={"Authorization": f"Bearer {COORDINATOR_TOKEN}"},
        api_key="",
    )
    coord = HitlCoordinator(graph, reviews=reviews, policy=POLICY)

    async def attempt(thread: str, i: int) -> None:
        tag = f"coordinator{seed}-r{i}"
        who = Reviewer(f"{tag}@bank", roles=frozenset({"compliance_officer"}))
        try:
            if i == 0:
                out = await coord.reject(
                    thread, reviewer=who, reason="no", metadata={"attempt": tag}
                )
            else:
                out = await coord.approve(thread, reviewer=who, metadata={"attempt": tag})
        except HitlError as exc:
            tally.refuse(exc)
        except Exception as exc:
            tally.error(exc)
        else:
            # Told it won: the proof checks this against the outcome recorded for the thread.
            tally.won[thread] = tag if out.reviewer == who.id else f"{tag} as {out.reviewer}"

    try:
        await _each(threads, attempt)
    finally:
        if graph.client is not None:
            await graph.client.aclose()
        await reviews.aclose()
    return tally


async def resume_raw(server: str, threads: Threads, seed: int) -> Tally:
    """Resume every thread with `Command(resume=...)` through the server's API, as the officer."""
    tally = Tally()
    async with sdk_client(server, OFFICER_TOKEN) as client:

        async def attempt(thread: str, i: int) -> None:
            tag = f"sdk{seed}-r{i}"
            value = decision(approved=i != 0, reviewer=f"{tag}@bank", metadata={"attempt": tag})
            try:
                out = await client.runs.wait(thread, threads[thread], command={"resume": value})
            except Exception as exc:
                tally.error(exc)
                return
            # A resume returns the thread's state whoever won: it won if the outcome is its own.
            values = out if isinstance(out, dict) else {}
            _, applied = outcome_of(threads[thread], values) if values else (None, None)
            mine = applied is not None and (applied.get("metadata") or {}).get("attempt") == tag
            if mine and "__interrupt__" not in values:
                tally.won[thread] = tag
            else:
                tally.refuse()

        await _each(threads, attempt)
    return tally


async def _each(threads: Threads, attempt: Any) -> None:
    """Every attempt on every thread, `BATCH` threads (and their attempts) at once."""
    order = list(threads)
    for start in range(0, len(order), BATCH):
        batch = order[start : start + BATCH]
        await asyncio.gather(*(attempt(t, i) for t in batch for i in range(ATTEMPTS)))


async def main(role: str, server: str, reviews_url: str, threads_file: str, seed: int) -> None:
    lines = (await asyncio.to_thread(Path(threads_file).read_text)).splitlines()
    pairs = [tuple(line.split()) for line in lines if line.strip()]
    random.Random(seed).shuffle(pairs)
    threads: Threads = dict(pairs)
    if role == "coordinator":
        tally = await coordinate(server, reviews_url, threads, seed)
    else:
        tally = await resume_raw(server, threads, seed)
    print(json.dumps(tally.report()))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
