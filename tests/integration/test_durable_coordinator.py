"""The coordinator on real backends: restarts, cross-process races, crashes and recover()."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    AlreadyDecidedError,
    HitlCoordinator,
    PauseStyle,
    ReviewNotFoundError,
)
from hitl_compliance.backends import Backend, open_backend

from .worker import RISKY, make_graph

WORKER = Path(__file__).with_name("worker.py")
STYLES: list[PauseStyle] = ["interrupt_before", "command_resume"]


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a durable backend: a real SQLite file, or the test Postgres schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=STYLES)
def style(request: pytest.FixtureRequest) -> PauseStyle:
    """Each pause style."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    """A file the drafter appends to on every call, across processes."""
    return tmp_path / "drafter-calls.txt"


@pytest.fixture
def thread_id() -> str:
    """A thread id no other test (or run) uses."""
    return f"t-{uuid.uuid4().hex}"


def drafter_calls(counter: Path) -> int:
    """How many times the drafter ran, in every process."""
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def run_worker(mode: str, url: str, style: str, thread: str, counter: Path) -> int:
    """Run worker.py in a fresh interpreter and return its exit code."""
    proc = subprocess.run(
        [sys.executable, str(WORKER), mode, url, style, thread, str(counter)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if mode == "pause" and proc.returncode != 0:
        pytest.fail(f"worker failed: {proc.stderr}")
    return proc.returncode


async def decision_runs(coord: HitlCoordinator, thread: str) -> int:
    """How many times `deliver` or `rejected` ran on the thread (from checkpoint history)."""
    runs = 0
    async for snap in coord.graph.aget_state_history({"configurable": {"thread_id": thread}}):
        if tuple(snap.next) in (("deliver",), ("rejected",)):
            runs += 1
    return runs


class Coordinated:
    """An open backend with a graph and coordinator on it."""

    def __init__(self, backend: Backend, coord: HitlCoordinator) -> None:
        self.backend = backend
        self.coord = coord


@pytest.fixture
def open_coordinator(style: PauseStyle, counter: Path) -> Callable[..., Any]:
    """Factory: an async context manager opening backend + graph + coordinator on a URL."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def _open(url: str, **kwargs: Any) -> AsyncIterator[Coordinated]:
        async with open_backend(url) as backend:
            graph = make_graph(backend.checkpointer, style, counter)
            yield Coordinated(backend, HitlCoordinator(graph, reviews=backend.reviews, **kwargs))

    return _open


class TestRestart:
    """A pause survives the process that made it."""

    async def test_pause_in_subprocess_approve_here(
        self,
        durable_url: str,
        style: PauseStyle,
        thread_id: str,
        counter: Path,
        open_coordinator: Callable[..., Any],
    ) -> None:
        """A thread paused by another process is pending here, approves, and drafts once."""
        run_worker("pause", durable_url, style, thread_id, counter)
        assert drafter_calls(counter) == 1
        async with open_coordinator(durable_url) as app:
            pending = [p for p in await app.coord.pending() if p.thread_id == thread_id]
            assert len(pending) == 1
            assert pending[0].draft_response == RISKY
            result = await app.coord.approve(thread_id, reviewer="officer@bank")
            assert result.status == "completed"
            assert result.agent_response == RISKY
            assert result.agent_type == "human_admin"
            events = [a.event for a in await app.coord.audit_log(thread_id)]
            assert events == ["paused", "replied", "approved"]
            state = await app.coord.state_at_decision(thread_id)
            assert state.draft_response == RISKY
            assert state.decision is None  # the paused snapshot, before the decision
        assert drafter_calls(counter) == 1

    async def test_reopen_same_file_keeps_reviews(
        self, durable_url: str, thread_id: str, open_coordinator: Callable[..., Any]
    ) -> None:
        """Closing and reopening the backend keeps the pending review and its audit row."""
        async with open_coordinator(durable_url) as app:
            await app.coord.process(thread_id, "Should I buy?")
        async with open_coordinator(durable_url) as app:
            assert thread_id in {p.thread_id for p in await app.coord.pending()}
            result = await app.coord.reject(thread_id, reviewer="officer@bank", reason="no")
            assert result.status == "rejected"
            with pytest.raises(AlreadyDecidedError):
                await app.coord.approve(thread_id, reviewer="late@bank")


class TestRace:
    """Two coordinators on one database: exactly one decision wins."""

    async def test_twenty_deciders_two_coordinators(
        self,
        durable_url: str,
        thread_id: str,
        counter: Path,
        open_coordinator: Callable[..., Any],
    ) -> None:
        """20 concurrent approve/reject calls via two coordinators: one wins, graph resumes once."""
        async with open_coordinator(durable_url) as a, open_coordinator(durable_url) as b:
            await a.coord.process(thread_id, "Should I buy?")
            calls = []
            for i in range(20):
                coord = (a, b)[i % 2].coord
                if i % 3 == 0:
                    calls.append(coord.reject(thread_id, reviewer=f"r{i}", reason="no"))
                else:
                    calls.append(coord.approve(thread_id, reviewer=f"r{i}"))
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            wins = [o for o in outcomes if not isinstance(o, BaseException)]
            losses = [o for o in outcomes if isinstance(o, AlreadyDecidedError)]
            assert len(wins) == 1, outcomes
            assert len(losses) == 19, outcomes
            audit = await a.coord.audit_log(thread_id)
            decisions = [r for r in audit if r.event in ("approved", "rejected")]
            assert len(decisions) == 1
            assert decisions[0].actor == wins[0].reviewer
            assert await decision_runs(a.coord, thread_id) == 1
        assert drafter_calls(counter) == 1


class TestCrash:
    """A decider killed mid-decision is finished by recover(), once."""

    @pytest.mark.parametrize(
        ("style", "mode"),
        [
            ("interrupt_before", "crash-after-claim"),
            ("command_resume", "crash-after-claim"),
            # Only the static style resumes in two calls (aupdate_state, then ainvoke).
            ("interrupt_before", "crash-after-update"),
        ],
    )
    async def test_kill_then_recover(
        self,
        durable_url: str,
        style: PauseStyle,
        mode: str,
        thread_id: str,
        counter: Path,
        open_coordinator: Callable[..., Any],
    ) -> None:
        """After a hard kill, recover() past the lease completes the decision exactly once."""
        run_worker("pause", durable_url, style, thread_id, counter)
        code = run_worker(mode, durable_url, style, thread_id, counter)
        assert code == 17
        later = datetime.now(timezone.utc) + timedelta(minutes=5)
        async with open_coordinator(durable_url) as app:
            assert thread_id not in {p.thread_id for p in await app.coord.pending()}
            with pytest.raises(AlreadyDecidedError):
                await app.coord.reject(thread_id, reviewer="other@bank")
            # Within the lease a claim is never taken over: the decider may just be slow.
            mine = [r for r in await app.coord.recover() if r.thread_id == thread_id]
            assert mine == []
        async with open_coordinator(durable_url, clock=lambda: later) as app:
            results = await app.coord.recover()
            mine = [r for r in results if r.thread_id == thread_id]
            assert len(mine) == 1
            assert mine[0].status == "completed"
            assert mine[0].metadata["ticket"] == "C-9"
            assert [a.event for a in await app.coord.audit_log(thread_id)] == [
                "paused",
                "recovered",
                "replied",
                "approved",
            ]
            assert await decision_runs(app.coord, thread_id) == 1
            assert [r for r in await app.coord.recover() if r.thread_id == thread_id] == []
        assert drafter_calls(counter) == 1

    async def test_paused_without_review_row_becomes_pending(
        self,
        any_url: str,
        thread_id: str,
        counter: Path,
        open_coordinator: Callable[..., Any],
    ) -> None:
        """A crash between the graph pausing and the review row being written is recovered."""
        now = datetime.now(timezone.utc)
        async with open_coordinator(any_url) as app:
            # What process() does, minus the review row: a turn row, then the graph run.
            await app.backend.reviews.begin_turn(thread_id, owner="dead", now=now)
            # The coordinator's own run config: a pause of anyone else's run records itself.
            driven = app.coord._ctx.driver._config(thread_id)
            await app.coord.graph.ainvoke({"customer_message": "Should I buy?"}, driven)
            assert thread_id not in {p.thread_id for p in await app.coord.pending()}
            mine = [r for r in await app.coord.recover() if r.thread_id == thread_id]
            assert mine == [], "a turn within its lease is never taken over"
            later = HitlCoordinator(
                app.coord.graph,
                reviews=app.backend.reviews,
                clock=lambda: now + timedelta(minutes=5),
            )
            results = [r for r in await later.recover() if r.thread_id == thread_id]
            assert [r.status for r in results] == ["paused"]
            assert thread_id in {p.thread_id for p in await later.pending()}
            result = await later.approve(thread_id, reviewer="officer@bank")
            assert result.status == "completed"
        assert drafter_calls(counter) == 1


class TestUnknownThreads:
    """Decisions on threads that never paused never reach LangGraph."""

    async def test_unknown_thread(
        self, any_url: str, thread_id: str, open_coordinator: Callable[..., Any]
    ) -> None:
        """approve() of an unknown thread raises and creates no LangGraph thread."""
        async with open_coordinator(any_url) as app:
            with pytest.raises(ReviewNotFoundError):
                await app.coord.approve(thread_id, reviewer="officer@bank")
            snap = await app.coord.graph.aget_state({"configurable": {"thread_id": thread_id}})
            assert snap.values == {}
