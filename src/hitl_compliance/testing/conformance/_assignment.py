"""Assignment conformance: assign, reassign, list by assignee, delegate and revoke, audited.

Covers the [`AssignmentStore`][hitl_compliance.AssignmentStore] capability:
the routing at pause written once per review (`assigned`), a move naming the
previous assignee (`reassigned`), only pending reviews assigned, the
assignee list in `(requested_at, review_id)` order with the cursor and
cutoff, and delegations replaced and revoked with their rows. A store without
the capability skips these tests.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`AssignmentConformance`][hitl_compliance.testing.conformance.AssignmentConformance]
alone to run only this capability.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitl_compliance.assignment import DELEGATION_THREAD, AssignmentStore, Delegation
from hitl_compliance.ledger import verify_rows
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import at, claim, make_review

__all__ = ["AssignmentConformance"]


def _assigning(store: ReviewStore) -> AssignmentStore:
    if not isinstance(store, AssignmentStore):
        pytest.skip(f"{type(store).__name__} has no assignment capability (AssignmentStore)")
    return store


class AssignmentConformance(ConformanceBase):
    """Assignment and delegation, each change with its audit row."""

    @pytest.mark.asyncio
    async def test_initial_assignment_is_written_once(self, review_store: ReviewStore) -> None:
        """Routing a pause twice keeps the first assignment and writes one `assigned` row."""
        store = _assigning(review_store)
        review = await review_store.open_review(make_review(review_id="r1"), owner=None)
        first = await store.assign(
            "r1", to="queue:a", reason="why", by="sys", now=at(1), initial=True
        )
        again = await store.assign(
            "r1", to="bob", reason="other", by="sys", now=at(2), initial=True
        )
        assert first is not None
        assert (first.review_id, first.thread_id) == ("r1", review.thread_id)
        assert again == first
        rows = [r for r in await review_store.audit_log(review.thread_id) if r.event == "assigned"]
        assert [(r.review_id, r.actor, r.payload) for r in rows] == [
            ("r1", "sys", {"to": "queue:a", "reason": "why"})
        ]
        assert await store.assignments(["r1", "nope"]) == [first]

    @pytest.mark.asyncio
    async def test_reassignment_names_the_previous_assignee(
        self, review_store: ReviewStore
    ) -> None:
        """A move writes `reassigned` with `from`; a decided review is not assigned (None)."""
        store = _assigning(review_store)
        await review_store.open_review(make_review(review_id="r1"), owner=None)
        await store.assign("r1", to="ann", reason="first", by="sys", now=at(1), initial=True)
        moved = await store.assign(
            "r1", to="bob", reason="leave", by="lead", now=at(2), initial=False
        )
        assert moved is not None
        assert moved.assigned_to == "bob"
        last = (await review_store.audit_log("t1"))[-1]
        assert (last.event, last.actor, last.payload) == (
            "reassigned",
            "lead",
            {"to": "bob", "reason": "leave", "from": "ann"},
        )
        await claim(review_store, "t1")
        before = await review_store.audit_rows()
        assert (
            await store.assign("r1", to="cat", reason="x", by="lead", now=at(3), initial=False)
            is None
        )
        assert (
            await store.assign("zz", to="cat", reason="x", by="lead", now=at(3), initial=True)
            is None
        )
        assert await review_store.audit_rows() == before

    @pytest.mark.asyncio
    async def test_list_assigned_in_order_with_cursor_and_cutoff(
        self, review_store: ReviewStore
    ) -> None:
        """Pending reviews of the named assignees only, oldest first, paged like list_pending."""
        store = _assigning(review_store)
        for i, to in enumerate(["ann", "bob", "ann", "queue:q", "cat"]):
            await review_store.open_review(
                make_review(f"t{i}", review_id=f"r{i}", requested_at=at(i)), owner=None
            )
            await store.assign(f"r{i}", to=to, reason="r", by="sys", now=at(i), initial=True)
        got = await store.list_assigned(["ann", "queue:q"])
        assert [r.review_id for r in got] == ["r0", "r2", "r3"]
        page = await store.list_assigned(["ann", "queue:q"], limit=1, after=(at(0), "r0"))
        assert [r.review_id for r in page] == ["r2"]
        assert [
            r.review_id for r in await store.list_assigned(["ann"], requested_before=at(2))
        ] == ["r0"]
        await claim(review_store, "t0")
        assert [r.review_id for r in await store.list_assigned(["ann"])] == ["r2"]
        assert await store.list_assigned([]) == []

    @pytest.mark.asyncio
    async def test_delegations_replace_and_revoke_with_rows(
        self, review_store: ReviewStore
    ) -> None:
        """One delegation per delegator; each change is a row of the delegation ledger thread."""
        store = _assigning(review_store)
        first = Delegation("ann", "bob", at(0) + timedelta(days=1), "ann", at(0))
        second = Delegation("ann", "cat", at(0) + timedelta(days=2), "lead", at(1))
        other = Delegation("dan", "bob", at(0) + timedelta(days=3), "dan", at(1))
        await store.delegate(first)
        await store.delegate(second)
        await store.delegate(other)
        assert await store.delegations() == [second, other]
        assert await store.revoke_delegation("ann", by="ann", now=at(2)) == second
        assert await store.revoke_delegation("ann", by="ann", now=at(3)) is None
        assert await store.delegations() == [other]
        rows = await review_store.audit_log(DELEGATION_THREAD)
        assert [(r.event, r.actor, r.payload["to"]) for r in rows] == [
            ("delegated", "ann", "bob"),
            ("delegated", "lead", "cat"),
            ("delegated", "dan", "bob"),
            ("delegation_revoked", "ann", "cat"),
        ]
        head = await review_store.audit_head()
        assert verify_rows([r.to_row() for r in await review_store.audit_rows()], head=head).ok
