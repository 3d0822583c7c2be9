"""QA sampling's configuration and draw: seeded, reproducible, stratified at its rates."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_compliance import (
    ConfigurationError,
    HitlCoordinator,
    InvalidDecisionError,
    QaReview,
    QaRuleCount,
    QaSampling,
    build_compliance_graph,
)
from hitl_compliance.qa import check_verdict, count_qa, qa_review_id, sample_point, stratum_of

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
IDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


class TestDraw:
    def test_the_draw_is_sha256_of_seed_thread_and_turn(self) -> None:
        """An auditor recomputes a draw with any SHA-256: the first 8 bytes over 2**64."""
        digest = hashlib.sha256(b"2031-q1\x00thread-1\x001").digest()
        assert sample_point("2031-q1", "thread-1", "1") == int.from_bytes(digest[:8], "big") / 2**64
        # Pinned: the same draw in every release, so a sample is reproducible for years.
        assert sample_point("2031-q1", "thread-1", "1") == 0.1198353897238202

    @given(seed=IDS, thread=IDS, turn=IDS)
    def test_a_draw_is_deterministic_and_in_the_unit_interval(
        self, seed: str, thread: str, turn: str
    ) -> None:
        """The same inputs give the same draw, in [0, 1); the same choice on every run."""
        point = sample_point(seed, thread, turn)
        assert 0.0 <= point < 1.0
        assert sample_point(seed, thread, turn) == point
        qa = QaSampling(rate=0.3, seed=seed)
        assert qa.selects(thread, turn) == (point < 0.3)
        assert QaSampling(rate=0.3, seed=seed).selects(thread, turn) == qa.selects(thread, turn)

    @given(a=IDS, b=IDS)
    def test_fields_do_not_run_together(self, a: str, b: str) -> None:
        """Thread `a`+`b` turn `x` is not thread `a` turn `b`+`x` (NUL separates the fields)."""
        if b:
            assert sample_point("", a + b, "x") != sample_point("", a, b + "x")

    @settings(max_examples=15, deadline=None)
    @given(seed=IDS, rates=st.tuples(st.sampled_from([0.02, 0.1, 0.5]), st.floats(0.0, 1.0)))
    def test_each_stratum_is_sampled_at_its_rate(
        self, seed: str, rates: tuple[float, float]
    ) -> None:
        """Over 4,000 threads per stratum the share sampled is within 6 sigma of its rate."""
        base, isa = rates
        qa = QaSampling(rate=base, rates={"isa": isa}, watch=frozenset({"crypto"}), seed=seed)
        n = 4000
        for product, rate in ((None, base), ("isa", isa), ("crypto", 1.0)):
            hits = sum(qa.selects(f"thread-{i}", "1", product) for i in range(n))
            sigma = math.sqrt(n * rate * (1 - rate))
            assert abs(hits - n * rate) <= 6 * sigma + 1, (product, rate, hits)


class TestConfiguration:
    def test_rates_by_product(self) -> None:
        """A watched product is sampled at 100%; `rates` overrides `rate` per product."""
        qa = QaSampling(rate=0.02, rates={"isa": 0.5}, watch=frozenset({"crypto"}))
        assert qa.rate_for(None) == 0.02
        assert qa.rate_for("pension") == 0.02
        assert qa.rate_for("isa") == 0.5
        assert qa.rate_for("crypto") == 1.0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"rate": 1.5},
            {"rate": -0.1},
            {"rate": float("nan")},
            {"rate": "0.1"},
            {"rate": True},
            {"rates": {"isa": 2}},
            {"rates": {3: 0.1}},
            {"rates": [("isa", 0.1)]},
            {"watch": "crypto"},
            {"watch": frozenset({1})},
            {"roles": "qa"},
            {"seed": "a\x00b"},
            {"seed": 3},
        ],
    )
    def test_a_bad_configuration_is_refused(self, kwargs: dict[str, Any]) -> None:
        """Rates outside [0, 1], non-string products, roles or seeds: ConfigurationError."""
        with pytest.raises(ConfigurationError):
            QaSampling(**kwargs)

    def test_equal_configurations_hash_alike(self) -> None:
        """A QaSampling is a value: equal ones are equal and hash alike (usable as a key)."""
        a = QaSampling(rate=0.1, rates={"isa": 0.5, "sipp": 0.2}, seed="q")
        b = QaSampling(rate=0.1, rates={"sipp": 0.2, "isa": 0.5}, seed="q")
        assert a == b
        assert hash(a) == hash(b)
        assert len({a, b, QaSampling()}) == 2

    def test_sets_given_as_lists_are_frozen(self) -> None:
        """`watch` and `roles` may be any iterable of strings; they are kept as frozensets."""
        qa = QaSampling(watch=["crypto"], roles=["qa"])  # type: ignore[arg-type]
        assert qa.watch == frozenset({"crypto"})
        assert qa.roles == frozenset({"qa"})

    def test_the_coordinator_refuses_another_type(self) -> None:
        """qa_sampling must be a QaSampling."""
        from langgraph.checkpoint.memory import InMemorySaver

        graph = build_compliance_graph(lambda s: "hi", rules=[], checkpointer=InMemorySaver())
        with pytest.raises(ConfigurationError):
            HitlCoordinator(graph, qa_sampling={"rate": 1.0})  # type: ignore[arg-type]
        coord = HitlCoordinator(graph, qa_sampling=QaSampling(rate=0.5))
        assert coord.qa_sampling == QaSampling(rate=0.5)


class TestHelpers:
    def test_ids_and_strata(self) -> None:
        """A QA review id names the thread and turn; a stratum the product and the rules."""
        assert qa_review_id("t1", "3") == "qa:t1:3"
        assert stratum_of(["a", "b"], None) == "-|a,b"
        assert stratum_of([], "isa") == "isa|"

    def test_verdicts(self) -> None:
        """Only agree / disagree; a disagreement needs a reason code."""
        assert check_verdict("agree", None, qa_id="q") == "agree"
        assert check_verdict("disagree", "other", qa_id="q") == "disagree"
        for bad in ("Agree", None, 1, ["agree"]):
            with pytest.raises(InvalidDecisionError):
                check_verdict(bad, "other", qa_id="q")
        with pytest.raises(InvalidDecisionError):
            check_verdict("disagree", None, qa_id="q")

    def test_counts_per_rule(self) -> None:
        """count_qa counts each review once per rule it names, in the sampling window."""

        def review(n: int, rules: tuple[str, ...], verdict: Any, at: datetime) -> QaReview:
            return QaReview(
                qa_review_id=f"qa:t{n}:1",
                thread_id=f"t{n}",
                turn="1",
                stratum="-",
                rate=1.0,
                rules=rules,
                sampled_at=at,
                verdict=verdict,
            )

        reviews = [
            review(1, ("a", "b"), "disagree", T0),
            review(2, ("a", "a"), "agree", T0),
            review(3, ("b",), None, T0 + timedelta(hours=1)),
        ]
        assert count_qa(reviews, since=None, until=None) == (
            QaRuleCount("a", 2, 2, 1),
            QaRuleCount("b", 2, 1, 1),
        )
        assert count_qa(reviews, since=T0 + timedelta(minutes=1), until=None) == (
            QaRuleCount("b", 1, 0, 0),
        )
        assert QaRuleCount("a", 2, 2, 1).disagreement_rate == 0.5
        assert QaRuleCount("a", 1, 0, 0).disagreement_rate is None


class TestDeliveryUnchanged:
    @settings(max_examples=25, deadline=None)
    @given(
        messages=st.lists(
            st.sampled_from(["Tell me about ISAs", "Guaranteed returns?", "Hi", "Pensions?"]),
            min_size=1,
            max_size=4,
        ),
        rate=st.sampled_from([0.0, 0.5, 1.0]),
    )
    async def test_sampling_never_changes_what_is_delivered(
        self, messages: list[str], rate: float
    ) -> None:
        """Every turn's result and the thread's state are the same with and without QA;
        at rate 1 every reply the rules delivered alone is sampled once, at rate 0 none."""
        from langgraph.checkpoint.memory import InMemorySaver

        from hitl_compliance import KeywordRule
        from hitl_compliance.testing import FakeClock

        def coord(qa: QaSampling | None) -> HitlCoordinator:
            graph = build_compliance_graph(
                lambda state: state.customer_message,
                rules=[KeywordRule("guarantee", ["guaranteed returns"])],
                checkpointer=InMemorySaver(),
            )
            return HitlCoordinator(graph, clock=FakeClock(T0), qa_sampling=qa)

        plain, sampled = coord(None), coord(QaSampling(rate=rate, seed="p"))
        auto = 0
        for message in messages:
            results = []
            for c in (plain, sampled):
                result = await c.process("t1", message)
                auto += c is sampled and not result.awaiting_approval
                if result.awaiting_approval:
                    result = await c.approve("t1", reviewer="officer@bank")
                results.append(result.model_dump(exclude={"checkpoint_id", "review_id"}))
            assert results[0] == results[1]
        config = {"configurable": {"thread_id": "t1"}}
        states = [(await c.graph.aget_state(config)).values for c in (plain, sampled)]
        assert states[0] == states[1]
        delivered_alone = [q.turn for q in await sampled.qa_pending()]
        assert len(delivered_alone) == len(set(delivered_alone))
        assert len(delivered_alone) == {0.0: 0, 1.0: auto}.get(rate, len(delivered_alone))
