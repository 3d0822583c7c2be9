"""The reason-code taxonomy, its policy, the check every decision passes, and the count."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    FCA_RETAIL_REASON_CODES,
    AuditRecord,
    ConfigurationError,
    Decision,
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    ReasonCode,
    ReasonCodeCount,
    ReasonCodeError,
    ReasonCodes,
    ReasonPolicy,
    build_compliance_graph,
)
from hitl_compliance.reasons import check_reason, count_reason_codes, reason_action

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class TestTaxonomy:
    def test_defaults_cover_fca_retail_conduct(self) -> None:
        """The default codes include the FCA retail ones, the SLA's, and `other` with text."""
        for code in (
            "misleading_promotion",
            "unsuitable_advice",
            "missing_risk_warning",
            "vulnerable_customer",
            "unfair_terms",
            "sla_expired",
        ):
            assert code in FCA_RETAIL_REASON_CODES
        other = FCA_RETAIL_REASON_CODES.get("other")
        assert other is not None
        assert other.requires_text

    @pytest.mark.parametrize("code", ["", "Upper", "1st", "has space", "x" * 65])
    def test_bad_code(self, code: str) -> None:
        """A code is a lower-case identifier of at most 64 characters."""
        with pytest.raises(ConfigurationError):
            ReasonCode(code, "Label")

    def test_label_required_and_codes_unique(self) -> None:
        """A blank label, a repeated code or an empty taxonomy is a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            ReasonCode("a", " ")
        with pytest.raises(ConfigurationError):
            ReasonCodes((ReasonCode("a", "A"), ReasonCode("a", "A again")))
        with pytest.raises(ConfigurationError):
            ReasonCodes(())

    def test_with_codes_replaces_in_place_and_appends(self) -> None:
        """with_codes keeps the order, replaces a code already there, appends new ones."""
        base = ReasonCodes((ReasonCode("a", "A"), ReasonCode("b", "B")))
        grown = base.with_codes(ReasonCode("c", "C"), ReasonCode("a", "A2"))
        assert [(c.code, c.label) for c in grown] == [("a", "A2"), ("b", "B"), ("c", "C")]
        assert len(base) == 2


class TestPolicy:
    def test_unknown_action(self) -> None:
        """Only approve, edit, reject and expiry may be required."""
        with pytest.raises(ConfigurationError):
            ReasonPolicy(require={"delete"})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            ReasonPolicy(require="reject")  # type: ignore[arg-type]

    def test_expiry_needs_a_code_the_taxonomy_has(self) -> None:
        """expiry required without expiry_code, or a code not in (or needing text): refused."""
        with pytest.raises(ConfigurationError):
            ReasonPolicy(require={"expiry"})
        graph = build_compliance_graph(
            lambda state: "x", rules=[KeywordRule("k", ["x"])], checkpointer=InMemorySaver()
        )
        for code in ("nope", "other"):
            with pytest.raises(ConfigurationError):
                HitlCoordinator(graph, reason_policy=ReasonPolicy(expiry_code=code))
        with pytest.raises(ConfigurationError):
            HitlCoordinator(graph, reason_codes=["a"])  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            HitlCoordinator(graph, reason_policy={"reject"})  # type: ignore[arg-type]


class TestCheck:
    POLICY = ReasonPolicy(require={"reject"})

    def check(self, action: Any, code: str | None, text: str | None = None) -> None:
        check_reason(FCA_RETAIL_REASON_CODES, self.POLICY, action=action, code=code, text=text)

    def test_required_missing_unknown_and_text(self) -> None:
        """Missing where required, unknown, or `other` without text: ReasonCodeError."""
        with pytest.raises(ReasonCodeError) as missing:
            self.check("reject", None)
        assert (missing.value.code, missing.value.action) == (None, "reject")
        with pytest.raises(ReasonCodeError) as unknown:
            self.check("approve", "nope")
        assert unknown.value.code == "nope"
        with pytest.raises(ReasonCodeError):
            self.check("reject", "other", "  ")
        assert issubclass(ReasonCodeError, InvalidDecisionError)

    def test_accepted(self) -> None:
        """A known code, or none where none is required, passes."""
        self.check("reject", "other", "why")
        self.check("approve", None)
        self.check("edit", "misleading_promotion")

    def test_actions(self) -> None:
        """SLA decisions are expiry; rejections reject; approvals edit only when they edit."""
        assert reason_action(approved=True, system=True, edited=False) == "expiry"
        assert reason_action(approved=False, system=False, edited=False) == "reject"
        assert reason_action(approved=True, system=False, edited=True) == "edit"
        assert reason_action(approved=True, system=False, edited=False) == "approve"

    def test_decision_keeps_its_earlier_stored_form(self) -> None:
        """A decision without a code stores no `reason_code` key; one with a code keeps it."""
        plain = Decision(approved=True, reviewer="r", decided_at=T0).to_state()
        assert "reason_code" not in plain
        coded = Decision(approved=False, reviewer="r", decided_at=T0, reason_code="other")
        assert coded.to_state()["reason_code"] == "other"
        with pytest.raises(ValueError, match="reason_code"):
            Decision(approved=False, reviewer="r", decided_at=T0, reason_code="")


def row(code: str | None, event: str, hours: int) -> AuditRecord:
    payload: dict[str, Any] = {} if code is None else {"reason_code": code}
    return AuditRecord(
        seq=hours,
        thread_id="t",
        review_id="r",
        checkpoint_id="c",
        event=event,
        actor="a",
        payload=payload,
        at=T0 + timedelta(hours=hours),
        prev_hash="",
        global_prev_hash="",
        hash="",
    )


class TestCount:
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([None, "a", "b", "other"]),
                st.sampled_from(["approved", "rejected", "expired"]),
                st.integers(0, 48),
            ),
            max_size=40,
        ),
        st.integers(0, 48),
        st.integers(0, 48),
    )
    def test_count_is_the_rows_in_the_window(
        self, rows: list[tuple[str | None, str, int]], start: int, end: int
    ) -> None:
        """Every coded row in [since, until) is counted once under its (code, event)."""
        records = [row(*r) for r in rows]
        since, until = T0 + timedelta(hours=start), T0 + timedelta(hours=end)
        counts = count_reason_codes(records, since=since, until=until)
        expected: dict[tuple[str, str], int] = {}
        for code, event, hours in rows:
            if code is not None and start <= hours < end:
                expected[(code, event)] = expected.get((code, event), 0) + 1
        assert counts == tuple(
            ReasonCodeCount(code, event, n) for (code, event), n in sorted(expected.items())
        )
        assert sum(c.count for c in count_reason_codes(records, since=None, until=None)) == len(
            [r for r in rows if r[0] is not None]
        )
