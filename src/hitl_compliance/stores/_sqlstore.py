"""The part of a SQL review store that does not depend on its driver, written once.

[`SqlStoreBase`][hitl_compliance.stores._sqlstore.SqlStoreBase] implements every
[`ReviewStore`][hitl_compliance.ReviewStore] method that is one statement of
the shared SQL layer ([`_sql`][hitl_compliance.stores._sql]) and a row
mapping: the reads (reviews, turns, audit rows, outbox rows) and the
single-row conditional updates (end or take over a turn or a claim, renew or
finish a hook lease). A backend subclass supplies its
[`Dialect`][hitl_compliance.stores._sql.Dialect] and three primitives that run
one statement (`_fetch_all`, `_fetch_one`, `_execute`), each in one trip to
the database. The multi-statement writes (`begin_turn`, `open_review`,
`claim`, `vote`, `release`, `complete`, `append_audit`, `escalate`, the lease
of `claim_hooks`) are [`SqlStore`][hitl_compliance.stores._sqlwrites.SqlStore]'s,
over the one transaction primitive a backend adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar

from typing_extensions import Self

from hitl_compliance.ledger import SealedHead
from hitl_compliance.models import AuditRecord, HookDelivery, ReviewRecord
from hitl_compliance.oversight import (
    OversightReport,
    OversightThresholds,
    Period,
    build_report,
    qa_fact,
)
from hitl_compliance.reasons import ReasonCodeCount
from hitl_compliance.stores._seals import Sealed, SealStatements
from hitl_compliance.stores._sql import (
    Dialect,
    OversightQueries,
    Row,
    Statements,
    Tables,
    audit_from_row,
    claimable_query,
    decision_fact_from_row,
    delivery_from_row,
    escalation_fact_from_row,
    hooks_query,
    overdue_query,
    pending_query,
    reason_counts_query,
    review_from_row,
    turn_from_row,
)
from hitl_compliance.stores.base import TurnRecord, check_limit

__all__ = ["SqlStoreBase"]


class SqlStoreBase(Sealed):
    """The driver-independent methods of the SQL stores (see the module docstring).

    Args:
        table_prefix: prefix of the table names; checked, since it is spliced into SQL.

    Raises:
        ConfigurationError: `table_prefix` is not a plain identifier.
    """

    dialect: ClassVar[Dialect]
    """The backend's dialect (set by each subclass)."""

    def __init__(self, *, table_prefix: str) -> None:
        tables = Tables.of(table_prefix)
        self.table_prefix = table_prefix
        self._tables = tables
        self._sql = Statements.of(self.dialect, tables)
        self._reviews = tables.reviews
        self._audit = tables.audit
        self._intents = tables.intents
        self._review_rules = tables.review_rules
        self._schema_version = tables.schema_version
        self._audit_head = tables.audit_head
        self._outbox = tables.outbox
        self._hooks: frozenset[str] = frozenset()
        self._seal_sql = SealStatements(self.dialect, table_prefix)

    # -- what a backend supplies ---------------------------------------------------

    async def _fetch_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run one read statement; all its rows."""
        raise NotImplementedError

    async def _fetch_alls(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        """Several read statements' rows in one trip to the database (each reads committed data)."""
        raise NotImplementedError

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> Row | None:
        """Run one read statement; its first row, or None."""
        raise NotImplementedError

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement, atomically; the number of rows it changed."""
        raise NotImplementedError

    async def setup(self) -> None:
        """Create or upgrade the tables (the backend's)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the backend's connections."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def configure_hooks(self, hooks: frozenset[str]) -> None:
        """Write an outbox row, with each audit row, for these hooks (see the protocol)."""
        self._hooks = frozenset(hooks)

    @property
    def configured_hooks(self) -> frozenset[str]:
        """The hook names this store writes outbox rows for (its last `configure_hooks`)."""
        return self._hooks

    # -- turns -----------------------------------------------------------------------

    async def end_turn(self, thread_id: str, *, owner: str) -> None:
        """Delete the thread's turn row if `owner` still holds it."""
        await self._execute(self._sql.end_turn, (thread_id, owner))

    async def stale_turns(self, *, started_before: datetime) -> list[TurnRecord]:
        """Turn rows started before `started_before`, oldest first."""
        rows = await self._fetch_all(self._sql.stale_turns, (self.dialect.time(started_before),))
        return [turn_from_row(self.dialect, r) for r in rows]

    async def take_over_turn(
        self, thread_id: str, *, old_owner: str, new_owner: str, now: datetime
    ) -> bool:
        """Atomically move a turn row to `new_owner`; False if someone else did first."""
        params = (new_owner, self.dialect.time(now), thread_id, old_owner)
        return await self._execute(self._sql.take_over_turn, params) == 1

    # -- reviews ---------------------------------------------------------------------

    async def get_review(self, thread_id: str) -> ReviewRecord | None:
        """The thread's most recent review, whatever its status."""
        row = await self._fetch_one(self._sql.latest_review, (thread_id,))
        return None if row is None else review_from_row(self.dialect, row)

    def _pending_query(
        self,
        *,
        limit: int | None,
        rule: str | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_pending`; every filter is an index range."""
        return pending_query(
            self.dialect,
            self._reviews,
            self._review_rules,
            limit=limit,
            rule=rule,
            requested_before=requested_before,
            after=after,
        )

    async def open_reviews(self, thread_id: str) -> list[ReviewRecord]:
        """The thread's open reviews, oldest opened first (see the protocol)."""
        rows = await self._fetch_all(self._sql.open_reviews, (thread_id,))
        return [review_from_row(self.dialect, row) for row in rows]

    async def list_pending(
        self,
        *,
        limit: int | None = None,
        rule: str | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Reviews with status `pending`, ordered by `(requested_at, review_id)`.

        Filters: a finding of `rule`; requested strictly before
        `requested_before`; strictly after the `(requested_at, review_id)`
        cursor `after`. Each reads an index range, so the cost is O(returned rows).

        Raises:
            ValueError: `limit` is negative, or a datetime is naive.
        """
        check_limit(limit)
        sql, params = self._pending_query(
            limit=limit, rule=rule, requested_before=requested_before, after=after
        )
        return [review_from_row(self.dialect, r) for r in await self._fetch_all(sql, params)]

    async def count_pending(self) -> int:
        """How many reviews are pending: one `COUNT` over the partial pending index."""
        row = await self._fetch_one(self._sql.count_pending, ())
        return 0 if row is None else int(row["n"])

    async def abandoned_claims(self, *, claimed_before: datetime) -> list[ReviewRecord]:
        """Claimed reviews whose claim is older than `claimed_before`, oldest first."""
        params = (self.dialect.time(claimed_before),)
        rows = await self._fetch_all(self._sql.abandoned_claims, params)
        return [review_from_row(self.dialect, r) for r in rows]

    async def take_over_claim(
        self, review_id: str, *, old_claim_id: str, new_claim_id: str, now: datetime
    ) -> bool:
        """Atomically move an abandoned claim to `new_claim_id`; False if it moved already."""
        params = (new_claim_id, self.dialect.time(now), review_id, old_claim_id)
        return await self._execute(self._sql.take_over_claim, params) == 1

    # -- audit -----------------------------------------------------------------------

    async def audit_log(self, thread_id: str) -> list[AuditRecord]:
        """The thread's audit rows, oldest first."""
        return await self.audit_rows(thread_id)

    async def audit_rows(self, thread_id: str | None = None) -> list[AuditRecord]:
        """Every audit row (or one thread's), in `seq` order, exactly as stored."""
        if thread_id is None:
            rows = await self._fetch_all(self._sql.audit_rows, ())
        else:
            rows = await self._fetch_all(self._sql.thread_audit_rows, (thread_id,))
        return [audit_from_row(self.dialect, r) for r in rows]

    async def reason_code_counts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[ReasonCodeCount, ...]:
        """Audit rows with a payload `reason_code`, counted by code and event in one query."""
        sql, params = reason_counts_query(self.dialect, self._audit, since=since, until=until)
        rows = await self._fetch_all(sql, params)
        return tuple(ReasonCodeCount(str(r["code"]), str(r["event"]), int(r["n"])) for r in rows)

    async def oversight_report(
        self,
        *,
        since: datetime,
        until: datetime,
        thresholds: OversightThresholds,
        period: Period,
    ) -> OversightReport:
        """The oversight report of the window: three index range reads, then `build_report`."""
        d = self.dialect
        q = OversightQueries.of(d, self._tables)
        window = (d.time(since), d.time(until))
        decided = await self._fetch_all(q.decisions, window)
        escalated = await self._fetch_all(q.escalations, window)
        verdicts = await self._fetch_all(q.qa, window)
        decisions = [f for f in (decision_fact_from_row(d, r) for r in decided) if f is not None]
        qa = [v for v in (qa_fact(d.read_time(r["at"]), r["payload"]) for r in verdicts) if v]
        return build_report(
            since=since,
            until=until,
            period=period,
            thresholds=thresholds,
            decisions=decisions,
            escalations=[escalation_fact_from_row(d, r) for r in escalated],
            qa=qa,
        )

    async def audit_head(self) -> tuple[int, str] | None:
        """The chain head `(seq, hash)` of the last appended row; None before the first."""
        row = await self._fetch_one(self._sql.audit_head, ())
        if row is None or int(row["seq"]) == 0:
            return None
        return int(row["seq"]), str(row["hash"])

    async def seals(self) -> list[SealedHead]:
        """Every sealed head in the seals table, by seq."""
        rows = await self._fetch_all(self._seal_sql.select, ())
        d = self.dialect
        return [
            SealedHead(
                int(r["seq"]), r["hash"], d.read_time(r["sealed_at"]), r["key_id"], r["signature"]
            )
            for r in rows
        ]

    async def _add_seal(self, head: SealedHead) -> None:
        """Store one sealed head (once: a second seal of the same seq and key is dropped)."""
        at = self.dialect.time(head.sealed_at)
        params = (head.seq, head.key_id, head.hash, at, head.signature)
        await self._execute(self._seal_sql.insert, params)

    # -- SLA -------------------------------------------------------------------------

    def _overdue_query(self, *, now: datetime, limit: int | None) -> tuple[str, list[Any]]:
        """The SQL and parameters of `list_overdue`: a range of the partial overdue index."""
        return overdue_query(self.dialect, self._reviews, now=now, limit=limit)

    async def list_overdue(self, *, now: datetime, limit: int | None = None) -> list[ReviewRecord]:
        """Pending reviews whose `deadline` is at or before `now`, earliest first.

        Reads the partial `(deadline, review_id)` index of pending reviews with
        a deadline, so the cost is O(overdue rows returned).

        Raises:
            ValueError: `limit` is negative, or `now` is naive.
        """
        check_limit(limit)
        sql, params = self._overdue_query(now=now, limit=limit)
        return [review_from_row(self.dialect, r) for r in await self._fetch_all(sql, params)]

    async def list_undated(self, *, limit: int | None = None) -> list[ReviewRecord]:
        """Pending reviews without a deadline, oldest first (see the protocol).

        Reads the partial `(requested_at, review_id)` index of pending reviews
        without a deadline, so the cost is O(rows returned).

        Raises:
            ValueError: `limit` is negative.
        """
        check_limit(limit)
        rows = await self._fetch_all(self._sql.undated, (self.dialect.limit(limit),))
        return [review_from_row(self.dialect, r) for r in rows]

    async def set_deadline(self, review_id: str, *, deadline: datetime) -> bool:
        """Date a pending review that has none, atomically; False if not (see the protocol)."""
        params = (self.dialect.time(deadline), review_id)
        return await self._execute(self._sql.set_deadline, params) == 1

    # -- hook outbox -----------------------------------------------------------------

    def _hooks_query(
        self, *, thread_id: str | None, created_before: datetime | None
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters of `pending_hooks`: a range of a partial undelivered index."""
        return hooks_query(
            self.dialect,
            self._outbox,
            self._audit,
            thread_id=thread_id,
            created_before=created_before,
        )

    async def pending_hooks(
        self, *, thread_id: str | None = None, created_before: datetime | None = None
    ) -> list[HookDelivery]:
        """Undelivered outbox rows in `seq` order, each with its audit record.

        `failed` rows always; `pending` rows only if created before
        `created_before` (all of them when it is None). Reads the partial index
        of undelivered rows (of one thread, with `thread_id`).
        """
        sql, params = self._hooks_query(thread_id=thread_id, created_before=created_before)
        return [delivery_from_row(self.dialect, r) for r in await self._fetch_all(sql, params)]

    async def _lease(
        self, pick: str, params: list[Any], *, owner: str, until: Any
    ) -> list[HookDelivery]:
        """Lease the rows `pick` selects to `owner` until `until`, atomically; the leased rows.

        [`SqlStore`][hitl_compliance.stores._sqlwrites.SqlStore] leases them
        in one transaction (a write lock held from pick to lease, or `SKIP
        LOCKED`), so two concurrent callers never lease one row.
        """
        raise NotImplementedError

    async def claim_hooks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        thread_id: str | None = None,
        hooks: frozenset[str] | None = None,
        created_before: datetime | None = None,
        include_failed: bool = True,
        limit: int | None = None,
    ) -> list[HookDelivery]:
        """Lease claimable outbox rows to `owner` (see the protocol), in one trip.

        Every argument is checked before anything runs; naming no hook leases
        nothing. The pick is the shared query; the lease is the backend's.
        """
        check_limit(limit)
        until = self.dialect.time(lease_until)
        self.dialect.time(now)
        if hooks is not None and not hooks:
            return []
        pick, params = claimable_query(
            self.dialect,
            self._outbox,
            now=now,
            thread_id=thread_id,
            hooks=hooks,
            created_before=created_before,
            include_failed=include_failed,
            limit=limit,
        )
        return await self._lease(pick, params, owner=owner, until=until)

    async def renew_hook(self, delivery_id: str, *, owner: str, lease_until: datetime) -> bool:
        """Extend `owner`'s lease on an undelivered row (see the protocol)."""
        params = (self.dialect.time(lease_until), delivery_id, owner)
        return await self._execute(self._sql.renew_hook, params) == 1

    async def finish_hook(
        self,
        delivery_id: str,
        *,
        ok: bool,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """Record one delivery attempt by the lease holder (see the protocol).

        `delivered` when ok (final), else `failed` with `error` and the lease
        released. False when the row is unknown, delivered, or another's.
        """
        sql = self._sql.finish_delivered if ok else self._sql.finish_failed
        params = (
            "delivered" if ok else "failed",
            error,
            self.dialect.time(now),
            delivery_id,
            owner,
        )
        return await self._execute(sql, params) == 1
