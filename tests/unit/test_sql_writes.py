"""The shared multi-statement writes (`stores._sqlwrites`): the body driver and the bodies.

The bodies run here on a scripted `Tx` that answers reads from canned rows
and records every statement, so each test shows which statements a write
runs, under which lock, and which refusal stops it; the conformance suite
runs the same bodies on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from hitl_compliance.errors import DuplicateVoteError, ReviewNotFoundError, ThreadBusyError
from hitl_compliance.ledger import GENESIS
from hitl_compliance.models import Vote, seal, sha256_text
from hitl_compliance.stores._sql import Row
from hitl_compliance.stores._sqlwrites import Body, SqlStore, WriteStatements, run_sync
from tests.unit.test_sql_layer import NATIVE, T0, TEXT, as_row, review

_T = TypeVar("_T")

LOCKING = dataclasses.replace(
    NATIVE, for_update=" FOR UPDATE", skip_locked=" FOR UPDATE SKIP LOCKED"
)


class ScriptedTx:
    """A `Tx` answering each read from `rows` (by statement) and recording every statement."""

    def __init__(self, rows: dict[str, list[Row]], changed: dict[str, int]) -> None:
        self.rows = rows
        self.changed = changed
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.statements.append((sql, tuple(params)))
        found = self.rows.get(sql, [])
        return found[0] if found else None

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.statements.append((sql, tuple(params)))
        return self.rows.get(sql, [])

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.statements.append((sql, tuple(params)))
        return self.changed.get(sql, 1)

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements.extend((sql, tuple(r)) for r in rows)


class ScriptedStore(SqlStore):
    """A backend whose transaction primitive runs the body on a `ScriptedTx`, synchronously."""

    dialect = TEXT

    def __init__(self) -> None:
        super().__init__(table_prefix="h_")
        self.rows: dict[str, list[Row]] = {}
        self.changed: dict[str, int] = {}
        self.locks: list[str | None] = []
        self.tx = ScriptedTx(self.rows, self.changed)

    async def _transaction(self, body: Body[_T], *, lock: str | None = None) -> _T:
        self.locks.append(lock)
        return run_sync(body(self.tx))

    def ran(self) -> list[str]:
        """The statements run so far, by their `WriteStatements` field name."""
        names = {sql: name for name, sql in dataclasses.asdict(self._sql).items()}
        names.update({sql: name for name, sql in dataclasses.asdict(self._writes).items()})
        return [names.get(sql, sql) for sql, _ in self.tx.statements]


def head(seq: int = 0, hash_: str = GENESIS) -> Row:
    return {"seq": seq, "hash": hash_}


class TestRunSync:
    def test_returns_what_a_body_that_never_suspends_returns(self) -> None:
        async def body() -> int:
            return 7

        assert run_sync(body()) == 7

    def test_a_body_error_propagates(self) -> None:
        async def body() -> int:
            raise KeyError("x")

        with pytest.raises(KeyError):
            run_sync(body())

    def test_a_body_that_suspends_is_closed_and_refused(self) -> None:
        cleaned: list[bool] = []

        async def body() -> None:
            try:
                await asyncio.sleep(0)
            finally:
                cleaned.append(True)

        with pytest.raises(RuntimeError, match="other than its Tx"):
            run_sync(body())
        assert cleaned == [True]


class TestWriteStatements:
    def test_row_locks_come_from_the_dialect(self) -> None:
        locking = WriteStatements.of(LOCKING, ScriptedStore()._tables)
        plain = WriteStatements.of(TEXT, ScriptedStore()._tables)
        assert locking.latest_locked.endswith("LIMIT 1 FOR UPDATE")
        assert locking.head_locked.endswith("FOR UPDATE")
        assert locking.claimed_locked.endswith("FOR UPDATE")
        assert "FOR UPDATE" not in " ".join(dataclasses.asdict(plain).values())

    def test_placeholders_are_the_dialects(self) -> None:
        statements = dataclasses.asdict(WriteStatements.of(LOCKING, ScriptedStore()._tables))
        assert not [name for name, sql in statements.items() if "?" in sql]
        assert "%s" in statements["insert_review"]


class TestTurnsAndReviews:
    async def test_begin_turn_takes_the_threads_lock_and_inserts_the_intent(self) -> None:
        store = ScriptedStore()
        await store.begin_turn("t1", owner="o", now=T0)
        assert store.locks == ["t1"]
        assert store.ran() == ["open_review_id", "insert_turn"]

    async def test_begin_turn_on_a_paused_thread_writes_nothing(self) -> None:
        store = ScriptedStore()
        store.rows[store._writes.open_review_id] = [{"review_id": "r0"}]
        with pytest.raises(ThreadBusyError, match="paused for review"):
            await store.begin_turn("t1", owner="o", now=T0)
        assert store.ran() == ["open_review_id"]

    async def test_begin_turn_with_a_turn_held_is_refused(self) -> None:
        store = ScriptedStore()
        store.changed[store._writes.insert_turn] = 0
        with pytest.raises(ThreadBusyError, match="turn in progress"):
            await store.begin_turn("t1", owner="o", now=T0)

    async def test_a_naive_time_is_refused_before_any_transaction(self) -> None:
        store = ScriptedStore()
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.begin_turn("t1", owner="o", now=T0.replace(tzinfo=None))
        assert store.locks == []

    async def test_open_review_writes_review_rules_audit_and_ends_the_turn(self) -> None:
        store = ScriptedStore()
        store.rows[store._writes.head_locked] = [head()]
        opened = review(votes=[])
        assert await store.open_review(opened, owner="o") == opened
        assert store.locks == [opened.thread_id]
        assert store.ran() == [
            "review_at_checkpoint",
            "open_review_id",
            "insert_review",
            "insert_rule",
            "head_locked",
            "thread_hash",
            "insert_audit",
            "move_head",
            "end_turn",
        ]

    async def test_open_review_returns_the_checkpoints_review_and_writes_nothing(self) -> None:
        store = ScriptedStore()
        existing = review(status="approved")
        store.rows[store._writes.review_at_checkpoint] = [as_row(TEXT, existing)]
        assert await store.open_review(review(), owner="o") == existing
        assert store.ran() == ["review_at_checkpoint"]


class TestDecisions:
    async def test_claim_of_a_thread_without_review_is_refused(self) -> None:
        store = ScriptedStore()
        with pytest.raises(ReviewNotFoundError):
            await store.claim("t1", claim_id="k", reviewer="a", decision={}, now=T0)
        assert store.ran() == ["latest_locked"]

    async def test_claim_locks_checks_and_claims_the_latest_review(self) -> None:
        store = ScriptedStore()
        store.rows[store._writes.latest_locked] = [as_row(TEXT, review())]
        store.rows[store._sql.review_by_id] = [as_row(TEXT, review(status="claimed"))]
        claimed = await store.claim("t1", claim_id="k", reviewer="a", decision={}, now=T0)
        assert claimed.status == "claimed"
        assert store.locks == [None]
        assert store.ran() == ["latest_locked", "set_claimed", "review_by_id"]

    async def test_a_second_vote_by_the_same_person_is_refused_and_writes_nothing(self) -> None:
        store = ScriptedStore()
        pending = review()
        store.rows[store._writes.latest_locked] = [as_row(TEXT, pending)]
        again = Vote(reviewer=pending.votes[0].reviewer, text_sha256=sha256_text("x"), at=T0)
        with pytest.raises(DuplicateVoteError):
            await store.vote(
                "t1", review_id="r1", vote=again, quorum=2, claim_id="k", decision={}, now=T0
            )
        assert store.ran() == ["latest_locked"]

    async def test_a_vote_below_quorum_is_appended_and_audited(self) -> None:
        store = ScriptedStore()
        pending = review(votes=[])
        store.rows[store._writes.latest_locked] = [as_row(TEXT, pending)]
        store.rows[store._sql.review_by_id] = [as_row(TEXT, pending)]
        store.rows[store._writes.head_locked] = [head()]
        ballot = Vote(reviewer="b", text_sha256=sha256_text("x"), at=T0)
        await store.vote(
            "t1", review_id="r1", vote=ballot, quorum=2, claim_id="k", decision={}, now=T0
        )
        assert store.ran() == [
            "latest_locked",
            "set_votes",
            "head_locked",
            "thread_hash",
            "insert_audit",
            "move_head",
            "review_by_id",
        ]

    async def test_complete_of_a_lost_claim_writes_no_audit_row(self) -> None:
        store = ScriptedStore()
        store.changed[store._writes.finish] = 0
        store.rows[store._sql.review_by_id] = [as_row(TEXT, review(status="claimed"))]
        with pytest.raises(Exception, match="no longer held"):
            await store.complete(
                "r1", claim_id="k", status="approved", now=T0, actor="a", payload={}
            )
        assert store.ran() == ["finish", "review_by_id"]

    async def test_release_drops_only_the_claimers_vote(self) -> None:
        store = ScriptedStore()
        votes = [{"reviewer": "alice", "n": 1}, {"reviewer": "bob", "n": 2}]
        store.rows[store._writes.claimed_locked] = [{"reviewer": "bob", "votes": json.dumps(votes)}]
        await store.release("r1", claim_id="k")
        assert store.ran() == ["claimed_locked", "unclaim"]
        assert json.loads(store.tx.statements[-1][1][0]) == [votes[0]]

    async def test_release_of_a_claim_not_held_writes_nothing(self) -> None:
        store = ScriptedStore()
        await store.release("r1", claim_id="k")
        assert store.ran() == ["claimed_locked"]

    async def test_escalate_that_finds_nothing_overdue_returns_none_unaudited(self) -> None:
        store = ScriptedStore()
        store.changed[store._writes.escalate] = 0
        later = T0 + timedelta(hours=1)
        assert (
            await store.escalate("r1", now=T0, new_deadline=later, actor="sla", payload={}) is None
        )
        assert store.ran() == ["escalate"]


class TestAudit:
    async def test_append_seals_after_the_head_and_the_threads_last_row(self) -> None:
        store = ScriptedStore()
        store.configure_hooks(frozenset({"on_decided"}))
        store.rows[store._writes.head_locked] = [head(4, "g" * 64)]
        store.rows[store._writes.thread_hash] = [{"hash": "p" * 64}]
        record = await store.append_audit(
            thread_id="t1",
            review_id="r1",
            checkpoint_id="c1",
            event="approved",
            actor="a",
            payload={"n": 1},
            at=T0,
        )
        expected = seal(
            seq=5,
            thread_id="t1",
            review_id="r1",
            checkpoint_id="c1",
            event="approved",
            actor="a",
            payload={"n": 1},
            at=T0,
            prev_hash="p" * 64,
            global_prev_hash="g" * 64,
        )
        assert record == expected
        assert store.ran()[-3:] == ["insert_audit", "move_head", "insert_outbox"]
        outbox = store.tx.statements[-1][1]
        assert outbox[1:4] == (5, "t1", "on_decided")


class TestLease:
    async def test_the_pick_carries_the_dialects_skip_locked(self) -> None:
        class Locking(ScriptedStore):
            dialect = LOCKING

        store = Locking()
        await store.claim_hooks(owner="w", now=T0, lease_until=T0 + timedelta(seconds=30))
        pick = store.tx.statements[0][0]
        assert pick.endswith("LIMIT %s FOR UPDATE SKIP LOCKED")
