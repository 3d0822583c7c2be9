"""The hook outbox across real processes: one SQLite file or one Postgres schema, several callers.

Each worker process (`hook_worker.py`) logs every hook call it makes to one
file with O_APPEND, so the test counts calls across processes exactly.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hitl_compliance import HitlCoordinator, Hooks, open_backend
from hitl_compliance.backends import Backend

from .hook_worker import RISKY, make_graph

WORKER = Path(__file__).with_name("hook_worker.py")
pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database several processes share: an SQLite file, or a Postgres schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hooks.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def prefix() -> str:
    """Tables of the test's own, so `recover()` sees no other test's outbox rows."""
    return f"h{uuid.uuid4().hex[:8]}_"


@pytest.fixture
async def backend(url: str, prefix: str) -> AsyncIterator[Backend]:
    """The test process's own connection to the shared database."""
    async with open_backend(url, table_prefix=prefix) as opened:
        yield opened


async def start(*args: str) -> asyncio.subprocess.Process:
    """Start one worker process."""
    return await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args)


async def run(*args: str) -> int:
    """Run one worker process to its end; its exit status."""
    proc = await start(*args)
    return await asyncio.wait_for(proc.wait(), 120)


async def stop(*procs: asyncio.subprocess.Process) -> None:
    """Kill the workers still running (a failed test), and reap them."""
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def calls(log: Path) -> list[tuple[str, int, str, int, str]]:
    """The log's lines as (kind, pid, delivery_id, seq, thread)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        kind, pid, delivery_id, seq, thread = line.split(" ")
        out.append((kind, int(pid), delivery_id, int(seq), thread))
    return out


async def wait_for(predicate: object, timeout: float = 60.0) -> None:
    """Poll `predicate()` until it is true (the other process got there)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the worker process never got there"
        await asyncio.sleep(0.02)


async def paused_thread(backend: Backend) -> str:
    """A thread paused for review, by a coordinator without hooks."""
    coord = HitlCoordinator(make_graph(backend.checkpointer), reviews=backend.reviews)
    thread = f"t-{uuid.uuid4().hex}"
    result = await coord.process(thread, RISKY)
    assert result.status == "paused"
    return thread


class TestTwoProcessesRacingTheOutbox:
    async def test_each_owed_call_is_made_exactly_once(
        self, backend: Backend, url: str, prefix: str, tmp_path: Path
    ) -> None:
        """Two processes running recover() at the same instant call each owed hook once in all."""

        def fail(_: object) -> None:
            raise ConnectionError("chat service down")

        coord = HitlCoordinator(
            make_graph(backend.checkpointer),
            reviews=backend.reviews,
            hooks=Hooks(on_paused=fail, on_decided=fail),
        )
        threads = [f"t{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
        for thread in threads:
            await coord.process(thread, RISKY)
            await coord.approve(thread, reviewer="officer@bank")
        owed = await backend.reviews.pending_hooks()
        assert len(owed) == 40
        assert {d.status for d in owed} == {"failed"}

        log = tmp_path / "calls.log"
        go = tmp_path / "go"
        ready = [tmp_path / f"ready{i}" for i in range(2)]
        procs = [
            await start("recover", url, prefix, str(log), "30", str(r), str(go)) for r in ready
        ]
        try:
            await wait_for(lambda: all(r.exists() for r in ready))
            go.touch()
            codes = [await asyncio.wait_for(p.wait(), 120) for p in procs]
        finally:
            await stop(*procs)
        assert codes == [0, 0]
        made = calls(log)
        per_seq = Counter(seq for _, _, _, seq, _ in made)
        assert sorted(per_seq) == sorted(d.record.seq for d in owed)
        assert set(per_seq.values()) == {1}, f"called more than once: {per_seq}"
        # Each call carried its outbox row's id, and every row is now delivered.
        assert {(d, s) for _, _, d, s, _ in made} == {(d.delivery_id, d.record.seq) for d in owed}
        assert await backend.reviews.pending_hooks() == []


class TestRecoverDuringASlowHook:
    async def test_a_held_lease_keeps_recover_away(
        self, backend: Backend, url: str, prefix: str, tmp_path: Path
    ) -> None:
        """recover() in another process does not call a slow hook running under its lease."""
        thread = await paused_thread(backend)
        log = tmp_path / "calls.log"
        release = tmp_path / "release"
        slow = await start("approve", url, prefix, str(log), "30", thread, str(release))
        try:
            await wait_for(lambda: [c[0] for c in calls(log)] == ["start"])
            # A recoverer with a short lease of its own: it must honour the caller's lease.
            assert await run("recover", url, prefix, str(log), "0.2") == 0
            assert [c[0] for c in calls(log)] == ["start"]
            [leased] = await backend.reviews.pending_hooks()
            assert leased.status == "pending"
            assert leased.lease_until is not None
            assert leased.lease_until > datetime.now(timezone.utc)
            release.touch()
            assert await asyncio.wait_for(slow.wait(), 120) == 0
        finally:
            await stop(slow)
        made = calls(log)
        assert [(kind, pid) for kind, pid, *_ in made] == [
            ("start", slow.pid),
            ("done", slow.pid),
        ]
        assert made[0][2] == made[1][2] != "-"
        assert await backend.reviews.pending_hooks() == []

    async def test_a_live_hook_outlasting_its_lease_keeps_it(
        self, backend: Backend, url: str, prefix: str, tmp_path: Path
    ) -> None:
        """A running hook renews its 1 s lease, so recover() elsewhere seconds later skips it."""
        thread = await paused_thread(backend)
        log = tmp_path / "calls.log"
        release = tmp_path / "release"
        slow = await start("approve", url, prefix, str(log), "1", thread, str(release))
        try:
            await wait_for(lambda: [c[0] for c in calls(log)] == ["start"])
            await asyncio.sleep(1.5)  # the first lease has run out by now
            assert await run("recover", url, prefix, str(log), "0.2") == 0
            assert [c[0] for c in calls(log)] == ["start"], "called again while still running"
            [leased] = await backend.reviews.pending_hooks()
            assert leased.lease_until is not None
            assert leased.lease_until > datetime.now(timezone.utc)
            release.touch()
            assert await asyncio.wait_for(slow.wait(), 120) == 0
        finally:
            await stop(slow)
        assert [(kind, pid) for kind, pid, *_ in calls(log)] == [
            ("start", slow.pid),
            ("done", slow.pid),
        ]
        assert await backend.reviews.pending_hooks() == []

    async def test_a_crashed_callers_call_is_repeated_with_the_same_id(
        self, backend: Backend, url: str, prefix: str, tmp_path: Path
    ) -> None:
        """A hook whose process died is not called while its lease holds, then once, same id."""
        thread = await paused_thread(backend)
        log = tmp_path / "calls.log"
        # The dying caller claims after this instant, so its 6 s lease outlasts it.
        lease_holds_until = datetime.now(timezone.utc) + timedelta(seconds=6)
        assert await run("approve-crash", url, prefix, str(log), "6", thread) == 17
        [(kind, _, first_id, seq, _)] = calls(log)
        assert kind == "start"
        # A recoverer with a short lease of its own: it must honour the dead caller's lease.
        recover = ("recover", url, prefix, str(log), "1")
        assert await run(*recover) == 0
        if datetime.now(timezone.utc) < lease_holds_until:  # else too slow a machine to tell
            assert len(calls(log)) == 1, "called again while the crashed caller's lease held"
        [owed] = await backend.reviews.pending_hooks()
        assert (owed.delivery_id, owed.record.seq, owed.status) == (first_id, seq, "pending")
        assert owed.lease_until is not None
        await wait_for(lambda: datetime.now(timezone.utc) > owed.lease_until)
        assert await run(*recover) == 0
        made = calls(log)
        assert [(kind, d, s) for kind, _, d, s, _ in made] == [
            ("start", first_id, seq),
            ("call", first_id, seq),
        ]
        assert await backend.reviews.pending_hooks() == []
        assert [a.event for a in await backend.reviews.audit_log(thread)] == [
            "paused",
            "replied",
            "approved",
        ]
