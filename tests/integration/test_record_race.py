"""A coordinator's decision finished by a racing raw resume is still the coordinator's win.

In the scale-out proof a raw `Command(resume=...)` on a thread can run the
graph's `deliver` step from a checkpoint that already holds the coordinator's
claimed decision; the graph's authority then records that outcome under the
coordinator's claim before the coordinator's own `record()` does. These tests
replay that interleaving deterministically on every backend: the raw resume
runs inside the coordinator's resume step, after the claim. The coordinator
must report the outcome it won (one audit row, no second), while a review
completed under another claim (recover() took the claim over) is still lost.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langgraph.types import Command

from hitl_compliance import AlreadyDecidedError, HitlCoordinator
from hitl_compliance._coordination import decisions
from hitl_compliance._coordination.context import Context, Position
from hitl_compliance.backends import open_backend
from hitl_compliance.models import ReviewRecord
from hitl_compliance.state import Decision
from tests.integration.worker import RISKY, make_graph

Resume = Callable[[Context, ReviewRecord, Decision], Awaitable[Position]]


@dataclass
class Race:
    """A paused thread, its coordinator, and the graph a raw resume drives."""

    coord: HitlCoordinator
    graph: Any
    thread: str

    @property
    def config(self) -> Any:
        return {"configurable": {"thread_id": self.thread}}

    async def decided(self) -> list[tuple[str, str, bool]]:
        """The thread's outcome rows: (event, actor, recorded inside the graph)."""
        rows = await self.coord.audit_log(self.thread)
        return [
            (r.event, r.actor, r.payload.get("via") == "graph")
            for r in rows
            if r.event in ("approved", "rejected")
        ]

    def raw_first(self, before: Callable[[ReviewRecord], Awaitable[None]] | None = None) -> Resume:
        """A resume step that lets a raw resume deliver the claimed decision first.

        The raw resume sends the claimed decision itself, as a resume that reads
        the checkpoint holding it would; the graph's authority records the
        outcome under the claim the review holds then. The coordinator's step
        then finds the graph at that outcome (`drive`), as its own resume would.
        """

        async def step(ctx: Context, review: ReviewRecord, made: Decision) -> Position:
            if before is not None:
                await before(review)
            await self.graph.ainvoke(Command(resume=made.to_state()), self.config)
            return await decisions.drive(ctx, review, made)

        return step


@pytest_asyncio.fixture
async def race(backend_url: str, tmp_path: Path) -> AsyncIterator[Race]:
    """A thread paused by its coordinator, whose graph has the in-graph authority attached."""
    async with open_backend(backend_url) as backend:
        graph = make_graph(backend.checkpointer, "command_resume", tmp_path / "drafts")
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        thread = f"race-{uuid.uuid4().hex}"
        paused = await coord.process(thread, "Should I buy?")
        assert paused.status == "paused"
        yield Race(coord, graph, thread)


class TestRecordAfterTheGraphRecorded:
    async def test_approval_finished_by_a_raw_resume_is_won(
        self, race: Race, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """approve() returns the outcome the graph recorded under its claim; one row, no second."""
        monkeypatch.setattr(decisions, "resume", race.raw_first())
        out = await race.coord.approve(race.thread, reviewer="officer@bank")
        assert (out.status, out.reviewer, out.agent_response) == (
            "completed",
            "officer@bank",
            RISKY,
        )
        assert await race.decided() == [("approved", "officer@bank", True)]
        assert race.thread not in {p.thread_id for p in await race.coord.pending()}
        assert (await race.coord.verify_audit()).ok

    async def test_rejection_finished_by_a_raw_resume_is_won(
        self, race: Race, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """reject() likewise returns its outcome when the graph recorded it first."""
        monkeypatch.setattr(decisions, "resume", race.raw_first())
        out = await race.coord.reject(race.thread, reviewer="officer@bank", reason="no")
        assert (out.status, out.reviewer) == ("rejected", "officer@bank")
        assert await race.decided() == [("rejected", "officer@bank", True)]

    async def test_completed_under_another_claim_is_lost(
        self, race: Race, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A review whose claim was taken over and completed under the new one still raises."""
        store = race.coord.reviews

        async def take_over(review: ReviewRecord) -> None:
            assert review.claim_id is not None
            assert await store.take_over_claim(
                review.review_id,
                old_claim_id=review.claim_id,
                new_claim_id=uuid.uuid4().hex,
                now=review.claimed_at or review.requested_at,
            )

        monkeypatch.setattr(decisions, "resume", race.raw_first(take_over))
        with pytest.raises(AlreadyDecidedError) as info:
            await race.coord.approve(race.thread, reviewer="officer@bank")
        assert info.value.status == "approved"
        assert await race.decided() == [("approved", "officer@bank", True)]
        assert (await race.coord.verify_audit()).ok
