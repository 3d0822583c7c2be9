"""Input limits on every backend: past them nothing is written; under a raised one, it all is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langgraph.types import Command

from hitl_compliance import (
    HitlCoordinator,
    InputLimits,
    InputTooLargeError,
    KeywordRule,
    build_compliance_graph,
)
from hitl_compliance.backends import Backend, open_backend

RISKY_DRAFT = "You should invest now: guaranteed returns of 8%."
SMALL = InputLimits(max_text_chars=1_000, max_metadata_bytes=1_000)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each backend kind: memory, a real SQLite file, the test Postgres schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest_asyncio.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    """The opened backend, with review tables of this test's own."""
    async with open_backend(url, table_prefix=f"l{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def coordinator(backend: Backend, limits: InputLimits, style: Any = "command_resume") -> Any:
    graph = build_compliance_graph(
        lambda state: RISKY_DRAFT,
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=backend.checkpointer,
        style=style,
    )
    return HitlCoordinator(graph, reviews=backend.reviews, limits=limits)


async def snapshot(coord: HitlCoordinator, thread_id: str) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was: checkpoint, reviews, audit rows, head."""
    state = await coord.graph.aget_state({"configurable": {"thread_id": thread_id}})
    return (
        state.config,
        await coord.pending(),
        await coord.reviews.audit_rows(),
        await coord.reviews.audit_head(),
    )


class TestPastTheLimit:
    async def test_a_long_message_writes_nothing(self, backend: Backend) -> None:
        """A turn past the limit leaves no checkpoint, no review and no audit row."""
        coord = coordinator(backend, SMALL)
        thread = f"t-{uuid.uuid4().hex}"
        before = await snapshot(coord, thread)
        with pytest.raises(InputTooLargeError, match="message"):
            await coord.process(thread, "x" * 1_001)
        with pytest.raises(InputTooLargeError, match="metadata"):
            await coord.process(thread, "hi", metadata={"k": "x" * 1_001})
        assert await snapshot(coord, thread) == before
        assert await coord.reviews.audit_rows() == []

    @pytest.mark.parametrize(
        ("call", "kwargs"),
        [
            ("approve", {"response": "x" * 1_001}),
            ("approve", {"metadata": {"k": "x" * 1_001}}),
            ("reject", {"reason": "x" * 1_001}),
        ],
    )
    async def test_a_large_decision_writes_nothing(
        self, backend: Backend, call: str, kwargs: dict[str, Any]
    ) -> None:
        """A decision past the limit changes no checkpoint, review or audit row."""
        coord = coordinator(backend, SMALL)
        thread = f"t-{uuid.uuid4().hex}"
        assert (await coord.process(thread, "Should I buy?")).status == "paused"
        before = await snapshot(coord, thread)
        with pytest.raises(InputTooLargeError):
            await getattr(coord, call)(thread, reviewer="officer", **kwargs)
        assert await snapshot(coord, thread) == before
        assert (await coord.approve(thread, reviewer="officer")).status == "completed"

    async def test_a_large_raw_resume_is_refused_unclaimed(self, backend: Backend) -> None:
        """A `Command(resume=...)` past the limit is answered at the pause; nothing is claimed."""
        coord = coordinator(backend, SMALL)
        thread = f"t-{uuid.uuid4().hex}"
        await coord.process(thread, "Should I buy?")
        rows = await coord.reviews.audit_rows()
        resume = {
            "approved": True,
            "reviewer": "officer",
            "response": "x" * 1_001,
            "decided_at": "2026-12-02T12:00:00Z",
        }
        config = {"configurable": {"thread_id": thread}}
        out = await coord.graph.ainvoke(Command(resume=resume), config)
        assert "over the limit" in out["__interrupt__"][0].value["refused"]
        assert [p.thread_id for p in await coord.pending()] == [thread]
        assert await coord.reviews.audit_rows() == rows


class TestUnderARaisedLimit:
    async def test_a_two_megabyte_edit_is_delivered_and_recorded(self, backend: Backend) -> None:
        """With the limit raised, a 2 MB edit is delivered, hashed and audited as given."""
        coord = coordinator(backend, InputLimits(max_text_chars=3_000_000), "interrupt_before")
        thread = f"t-{uuid.uuid4().hex}"
        await coord.process(thread, "Should I buy?")
        edit = ("Capital at risk; past performance is no guide. " * 43_000)[:2_000_000]
        result = await coord.approve(thread, reviewer="officer", response=edit)
        assert result.agent_response == edit
        assert (await coord.verify_audit(thread)).ok
