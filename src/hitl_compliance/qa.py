"""Second-line QA of the replies nobody reviewed: a seeded, stratified sample and its verdicts.

A coordinator built with `qa_sampling=QaSampling(...)` looks at every reply its
rules alone delivered (`replied` with `decided_by="auto"` and outcome
`delivered`) and samples some of them for a QA reviewer. A sampled turn gets a
[`QaReview`][hitl_compliance.QaReview] (id `qa:<thread id>:<turn>`) and a
`qa_sampled` ledger row; it never blocks or changes the delivery (the reply has
gone already), is not listed by `pending()` and is not swept by the SLA.

The choice is reproducible: a turn is sampled when
[`sample_point`][hitl_compliance.qa.sample_point]`(seed, thread id, turn)` (the
SHA-256 of the three, read as a number in `[0, 1)`) is below its stratum's rate,
so every process and every re-run of a turn makes the same choice, and an
auditor holding the seed can recompute the sample from the ledger alone.

A QA reviewer records `agree` or `disagree` (a disagreement needs a reason
code) with [`qa_verdict`][hitl_compliance.HitlCoordinator.qa_verdict], a
`qa_verdict` ledger row; [`qa_disagreement`][hitl_compliance.HitlCoordinator.qa_disagreement]
counts the disagreements per rule, the evidence that the rules catch what they should.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from hitl_compliance.errors import (
    ConfigurationError,
    InvalidDecisionError,
    QaAlreadyRecordedError,
    QaReviewNotFoundError,
)

__all__ = [
    "QA_SAMPLED_EVENT",
    "QA_SAMPLER",
    "QA_VERDICT_EVENT",
    "QaReview",
    "QaRuleCount",
    "QaSampling",
    "QaStore",
    "QaVerdict",
    "qa_review_id",
    "sample_point",
    "stratum_of",
]

QA_SAMPLED_EVENT = "qa_sampled"
"""The audit event of a turn sampled for QA."""

QA_VERDICT_EVENT = "qa_verdict"
"""The audit event of a QA reviewer's verdict."""

QA_SAMPLER = "system:qa"
"""The audit actor of a `qa_sampled` row (the coordinator's sampler, not a person)."""

QaVerdict = Literal["agree", "disagree"]
"""A QA reviewer's verdict on a reply the rules delivered alone."""

_VERDICTS: tuple[str, ...] = ("agree", "disagree")


def sample_point(seed: str, thread_id: str, turn: str) -> float:
    """Where a turn falls in `[0, 1)`: the first 8 bytes of SHA-256(seed, thread, turn) / 2**64.

    The three values are joined with NUL (which none of them may hold), so
    `("a", "bc")` and `("ab", "c")` never collide. Deterministic across
    processes, platforms and Python versions (no `hash()` randomisation).
    """
    digest = hashlib.sha256("\x00".join((seed, thread_id, turn)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stratum_of(rules: Sequence[str], product: str | None) -> str:
    """A turn's stratum: the product (`-` without one) and the names of the rules that passed.

    Example:
        >>> stratum_of(["no_advice", "pii"], "isa")
        'isa|no_advice,pii'
    """
    return f"{product or '-'}|{','.join(rules)}"


def qa_review_id(thread_id: str, turn: str) -> str:
    """The id of a turn's QA review: one per delivered turn, whoever samples it first."""
    return f"qa:{thread_id}:{turn}"


def _check_rate(name: str, rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ConfigurationError(f"{name} must be a number in [0, 1], got {rate!r}.")
    value = float(rate)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{name} must be in [0, 1], got {rate!r}.")
    return value


@dataclass(frozen=True, slots=True)
class QaSampling:
    """Which auto-delivered replies go to second-line QA, and who may judge them.

    Each turn belongs to a stratum (its product and its rule set, see
    [`stratum_of`][hitl_compliance.qa.stratum_of]) and is sampled with that
    stratum's rate: 1.0 for a product in `watch`, `rates[product]` when given,
    else `rate`. Sampling is independent per turn and seeded, so each stratum
    is sampled at its own rate (a stratified sample) and reproducibly.

    Args:
        rate: The share of auto-delivered replies sampled (default 2%).
        rates: Per product rates, overriding `rate`.
        watch: Products under watch: every auto-delivered reply is sampled.
        seed: Mixed into every draw: a different seed gives another, equally
            random sample; keep it to reproduce one.
        roles: Roles a QA reviewer must hold one of (a `Reviewer` with roles);
            empty: any reviewer may record a verdict.

    Example:
        ```python
        from hitl_compliance import QaSampling

        qa = QaSampling(rate=0.02, watch=frozenset({"crypto_isa"}), seed="2031-q1")
        assert qa.rate_for("crypto_isa") == 1.0
        ```
    """

    rate: float = 0.02
    rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    watch: frozenset[str] = frozenset()
    seed: str = ""
    roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("rate", self.rate))
        if not isinstance(self.rates, Mapping):
            raise ConfigurationError("rates must map product names to rates.")
        checked = {}
        for product, value in self.rates.items():
            if not isinstance(product, str):
                raise ConfigurationError(f"rates keys must be product names, got {product!r}.")
            checked[product] = _check_rate(f"rates[{product!r}]", value)
        object.__setattr__(self, "rates", MappingProxyType(checked))
        for name in ("watch", "roles"):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, Iterable):
                raise ConfigurationError(f"{name} must be a set of strings.")
            values = frozenset(values)
            if not all(isinstance(v, str) for v in values):
                raise ConfigurationError(f"{name} must be a set of strings.")
            object.__setattr__(self, name, values)
        if not isinstance(self.seed, str) or "\x00" in self.seed:
            raise ConfigurationError("seed must be a string without NUL characters.")

    def __hash__(self) -> int:
        # The generated hash would hash the read-only mapping, which is unhashable.
        rates = tuple(sorted(self.rates.items()))
        return hash((self.rate, rates, self.watch, self.seed, self.roles))

    def rate_for(self, product: str | None) -> float:
        """The sampling rate of a turn about `product` (None: no product known)."""
        if product is not None and product in self.watch:
            return 1.0
        if product is not None and product in self.rates:
            return self.rates[product]
        return self.rate

    def selects(self, thread_id: str, turn: str, product: str | None = None) -> bool:
        """Whether the turn is sampled: its `sample_point` is below its stratum's rate."""
        return sample_point(self.seed, thread_id, turn) < self.rate_for(product)


class QaReview(BaseModel):
    """A sampled auto-delivered reply awaiting (or holding) a QA reviewer's verdict."""

    model_config = ConfigDict(frozen=True)

    qa_review_id: str
    thread_id: str
    turn: str
    stratum: str
    rate: float
    rules: tuple[str, ...]
    product: str | None = None
    reply_seq: int | None = None
    """The `seq` of the `replied` audit row the sample was drawn from."""
    sampled_at: datetime
    verdict: QaVerdict | None = None
    reason_code: str | None = None
    reviewer: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QaRuleCount:
    """One rule's QA outcome: reviews sampled, verdicts recorded, disagreements."""

    rule: str
    sampled: int
    reviewed: int
    disagreements: int

    @property
    def disagreement_rate(self) -> float | None:
        """Disagreements per verdict recorded; None before any verdict."""
        return None if self.reviewed == 0 else self.disagreements / self.reviewed


def check_verdict(verdict: object, reason_code: str | None, *, qa_id: str) -> QaVerdict:
    """The verdict as typed; InvalidDecisionError for another value or a disagree without a code."""
    if verdict not in _VERDICTS:
        raise InvalidDecisionError(
            f"QA verdict must be 'agree' or 'disagree', got {verdict!r} for {qa_id!r}."
        )
    if verdict == "disagree" and reason_code is None:
        raise InvalidDecisionError(
            f"A 'disagree' verdict needs a reason_code (one of the coordinator's reason "
            f"codes) for {qa_id!r}: say what the rules missed."
        )
    return "agree" if verdict == "agree" else "disagree"


def qa_not_found(qa_review_id: str) -> QaReviewNotFoundError:
    """The error of a verdict on an id no QA review has (every store raises this one)."""
    return QaReviewNotFoundError(
        f"No QA review {qa_review_id!r}: the turn was not sampled, or the id is mistyped "
        "(ids are qa:<thread id>:<turn>; list them with qa_pending()).",
        qa_review_id=qa_review_id,
    )


def qa_recorded(review: QaReview) -> QaAlreadyRecordedError:
    """The error of a second verdict on one QA review (nothing changed)."""
    return QaAlreadyRecordedError(
        f"QA review {review.qa_review_id!r} already holds the verdict {review.verdict!r} "
        f"by {review.reviewer!r}; a verdict is never replaced (nothing changed).",
        thread_id=review.thread_id,
        qa_review_id=review.qa_review_id,
        verdict=review.verdict,
    )


def in_window(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    """Whether `since <= at < until` (either bound None: open)."""
    return (since is None or at >= since) and (until is None or at < until)


def count_qa(
    reviews: Iterable[QaReview], *, since: datetime | None, until: datetime | None
) -> tuple[QaRuleCount, ...]:
    """Per rule, the QA reviews sampled in `[since, until)`: sampled, reviewed, disagreed."""
    counts: dict[str, list[int]] = {}
    for review in reviews:
        if not in_window(review.sampled_at, since, until):
            continue
        for rule in set(review.rules):
            row = counts.setdefault(rule, [0, 0, 0])
            row[0] += 1
            row[1] += review.verdict is not None
            row[2] += review.verdict == "disagree"
    return tuple(QaRuleCount(rule, *counts[rule]) for rule in sorted(counts))


@runtime_checkable
class QaStore(Protocol):
    """A store that keeps QA reviews (the library's three stores): `HitlCoordinator(qa_sampling=)`.

    QA reviews live apart from first-line reviews: `list_pending`, the SLA's
    queries and `recover()` never see them.
    """

    async def open_qa_review(self, review: QaReview, *, payload: dict[str, object]) -> bool:
        """Insert the QA review and its `qa_sampled` audit row (`payload`), atomically.

        Insert-if-absent by `qa_review_id`: when it exists, write nothing and
        return False (the turn was sampled already, by a re-run or another process).
        """
        ...

    async def get_qa_review(self, qa_review_id: str) -> QaReview | None:
        """The QA review, or None."""
        ...

    async def list_qa_pending(self, *, limit: int | None = None) -> list[QaReview]:
        """QA reviews without a verdict, by `(sampled_at, qa_review_id)`."""
        ...

    async def record_qa_verdict(
        self,
        qa_review_id: str,
        *,
        verdict: QaVerdict,
        reason_code: str | None,
        reviewer: str,
        now: datetime,
        payload: dict[str, object],
    ) -> QaReview:
        """Record the verdict and its `qa_verdict` audit row (`payload`), atomically, once.

        Raises:
            QaReviewNotFoundError: no QA review has this id.
            QaAlreadyRecordedError: it holds a verdict already; nothing changed.
        """
        ...

    async def qa_disagreement(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[QaRuleCount, ...]:
        """Per rule, QA reviews sampled at `since <= sampled_at < until`: sampled, with a
        verdict, disagreed; sorted by rule."""
        ...
