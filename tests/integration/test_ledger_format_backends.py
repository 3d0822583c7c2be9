"""Ledger format 2 on real backends: values it cannot hash are refused, old rows keep format 1.

* A payload holding a value RFC 8785 cannot write exactly (an integer no double
  equals, NaN, Infinity, a lone surrogate) is refused with `LedgerValueError`
  by every store before anything is written, whichever write carries it; a
  decision's metadata or tool arguments are refused at the coordinator.
* Floats PostgreSQL's jsonb gives back as integers (`1e16`, `1e21`) still
  decide and seal.
* A database made before step 7 (SQLite) / step 9 (PostgreSQL) keeps its rows
  as format 1, hashes unchanged, and new rows continue the chain in format 2.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hitl_compliance import (
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    LedgerValueError,
    build_compliance_graph,
)
from hitl_compliance.backends import open_backend
from hitl_compliance.ledger import GENESIS, LANES_FORMAT, verify_rows
from hitl_compliance.models import AuditRecord, seal
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.testing.conformance import assert_chain, at, claim, make_review

UNSEALABLE: list[Any] = [2**53 + 1, 2**63 - 1, float("nan"), float("inf"), "lone \ud800"]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind: memory, a real SQLite file, the test Postgres schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest_asyncio.fixture
async def store(url: str) -> AsyncIterator[ReviewStore]:
    """The backend's review store (own table prefix), hooks on, one review open."""
    async with open_backend(url, table_prefix=f"l{uuid.uuid4().hex[:8]}_") as backend:
        backend.reviews.configure_hooks(frozenset({"on_paused", "on_decided", "on_escalated"}))
        await backend.reviews.open_review(make_review(), owner=None)
        yield backend.reviews


async def snapshot(store: ReviewStore) -> tuple[Any, ...]:
    """Everything a refused write must leave as it was."""
    return (
        await store.get_review("t1"),
        await store.audit_rows(),
        await store.audit_head(),
        await store.pending_hooks(),
    )


class TestStoresRefuseUnsealableValues:
    @pytest.mark.parametrize("value", UNSEALABLE, ids=repr)
    async def test_every_audit_write_refuses_and_changes_nothing(
        self, store: ReviewStore, value: Any
    ) -> None:
        """append_audit and complete raise LedgerValueError; store, ledger and outbox stay."""
        payload = {"ok": 1.5, "nested": [{"bad": value}]}
        before = await snapshot(store)
        with pytest.raises(LedgerValueError) as raised:
            await store.append_audit(
                thread_id="t1",
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="a",
                payload=payload,
                at=at(1),
            )
        assert (raised.value.event, raised.value.path) == ("note", "row.payload.nested[0].bad")
        assert raised.value.thread_id == "t1"
        assert await snapshot(store) == before

        claimed = await claim(store)
        assert claimed.claim_id == "k1"
        before = await snapshot(store)
        with pytest.raises(LedgerValueError):
            await store.complete(
                claimed.review_id,
                claim_id="k1",
                status="approved",
                now=at(2),
                actor="alice",
                payload=payload,
            )
        assert await snapshot(store) == before
        report = verify_rows([r.to_row() for r in await store.audit_rows()])
        assert report.ok

    async def test_escalation_refuses_and_changes_nothing(self, store: ReviewStore) -> None:
        """An escalation whose payload cannot be sealed leaves the review unescalated."""
        review = make_review("t9", review_id="r9").model_copy(update={"deadline": at(1)})
        await store.open_review(review, owner=None)
        before = (await store.get_review("t9"), await store.audit_rows())
        with pytest.raises(LedgerValueError):
            await store.escalate(
                "r9", now=at(2), new_deadline=at(3), actor="sla", payload={"n": 2**53 + 1}
            )
        assert (await store.get_review("t9"), await store.audit_rows()) == before

    async def test_exact_doubles_seal(self, store: ReviewStore) -> None:
        """Integers a double equals (10**16, 2**60) and awkward floats are sealed and verify."""
        payload = {"i": [10**16, 2**60, 2**53 - 1], "f": [100.0, 1e16, -0.0, 1e21, 0.1]}
        record = await store.append_audit(
            thread_id="t1",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="a",
            payload=payload,
            at=at(1),
        )
        assert record.ledger_format == (LANES_FORMAT if is_postgres(store) else 2)
        rows = await store.audit_rows()
        assert rows[-1] == record
        assert_chain(rows, await store.audit_head())


@pytest_asyncio.fixture
async def coord(url: str) -> AsyncIterator[HitlCoordinator]:
    """A coordinator on the backend with thread t1 paused for review."""
    async with open_backend(url, table_prefix=f"m{uuid.uuid4().hex[:8]}_") as backend:
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coordinator = HitlCoordinator(graph, reviews=backend.reviews)
        assert (await coordinator.process("t1", "Safe?")).status == "paused"
        yield coordinator


class TestCoordinatorRefusesUnsealableDecisions:
    @pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1], ids=repr)
    async def test_metadata_beyond_exact_doubles_is_refused_first(
        self, coord: HitlCoordinator, value: int
    ) -> None:
        """Decision metadata the ledger cannot hash is an InvalidDecisionError; nothing changes."""
        reviews = coord.reviews
        before = (await coord.pending(), await reviews.audit_rows(), await reviews.audit_head())
        with pytest.raises(InvalidDecisionError, match=r"2\*\*53-1"):
            await coord.approve("t1", reviewer="alice", metadata={"n": value})
        with pytest.raises(InvalidDecisionError, match=r"2\*\*53-1"):
            await coord.reject("t1", reviewer="alice", metadata={"n": [value]})
        after = (await coord.pending(), await reviews.audit_rows(), await reviews.audit_head())
        assert after == before

    async def test_floats_jsonb_returns_as_integers_still_decide(
        self, coord: HitlCoordinator
    ) -> None:
        """1e16 and 1e21 in metadata (integers after PostgreSQL's jsonb) decide and seal."""
        metadata = {"big": [1e16, 1e21, 1.7976931348623157e308], "f": [100.0, -0.0, 0.1]}
        assert (await coord.approve("t1", reviewer="alice", metadata=metadata)).status == (
            "completed"
        )
        rows = await coord.reviews.audit_rows()
        assert {r.ledger_format for r in rows} == {
            LANES_FORMAT if is_postgres(coord.reviews) else 2
        }
        assert (await coord.verify_audit()).ok


def legacy_rows(count: int) -> list[AuditRecord]:
    """Rows as a version before format 2 sealed them (format 1), with what JCS refuses."""
    rows: list[AuditRecord] = []
    prev = GENESIS
    for seq in range(1, count + 1):
        record = seal(
            seq=seq,
            thread_id="old",
            review_id=None,
            checkpoint_id="c0",
            event="note",
            actor="a",
            payload={"big": 2**60 + seq, "f": [100.0, 1e16], "\U0001d11e": 1, "\uffff": 2},
            at=at(seq),
            prev_hash=prev,
            global_prev_hash=prev,
            ledger_format=1,
        )
        rows.append(record)
        prev = record.hash
    return rows


def legacy_params(record: AuditRecord) -> tuple[Any, ...]:
    return (
        record.seq,
        record.thread_id,
        record.review_id,
        record.checkpoint_id,
        record.event,
        record.actor,
        json.dumps(record.payload, separators=(",", ":")),
        record.prev_hash,
        record.global_prev_hash,
        record.hash,
    )


async def assert_upgraded(store: ReviewStore, old: list[AuditRecord]) -> None:
    """Old rows read back as format 1, unchanged; a new row is format 2 and chains on."""
    rows = await store.audit_rows()
    assert rows == old
    assert [r.ledger_format for r in rows] == [1] * len(old)
    new = await store.append_audit(
        thread_id="old",
        review_id=None,
        checkpoint_id=None,
        event="note",
        actor="a",
        payload={"f": 1e16},
        at=at(9),
    )
    # PostgreSQL's lanes: format 3, linked to its lane's previous row (the old
    # rows are lane 0); one chain elsewhere: format 2, linked to the last row.
    lanes = new.ledger_format == LANES_FORMAT
    assert new.ledger_format == (LANES_FORMAT if is_postgres(store) else 2)
    assert (new.prev_hash, new.global_prev_hash) == (
        old[-1].hash,
        old[-1].hash if not lanes or new.lane == 0 else GENESIS,
    )
    rows = await store.audit_rows()
    assert rows == [*old, new]
    assert_chain(rows, await store.audit_head())


class TestUpgradeKeepsFormatOne:
    async def test_sqlite_file_before_step_seven(
        self, sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file made before step 7 gets `ledger_format` = 1 on its rows; they still verify."""
        import sqlite3

        import hitl_compliance.stores.sqlite as module

        with monkeypatch.context() as patch:
            # The steps before format 2's: the schema it upgrades.
            step = module._MIGRATIONS.index(module._schema_v7)
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:step])
            patch.setattr(module, "SCHEMA_VERSION", step)
            async with module.SqliteReviewStore(sqlite_path):
                pass
        old = legacy_rows(3)
        with sqlite3.connect(sqlite_path) as conn:
            conn.executemany(
                "INSERT INTO hitl_audit (seq, thread_id, review_id, checkpoint_id, event, actor, "
                "payload, at, prev_hash, global_prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *legacy_params(r)[:7],
                        r.at.isoformat(timespec="microseconds"),
                        *legacy_params(r)[7:],
                    )
                    for r in old
                ],
            )
            conn.execute("UPDATE hitl_audit_head SET seq = ?, hash = ?", (3, old[-1].hash))
        conn.close()
        async with module.SqliteReviewStore(sqlite_path) as store:
            await assert_upgraded(store, old)
        with sqlite3.connect(sqlite_path) as conn:
            assert conn.execute("SELECT version FROM hitl_schema_version").fetchall() == [
                (module.SCHEMA_VERSION,)
            ]
        conn.close()

    async def test_postgres_tables_before_step_nine(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tables made before step 9 get `ledger_format` = 1 on their rows; they still verify."""
        import psycopg

        import hitl_compliance.stores.postgres as module

        prefix = f"u{uuid.uuid4().hex[:8]}_"
        with monkeypatch.context() as patch:
            step = module._MIGRATIONS.index(module.schema_v9)
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:step])
            patch.setattr(module, "SCHEMA_VERSION", step)
            async with module.PostgresReviewStore.from_conn_string(
                postgres_dsn, table_prefix=prefix
            ):
                pass
        old = legacy_rows(3)
        connect = psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True)
        async with await connect as conn, conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO {prefix}audit (seq, thread_id, review_id, checkpoint_id, "
                "event, actor, payload, at, prev_hash, global_prev_hash, hash) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(*legacy_params(r)[:7], r.at, *legacy_params(r)[7:]) for r in old],
            )
            await cur.execute(
                f"UPDATE {prefix}audit_head SET seq = %s, hash = %s", (3, old[-1].hash)
            )  # the head of the version before step 9 (lane 0's from step 12 on)
        async with module.PostgresReviewStore.from_conn_string(
            postgres_dsn, table_prefix=prefix
        ) as store:
            await assert_upgraded(store, old)


def is_postgres(store: object) -> bool:
    """Whether `store` is PostgreSQL's (which has ledger lanes: format 3)."""
    return type(store).__module__.endswith("postgres")
