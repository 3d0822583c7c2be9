"""Ledger conformance: the audit log per thread and the sealed, hash-chained store-wide ledger.

Covers `audit_log`, `audit_rows` and `audit_head` (and, for a store that
implements the optional `ReasonCodeCounter`, `reason_code_counts`): rows in append order,
each sealed with [`row_hash`][hitl_compliance.ledger.row_hash] and chained
per thread and store-wide, hashes that survive the round trip of payloads
and times, and one chain from concurrent appends on two instances.

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`LedgerConformance`][hitl_compliance.testing.conformance.LedgerConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hitl_compliance.ledger import LANES_FORMAT, LEDGER_FORMAT, row_hash, verify_rows
from hitl_compliance.models import AuditRecord
from hitl_compliance.oversight import QA_EVENT, OversightThresholds
from hitl_compliance.reasons import ReasonCodeCount, count_reason_codes
from hitl_compliance.stores import ReviewStore
from hitl_compliance.stores.base import OversightSource, ReasonCodeCounter
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import (
    IST,
    assert_chain,
    at,
    cast_vote,
    claim,
    make_due,
    make_review,
)

__all__ = ["LedgerConformance"]


class LedgerConformance(ConformanceBase):
    """The ledger tests: append order, sealing, chaining and one chain under concurrency."""

    # -- audit -----------------------------------------------------------------

    async def test_audit_log_is_per_thread_in_append_order(self, review_store: ReviewStore) -> None:
        """append_audit returns increasing seqs and audit_log lists a thread's rows in order."""
        rows = []
        for i, thread in enumerate(["t1", "t2", "t1", "t1"]):
            rows.append(
                await review_store.append_audit(
                    thread_id=thread,
                    review_id=None,
                    checkpoint_id=None,
                    event="recovered" if i else "note",
                    actor=f"actor{i}",
                    payload={"i": i},
                    # Times deliberately out of order: the log is ordered by append.
                    at=at(10 - i),
                )
            )
        assert [r.seq for r in rows] == sorted(r.seq for r in rows)
        assert len({r.seq for r in rows}) == 4
        log = await review_store.audit_log("t1")
        assert [r.payload["i"] for r in log] == [0, 2, 3]
        assert log == [rows[0], rows[2], rows[3]]
        assert await review_store.audit_log("nobody") == []

    # -- ledger ----------------------------------------------------------------

    async def test_empty_store_has_no_head(self, review_store: ReviewStore) -> None:
        """No audit rows: no head, and the empty ledger verifies."""
        assert await review_store.audit_rows() == []
        assert await review_store.audit_head() is None
        assert_chain([], None)

    async def test_every_append_is_sealed_and_chained(self, review_store: ReviewStore) -> None:
        """Rows of every kind of append chain per thread and store-wide; verify_rows agrees."""
        r1 = await review_store.open_review(make_due("t1", at(1), approvals_required=2), owner=None)
        r2 = await review_store.open_review(make_due("t2", None), owner=None)
        appended = [
            await review_store.append_audit(
                thread_id="t3",
                review_id=None,
                checkpoint_id=None,
                event="denied",
                actor="mallory",
                payload={"reason": "not allowed"},
                at=at(1),
            )
        ]
        await cast_vote(review_store, "alice", review_id=r1.review_id)
        await review_store.escalate(
            r1.review_id, now=at(2), new_deadline=at(9), actor="sla", payload={"p": 1}
        )
        await claim(review_store, "t2")
        await review_store.complete(
            r2.review_id,
            claim_id="k1",
            status="rejected",
            now=at(3),
            actor="bob",
            payload={"reason": "no"},
        )
        rows = await review_store.audit_rows()
        assert [(r.thread_id, r.event) for r in rows] == [
            ("t1", "paused"),
            ("t2", "paused"),
            ("t3", "denied"),
            ("t1", "voted"),
            ("t1", "escalated"),
            ("t2", "rejected"),
        ]
        assert appended[0] == rows[2]
        assert_chain(rows, await review_store.audit_head())
        for thread in ("t1", "t2", "t3"):
            thread_rows = await review_store.audit_rows(thread)
            assert thread_rows == [r for r in rows if r.thread_id == thread]
            assert thread_rows == await review_store.audit_log(thread)
            report = verify_rows([r.to_row() for r in thread_rows], thread_id=thread)
            assert report.ok
            assert report.checked == len(thread_rows)

    async def test_payloads_and_times_round_trip_to_the_same_hash(
        self, review_store: ReviewStore
    ) -> None:
        """What the store returns on append is what it reads back, and both hash the same."""
        payload = {
            "float": 0.1,
            "big_float": 1e16,
            "tiny": 1e-7,
            "negative_zero": -0.0,
            "big_int": 2**70,
            "text": 'ünïcödé ✓ "quoted" \\ \u0000 \n',
            "emoji": "👋",
            "nested": {"b": [1, 2.5, None, True], "a": {}},
            "z_first": "keys out of order",
        }
        when = datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=IST)
        record = await review_store.append_audit(
            thread_id="t1",
            review_id="r1",
            checkpoint_id="c1",
            event="recovered",
            actor="ops ✓",
            payload=payload,
            at=when,
        )
        [stored] = await review_store.audit_rows()
        assert stored == record
        assert stored.payload == payload
        assert stored.at == when
        assert stored.to_row() == record.to_row()
        assert repr(stored.payload["big_float"]) == "1e+16"
        assert repr(stored.payload["negative_zero"]) == "-0.0"
        # The store keeps the canonical form the row was sealed in (format 2, RFC 8785;
        # 3, format 2 and the row's lane, in a store with ledger lanes).
        assert stored.ledger_format == record.ledger_format
        assert stored.ledger_format in (LEDGER_FORMAT, LANES_FORMAT)
        assert stored.hash == row_hash(stored.to_row())
        assert_chain([stored], await review_store.audit_head())

    async def test_concurrent_appends_on_two_stores_form_one_chain(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Appends racing through two store instances: seq 1..n, no fork, the chain verifies."""
        a, b = review_store_pair

        async def append(store: ReviewStore, i: int) -> AuditRecord:
            return await store.append_audit(
                thread_id=f"t{i % 3}",
                review_id=None,
                checkpoint_id=None,
                event="recovered",
                actor=f"w{i}",
                payload={"i": i},
                at=at(i),
            )

        opened = [
            a.open_review(make_review(f"o{i}", review_id=f"ro{i}"), owner=None) for i in range(4)
        ]
        records = await asyncio.gather(*(append(a if i % 2 else b, i) for i in range(30)), *opened)
        rows = await a.audit_rows()
        assert len(rows) == 34
        assert {r.seq for r in records if isinstance(r, AuditRecord)} <= {r.seq for r in rows}
        assert_chain(rows, await b.audit_head())

    # -- reason codes (optional capability: ReasonCodeCounter) ---------------------

    async def test_reason_code_counts_match_the_rows(self, review_store: ReviewStore) -> None:
        """reason_code_counts counts coded rows by (code, event) in [since, until), any zone."""
        if not isinstance(review_store, ReasonCodeCounter):
            pytest.skip("the store does not implement ReasonCodeCounter (optional)")
        plan = [
            ("misleading_promotion", "rejected", 0),
            ("misleading_promotion", "rejected", 1),
            ("misleading_promotion", "approved", 2),
            (None, "approved", 3),
            ("other", "expired", 4),
            ("missing_risk_warning", "rejected", 5),
        ]
        for i, (code, event, minutes) in enumerate(plan):
            payload: dict[str, object] = {"i": i}
            if code is not None:
                payload["reason_code"] = code
            await review_store.append_audit(
                thread_id=f"t{i % 2}",
                review_id=None,
                checkpoint_id=None,
                event=event,
                actor="officer",
                payload=payload,
                # Half of them stamped in another zone: the window compares instants.
                at=at(minutes).astimezone(IST) if i % 2 else at(minutes),
            )
        rows = await review_store.audit_rows()
        assert await review_store.reason_code_counts() == count_reason_codes(
            rows, since=None, until=None
        )
        assert await review_store.reason_code_counts() == (
            ReasonCodeCount("misleading_promotion", "approved", 1),
            ReasonCodeCount("misleading_promotion", "rejected", 2),
            ReasonCodeCount("missing_risk_warning", "rejected", 1),
            ReasonCodeCount("other", "expired", 1),
        )
        since, until = at(1).astimezone(IST), at(4)
        window = await review_store.reason_code_counts(since=since, until=until)
        assert window == count_reason_codes(rows, since=since, until=until)
        assert window == (
            ReasonCodeCount("misleading_promotion", "approved", 1),
            ReasonCodeCount("misleading_promotion", "rejected", 1),
        )

    # -- oversight (optional capability: OversightSource) ---------------------------

    async def test_oversight_report_reads_the_windows_qa_rows(
        self, review_store: ReviewStore
    ) -> None:
        """oversight_report counts the `qa_verdict` rows at `since <= at < until`, any zone."""
        if not isinstance(review_store, OversightSource):
            pytest.skip("the store does not implement OversightSource (optional)")
        plan = [("disagree", ["promise"], 0), ("agree", ["promise", "advice"], 1)]
        plan += [("disagree", ["advice"], 2), ("disagree", ["promise"], 5)]
        for i, (verdict, rules, minutes) in enumerate(plan):
            await review_store.append_audit(
                thread_id=f"t{i}",
                review_id=None,
                checkpoint_id=None,
                event=QA_EVENT,
                actor="qa@bank",
                payload={
                    "verdict": verdict,
                    "reason_code": None,
                    "rules": rules,
                    "sampled_review_id": f"r{i}",
                },
                at=at(minutes).astimezone(IST) if i % 2 else at(minutes),
            )
        report = await review_store.oversight_report(
            since=at(1).astimezone(IST),
            until=at(5),
            thresholds=OversightThresholds(),
            period="day",
        )
        assert (report.qa_reviews, report.qa_disagreements) == (2, 1)
        qa = {r.rule: (r.qa_reviews, r.qa_disagreements) for r in report.rules}
        assert qa == {"advice": (2, 1), "promise": (1, 0)}
        assert report.totals.decisions == 0
        assert report.flags == ()
