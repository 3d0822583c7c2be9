"""Personal values beside the chain, and their erasure, in the SQL stores: written once.

[`ErasureWrites`][hitl_compliance.stores._sqlerasure.ErasureWrites] adds the
[`PersonalStore`][hitl_compliance.PersonalStore] capability to the retention
layer over its one transaction primitive, so SQLite and PostgreSQL run the
same statements. `erase_thread` takes the thread's lock, checks the hold and
open reviews inside the transaction, and appends its `erased` row with the change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_compliance import _personal
from hitl_compliance.erasure import ERASED_TEXT, PersonalValue, ThreadErasure
from hitl_compliance.ledger import ERASED_EVENT
from hitl_compliance.models import AuditRecord, ReviewRecord
from hitl_compliance.retention import hold_error
from hitl_compliance.stores._sql import (
    OPEN_SQL,
    Dialect,
    Row,
    audit_from_row,
    dumps,
    review_from_row,
)
from hitl_compliance.stores._sqlretention import RetentionWrites
from hitl_compliance.stores._sqlwrites import Tx, _Audit

__all__ = ["ErasureWrites", "personal_tables"]


def personal_tables(d: Dialect, p: str) -> list[str]:
    """The personal values kept beside the chain, by commitment digest.

    `IF NOT EXISTS` throughout: the step is safe whichever steps ran before it.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}personal (
            digest {d.types.id} PRIMARY KEY,
            thread_id {d.types.id} NOT NULL,
            subject TEXT,
            salt TEXT NOT NULL,
            value TEXT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}personal_thread ON {p}personal (thread_id)",
        f"CREATE INDEX IF NOT EXISTS {p}personal_subject ON {p}personal (subject)",
    ]


@dataclass(frozen=True, slots=True)
class _Statements:
    insert: str
    all: str
    thread: str
    subject_threads: str
    delete_thread: str
    open_review: str
    decisions: str
    redact_review: str
    redact_decision: str
    evidence: str
    redact_evidence: str

    @classmethod
    def of(cls, d: Dialect, p: str) -> _Statements:
        personal, reviews = f"{p}personal", f"{p}reviews"
        json_type = "JSONB" if d.placeholder == "%s" else "TEXT"
        return cls(
            insert=d.sql(
                f"INSERT INTO {personal} (digest, thread_id, subject, salt, value) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING"
            ),
            all=f"SELECT * FROM {personal}",
            thread=d.sql(f"SELECT * FROM {personal} WHERE thread_id = ?"),
            subject_threads=d.sql(
                f"SELECT thread_id FROM {personal} WHERE subject = ? UNION "
                f"SELECT thread_id FROM {reviews} WHERE requested_by = ? ORDER BY thread_id"
            ),
            delete_thread=d.sql(f"DELETE FROM {personal} WHERE thread_id = ?"),
            open_review=d.sql(
                f"SELECT 1 FROM {reviews} WHERE thread_id = ? AND status IN {OPEN_SQL}"
            ),
            decisions=d.sql(
                f"SELECT review_id, decision, votes FROM {reviews} WHERE thread_id = ?"
            ),
            redact_review=d.sql(
                f"UPDATE {reviews} SET customer_message = ?, draft_response = ? WHERE thread_id = ?"
            ),
            redact_decision=d.sql(
                f"UPDATE {reviews} SET decision = CAST(? AS {json_type}), "
                f"votes = CAST(? AS {json_type}) WHERE review_id = ?"
            ),
            evidence=d.sql(f"SELECT review_id FROM {p}evidence WHERE thread_id = ?"),
            redact_evidence=d.sql(f"UPDATE {p}evidence SET state = ? WHERE thread_id = ?"),
        )


class ErasureWrites(RetentionWrites):
    """`RetentionWrites` plus the personal-data capability (see the module docstring)."""

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        self._personal_sql = _Statements.of(self.dialect, self.table_prefix)
        self._staged: list[PersonalValue] = []

    @staticmethod
    def _value(row: Row) -> PersonalValue:
        subject = row["subject"]
        return PersonalValue(
            digest=str(row["digest"]),
            thread_id=str(row["thread_id"]),
            subject=None if subject is None else str(subject),
            salt=str(row["salt"]),
            value=json.loads(row["value"]),
        )

    def _paused_payload(self, review: ReviewRecord) -> tuple[dict[str, Any], list[Any]]:
        """The `paused` payload with the draft's hash and commitment salted (see `_personal`)."""
        return _personal.sealed_paused(review)

    async def _keep_personal(self, tx: Tx, values: Sequence[Any]) -> None:
        """Keep the values in the open transaction, with the row committing to them."""
        if values:
            await tx.run_many(self._personal_sql.insert, self._params(values))

    @staticmethod
    def _params(values: Sequence[PersonalValue]) -> list[tuple[Any, ...]]:
        return [
            (v.digest, v.thread_id, v.subject, v.salt, json.dumps(v.value, ensure_ascii=False))
            for v in values
        ]

    def stage_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep `values` with this store's next write, in its transaction or round trip.

        Saves `put_personal`'s write of its own. A write that fails stages them
        again for the next, so the write that commits to them takes them along.
        """
        self._staged.extend(values)

    def _take_staged(self) -> list[PersonalValue]:
        """The staged values, now the caller's to write (or to `_restage` on failure)."""
        staged, self._staged = self._staged, []
        return staged

    def _restage(self, values: Sequence[PersonalValue]) -> None:
        """Stage `values` again: the write that took them failed."""
        self._staged[:0] = values

    async def put_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep these values beside the chain (see `PersonalStore`)."""
        params = self._params(values)
        if not params:
            return

        async def put(tx: Tx) -> None:
            await tx.run_many(self._personal_sql.insert, params)

        await self._transaction(put)

    async def personal_values(self, thread_id: str | None = None) -> list[PersonalValue]:
        """The values kept for the thread (every thread's when None)."""
        s = self._personal_sql
        if thread_id is None:
            rows = await self._fetch_all(s.all, ())
        else:
            rows = await self._fetch_all(s.thread, (thread_id,))
        return [self._value(r) for r in rows]

    async def subject_threads(self, subject: str) -> list[str]:
        """The threads holding the subject's data: its values' or its requested reviews'."""
        rows = await self._fetch_all(self._personal_sql.subject_threads, (subject, subject))
        return [str(r["thread_id"]) for r in rows]

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        """Every audit row (or one thread's), with its personal values put back."""
        if thread_id is None:
            rows = await super().audit_rows(thread_id)
            if not any(_personal.commits(r.payload) for r in rows):
                return rows  # nothing to put back: no read of the side table
            return _personal.revealed(rows, await self.personal_values(thread_id))
        # One thread's rows and values in one trip: the decision path reads them every time.
        found, kept = await self._fetch_alls(
            [(self._sql.thread_audit_rows, (thread_id,)), (self._personal_sql.thread, (thread_id,))]
        )
        rows = [audit_from_row(self.dialect, r) for r in found]
        if not any(_personal.commits(r.payload) for r in rows):
            return rows
        return _personal.revealed(rows, [self._value(r) for r in kept])

    async def open_reviews_with_log(
        self, thread_id: str
    ) -> tuple[list[ReviewRecord], list[AuditRecord]]:
        """`open_reviews` and `audit_log` of a thread in one trip: what a decision reads first."""
        opened, found, kept = await self._fetch_alls(
            [
                (self._sql.open_reviews, (thread_id,)),
                (self._sql.thread_audit_rows, (thread_id,)),
                (self._personal_sql.thread, (thread_id,)),
            ]
        )
        rows = [audit_from_row(self.dialect, r) for r in found]
        if any(_personal.commits(r.payload) for r in rows):
            rows = _personal.revealed(rows, [self._value(r) for r in kept])
        return [review_from_row(self.dialect, r) for r in opened], rows

    async def erase_thread(self, thread_id: str, *, now: datetime, actor: str) -> ThreadErasure:
        """Delete the thread's personal values, redact its reviews and evidence, append `erased`."""
        self.dialect.time(now)
        s = self._personal_sql
        legacy = _personal.legacy_seqs(await super().audit_rows(thread_id))
        state = dumps(_personal.ERASED_STATE)

        async def erase(tx: Tx) -> ThreadErasure:
            await self._check_erasable(tx, thread_id)
            values = await tx.run(s.delete_thread, (thread_id,))
            reviews = await tx.run(s.redact_review, (ERASED_TEXT, ERASED_TEXT, thread_id))
            for row in await tx.all(s.decisions, (thread_id,)):
                kept = row["decision"]
                decision, votes = _personal.redacted_decision(
                    None if kept is None else self.dialect.read_json(kept),
                    self.dialect.read_json(row["votes"]),
                )
                text = None if decision is None else dumps(decision)
                await tx.run(s.redact_decision, (text, dumps(votes), row["review_id"]))
            evidence = await tx.run(s.redact_evidence, (state, thread_id))
            payload = _personal.erased_payload(values=values, reviews=reviews, evidence=evidence)
            await self._append(
                tx, _Audit(thread_id, None, None, ERASED_EVENT, actor, dumps(payload), now)
            )
            return ThreadErasure(thread_id, values, reviews, evidence, legacy_rows=legacy)

        return await self._transaction(erase, lock=thread_id)

    async def _check_erasable(self, tx: Tx, thread_id: str) -> None:
        row = await tx.one(self._retention.hold, (thread_id,))
        if row is not None:
            raise hold_error(self._hold(row), action="erase")
        if await tx.one(self._personal_sql.open_review, (thread_id,)) is not None:
            raise _personal.open_review_error(thread_id)
