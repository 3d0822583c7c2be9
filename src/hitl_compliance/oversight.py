"""Oversight analytics: who decided what, how fast, how often they overrode the draft.

[`HitlCoordinator.oversight_report`][hitl_compliance.HitlCoordinator.oversight_report]
returns an [`OversightReport`][hitl_compliance.oversight.OversightReport] for the
reviews decided at `since <= decided_at < until`: counts of approve / edit /
reject / expire / escalate, the override rate, the median and 90th percentile
time to decision, SLA breaches and reason codes, per reviewer, per rule and per
period, a per-rule QA section, and **rubber-stamp flags** (decisions faster than
the draft can be read, long unbroken approval streaks, a reviewer approving far
above the rest of the team), each naming the reviews behind it.

The stores read only the window's rows through indexes (decided reviews by
`decided_at`, audit rows by `(event, at)`) and hand them, as
[`DecisionFact`][hitl_compliance.oversight.DecisionFact],
[`EscalationFact`][hitl_compliance.oversight.EscalationFact] and
[`QaFact`][hitl_compliance.oversight.QaFact], to
[`build_report`][hitl_compliance.oversight.build_report], the one definition of
every figure.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hitl_compliance.models import AuditRecord, ReviewRecord

__all__ = [
    "ERASED_DRAFT",
    "MAX_PERIODS",
    "PERIODS",
    "QA_EVENT",
    "CodeCount",
    "DecisionFact",
    "EscalationFact",
    "FlagKind",
    "Outcome",
    "OutcomeStats",
    "OversightReport",
    "OversightThresholds",
    "Period",
    "PeriodStats",
    "QaFact",
    "ReviewerStats",
    "RubberStampFlag",
    "RuleStats",
    "build_report",
    "decision_fact",
    "outcome_of",
    "period_count",
    "period_start",
    "qa_fact",
    "report_of_records",
    "rule_ids",
]

Outcome = Literal["approve", "edit", "reject", "expire", "escalate"]
"""What happened to a review: a person's decision (`approve`, `edit`: approved with an
edited text or tool arguments, `reject`), or the SLA's (`expire`, `escalate`)."""

Period = Literal["day", "week", "month"]
"""The length (UTC) of one row of
[`OversightReport.periods`][hitl_compliance.oversight.OversightReport.periods]."""

PERIODS: tuple[Period, ...] = ("day", "week", "month")

MAX_PERIODS = 1000
"""The most periods one report holds (about 2.7 years by day, 19 years by week)."""

_PERIOD_DAYS = {"day": 1, "week": 7, "month": 28}

FlagKind = Literal["fast_decision", "approval_streak", "high_approval_rate"]
"""Why a [`RubberStampFlag`][hitl_compliance.oversight.RubberStampFlag] was raised."""

QA_EVENT = "qa_verdict"
"""The audit event of a QA verdict: payload `{"verdict": "agree" | "disagree",
"reason_code", "rules": [rule ids], "sampled_review_id"}`."""

ERASED_DRAFT = "[erased]"
"""A draft erased on request: its length is unknown, so its reading time is not checked."""

_FORBID = ConfigDict(frozen=True, extra="forbid")


class OversightThresholds(BaseModel):
    """What counts as a rubber stamp (every field configurable).

    A decision is *too fast* when its time to decision is below the draft's
    reading time: `max(min_reading_seconds, words / words_per_minute * 60)`,
    with `words = characters / characters_per_word` (Carver's standard-length
    word is 6 characters, spaces included).
    """

    model_config = _FORBID

    words_per_minute: float = Field(default=400.0, gt=0, le=10_000)
    """The reading speed the floor assumes; 400 is generous (adults read non-fiction
    silently at about 240 words a minute, Brysbaert 2019), so a flag means a skim at best."""
    characters_per_word: float = Field(default=6.0, gt=0, le=100)
    min_reading_seconds: float = Field(default=3.0, ge=0, le=86_400)
    """No decision is credible faster than this, however short the draft."""
    streak_length: int = Field(default=25, ge=2, le=1_000_000)
    """This many unedited approvals in a row by one reviewer (no edit or reject between)."""
    approval_rate_factor: float = Field(default=3.0, gt=1, le=1_000)
    """A reviewer is flagged when the rest of the team overrides (edits or rejects) at
    least this many times as often as they do."""
    min_decisions: int = Field(default=20, ge=1, le=1_000_000)
    """Decisions a reviewer (and the rest of the team) need before their rates are compared."""

    def reading_floor(self, characters: int) -> float:
        """Seconds a draft of `characters` characters takes to read, at least."""
        words = characters / self.characters_per_word
        return max(self.min_reading_seconds, words / self.words_per_minute * 60.0)


class CodeCount(BaseModel):
    """How many decisions recorded one reason code."""

    model_config = _FORBID

    code: str
    count: int


class OutcomeStats(BaseModel):
    """The figures of one group of reviews (all of them, one reviewer, one rule, one period)."""

    model_config = _FORBID

    approve: int = 0
    edit: int = 0
    reject: int = 0
    expire: int = 0
    escalate: int = 0
    decisions: int = 0
    """People's decisions: approve + edit + reject."""
    override_rate: float | None = None
    """(edit + reject) / decisions; None without decisions."""
    median_seconds: float | None = None
    """Median time to decision (`decided_at - requested_at`) of people's decisions."""
    p90_seconds: float | None = None
    """90th percentile of the same (inclusive method; the value itself for one decision)."""
    sla_breaches: int = 0
    """Deadlines missed: a decision after its deadline, an expiry, an escalation."""
    reason_codes: tuple[CodeCount, ...] = ()
    """Reason codes of the decisions (expiries included), by code."""


class ReviewerStats(OutcomeStats):
    """One reviewer's figures (the SLA's outcomes are under the SLA's actor, `sla`)."""

    reviewer: str


class RuleStats(OutcomeStats):
    """The figures of the reviews with a finding of one rule, and its QA verdicts."""

    rule: str
    qa_reviews: int = 0
    """QA verdicts on sampled reviews with a finding of this rule."""
    qa_disagreements: int = 0
    qa_disagreement_rate: float | None = None


class PeriodStats(OutcomeStats):
    """The figures of one period `start <= t < end` (UTC days, ISO weeks or months)."""

    start: datetime
    end: datetime


class RubberStampFlag(BaseModel):
    """One sign of rubber-stamping, with the reviews behind it."""

    model_config = _FORBID

    kind: FlagKind
    reviewer: str
    review_ids: tuple[str, ...]
    detail: str
    """What was seen, in one sentence."""


class OversightReport(BaseModel):
    """Oversight analytics of the reviews decided at `since <= t < until`."""

    model_config = _FORBID

    since: datetime
    until: datetime
    period: Period
    thresholds: OversightThresholds
    totals: OutcomeStats
    reviewers: tuple[ReviewerStats, ...]
    """By reviewer id."""
    rules: tuple[RuleStats, ...]
    """By rule id (a review with findings of two rules counts under both)."""
    periods: tuple[PeriodStats, ...]
    """Every period from the one holding `since` to the one before `until`, empty ones too."""
    flags: tuple[RubberStampFlag, ...]
    """By kind, then reviewer."""
    qa_reviews: int = 0
    """QA verdicts (`qa_verdict` audit rows) in the window."""
    qa_disagreements: int = 0

    def to_html(self) -> str:
        """The report as one self-contained HTML page (charts by plotly.js, inlined).

        Needs the `report` extra (`pip install "hitl-compliance[report]"`).

        Raises:
            ConfigurationError: plotly is not installed.
        """
        from hitl_compliance._oversight_html import render

        return render(self)


@dataclass(frozen=True, slots=True)
class DecisionFact:
    """One decided review, as a store reads it for a report."""

    review_id: str
    reviewer: str
    outcome: Outcome
    requested_at: datetime
    decided_at: datetime
    deadline: datetime | None
    draft_characters: int | None
    """None when the draft was erased."""
    rules: tuple[str, ...]
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class EscalationFact:
    """One `escalated` audit row (the SLA raised an overdue review's priority)."""

    review_id: str
    actor: str
    at: datetime
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QaFact:
    """One `qa_verdict` audit row."""

    at: datetime
    disagree: bool
    rules: tuple[str, ...]


def qa_fact(at: datetime, payload: Any) -> QaFact | None:
    """The QA fact of a `qa_verdict` row's payload (JSON text or object); None if malformed."""
    data = json.loads(payload) if isinstance(payload, str) else payload
    if not isinstance(data, dict) or data.get("verdict") not in ("agree", "disagree"):
        return None
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        return None
    names = tuple(dict.fromkeys(str(r) for r in rules if isinstance(r, str)))
    return QaFact(at, data["verdict"] == "disagree", names)


def rule_ids(violations: Iterable[Any]) -> tuple[str, ...]:
    """Each rule of a review's findings once, in finding order (plain dicts or RuleResults)."""
    names = []
    for v in violations:
        name = v.get("rule") if isinstance(v, dict) else getattr(v, "rule", None)
        if isinstance(name, str):
            names.append(name)
    return tuple(dict.fromkeys(names))


def outcome_of(status: str, *, edited: bool) -> Outcome | None:
    """The outcome of a final review status (None for an open review)."""
    if status == "approved":
        return "edit" if edited else "approve"
    if status == "rejected":
        return "reject"
    if status == "expired":
        return "expire"
    return None


def period_start(at: datetime, period: Period) -> datetime:
    """The start (UTC) of the period holding `at`."""
    t = at.astimezone(timezone.utc)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_count(since: datetime, until: datetime, period: Period) -> int:
    """At most how many periods `[since, until)` spans (an upper bound, counted cheaply)."""
    return (until - since).days // _PERIOD_DAYS[period] + 2


def _next_period(start: datetime, period: Period) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


class _Acc:
    """Counts of one group, turned into stats at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: list[float] = []
        self.breaches = 0
        self.codes: Counter[str] = Counter()

    def add(self, fact: DecisionFact) -> None:
        self.counts[fact.outcome] += 1
        if fact.outcome != "expire":
            self.seconds.append((fact.decided_at - fact.requested_at).total_seconds())
        if fact.outcome == "expire" or (
            fact.deadline is not None and fact.decided_at > fact.deadline
        ):
            self.breaches += 1
        if fact.reason_code is not None:
            self.codes[fact.reason_code] += 1

    def escalated(self) -> None:
        self.counts["escalate"] += 1
        self.breaches += 1

    def fields(self) -> dict[str, Any]:
        c = self.counts
        decisions = c["approve"] + c["edit"] + c["reject"]
        return {
            "approve": c["approve"],
            "edit": c["edit"],
            "reject": c["reject"],
            "expire": c["expire"],
            "escalate": c["escalate"],
            "decisions": decisions,
            "override_rate": (c["edit"] + c["reject"]) / decisions if decisions else None,
            "median_seconds": statistics.median(self.seconds) if self.seconds else None,
            "p90_seconds": _p90(self.seconds),
            "sla_breaches": self.breaches,
            "reason_codes": tuple(
                CodeCount(code=k, count=n) for k, n in sorted(self.codes.items())
            ),
        }


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def build_report(
    *,
    since: datetime,
    until: datetime,
    period: Period,
    thresholds: OversightThresholds,
    decisions: Iterable[DecisionFact],
    escalations: Iterable[EscalationFact],
    qa: Iterable[QaFact],
) -> OversightReport:
    """The report of the facts a store read for the window (the one definition of each figure).

    The facts are those of the window already (the stores filter them with
    their indexes); their order does not matter.
    """
    facts = sorted(decisions, key=lambda f: (f.decided_at, f.review_id))
    totals = _Acc()
    by_reviewer: dict[str, _Acc] = defaultdict(_Acc)
    by_rule: dict[str, _Acc] = defaultdict(_Acc)
    by_period: dict[datetime, _Acc] = defaultdict(_Acc)
    for fact in facts:
        for acc in (
            totals,
            by_reviewer[fact.reviewer],
            by_period[period_start(fact.decided_at, period)],
        ):
            acc.add(fact)
        for rule in fact.rules:
            by_rule[rule].add(fact)
    for esc in escalations:
        for acc in (totals, by_reviewer[esc.actor], by_period[period_start(esc.at, period)]):
            acc.escalated()
        for rule in esc.rules:
            by_rule[rule].escalated()
    qa_counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    qa_total = [0, 0]
    for verdict in qa:
        qa_total[0] += 1
        qa_total[1] += verdict.disagree
        for rule in verdict.rules:
            qa_counts[rule][0] += 1
            qa_counts[rule][1] += verdict.disagree
            by_rule.setdefault(rule, _Acc())  # a rule seen only by QA gets its row too
    rules = []
    for rule in sorted(by_rule):
        seen, disagreed = qa_counts.get(rule, (0, 0))
        rules.append(
            RuleStats(
                rule=rule,
                qa_reviews=seen,
                qa_disagreements=disagreed,
                qa_disagreement_rate=disagreed / seen if seen else None,
                **by_rule[rule].fields(),
            )
        )
    periods = []
    start = period_start(since, period)
    while start < until:
        end = _next_period(start, period)
        periods.append(PeriodStats(start=start, end=end, **by_period[start].fields()))
        start = end
    return OversightReport(
        since=since,
        until=until,
        period=period,
        thresholds=thresholds,
        totals=OutcomeStats(**totals.fields()),
        reviewers=tuple(
            ReviewerStats(reviewer=name, **by_reviewer[name].fields())
            for name in sorted(by_reviewer)
        ),
        rules=tuple(rules),
        periods=tuple(periods),
        flags=tuple(_flags(facts, thresholds)),
        qa_reviews=qa_total[0],
        qa_disagreements=qa_total[1],
    )


def _flags(facts: Sequence[DecisionFact], th: OversightThresholds) -> list[RubberStampFlag]:
    """The rubber-stamp flags of people's decisions, in decision order (facts are sorted)."""
    people: dict[str, list[DecisionFact]] = defaultdict(list)
    for fact in facts:
        if fact.outcome in ("approve", "edit", "reject"):
            people[fact.reviewer].append(fact)
    fast: list[RubberStampFlag] = []
    streaks: list[RubberStampFlag] = []
    rates: list[RubberStampFlag] = []
    for reviewer in sorted(people):
        mine = people[reviewer]
        quick = [
            f.review_id
            for f in mine
            if f.draft_characters is not None
            and (f.decided_at - f.requested_at).total_seconds()
            < th.reading_floor(f.draft_characters)
        ]
        if quick:
            fast.append(
                RubberStampFlag(
                    kind="fast_decision",
                    reviewer=reviewer,
                    review_ids=tuple(quick),
                    detail=f"{len(quick)} of {len(mine)} decisions came faster than the "
                    f"draft's reading time at {th.words_per_minute:g} words a minute "
                    f"(at least {th.min_reading_seconds:g} s).",
                )
            )
        run: list[str] = []
        for f in [*mine, None]:
            if f is not None and f.outcome == "approve":
                run.append(f.review_id)
                continue
            if len(run) >= th.streak_length:
                streaks.append(
                    RubberStampFlag(
                        kind="approval_streak",
                        reviewer=reviewer,
                        review_ids=tuple(run),
                        detail=f"{len(run)} approvals in a row without an edit or a rejection.",
                    )
                )
            run = []
        rate = _rate_flag(reviewer, mine, people, th)
        if rate is not None:
            rates.append(rate)
    return [*fast, *streaks, *rates]


def _rate_flag(
    reviewer: str,
    mine: Sequence[DecisionFact],
    people: dict[str, list[DecisionFact]],
    th: OversightThresholds,
) -> RubberStampFlag | None:
    """A flag when the rest of the team overrides `approval_rate_factor` times as often."""
    others = [f for name, fs in people.items() if name != reviewer for f in fs]
    if len(mine) < th.min_decisions or len(others) < th.min_decisions:
        return None
    overrides = sum(f.outcome != "approve" for f in mine)
    team = sum(f.outcome != "approve" for f in others) / len(others)
    own = overrides / len(mine)
    if team == 0 or own * th.approval_rate_factor > team:
        return None
    approvals = tuple(f.review_id for f in mine if f.outcome == "approve")
    return RubberStampFlag(
        kind="high_approval_rate",
        reviewer=reviewer,
        review_ids=approvals,
        detail=f"approved {1 - own:.0%} of {len(mine)} drafts unedited; the rest of the team "
        f"{1 - team:.0%} (overrides {own:.0%} against {team:.0%}).",
    )


def decision_fact(review: ReviewRecord) -> DecisionFact | None:
    """The fact of a decided review record (None for an open one)."""
    decision = review.decision or {}
    edited = decision.get("response") is not None or decision.get("tool_args") is not None
    outcome = outcome_of(review.status, edited=edited)
    if outcome is None or review.decided_at is None:
        return None
    code = decision.get("reason_code")
    draft = review.draft_response
    return DecisionFact(
        review_id=review.review_id,
        reviewer=review.reviewer or "",
        outcome=outcome,
        requested_at=review.requested_at,
        decided_at=review.decided_at,
        deadline=review.deadline,
        draft_characters=None if draft == ERASED_DRAFT else len(draft),
        rules=rule_ids(review.violations),
        reason_code=code if isinstance(code, str) else None,
    )


def report_of_records(
    reviews: Iterable[ReviewRecord],
    audit: Iterable[AuditRecord],
    *,
    since: datetime,
    until: datetime,
    period: Period,
    thresholds: OversightThresholds,
) -> OversightReport:
    """The report of records in memory (the in-memory store's; it filters them by time)."""
    by_id: dict[str, ReviewRecord] = {}
    decisions = []
    for review in reviews:
        by_id[review.review_id] = review
        if review.decided_at is not None and since <= review.decided_at < until:
            fact = decision_fact(review)
            if fact is not None:
                decisions.append(fact)
    escalations = []
    qa = []
    for row in audit:
        if not since <= row.at < until:
            continue
        if row.event == "escalated":
            esc = by_id.get(row.review_id or "")
            rules = () if esc is None else rule_ids(esc.violations)
            escalations.append(EscalationFact(row.review_id or "", row.actor, row.at, rules))
        elif row.event == QA_EVENT:
            verdict = qa_fact(row.at, row.payload)
            if verdict is not None:
                qa.append(verdict)
    return build_report(
        since=since,
        until=until,
        period=period,
        thresholds=thresholds,
        decisions=decisions,
        escalations=escalations,
        qa=qa,
    )
