"""Retention conformance: legal holds, pruning documented in the ledger, kept evidence.

Covers the [`RetentionStore`][hitl_compliance.RetentionStore] capability:
holds placed and released with their audit rows, a held thread refused
(and left unchanged) by every deleting method, whole threads' audit rows
pruned behind a tombstone the verifier accepts, decided reviews pruned, and
the evidence kept before checkpoints go. A store without the capability
(a `ReviewStore` only) skips these tests.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`RetentionConformance`][hitl_compliance.testing.conformance.RetentionConformance]
alone to run only this capability.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitl_compliance.errors import LegalHoldError
from hitl_compliance.ledger import PRUNED_EVENT, verify_rows
from hitl_compliance.retention import RetentionStore
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import at, claim, make_review

__all__ = ["RetentionConformance"]

LATER = at(0) + timedelta(days=3000)


def _retention(store: ReviewStore) -> RetentionStore:
    if not isinstance(store, RetentionStore):
        pytest.skip(f"{type(store).__name__} has no retention capability (RetentionStore)")
    return store


async def _decided(store: ReviewStore, thread_id: str) -> str:
    """Open, claim and reject a review of `thread_id`; its id."""
    review = await store.open_review(make_review(thread_id), owner=None)
    await claim(store, thread_id)
    await store.complete(
        review.review_id,
        claim_id="k1",
        status="rejected",
        now=at(2),
        actor="alice",
        payload={"reason": "no"},
    )
    return review.review_id


async def _verifies(store: ReviewStore) -> bool:
    rows = [r.to_row() for r in await store.audit_rows()]
    return verify_rows(rows, head=await store.audit_head() or (0, "")).ok


class RetentionConformance(ConformanceBase):
    """The retention tests: holds, refusals, documented pruning, kept evidence."""

    async def test_holds_are_placed_and_released_with_audit_rows(
        self, review_store: ReviewStore
    ) -> None:
        """A hold is listed until released; placing twice keeps the first; both are audited."""
        store = _retention(review_store)
        hold = await store.place_hold("t1", reason="enquiry", by="legal", now=at(1))
        assert (hold.thread_id, hold.reason, hold.placed_by, hold.placed_at) == (
            "t1",
            "enquiry",
            "legal",
            at(1),
        )
        assert await store.place_hold("t1", reason="other", by="x", now=at(2)) == hold
        assert await store.holds() == [hold]
        assert await store.get_hold("t1") == hold
        assert await store.get_hold("t2") is None
        assert await store.release_hold("t1", by="legal", now=at(3)) == hold
        assert await store.release_hold("t1", by="legal", now=at(4)) is None
        assert await store.holds() == []
        log = await review_store.audit_log("t1")
        assert [(r.event, r.actor) for r in log] == [
            ("hold_placed", "legal"),
            ("hold_released", "legal"),
        ]
        assert await _verifies(review_store)

    async def test_a_held_thread_refuses_every_deletion_and_keeps_everything(
        self, review_store: ReviewStore
    ) -> None:
        """Pruning audit rows or reviews, or keeping evidence, is refused; nothing changes."""
        store = _retention(review_store)
        await _decided(review_store, "t1")
        await store.place_hold("t1", reason="enquiry", by="legal", now=at(3))
        rows = await review_store.audit_rows()
        assert await store.retention_candidates("audit", before=LATER) == ["t1"]
        for record_class in ("audit", "reviews"):
            with pytest.raises(LegalHoldError):
                await store.prune_thread(
                    "t1", record_class, before=LATER, now=LATER, actor="system"
                )
        with pytest.raises(LegalHoldError):
            await store.keep_evidence(
                "t1", review_id="r", checkpoint_id="c1", state={}, now=LATER, actor="system"
            )
        assert await review_store.audit_rows() == rows
        assert await review_store.get_review("t1") is not None
        assert await store.evidence("r") is None

    async def test_pruned_audit_rows_leave_a_tombstone_the_verifier_accepts(
        self, review_store: ReviewStore
    ) -> None:
        """A finished thread's rows go behind one tombstone; the ledger still verifies."""
        store = _retention(review_store)
        await _decided(review_store, "t1")
        await _decided(review_store, "t2")
        before = [r for r in await review_store.audit_rows() if r.thread_id == "t1"]
        assert await store.retention_candidates("audit", before=at(2)) == []
        assert await store.prune_thread("t1", "audit", before=at(2), now=LATER, actor="s") == 0
        assert await store.retention_candidates("audit", before=LATER) == ["t1", "t2"]
        assert await store.prune_thread("t1", "audit", before=LATER, now=LATER, actor="s") == 2
        [tomb] = await review_store.audit_log("t1")
        assert (tomb.event, tomb.actor, tomb.at) == (PRUNED_EVENT, "s", LATER)
        assert tomb.payload["removed"] == [[r.seq, r.hash] for r in before]
        assert tomb.prev_hash == before[-1].hash
        assert await _verifies(review_store)
        assert await store.retention_candidates("audit", before=LATER) == ["t2"]
        assert await store.prune_thread("t1", "audit", before=LATER, now=LATER, actor="s") == 0

    async def test_a_thread_awaiting_review_is_not_pruned(self, review_store: ReviewStore) -> None:
        """An open review keeps its thread off the audit and checkpoint candidates."""
        store = _retention(review_store)
        await review_store.open_review(make_review("t1"), owner=None)
        assert await store.retention_candidates("audit", before=LATER) == []
        assert await store.retention_candidates("checkpoints", before=LATER) == []
        assert await store.prune_thread("t1", "audit", before=LATER, now=LATER, actor="s") == 0
        assert len(await review_store.audit_log("t1")) == 1

    async def test_evidence_is_kept_then_decided_reviews_are_pruned(
        self, review_store: ReviewStore
    ) -> None:
        """Kept evidence reads back, ends the checkpoint candidacy; pruning reviews drops both."""
        store = _retention(review_store)
        review_id = await _decided(review_store, "t1")
        assert await store.retention_candidates("checkpoints", before=LATER) == ["t1"]
        state = {"schema": "ComplianceState", "values": {"draft_response": "ünï ✓", "n": 1}}
        await store.keep_evidence(
            "t1", review_id=review_id, checkpoint_id="c1", state=state, now=LATER, actor="s"
        )
        assert await store.evidence(review_id) == state
        rows = await review_store.audit_rows()
        await store.keep_evidence(
            "t1", review_id=review_id, checkpoint_id="c1", state={}, now=LATER, actor="s"
        )
        assert await store.evidence(review_id) == state  # idempotent: the first one stays
        assert await review_store.audit_rows() == rows
        assert await store.retention_candidates("checkpoints", before=LATER) == []
        tomb = (await review_store.audit_log("t1"))[-1]
        assert (tomb.event, tomb.payload["record_class"]) == (PRUNED_EVENT, "checkpoints")
        assert await store.retention_candidates("reviews", before=LATER) == ["t1"]
        assert await store.prune_thread("t1", "reviews", before=LATER, now=LATER, actor="s") == 1
        assert await review_store.get_review("t1") is None
        assert await store.evidence(review_id) is None
        assert (await review_store.audit_log("t1"))[-1].payload["review_ids"] == [review_id]
        assert await _verifies(review_store)
