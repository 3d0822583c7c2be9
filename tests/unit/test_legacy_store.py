"""Review stores written against an earlier `ReviewStore` protocol keep working, with a warning."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    attach_authority,
    build_compliance_graph,
    compliance_gate,
)
from hitl_compliance.stores._legacy import NoUndated, OneOpenReview, is_legacy, wrap_legacy
from hitl_compliance.testing import FakeClock


class OneReviewStore(InMemoryReviewStore):
    """A store from before several open reviews per thread: no `open_reviews`."""

    open_reviews: Any = None


class TestOneOpenReview:
    def test_a_store_without_open_reviews_is_legacy(self) -> None:
        """Missing only `open_reviews` marks a store for the deprecation path."""
        assert is_legacy(OneReviewStore())
        assert not is_legacy(InMemoryReviewStore())

    async def test_wrapped_store_reads_open_reviews_from_get_review(self) -> None:
        """`open_reviews` is the latest review while it is open, with a DeprecationWarning."""
        with pytest.warns(DeprecationWarning, match="open_reviews"):
            store = wrap_legacy(OneReviewStore())
        assert isinstance(store, OneOpenReview)
        assert await store.open_reviews("t") == []

    async def test_coordinator_decides_on_a_legacy_store(self) -> None:
        """HitlCoordinator wraps such a store and pauses, lists and decides as before."""
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            checkpointer=InMemorySaver(),
            rules=[KeywordRule("guarantee", ["guaranteed"])],
        )
        with pytest.warns(DeprecationWarning, match="open_reviews"):
            coord = HitlCoordinator(graph, reviews=OneReviewStore())
        paused = await coord.process("t", "hi")
        assert paused.status == "paused"
        [review] = await coord.reviews.open_reviews("t")
        assert review.review_id == paused.review_id
        assert (await coord.review("t")).review_id == paused.review_id
        done = await coord.approve("t", reviewer="officer@bank")
        assert done.status == "completed"
        assert await coord.reviews.open_reviews("t") == []


class UndatedlessStore(InMemoryReviewStore):
    """A store from before the SLA dated reviews: no `list_undated` / `set_deadline`."""

    list_undated: Any = None
    set_deadline: Any = None


class TestNoUndated:
    def test_a_store_without_the_undated_methods_is_legacy(self) -> None:
        """Missing only `list_undated` / `set_deadline` marks a store for the deprecation path."""
        assert is_legacy(UndatedlessStore())

    async def test_wrapped_store_lists_no_undated_review(self) -> None:
        """The wrapper lists none and dates none, with a DeprecationWarning naming the methods."""
        with pytest.warns(DeprecationWarning, match="list_undated"):
            store = wrap_legacy(UndatedlessStore())
        assert isinstance(store, NoUndated)
        assert await store.list_undated() == []
        assert await store.set_deadline("r", deadline=datetime.now(timezone.utc)) is False

    async def test_coordinator_sweeps_on_a_legacy_store(self) -> None:
        """An SLA coordinator on such a store sweeps as before: its own reviews expire."""
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            checkpointer=InMemorySaver(),
            rules=[KeywordRule("guarantee", ["guaranteed"])],
        )
        clock = FakeClock()
        with pytest.warns(DeprecationWarning, match="set_deadline"):
            coord = HitlCoordinator(
                graph, reviews=UndatedlessStore(), sla=timedelta(minutes=1), clock=clock
            )
        assert (await coord.process("t", "hi")).status == "paused"
        clock.advance(minutes=2)
        [expired] = await coord.expire_overdue()
        assert expired.status == "rejected"
        assert await coord.recover() == []


class TestGateOnALegacyStore:
    def test_gate_and_attach_authority_wrap_a_legacy_store(self) -> None:
        """compliance_gate(reviews=) and attach_authority take such a store, with the warning."""
        with pytest.warns(DeprecationWarning, match="list_undated"):
            gate = compliance_gate(
                [KeywordRule("guarantee", ["guaranteed"])], reviews=UndatedlessStore()
            )
        graph = build_compliance_graph(
            lambda state: "guaranteed returns",
            checkpointer=InMemorySaver(),
            rules=[KeywordRule("guarantee", ["guaranteed"])],
        )
        with pytest.warns(DeprecationWarning, match="list_undated"):
            assert attach_authority(graph, reviews=UndatedlessStore()) is graph
        assert gate is not None
