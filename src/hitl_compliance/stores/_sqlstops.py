"""The stop switch in the SQL stores: one row per stopped scope, written with its audit row.

[`StopWrites`][hitl_compliance.stores._sqlstops.StopWrites] adds the
[`DeliveryStopStore`][hitl_compliance.DeliveryStopStore] capability over the
one transaction primitive, so SQLite and PostgreSQL run the same statements.
Each switch takes one lock (the scope's) and commits the row change with its
`delivery_stopped` / `delivery_resumed` audit row, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hitl_compliance.stops import (
    DELIVERY_RESUMED,
    DELIVERY_STOPPED,
    STOP_THREAD,
    StopScope,
    StopSwitch,
)
from hitl_compliance.stores._sql import Dialect, Row, dumps
from hitl_compliance.stores._sqlerasure import ErasureWrites
from hitl_compliance.stores._sqlwrites import Tx, _Audit

__all__ = ["StopWrites", "stop_tables"]


def stop_tables(d: Dialect, p: str) -> list[str]:
    """The stops in force: one row per stopped scope. `IF NOT EXISTS`: safe after any step."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}delivery_stops (
            scope TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            stopped_by TEXT NOT NULL,
            stopped_at {d.types.time} NOT NULL
        )""",
    ]


@dataclass(frozen=True, slots=True)
class _Statements:
    stop: str
    stops: str
    insert: str
    delete: str

    @classmethod
    def of(cls, d: Dialect, p: str) -> _Statements:
        table = f"{p}delivery_stops"
        columns = "scope, reason, stopped_by, stopped_at"
        return cls(
            stop=d.sql(f"SELECT {columns} FROM {table} WHERE scope = ?"),
            stops=d.sql(f"SELECT {columns} FROM {table} ORDER BY stopped_at, scope"),
            insert=d.sql(
                f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope) DO NOTHING"
            ),
            delete=d.sql(f"DELETE FROM {table} WHERE scope = ?"),
        )


class StopWrites(ErasureWrites):
    """`ErasureWrites` plus the stop switch (see the module docstring)."""

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        self._stop_sql = _Statements.of(self.dialect, self.table_prefix)

    def _stop(self, row: Row) -> StopSwitch:
        return StopSwitch(
            scope=StopScope.parse(str(row["scope"])),
            by=str(row["stopped_by"]),
            reason=str(row["reason"]),
            since=self.dialect.read_time(row["stopped_at"]),
        )

    async def stop_delivery(
        self, scope: StopScope, *, reason: str, by: str, now: datetime
    ) -> StopSwitch:
        """Switch the stop on, with its `delivery_stopped` audit row (see the protocol)."""
        at = self.dialect.time(now)
        s = self._stop_sql
        payload = dumps({"scope": scope.key, "reason": reason})
        row = _Audit(STOP_THREAD, None, None, DELIVERY_STOPPED, by, payload, now)

        async def stop(tx: Tx) -> StopSwitch:
            existing = await tx.one(s.stop, (scope.key,))
            if existing is not None:
                return self._stop(existing)
            await tx.run(s.insert, (scope.key, reason, by, at))
            await self._append(tx, row)
            return StopSwitch(scope=scope, by=by, reason=reason, since=now)

        result = await self._transaction(stop, lock=STOP_THREAD)
        await self._after_write()
        return result

    async def resume_delivery(
        self, scope: StopScope, *, by: str, now: datetime
    ) -> StopSwitch | None:
        """Switch the stop off, with its `delivery_resumed` audit row (see the protocol)."""
        self.dialect.time(now)
        s = self._stop_sql

        async def resume(tx: Tx) -> StopSwitch | None:
            existing = await tx.one(s.stop, (scope.key,))
            if existing is None:
                return None
            stop = self._stop(existing)
            await tx.run(s.delete, (scope.key,))
            payload = dumps({"scope": scope.key, "reason": stop.reason, "stopped_by": stop.by})
            await self._append(
                tx, _Audit(STOP_THREAD, None, None, DELIVERY_RESUMED, by, payload, now)
            )
            return stop

        result = await self._transaction(resume, lock=STOP_THREAD)
        await self._after_write()
        return result

    async def delivery_stops(self) -> list[StopSwitch]:
        """Every stop in force, oldest first."""
        return [self._stop(r) for r in await self._fetch_all(self._stop_sql.stops, ())]
