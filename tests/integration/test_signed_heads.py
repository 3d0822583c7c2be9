"""Signed, anchored heads catch what a hash chain alone cannot, on every store.

An attacker with database access (plain SQL, or the memory store's lists) cuts
rows from the end and rewrites the chain head, re-hashes every row, forges
seals, or deletes the head row. Each test runs a real coordinator with a
`Sealing` policy on memory, a real SQLite file and real PostgreSQL tables,
tampers, and checks what `verify_audit(public_key=...)` proves; the offline
verifier runs as a real subprocess on an export.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import hitl_compliance.ledger as ledger_module
from hitl_compliance import (
    Ed25519Signer,
    FileAnchor,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    LedgerHeadMissingError,
    LedgerReport,
    SealedHead,
    Sealing,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.ledger import GENESIS, row_hash, seal_message
from hitl_compliance.models import AuditRecord
from hitl_compliance.stores.postgres import PostgresReviewStore
from hitl_compliance.stores.sqlite import SqliteReviewStore
from tests.helpers import lane_zero_thread

RISKY = "Guaranteed returns, invest now."
Store = InMemoryReviewStore | SqliteReviewStore | PostgresReviewStore


@dataclass
class Sealed:
    """A store sealed every 2 rows (heads 2, 4, 6), and an attacker's tools."""

    coord: HitlCoordinator
    store: Store
    signer: Ed25519Signer
    anchor: FileAnchor
    public_key: bytes
    rows: list[AuditRecord]

    async def verify(self, **kwargs: Any) -> LedgerReport:
        return await self.coord.verify_audit(public_key=self.public_key, **kwargs)

    @property
    def head_table(self) -> str:
        """The chain head table: one row per lane in PostgreSQL, one row in SQLite."""
        return "audit_lanes" if isinstance(self.store, PostgresReviewStore) else "audit_head"

    @property
    def lane_zero(self) -> str:
        """The WHERE clause of lane 0's head row (the only head row in SQLite)."""
        return " WHERE lane = 0" if isinstance(self.store, PostgresReviewStore) else ""

    async def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        assert not isinstance(self.store, InMemoryReviewStore)
        await run_sql(self.store, statement, params)

    async def truncate(self, keep: int) -> None:
        """Delete every row after seq `keep` and point the head at row `keep`."""
        last = self.rows[keep - 1]
        if isinstance(self.store, InMemoryReviewStore):
            del self.store._audit[keep:]
            for rows in self.store._audit_by_thread.values():
                rows[:] = [r for r in rows if r.seq <= keep]
            return
        await self.sql("DELETE FROM {p}audit WHERE seq > %s", (keep,))
        await self.sql(
            f"UPDATE {{p}}{self.head_table} SET seq = %s, hash = %s{self.lane_zero}",
            (last.seq, last.hash),
        )

    async def rehash(self, seq: int, actor: str) -> list[str]:
        """Change row `seq`'s actor and recompute every hash, link and the head; the new hashes."""
        thread_prev: dict[str, str] = {}
        global_prev = GENESIS
        forged: list[AuditRecord] = []
        for record in self.rows:
            row = record.to_row()
            if record.seq == seq:
                row["actor"] = actor
            row["prev_hash"] = thread_prev.get(record.thread_id, GENESIS)
            row["global_prev_hash"] = global_prev
            row["hash"] = row_hash(row)
            thread_prev[record.thread_id] = global_prev = row["hash"]
            forged.append(AuditRecord.model_validate({**record.model_dump(), **row}))
        if isinstance(self.store, InMemoryReviewStore):
            self.store._audit[:] = forged
            self.store._audit_by_thread.clear()
            for r in forged:
                self.store._audit_by_thread.setdefault(r.thread_id, []).append(r)
            return [r.hash for r in forged]
        for r in forged:
            await self.sql(
                "UPDATE {p}audit SET actor = %s, prev_hash = %s, global_prev_hash = %s, "
                "hash = %s WHERE seq = %s",
                (r.actor, r.prev_hash, r.global_prev_hash, r.hash, r.seq),
            )
        await self.sql(
            f"UPDATE {{p}}{self.head_table} SET hash = %s{self.lane_zero}", (forged[-1].hash,)
        )
        return [r.hash for r in forged]

    async def replace_seals(self, seals: list[SealedHead]) -> None:
        """Swap the store's seals for `seals` (as an attacker covering tracks would)."""
        if isinstance(self.store, InMemoryReviewStore):
            self.store._seals = {(s.seq, s.key_id): s for s in seals}
            return
        await self.sql("DELETE FROM {p}audit_seals")
        for s in seals:
            at: Any = s.sealed_at
            if isinstance(self.store, SqliteReviewStore):
                at = s.sealed_at.isoformat(timespec="microseconds")
            await self.sql(
                "INSERT INTO {p}audit_seals (seq, key_id, hash, sealed_at, signature) "
                "VALUES (%s, %s, %s, %s, %s)",
                (s.seq, s.key_id, s.hash, at, s.signature),
            )


async def run_sql(
    store: SqliteReviewStore | PostgresReviewStore, statement: str, params: tuple[Any, ...] = ()
) -> None:
    """One statement on a SQL store's tables (`{p}` is the prefix, `%s` a parameter)."""
    statement = statement.replace("{p}", store.table_prefix)
    if isinstance(store, PostgresReviewStore):
        async with store._pool.connection() as conn, conn.transaction():
            await conn.execute(statement, params)
        return
    conn = sqlite3.connect(store.path)
    try:
        with conn:
            conn.execute(statement.replace("%s", "?"), params)
    finally:
        conn.close()


def sign(signer: Ed25519Signer, seq: int, digest: str, key_id: str | None = None) -> SealedHead:
    """A sealed head of `(seq, digest)` signed by `signer`, labelled `key_id`."""
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    kid = key_id or signer.key_id
    return SealedHead(seq, digest, at, kid, signer.sign(seal_message(seq, digest, at, kid)).hex())


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sealed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sealed]:
    """Three threads decided (6 rows), sealed every 2 rows: seals at seq 2, 4 and 6."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sealed.db'}"
    else:
        url = str(request.getfixturevalue("postgres_dsn"))
    signer = Ed25519Signer.generate()
    anchor = FileAnchor(tmp_path / "anchors.jsonl")
    sealing = Sealing(signer, every_rows=2, every=None, anchors=(anchor,))
    async with open_backend(url, table_prefix=f"s{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews, sealing=sealing)
        # Six rows: each decided turn is paused, replied (the graph's record), decided.
        # On PostgreSQL, threads of lane 0: one chain, as in the other stores
        # (seals over several lanes: test_ledger_lanes.py).
        threads = [lane_zero_thread(name) for name in "ab"]
        await coord.process(threads[0], RISKY)
        await coord.process(threads[1], RISKY)
        await coord.approve(threads[0], reviewer="officer@bank", response="Talk to an adviser.")
        await coord.reject(threads[1], reviewer="officer@bank", reason="misleading")
        store = backend.reviews
        assert isinstance(store, InMemoryReviewStore | SqliteReviewStore | PostgresReviewStore)
        rows = await store.audit_rows()
        assert len(rows) == 6
        seals = await store.seals()
        assert [(s.seq, s.hash) for s in seals] == [(r.seq, r.hash) for r in rows[1::2]]
        assert [s.seq for s in await anchor.heads()] == [2, 4, 6]
        yield Sealed(coord, store, signer, anchor, signer.public_key_pem(), rows)


def assert_broken(report: LedgerReport, seq: int, reason: str) -> None:
    assert not report.ok
    assert report.first_broken is not None
    assert report.first_broken.seq == seq, report.first_broken
    assert reason in report.first_broken.reason, report.first_broken.reason


class TestIntact:
    async def test_proof_of_an_intact_ledger(self, sealed: Sealed) -> None:
        """An untouched ledger verifies, and its proof names the last signed, anchored head."""
        report = await sealed.verify()
        assert report.ok
        assert report.first_broken is None
        proof = report.proof
        assert proof is not None
        assert (proof.signatures_checked, proof.key_id) == (True, sealed.signer.key_id)
        assert (proof.intact_through, proof.sealed_seq, proof.anchored_seq) == (6, 6, 6)
        assert proof.unsealed_rows == 0
        assert "rows 1..6 are complete" in " ".join(proof.statements())

    async def test_rows_after_the_last_seal_are_unproven(self, sealed: Sealed) -> None:
        """A row appended after the last seal is chained but reported as unproven."""
        await sealed.coord.process(lane_zero_thread("d"), RISKY)
        report = await sealed.verify()
        assert report.ok
        assert report.proof is not None
        assert (report.proof.sealed_seq, report.proof.unsealed_rows) == (6, 1)
        assert "1 row(s) after the last sealed head are unproven" in report.proof.statements()[-1]


class TestTruncation:
    async def test_cut_rows_and_rewritten_head_are_caught(self, sealed: Sealed) -> None:
        """Deleting the last rows and rewriting the head passes the chain, not the seals."""
        await sealed.truncate(keep=3)
        # Even without the key, the store's own seals at 4 and 6 are past the end.
        assert (await sealed.coord.verify_audit(anchors=())).ok is False
        report = await sealed.verify()
        assert_broken(report, 3, "rows 4..6 were deleted (the ledger was truncated)")
        assert report.proof is not None
        assert (report.proof.sealed_seq, report.proof.intact_through) == (2, 3)

    async def test_cut_seals_too_are_caught_by_the_anchor(self, sealed: Sealed) -> None:
        """An attacker who also deletes the seals past the cut is caught by the anchor file."""
        await sealed.truncate(keep=3)
        await sealed.replace_seals([s for s in await sealed.store.seals() if s.seq <= 3])
        # Without an anchor nothing inside the database is left to show it.
        unanchored = await sealed.verify(anchors=())
        assert unanchored.ok
        assert unanchored.proof is not None
        assert unanchored.proof.anchored_seq is None
        assert_broken(await sealed.verify(), 3, "the anchored head at seq 6")


class TestRehash:
    async def test_rehashed_rows_are_caught_by_the_signature(self, sealed: Sealed) -> None:
        """Rewriting a row and recomputing every hash keeps the chain intact but not the seals."""
        await sealed.rehash(3, actor="mallory")
        assert (await sealed.coord.verify_audit(anchors=())).ok is False
        assert_broken(await sealed.verify(), 4, "rewritten and re-hashed")

    async def test_forged_seals_with_another_key_are_caught(self, sealed: Sealed) -> None:
        """Re-sealing the re-hashed rows with the attacker's key fails under the real key."""
        hashes = await sealed.rehash(3, actor="mallory")
        mallory = Ed25519Signer.generate()
        forged = [sign(mallory, seq, hashes[seq - 1]) for seq in (2, 4, 6)]
        await sealed.replace_seals(forged)
        # Without the public key the forged seals look consistent: nothing is proven.
        unkeyed = await sealed.coord.verify_audit(anchors=())
        assert unkeyed.ok
        assert unkeyed.proof is not None
        assert unkeyed.proof.signatures_checked is False
        assert "signatures NOT checked" in " ".join(unkeyed.proof.statements())
        report = await sealed.verify(anchors=())
        assert_broken(report, 2, "not by the given key")
        assert report.proof is not None
        assert report.proof.sealed_seq is None

    async def test_forged_seal_under_the_real_key_id_is_caught(self, sealed: Sealed) -> None:
        """A seal claiming the real key id with another key's signature does not verify."""
        hashes = await sealed.rehash(3, actor="mallory")
        mallory = Ed25519Signer.generate()
        forged = [sign(mallory, seq, hashes[seq - 1], sealed.signer.key_id) for seq in (2, 4, 6)]
        await sealed.replace_seals(forged)
        assert_broken(await sealed.verify(anchors=()), 2, "signature does not verify")


class TestHeadRow:
    async def test_deleted_head_row_is_an_error_never_rebuilt(self, sealed: Sealed) -> None:
        """Deleting the head row (SQL stores) breaks verification and refuses the next write."""
        if isinstance(sealed.store, InMemoryReviewStore):
            pytest.skip("the memory store derives its head from its rows")
        await sealed.truncate(keep=5)
        await sealed.sql(f"DELETE FROM {{p}}{sealed.head_table}")
        report = await sealed.verify()
        assert_broken(report, 5, "chain head row is missing")
        with pytest.raises(LedgerHeadMissingError):
            await sealed.coord.process(lane_zero_thread("d"), RISKY)
        assert len(await sealed.store.audit_rows()) == 5
        assert await sealed.store.audit_head() is None
        with pytest.raises(LedgerHeadMissingError):
            await sealed.coord.export_audit(sealed.anchor.path.with_name("x.jsonl"))


class TestOfflineVerifier:
    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=60
        )

    async def test_export_verifies_offline_and_truncation_is_caught(
        self, sealed: Sealed, tmp_path: Path
    ) -> None:
        """The copied ledger.py checks an export's seals with the key and the anchor file."""
        export = tmp_path / "audit.jsonl"
        await sealed.coord.process(lane_zero_thread("d"), RISKY)  # row 7, sealed on export
        assert await sealed.coord.export_audit(export) == 7
        key = tmp_path / "key.pub.pem"
        key.write_bytes(sealed.public_key)
        alone = tmp_path / "auditor"
        alone.mkdir()
        shutil.copy(ledger_module.__file__, alone / "ledger.py")
        args = ["ledger.py", "verify", export, "--public-key", key, "--anchor", sealed.anchor.path]
        ok = self.run(*args, cwd=alone)
        assert ok.returncode == 0, ok.stderr
        assert "signed head at seq 7" in ok.stdout
        assert "anchored head at seq 7" in ok.stdout
        # Truncate the export: drop rows 5..7 and their seals, rewrite the head line.
        lines = [json.loads(line) for line in export.read_text().splitlines()]
        kept = [r for r in lines if r["type"] in ("row", "seal") and r["seq"] <= 4]
        kept.append({"type": "head", "seq": 4, "hash": sealed.rows[3].hash})
        export.write_text("".join(json.dumps(r) + "\n" for r in kept))
        chain_only = self.run("-m", "hitl_compliance.ledger", "verify", export)
        assert chain_only.returncode == 0  # the chain alone cannot see the cut
        cut = self.run(*args, cwd=alone)
        assert cut.returncode == 1, cut.stdout
        assert "rows 5..7 were deleted" in cut.stdout
        # A key that did not sign the seals fails them all.
        key.write_bytes(Ed25519Signer.generate().public_key_pem())
        wrong = self.run("-m", "hitl_compliance.ledger", "verify", export, "--public-key", key)
        assert wrong.returncode == 1
        assert "not by the given key" in wrong.stdout


class TestMigration:
    @pytest.mark.parametrize(
        "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    )
    async def test_database_of_the_previous_version_gains_seals(
        self,
        backend: str,
        tmp_path: Path,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A database of the previous schema is upgraded in place: seals, no headless write."""
        if backend == "sqlite":
            import hitl_compliance.stores.sqlite as module

            url = f"sqlite:///{tmp_path / 'old.db'}"
            step = module._MIGRATIONS.index(module._schema_seals)
        else:
            import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

            url = str(request.getfixturevalue("postgres_dsn"))
            step = module._MIGRATIONS.index(module._schema_seals)  # type: ignore[attr-defined]
        prefix = f"m{uuid.uuid4().hex[:8]}_"
        at = datetime(2026, 12, 1, tzinfo=timezone.utc)
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:step])
            patch.setattr(module, "SCHEMA_VERSION", step)
            async with open_backend(url, table_prefix=prefix) as old:
                await old.reviews.append_audit(
                    thread_id="t",
                    review_id=None,
                    checkpoint_id=None,
                    event="note",
                    actor="ops",
                    payload={},
                    at=at,
                )
        signer = Ed25519Signer.generate()
        async with open_backend(url, table_prefix=prefix) as new:
            store = new.reviews
            assert isinstance(store, SqliteReviewStore | PostgresReviewStore)
            store.configure_sealing(Sealing(signer))
            head = await store.seal_head()
            assert head is not None
            assert head.seq == 1
            assert await store.seals() == [head]
            table = "audit_lanes" if isinstance(store, PostgresReviewStore) else "audit_head"
            await run_sql(store, f"DELETE FROM {{p}}{table}")
            with pytest.raises(LedgerHeadMissingError):
                await store.append_audit(
                    thread_id="t",
                    review_id=None,
                    checkpoint_id=None,
                    event="note",
                    actor="ops",
                    payload={},
                    at=at,
                )
            assert len(await store.audit_rows()) == 1
