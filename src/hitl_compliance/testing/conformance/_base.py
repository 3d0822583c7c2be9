"""The fixtures every conformance mixin runs on: `review_store` and `review_store_pair`.

Each capability mixin derives from
[`ConformanceBase`][hitl_compliance.testing.conformance.ConformanceBase], so a
mixin subclassed alone asks for the same fixtures, with the same message when
one is missing, as the composed
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance].
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hitl_compliance.stores import ReviewStore

__all__ = ["ConformanceBase"]


class ConformanceBase:
    """The `review_store` fixture to override, a default `review_store_pair`, the asyncio mark.

    `review_store` must yield a store whose `setup()` has run on empty tables
    and close it afterwards. `review_store_pair` defaults to the same store
    twice; override it to yield two instances sharing one database, so the
    exactly-once races also run across instances (processes, in production).
    """

    # Set once here: pytest reads `pytestmark` from each class's own namespace, so the
    # mixins inherit one asyncio mark and the tests run in strict and auto modes alike.
    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def review_store(self) -> AsyncIterator[ReviewStore]:
        """Override: a set-up store on empty tables, closed after the test."""
        pytest.fail(
            f"{type(self).__name__} must provide a `review_store` fixture: a set-up "
            "ReviewStore on empty tables (see hitl_compliance.testing.conformance)"
        )
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def review_store_pair(
        self, review_store: ReviewStore
    ) -> AsyncIterator[tuple[ReviewStore, ReviewStore]]:
        """Override: two store instances on the same data; by default the same store twice."""
        yield review_store, review_store
