"""`InMemoryReviewStore`'s kept rows: lighter in memory, the same models to every reader."""

from __future__ import annotations

from datetime import datetime, timezone

from hitl_compliance import InMemoryReviewStore, ReviewRecord, RuleResult

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def review(n: int) -> ReviewRecord:
    return ReviewRecord(
        review_id=f"r{n}",
        thread_id=f"t{n}",
        checkpoint_id=f"c{n}",
        status="pending",
        customer_message="q",
        draft_response="guaranteed returns",
        violations=[RuleResult("guarantee", "review", "promises returns")],
        requested_at=NOW,
    )


class TestSharedFieldSets:
    async def test_rows_share_one_field_set_with_the_same_names(self) -> None:
        """Two paused reviews and their audit rows keep one fields-set object per shape."""
        store = InMemoryReviewStore()
        first = await store.open_review(review(1), owner=None)
        second = await store.open_review(review(2), owner=None)
        assert first.model_fields_set is second.model_fields_set
        assert first.model_fields_set == review(1).model_fields_set
        kept = store._audit  # as kept: audit_log() returns copies with personal values shown
        assert kept[0].model_fields_set is kept[1].model_fields_set

    async def test_a_copy_leaves_the_shared_set_unchanged(self) -> None:
        """Updating a copy of a kept row adds its names to the copy's set, not the shared one."""
        store = InMemoryReviewStore()
        first = await store.open_review(review(1), owner=None)
        second = await store.open_review(review(2), owner=None)
        before = set(second.model_fields_set)
        copied = first.model_copy(update={"priority": 3})
        assert "priority" in copied.model_fields_set
        assert second.model_fields_set == before
        assert "priority" not in first.model_fields_set
