"""SLA expiry, decision hooks and the tamper-evident ledger, on every backend."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import hitl_compliance.ledger as ledger_module
from hitl_compliance import (
    DecidedEvent,
    ExpiredEvent,
    HitlCoordinator,
    Hooks,
    KeywordRule,
    OnTimeout,
    PausedEvent,
    PauseStyle,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.backends import Backend

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RISKY = "Guaranteed returns, invest now."


class Clock:
    """A fake clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sla.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=["interrupt_before", "command_resume"])
def style(request: pytest.FixtureRequest) -> PauseStyle:
    """Each pause style."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    """An open backend, with review tables of its own.

    The Postgres schema is shared by the session: without a prefix per test,
    `recover()` here would settle other tests' abandoned claims (and call this
    test's hooks for them), and whole-store checks would see their rows.
    """
    async with open_backend(url, table_prefix=f"s{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


@pytest.fixture
def make(backend: Backend, style: PauseStyle) -> Callable[..., HitlCoordinator]:
    """Build a coordinator on the shared backend with the given options."""
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[
            KeywordRule("guarantee", ["guaranteed returns"], reason="promise"),
            KeywordRule("advice", ["invest now"], severity="high", reason="advice"),
        ],
        checkpointer=backend.checkpointer,
        style=style,
    )

    def build(**kwargs: Any) -> HitlCoordinator:
        return HitlCoordinator(graph, reviews=backend.reviews, **kwargs)

    return build


def tid() -> str:
    """A fresh thread id."""
    return f"t-{uuid.uuid4().hex}"


async def mine(coord: HitlCoordinator, threads: set[str]) -> list[Any]:
    """Pending reviews of these threads only (the Postgres schema is shared by tests)."""
    return [p for p in await coord.pending() if p.thread_id in threads]


class TestSla:
    @pytest.mark.parametrize("action", ["reject", "approve_draft"])
    async def test_overdue_review_is_resolved(
        self, make: Callable[..., HitlCoordinator], action: OnTimeout
    ) -> None:
        """Past its deadline a review is rejected or approved by system:sla, once."""
        clock = Clock()
        coord = make(sla=timedelta(hours=1), on_timeout=action, clock=clock)
        thread = tid()
        await coord.process(thread, RISKY)
        [item] = await mine(coord, {thread})
        assert item.deadline == T0 + timedelta(hours=1)
        clock.advance(minutes=59)
        assert [r for r in await coord.expire_overdue() if r.thread_id == thread] == []
        clock.advance(minutes=2)
        results = [r for r in await coord.expire_overdue() if r.thread_id == thread]
        assert len(results) == 1
        result = results[0]
        assert result.status == ("completed" if action == "approve_draft" else "rejected")
        assert result.metadata["forced"] is True
        assert result.metadata["reason"] == "sla_timeout"
        assert result.metadata["reviewer"] == "system:sla"
        if action == "approve_draft":
            assert result.agent_response == RISKY
        log = await coord.audit_log(thread)
        # The forced decision sends its reply (the draft, or nothing) and then records it.
        assert [a.event for a in log] == ["paused", "replied", "expired"]
        assert log[1].actor == "system:sla"
        assert log[1].payload["outcome"] == (
            "delivered" if action == "approve_draft" else "expired"
        )
        assert log[-1].actor == "system:sla"
        assert log[-1].payload["forced"] is True
        assert log[-1].payload["reason"] == "sla_timeout"
        assert [r for r in await coord.expire_overdue() if r.thread_id == thread] == []

    async def test_a_sweep_as_of_a_later_time_stamps_everything_with_it(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """expire_overdue(now=) ahead of the clock: claim and completion both at `now`."""
        clock = Clock()
        coord = make(sla=timedelta(hours=1), clock=clock)
        thread = tid()
        await coord.process(thread, RISKY)
        as_of = T0 + timedelta(days=1)
        [result] = [r for r in await coord.expire_overdue(now=as_of) if r.thread_id == thread]
        assert result.status == "rejected"
        # fromisoformat() reads a "Z" suffix only from Python 3.11 on.
        decided_at = result.metadata["decided_at"].replace("Z", "+00:00")
        assert datetime.fromisoformat(decided_at) == as_of
        expired = (await coord.audit_log(thread))[-1]
        assert (expired.event, expired.at) == ("expired", as_of)
        review = await coord.reviews.get_review(thread)
        assert review is not None
        assert review.claimed_at == review.decided_at == as_of

    async def test_sla_by_severity_takes_the_shortest(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """A per-severity SLA shorter than the default sets the deadline."""
        clock = Clock()
        coord = make(sla=timedelta(hours=4), sla_by={"high": timedelta(minutes=15)}, clock=clock)
        thread = tid()
        await coord.process(thread, RISKY)
        [item] = await mine(coord, {thread})
        assert item.deadline == T0 + timedelta(minutes=15)

    async def test_escalate(self, make: Callable[..., HitlCoordinator]) -> None:
        """Escalation keeps the review paused, raises priority, moves the deadline, hooks."""
        clock = Clock()
        fired: list[ExpiredEvent] = []
        coord = make(
            sla=timedelta(hours=1),
            on_timeout="escalate",
            clock=clock,
            hooks=Hooks(on_expired=fired.append),
        )
        thread = tid()
        await coord.process(thread, RISKY)
        clock.advance(hours=2)
        [result] = [r for r in await coord.expire_overdue() if r.thread_id == thread]
        assert result.status == "paused"
        [item] = await mine(coord, {thread})
        assert item.priority == 1
        assert item.deadline == clock.now + timedelta(hours=1)
        assert [e.action for e in fired if e.thread_id == thread] == ["escalate"]
        assert [a.event for a in await coord.audit_log(thread)] == ["paused", "escalated"]
        final = await coord.approve(thread, reviewer="officer@bank")
        assert final.status == "completed"

    async def test_concurrent_sweepers_resolve_once(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """Four sweepers at once: exactly one resolution per review."""
        clock = Clock()
        sweepers = [make(sla=timedelta(minutes=5), clock=clock) for _ in range(4)]
        threads = {tid() for _ in range(6)}
        for thread in threads:
            await sweepers[0].process(thread, RISKY)
        clock.advance(minutes=10)
        batches = await asyncio.gather(*(s.expire_overdue() for s in sweepers))
        resolved = [r.thread_id for batch in batches for r in batch if r.thread_id in threads]
        assert sorted(resolved) == sorted(threads)
        for thread in threads:
            events = [a.event for a in await sweepers[0].audit_log(thread)]
            assert events == ["paused", "replied", "expired"]

    async def test_sweeper_task_runs_until_cancelled(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """run_sla_sweeper resolves overdue reviews in the background until cancelled."""
        clock = Clock()
        coord = make(sla=timedelta(minutes=1), clock=clock)
        thread = tid()
        await coord.process(thread, RISKY)
        clock.advance(minutes=2)
        task = asyncio.create_task(coord.run_sla_sweeper(interval=0.01))
        for _ in range(200):
            if [a.event for a in await coord.audit_log(thread)][-1] == "expired":
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [a.event for a in await coord.audit_log(thread)] == ["paused", "replied", "expired"]


class TestHooks:
    async def test_events_are_typed_and_after_durability(
        self, make: Callable[..., HitlCoordinator], backend: Backend
    ) -> None:
        """on_paused and on_decided receive frozen typed events once the rows exist."""
        seen: list[Any] = []

        async def on_paused(event: PausedEvent) -> None:
            review = await backend.reviews.get_review(event.thread_id)
            assert review is not None  # durable before the hook runs
            seen.append(event)

        coord = make(hooks=Hooks(on_paused=on_paused, on_decided=seen.append))
        thread = tid()
        await coord.process(thread, RISKY)
        await coord.approve(thread, reviewer="officer@bank", response="Talk to an adviser.")
        paused, decided = [e for e in seen if e.thread_id == thread]
        assert isinstance(paused, PausedEvent)
        assert [v.rule for v in paused.violations] == ["guarantee", "advice"]
        assert isinstance(decided, DecidedEvent)
        assert decided.approved
        assert decided.reviewer == "officer@bank"
        assert decided.agent_response == "Talk to an adviser."
        with pytest.raises(Exception):  # noqa: B017, PT011 - frozen model
            decided.approved = False  # type: ignore[misc]

    async def test_failing_hook_is_retried_by_recover_exactly_once(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """A hook failing twice then succeeding is delivered once; the decision is not repeated."""
        clock = Clock()
        calls: list[str] = []
        delivered: list[DecidedEvent] = []

        def flaky(event: DecidedEvent) -> None:
            calls.append(event.thread_id)
            if len(calls) <= 2:
                raise ConnectionError("chat service down")
            delivered.append(event)

        coord = make(hooks=Hooks(on_decided=flaky), clock=clock)
        thread = tid()
        await coord.process(thread, RISKY)
        result = await coord.reject(thread, reviewer="officer@bank", reason="no")
        assert result.status == "rejected"  # the hook's failure does not undo the decision
        await coord.recover()
        assert len(calls) == 2
        assert delivered == []
        await coord.recover()
        await coord.recover()
        assert len(calls) == 3
        assert [e.thread_id for e in delivered] == [thread]
        events = [a.event for a in await coord.audit_log(thread)]
        assert events == ["paused", "replied", "rejected"]

    async def test_metadata_is_patched_by_pause_votes_and_decision(
        self, make: Callable[..., HitlCoordinator]
    ) -> None:
        """Metadata from the turn and the decision is merged, never replaced."""
        coord = make()
        thread = tid()
        await coord.process(thread, RISKY, metadata={"channel": "chat", "case": {"id": 7}})
        result = await coord.approve(
            thread, reviewer="officer@bank", metadata={"ticket": "C-9", "case": {"tier": 2}}
        )
        assert result.metadata["channel"] == "chat"
        assert result.metadata["case"] == {"id": 7, "tier": 2}
        assert result.metadata["ticket"] == "C-9"


class TestLedger:
    async def test_chain_verifies_and_exports(
        self, make: Callable[..., HitlCoordinator], tmp_path: Path
    ) -> None:
        """Every row is hashed and chained; an export verifies with the one-file verifier."""
        coord = make()
        thread = tid()
        await coord.process(thread, RISKY)
        await coord.approve(thread, reviewer="officer@bank")
        report = await coord.verify_audit(thread)
        assert report.ok
        assert report.first_broken is None
        assert report.checked == 3  # paused, replied, approved
        assert (await coord.verify_audit()).ok
        out = tmp_path / "audit.jsonl"
        assert await coord.export_audit(out, thread_id=thread) == 3
        verifier = tmp_path / "ledger.py"
        await asyncio.to_thread(_copy, Path(ledger_module.__file__), verifier)
        proc = await asyncio.to_thread(_verify_export, verifier, out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith("ok: 3 rows")
        await asyncio.to_thread(_edit_first_row, out, actor="mallory")
        proc = await asyncio.to_thread(_verify_export, verifier, out)
        assert proc.returncode == 1
        assert "BROKEN at seq" in proc.stdout
        # The whole store, with its chain head, verifies offline too.
        everything = tmp_path / "all.jsonl"
        count = await coord.export_audit(everything)
        proc = await asyncio.to_thread(_verify_export, verifier, everything)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"ok: {count} rows")


def _copy(source: Path, target: Path) -> None:
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")


def _verify_export(verifier: Path, export: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(verifier), "verify", str(export)],
        capture_output=True,
        text=True,
        check=False,
    )


def _edit_first_row(export: Path, **changes: Any) -> None:
    rows = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    rows[0].update(changes)
    export.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
