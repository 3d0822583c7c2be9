"""The driver-independent SQL store methods (`stores._sqlstore.SqlStoreBase`): one trip each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from hitl_compliance.models import HookDelivery
from hitl_compliance.stores import _sql
from hitl_compliance.stores._sql import Row
from hitl_compliance.stores._sqlstore import SqlStoreBase
from tests.unit.test_sql_layer import T0, TEXT, as_row, review, text_time


class RecordingStore(SqlStoreBase):
    """A backend whose primitives record each statement and answer from canned rows."""

    dialect = TEXT

    def __init__(self, rows: Sequence[Row] = (), changed: int = 1) -> None:
        super().__init__(table_prefix="h_")
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.rows = list(rows)
        self.changed = changed
        self.leases: list[tuple[str, list[Any], str, Any]] = []

    async def _fetch_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        self.calls.append(("all", sql, tuple(params)))
        return self.rows

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> Row | None:
        self.calls.append(("one", sql, tuple(params)))
        return self.rows[0] if self.rows else None

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        self.calls.append(("execute", sql, tuple(params)))
        return self.changed

    async def _lease(
        self, pick: str, params: list[Any], *, owner: str, until: Any
    ) -> list[HookDelivery]:
        self.leases.append((pick, params, owner, until))
        return []


class TestReads:
    async def test_get_review_maps_the_latest_row(self) -> None:
        """get_review reads the thread's latest row once and maps it to the record."""
        record = review()
        store = RecordingStore([as_row(TEXT, record)])
        assert await store.get_review("t1") == record
        assert store.calls == [("one", store._sql.latest_review, ("t1",))]

    async def test_missing_review_is_none(self) -> None:
        """A thread without a review reads as None."""
        assert await RecordingStore().get_review("t1") is None

    async def test_list_pending_is_one_index_read(self) -> None:
        """list_pending runs the shared pending query once, with the dialect's parameters."""
        store = RecordingStore([as_row(TEXT, review())])
        assert [r.review_id for r in await store.list_pending(limit=None)] == ["r1"]
        ((kind, sql, params),) = store.calls
        assert (kind, params[-1]) == ("all", -1)
        assert "status = 'pending'" in sql

    async def test_limit_checked_before_any_trip(self) -> None:
        """A negative limit is refused before the database is asked anything."""
        store = RecordingStore()
        with pytest.raises(ValueError, match="limit"):
            await store.list_overdue(now=T0, limit=-1)
        assert store.calls == []

    async def test_audit_head_before_the_first_row(self) -> None:
        """The head row at seq 0 means no chain yet; a later head is (seq, hash)."""
        assert await RecordingStore([{"seq": 0, "hash": "0" * 64}]).audit_head() is None
        assert await RecordingStore([{"seq": 3, "hash": "ab"}]).audit_head() == (3, "ab")

    async def test_stale_turns_pass_the_dialect_time(self) -> None:
        """Times reach the driver as the dialect encodes them."""
        row = {"thread_id": "t", "owner": "o", "started_at": text_time(T0)}
        store = RecordingStore([row])
        (turn,) = await store.stale_turns(started_before=T0 + timedelta(hours=1))
        assert (turn.thread_id, turn.started_at) == ("t", T0)
        assert store.calls[0][2] == (text_time(T0 + timedelta(hours=1)),)


class TestConditionalWrites:
    async def test_take_over_reports_whether_a_row_moved(self) -> None:
        """take_over_turn / take_over_claim are True only when their one UPDATE changed a row."""
        moved, lost = RecordingStore(changed=1), RecordingStore(changed=0)
        assert await moved.take_over_claim("r1", old_claim_id="a", new_claim_id="b", now=T0)
        assert not await lost.take_over_turn("t", old_owner="a", new_owner="b", now=T0)
        assert [c[0] for c in moved.calls + lost.calls] == ["execute", "execute"]

    async def test_finish_hook_releases_the_lease_only_on_failure(self) -> None:
        """A failed attempt runs the statement that clears the lease; a delivery keeps it."""
        store = RecordingStore()
        await store.finish_hook("d", ok=True, error=None, now=T0, owner="o")
        await store.finish_hook("d", ok=False, error="boom", now=T0, owner="o")
        assert [c[1] for c in store.calls] == [
            store._sql.finish_delivered,
            store._sql.finish_failed,
        ]
        assert store.calls[1][2] == ("failed", "boom", text_time(T0), "d", "o")


class TestClaimHooks:
    async def test_no_hook_named_leases_nothing(self) -> None:
        """An empty hook set returns [] without a trip."""
        store = RecordingStore()
        assert await store.claim_hooks(owner="o", now=T0, lease_until=T0, hooks=frozenset()) == []
        assert store.leases == []

    async def test_arguments_checked_before_the_lease(self) -> None:
        """A naive lease end is refused even when nothing could be leased."""
        store = RecordingStore()
        naive = datetime(2026, 1, 1)
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.claim_hooks(owner="o", now=T0, lease_until=naive, hooks=frozenset())

    async def test_pick_goes_to_the_backend_lease(self) -> None:
        """The shared pick query and the encoded lease end reach the backend's lease once."""
        store = RecordingStore()
        until = T0 + timedelta(minutes=5)
        await store.claim_hooks(owner="o", now=T0, lease_until=until, limit=2)
        ((pick, params, owner, encoded),) = store.leases
        assert "h_hook_outbox" in pick
        assert (params[-1], owner, encoded) == (2, "o", text_time(until))


class TestLifecycle:
    async def test_context_manager_runs_setup_and_aclose(self) -> None:
        """`async with` sets the backend up and closes it, returning the store itself."""
        events: list[str] = []

        class Store(RecordingStore):
            async def setup(self) -> None:
                events.append("setup")

            async def aclose(self) -> None:
                events.append("aclose")

        async with Store() as store:
            assert isinstance(store, Store)
        assert events == ["setup", "aclose"]

    def test_names_follow_the_prefix(self) -> None:
        """The table names and the statements use the store's prefix."""
        store = RecordingStore()
        assert store._reviews == "h_reviews"
        assert "h_intents" in store._sql.end_turn
        assert _sql.Tables.of("h_") == store._tables
