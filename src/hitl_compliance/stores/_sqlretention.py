"""Retention and legal hold in the SQL stores: holds, kept evidence and pruning, written once.

[`RetentionWrites`][hitl_compliance.stores._sqlretention.RetentionWrites] adds
the [`RetentionStore`][hitl_compliance.RetentionStore] capability to
[`SqlStore`][hitl_compliance.stores._sqlwrites.SqlStore] over its one
transaction primitive, so SQLite and PostgreSQL (whose other writes are
server-side functions) run the same statements. Every write takes the
thread's lock, checks the hold inside the transaction and appends its audit
row (`hold_placed`, `hold_released`, `pruned`) with the change; a `pruned`
row is appended *before* the rows it lists are deleted, so it links to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hitl_compliance.ledger import PRUNED_EVENT
from hitl_compliance.models import sha256_text
from hitl_compliance.retention import (
    Hold,
    RecordClass,
    dumps_state,
    hold_error,
    tombstone_payload,
)
from hitl_compliance.stores._sql import OPEN_SQL, Dialect, Row, dumps
from hitl_compliance.stores._sqlwrites import SqlStore, Tx, _Audit

__all__ = ["RetentionWrites", "retention_tables"]


def retention_tables(d: Dialect, p: str) -> list[str]:
    """The legal holds (one row per held thread) and the evidence kept before checkpoints go.

    `IF NOT EXISTS` throughout: the step is safe whichever steps ran before it.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}holds (
            thread_id {d.types.id} PRIMARY KEY,
            reason TEXT NOT NULL,
            placed_by TEXT NOT NULL,
            placed_at {d.types.time} NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {p}evidence (
            review_id {d.types.id} PRIMARY KEY,
            thread_id {d.types.id} NOT NULL,
            checkpoint_id {d.types.id} NOT NULL,
            state TEXT NOT NULL,
            kept_at {d.types.time} NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}evidence_thread ON {p}evidence (thread_id)",
    ]


@dataclass(frozen=True, slots=True)
class _Statements:
    hold: str
    holds: str
    insert_hold: str
    delete_hold: str
    busy: str
    candidates: dict[str, str]
    thread_rows: str
    delete_outbox: str
    delete_audit: str
    decided_reviews: str
    delete_evidence: str
    delete_rules: str
    delete_review: str
    insert_evidence: str
    evidence: str

    @classmethod
    def of(cls, d: Dialect, p: str) -> _Statements:
        reviews, audit, intents, evidence = (
            f"{p}reviews",
            f"{p}audit",
            f"{p}intents",
            f"{p}evidence",
        )

        def idle(t: str) -> str:
            # No open review and no unfinished turn: nothing about to write to the thread.
            return (
                f"NOT EXISTS (SELECT 1 FROM {reviews} AS o WHERE o.thread_id = {t}.thread_id "
                f"AND o.status IN {OPEN_SQL}) AND NOT EXISTS (SELECT 1 FROM {intents} AS i "
                f"WHERE i.thread_id = {t}.thread_id)"
            )

        decided = f"status NOT IN {OPEN_SQL} AND decided_at IS NOT NULL AND decided_at < ?"
        return cls(
            hold=d.sql(f"SELECT * FROM {p}holds WHERE thread_id = ?"),
            holds=f"SELECT * FROM {p}holds ORDER BY placed_at, thread_id",
            insert_hold=d.sql(
                f"INSERT INTO {p}holds (thread_id, reason, placed_by, placed_at) "
                "VALUES (?, ?, ?, ?)"
            ),
            delete_hold=d.sql(f"DELETE FROM {p}holds WHERE thread_id = ?"),
            busy=d.sql(
                f"SELECT 1 FROM {reviews} WHERE thread_id = ? AND status IN {OPEN_SQL} "
                f"UNION ALL SELECT 1 FROM {intents} WHERE thread_id = ?"
            ),
            candidates={
                "reviews": d.sql(
                    f"SELECT DISTINCT thread_id FROM {reviews} WHERE {decided} ORDER BY thread_id"
                ),
                "audit": d.sql(
                    f"SELECT a.thread_id FROM {audit} AS a WHERE a.event <> '{PRUNED_EVENT}' "
                    f"AND {idle('a')} GROUP BY a.thread_id HAVING MAX(a.at) < ? "
                    "ORDER BY a.thread_id"
                ),
                "checkpoints": d.sql(
                    f"SELECT r.thread_id FROM {reviews} AS r WHERE r.{decided} AND {idle('r')} "
                    f"AND NOT EXISTS (SELECT 1 FROM {reviews} AS n WHERE "
                    f"n.thread_id = r.thread_id AND n.{d.latest} > r.{d.latest}) "
                    f"AND NOT EXISTS (SELECT 1 FROM {evidence} AS e "
                    "WHERE e.review_id = r.review_id) ORDER BY r.thread_id"
                ),
            },
            thread_rows=d.sql(
                f"SELECT seq, hash, at FROM {audit} WHERE thread_id = ? "
                f"AND event <> '{PRUNED_EVENT}' ORDER BY seq"
            ),
            delete_outbox=d.sql(f"DELETE FROM {p}hook_outbox WHERE seq = ?"),
            delete_audit=d.sql(f"DELETE FROM {audit} WHERE seq = ?"),
            decided_reviews=d.sql(
                f"SELECT review_id FROM {reviews} WHERE thread_id = ? AND {decided} "
                f"ORDER BY {d.latest}"
            ),
            delete_evidence=d.sql(f"DELETE FROM {evidence} WHERE review_id = ?"),
            delete_rules=d.sql(f"DELETE FROM {p}review_rules WHERE review_id = ?"),
            delete_review=d.sql(f"DELETE FROM {reviews} WHERE review_id = ?"),
            insert_evidence=d.sql(
                f"INSERT INTO {evidence} (review_id, thread_id, checkpoint_id, state, kept_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (review_id) DO NOTHING"
            ),
            evidence=d.sql(f"SELECT state FROM {evidence} WHERE review_id = ?"),
        )


class RetentionWrites(SqlStore):
    """`SqlStore` plus the retention capability (see the module docstring)."""

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        self._retention = _Statements.of(self.dialect, self.table_prefix)

    def _hold(self, row: Row) -> Hold:
        return Hold(
            thread_id=str(row["thread_id"]),
            reason=str(row["reason"]),
            placed_by=str(row["placed_by"]),
            placed_at=self.dialect.read_time(row["placed_at"]),
        )

    async def _check_hold(self, tx: Tx, thread_id: str) -> None:
        row = await tx.one(self._retention.hold, (thread_id,))
        if row is not None:
            raise hold_error(self._hold(row), action="prune")

    # -- holds -------------------------------------------------------------------

    async def place_hold(self, thread_id: str, *, reason: str, by: str, now: datetime) -> Hold:
        """Hold the thread, with its `hold_placed` audit row (see the protocol)."""
        at = self.dialect.time(now)
        s = self._retention
        placed = _Audit(thread_id, None, None, "hold_placed", by, dumps({"reason": reason}), now)

        async def place(tx: Tx) -> Hold:
            row = await tx.one(s.hold, (thread_id,))
            if row is not None:
                return self._hold(row)
            await tx.run(s.insert_hold, (thread_id, reason, by, at))
            await self._append(tx, placed)
            return Hold(thread_id=thread_id, reason=reason, placed_by=by, placed_at=now)

        return await self._transaction(place, lock=thread_id)

    async def release_hold(self, thread_id: str, *, by: str, now: datetime) -> Hold | None:
        """Release the thread's hold, with its `hold_released` audit row (see the protocol)."""
        self.dialect.time(now)
        s = self._retention

        async def release(tx: Tx) -> Hold | None:
            row = await tx.one(s.hold, (thread_id,))
            if row is None:
                return None
            hold = self._hold(row)
            await tx.run(s.delete_hold, (thread_id,))
            payload = dumps({"reason": hold.reason, "placed_by": hold.placed_by})
            await self._append(tx, _Audit(thread_id, None, None, "hold_released", by, payload, now))
            return hold

        return await self._transaction(release, lock=thread_id)

    async def get_hold(self, thread_id: str) -> Hold | None:
        """The thread's hold, or None."""
        row = await self._fetch_one(self._retention.hold, (thread_id,))
        return None if row is None else self._hold(row)

    async def holds(self) -> list[Hold]:
        """Every hold in force, oldest first."""
        return [self._hold(r) for r in await self._fetch_all(self._retention.holds, ())]

    # -- pruning -----------------------------------------------------------------

    async def retention_candidates(
        self, record_class: RecordClass, *, before: datetime
    ) -> list[str]:
        """Threads with records of the class older than `before` (see the protocol)."""
        sql = self._retention.candidates[record_class]
        rows = await self._fetch_all(sql, (self.dialect.time(before),))
        return [str(r["thread_id"]) for r in rows]

    async def prune_thread(
        self,
        thread_id: str,
        record_class: Literal["reviews", "audit"],
        *,
        before: datetime,
        now: datetime,
        actor: str,
    ) -> int:
        """Delete the thread's records of the class past `before`, documented (see the protocol)."""
        d, s = self.dialect, self._retention
        cutoff = d.time(before)
        d.time(now)

        async def prune_audit(tx: Tx) -> int:
            await self._check_hold(tx, thread_id)
            if await tx.one(s.busy, (thread_id, thread_id)) is not None:
                return 0
            rows = await tx.all(s.thread_rows, (thread_id,))
            if not rows or max(d.read_time(r["at"]) for r in rows) >= before:
                return 0
            removed = [[int(r["seq"]), str(r["hash"])] for r in rows]
            payload = tombstone_payload("audit", removed=removed, count=len(removed))
            # The tombstone first: it links to the thread's last row before that row goes.
            await self._append(
                tx, _Audit(thread_id, None, None, PRUNED_EVENT, actor, dumps(payload), now)
            )
            seqs = [(seq,) for seq, _ in removed]
            await tx.run_many(s.delete_outbox, seqs)
            await tx.run_many(s.delete_audit, seqs)
            return len(removed)

        async def prune_reviews(tx: Tx) -> int:
            await self._check_hold(tx, thread_id)
            ids = [
                str(r["review_id"]) for r in await tx.all(s.decided_reviews, (thread_id, cutoff))
            ]
            if not ids:
                return 0
            payload = tombstone_payload("reviews", review_ids=ids, count=len(ids))
            await self._append(
                tx, _Audit(thread_id, None, None, PRUNED_EVENT, actor, dumps(payload), now)
            )
            keys: Sequence[tuple[str]] = [(i,) for i in ids]
            await tx.run_many(s.delete_evidence, keys)
            await tx.run_many(s.delete_rules, keys)
            await tx.run_many(s.delete_review, keys)
            return len(ids)

        body = prune_audit if record_class == "audit" else prune_reviews
        return await self._transaction(body, lock=thread_id)

    async def keep_evidence(
        self,
        thread_id: str,
        *,
        review_id: str,
        checkpoint_id: str,
        state: dict[str, Any],
        now: datetime,
        actor: str,
    ) -> None:
        """Keep a decision's state before its checkpoints go, documented (see the protocol)."""
        s = self._retention
        text = dumps_state(state)
        at = self.dialect.time(now)
        payload = dumps(tombstone_payload("checkpoints", state_sha256=sha256_text(text)))
        row = _Audit(thread_id, review_id, checkpoint_id, PRUNED_EVENT, actor, payload, now)

        async def keep(tx: Tx) -> None:
            await self._check_hold(tx, thread_id)
            if await tx.run(s.insert_evidence, (review_id, thread_id, checkpoint_id, text, at)):
                await self._append(tx, row)  # not when another retention run kept it first

        await self._transaction(keep, lock=thread_id)

    async def evidence(self, review_id: str) -> dict[str, Any] | None:
        """The state kept for the review, or None."""
        row = await self._fetch_one(self._retention.evidence, (review_id,))
        if row is None:
            return None
        kept: dict[str, Any] = json.loads(row["state"])
        return kept
