"""The coordinator's OpenTelemetry instruments (see `hitl_compliance.telemetry`).

Only built when `opentelemetry-api` imports: the coordinator's `Context`
holds None otherwise, and each call site's cost is one `is None` branch.
Attributes are ids, outcomes, reviewer ids and rule names, never text a
customer wrote or a draft or an edit; an error is recorded by its type
alone, since messages of the library's errors may quote a finding's evidence.

The pending gauge is observed in the exporter's thread, which cannot await
the store, so it reports the count the last `process`, decision, sweep or
`recover` read (`count_pending`, one indexed count) on this meter provider;
they read it only once a reader has collected the gauge (so without an SDK,
no operation pays for the query).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from hitl_compliance.errors import ConfigurationError, HitlError, QuorumPendingError
from hitl_compliance.models import ProcessResult, ReviewRecord
from hitl_compliance.policy import Reviewer
from hitl_compliance.state import Decision
from hitl_compliance.stores.base import PendingCounter, ReviewStore
from hitl_compliance.telemetry import INSTRUMENTATION_NAME, Telemetry

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "DECISIONS",
    "PENDING",
    "SLA_BREACHES",
    "TIME_TO_DECISION",
    "WAIT_BUCKETS",
    "Instruments",
    "instruments_for",
    "outcome_of",
]

T = TypeVar("T")

DECISIONS = "hitl.decisions"
SLA_BREACHES = "hitl.sla.breaches"
TIME_TO_DECISION = "hitl.time_to_decision"
PENDING = "hitl.reviews.pending"

WAIT_BUCKETS: tuple[float, ...] = (
    *(1.0, 5.0, 15.0, 30.0),  # seconds
    *(60.0, 120.0, 300.0, 600.0, 1800.0),  # minutes
    *(3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0),  # hours
    604800.0,  # a week
)
"""Time-to-decision buckets (seconds, 1 s to a week): the SDK's default ones stop at
10,000 s, and a review waits minutes to days (advisory: a view may override them)."""

_THREAD = "hitl.thread_id"
_REVIEW = "hitl.review_id"
_OUTCOME = "hitl.outcome"


def instruments_for(telemetry: Telemetry | None, store: ReviewStore) -> Instruments | None:
    """The coordinator's instruments: None when disabled, or by default without the extra.

    Raises:
        ConfigurationError: `telemetry` is not a Telemetry, or asks for telemetry
            and `opentelemetry-api` is not installed.
    """
    if telemetry is not None and not isinstance(telemetry, Telemetry):
        raise ConfigurationError(
            f"telemetry must be a hitl_compliance.Telemetry, got {type(telemetry).__name__}."
        )
    if telemetry is not None and not telemetry.enabled:
        return None
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        if telemetry is None:
            return None
        raise ConfigurationError(
            "Telemetry needs opentelemetry-api: pip install 'hitl-compliance[otel]' "
            "(or pass telemetry=Telemetry(enabled=False))."
        ) from None
    given = telemetry or Telemetry()
    tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=given.tracer_provider)
    provider = given.meter_provider or metrics.get_meter_provider()
    return Instruments(
        tracer, _meters(provider), store, global_tracer=given.tracer_provider is None
    )


class _Meters:
    """The metric instruments of one meter provider, shared by its coordinators.

    Created once per provider: a provider keeps every instrument (and the gauge's
    callback) it ever made, so one per coordinator would pile up.
    """

    def __init__(self, meter: Meter) -> None:
        self.decisions = meter.create_counter(
            DECISIONS, unit="{decision}", description="Reviews decided, by outcome."
        )
        self.breaches = meter.create_counter(
            SLA_BREACHES,
            unit="{review}",
            description="Reviews an SLA sweep resolved or escalated past their deadline.",
        )
        about = "From a review's request to its decision, by the coordinator's clock."
        try:
            self.waited = meter.create_histogram(
                TIME_TO_DECISION,
                unit="s",
                description=about,
                explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
            )
        except TypeError:  # opentelemetry-api < 1.23 takes no advisory buckets
            self.waited = meter.create_histogram(TIME_TO_DECISION, unit="s", description=about)
        self.pending: int | None = None
        # Set by the first collection: until a reader observes the gauge (no SDK, or
        # none configured yet) no operation pays for a count query.
        self.observed = False
        meter.create_observable_gauge(
            PENDING,
            callbacks=[self._observe],
            unit="{review}",
            description="Pending reviews in the store, as last counted by a coordinator.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        self.observed = True
        pending = self.pending
        return () if pending is None else (Observation(pending),)


_by_provider: weakref.WeakKeyDictionary[Any, _Meters] = weakref.WeakKeyDictionary()


def _meters(provider: MeterProvider) -> _Meters:
    try:
        meters = _by_provider.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced: not shared
        return _Meters(provider.get_meter(INSTRUMENTATION_NAME))
    if meters is None:
        meters = _Meters(provider.get_meter(INSTRUMENTATION_NAME))
        _by_provider[provider] = meters
    return meters


def outcome_of(made: Decision, payload: dict[str, Any]) -> str:
    """`approved`, `edited` (delivered other than the draft), `rejected` or `expired`."""
    if made.kind == "system":
        return "expired"
    if not made.approved:
        return "rejected"
    return "edited" if "diff" in payload else "approved"


def _attrs(**values: str | None) -> dict[str, str]:
    """Span attributes from the values that are strings (a bad argument is not recorded)."""
    return {f"hitl.{k}": v for k, v in values.items() if isinstance(v, str)}


class Instruments:
    """A coordinator's tracer, its provider's metrics and its store's pending count."""

    def __init__(
        self, tracer: Tracer, meters: _Meters, store: ReviewStore, *, global_tracer: bool = False
    ) -> None:
        self._tracer = tracer
        self._meters = meters
        self._count = store.count_pending if isinstance(store, PendingCounter) else None
        self._global_tracer = global_tracer

    def _tracing(self) -> bool:
        """False while spans would go nowhere: the global tracer provider is still the API's proxy.

        Checked on every span, so an SDK installed after the coordinator was built
        is used from its next call on.
        """
        if not self._global_tracer:
            return True
        from opentelemetry.trace import ProxyTracerProvider, get_tracer_provider

        return not isinstance(get_tracer_provider(), ProxyTracerProvider)

    @contextmanager
    def span(self, name: str, attributes: dict[str, str]) -> Iterator[Span]:
        """A current span; an exception sets status ERROR and `error.type`, not its message."""
        from opentelemetry.trace import INVALID_SPAN, Status, StatusCode

        if not self._tracing():
            yield INVALID_SPAN  # records nothing, and costs no context switch
            return
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except BaseException as exc:
                kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
                span.set_attribute("error.type", kind)
                span.add_event("exception", {"exception.type": kind})
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    async def refresh_pending(self) -> None:
        """Read the store's pending count for the gauge (one indexed count), once observed."""
        if self._count is not None and self._meters.observed:
            self._meters.pending = await self._count()

    async def process(self, thread_id: str, work: Awaitable[ProcessResult]) -> ProcessResult:
        """`hitl.process` around a turn."""
        with self.span("hitl.process", _attrs(thread_id=thread_id)) as span:
            result = await work
            _describe(span, result)
        await self.refresh_pending()
        return result

    async def decide(
        self,
        action: str,
        thread_id: str,
        reviewer: str | Reviewer,
        review_id: str | None,
        reason_code: str | None,
        work: Awaitable[ProcessResult],
    ) -> ProcessResult:
        """`hitl.decide` around `approve()` / `reject()`."""
        who = reviewer.id if isinstance(reviewer, Reviewer) else reviewer
        attributes = _attrs(
            thread_id=thread_id,
            review_id=review_id,
            action=action,
            reviewer=who,
            via="coordinator",
        )
        with self.span("hitl.decide", attributes) as span:
            result = await work
            _describe(span, result)
            if isinstance(reason_code, str) and reason_code:
                # Only once the decision succeeded: then it is a code of the taxonomy,
                # not whatever a caller typed.
                span.set_attribute("hitl.reason_code", reason_code)
        await self.refresh_pending()
        return result

    async def decide_in_graph(
        self, thread_id: str, review_id: str | None, made: Decision, work: Awaitable[T]
    ) -> T:
        """`hitl.decide` around a decision claimed inside the graph (`via` = `graph`)."""
        attributes = _attrs(
            thread_id=thread_id,
            review_id=review_id,
            action="approve" if made.approved else "reject",
            reviewer=made.reviewer,
            reason_code=made.reason_code,
            via="graph",
        )
        with self.span("hitl.decide", attributes) as span:
            claimed = await work
            if isinstance(claimed, QuorumPendingError):
                span.set_attribute(_OUTCOME, "voted")
            elif isinstance(claimed, HitlError):
                from opentelemetry.trace import Status, StatusCode

                kind = f"{type(claimed).__module__}.{type(claimed).__qualname__}"
                span.set_attribute(_OUTCOME, "refused")
                span.set_attribute("error.type", kind)
                span.set_status(Status(StatusCode.ERROR, type(claimed).__name__))
            else:
                span.set_attribute(_OUTCOME, "claimed")
        return claimed

    async def resume(self, review: ReviewRecord, made: Decision, work: Awaitable[T]) -> T:
        """`hitl.resume` around running a claimed decision's graph to its outcome."""
        attributes = _attrs(
            thread_id=review.thread_id,
            review_id=review.review_id,
            action="approve" if made.approved else "reject",
            decision_kind=made.kind,
        )
        with self.span("hitl.resume", attributes):
            return await work

    async def batch(self, name: str, work: Awaitable[list[ProcessResult]]) -> list[ProcessResult]:
        """`hitl.recover` / `hitl.sweep`, with `hitl.count` results."""
        with self.span(name, {}) as span:
            results = await work
            span.set_attribute("hitl.count", len(results))
        await self.refresh_pending()
        return results

    def decided(
        self,
        review: ReviewRecord,
        made: Decision,
        payload: dict[str, Any],
        at: datetime,
        via: str,
    ) -> None:
        """Count a recorded decision and the time its review waited for it."""
        attributes = {_OUTCOME: outcome_of(made, payload), "hitl.via": via}
        self._meters.decisions.add(1, attributes)
        waited = (at - review.requested_at).total_seconds()
        self._meters.waited.record(max(waited, 0.0), attributes)

    def breached(self, action: str) -> None:
        """Count a review an SLA sweep resolved (or escalated) past its deadline."""
        self._meters.breaches.add(1, {"hitl.action": action})


def _describe(span: Span, result: ProcessResult) -> None:
    """A result's outcome, review id and the names of its findings' rules."""
    span.set_attribute(_OUTCOME, result.status)
    if result.review_id is not None:
        span.set_attribute(_REVIEW, result.review_id)
    rules = sorted({finding.rule for finding in result.violations})
    if rules:
        span.set_attribute("hitl.rules", rules)
