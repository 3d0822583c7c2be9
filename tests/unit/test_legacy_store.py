"""Review stores written against an earlier `ReviewStore` protocol keep working, with a warning."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    build_compliance_graph,
)
from hitl_compliance.stores._legacy import OneOpenReview, is_legacy, wrap_legacy


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
