"""Input no store could keep (NUL characters, lone surrogates, NaN) is refused up front.

PostgreSQL refuses NUL in text and jsonb and NaN in jsonb, and no backend can
encode a lone surrogate: without these checks such input failed deep in a
store, after the graph had moved. Each refusal is a typed error and changes
nothing: the review stays pending, the audit log and checkpoints are as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from hitl_compliance import (
    DraftError,
    HitlCoordinator,
    InvalidDecisionError,
    InvalidInputError,
)
from tests.conftest import CoordinatorFactory
from tests.helpers import RISKY, ScriptedDrafter

BAD_TEXT = ["nul\x00inside", "lone \ud800 surrogate"]


async def paused(coord: HitlCoordinator) -> None:
    assert (await coord.process("t1", RISKY)).status == "paused"


async def assert_unchanged(coord: HitlCoordinator) -> None:
    """Still pending, audited only as paused, and approvable."""
    [review] = await coord.pending()
    assert review.thread_id == "t1"
    assert [r.event for r in await coord.audit_log("t1")] == ["paused"]
    assert (await coord.approve("t1", reviewer="alice")).status == "completed"


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_edited_response_is_refused(coord: HitlCoordinator, text: str) -> None:
    await paused(coord)
    with pytest.raises(InvalidDecisionError, match="response"):
        await coord.approve("t1", reviewer="alice", response=text)
    await assert_unchanged(coord)


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_rejection_reason_is_refused(coord: HitlCoordinator, text: str) -> None:
    await paused(coord)
    with pytest.raises(InvalidDecisionError, match="reason"):
        await coord.reject("t1", reviewer="alice", reason=text)
    await assert_unchanged(coord)


@pytest.mark.parametrize(
    "metadata",
    [
        {"ticket": "C-1\x00"},
        {"nul\x00key": 1},
        {"nested": [{"deep": "\ud800"}]},
        {"score": float("nan")},
        {"score": float("inf")},
    ],
)
async def test_decision_metadata_is_refused(
    coord: HitlCoordinator, metadata: dict[str, Any]
) -> None:
    await paused(coord)
    with pytest.raises(InvalidDecisionError, match="metadata"):
        await coord.approve("t1", reviewer="alice", metadata=metadata)
    await assert_unchanged(coord)


async def test_reviewer_id_with_nul_is_refused(coord: HitlCoordinator) -> None:
    await paused(coord)
    with pytest.raises(InvalidInputError):
        await coord.approve("t1", reviewer="ali\x00ce")
    await assert_unchanged(coord)


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_message_and_requester_are_refused_before_the_drafter_runs(
    coord: HitlCoordinator, drafter: ScriptedDrafter, text: str
) -> None:
    with pytest.raises(InvalidInputError, match="message"):
        await coord.process("t1", text)
    with pytest.raises(InvalidInputError, match="requested_by"):
        await coord.process("t1", RISKY, requested_by=text)
    assert drafter.calls == []
    assert (await coord.graph.aget_state({"configurable": {"thread_id": "t1"}})).values == {}
    await paused(coord)  # the thread was never taken


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_thread_ids_and_rule_filters_are_refused(coord: HitlCoordinator, text: str) -> None:
    with pytest.raises(InvalidInputError, match="thread_id"):
        await coord.process(text, RISKY)
    with pytest.raises(InvalidInputError, match="thread_id"):
        await coord.audit_log(text)
    with pytest.raises(InvalidInputError, match="rule"):
        await coord.pending(rule=text)


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_a_draft_no_store_could_keep_fails_before_the_pause(
    make_coordinator: CoordinatorFactory, text: str
) -> None:
    """A drafter replying with NUL raises DraftError; the thread is free, nothing is pending."""
    replies = iter([f"Guaranteed returns {text}", "Our fund offers guaranteed returns."])
    coord = make_coordinator(draft=lambda state: next(replies))
    with pytest.raises(DraftError, match="drafter's reply"):
        await coord.process("t1", RISKY)
    assert await coord.pending() == []
    assert (await coord.process("t1", RISKY)).status == "paused"
