"""`build_report`, the one definition of every oversight figure, on hand-made facts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hitl_compliance import OversightReport, OversightThresholds
from hitl_compliance.oversight import (
    DecisionFact,
    EscalationFact,
    QaFact,
    build_report,
    period_start,
    qa_fact,
)

T0 = datetime(2026, 12, 30, 10, 0, tzinfo=timezone.utc)


def fact(i: int, reviewer: str, outcome: str, seconds: float, **kw: object) -> DecisionFact:
    requested = T0 + timedelta(hours=i)
    fields: dict[str, object] = {
        "review_id": f"r{i}",
        "reviewer": reviewer,
        "outcome": outcome,
        "requested_at": requested,
        "decided_at": requested + timedelta(seconds=seconds),
        "deadline": None,
        "draft_characters": 600,
        "rules": ("promise",),
        "reason_code": None,
    }
    fields.update(kw)
    return DecisionFact(**fields)  # type: ignore[arg-type]


def report(facts: list[DecisionFact], **kw: object) -> OversightReport:
    args: dict[str, object] = {
        "since": T0.replace(hour=0),
        "until": T0.replace(hour=0) + timedelta(days=5),
        "period": "day",
        "thresholds": OversightThresholds(),
        "decisions": facts,
        "escalations": [],
        "qa": [],
    }
    args.update(kw)
    return build_report(**args)  # type: ignore[arg-type]


class TestFlags:
    def test_reading_floor_scales_with_the_draft(self) -> None:
        """600 characters at 400 words a minute of 6 characters: 15 s; short drafts get 3 s."""
        th = OversightThresholds()
        assert th.reading_floor(600) == pytest.approx(15.0)
        assert th.reading_floor(10) == 3.0

    def test_an_erased_draft_is_never_too_fast(self) -> None:
        """No length, no floor: only the measured decision is flagged."""
        got = report(
            [fact(0, "a", "approve", 5), fact(1, "a", "approve", 5, draft_characters=None)]
        )
        [flag] = got.flags
        assert (flag.kind, flag.review_ids) == ("fast_decision", ("r0",))

    def test_a_streak_is_broken_by_an_edit(self) -> None:
        """Three approvals, an edit, two approvals: one streak of three at length 3."""
        outcomes = ["approve", "approve", "approve", "edit", "approve", "approve"]
        facts = [fact(i, "a", o, 60) for i, o in enumerate(outcomes)]
        got = report(facts, thresholds=OversightThresholds(streak_length=3))
        streaks = [f for f in got.flags if f.kind == "approval_streak"]
        assert [f.review_ids for f in streaks] == [("r0", "r1", "r2")]

    def test_no_rate_flag_when_the_team_never_overrides(self) -> None:
        """A team that approves everything gives nobody a rate flag."""
        facts = [fact(i, name, "approve", 60) for i, name in enumerate("ab" * 3)]
        th = OversightThresholds(min_decisions=2, streak_length=100)
        assert report(facts, thresholds=th).flags == ()


class TestFigures:
    def test_periods_cross_the_year_and_escalations_count_as_breaches(self) -> None:
        """Days from 30 Dec into January; an escalation is a breach in its own period."""
        late = fact(0, "a", "reject", 600, deadline=T0 + timedelta(seconds=60))
        esc = EscalationFact("r9", "system:sla", T0 + timedelta(days=2), ("advice",))
        got = report([late], escalations=[esc])
        days = [(p.start.date().isoformat(), p.decisions, p.sla_breaches) for p in got.periods]
        assert days[:3] == [("2026-12-30", 1, 1), ("2026-12-31", 0, 0), ("2027-01-01", 0, 1)]
        assert {r.rule: r.escalate for r in got.rules} == {"advice": 1, "promise": 0}

    def test_week_and_month_starts(self) -> None:
        """Weeks start on Monday, months on the 1st (UTC)."""
        assert period_start(T0, "week").date().isoformat() == "2026-12-28"
        assert period_start(T0, "month").date().isoformat() == "2026-12-01"

    def test_qa_payloads(self) -> None:
        """A malformed verdict row is left out; rules are each counted once."""
        assert qa_fact(T0, {"verdict": "maybe"}) is None
        assert qa_fact(T0, '{"verdict": "agree", "rules": "promise"}') is None
        good = qa_fact(T0, {"verdict": "disagree", "rules": ["a", "a", "b"]})
        assert good == QaFact(T0, True, ("a", "b"))


class TestHtml:
    def test_values_are_escaped(self) -> None:
        """A reviewer named like markup is text in the tables and the embedded JSON."""
        name = "</script><img src=x onerror=alert(1)>"
        page = report([fact(0, name, "approve", 60)]).to_html()
        assert name not in page
        assert "&lt;/script&gt;&lt;img" in page
        assert "\\u003c/script\\u003e" in page
