"""Second-line QA sampling on every backend: sampled once, never blocking, judged once.

A reply the rules delivered alone is sampled (seeded by thread and turn) into
a QA review kept apart from first-line reviews: `pending()`, the SLA sweep
and `recover()` never see it, and the delivery is what it would have been
without QA. A verdict is recorded once, with its ledger row; a refused
verdict changes nothing; the store counts disagreements per rule.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from hitl_compliance import (
    ConfigurationError,
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    NotAuthorizedError,
    QaAlreadyRecordedError,
    QaReview,
    QaReviewNotFoundError,
    QaRuleCount,
    QaSampling,
    ReasonCodeError,
    Reviewer,
    attach_authority,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._replies import REPLY_EVENT
from hitl_compliance.backends import Backend
from hitl_compliance.qa import QA_SAMPLED_EVENT, QA_VERDICT_EVENT, QaStore, qa_review_id
from hitl_compliance.testing import FakeClock
from tests.gate_graphs import Bank, build_react

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CLEAN = "Thanks for asking about ISAs."
RISKY = "Guaranteed returns, invest now."
RULES = [
    KeywordRule("guarantee", ["guaranteed returns"], reason="promise"),
    KeywordRule("crypto", ["bitcoin"], reason="crypto"),
]
ALL = QaSampling(rate=1.0, seed="s")


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    """An open backend with tables of its own."""
    async with open_backend(backend_url, table_prefix=f"q{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def coordinator(backend: Backend, clock: FakeClock | None = None, **kwargs: Any) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: state.customer_message, rules=RULES, checkpointer=backend.checkpointer
    )
    return HitlCoordinator(
        graph,
        reviews=backend.reviews,
        clock=clock or FakeClock(T0),
        sla=timedelta(minutes=5),
        **kwargs,
    )


def tid() -> str:
    return f"t-{uuid.uuid4().hex}"


async def sampled_review(coord: HitlCoordinator, thread_id: str) -> QaReview:
    [review] = [q for q in await coord.qa_pending() if q.thread_id == thread_id]
    return review


class TestSampling:
    async def test_a_delivered_reply_is_sampled_without_blocking(self, backend: Backend) -> None:
        """The reply is delivered as without QA; the QA review is apart from pending()."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        result = await coord.process(t, CLEAN, metadata={"product": "isa"})
        assert result.status == "completed"
        assert result.agent_response == CLEAN
        assert await coord.pending() == []
        review = await sampled_review(coord, t)
        assert review.qa_review_id == qa_review_id(t, review.turn)
        assert review.rules == ("guarantee", "crypto")
        assert review.product == "isa"
        assert review.stratum == "isa|guarantee,crypto"
        assert review.rate == 1.0
        assert review.verdict is None
        assert review.sampled_at == T0
        rows = await coord.audit_log(t)
        assert [r.event for r in rows] == [REPLY_EVENT, QA_SAMPLED_EVENT]
        replied, sampled = rows
        assert review.reply_seq == replied.seq
        assert sampled.actor == "system:qa"
        assert sampled.payload["rules"] == ["guarantee", "crypto"]
        assert sampled.payload["stratum"] == "isa|guarantee,crypto"
        assert sampled.payload["rate"] == 1.0
        assert sampled.payload["reply_seq"] == replied.seq
        assert (await coord.verify_audit()).ok

    async def test_the_next_turn_may_run_and_each_turn_is_sampled_once(
        self, backend: Backend
    ) -> None:
        """A QA review never holds its thread: the next turn runs and is sampled on its own."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        await coord.process(t, CLEAN)
        second = await coord.process(t, "And pensions?")
        assert second.status == "completed"
        turns = sorted(q.turn for q in await coord.qa_pending() if q.thread_id == t)
        assert len(turns) == 2
        assert turns[0] != turns[1]

    async def test_paused_and_human_decided_replies_are_not_sampled(self, backend: Backend) -> None:
        """Only replies the rules delivered alone are sampled (a reviewer already saw the rest)."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        assert (await coord.process(t, RISKY)).awaiting_approval
        await coord.approve(t, reviewer="officer@bank")
        assert [q for q in await coord.qa_pending() if q.thread_id == t] == []
        assert QA_SAMPLED_EVENT not in [r.event for r in await coord.audit_log(t)]

    async def test_rates_and_watched_products(self, backend: Backend) -> None:
        """Rate 0 samples nothing; a watched product is sampled at 100% whatever the rate."""
        coord = coordinator(
            backend, qa_sampling=QaSampling(rate=0.0, watch=frozenset({"crypto_isa"}))
        )
        plain, watched = tid(), tid()
        await coord.process(plain, CLEAN, metadata={"product": "isa"})
        await coord.process(watched, CLEAN, metadata={"product": "crypto_isa"})
        assert [q.thread_id for q in await coord.qa_pending()] == [watched]

    async def test_sampling_twice_writes_nothing_the_second_time(self, backend: Backend) -> None:
        """Insert-if-absent by id: a re-run (or a racing process) adds no review and no row."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        await coord.process(t, CLEAN)
        review = await sampled_review(coord, t)
        store = backend.reviews
        assert isinstance(store, QaStore)
        before = await coord.audit_log(t)
        racers = await asyncio.gather(
            *(store.open_qa_review(review, payload={"again": True}) for _ in range(4))
        )
        assert racers == [False] * 4
        assert await coord.audit_log(t) == before

    async def test_racing_samplers_insert_once(self, backend: Backend) -> None:
        """Of concurrent first samplings of one turn exactly one inserts and appends its row."""
        coord = coordinator(backend, qa_sampling=ALL)
        store = backend.reviews
        assert isinstance(store, QaStore)
        t = tid()
        review = QaReview(
            qa_review_id=qa_review_id(t, "7"),
            thread_id=t,
            turn="7",
            stratum="-|guarantee",
            rate=1.0,
            rules=("guarantee",),
            sampled_at=T0,
        )
        results = await asyncio.gather(
            *(store.open_qa_review(review, payload={"n": 1}) for _ in range(5))
        )
        assert sorted(results) == [False] * 4 + [True]
        assert [r.event for r in await coord.audit_log(t)] == [QA_SAMPLED_EVENT]
        assert await store.get_qa_review(review.qa_review_id) == review

    async def test_not_swept_by_the_sla_nor_recovered(self, backend: Backend) -> None:
        """Past every deadline, expire_overdue and recover leave a QA review as it was."""
        clock = FakeClock(T0)
        coord = coordinator(backend, clock, qa_sampling=ALL)
        t = tid()
        await coord.process(t, CLEAN)
        before = await coord.audit_log(t)
        clock.advance(timedelta(days=30))
        assert await coord.expire_overdue() == []
        await coord.recover()
        assert await coord.audit_log(t) == before
        assert (await sampled_review(coord, t)).verdict is None

    async def test_without_sampling_nothing_is_sampled(self, backend: Backend) -> None:
        """No qa_sampling: no QA reviews, no qa_sampled rows."""
        coord = coordinator(backend)
        t = tid()
        await coord.process(t, CLEAN)
        assert await coord.qa_pending() == []
        assert [r.event for r in await coord.audit_log(t)] == [REPLY_EVENT]


class TestGatedGraph:
    async def test_a_gate_reply_the_rules_let_through_is_sampled(self, backend: Backend) -> None:
        """A gated agent's clear text reply is sampled too (the gate's `replied` row)."""
        graph, _ = build_react(
            "command_resume", backend.checkpointer, Bank(), AIMessage("Your balance is fine.")
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews, qa_sampling=ALL)
        t = tid()
        result = await coord.process(t, {"messages": [("user", "Balance?")]})
        assert result.status == "completed"
        [review] = await coord.qa_pending()
        assert review.thread_id == t
        assert review.product is None
        assert review.stratum.startswith("-|")
        rows = await coord.audit_log(t)
        assert [r.event for r in rows] == [REPLY_EVENT, QA_SAMPLED_EVENT]
        assert review.reply_seq == rows[0].seq


class TestServedGraph:
    async def test_attach_authority_samples_a_raw_run(self, backend: Backend) -> None:
        """A served graph (attach_authority, no coordinator in the process) samples its replies."""
        graph = build_compliance_graph(
            lambda state: state.customer_message, rules=RULES, checkpointer=backend.checkpointer
        )
        attach_authority(graph, reviews=backend.reviews, qa_sampling=ALL, clock=FakeClock(T0))
        t = tid()
        config = {"configurable": {"thread_id": t}}
        await graph.ainvoke({"customer_message": CLEAN, "metadata": {"product": "isa"}}, config)
        store = backend.reviews
        assert isinstance(store, QaStore)
        [review] = await store.list_qa_pending()
        assert (review.thread_id, review.product, review.sampled_at) == (t, "isa", T0)

    async def test_attach_authority_refuses_another_type(self, backend: Backend) -> None:
        """qa_sampling must be a QaSampling there too."""
        graph = build_compliance_graph(
            lambda state: state.customer_message, rules=RULES, checkpointer=backend.checkpointer
        )
        with pytest.raises(ConfigurationError):
            attach_authority(graph, reviews=backend.reviews, qa_sampling=0.5)  # type: ignore[arg-type]


class TestVerdicts:
    async def test_agree_and_disagree_are_recorded_with_their_rows(self, backend: Backend) -> None:
        """A verdict fills the QA review and appends a qa_verdict row with the contract payload."""
        coord = coordinator(backend, qa_sampling=ALL)
        agreed, disagreed = tid(), tid()
        await coord.process(agreed, CLEAN)
        await coord.process(disagreed, CLEAN)
        a = await sampled_review(coord, agreed)
        d = await sampled_review(coord, disagreed)
        done = await coord.qa_verdict(a.qa_review_id, reviewer="qa@bank", verdict="agree")
        assert (done.verdict, done.reason_code, done.reviewer) == ("agree", None, "qa@bank")
        assert done.decided_at == T0
        done = await coord.qa_verdict(
            d.qa_review_id,
            reviewer="qa@bank",
            verdict="disagree",
            reason_code="missing_risk_warning",
        )
        assert await coord.qa_review(d.qa_review_id) == done
        assert await coord.qa_pending() == []
        row = (await coord.audit_log(disagreed))[-1]
        assert row.event == QA_VERDICT_EVENT
        assert row.actor == "qa@bank"
        assert row.payload == {
            "verdict": "disagree",
            "reason_code": "missing_risk_warning",
            "rules": ["guarantee", "crypto"],
            "sampled_review_id": d.qa_review_id,
        }
        assert (await coord.verify_audit()).ok

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"verdict": "maybe"}, InvalidDecisionError),
            ({"verdict": "disagree"}, InvalidDecisionError),
            ({"verdict": "disagree", "reason_code": "nope"}, ReasonCodeError),
            ({"verdict": "disagree", "reason_code": "other"}, ReasonCodeError),
            ({"verdict": "agree", "reviewer": "intern"}, NotAuthorizedError),
        ],
    )
    async def test_a_refused_verdict_changes_nothing(
        self, backend: Backend, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        """A bad verdict, a missing or unknown code, or a reviewer without the QA role: refused."""
        roles = QaSampling(rate=1.0, roles=frozenset({"qa"}))
        coord = coordinator(backend, qa_sampling=roles)
        t = tid()
        await coord.process(t, CLEAN)
        review = await sampled_review(coord, t)
        before = await coord.audit_log(t)
        call = {"reviewer": Reviewer("qa@bank", roles=frozenset({"qa"})), **kwargs}
        with pytest.raises(error):
            await coord.qa_verdict(review.qa_review_id, **call)
        assert await coord.audit_log(t) == before
        assert await coord.qa_review(review.qa_review_id) == review

    async def test_a_second_verdict_and_an_unknown_id_are_refused(self, backend: Backend) -> None:
        """One verdict per QA review; an unknown id is QaReviewNotFoundError; nothing changes."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        await coord.process(t, CLEAN)
        review = await sampled_review(coord, t)
        first = await coord.qa_verdict(review.qa_review_id, reviewer="qa@bank", verdict="agree")
        before = await coord.audit_log(t)
        with pytest.raises(QaAlreadyRecordedError) as caught:
            await coord.qa_verdict(
                review.qa_review_id,
                reviewer="qa2@bank",
                verdict="disagree",
                reason_code="missing_risk_warning",
            )
        assert caught.value.verdict == "agree"
        with pytest.raises(QaReviewNotFoundError):
            await coord.qa_verdict("qa:nobody:1", reviewer="qa@bank", verdict="agree")
        assert await coord.audit_log(t) == before
        assert await coord.qa_review(review.qa_review_id) == first

    async def test_racing_verdicts_record_one(self, backend: Backend) -> None:
        """Of concurrent verdicts on one QA review exactly one is recorded, with one row."""
        coord = coordinator(backend, qa_sampling=ALL)
        t = tid()
        await coord.process(t, CLEAN)
        review = await sampled_review(coord, t)
        store = backend.reviews
        assert isinstance(store, QaStore)
        outcomes = await asyncio.gather(
            *(
                store.record_qa_verdict(
                    review.qa_review_id,
                    verdict="agree",
                    reason_code=None,
                    reviewer=f"qa{i}@bank",
                    now=T0,
                    payload={"verdict": "agree"},
                )
                for i in range(4)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(o, QaReview) for o in outcomes) == 1
        assert all(isinstance(o, (QaReview, QaAlreadyRecordedError)) for o in outcomes)
        events = [r.event for r in await coord.audit_log(t)]
        assert events.count(QA_VERDICT_EVENT) == 1


class TestDisagreement:
    async def test_counts_per_rule_in_the_window(self, backend: Backend) -> None:
        """The store counts sampled, judged and disagreed QA reviews per rule, by sampling time."""
        clock = FakeClock(T0)
        coord = coordinator(backend, clock, qa_sampling=ALL)
        threads = [tid() for _ in range(4)]
        for t in threads:
            await coord.process(t, CLEAN)
        clock.advance(timedelta(hours=2))
        late = tid()
        await coord.process(late, CLEAN)
        verdicts = [("disagree", "missing_risk_warning"), ("agree", None), ("disagree", "other")]
        for t, (verdict, code) in zip(threads[:3], verdicts, strict=True):
            review = await sampled_review(coord, t)
            await coord.qa_verdict(
                review.qa_review_id,
                reviewer="qa@bank",
                verdict=verdict,  # type: ignore[arg-type]
                reason_code=code,
                reason="missed it" if code == "other" else None,
            )
        everything = await coord.qa_disagreement()
        assert everything == (
            QaRuleCount("crypto", 5, 3, 2),
            QaRuleCount("guarantee", 5, 3, 2),
        )
        assert everything[0].disagreement_rate == pytest.approx(2 / 3)
        early = await coord.qa_disagreement(until=T0 + timedelta(hours=1))
        assert early == (QaRuleCount("crypto", 4, 3, 2), QaRuleCount("guarantee", 4, 3, 2))
        later = await coord.qa_disagreement(since=T0 + timedelta(hours=1))
        assert later == (QaRuleCount("crypto", 1, 0, 0), QaRuleCount("guarantee", 1, 0, 0))
        assert later[0].disagreement_rate is None
        assert await coord.qa_disagreement(since=T0 + timedelta(days=1)) == ()


class TestMigration:
    @pytest.mark.parametrize("kind", ["sqlite", "postgres"])
    async def test_a_database_of_the_previous_version_gets_the_qa_tables(
        self,
        kind: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> None:
        """Tables of the previous schema version are upgraded in place, rows kept; QA works."""
        if kind == "sqlite":
            import hitl_compliance.stores.sqlite as module

            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            pytest.importorskip("psycopg")
            import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

            url = str(request.getfixturevalue("postgres_dsn"))
        prefix = f"m{uuid.uuid4().hex[:8]}_"
        previous = len(module._MIGRATIONS) - 1
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:previous])
            patch.setattr(module, "SCHEMA_VERSION", previous)
            async with open_backend(url, table_prefix=prefix) as old:
                await old.reviews.append_audit(
                    thread_id="t1",
                    review_id=None,
                    checkpoint_id=None,
                    event=REPLY_EVENT,
                    actor="auto",
                    payload={"outcome": "delivered"},
                    at=T0,
                )
                old_rows = await old.reviews.audit_rows()
        for _ in range(2):  # the step is idempotent: a second open changes nothing
            async with open_backend(url, table_prefix=prefix) as new:
                assert await new.reviews.audit_rows() == old_rows
        async with open_backend(url, table_prefix=prefix) as new:
            coord = coordinator(new, qa_sampling=ALL)
            t = tid()
            await coord.process(t, CLEAN)
            assert [q.thread_id for q in await coord.qa_pending()] == [t]
            assert (await coord.verify_audit()).ok
