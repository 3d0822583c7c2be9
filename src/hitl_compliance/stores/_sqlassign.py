"""Assignment and delegation in the SQL stores, written once for SQLite and PostgreSQL.

[`AssignmentWrites`][hitl_compliance.stores._sqlassign.AssignmentWrites] adds
the [`AssignmentStore`][hitl_compliance.AssignmentStore] capability over the
stores' one transaction primitive. A review's assignee lives on its row
(`assigned_to`, `assignment_reason`), read by a partial index of pending rows
on `(assigned_to, requested_at, review_id)`; delegations have their own table.
Each write appends its audit row (`assigned`, `reassigned`, `delegated`,
`delegation_revoked`) in the transaction of its change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hitl_compliance.assignment import (
    DELEGATION_THREAD,
    Assignment,
    Delegation,
    assigned_payload,
    delegated_payload,
)
from hitl_compliance.models import ReviewRecord
from hitl_compliance.stores._sql import Dialect, Row, dumps, review_from_row
from hitl_compliance.stores._sqlerasure import ErasureWrites
from hitl_compliance.stores._sqlwrites import Tx, _Audit
from hitl_compliance.stores.base import check_limit

__all__ = ["AssignmentWrites", "assignment_columns", "assignment_tables"]


def assignment_columns(p: str, *, if_not_exists: bool) -> list[str]:
    """The review row's assignee and why (SQLite has no `ADD COLUMN IF NOT EXISTS`)."""
    guard = "IF NOT EXISTS " if if_not_exists else ""
    return [
        f"ALTER TABLE {p}reviews ADD COLUMN {guard}assigned_to TEXT",
        f"ALTER TABLE {p}reviews ADD COLUMN {guard}assignment_reason TEXT",
    ]


def assignment_tables(d: Dialect, p: str) -> list[str]:
    """`pending(assigned_to=)`'s partial index, and one delegation row per delegator."""
    return [
        f"CREATE INDEX IF NOT EXISTS {p}reviews_assigned "
        f"ON {p}reviews (assigned_to, requested_at, review_id) "
        "WHERE status = 'pending' AND assigned_to IS NOT NULL",
        f"""CREATE TABLE IF NOT EXISTS {p}delegations (
            from_reviewer TEXT PRIMARY KEY,
            to_reviewer TEXT NOT NULL,
            until {d.types.time} NOT NULL,
            delegated_by TEXT NOT NULL,
            created_at {d.types.time} NOT NULL
        )""",
    ]


class AssignmentWrites(ErasureWrites):
    """`ErasureWrites` plus the assignment capability (see the module docstring)."""

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        d, p = self.dialect, self.table_prefix
        reviews = f"{p}reviews"
        self._assign_head = d.sql(f"SELECT thread_id FROM {reviews} WHERE review_id = ?")
        self._assign_row = d.sql(
            "SELECT review_id, thread_id, checkpoint_id, status, assigned_to, assignment_reason "
            f"FROM {reviews} WHERE review_id = ?{d.for_update}"
        )
        self._set_assignee = d.sql(
            f"UPDATE {reviews} SET assigned_to = ?, assignment_reason = ? "
            "WHERE review_id = ? AND status = 'pending'"
        )
        self._assignment_of = (
            f"SELECT review_id, thread_id, assigned_to, assignment_reason FROM {reviews} "
            "WHERE assigned_to IS NOT NULL AND review_id IN ({marks})"
        )
        self._assigned = (
            f"SELECT * FROM {reviews} WHERE status = 'pending' AND assigned_to IS NOT NULL "
            "AND assigned_to IN ({marks})"
        )
        self._delegation = d.sql(f"SELECT * FROM {p}delegations WHERE from_reviewer = ?")
        self._delegations = f"SELECT * FROM {p}delegations ORDER BY from_reviewer"
        self._drop_delegation = d.sql(f"DELETE FROM {p}delegations WHERE from_reviewer = ?")
        self._put_delegation = d.sql(
            f"INSERT INTO {p}delegations "
            "(from_reviewer, to_reviewer, until, delegated_by, created_at) VALUES (?, ?, ?, ?, ?)"
        )

    def _delegation_of(self, row: Row) -> Delegation:
        return Delegation(
            from_reviewer=str(row["from_reviewer"]),
            to_reviewer=str(row["to_reviewer"]),
            until=self.dialect.read_time(row["until"]),
            by=str(row["delegated_by"]),
            created_at=self.dialect.read_time(row["created_at"]),
        )

    async def assign(
        self,
        review_id: str,
        *,
        to: str,
        reason: str,
        by: str,
        now: datetime,
        initial: bool,
    ) -> Assignment | None:
        """Assign a pending review, with its audit row (see the protocol)."""
        self.dialect.time(now)
        head = await self._fetch_one(self._assign_head, (review_id,))
        if head is None:
            return None
        thread_id = str(head["thread_id"])

        async def write(tx: Tx) -> Assignment | None:
            row = await tx.one(self._assign_row, (review_id,))
            if row is None or row["status"] != "pending":
                return None
            previous = row["assigned_to"]
            if initial and previous is not None:
                return self._assignment(row)  # routed already: this pause was opened before
            payload = assigned_payload(to, reason, None if previous is None else str(previous))
            await tx.run(self._set_assignee, (to, reason, review_id))
            event = "assigned" if initial else "reassigned"
            await self._append(
                tx,
                _Audit(
                    thread_id,
                    review_id,
                    str(row["checkpoint_id"]),
                    event,
                    by,
                    dumps(payload),
                    now,
                ),
            )
            return Assignment(
                review_id=review_id, thread_id=thread_id, assigned_to=to, reason=reason
            )

        return await self._transaction(write, lock=thread_id)

    @staticmethod
    def _assignment(row: Row) -> Assignment:
        return Assignment(
            review_id=str(row["review_id"]),
            thread_id=str(row["thread_id"]),
            assigned_to=str(row["assigned_to"]),
            reason=str(row["assignment_reason"] or ""),
        )

    async def assignments(self, review_ids: Sequence[str]) -> list[Assignment]:
        """The assignments of those reviews that have one."""
        out: list[Assignment] = []
        ids = list(review_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = self.dialect.sql(self._assignment_of.format(marks=", ".join("?" * len(chunk))))
            out.extend(self._assignment(r) for r in await self._fetch_all(sql, tuple(chunk)))
        return out

    def assigned_query(
        self,
        assignees: Sequence[str],
        *,
        limit: int | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> tuple[str, tuple[object, ...]]:
        """The `list_assigned` statement: a range of the partial `reviews_assigned` index."""
        d = self.dialect
        names = sorted(set(assignees))
        sql = self._assigned.format(marks=", ".join("?" * len(names)))
        params: list[object] = list(names)
        if requested_before is not None:
            sql += " AND requested_at < ?"
            params.append(d.time(requested_before))
        if after is not None:
            sql += " AND (requested_at, review_id) > (?, ?)"
            params.extend((d.time(after[0]), after[1]))
        sql += " ORDER BY requested_at, review_id LIMIT ?"
        params.append(d.limit(limit))
        return d.sql(sql), tuple(params)

    async def list_assigned(
        self,
        assignees: Sequence[str],
        *,
        limit: int | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Pending reviews assigned to any of `assignees`, oldest first."""
        check_limit(limit)
        if not assignees:
            return []
        sql, params = self.assigned_query(
            assignees, limit=limit, requested_before=requested_before, after=after
        )
        return [review_from_row(self.dialect, r) for r in await self._fetch_all(sql, params)]

    async def delegate(self, delegation: Delegation) -> Delegation:
        """Record the delegation, replacing the delegator's earlier one, audited."""
        d = self.dialect
        until, created = d.time(delegation.until), d.time(delegation.created_at)
        row = _Audit(
            DELEGATION_THREAD,
            None,
            None,
            "delegated",
            delegation.by,
            dumps(delegated_payload(delegation)),
            delegation.created_at,
        )

        async def write(tx: Tx) -> Delegation:
            await tx.run(self._drop_delegation, (delegation.from_reviewer,))
            await tx.run(
                self._put_delegation,
                (delegation.from_reviewer, delegation.to_reviewer, until, delegation.by, created),
            )
            await self._append(tx, row)
            return delegation

        return await self._transaction(write, lock=DELEGATION_THREAD)

    async def revoke_delegation(
        self, from_reviewer: str, *, by: str, now: datetime
    ) -> Delegation | None:
        """End the delegator's delegation, audited; None if there was none."""
        self.dialect.time(now)

        async def write(tx: Tx) -> Delegation | None:
            row = await tx.one(self._delegation, (from_reviewer,))
            if row is None:
                return None
            gone = self._delegation_of(row)
            await tx.run(self._drop_delegation, (from_reviewer,))
            payload = dumps(delegated_payload(gone))
            await self._append(
                tx, _Audit(DELEGATION_THREAD, None, None, "delegation_revoked", by, payload, now)
            )
            return gone

        return await self._transaction(write, lock=DELEGATION_THREAD)

    async def delegations(self) -> list[Delegation]:
        """Every recorded delegation, by delegator."""
        return [self._delegation_of(r) for r in await self._fetch_all(self._delegations, ())]
