"""The finding kinds of pending reviews: what `pending(reviewer=)` reads through an index.

A review's *finding kinds* are the distinct `(rule, severity)` pairs of its
findings, as a JSON array sorted by rule then severity (`[]` for none). The
library's policies decide from those pairs alone, so the coordinator asks the
policy once per distinct kinds value among the pending reviews (few: rules
times severities) and reads only the reviews whose kinds it allows, through a
partial index of pending rows on `(kinds, requested_at, review_id)`:

* SQLite keeps the value in a `finding_kinds` column written with the row;
* PostgreSQL indexes the expression `{prefix}finding_kinds(violations)`, an
  immutable SQL function, so its server-side write path is unchanged.

[`KindsReads`][hitl_compliance.stores._sqlkinds.KindsReads] adds the two reads
to both SQL stores; the in-memory store keeps the same index in a dict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.stores._sql import Row, review_from_row
from hitl_compliance.stores._sqlstore import SqlStoreBase
from hitl_compliance.stores.base import check_limit

__all__ = [
    "KindsReads",
    "finding_kinds",
    "postgres_kinds_steps",
    "sqlite_kinds_index",
]


def finding_kinds(violations: Sequence[RuleResult]) -> str:
    """The kinds value of these findings, as the SQLite and memory stores keep it."""
    pairs = sorted({(v.rule, v.severity) for v in violations})
    return json.dumps([list(p) for p in pairs], ensure_ascii=False, separators=(",", ":"))


def sqlite_kinds_index(p: str) -> str:
    """The partial index of pending rows by kinds, oldest first within each."""
    return (
        f"CREATE INDEX IF NOT EXISTS {p}reviews_kinds "
        f"ON {p}reviews (finding_kinds, requested_at, review_id) WHERE status = 'pending'"
    )


def postgres_kinds_steps(p: str) -> list[str]:
    """PostgreSQL: the immutable kinds function and the partial expression index on it."""
    return [
        f"""CREATE OR REPLACE FUNCTION {p}finding_kinds(v JSONB) RETURNS TEXT
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(jsonb_agg(k ORDER BY (k->>0) COLLATE "C", (k->>1) COLLATE "C")::text,
                '[]')
            FROM (SELECT DISTINCT jsonb_build_array(e->>'rule', e->>'severity') AS k
                FROM jsonb_array_elements(v) AS e) AS s
        $$""",
        f"CREATE INDEX IF NOT EXISTS {p}reviews_kinds "
        f"ON {p}reviews ({p}finding_kinds(violations), requested_at, review_id) "
        "WHERE status = 'pending'",
    ]


class KindsReads(SqlStoreBase):
    """`pending_finding_kinds` and `list_pending_by_kinds` over the kinds index."""

    kinds_expr: str = "finding_kinds"
    """The SQL expression of a review row's kinds (a column, or the indexed call)."""
    kinds_nullable: bool = True
    """Whether a pending row's kinds can be unset (a column written by older code)."""
    kinds_ready: bool = False
    """Whether `setup()` brought the tables to the kinds index's migration step."""

    def _kinds(self) -> str:
        return self.kinds_expr.format(p=self.table_prefix)

    def distinct_kinds_query(self) -> str:
        """Each distinct kinds value among pending rows: a skip scan of the kinds index
        (one index probe per value, however many rows share it); then, where the
        value can be unset, one NULL row if any pending row has none."""
        d, k, reviews = self.dialect, self._kinds(), f"{self.table_prefix}reviews"
        sql = (
            f"WITH RECURSIVE found(kinds) AS ("
            f"SELECT min({k}) FROM {reviews} WHERE status = 'pending' "
            f"UNION ALL SELECT (SELECT min({k}) FROM {reviews} "
            f"WHERE status = 'pending' AND {k} > found.kinds) FROM found "
            "WHERE found.kinds IS NOT NULL) "
            "SELECT kinds FROM found WHERE kinds IS NOT NULL"
        )
        if self.kinds_nullable:
            sql += (
                f" UNION ALL SELECT NULL FROM (SELECT 1 AS x FROM {reviews} "
                f"WHERE status = 'pending' AND {k} IS NULL LIMIT 1) AS unset"
            )
        return d.sql(sql)

    def by_kinds_query(
        self,
        kinds: Sequence[str],
        *,
        limit: int | None,
        requested_before: datetime | None,
        after: tuple[datetime, str] | None,
    ) -> tuple[str, list[object]]:
        """The `list_pending_by_kinds` statement: one range of the kinds index per
        value, each cut at `limit`, merged; only the first `limit` rows read whole."""
        d, k, reviews = self.dialect, self._kinds(), f"{self.table_prefix}reviews"
        part = f"SELECT requested_at, review_id FROM {reviews} WHERE status = 'pending' AND {k} = ?"
        extra: list[object] = []
        if requested_before is not None:
            part += " AND requested_at < ?"
            extra.append(d.time(requested_before))
        if after is not None:
            part += " AND (requested_at, review_id) > (?, ?)"
            extra.extend((d.time(after[0]), after[1]))
        part += " ORDER BY requested_at, review_id LIMIT ?"
        params: list[object] = []
        for value in kinds:
            params += [value, *extra, d.limit(limit)]
        union = " UNION ALL ".join(f"SELECT * FROM ({part}) AS k{i}" for i in range(len(kinds)))
        sql = (
            f"SELECT r.* FROM {reviews} AS r JOIN (SELECT * FROM ({union}) AS u "
            "ORDER BY requested_at, review_id LIMIT ?) AS top ON r.review_id = top.review_id "
            "ORDER BY r.requested_at, r.review_id"
        )
        params.append(d.limit(limit))
        return d.sql(sql), params

    async def pending_finding_kinds(self) -> list[str] | None:
        """Each distinct kinds value among pending reviews.

        Returns None when the tables have no kinds index, or a pending row has no
        kinds value (written by a version before it): the caller then reads the
        reviews without it.
        """
        if not self.kinds_ready:
            return None
        rows = await self._fetch_all(self.distinct_kinds_query(), ())
        if any(r["kinds"] is None for r in rows):
            return None
        return [str(r["kinds"]) for r in rows]

    async def list_pending_by_kinds(
        self,
        kinds: Sequence[str],
        *,
        limit: int | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Pending reviews whose kinds value is one of `kinds`, oldest first."""
        check_limit(limit)
        wanted = sorted(set(kinds))
        if not wanted or limit == 0:
            return []
        sql, params = self.by_kinds_query(
            wanted, limit=limit, requested_before=requested_before, after=after
        )
        rows: list[Row] = await self._fetch_all(sql, params)
        return [review_from_row(self.dialect, r) for r in rows]
