"""Erasure on every backend: a subject's personal data goes, the chain still verifies.

Personal values of audit payloads are kept beside the chain under salted
commitments; `erase_subject` deletes them, redacts the review rows, deletes the
checkpoints and appends one `erased` row per thread. Every verifier (the
store's, the offline `ledger.py`, the JavaScript one) stays green, an edited
side value is caught, and a held or open thread is refused with nothing changed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance import (
    ERASED_TEXT,
    HitlCoordinator,
    KeywordRule,
    LegalHoldError,
    PersonalStore,
    ThreadBusyError,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.ledger import ERASED_EVENT, ERASED_KEY, PERSONAL_KEY
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore
from hitl_compliance.testing import FakeClock

VERIFIER = Path(__file__).parents[2] / "docs" / "assets" / "verify-ledger.mjs"
DRAFT = "Guaranteed returns for Alice Smith!"
EDITED = "Alice, returns are not guaranteed."
QUESTION = "Is this fund safe? I am Alice Smith, account 12345678."


@dataclass
class Setup:
    coord: HitlCoordinator
    checkpointer: Any

    @property
    def store(self) -> ReviewStore:
        return self.coord.reviews

    @property
    def personal(self) -> PersonalStore:
        store = self.coord.reviews
        assert isinstance(store, PersonalStore)
        return store

    async def edited_turn(self, thread_id: str, subject: str) -> None:
        await self.coord.process(thread_id, QUESTION, requested_by=subject)
        await self.coord.approve(thread_id, reviewer="officer@bank", response=EDITED)

    async def has_checkpoints(self, thread_id: str) -> bool:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        return await self.checkpointer.aget_tuple(config) is not None


@pytest_asyncio.fixture
async def setup(backend_url: str) -> AsyncIterator[Setup]:
    """A coordinator on a fresh store of each backend, its graph checkpointed there too."""
    async with open_backend(backend_url, table_prefix=f"e{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: DRAFT,
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews, clock=FakeClock())
        yield Setup(coord, backend.checkpointer)


def offline_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hitl_compliance.ledger", "verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def node_verify(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("HITL_REQUIRE_NODE") == "1":
            pytest.fail("HITL_REQUIRE_NODE=1 but node is not on PATH")
        pytest.skip("node is not on PATH")
    return subprocess.run(
        [node, str(VERIFIER), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


async def edit_side_value(store: ReviewStore, digest: str, value: str) -> None:
    """Change one kept personal value behind the store's back, as a DBA could."""
    if isinstance(store, InMemoryReviewStore):
        store._personal[digest] = replace(store._personal[digest], value=value)
        return
    from hitl_compliance.stores.sqlite import SqliteReviewStore

    table = f"{store.table_prefix}personal"  # type: ignore[attr-defined]
    if isinstance(store, SqliteReviewStore):
        conn = sqlite3.connect(store.path)
        with conn:
            conn.execute(
                f"UPDATE {table} SET value = ? WHERE digest = ?", (json.dumps(value), digest)
            )
        conn.close()
    else:
        async with store._pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute(
                f"UPDATE {table} SET value = %s WHERE digest = %s", (json.dumps(value), digest)
            )


async def snapshot(setup: Setup, thread_id: str) -> tuple[Any, ...]:
    """Everything erasure could change about a thread."""
    return (
        [r.to_row() for r in await setup.store.audit_rows()],
        await setup.store.get_review(thread_id),
        sorted(v.digest for v in await setup.personal.personal_values(thread_id)),
        await setup.has_checkpoints(thread_id),
    )


class TestSealed:
    async def test_the_chain_holds_commitments_and_readers_get_the_text(
        self, setup: Setup, tmp_path: Path
    ) -> None:
        """The hashed payload holds only salted commitments; audit_log shows the text."""
        await setup.edited_turn("t1", "alice")
        rows = await setup.coord.audit_log("t1")
        decision = next(r for r in rows if r.event == "approved")
        assert decision.payload["delivered"] == EDITED
        assert decision.payload["response"] == EDITED
        sealed = decision.to_row()["payload"]
        assert set(sealed["delivered"]) == {PERSONAL_KEY}
        assert set(sealed["diff"]) == {PERSONAL_KEY}
        replied = next(r for r in rows if r.event == "replied")
        assert set(replied.to_row()["payload"]["delivered_sha256"]) == {PERSONAL_KEY}
        assert isinstance(replied.payload["delivered_sha256"], str)
        hashed = json.dumps([r.to_row()["payload"] for r in rows])
        assert EDITED not in hashed
        assert "Alice" not in hashed
        assert (await setup.coord.verify_audit()).ok
        assert (await setup.coord.verify_audit("t1")).ok


class TestErase:
    async def test_erasure_leaves_every_verifier_green(self, setup: Setup, tmp_path: Path) -> None:
        """After erasure the store's, the offline and the JavaScript verifiers all say ok."""
        await setup.edited_turn("t1", "alice")
        await setup.edited_turn("t2", "bob")
        report = await setup.coord.erase_subject("alice")
        assert [t.thread_id for t in report.threads] == ["t1"]
        erased = report.threads[0]
        assert erased.values >= 4
        assert erased.reviews == 1
        assert erased.checkpoints
        assert erased.legacy_rows == ()
        assert report.not_erased == ()
        assert (await setup.coord.verify_audit()).ok
        assert (await setup.coord.verify_audit("t1")).ok
        assert (await setup.coord.verify_audit("t2")).ok
        one = tmp_path / "t1.jsonl"
        await setup.coord.export_audit(one, thread_id="t1")
        text = one.read_text(encoding="utf-8")
        assert "Alice" not in text
        assert EDITED not in text
        path = tmp_path / "audit.jsonl"
        await setup.coord.export_audit(path)
        for export in (one, path):
            done = offline_verify(export)
            assert done.returncode == 0, done.stdout + done.stderr
            checked = node_verify(export)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        # The other subject's data is untouched, and still checked against its commitments.
        bob = next(r for r in await setup.coord.audit_log("t2") if r.event == "approved")
        assert bob.payload["delivered"] == EDITED

    async def test_readers_show_erased_fields_and_the_review_is_redacted(
        self, setup: Setup
    ) -> None:
        """audit_log shows each erased value as erased; the review row's text is gone."""
        await setup.edited_turn("t1", "alice")
        await setup.coord.erase_subject("alice")
        rows = await setup.coord.audit_log("t1")
        decision = next(r for r in rows if r.event == "approved")
        assert decision.payload["delivered"][ERASED_KEY] is True
        assert PERSONAL_KEY in decision.payload["delivered"]
        assert decision.personal is not None
        assert set(decision.personal.values()) == {None}
        last = rows[-1]
        assert (last.event, last.actor) == (ERASED_EVENT, "system:erasure")
        assert "alice" not in json.dumps(last.to_row())
        review = await setup.store.get_review("t1")
        assert review is not None
        assert (review.customer_message, review.draft_response) == (ERASED_TEXT, ERASED_TEXT)
        assert review.decision is not None
        assert review.decision["response"] == ERASED_TEXT
        assert all(v.response in (None, ERASED_TEXT) for v in review.votes)
        assert await setup.personal.personal_values("t1") == []

    async def test_checkpoints_are_deleted(self, setup: Setup) -> None:
        """The erased thread's checkpoints go through the checkpointer's adelete_thread."""
        await setup.edited_turn("t1", "alice")
        assert await setup.has_checkpoints("t1")
        await setup.coord.erase_subject("alice")
        assert not await setup.has_checkpoints("t1")

    async def test_an_unknown_subject_erases_nothing(self, setup: Setup) -> None:
        """A subject with no threads gives an empty report and appends nothing."""
        await setup.edited_turn("t1", "alice")
        before = await snapshot(setup, "t1")
        report = await setup.coord.erase_subject("nobody")
        assert report.threads == ()
        assert await snapshot(setup, "t1") == before

    async def test_a_new_turn_after_erasure_verifies(self, setup: Setup) -> None:
        """The thread goes on after erasure: a new decided turn verifies with the old ones."""
        await setup.edited_turn("t1", "alice")
        await setup.coord.erase_subject("alice")
        await setup.edited_turn("t1b", "alice")
        await setup.coord.erase_subject("alice")
        assert (await setup.coord.verify_audit()).ok
        assert (await setup.coord.verify_audit("t1b")).ok

    async def test_legacy_rows_are_reported(self, setup: Setup) -> None:
        """A row written before sealing (plain text in the hash) is named as not erasable."""
        await setup.edited_turn("t1", "alice")
        legacy = await setup.store.append_audit(
            thread_id="t1",
            review_id=None,
            checkpoint_id=None,
            event="approved",
            actor="officer@bank",
            payload={"delivered": "Old text for Alice"},
            at=FakeClock().now,
        )
        report = await setup.coord.erase_subject("alice")
        assert report.threads[0].legacy_rows == (legacy.seq,)
        assert any(str(legacy.seq) in note for note in report.not_erased)
        assert (await setup.coord.verify_audit()).ok


class TestRefused:
    async def test_a_held_thread_is_refused_and_nothing_changes(self, setup: Setup) -> None:
        """A legal hold on one of the subject's threads refuses the erasure before any change."""
        await setup.edited_turn("t1", "alice")
        await setup.edited_turn("t2", "alice")
        await setup.coord.place_hold("t2", reason="FCA enquiry", by="legal@bank")
        before = (await snapshot(setup, "t1"), await snapshot(setup, "t2"))
        with pytest.raises(LegalHoldError) as caught:
            await setup.coord.erase_subject("alice")
        assert caught.value.thread_id == "t2"
        assert (await snapshot(setup, "t1"), await snapshot(setup, "t2")) == before

    async def test_the_store_refuses_a_held_thread_itself(self, setup: Setup) -> None:
        """erase_thread checks the hold inside its transaction (whoever calls it)."""
        await setup.edited_turn("t1", "alice")
        await setup.coord.place_hold("t1", reason="FCA enquiry", by="legal@bank")
        before = await snapshot(setup, "t1")
        with pytest.raises(LegalHoldError):
            await setup.personal.erase_thread("t1", now=FakeClock().now, actor="x")
        assert await snapshot(setup, "t1") == before

    async def test_an_open_review_is_refused_and_nothing_changes(self, setup: Setup) -> None:
        """A pending review of the subject refuses the erasure: decide or expire it first."""
        await setup.edited_turn("t1", "alice")
        await setup.coord.process("t2", QUESTION, requested_by="alice")
        before = (await snapshot(setup, "t1"), await snapshot(setup, "t2"))
        with pytest.raises(ThreadBusyError) as caught:
            await setup.coord.erase_subject("alice")
        assert caught.value.thread_id == "t2"
        assert (await snapshot(setup, "t1"), await snapshot(setup, "t2")) == before


class TestTamper:
    async def test_an_edited_side_value_is_detected(self, setup: Setup, tmp_path: Path) -> None:
        """A personal value changed in the side table no longer matches its commitment."""
        await setup.edited_turn("t1", "alice")
        values = await setup.personal.personal_values("t1")
        target = next(v for v in values if v.value == EDITED)
        await edit_side_value(setup.store, target.digest, "Something else")
        report = await setup.coord.verify_audit()
        assert not report.ok
        assert report.first_broken is not None
        assert "commitment" in report.first_broken.reason
        assert not (await setup.coord.verify_audit("t1")).ok
        path = tmp_path / "audit.jsonl"
        await setup.coord.export_audit(path)
        assert offline_verify(path).returncode == 1


class TestMigration:
    @pytest.mark.parametrize("backend", ["sqlite", "postgres"])
    async def test_a_previous_version_database_gains_the_side_table(
        self,
        backend: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> None:
        """Tables of the previous schema version are upgraded in place, rows kept; erasure works."""
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
                    event="approved",
                    actor="officer",
                    payload={"delivered": "legacy text"},
                    at=now,
                )
                old_rows = await old.reviews.audit_rows()
        for _ in range(2):  # the step is idempotent: a second open changes nothing
            async with open_backend(url, table_prefix=prefix) as new:
                store: Any = new.reviews
                assert (await store.audit_rows())[:1] == old_rows
        async with open_backend(url, table_prefix=prefix) as new:
            store = new.reviews
            assert await store.personal_values() == []
            erased = await store.erase_thread("t1", now=now, actor="system:erasure")
            assert erased.legacy_rows == (old_rows[0].seq,)
            rows = await store.audit_rows()
            assert [r.event for r in rows] == ["approved", ERASED_EVENT]
