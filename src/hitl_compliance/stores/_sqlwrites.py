"""The multi-statement writes of the SQL stores, written once over one transaction primitive.

[`SqlStore`][hitl_compliance.stores._sqlwrites.SqlStore] adds to
[`SqlStoreBase`][hitl_compliance.stores._sqlstore.SqlStoreBase] every
[`ReviewStore`][hitl_compliance.ReviewStore] write that reads, checks and
writes: begin a turn; open, claim, vote on, release, complete and escalate a
review; append an audit row (sealed in Python, chained at `seq = head + 1`);
lease hook outbox rows. The checks are the state machine's
([`_machine`][hitl_compliance.stores._machine]), the statements the
dialect's, so a backend writes none of them.

What a backend supplies is
[`_transaction`][hitl_compliance.stores._sqlwrites.SqlStore._transaction]: run
`body(tx)` atomically, committing on return and rolling back on any exception,
with its own locking. Two kinds of lock are asked for: `lock=key`
(a thread id) serialises every transaction given the same key from start to
end (SQLite's `BEGIN IMMEDIATE` serialises every write anyway; PostgreSQL
takes an advisory lock); rows a body reads to change carry the dialect's
`for_update` suffix (empty in SQLite).

Why a body rather than `async with transaction() as tx`: SQLite runs a whole
call as one job on its worker thread, one trip per call, which a context
manager could only do with a trip per statement. A body is an `async def`
that awaits nothing but its [`Tx`][hitl_compliance.stores._sqlwrites.Tx], so an
async driver awaits it and a thread-bound driver runs it to the end on its
thread with [`run_sync`][hitl_compliance.stores._sqlwrites.run_sync].
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from hitl_compliance.ledger import GENESIS, LANES_FORMAT, lane_of
from hitl_compliance.models import AuditRecord, HookDelivery, ReviewRecord, Vote, seal
from hitl_compliance.stores import _machine as machine
from hitl_compliance.stores._machine import Refusal, refusal_error
from hitl_compliance.stores._seals import head_missing
from hitl_compliance.stores._sql import (
    OPEN_SQL,
    REVIEW_COLUMNS,
    Dialect,
    Row,
    Tables,
    audit_json,
    delivery_columns,
    delivery_from_row,
    dumps,
    indexed_rules,
    review_from_row,
    review_values,
)
from hitl_compliance.stores._sqlkinds import finding_kinds
from hitl_compliance.stores._sqlstore import SqlStoreBase
from hitl_compliance.stores.base import HOOK_FOR_EVENT, FinalStatus, paused_payload

__all__ = ["Body", "LaneStatements", "SqlStore", "Tx", "WriteStatements", "run_sync"]

logger = logging.getLogger("hitl_compliance")

_T = TypeVar("_T")


class Tx(Protocol):
    """The statements of one open transaction (`?` placeholders already in the dialect's)."""

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run a read; its first row, or None."""
        ...

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read; all its rows."""
        ...

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write; the number of rows it changed."""
        ...

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a write once per parameter row."""
        ...


Body = Callable[[Tx], Coroutine[Any, Any, _T]]
"""A transaction's work: reads and writes on its `Tx`, and nothing else awaited."""


def run_sync(body: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that awaits only a synchronous `Tx` to its end, here and now.

    A thread-bound driver (sqlite3 on the store's worker thread) runs a whole
    body this way, inside its transaction, in one trip to its thread.

    Raises:
        RuntimeError: the body suspended (it awaited something else than the
            `Tx`, which would need an event loop); it is closed, so the
            caller's transaction rolls back.
    """
    try:
        body.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    body.close()
    raise RuntimeError("A SQL transaction body awaited something other than its Tx.")


@dataclass(frozen=True, slots=True)
class WriteStatements:
    """The statements of the write transactions, in one dialect, built once per store."""

    open_review_id: str
    insert_turn: str
    review_at_checkpoint: str
    insert_review: str
    insert_review_kinds: str
    insert_rule: str
    latest_locked: str
    review_locked: str
    status_of: str
    set_claimed: str
    set_claimed_votes: str
    set_votes: str
    claimed_locked: str
    unclaim: str
    finish: str
    drop_rules: str
    escalate: str
    head_locked: str
    thread_hash: str
    insert_audit: str
    move_head: str
    insert_outbox: str
    lease: str
    leased: str

    @classmethod
    def of(cls, d: Dialect, t: Tables) -> WriteStatements:
        """The write statements on tables `t` in dialect `d`."""
        # A claim waits while another review of the thread is claimed (its decision
        # is resuming the graph): checked by the UPDATE itself, a statement that
        # starts after the thread's latest review was locked, so it sees that
        # claim committed (the state machine's `APPLYING`).
        claimed = (
            f"UPDATE {t.reviews} SET status = 'claimed', claim_id = ?, claimed_at = ?, "
            "reviewer = ?, decision = ?{votes} WHERE review_id = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {t.reviews} AS other WHERE other.thread_id = ? "
            "AND other.status = 'claimed')"
        )
        return cls(
            open_review_id=d.sql(
                f"SELECT review_id, checkpoint_id FROM {t.reviews} "
                f"WHERE thread_id = ? AND status IN {OPEN_SQL}"
            ),
            insert_turn=d.sql(
                f"INSERT INTO {t.intents} (thread_id, owner, started_at) VALUES (?, ?, ?) "
                "ON CONFLICT (thread_id) DO NOTHING"
            ),
            review_at_checkpoint=d.sql(
                f"SELECT * FROM {t.reviews} WHERE thread_id = ? AND checkpoint_id = ?"
            ),
            insert_review=d.sql(
                f"INSERT INTO {t.reviews} ({REVIEW_COLUMNS}) VALUES ({', '.join('?' * 18)})"
            ),
            # finding_kinds: SQLite's column behind pending(reviewer=) (`_sqlkinds`);
            # PostgreSQL indexes an expression of `violations` instead.
            insert_review_kinds=d.sql(
                f"INSERT INTO {t.reviews} ({REVIEW_COLUMNS}, finding_kinds) "
                f"VALUES ({', '.join('?' * 19)})"
            ),
            insert_rule=d.sql(
                f"INSERT INTO {t.review_rules} (review_id, rule, requested_at) VALUES (?, ?, ?)"
            ),
            latest_locked=d.sql(
                f"SELECT * FROM {t.reviews} WHERE thread_id = ? "
                f"ORDER BY {d.latest} DESC LIMIT 1{d.for_update}"
            ),
            review_locked=d.sql(
                f"SELECT * FROM {t.reviews} WHERE review_id = ? AND thread_id = ?{d.for_update}"
            ),
            status_of=d.sql(f"SELECT status FROM {t.reviews} WHERE review_id = ?"),
            set_claimed=d.sql(claimed.replace("{votes}", "")),
            set_claimed_votes=d.sql(claimed.replace("{votes}", ", votes = ?")),
            set_votes=d.sql(f"UPDATE {t.reviews} SET votes = ? WHERE review_id = ?"),
            claimed_locked=d.sql(
                f"SELECT reviewer, votes FROM {t.reviews} "
                f"WHERE review_id = ? AND status = 'claimed' AND claim_id = ?{d.for_update}"
            ),
            unclaim=d.sql(
                f"UPDATE {t.reviews} SET status = 'pending', claim_id = NULL, "
                "claimed_at = NULL, reviewer = NULL, decision = NULL, votes = ? "
                "WHERE review_id = ?"
            ),
            finish=d.sql(
                f"UPDATE {t.reviews} SET status = ?, decided_at = ? "
                "WHERE review_id = ? AND status = 'claimed' AND claim_id = ?"
            ),
            drop_rules=d.sql(f"DELETE FROM {t.review_rules} WHERE review_id = ?"),
            escalate=d.sql(
                f"UPDATE {t.reviews} SET priority = priority + 1, deadline = ? "
                "WHERE review_id = ? AND status = 'pending' AND deadline IS NOT NULL "
                "AND deadline <= ?"
            ),
            head_locked=f"SELECT seq, hash FROM {t.audit_head} WHERE id = 1{d.for_update}",
            thread_hash=d.sql(
                f"SELECT hash FROM {t.audit} WHERE thread_id = ? ORDER BY seq DESC LIMIT 1"
            ),
            insert_audit=d.sql(
                f"INSERT INTO {t.audit} (seq, thread_id, review_id, checkpoint_id, event, "
                "actor, payload, at, prev_hash, global_prev_hash, hash, ledger_format) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            move_head=d.sql(f"UPDATE {t.audit_head} SET seq = ?, hash = ? WHERE id = 1"),
            insert_outbox=d.sql(
                f"INSERT INTO {t.outbox} (delivery_id, seq, thread_id, hook, status, "
                "attempts, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?)"
            ),
            lease=d.sql(
                f"UPDATE {t.outbox} SET lease_owner = ?, lease_until = ? WHERE delivery_id = ?"
            ),
            leased=d.sql(
                f"{delivery_columns('o')} FROM {t.outbox} AS o "
                f"JOIN {t.audit} AS a ON a.seq = o.seq WHERE o.delivery_id = ?"
            ),
        )


@dataclass(frozen=True, slots=True)
class _Audit:
    """An audit row to append, its payload already the JSON text stored."""

    thread_id: str
    review_id: str | None
    checkpoint_id: str | None
    event: str
    actor: str
    payload: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LaneStatements:
    """The append's statements in a store with ledger lanes (PostgreSQL's shared writes)."""

    table: str
    head_locked: str
    next_seq: str
    insert_audit: str
    move_head: str

    @classmethod
    def of(cls, d: Dialect, p: str) -> LaneStatements:
        return cls(
            table=f"{p}audit_lanes",
            head_locked=d.sql(f"SELECT seq, hash FROM {p}audit_lanes WHERE lane = ?{d.for_update}"),
            next_seq=f"SELECT nextval('{p}audit_seq') AS seq",
            insert_audit=d.sql(
                f"INSERT INTO {p}audit (seq, thread_id, review_id, checkpoint_id, event, "
                "actor, payload, at, prev_hash, global_prev_hash, hash, ledger_format, lane) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            move_head=d.sql(f"UPDATE {p}audit_lanes SET seq = ?, hash = ? WHERE lane = ?"),
        )


class SqlStore(SqlStoreBase):
    """A SQL review store less its driver: every Protocol method, over `_transaction`.

    A backend subclass supplies the `Dialect`, the one-statement primitives of
    [`SqlStoreBase`][hitl_compliance.stores._sqlstore.SqlStoreBase],
    `_transaction`, `setup` and `aclose`. Each write serialises and checks its
    arguments before its transaction starts (a bad value changes nothing),
    then runs one body.
    """

    _lane_sql: LaneStatements | None = None
    """The append's statements with ledger lanes; None: one chain (`audit_head`)."""
    kinds_column: bool = False
    """Whether the review table keeps `finding_kinds` as a column written with the row
    (SQLite); PostgreSQL computes it in an index expression."""
    _lane_count: int = 1

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        self._writes = WriteStatements.of(self.dialect, self._tables)

    async def _transaction(self, body: Body[_T], *, lock: str | None = None) -> _T:
        """Run `body(tx)` in one transaction: all of it commits, or none of it (the backend's).

        Args:
            body: the transaction's reads and writes.
            lock: a key (a thread id); transactions given the same key never overlap.
        """
        raise NotImplementedError

    # -- turns -------------------------------------------------------------------

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Start a turn (see the protocol): open-review check and intent insert, atomically.

        Under the thread's lock, so two processes never both start a turn.
        """
        started_at = self.dialect.time(now)
        w = self._writes

        async def begin(tx: Tx) -> None:
            open_review = await tx.one(w.open_review_id, (thread_id,)) is not None
            inserted = (
                0 if open_review else await tx.run(w.insert_turn, (thread_id, owner, started_at))
            )
            refusal = machine.turn_refusal(review_open=open_review, turn_held=inserted == 0)
            if refusal is not None:
                raise refusal_error(refusal, thread_id=thread_id)

        await self._transaction(begin, lock=thread_id)

    # -- reviews -----------------------------------------------------------------

    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        """Open a review (see the protocol) in one transaction under the thread's lock.

        The idempotency lookup, the open-review check, the review, rule and
        audit rows and the end of the turn commit together or not at all.
        """
        d, w = self.dialect, self._writes
        values = review_values(d, review)
        rules = [(review.review_id, rule, values[7]) for rule in indexed_rules(review)]
        payload, personal = self._paused_payload(review)
        paused = _Audit(
            thread_id=review.thread_id,
            review_id=review.review_id,
            checkpoint_id=review.checkpoint_id,
            event="paused",
            actor=review.requested_by or "system",
            payload=audit_json(payload, event="paused", thread_id=review.thread_id),
            at=review.requested_at,
        )

        async def insert(tx: Tx) -> ReviewRecord:
            existing = await tx.one(
                w.review_at_checkpoint, (review.thread_id, review.checkpoint_id)
            )
            if existing is not None:
                return review_from_row(d, existing)
            for open_row in await tx.all(w.open_review_id, (review.thread_id,)):
                # Items of one pause wait together; a review of another pause waits its turn.
                if not machine.same_pause(str(open_row["checkpoint_id"]), review.checkpoint_id):
                    raise refusal_error(
                        Refusal.REVIEW_OPEN,
                        thread_id=review.thread_id,
                        review_id=str(open_row["review_id"]),
                    )
            if self.kinds_column:
                await tx.run(w.insert_review_kinds, [*values, finding_kinds(review.violations)])
            else:
                await tx.run(w.insert_review, values)
            if rules:
                await tx.run_many(w.insert_rule, rules)
            await self._append(tx, paused)
            await self._keep_personal(tx, personal)
            if owner is not None:
                await tx.run(self._sql.end_turn, (review.thread_id, owner))
            return review

        result = await self._transaction(insert, lock=review.thread_id)
        await self._after_write()
        return result

    def _paused_payload(self, review: ReviewRecord) -> tuple[dict[str, Any], list[Any]]:
        """A review's `paused` payload, and the personal values it commits to (none here).

        A store keeping personal values beside the chain salts the draft's hash
        (`stores._sqlerasure`).
        """
        return paused_payload(review), []

    async def _keep_personal(self, tx: Tx, values: Sequence[Any]) -> None:
        """Keep personal values in the open transaction (nothing here; see `_paused_payload`)."""

    async def _pending_row(self, tx: Tx, thread_id: str, review_id: str | None) -> Row:
        """The review to decide, locked, which must be pending: the thread's latest, or `review_id`.

        The thread's latest review is locked first, whichever is decided, so the
        decisions of one thread queue on one row (and never lock in two orders).

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the review is not pending, or `review_id` is not open.
        """
        row = await tx.one(self._writes.latest_locked, (thread_id,))
        asked = None
        if row is not None and review_id is not None and row["review_id"] != review_id:
            asked = await tx.one(self._writes.review_locked, (review_id, thread_id))
        refusal = machine.decide_refusal(
            latest_id=None if row is None else row["review_id"],
            latest_status=None if row is None else row["status"],
            review_id=review_id,
            review_status=None if asked is None else asked["status"],
        )
        if refusal is Refusal.NOT_OPEN_REVIEW:
            other = await tx.one(self._writes.status_of, (review_id,))
            raise refusal_error(
                refusal,
                thread_id=thread_id,
                review_id=review_id,
                status=None if other is None else other["status"],
            )
        if refusal is not None:
            raise refusal_error(
                refusal, thread_id=thread_id, status=None if row is None else row["status"]
            )
        assert row is not None  # no refusal: the thread has a review
        return row if asked is None else asked

    async def _by_id(self, tx: Tx, review_id: str) -> ReviewRecord:
        row = await tx.one(self._sql.review_by_id, (review_id,))
        assert row is not None  # read inside the transaction that found it
        return review_from_row(self.dialect, row)

    async def claim(
        self,
        thread_id: str,
        *,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
        review_id: str | None = None,
    ) -> ReviewRecord:
        """Claim the pending review (see the protocol) in one transaction.

        The latest review is read locked and checked by the state machine's
        `decide_refusal`, so one claim wins across processes.
        """
        claimed_at = self.dialect.time(now)
        decision_json = dumps(decision)

        async def claim(tx: Tx) -> ReviewRecord:
            row = await self._pending_row(tx, thread_id, review_id)
            params = (claim_id, claimed_at, reviewer, decision_json, row["review_id"], thread_id)
            if await tx.run(self._writes.set_claimed, params) == 0:
                raise refusal_error(Refusal.APPLYING, thread_id=thread_id)
            return await self._by_id(tx, row["review_id"])

        return await self._transaction(claim)

    async def vote(
        self,
        thread_id: str,
        *,
        review_id: str,
        vote: Vote,
        quorum: int,
        claim_id: str,
        decision: dict[str, Any],
        now: datetime,
    ) -> ReviewRecord:
        """Record a vote (see the protocol) in one transaction.

        The duplicate and quorum checks are the state machine's, applied to the
        votes of the review read locked.
        """
        d, w = self.dialect, self._writes
        at = d.time(now)
        vote_data = vote.model_dump(mode="json")
        vote_json = audit_json(vote_data, event="voted", thread_id=thread_id)
        voted = _Audit(thread_id, review_id, None, "voted", vote.reviewer, vote_json, now)
        decision_json = dumps(decision)

        async def cast(tx: Tx) -> ReviewRecord:
            row = await self._pending_row(tx, thread_id, review_id)
            votes: list[dict[str, Any]] = list(d.read_json(row["votes"]))
            keys = (Vote.model_validate(v).reviewer_key for v in votes)
            if machine.is_duplicate_vote(keys, vote.reviewer_key):
                raise refusal_error(
                    Refusal.DUPLICATE_VOTE,
                    thread_id=thread_id,
                    status=row["status"],
                    reviewer=vote.reviewer,
                )
            votes.append(vote_data)
            votes_json = dumps(votes)
            if machine.quorum_met((v["text_sha256"] for v in votes), vote.text_sha256, quorum):
                params = (claim_id, at, vote.reviewer, decision_json, votes_json, review_id)
                if await tx.run(w.set_claimed_votes, (*params, thread_id)) == 0:
                    raise refusal_error(Refusal.APPLYING, thread_id=thread_id)
            else:
                await tx.run(w.set_votes, (votes_json, review_id))
                await self._append(tx, replace(voted, checkpoint_id=row["checkpoint_id"]))
            return await self._by_id(tx, review_id)

        result = await self._transaction(cast)
        await self._after_write()
        return result

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim (see the protocol): the claim, locked, back to pending.

        The claimer's vote goes with it (the state machine's `kept_on_release`).
        """
        d, w = self.dialect, self._writes

        async def release(tx: Tx) -> None:
            row = await tx.one(w.claimed_locked, (review_id, claim_id))
            if row is None:
                return
            votes = machine.kept_on_release(
                list(d.read_json(row["votes"])), row["reviewer"], lambda v: str(v["reviewer"])
            )
            await tx.run(w.unclaim, (dumps(votes), review_id))

        await self._transaction(release)

    async def complete(
        self,
        review_id: str,
        *,
        claim_id: str,
        status: FinalStatus,
        now: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord:
        """Complete a claimed review (see the protocol).

        The conditional update, the rule rows' delete and the audit row in one
        transaction.
        """
        d, w = self.dialect, self._writes
        decided_at = d.time(now)
        payload_json = audit_json(payload, event=status, thread_id=None)

        async def complete(tx: Tx) -> ReviewRecord:
            changed = await tx.run(w.finish, (status, decided_at, review_id, claim_id))
            row = await tx.one(self._sql.review_by_id, (review_id,))
            if changed == 0 or row is None:
                if row is not None and machine.completed_by(
                    row["status"], row["claim_id"], claim_id, status
                ):
                    return review_from_row(d, row)  # this claim completed it already
                raise refusal_error(
                    Refusal.CLAIM_LOST,
                    review_id=review_id,
                    thread_id=None if row is None else row["thread_id"],
                    status=None if row is None else row["status"],
                )
            # Final: list_pending(rule=...) never needs the rule rows again.
            await tx.run(w.drop_rules, (review_id,))
            thread_id, checkpoint_id = row["thread_id"], row["checkpoint_id"]
            record = _Audit(thread_id, review_id, checkpoint_id, status, actor, payload_json, now)
            await self._append(tx, record)
            return review_from_row(d, row)

        result = await self._transaction(complete)
        await self._after_write()
        return result

    # -- audit -------------------------------------------------------------------

    async def append_audit(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: dict[str, Any],
        at: datetime,
    ) -> AuditRecord:
        """Append an audit row (see the protocol), sealed in Python at `seq = head + 1`."""
        self.dialect.time(at)
        payload_json = audit_json(payload, event=event, thread_id=thread_id)
        row = _Audit(thread_id, review_id, checkpoint_id, event, actor, payload_json, at)

        async def append(tx: Tx) -> AuditRecord:
            return await self._append(tx, row)

        result = await self._transaction(append)
        await self._after_write()
        return result

    async def _append(self, tx: Tx, row: _Audit) -> AuditRecord:
        """Seal and append one audit row, move the chain head, queue its hook call.

        The head row is read locked first, so appends queue on it store-wide
        and the thread's last row (read after) cannot move before the insert.
        The row is sealed over its parsed payload, which is exactly what
        reading it back gives.
        """
        d, w = self.dialect, self._writes
        lanes = self._lane_sql
        lane = 0 if lanes is None else lane_of(row.thread_id, self._lane_count)
        if lanes is None:
            head = await tx.one(w.head_locked)
            if head is None:
                raise head_missing(self._audit_head)
            seq = int(head["seq"]) + 1
        else:
            # Only the thread's lane head is locked; seq comes from the store's sequence.
            head = await tx.one(lanes.head_locked, (lane,))
            if head is None:
                raise head_missing(lanes.table)
            seq = int((await tx.one(lanes.next_seq) or {"seq": 0})["seq"])
        prev = await tx.one(w.thread_hash, (row.thread_id,))
        record = seal(
            seq=seq,
            thread_id=row.thread_id,
            review_id=row.review_id,
            checkpoint_id=row.checkpoint_id,
            event=row.event,
            actor=row.actor,
            payload=json.loads(row.payload),
            at=row.at,
            prev_hash=GENESIS if prev is None else str(prev["hash"]),
            global_prev_hash=str(head["hash"]),
            **({} if lanes is None else {"ledger_format": LANES_FORMAT, "lane": lane}),
        )
        at = d.time(row.at)
        await tx.run(
            w.insert_audit if lanes is None else lanes.insert_audit,
            (
                record.seq,
                row.thread_id,
                row.review_id,
                row.checkpoint_id,
                row.event,
                row.actor,
                row.payload,
                at,
                record.prev_hash,
                record.global_prev_hash,
                record.hash,
                record.ledger_format,
                *(() if lanes is None else (lane,)),
            ),
        )
        if lanes is None:
            await tx.run(w.move_head, (record.seq, record.hash))
        else:
            await tx.run(lanes.move_head, (record.seq, record.hash, lane))
        hook = HOOK_FOR_EVENT.get(row.event)
        if hook is not None and hook in self._hooks:
            params = (uuid.uuid4().hex, record.seq, row.thread_id, hook, at)
            await tx.run(w.insert_outbox, params)
        return record

    # -- SLA ---------------------------------------------------------------------

    async def escalate(
        self,
        review_id: str,
        *,
        now: datetime,
        new_deadline: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord | None:
        """Escalate an overdue review (see the protocol) in one transaction.

        One conditional UPDATE (still pending, `deadline <= now`) and the
        `escalated` audit row commit together: of several concurrent sweepers
        exactly one escalates (the update locks the row); the others get None.
        """
        d = self.dialect
        params = (d.time(new_deadline), review_id, d.time(now))
        payload_json = audit_json(payload, event="escalated", thread_id=None)

        async def escalate(tx: Tx) -> ReviewRecord | None:
            if await tx.run(self._writes.escalate, params) == 0:
                return None
            escalated = await self._by_id(tx, review_id)
            await self._append(
                tx,
                _Audit(
                    escalated.thread_id,
                    review_id,
                    escalated.checkpoint_id,
                    "escalated",
                    actor,
                    payload_json,
                    now,
                ),
            )
            return escalated

        result = await self._transaction(escalate)
        await self._after_write()
        return result

    # -- hook outbox -------------------------------------------------------------

    async def _lease(
        self, pick: str, params: list[Any], *, owner: str, until: Any
    ) -> list[HookDelivery]:
        """Lease the picked outbox rows in one transaction.

        The pick locks what it reads (the dialect's `skip_locked`: rows another
        claimer holds are skipped, and rows it leased no longer match), so two
        processes never lease one row.
        """
        d, w = self.dialect, self._writes

        async def lease(tx: Tx) -> list[HookDelivery]:
            ids = [str(r["delivery_id"]) for r in await tx.all(pick + d.skip_locked, params)]
            await tx.run_many(w.lease, [(owner, until, i) for i in ids])
            rows = [await tx.one(w.leased, (i,)) for i in ids]
            return [delivery_from_row(d, r) for r in rows if r is not None]

        return await self._transaction(lease)
