"""A decider killed at every checkpoint write of a resume: recover() delivers what was decided.

Each kill is a real process dying with `os._exit` just before one of the
saver's writes (`aput` / `aput_writes`, counted from the claim), or after the
last one, just before the review is marked complete. A fresh process then runs
`recover()`. Marked `crash`: CI runs it once, on one Python version.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import HitlCoordinator, PauseStyle
from hitl_compliance.backends import open_backend

from .crash_worker import EDITED, KILLED, REJECTION, make_graph

WORKER = Path(__file__).with_name("crash_worker.py")
STYLES: list[PauseStyle] = ["interrupt_before", "command_resume"]

pytestmark = [pytest.mark.crash, pytest.mark.slow]


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real SQLite file, or the test Postgres schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


def worker(*args: str) -> subprocess.CompletedProcess[str]:
    """Run crash_worker.py in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def drafter_calls(counter: Path) -> int:
    """How many times the drafter ran, in every process."""
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def checked(proc: subprocess.CompletedProcess[str]) -> str:
    """The worker's output; fails the test with its stderr when it failed."""
    if proc.returncode != 0:
        pytest.fail(f"worker exited {proc.returncode}: {proc.stderr[-3000:]}")
    return proc.stdout


async def outcome_runs(coord: HitlCoordinator, thread: str) -> list[str]:
    """The outcomes applied on the thread's checkpoints, oldest first.

    Each checkpoint at which the reply changed to a reviewer's outcome counts
    once: `deliver` when it is compliant, `rejected` otherwise. An outcome
    applied twice (say `rejected` after `deliver`) shows as two entries.
    """
    config: Any = {"configurable": {"thread_id": thread}}
    history = [snap async for snap in coord.graph.aget_state_history(config)]
    ran: list[str] = []
    previous: tuple[Any, Any] = (None, None)
    for snap in reversed(history):
        current = (snap.values.get("agent_type"), snap.values.get("agent_response"))
        if current != previous and current[0] == "human_admin":
            ran.append("deliver" if snap.values.get("is_compliant") else "rejected")
        previous = current
    return ran


async def observed(coord: HitlCoordinator, backend: Any, thread: str) -> dict[str, Any]:
    """What a thread ended with: graph position and reply, review, audit rows, chain."""
    snapshot = await coord.graph.aget_state({"configurable": {"thread_id": thread}})
    review = await backend.reviews.get_review(thread)
    status = None if review is None else review.status
    decided = [a for a in await coord.audit_log(thread) if a.event == status]
    return {
        "next": tuple(snapshot.next),
        "agent_response": snapshot.values.get("agent_response"),
        "agent_type": snapshot.values.get("agent_type"),
        "outcome_runs": await outcome_runs(coord, thread),
        "review_status": status,
        "decision_rows": len(decided),
        "delivered": decided[0].payload.get("delivered") if decided else "(no row)",
        "chain_ok": (await coord.verify_audit(thread)).ok,
    }


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("decision", ["approve", "reject", "raw-approve", "raw-reject"])
async def test_kill_at_every_write(
    durable_url: str, style: PauseStyle, decision: str, tmp_path: Path
) -> None:
    """Killed before any write of the resume (or after the last), the decision is delivered once.

    `raw-*`: the decision is made around the coordinator (a raw resume the graph
    checks, claims and records itself); recover() finishes it all the same.
    """
    counter = tmp_path / "drafter-calls.txt"
    probe = f"probe-{uuid.uuid4().hex}"
    checked(worker("pause", durable_url, style, str(counter), probe))
    writes = int(checked(worker("decide", durable_url, style, str(counter), probe, decision, "0")))
    assert writes >= 2, "a resume makes at least one checkpoint and its writes"
    kill_points = [*range(1, writes + 1), -1]
    threads = {point: f"t{point}-{uuid.uuid4().hex}" for point in kill_points}
    checked(worker("pause", durable_url, style, str(counter), *threads.values()))
    for point, thread in threads.items():
        proc = worker("decide", durable_url, style, str(counter), thread, decision, str(point))
        assert proc.returncode == KILLED, (point, proc.returncode, proc.stderr[-2000:])
    recovered = checked(worker("recover", durable_url, style, str(counter)))
    recovered_threads = {line.split()[0] for line in recovered.splitlines()}
    if decision.startswith("raw-"):
        # Decided inside the graph: a process killed once the decision was recorded
        # leaves nothing claimed for recover(); the run itself is retried from its
        # last checkpoint, as LangGraph Server retries a run whose worker died.
        assert recovered_threads <= set(threads.values())
        checked(worker("retry", durable_url, style, str(counter), *threads.values()))
    else:
        assert recovered_threads == set(threads.values())

    approves = decision.endswith("approve")
    expected = EDITED if approves else REJECTION
    node = "deliver" if approves else "rejected"
    status = "approved" if approves else "rejected"
    async with open_backend(durable_url) as backend:
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, counter), reviews=backend.reviews
        )
        seen = {point: await observed(coord, backend, thread) for point, thread in threads.items()}
        want = {
            "next": (),
            "agent_response": expected,
            "agent_type": "human_admin",
            "outcome_runs": [node],
            "review_status": status,
            "decision_rows": 1,
            "delivered": expected,
            "chain_ok": True,
        }
        wrong = {point: got for point, got in seen.items() if got != want}
        assert not wrong, f"{len(wrong)} of {len(seen)} kill points (of {writes} writes): {wrong}"
        assert drafter_calls(counter) == len(threads) + 1
        for point, thread in threads.items():
            result = await coord.process(thread, "And what about bonds?")
            assert result.status == "paused", f"kill point {point}: {result}"
            assert result.draft_response is not None
        assert drafter_calls(counter) == 2 * len(threads) + 1


RANDOM_TRIALS = 200
UNDECIDED = {
    "next": ("human_approval",),
    "agent_response": None,
    "agent_type": None,
    "outcome_runs": [],
    "review_status": "pending",
    "decision_rows": 0,
    "delivered": "(no row)",
    "chain_ok": True,
}


@pytest.mark.parametrize("style", STYLES)
async def test_random_kills_lose_nothing(
    durable_url: str, style: PauseStyle, tmp_path: Path
) -> None:
    """SIGKILL at random moments of 200 decisions: every one ends as it was recorded, once."""
    counter = tmp_path / "drafter-calls.txt"
    decisions = {
        f"r{i}-{uuid.uuid4().hex}": "approve" if i % 2 else "reject" for i in range(RANDOM_TRIALS)
    }
    checked(worker("pause", durable_url, style, str(counter), *decisions))
    jobs = [f"{thread}:{decision}" for thread, decision in decisions.items()]
    summary = checked(worker("random-kills", durable_url, style, str(counter), "1", *jobs))
    killed, _finished, failed, _median = summary.split()
    assert int(failed) == 0, summary
    assert int(killed) >= RANDOM_TRIALS // 2, f"too few kills landed mid-decision: {summary}"
    checked(worker("recover", durable_url, style, str(counter)))
    async with open_backend(durable_url) as backend:
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, counter), reviews=backend.reviews
        )
        wrong: dict[str, dict[str, Any]] = {}
        undecided = 0
        for thread, decision in decisions.items():
            approve = decision == "approve"
            want = {
                "next": (),
                "agent_response": EDITED if approve else REJECTION,
                "agent_type": "human_admin",
                "outcome_runs": ["deliver" if approve else "rejected"],
                "review_status": "approved" if approve else "rejected",
                "decision_rows": 1,
                "delivered": EDITED if approve else REJECTION,
                "chain_ok": True,
            }
            got = await observed(coord, backend, thread)
            if got == UNDECIDED:
                # Killed before its claim committed: nothing was decided, nothing went out,
                # and the review is still there to decide.
                undecided += 1
                if approve:
                    await coord.approve(thread, reviewer="officer@bank", response=EDITED)
                else:
                    await coord.reject(thread, reviewer="officer@bank", reason="misleading")
                got = await observed(coord, backend, thread)
            if got != want:
                wrong[thread] = got
        assert not wrong, (
            f"{len(wrong)} of {RANDOM_TRIALS} lost or doubled "
            f"({summary}, {undecided} killed before their claim): {wrong}"
        )
    assert drafter_calls(counter) == RANDOM_TRIALS
