"""Scale-out proof with the server in the loop: coordinators and SDK clients race on a deployment.

A real `langgraph dev` serves the example deployment, its graphs attached to a
PostgreSQL review store. `THREADS` threads (half on the factory graph, half on
the gated agent) are started through `langgraph_sdk` and pause. Then three
processes decide every thread at once, five decisions each per thread (one
rejection, four approvals, each tagged with the attempt that sent it): two
`HitlCoordinator(RemoteGraph(...))` processes holding the coordinator's
service token, and one process resuming through the server's API
(`runs.wait(..., command={"resume": ...})`) with the officer's token. That is
fifteen racing attempts per review. Afterwards every review has exactly one
outcome row and none is left pending, each thread's server state holds that
outcome, the ledger verifies, each process was told it won exactly the
reviews whose recorded outcome is its own, and each thread drafted once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk.client import LangGraphClient

from hitl_compliance import HitlCoordinator, ReviewStore
from tests.server._helpers import (
    COORDINATOR_TOKEN,
    GRAPH_IDS,
    POLICY,
    RISKY_QUESTION,
    RISKY_REPLY,
    outcome_of,
    turn_input,
)

pytestmark = [pytest.mark.server, pytest.mark.once, pytest.mark.postgres, pytest.mark.slow]

WORKER = Path(__file__).with_name("scale_worker.py")
ROOT = Path(__file__).resolve().parents[2]
THREADS = 96
"""Threads raced on. `langgraph dev` runs one run at a time (each winning decision and each
client resume is a run): 96 threads x 15 attempts take about 40 s on two idle cores."""
PROCESSES = ("coordinator", "coordinator", "sdk")
DRAFT_NODE = {"compliance": "draft", "gated_agent": "model"}
"""The node that drafts the reply in each served graph."""


async def pause_threads(agent: LangGraphClient) -> dict[str, str]:
    """`THREADS` new threads, half per served graph, each run to its pause; thread -> graph."""

    async def pause(graph_id: str) -> tuple[str, str]:
        thread = await agent.threads.create()
        thread_id = str(thread["thread_id"])
        await agent.runs.wait(thread_id, graph_id, input=turn_input(graph_id, RISKY_QUESTION))
        return thread_id, graph_id

    started: dict[str, str] = {}
    graphs = [GRAPH_IDS[i % len(GRAPH_IDS)] for i in range(THREADS)]
    for start in range(0, THREADS, 8):
        started.update(await asyncio.gather(*(pause(g) for g in graphs[start : start + 8])))
    return started


async def race(server: str, reviews_url: str, listed: Path) -> list[dict[str, Any]]:
    """Run the deciding processes at once; their reports, in `PROCESSES` order."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    workers = []
    for seed, role in enumerate(PROCESSES):
        argv = [str(WORKER), role, server, reviews_url, str(listed), str(seed)]
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=ROOT,
            )
        )
    reports = []
    for worker in workers:
        out, err = await asyncio.wait_for(worker.communicate(), timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


async def drafts(officer: LangGraphClient, thread_id: str, graph_id: str) -> int:
    """How many times the thread's drafting node ran (its tasks in the checkpoint history)."""
    history = await officer.threads.get_history(thread_id, limit=100)
    return sum(
        task["name"] == DRAFT_NODE[graph_id] for snapshot in history for task in snapshot["tasks"]
    )


async def test_two_coordinators_and_an_sdk_client_race_on_a_served_deployment(
    langgraph_server: str,
    server_postgres_url: str,
    store: ReviewStore,
    agent: LangGraphClient,
    officer: LangGraphClient,
    tmp_path: Path,
) -> None:
    """Zero double outcomes, zero lost reviews, the server agrees, ledger verifies, no false win."""
    began = time.monotonic()
    threads = await pause_threads(agent)
    assert len(threads) == THREADS
    for thread_id in threads:
        [review] = await store.open_reviews(thread_id)
        assert review.status == "pending"
    listed = tmp_path / "threads.txt"
    listed.write_text("".join(f"{t} {g}\n" for t, g in threads.items()))
    paused_in = time.monotonic() - began

    reports = await race(langgraph_server, server_postgres_url, listed)
    decided_in = time.monotonic() - began - paused_in

    winners: dict[str, int] = {}
    won_by: dict[str, str] = {}  # thread -> the attempt whose outcome was recorded
    for thread_id, graph_id in threads.items():
        rows = await store.audit_log(thread_id)
        decided = [r for r in rows if r.event in ("approved", "rejected")]
        assert len(decided) == 1, (thread_id, [(r.event, r.actor) for r in rows])
        [row] = decided
        attempt = row.payload["metadata"]["attempt"]
        won_by[thread_id] = attempt
        process = attempt.split("-")[0]
        winners[process] = winners.get(process, 0) + 1
        # The server's state holds that outcome, and nothing waits on the thread.
        thread = await officer.threads.get(thread_id)
        assert (thread["status"], thread["interrupts"]) == ("idle", {}), thread_id
        reply, applied = outcome_of(graph_id, thread["values"])
        assert applied is not None, (thread_id, thread["values"])
        assert applied["metadata"]["attempt"] == attempt
        assert applied["reviewer"] == row.actor
        assert applied["approved"] is (row.event == "approved")
        assert (reply == RISKY_REPLY) is (row.event == "approved")
        assert await drafts(officer, thread_id, graph_id) == 1, thread_id
        assert await store.open_reviews(thread_id) == []

    graph = RemoteGraph(
        "compliance",
        url=langgraph_server,
        headers={"Authorization": f"Bearer {COORDINATOR_TOKEN}"},
        api_key="",
    )
    try:
        coord = HitlCoordinator(graph, reviews=store, policy=POLICY)
        assert [p for p in await coord.pending() if p.thread_id in threads] == []
        assert (await coord.verify_audit()).ok
    finally:
        if graph.client is not None:
            await graph.client.aclose()

    # Each process was told it won exactly the reviews whose recorded outcome is its own
    # (so no caller was told it won a review it lost), and none failed otherwise.
    for seed, report in enumerate(reports):
        process = f"{PROCESSES[seed]}{seed}"
        assert report["errors"] == 0, report["error_kinds"]
        mine = {t: a for t, a in won_by.items() if a.startswith(f"{process}-")}
        assert report["wins"] == mine, (process, report)
    assert sum(winners.values()) == THREADS
    print(
        f"\n{THREADS} threads x {len(PROCESSES)} processes x 5 attempts: paused in "
        f"{paused_in:.0f}s, decided in {decided_in:.0f}s; winners by process: {winners}; "
        "refusals: " + "; ".join(json.dumps(r["refusal_kinds"]) for r in reports)
    )
