"""QA conformance: second-line QA reviews, sampled once, judged once, apart from first-line reviews.

Covers the [`QaStore`][hitl_compliance.QaStore] capability: a QA review is
inserted once per id with its `qa_sampled` audit row (concurrent samplers:
one wins), listed oldest first while it awaits a verdict, judged once with
its `qa_verdict` row (concurrent verdicts: one wins), counted per rule in a
sampling window; and it never shows in the first-line queries nor holds its
thread. A store without the capability (a `ReviewStore` only) skips these tests.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`QaConformance`][hitl_compliance.testing.conformance.QaConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from hitl_compliance.errors import QaAlreadyRecordedError, QaReviewNotFoundError
from hitl_compliance.qa import (
    QA_SAMPLED_EVENT,
    QA_VERDICT_EVENT,
    QaReview,
    QaRuleCount,
    QaStore,
    qa_review_id,
)
from hitl_compliance.stores import ReviewStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import assert_chain, at

__all__ = ["QaConformance"]


def _qa(store: ReviewStore) -> QaStore:
    if not isinstance(store, QaStore):
        pytest.skip(f"{type(store).__name__} keeps no QA reviews (QaStore)")
    return store


def _sampled(thread_id: str, minutes: float, rules: tuple[str, ...] = ("a", "b")) -> QaReview:
    return QaReview(
        qa_review_id=qa_review_id(thread_id, "1"),
        thread_id=thread_id,
        turn="1",
        stratum=f"-|{','.join(rules)}",
        rate=0.25,
        rules=rules,
        product=None,
        reply_seq=None,
        sampled_at=at(minutes),
    )


class QaConformance(ConformanceBase):
    """QA reviews: insert-if-absent, pending, one verdict, per-rule counts, apart from reviews."""

    async def test_a_qa_review_is_opened_once_with_its_row(self, review_store: ReviewStore) -> None:
        """Of concurrent inserts of one QA review one writes it and its qa_sampled row."""
        store = _qa(review_store)
        review = _sampled("t1", 0)
        payload = {"qa_review_id": review.qa_review_id, "rules": ["a", "b"], "rate": 0.25}
        won = await asyncio.gather(
            *(store.open_qa_review(review, payload=payload) for _ in range(4))
        )
        assert sorted(won) == [False, False, False, True]
        assert await store.get_qa_review(review.qa_review_id) == review
        assert await store.get_qa_review("qa:none:1") is None
        rows = await review_store.audit_rows("t1")
        assert [(r.event, r.payload) for r in rows] == [(QA_SAMPLED_EVENT, payload)]
        assert_chain(await review_store.audit_rows(), await review_store.audit_head())

    async def test_pending_oldest_first_and_one_verdict(self, review_store: ReviewStore) -> None:
        """Pending lists by sampling time; a verdict is recorded once; refusals change nothing."""
        store = _qa(review_store)
        for thread, minutes in (("t2", 2), ("t1", 1), ("t3", 1)):
            await store.open_qa_review(_sampled(thread, minutes), payload={})
        listed = [q.thread_id for q in await store.list_qa_pending()]
        assert listed == ["t1", "t3", "t2"]
        assert [q.thread_id for q in await store.list_qa_pending(limit=1)] == ["t1"]
        qa_id = qa_review_id("t1", "1")
        verdicts = [
            store.record_qa_verdict(
                qa_id,
                verdict="disagree",
                reason_code="other",
                reviewer=f"qa{i}",
                now=at(5),
                payload={"verdict": "disagree", "n": i},
            )
            for i in range(3)
        ]
        outcomes = await asyncio.gather(*verdicts, return_exceptions=True)
        [judged] = [o for o in outcomes if isinstance(o, QaReview)]
        assert all(isinstance(o, (QaReview, QaAlreadyRecordedError)) for o in outcomes)
        assert (judged.verdict, judged.reason_code, judged.decided_at) == (
            "disagree",
            "other",
            at(5),
        )
        assert await store.get_qa_review(qa_id) == judged
        assert [q.thread_id for q in await store.list_qa_pending()] == ["t3", "t2"]
        with pytest.raises(QaReviewNotFoundError):
            await store.record_qa_verdict(
                "qa:none:1", verdict="agree", reason_code=None, reviewer="q", now=at(6), payload={}
            )
        events = [r.event for r in await review_store.audit_rows("t1")]
        assert events == [QA_SAMPLED_EVENT, QA_VERDICT_EVENT]
        assert_chain(await review_store.audit_rows(), await review_store.audit_head())

    async def test_counts_per_rule_in_the_window(self, review_store: ReviewStore) -> None:
        """qa_disagreement counts sampled, judged and disagreed reviews per rule by sampled_at."""
        store = _qa(review_store)
        await store.open_qa_review(_sampled("t1", 0, ("a", "b")), payload={})
        await store.open_qa_review(_sampled("t2", 10, ("a",)), payload={})
        await store.open_qa_review(_sampled("t3", 20, ("b",)), payload={})
        for thread, verdict in (("t1", "disagree"), ("t2", "agree")):
            await store.record_qa_verdict(
                qa_review_id(thread, "1"),
                verdict=verdict,  # type: ignore[arg-type]
                reason_code="other" if verdict == "disagree" else None,
                reviewer="q",
                now=at(30),
                payload={},
            )
        assert await store.qa_disagreement() == (
            QaRuleCount("a", 2, 2, 1),
            QaRuleCount("b", 2, 1, 1),
        )
        window = await store.qa_disagreement(since=at(5), until=at(15))
        assert window == (QaRuleCount("a", 1, 1, 0),)
        assert await store.qa_disagreement(since=at(60)) == ()

    async def test_qa_reviews_stay_out_of_first_line_queries(
        self, review_store: ReviewStore
    ) -> None:
        """No QA review is pending, overdue, undated or open, and its thread is free."""
        store = _qa(review_store)
        await store.open_qa_review(_sampled("t1", 0), payload={})
        later = at(0) + timedelta(days=365)
        assert await review_store.list_pending() == []
        assert await review_store.list_overdue(now=later) == []
        assert await review_store.list_undated() == []
        assert await review_store.open_reviews("t1") == []
        assert await review_store.get_review("t1") is None
        await review_store.begin_turn("t1", owner="w1", now=at(1))  # not ThreadBusyError
        await review_store.end_turn("t1", owner="w1")
