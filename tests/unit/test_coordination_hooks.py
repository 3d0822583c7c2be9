"""Unit tests of `_coordination.hooks`: leased hook calls, and who configured a store's hooks."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, cast

import pytest

from hitl_compliance import DecidedEvent, Hooks, InMemoryReviewStore, PausedEvent, ReviewEvent
from hitl_compliance._coordination import hooks, turns
from hitl_compliance._coordination.context import Context
from hitl_compliance._coordination.decisions import reject
from hitl_compliance.stores import ReviewStore
from tests.helpers import RISKY
from tests.unit.conftest import ContextFactory


class RecordingStore:
    """Only what registration calls: `configure_hooks`, recorded, and no `configured_hooks`."""

    def __init__(self) -> None:
        self.configured: list[frozenset[str]] = []

    def configure_hooks(self, names: frozenset[str]) -> None:
        self.configured.append(names)


class TestRegisterHooks:
    """The store owns its hook configuration; registration reads it to warn."""

    def test_configures_the_store(self) -> None:
        """register_hooks() tells the store its hooks; ours then report them."""
        reviews = InMemoryReviewStore()
        assert reviews.configured_hooks == frozenset()
        assert hooks.register_hooks(reviews, frozenset({"on_paused"})) == frozenset()
        assert reviews.configured_hooks == frozenset({"on_paused"})

    def test_dropping_hooks_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        """A later registration that drops an earlier one's hooks warns and says which."""
        reviews = InMemoryReviewStore()
        hooks.register_hooks(reviews, frozenset({"on_paused"}))
        hooks.register_hooks(reviews, frozenset({"on_paused", "on_decided"}))
        assert caplog.text == ""  # a superset drops nothing
        dropped = hooks.register_hooks(reviews, frozenset())
        assert dropped == frozenset({"on_paused", "on_decided"})
        assert "stops outbox rows for hooks ['on_decided', 'on_paused']" in caplog.text

    def test_stores_are_separate(self, caplog: pytest.LogCaptureFixture) -> None:
        """Another store instance compares with nothing it was not configured with."""
        a, b = InMemoryReviewStore(), InMemoryReviewStore()
        hooks.register_hooks(a, frozenset({"on_paused"}))
        hooks.register_hooks(b, frozenset())
        assert caplog.text == ""
        assert a.configured_hooks == frozenset({"on_paused"})

    def test_store_without_configured_hooks(self, caplog: pytest.LogCaptureFixture) -> None:
        """A third-party store without `configured_hooks` is configured, with nothing to compare."""
        reviews = RecordingStore()
        hooks.register_hooks(cast(ReviewStore, reviews), frozenset({"on_paused"}))
        hooks.register_hooks(cast(ReviewStore, reviews), frozenset())
        assert reviews.configured == [frozenset({"on_paused"}), frozenset()]
        assert caplog.text == ""


class TestDispatch:
    async def test_without_hooks_no_store_call(
        self, ctx: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An application without hooks pays no store call for dispatching."""

        async def refuse(**kwargs: Any) -> Any:
            raise AssertionError("claimed hooks")

        monkeypatch.setattr(ctx.reviews, "claim_hooks", refuse)
        await hooks.dispatch(ctx, "t")

    async def test_calls_and_records(self, context_factory: ContextFactory) -> None:
        """Each owed call is made once with its event, and its row is then delivered."""
        calls: list[ReviewEvent] = []
        ctx = context_factory(hooks=Hooks(on_paused=calls.append, on_decided=calls.append))
        await turns.process(ctx, "t", RISKY, requested_by=None, fields={})
        await reject(ctx, "t", reviewer="bob", reason="no", metadata=None, expected=None)
        assert [type(e) for e in calls] == [PausedEvent, DecidedEvent]
        assert await ctx.reviews.pending_hooks() == []
        await hooks.dispatch(ctx, None)
        assert len(calls) == 2

    async def test_a_failed_call_is_kept_for_recover(
        self, context_factory: ContextFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged and its row marked failed, for recover() to retry."""

        def down(event: PausedEvent) -> None:
            raise ConnectionError("chat down")

        ctx = context_factory(hooks=Hooks(on_paused=down))
        await turns.process(ctx, "t", RISKY, requested_by=None, fields={})
        (row,) = await ctx.reviews.pending_hooks()
        assert (row.status, row.attempts) == ("failed", 1)
        assert "hook on_paused failed" in caplog.text


class TestUnderLease:
    async def test_renews_while_the_call_runs(
        self, context_factory: ContextFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A long async call renews its lease every third of it, and stops when it ends."""
        ctx = context_factory(lease=timedelta(milliseconds=30))
        renewals: list[str] = []

        async def renew(delivery_id: str, **kwargs: Any) -> bool:
            renewals.append(delivery_id)
            return True

        monkeypatch.setattr(ctx.reviews, "renew_hook", renew)
        await hooks.under_lease(ctx, asyncio.sleep(0.1), "d1", "me")
        seen = len(renewals)
        assert seen >= 2
        assert set(renewals) == {"d1"}
        await asyncio.sleep(0.05)
        assert len(renewals) == seen

    async def test_a_lost_lease_stops_renewing(
        self,
        context_factory: ContextFactory,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Once another caller holds the row, the renewer stops and says so."""
        ctx = context_factory(lease=timedelta(milliseconds=30))
        renewals: list[str] = []

        async def lost(delivery_id: str, **kwargs: Any) -> bool:
            renewals.append(delivery_id)
            return False

        monkeypatch.setattr(ctx.reviews, "renew_hook", lost)
        with caplog.at_level(logging.WARNING, logger="hitl_compliance"):
            await hooks.under_lease(ctx, asyncio.sleep(0.1), "d1", "me")
        assert renewals == ["d1"]
        assert "lost its lease" in caplog.text
