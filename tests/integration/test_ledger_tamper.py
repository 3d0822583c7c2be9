"""Tampering with audit rows directly in the database is caught by `verify_audit`.

Each test decides a few threads through a real coordinator on a real SQLite
file or real PostgreSQL tables, edits the rows with plain SQL (as someone with
database access, not the library, would), and checks that the whole-store
verification names the first broken row, and that the thread-level one
catches what a single thread's chain can show.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    LedgerHeadMissingError,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.ledger import LedgerReport, row_hash
from hitl_compliance.models import AuditRecord
from hitl_compliance.stores.postgres import PostgresReviewStore
from hitl_compliance.stores.sqlite import SqliteReviewStore
from tests.helpers import lane_zero_thread

RISKY = "Guaranteed returns, invest now."


@dataclass
class Ledger:
    """A store with three decided threads, and a way to edit its tables directly."""

    coord: HitlCoordinator
    store: SqliteReviewStore | PostgresReviewStore
    threads: dict[str, str]  # "a", "b", "c" -> thread id
    rows: list[AuditRecord]  # the audit rows before any tampering

    def row(self, name: str, event: str) -> AuditRecord:
        """The audit row of thread `name` with `event`."""
        thread = self.threads[name]
        (found,) = [r for r in self.rows if r.thread_id == thread and r.event == event]
        return found

    @property
    def postgres(self) -> bool:
        return isinstance(self.store, PostgresReviewStore)

    @property
    def head_table(self) -> str:
        """The chain head table: one row per lane in PostgreSQL, one row in SQLite."""
        return "audit_lanes" if self.postgres else "audit_head"

    async def sql(self, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
        """Run statements (`{p}` is the table prefix, `%s` a parameter) in one transaction."""
        prepared = [(s, ()) if isinstance(s, str) else s for s in statements]
        prepared = [(s.replace("{p}", self.store.table_prefix), p) for s, p in prepared]
        if isinstance(self.store, PostgresReviewStore):
            async with self.store._pool.connection() as conn, conn.transaction():
                for statement, params in prepared:
                    await conn.execute(statement, params)
            return
        conn = sqlite3.connect(self.store.path)
        try:
            with conn:
                for statement, params in prepared:
                    conn.execute(statement.replace("%s", "?"), params)
        finally:
            conn.close()

    async def verify(self, thread: str | None = None) -> LedgerReport:
        """`verify_audit` of the whole store, or of thread `thread` ("a", "b", "c")."""
        return await self.coord.verify_audit(None if thread is None else self.threads[thread])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """Three threads decided in this order (seq): a paused (1), b paused (2),
    a replied (3), a approved (4), c paused (5), b replied (6), b rejected (7),
    c replied (8), c approved with an edit (9). The coordinator's own decision
    sends the reply (`replied`) and then writes its outcome."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = str(request.getfixturevalue("postgres_dsn"))
    async with open_backend(url, table_prefix=f"l{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        # On PostgreSQL, threads of lane 0 (of 16): one chain, as in SQLite; the
        # lanes' own tamper tests are in test_ledger_lanes.py.
        threads = {name: lane_zero_thread(name) for name in "abc"}
        await coord.process(threads["a"], RISKY)
        await coord.process(threads["b"], RISKY)
        await coord.approve(threads["a"], reviewer="officer@bank")
        await coord.process(threads["c"], RISKY)
        await coord.reject(threads["b"], reviewer="officer@bank", reason="misleading")
        await coord.approve(threads["c"], reviewer="lead@bank", response="Talk to an adviser.")
        store = backend.reviews
        assert isinstance(store, SqliteReviewStore | PostgresReviewStore)
        rows = await store.audit_rows()
        assert [(r.seq, r.thread_id, r.event) for r in rows] == [
            (1, threads["a"], "paused"),
            (2, threads["b"], "paused"),
            (3, threads["a"], "replied"),
            (4, threads["a"], "approved"),
            (5, threads["c"], "paused"),
            (6, threads["b"], "replied"),
            (7, threads["b"], "rejected"),
            (8, threads["c"], "replied"),
            (9, threads["c"], "approved"),
        ]
        result = Ledger(coord=coord, store=store, threads=threads, rows=rows)
        report = await result.verify()
        assert (report.ok, report.checked, report.first_broken) == (True, 9, None)
        assert report.head_hash == rows[-1].hash
        for name in "abc":
            assert (await result.verify(name)).ok
        yield result


def assert_broken(report: LedgerReport, seq: int, reason: str) -> None:
    """Verification failed, first at `seq`, for a reason containing `reason`."""
    assert not report.ok
    assert report.first_broken is not None
    assert report.first_broken.seq == seq, report.first_broken
    assert reason in report.first_broken.reason


class TestEditedRows:
    async def test_edited_payload(self, ledger: Ledger) -> None:
        """An edited payload breaks that row's hash, store-wide and in its thread."""
        target = ledger.row("a", "approved")
        forged = json.dumps({**target.payload, "delivered": "Sure, 20% guaranteed!"})
        await ledger.sql(("UPDATE {p}audit SET payload = %s WHERE seq = %s", (forged, target.seq)))
        assert_broken(await ledger.verify(), target.seq, "edited")
        assert_broken(await ledger.verify("a"), target.seq, "edited")
        assert (await ledger.verify("b")).ok
        # Later appends do not hide it: the first broken row is still named.
        await ledger.coord.process(f"d-{uuid.uuid4().hex}", RISKY)
        assert_broken(await ledger.verify(), target.seq, "edited")

    async def test_edited_actor(self, ledger: Ledger) -> None:
        """Changing who decided breaks that row's hash."""
        target = ledger.row("b", "paused")
        await ledger.sql(("UPDATE {p}audit SET actor = 'mallory' WHERE seq = %s", (target.seq,)))
        assert_broken(await ledger.verify(), target.seq, "edited")
        assert_broken(await ledger.verify("b"), target.seq, "edited")
        assert (await ledger.verify("a")).ok

    async def test_timestamp_moved_by_one_microsecond(self, ledger: Ledger) -> None:
        """Timestamps are hashed to the microsecond."""
        target = ledger.row("c", "approved")
        shifted = target.at.replace(microsecond=(target.at.microsecond + 1) % 1_000_000)
        value: Any = shifted if ledger.postgres else shifted.isoformat(timespec="microseconds")
        await ledger.sql(("UPDATE {p}audit SET at = %s WHERE seq = %s", (value, target.seq)))
        assert_broken(await ledger.verify(), target.seq, "edited")
        assert_broken(await ledger.verify("c"), target.seq, "edited")

    async def test_edited_and_rehashed_row(self, ledger: Ledger) -> None:
        """Re-sealing an edited row fixes its own hash but not the links to it."""
        target = ledger.row("b", "paused")
        edited = target.model_copy(update={"actor": "mallory"})
        rehashed = row_hash(edited.to_row())
        await ledger.sql(
            (
                "UPDATE {p}audit SET actor = 'mallory', hash = %s WHERE seq = %s",
                (rehashed, target.seq),
            )
        )
        # The store-wide successor links to the old hash...
        assert_broken(await ledger.verify(), target.seq + 1, "global_prev_hash")
        # ...and so does the thread's next row (its reply record).
        assert_broken(await ledger.verify("b"), ledger.row("b", "replied").seq, "prev_hash")


class TestDeletedRows:
    async def test_deleted_middle_row(self, ledger: Ledger) -> None:
        """Deleting a row breaks the next row's store-wide link and the thread's next link."""
        target = ledger.row("b", "paused")
        await ledger.sql(("DELETE FROM {p}audit WHERE seq = %s", (target.seq,)))
        assert_broken(await ledger.verify(), target.seq + 1, "global_prev_hash")
        assert_broken(await ledger.verify("b"), ledger.row("b", "replied").seq, "prev_hash")
        assert (await ledger.verify("a")).ok

    async def test_deleted_last_row(self, ledger: Ledger) -> None:
        """Deleting the newest row is caught by the chain head, naming the new last row.

        A thread's own chain cannot see a cut at its end; its review row, decided
        without a decision row in the chain, does.
        """
        last = ledger.rows[-1]
        await ledger.sql(("DELETE FROM {p}audit WHERE seq = %s", (last.seq,)))
        assert_broken(await ledger.verify(), last.seq - 1, "chain head")
        assert_broken(await ledger.verify("c"), ledger.row("c", "paused").seq, "approved audit row")

    async def test_edited_head(self, ledger: Ledger) -> None:
        """A chain head that does not match the last row fails verification."""
        fake = hashlib.sha256(b"forged head").hexdigest()
        await ledger.sql((f"UPDATE {{p}}{ledger.head_table} SET hash = %s", (fake,)))
        assert_broken(await ledger.verify(), ledger.rows[-1].seq, "chain head")

    async def test_deleted_head_row(self, ledger: Ledger) -> None:
        """A missing head fails verification, and is never rebuilt: the next write is refused."""
        await ledger.sql("DELETE FROM {p}" + ledger.head_table)
        assert await ledger.store.audit_head() is None
        assert_broken(await ledger.verify(), ledger.rows[-1].seq, "chain head row is missing")
        thread = lane_zero_thread("d")
        with pytest.raises(LedgerHeadMissingError, match="restore the head row"):
            await ledger.store.append_audit(
                thread_id=thread,
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="ops",
                payload={},
                at=ledger.rows[-1].at,
            )
        with pytest.raises(LedgerHeadMissingError):
            await ledger.coord.process(thread, RISKY)
        # Nothing was written, and the head stays missing: still a break.
        assert await ledger.store.audit_rows() == ledger.rows
        assert await ledger.store.audit_head() is None
        assert_broken(await ledger.verify(), ledger.rows[-1].seq, "chain head row is missing")
        with pytest.raises(LedgerHeadMissingError):
            await ledger.coord.export_audit(Path(ledger.store.table_prefix + "x.jsonl"))


class TestInsertedRows:
    @staticmethod
    def forged(ledger: Ledger, seq: int, *, rehash: bool) -> tuple[str, tuple[Any, ...]]:
        """An INSERT of a plausible `approved` row for thread a at `seq`.

        Its links point at thread a's last row and at the head; its hash is
        64 hex digits, right for its content only when `rehash`.
        """
        last_a = ledger.row("a", "approved")
        record = AuditRecord(
            seq=seq,
            thread_id=last_a.thread_id,
            review_id=last_a.review_id,
            checkpoint_id=last_a.checkpoint_id,
            event="approved",
            actor="mallory",
            payload={"delivered": "Guaranteed returns!"},
            at=ledger.rows[-1].at,
            prev_hash=last_a.hash,
            global_prev_hash=ledger.rows[-1].hash,
            ledger_format=2,
        )
        digest = row_hash(record.to_row()) if rehash else hashlib.sha256(b"plausible").hexdigest()
        at: Any = record.at if ledger.postgres else record.at.isoformat(timespec="microseconds")
        return (
            "INSERT INTO {p}audit (seq, thread_id, review_id, checkpoint_id, event, actor, "
            "payload, at, prev_hash, global_prev_hash, hash, ledger_format) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 2)",
            (
                record.seq,
                record.thread_id,
                record.review_id,
                record.checkpoint_id,
                record.event,
                record.actor,
                json.dumps(record.payload),
                at,
                record.prev_hash,
                record.global_prev_hash,
                digest,
            ),
        )

    async def test_forged_row_with_a_wrong_hash(self, ledger: Ledger) -> None:
        """An appended row whose hash does not match its content is named."""
        seq = ledger.rows[-1].seq + 1
        await ledger.sql(self.forged(ledger, seq, rehash=False))
        assert_broken(await ledger.verify(), seq, "edited")
        assert_broken(await ledger.verify("a"), seq, "edited")

    async def test_forged_row_with_a_matching_hash(self, ledger: Ledger) -> None:
        """A well-linked, self-consistent forged row still disagrees with the chain head."""
        seq = ledger.rows[-1].seq + 1
        await ledger.sql(self.forged(ledger, seq, rehash=True))
        assert_broken(await ledger.verify(), seq, "chain head")

    async def test_forged_row_before_the_first(self, ledger: Ledger) -> None:
        """A row slipped in before seq 1 is named as out of order."""
        await ledger.sql(self.forged(ledger, 0, rehash=True))
        assert_broken(await ledger.verify(), 0, "reordered")
        assert_broken(await ledger.verify("a"), 0, "reordered")


class TestReorderedRows:
    async def test_swapped_seqs(self, ledger: Ledger) -> None:
        """Swapping two rows' seq breaks the hash of the first one in the new order."""
        first, second = ledger.row("a", "approved"), ledger.row("c", "paused")
        assert second.seq == first.seq + 1
        await ledger.sql(
            ("UPDATE {p}audit SET seq = -1 WHERE seq = %s", (first.seq,)),
            ("UPDATE {p}audit SET seq = %s WHERE seq = %s", (first.seq, second.seq)),
            ("UPDATE {p}audit SET seq = %s WHERE seq = -1", (second.seq,)),
        )
        assert_broken(await ledger.verify(), first.seq, "edited")
        # In each thread's chain, its moved row no longer hashes.
        assert_broken(await ledger.verify("c"), first.seq, "edited")
        assert_broken(await ledger.verify("a"), second.seq, "edited")
        assert (await ledger.verify("b")).ok
