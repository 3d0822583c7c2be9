"""Unit tests of `_coordination.context`: the shared configuration and how a run is read."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from hitl_compliance import ConfigurationError, InvalidInputError
from hitl_compliance._coordination.context import (
    PAUSED,
    Context,
    Position,
    check_thread_id,
    checkpoint_config,
    checkpoint_id,
    config_for,
    paused_result,
    position,
    result,
    run,
)
from hitl_compliance.models import ReviewRecord
from tests.helpers import CLEAN, RISKY, SCRIPT, FakeClock
from tests.unit.conftest import ContextFactory


def values(message: str) -> dict[str, Any]:
    return {"customer_message": message, "requested_by": None}


class TestContext:
    def test_frozen(self, ctx: Context) -> None:
        """No concern can re-point the shared store (the context is frozen)."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            ctx.reviews = ctx.reviews  # type: ignore[misc]

    def test_now_is_the_clock(self, ctx: Context, clock: FakeClock) -> None:
        """now() returns the injected clock's time."""
        assert ctx.now() == clock.now

    def test_naive_clock_refused(self, context_factory: ContextFactory) -> None:
        """A clock returning naive datetimes is a configuration error at first use."""
        ctx = dataclasses.replace(context_factory(), clock=lambda: datetime(2025, 1, 1))
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            ctx.now()

    def test_state_uses_the_schema(self, ctx: Context) -> None:
        """state() validates values with the graph's state schema, ignoring extras."""
        state = ctx.state({**values(CLEAN), "__interrupt__": ()})
        assert isinstance(state, ctx.spec.state_schema)
        assert state.customer_message == CLEAN


class TestRun:
    async def test_paused_run(self, ctx: Context) -> None:
        """A risky turn's run stops at the pause, at the checkpoint the snapshot shows."""
        pos = await run(ctx, values(RISKY), "t")
        assert pos is not None
        assert pos.paused
        snap = await ctx.graph.aget_state(config_for("t"))
        assert (tuple(snap.next), pos.checkpoint_id) == (PAUSED, checkpoint_id(snap))
        assert pos.state.draft_response == SCRIPT[RISKY]

    async def test_finished_run(self, ctx: Context) -> None:
        """A clean turn's run ends past the pause, delivered."""
        pos = await run(ctx, values(CLEAN), "t")
        assert pos is not None
        assert not pos.paused
        assert pos.state.agent_response == SCRIPT[CLEAN]

    async def test_no_stream_means_none(
        self, ctx: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A wrapper that drops the checkpoint stream gives None: the caller reads back."""
        original = ctx.graph.ainvoke

        async def plain(value: Any, config: Any = None, **kwargs: Any) -> Any:
            return await original(value, config)

        monkeypatch.setattr(ctx.graph, "ainvoke", plain)
        assert await run(ctx, values(RISKY), "t") is None
        assert (await position(ctx, "t")).paused


class TestPosition:
    async def test_given_position_reads_nothing(
        self, ctx: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """position() returns the run's own position without a checkpoint read."""
        pos = await run(ctx, values(RISKY), "t")
        assert pos is not None

        async def no_read(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("read a checkpoint back")

        monkeypatch.setattr(ctx.graph, "aget_state", no_read)
        assert await position(ctx, "t", pos) is pos

    async def test_snapshot_when_not_given(self, ctx: Context) -> None:
        """Without a position, the thread's snapshot says where it stands."""
        pos = await run(ctx, values(RISKY), "t")
        assert await position(ctx, "t") == pos


class TestResults:
    async def test_statuses(self, ctx: Context) -> None:
        """A position maps to paused, completed, or rejected (non-compliant) results."""
        paused = await run(ctx, values(RISKY), "a")
        done = await run(ctx, values(CLEAN), "b")
        assert paused is not None
        assert done is not None
        assert result("a", paused).status == "paused"
        assert result("a", paused).agent_response is None
        assert result("b", done, reviewer="x").status == "completed"
        blocked = Position(done.state.model_copy(update={"is_compliant": False}), False, "c")
        assert result("b", blocked).status == "rejected"

    def test_paused_result_is_the_row(self, clock: FakeClock) -> None:
        """A review still waiting is described from its row, with the quorum given."""
        review = ReviewRecord(
            review_id="r",
            thread_id="t",
            checkpoint_id="c",
            status="pending",
            customer_message="q",
            draft_response="d",
            violations=[],
            requested_at=clock.now,
        )
        out = paused_result(review, 2)
        assert (out.status, out.review_id, out.approvals_required) == ("paused", "r", 2)
        assert checkpoint_config(review)["configurable"] == {
            "thread_id": "t",
            "checkpoint_ns": "",
            "checkpoint_id": "c",
        }


def test_thread_id_checked() -> None:
    """An empty thread id is refused before any store or checkpointer sees it."""
    with pytest.raises(InvalidInputError):
        check_thread_id("")
