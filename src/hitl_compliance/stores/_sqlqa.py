"""Second-line QA reviews in the SQL stores, written once for SQLite and PostgreSQL.

[`QaWrites`][hitl_compliance.stores._sqlqa.QaWrites] adds the
[`QaStore`][hitl_compliance.QaStore] capability to the shared SQL writes over
their one transaction primitive. QA reviews have their own table
(`<prefix>qa_reviews`, with a `<prefix>qa_rules` side table for the per-rule
counts), so the first-line queries (`list_pending`, the SLA's overdue and
undated scans, `recover()`'s claims and turns) never read them. Each write
commits with its audit row (`qa_sampled`, `qa_verdict`) through the ledger's
one append path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_compliance.qa import (
    QA_SAMPLED_EVENT,
    QA_SAMPLER,
    QA_VERDICT_EVENT,
    QaReview,
    QaRuleCount,
    QaVerdict,
    qa_not_found,
    qa_recorded,
)
from hitl_compliance.stores._sql import Dialect, Row, audit_json, dumps
from hitl_compliance.stores._sqlerasure import ErasureWrites
from hitl_compliance.stores._sqlwrites import Tx, _Audit
from hitl_compliance.stores.base import check_limit

__all__ = ["QaWrites", "qa_tables"]


def qa_tables(d: Dialect, p: str) -> list[str]:
    """The QA reviews and their rules (one row per rule of a sampled turn's rule set).

    `IF NOT EXISTS` throughout: the step is safe whichever steps ran before it.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}qa_reviews (
            qa_review_id {d.types.id} PRIMARY KEY,
            thread_id {d.types.id} NOT NULL,
            turn TEXT NOT NULL,
            stratum TEXT NOT NULL,
            rate DOUBLE PRECISION NOT NULL,
            rules TEXT NOT NULL,
            product TEXT,
            reply_seq {d.types.seq},
            sampled_at {d.types.time} NOT NULL,
            verdict TEXT,
            reason_code TEXT,
            reviewer TEXT,
            decided_at {d.types.time}
        )""",
        # qa_pending reads only the reviews awaiting a verdict, oldest first.
        f"CREATE INDEX IF NOT EXISTS {p}qa_waiting ON {p}qa_reviews "
        "(sampled_at, qa_review_id) WHERE verdict IS NULL",
        f"""CREATE TABLE IF NOT EXISTS {p}qa_rules (
            qa_review_id {d.types.id} NOT NULL,
            rule {d.types.id} NOT NULL,
            sampled_at {d.types.time} NOT NULL,
            PRIMARY KEY (qa_review_id, rule)
        )""",
        f"CREATE INDEX IF NOT EXISTS {p}qa_rules_at ON {p}qa_rules (sampled_at, rule)",
    ]


@dataclass(frozen=True, slots=True)
class _Statements:
    insert: str
    insert_rule: str
    by_id: str
    locked: str
    judge: str
    waiting: str

    @classmethod
    def of(cls, d: Dialect, p: str) -> _Statements:
        return cls(
            insert=d.sql(
                f"INSERT INTO {p}qa_reviews (qa_review_id, thread_id, turn, stratum, rate, "
                "rules, product, reply_seq, sampled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (qa_review_id) DO NOTHING"
            ),
            insert_rule=d.sql(
                f"INSERT INTO {p}qa_rules (qa_review_id, rule, sampled_at) VALUES (?, ?, ?) "
                "ON CONFLICT (qa_review_id, rule) DO NOTHING"
            ),
            by_id=d.sql(f"SELECT * FROM {p}qa_reviews WHERE qa_review_id = ?"),
            locked=d.sql(f"SELECT * FROM {p}qa_reviews WHERE qa_review_id = ?") + d.for_update,
            judge=d.sql(
                f"UPDATE {p}qa_reviews SET verdict = ?, reason_code = ?, reviewer = ?, "
                "decided_at = ? WHERE qa_review_id = ? AND verdict IS NULL"
            ),
            waiting=d.sql(
                f"SELECT * FROM {p}qa_reviews WHERE verdict IS NULL "
                "ORDER BY sampled_at, qa_review_id LIMIT ?"
            ),
        )


def _counts_query(
    d: Dialect, p: str, *, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("r.sampled_at >= ?")
        params.append(d.time(since))
    if until is not None:
        where.append("r.sampled_at < ?")
        params.append(d.time(until))
    sql = (
        "SELECT r.rule AS rule, COUNT(*) AS sampled, COUNT(q.verdict) AS reviewed, "
        "SUM(CASE WHEN q.verdict = 'disagree' THEN 1 ELSE 0 END) AS disagreements "
        f"FROM {p}qa_rules AS r JOIN {p}qa_reviews AS q ON q.qa_review_id = r.qa_review_id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    return d.sql(sql + " GROUP BY r.rule ORDER BY r.rule"), params


class QaWrites(ErasureWrites):
    """The SQL writes plus the QA capability (see the module docstring)."""

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        self._qa_sql = _Statements.of(self.dialect, self.table_prefix)

    def _qa_review(self, row: Row) -> QaReview:
        d = self.dialect
        seq = row["reply_seq"]
        return QaReview(
            qa_review_id=str(row["qa_review_id"]),
            thread_id=str(row["thread_id"]),
            turn=str(row["turn"]),
            stratum=str(row["stratum"]),
            rate=float(row["rate"]),
            rules=tuple(json.loads(row["rules"])),
            product=row["product"],
            reply_seq=None if seq is None else int(seq),
            sampled_at=d.read_time(row["sampled_at"]),
            verdict=row["verdict"],
            reason_code=row["reason_code"],
            reviewer=row["reviewer"],
            decided_at=d.read_optional_time(row["decided_at"]),
        )

    async def open_qa_review(self, review: QaReview, *, payload: dict[str, Any]) -> bool:
        """Insert the QA review, its rules and its `qa_sampled` row, once per id (`QaStore`)."""
        d, s = self.dialect, self._qa_sql
        at = d.time(review.sampled_at)
        row = _Audit(
            review.thread_id,
            None,
            None,
            QA_SAMPLED_EVENT,
            QA_SAMPLER,
            audit_json(payload, event=QA_SAMPLED_EVENT, thread_id=review.thread_id),
            review.sampled_at,
        )
        values = (
            review.qa_review_id,
            review.thread_id,
            review.turn,
            review.stratum,
            review.rate,
            dumps(list(review.rules)),
            review.product,
            review.reply_seq,
            at,
        )
        rules = [(review.qa_review_id, rule, at) for rule in sorted(set(review.rules))]

        async def insert(tx: Tx) -> bool:
            if await tx.run(s.insert, values) == 0:
                return False  # sampled already (a re-run, or another process)
            await tx.run_many(s.insert_rule, rules)
            await self._append(tx, row)
            return True

        inserted = await self._transaction(insert, lock=review.thread_id)
        await self._after_write()
        return inserted

    async def get_qa_review(self, qa_review_id: str) -> QaReview | None:
        """The QA review, or None."""
        row = await self._fetch_one(self._qa_sql.by_id, (qa_review_id,))
        return None if row is None else self._qa_review(row)

    async def list_qa_pending(self, *, limit: int | None = None) -> list[QaReview]:
        """QA reviews without a verdict, oldest first (a partial index range)."""
        check_limit(limit)
        rows = await self._fetch_all(self._qa_sql.waiting, (self.dialect.limit(limit),))
        return [self._qa_review(r) for r in rows]

    async def record_qa_verdict(
        self,
        qa_review_id: str,
        *,
        verdict: QaVerdict,
        reason_code: str | None,
        reviewer: str,
        now: datetime,
        payload: dict[str, Any],
    ) -> QaReview:
        """Record the verdict and its `qa_verdict` row once (see `QaStore`), atomically."""
        d, s = self.dialect, self._qa_sql
        at = d.time(now)
        payload_json = audit_json(payload, event=QA_VERDICT_EVENT, thread_id=None)

        async def judge(tx: Tx) -> QaReview:
            found = await tx.one(s.locked, (qa_review_id,))
            if found is None:
                raise qa_not_found(qa_review_id)
            review = self._qa_review(found)
            params = (verdict, reason_code, reviewer, at, qa_review_id)
            if review.verdict is not None or await tx.run(s.judge, params) == 0:
                raise qa_recorded(review)
            await self._append(
                tx,
                _Audit(
                    review.thread_id,
                    None,
                    None,
                    QA_VERDICT_EVENT,
                    reviewer,
                    payload_json,
                    now,
                ),
            )
            return review.model_copy(
                update={
                    "verdict": verdict,
                    "reason_code": reason_code,
                    "reviewer": reviewer,
                    "decided_at": now,
                }
            )

        judged = await self._transaction(judge)
        await self._after_write()
        return judged

    async def qa_disagreement(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[QaRuleCount, ...]:
        """Per rule: QA reviews sampled in `[since, until)`, judged, disagreed (one query)."""
        sql, params = _counts_query(self.dialect, self.table_prefix, since=since, until=until)
        rows: Sequence[Row] = await self._fetch_all(sql, params)
        return tuple(
            QaRuleCount(
                str(r["rule"]), int(r["sampled"]), int(r["reviewed"]), int(r["disagreements"])
            )
            for r in rows
        )
