"""Retention and legal hold on every backend: prune past the ceiling, keep the floor and held
threads, keep the decision's evidence, and leave a ledger that verifies (and still catches
any deletion retention did not document)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    LegalHoldError,
    RetentionPolicy,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.ledger import PRUNED_EVENT
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore
from hitl_compliance.testing import FakeClock

YEAR = timedelta(days=365)
POLICIES = [
    RetentionPolicy("audit", floor=5 * YEAR, ceiling=7 * YEAR),
    RetentionPolicy("reviews", floor=5 * YEAR, ceiling=7 * YEAR),
    RetentionPolicy("checkpoints", floor=timedelta(0), ceiling=timedelta(days=30)),
]


@dataclass
class Setup:
    coord: HitlCoordinator
    clock: FakeClock
    checkpointer: Any

    @property
    def store(self) -> ReviewStore:
        return self.coord.reviews

    async def decide(self, *threads: str) -> None:
        for thread_id in threads:
            await self.coord.process(thread_id, "Is this fund safe?")
            await self.coord.reject(thread_id, reviewer="officer@bank", reason="misleading")

    async def has_checkpoints(self, thread_id: str) -> bool:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        return await self.checkpointer.aget_tuple(config) is not None


@pytest_asyncio.fixture
async def setup(backend_url: str) -> AsyncIterator[Setup]:
    """A coordinator with the retention policies above on a fresh store of each backend."""
    clock = FakeClock()
    async with open_backend(backend_url, table_prefix=f"r{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews, clock=clock, retention=POLICIES)
        yield Setup(coord, clock, backend.checkpointer)


async def delete_audit_row(store: ReviewStore, seq: int) -> None:
    """Delete one audit row behind the store's back, as a DBA could."""
    if isinstance(store, InMemoryReviewStore):
        store._audit = [r for r in store._audit if r.seq != seq]
        for thread_id, rows in store._audit_by_thread.items():
            store._audit_by_thread[thread_id] = [r for r in rows if r.seq != seq]
        return
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    sql = f"DELETE FROM {store.table_prefix}audit WHERE seq = {int(seq)}"  # type: ignore[attr-defined]
    if isinstance(store, SqliteReviewStore):
        import sqlite3

        conn = sqlite3.connect(store.path)
        with conn:
            conn.execute(sql)
        conn.close()
    else:
        async with store._pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute(sql)


def offline_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hitl_compliance.ledger", "verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


class TestPruning:
    async def test_past_the_ceiling_everything_goes_and_the_ledger_verifies(
        self, setup: Setup, tmp_path: Path
    ) -> None:
        """Past every ceiling, reviews, audit rows and checkpoints go; tombstones verify."""
        await setup.decide("t1", "t2")
        setup.clock.advance(8 * YEAR)
        report = await setup.coord.apply_retention()
        # Each thread's paused, replied (the graph's record) and decision rows.
        assert (report.reviews, report.audit_rows, report.checkpoint_threads) == (2, 6, 2)
        assert report.held == ()
        assert await setup.store.get_review("t1") is None
        assert not await setup.has_checkpoints("t1")
        rows = await setup.store.audit_rows()
        assert {r.event for r in rows} == {PRUNED_EVENT}
        assert (await setup.coord.verify_audit()).ok
        assert (await setup.coord.verify_audit("t1")).ok
        path = tmp_path / "audit.jsonl"
        await setup.coord.export_audit(path)
        assert offline_verify(path).returncode == 0
        one = tmp_path / "t1.jsonl"
        await setup.coord.export_audit(one, thread_id="t1")
        assert offline_verify(one).returncode == 0
        again = await setup.coord.apply_retention()
        assert (again.reviews, again.audit_rows, again.checkpoint_threads) == (0, 0, 0)

    async def test_nothing_goes_before_the_ceiling_or_under_the_floor(self, setup: Setup) -> None:
        """Six years on nothing goes before its seven-year ceiling; a `now` in the future
        never deletes what the clock says is younger than the five-year floor."""
        await setup.decide("t1")
        setup.clock.advance(4 * YEAR)
        report = await setup.coord.apply_retention()
        assert (report.reviews, report.audit_rows) == (0, 0)
        assert report.checkpoint_threads == 1  # its 30-day ceiling is long past
        future = await setup.coord.apply_retention(now=setup.clock.now + 100 * YEAR)
        assert (future.reviews, future.audit_rows) == (0, 0)
        setup.clock.advance(2 * YEAR)
        six = await setup.coord.apply_retention()
        assert (six.reviews, six.audit_rows) == (0, 0)
        assert await setup.store.get_review("t1") is not None
        assert len(await setup.coord.audit_log("t1")) == 4

    async def test_an_undocumented_deletion_is_still_detected(
        self, setup: Setup, tmp_path: Path
    ) -> None:
        """After pruning, deleting a surviving row by hand breaks both verifiers."""
        await setup.decide("old")
        setup.clock.advance(8 * YEAR)
        await setup.decide("new")
        await setup.coord.apply_retention()
        assert (await setup.coord.verify_audit()).ok
        survivor = next(r for r in await setup.store.audit_rows() if r.thread_id == "new")
        await delete_audit_row(setup.store, survivor.seq)
        report = await setup.coord.verify_audit()
        assert not report.ok
        assert not (await setup.coord.verify_audit("new")).ok
        path = tmp_path / "audit.jsonl"
        await setup.coord.export_audit(path)
        assert offline_verify(path).returncode == 1


class TestHolds:
    async def test_a_hold_blocks_pruning_and_erasure_until_released(self, setup: Setup) -> None:
        """A held thread is skipped and reported; released, it is pruned like the others."""
        await setup.decide("held", "free")
        hold = await setup.coord.place_hold("held", reason="FCA enquiry 17", by="legal@bank")
        assert await setup.coord.place_hold("held", reason="other", by="x") == hold
        assert await setup.coord.holds() == [hold]
        setup.clock.advance(8 * YEAR)
        report = await setup.coord.apply_retention()
        assert report.held == ("held",)
        assert await setup.store.get_review("held") is not None
        assert await setup.has_checkpoints("held")
        assert [r.event for r in await setup.coord.audit_log("held")] == [
            "paused",
            "replied",
            "rejected",
            "hold_placed",
        ]
        with pytest.raises(LegalHoldError) as caught:
            await setup.coord.ensure_not_held("held")
        assert (caught.value.thread_id, caught.value.reason) == ("held", "FCA enquiry 17")
        await setup.coord.ensure_not_held("free")

        released = await setup.coord.release_hold("held", by="legal@bank")
        assert released == hold
        assert await setup.coord.release_hold("held", by="legal@bank") is None
        assert await setup.coord.holds() == []
        assert (await setup.coord.audit_log("held"))[-1].event == "hold_released"
        setup.clock.advance(8 * YEAR)
        after = await setup.coord.apply_retention()
        assert after.held == ()
        assert await setup.store.get_review("held") is None
        assert (await setup.coord.verify_audit()).ok


class TestEvidence:
    async def test_state_at_decision_survives_checkpoint_pruning(self, setup: Setup) -> None:
        """The decided state is kept with the review before the checkpoints go."""
        await setup.decide("t1")
        before = await setup.coord.state_at_decision("t1")
        setup.clock.advance(days=31)
        report = await setup.coord.apply_retention()
        assert report.checkpoint_threads == 1
        assert not await setup.has_checkpoints("t1")
        assert await setup.coord.state_at_decision("t1") == before
        tomb = (await setup.coord.audit_log("t1"))[-1]
        assert tomb.event == PRUNED_EVENT
        assert tomb.payload["record_class"] == "checkpoints"
        assert (await setup.coord.verify_audit()).ok


class TestMigration:
    @pytest.mark.parametrize("backend", ["sqlite", "postgres"])
    async def test_a_previous_version_database_gains_holds(
        self,
        backend: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> None:
        """Tables of the previous schema version are upgraded in place, rows kept; holds work."""
        if backend == "sqlite":
            import hitl_compliance.stores.sqlite as module

            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            pytest.importorskip("psycopg")
            import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

            url = str(request.getfixturevalue("postgres_dsn"))
        prefix = f"m{uuid.uuid4().hex[:8]}_"
        previous = len(module._MIGRATIONS) - 1
        now = FakeClock().now
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:previous])
            patch.setattr(module, "SCHEMA_VERSION", previous)
            async with open_backend(url, table_prefix=prefix) as old:
                await old.reviews.append_audit(
                    thread_id="t1",
                    review_id=None,
                    checkpoint_id=None,
                    event="paused",
                    actor="system",
                    payload={},
                    at=now,
                )
                old_rows = await old.reviews.audit_rows()
        async with open_backend(url, table_prefix=prefix) as new:
            store: Any = new.reviews
            hold = await store.place_hold("t1", reason="enquiry", by="legal", now=now)
            assert await store.holds() == [hold]
            rows = await store.audit_rows()
            assert rows[:1] == old_rows
            assert [r.event for r in rows] == ["paused", "hold_placed"]
            with pytest.raises(LegalHoldError):
                await store.prune_thread(
                    "t1", "audit", before=now + 10 * YEAR, now=now + 10 * YEAR, actor="t"
                )
            await store.release_hold("t1", by="legal", now=now)
            assert (
                await store.prune_thread(
                    "t1", "audit", before=now + 10 * YEAR, now=now + 10 * YEAR, actor="t"
                )
                == 3
            )
