"""PostgreSQL's ledger lanes on a real server: one head per lane, verified per lane.

A thread's rows go to lane `lane_of(thread_id, L)` (format 3, the lane in the
hash); an append locks only its lane's head. These tests append through the
real store (both its server-side function and the shared multi-statement
writes), tamper with plain SQL, and check that verification, seals, the
offline verifier and the migration of an older database hold per lane.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    ConfigurationError,
    Ed25519Signer,
    HitlCoordinator,
    LedgerHeadMissingError,
    Sealing,
)
from hitl_compliance.ledger import LANES_FORMAT, _main, combined_head, lane_of, verify_rows
from hitl_compliance.stores.postgres import PostgresReviewStore
from hitl_compliance.stores.sqlite import SqliteReviewStore
from hitl_compliance.testing.conformance._helpers import assert_chain

pytestmark = pytest.mark.postgres

AT = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def thread_in(lane: int, lanes: int = 16) -> str:
    """A fresh thread id whose lane is `lane`."""
    while lane_of(thread := f"t-{uuid.uuid4().hex}", lanes) != lane:
        pass
    return thread


async def note(store: PostgresReviewStore | SqliteReviewStore, thread: str, n: int = 0) -> Any:
    return await store.append_audit(
        thread_id=thread,
        review_id=None,
        checkpoint_id=None,
        event="note",
        actor="ops",
        payload={"n": n},
        at=AT,
    )


async def run_sql(store: PostgresReviewStore, statement: str, params: tuple[Any, ...] = ()) -> None:
    async with store._pool.connection() as conn, conn.transaction():
        await conn.execute(statement.replace("{p}", store.table_prefix), params)


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresReviewStore]:
    """A new store with the default 16 lanes."""
    prefix = f"ln{uuid.uuid4().hex[:8]}_"
    async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix) as s:
        yield s


async def verify(store: PostgresReviewStore) -> Any:
    rows = [r.to_row() for r in await store.audit_rows()]
    return verify_rows(rows, head=await store.audit_head() or (0, ""))


class TestAppend:
    async def test_rows_name_their_lane_and_chain_per_lane(
        self, store: PostgresReviewStore
    ) -> None:
        """Each row is format 3 in its thread's lane, linked to its lane's previous row."""
        a, b, c = thread_in(3), thread_in(3), thread_in(11)
        for i, thread in enumerate([a, c, b, c, a]):
            await note(store, thread, i)
        rows = await store.audit_rows()
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert [r.lane for r in rows] == [3, 11, 3, 11, 3]
        assert {r.ledger_format for r in rows} == {LANES_FORMAT}
        assert rows[2].global_prev_hash == rows[0].hash  # b's row follows a's in lane 3
        assert_chain(rows, await store.audit_head())
        lanes = await store.audit_lanes()
        assert lanes is not None
        assert len(lanes) == 16
        assert lanes[3] == (3, 5, rows[4].hash)
        assert lanes[11] == (11, 4, rows[3].hash)
        assert await store.audit_head() == combined_head(lanes)

    async def test_concurrent_appends_from_two_instances_chain_per_lane(
        self, store: PostgresReviewStore, postgres_dsn: str
    ) -> None:
        """Many concurrent appends over several lanes, from two pools, form valid lane chains."""
        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=store.table_prefix
        ) as other:
            threads = [f"c-{i}" for i in range(12)]
            await asyncio.gather(
                *(
                    note(s, thread, i)
                    for i in range(4)
                    for s, thread in zip([store, other] * 6, threads, strict=True)
                )
            )
        rows = await store.audit_rows()
        assert len(rows) == 48
        assert len({r.lane for r in rows}) > 1
        assert_chain(rows, await store.audit_head())

    async def test_lane_count_is_kept_from_creation(
        self, store: PostgresReviewStore, postgres_dsn: str
    ) -> None:
        """Reopening with another ledger_lanes keeps the lanes the store was created with."""
        thread = thread_in(5)
        await note(store, thread)
        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=store.table_prefix, ledger_lanes=4
        ) as reopened:
            record = await note(reopened, thread, 1)
            assert record.lane == 5
            lanes = await reopened.audit_lanes()
            assert lanes is not None
            assert len(lanes) == 16

    async def test_one_lane_store(self, postgres_dsn: str) -> None:
        """ledger_lanes=1 is one chain (lane 0) whose head is the last row's."""
        prefix = f"ln{uuid.uuid4().hex[:8]}_"
        async with PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=prefix, ledger_lanes=1
        ) as one:
            for i in range(3):
                await note(one, f"t{i}", i)
            rows = await one.audit_rows()
            assert {r.lane for r in rows} == {0}
            assert await one.audit_head() == (rows[-1].seq, rows[-1].hash)

    @pytest.mark.parametrize("lanes", [0, -1, 1025, True, "16"])
    def test_bad_lane_count_is_refused(self, lanes: Any) -> None:
        """ledger_lanes must be an int from 1 to 1024."""
        with pytest.raises(ConfigurationError, match="ledger_lanes"):
            PostgresReviewStore.from_conn_string("postgresql://x@localhost/db", ledger_lanes=lanes)


class TestTamper:
    async def test_deleted_row_breaks_its_lane_only(self, store: PostgresReviewStore) -> None:
        """A deleted row breaks the next row of its lane (another thread's), named by seq."""
        a, b, c = thread_in(3), thread_in(3), thread_in(11)
        for i, thread in enumerate([a, c, b, c, a]):
            await note(store, thread, i)
        await run_sql(store, "DELETE FROM {p}audit WHERE seq = 3")  # b's row, lane 3
        report = await verify(store)
        assert report.first_broken is not None
        assert report.first_broken.seq == 5
        assert "global_prev_hash" in report.first_broken.reason

    async def test_deleted_lane_head_refuses_that_lane_only(
        self, store: PostgresReviewStore
    ) -> None:
        """A deleted lane head is never rebuilt: its lane refuses appends, others go on."""
        a, c = thread_in(3), thread_in(11)
        await note(store, a)
        await run_sql(store, "DELETE FROM {p}audit_lanes WHERE lane = 3")
        assert await store.audit_head() is None
        with pytest.raises(LedgerHeadMissingError, match="audit_lanes"):
            await note(store, a, 1)
        await note(store, c, 2)
        assert [r.thread_id for r in await store.audit_rows()] == [a, c]
        # setup() again does not recreate it either.
        await store.setup()
        assert await store.audit_lanes() is None

    async def test_edited_lane_head_breaks_verification(self, store: PostgresReviewStore) -> None:
        """A lane head that does not match its lane's last row fails verification."""
        a, c = thread_in(3), thread_in(11)
        await note(store, a)
        await note(store, c)
        await run_sql(store, "UPDATE {p}audit_lanes SET seq = 9 WHERE lane = 3")
        report = await verify(store)
        assert report.first_broken is not None
        assert "chain head" in report.first_broken.reason


class TestSealsAndExport:
    async def test_seal_covers_every_lane_and_the_export_verifies_offline(
        self, store: PostgresReviewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A seal lists every lane head; export + `ledger verify --public-key` says ok, and
        a lane cut back past its sealed head is caught, online and offline."""
        pytest.importorskip("cryptography")
        signer = Ed25519Signer.generate()
        a, c = thread_in(3), thread_in(11)
        for i, thread in enumerate([a, c, a, c]):
            await note(store, thread, i)
        coord = HitlCoordinator(_graph(), reviews=store, sealing=Sealing(signer, every=None))
        sealed = await store.seal_head()
        assert sealed is not None
        rows = await store.audit_rows()
        assert sealed.lanes == ((3, 3, rows[2].hash), (11, 4, rows[3].hash))
        assert await store.seals() == [sealed]
        key = tmp_path / "key.pem"
        key.write_bytes(signer.public_key_pem())
        report = await coord.verify_audit(public_key=key)
        assert report.ok, report.first_broken
        export = tmp_path / "audit.jsonl"
        await coord.export_audit(export)
        capsys.readouterr()
        assert _main(["ledger.py", "verify", str(export), "--public-key", str(key)]) == 0
        # Lane 11 cut back to nothing, its head reset: only the seal shows it.
        await run_sql(store, "DELETE FROM {p}audit WHERE lane = 11")
        await run_sql(
            store, "UPDATE {p}audit_lanes SET seq = 0, hash = %s WHERE lane = 11", ("0" * 64,)
        )
        report = await coord.verify_audit(public_key=key)
        assert report.first_broken is not None
        assert "lane 11" in report.first_broken.reason
        cut = tmp_path / "cut.jsonl"
        await HitlCoordinator(_graph(), reviews=store).export_audit(cut)
        lines = export.read_text().splitlines()
        seals = [line for line in lines if '"type": "seal"' in line]
        cut.write_text(cut.read_text() + "".join(f"{line}\n" for line in seals))
        assert _main(["ledger.py", "verify", str(cut), "--public-key", str(key)]) == 1


def _graph() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    from hitl_compliance import build_compliance_graph

    return build_compliance_graph(lambda state: "hi", rules=[], checkpointer=InMemorySaver())


class TestMigration:
    async def test_database_of_the_previous_version_gains_lanes(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tables of the previous version are upgraded in place: old rows stay lane 0 and
        verify, the old head becomes lane 0's, seq continues, new rows go to their lanes,
        and running setup again changes nothing."""
        import hitl_compliance.stores.postgres as module

        step = module._MIGRATIONS.index(module.schema_lanes)
        prefix = f"lm{uuid.uuid4().hex[:8]}_"
        old_threads = [thread_in(7), thread_in(9)]
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:step])
            patch.setattr(module, "SCHEMA_VERSION", step)
            async with PostgresReviewStore.from_conn_string(
                postgres_dsn, table_prefix=prefix
            ) as old:
                for i, thread in enumerate(old_threads * 2):
                    await note(old, thread, i)
                before = await old.audit_rows()
                assert {r.ledger_format for r in before} == {2}
                assert await old.audit_head() == (4, before[-1].hash)
        async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix) as new:
            assert await new.audit_rows() == before
            lanes = await new.audit_lanes()
            assert lanes is not None
            assert len(lanes) == 16
            assert lanes[0] == (0, 4, before[-1].hash)
            assert await new.audit_head() == (4, before[-1].hash)
            for i, thread in enumerate(old_threads):
                await note(new, thread, 10 + i)
            rows = await new.audit_rows()
            assert [(r.seq, r.lane, r.ledger_format) for r in rows[4:]] == [(5, 7, 3), (6, 9, 3)]
            # Each thread's chain goes on from its old lane-0 rows.
            assert rows[4].prev_hash == before[2].hash
            assert_chain(rows, await new.audit_head())
            await new.setup()
            assert await new.audit_rows() == rows
            assert await new.audit_lanes() == await new.audit_lanes()
            report = verify_rows([r.to_row() for r in rows], head=await new.audit_head())
            assert (report.ok, report.checked) == (True, 6)
