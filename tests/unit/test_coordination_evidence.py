"""Unit tests of `_coordination.evidence`: the audit log, its verification and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitl_compliance import InvalidInputError, ReviewNotFoundError
from hitl_compliance._coordination import decisions, evidence, turns
from hitl_compliance._coordination.context import Context
from hitl_compliance.ledger import verify_rows
from tests.helpers import RISKY, SCRIPT

EDIT = "Please speak to an adviser first."


async def decided(ctx: Context, thread_id: str = "t") -> None:
    await turns.process(ctx, thread_id, RISKY, requested_by=None, fields={})
    await decisions.approve(
        ctx, thread_id, reviewer="alice", response=EDIT, metadata=None, expected=None
    )


class TestAuditLog:
    async def test_oldest_first(self, ctx: Context) -> None:
        """The thread's records come oldest first: the pause, then the decision."""
        await decided(ctx)
        assert [r.event for r in await evidence.audit_log(ctx, "t")] == ["paused", "approved"]

    async def test_verify(self, ctx: Context) -> None:
        """An untouched ledger verifies, per thread and store-wide against its head."""
        await decided(ctx, "a")
        await decided(ctx, "b")
        whole = await evidence.verify_audit(ctx, None)
        one = await evidence.verify_audit(ctx, "a")
        assert (whole.ok, whole.checked, one.ok, one.checked) == (True, 4, True, 2)

    async def test_verify_checks_the_thread_id(self, ctx: Context) -> None:
        """An invalid thread id is refused before the store is read."""
        with pytest.raises(InvalidInputError):
            await evidence.verify_audit(ctx, "")


class TestExport:
    async def test_rows_then_head(self, ctx: Context, tmp_path: Path) -> None:
        """A whole-store export is every row then the head, and verifies offline."""
        await decided(ctx)
        target = tmp_path / "ledger.jsonl"
        assert await evidence.export_audit(ctx, target, thread_id=None) == 2
        lines = [json.loads(line) for line in target.read_text().splitlines()]
        assert [line["type"] for line in lines] == ["row", "row", "head"]
        rows = [{k: v for k, v in line.items() if k != "type"} for line in lines[:-1]]
        head = (lines[-1]["seq"], lines[-1]["hash"])
        assert verify_rows(rows, head=head).ok

    async def test_one_thread_has_no_head(self, ctx: Context, tmp_path: Path) -> None:
        """A thread's export holds its rows only (a head covers the whole store)."""
        await decided(ctx, "a")
        await decided(ctx, "b")
        target = tmp_path / "a.jsonl"
        assert await evidence.export_audit(ctx, target, thread_id="a") == 2
        types = [json.loads(line)["type"] for line in target.read_text().splitlines()]
        assert types == ["row", "row"]


class TestStateAtDecision:
    async def test_the_paused_state(self, ctx: Context) -> None:
        """The decided review's paused checkpoint is read back by id, with the original draft."""
        await decided(ctx)
        state = await evidence.state_at_decision(ctx, "t")
        assert (state.draft_response, state.agent_response) == (SCRIPT[RISKY], None)

    async def test_never_paused(self, ctx: Context) -> None:
        """A thread without a review has no decided state."""
        with pytest.raises(ReviewNotFoundError):
            await evidence.state_at_decision(ctx, "t")
