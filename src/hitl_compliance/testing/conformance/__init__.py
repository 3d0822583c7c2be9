"""A conformance suite for review stores: subclass it to prove an adapter meets the protocol.

[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance]
holds the tests every [`ReviewStore`][hitl_compliance.stores.ReviewStore]
adapter must pass: turns, opening reviews, listing and filtering pending
reviews with a keyset cursor, exactly-once claims and quorum votes under
concurrency, completion, abandoned claims, deadlines and escalation, the hook
outbox and its leases, round-tripping of times and payloads, and the sealed audit ledger.
Our memory, SQLite and PostgreSQL stores run it in our own CI.

Subclass it in a test module (the name must start with `Test`) and provide
the `review_store` fixture: a freshly set-up store on empty tables, closed
afterwards. Override `review_store_pair` too when two instances of your
store can share one database, so the races also run across instances.

Example:
    ```python
    import pytest_asyncio
    from hitl_compliance.testing.conformance import ReviewStoreConformance

    class TestMyStore(ReviewStoreConformance):
        @pytest_asyncio.fixture
        async def review_store(self, tmp_path):
            store = MyReviewStore(tmp_path / "reviews.db")
            await store.setup()
            yield store
            await store.aclose()
    ```

The suite is composed of one mixin per capability, each in its own module of
this package, the way LangGraph's checkpoint conformance keeps one spec module
per capability. Subclass one mixin instead of the whole suite to run (and
see fail) only that capability, with the same fixtures:

* `_turns`: [`TurnConformance`][hitl_compliance.testing.conformance.TurnConformance],
  turns: begin, end, stale, take over.
* `_reviews`: [`ReviewConformance`][hitl_compliance.testing.conformance.ReviewConformance],
  open, list, claim, release, complete, abandoned claims.
* `_votes`: [`VoteConformance`][hitl_compliance.testing.conformance.VoteConformance],
  quorum votes, duplicates, the vote/reject race.
* `_sla`: [`SlaConformance`][hitl_compliance.testing.conformance.SlaConformance],
  deadlines, priorities, overdue lists, escalation.
* `_outbox`: [`OutboxConformance`][hitl_compliance.testing.conformance.OutboxConformance],
  the hook outbox and its leases.
* `_ledger`: [`LedgerConformance`][hitl_compliance.testing.conformance.LedgerConformance],
  the audit log and the sealed hash chain.
* `_seals`: [`SealConformance`][hitl_compliance.testing.conformance.SealConformance],
  signed chain heads (skipped for a store without `SealStore`).
* `_several`:
  [`SeveralReviewsConformance`][hitl_compliance.testing.conformance.SeveralReviewsConformance],
  several open reviews of one pause, decided one by one.
* `_inputs`: [`InputConformance`][hitl_compliance.testing.conformance.InputConformance],
  limits, naive datetimes, lossless round trips, setup.
* `_retention`:
  [`RetentionConformance`][hitl_compliance.testing.conformance.RetentionConformance],
  legal holds, documented pruning, kept evidence (skipped for a store without
  the [`RetentionStore`][hitl_compliance.RetentionStore] capability).
* `_qa`: [`QaConformance`][hitl_compliance.testing.conformance.QaConformance],
  second-line QA reviews: sampled once, judged once, counted per rule, apart
  from first-line reviews (skipped for a store without
  [`QaStore`][hitl_compliance.QaStore]).
* `_stops`: [`StopConformance`][hitl_compliance.testing.conformance.StopConformance],
  the stop switch, audited and shared (skipped for a store without the
  [`DeliveryStopStore`][hitl_compliance.DeliveryStopStore] capability).
* `_assignment`:
  [`AssignmentConformance`][hitl_compliance.testing.conformance.AssignmentConformance],
  assignment, reassignment, the assignee list, delegations (skipped for a
  store without the [`AssignmentStore`][hitl_compliance.AssignmentStore] capability).

Needs the `testing` extra (pytest and pytest-asyncio); the tests are marked
`asyncio`, so they run under pytest-asyncio's strict and auto modes alike.
"""

from __future__ import annotations

from hitl_compliance.testing.conformance._assignment import AssignmentConformance
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    DRAFT,
    IST,
    T0,
    assert_chain,
    at,
    cast_vote,
    claim,
    make_due,
    make_review,
    make_vote,
    rules,
)
from hitl_compliance.testing.conformance._inputs import InputConformance
from hitl_compliance.testing.conformance._ledger import LedgerConformance
from hitl_compliance.testing.conformance._outbox import OutboxConformance
from hitl_compliance.testing.conformance._qa import QaConformance
from hitl_compliance.testing.conformance._retention import RetentionConformance
from hitl_compliance.testing.conformance._reviews import ReviewConformance
from hitl_compliance.testing.conformance._seals import SealConformance
from hitl_compliance.testing.conformance._several import SeveralReviewsConformance
from hitl_compliance.testing.conformance._sla import SlaConformance
from hitl_compliance.testing.conformance._stops import StopConformance
from hitl_compliance.testing.conformance._turns import TurnConformance
from hitl_compliance.testing.conformance._votes import VoteConformance

__all__ = [
    "CAPABILITIES",
    "DRAFT",
    "IST",
    "T0",
    "AssignmentConformance",
    "ConformanceBase",
    "InputConformance",
    "LedgerConformance",
    "OutboxConformance",
    "QaConformance",
    "RetentionConformance",
    "ReviewConformance",
    "ReviewStoreConformance",
    "SealConformance",
    "SeveralReviewsConformance",
    "SlaConformance",
    "StopConformance",
    "TurnConformance",
    "VoteConformance",
    "assert_chain",
    "at",
    "cast_vote",
    "claim",
    "make_due",
    "make_review",
    "make_vote",
    "rules",
]


class ReviewStoreConformance(
    TurnConformance,
    ReviewConformance,
    VoteConformance,
    SlaConformance,
    OutboxConformance,
    LedgerConformance,
    SealConformance,
    SeveralReviewsConformance,
    InputConformance,
    RetentionConformance,
    QaConformance,
    StopConformance,
    AssignmentConformance,
):
    """The tests every `ReviewStore` adapter passes; subclass it and provide `review_store`.

    `review_store` must yield a store whose `setup()` has run on empty tables
    and close it afterwards. `review_store_pair` defaults to the same store
    twice; override it to yield two instances sharing one database, so the
    exactly-once races also run across instances (processes, in production).

    The class adds no test of its own: it is the union of the capability
    mixins in [`CAPABILITIES`][hitl_compliance.testing.conformance.CAPABILITIES].
    To find which capability a failing adapter breaks, subclass one mixin
    alone (with the same `review_store` fixture), for example:

    ```python
    class TestMyStoreVotes(VoteConformance):
        @pytest_asyncio.fixture
        async def review_store(self):
            ...
    ```
    """


CAPABILITIES: tuple[type[ConformanceBase], ...] = (
    TurnConformance,
    ReviewConformance,
    VoteConformance,
    SlaConformance,
    OutboxConformance,
    LedgerConformance,
    SealConformance,
    SeveralReviewsConformance,
    InputConformance,
    RetentionConformance,
    QaConformance,
    StopConformance,
    AssignmentConformance,
)
"""The capability mixins `ReviewStoreConformance` is composed of, in collection order."""
