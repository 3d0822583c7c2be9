"""OpenTelemetry spans and metrics of a coordinator, read from the SDK's in-memory exporters.

On every backend (the pending gauge reads the store's `count_pending`): span
names, nesting and attributes; decision counters by outcome, the SLA breach
counter, the time-to-decision histogram by the coordinator's clock, the
pending gauge; and no customer text, draft or edit in anything exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    KeywordRule,
    PolicyViolationError,
    RegexRule,
    ReviewNotFoundError,
    RoleBasedPolicy,
    Telemetry,
    attach_authority,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._coordination.telemetry import WAIT_BUCKETS
from hitl_compliance.backends import Backend
from hitl_compliance.stores import PendingCounter

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

CUSTOMER = "Zebra-Quokka-7781"
"""A customer's words: in the message and in the draft, never in telemetry."""
EDIT = "Marmoset-Edit-5524"
REASON = "Ocelot-Reason-3310"


class Clock:
    """A fake clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'otel.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    """An open backend with tables of its own (the Postgres schema is shared by the session)."""
    async with open_backend(url, table_prefix=f"o{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


@dataclass
class Otel:
    """A coordinator wired to in-memory span and metric exporters, and its fake clock."""

    coord: HitlCoordinator
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    clock: Clock

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def points(self) -> Iterator[tuple[str, dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        yield metric.name, dict(point.attributes or {}), point

    def value(self, name: str, **attributes: str) -> Any:
        """The metric point of `name` with exactly these attributes (None: not recorded)."""
        wanted = {f"hitl.{k}": v for k, v in attributes.items()}
        found = [p for n, a, p in self.points() if n == name and a == wanted]
        assert len(found) <= 1
        return found[0] if found else None


def draft(state: Any) -> str:
    """A draft that quotes the customer and promises returns (so it waits for review)."""
    return f"Guaranteed returns on {state.customer_message}."


@pytest.fixture
def otel(backend: Backend) -> Otel:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    clock = Clock()
    graph = build_compliance_graph(
        draft,
        rules=[
            KeywordRule("guarantee", ["guaranteed returns"], reason="promise"),
            RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block", reason="personal data"),
        ],
        checkpointer=backend.checkpointer,
        style="command_resume",
    )
    coord = HitlCoordinator(
        graph,
        reviews=backend.reviews,
        clock=clock,
        sla=timedelta(minutes=5),
        telemetry=Telemetry(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[reader]),
        ),
    )
    reader.get_metrics_data()  # a first collection, as a periodic reader makes
    return Otel(coord, spans, reader, clock)


def tid() -> str:
    return f"t-{uuid.uuid4().hex}"


class TestSpans:
    async def test_process_then_approve(self, otel: Otel) -> None:
        """process and approve each leave a span; the resume is a child of the decision."""
        thread = tid()
        paused = await otel.coord.process(thread, CUSTOMER)
        await otel.coord.approve(
            thread, reviewer="officer@bank", reason_code="compliant_as_drafted"
        )
        (process,) = otel.finished("hitl.process")
        assert dict(process.attributes or {}) == {
            "hitl.thread_id": thread,
            "hitl.outcome": "paused",
            "hitl.review_id": paused.review_id,
            "hitl.rules": ("guarantee",),
        }
        (decide,) = otel.finished("hitl.decide")
        assert dict(decide.attributes or {}) == {
            "hitl.thread_id": thread,
            "hitl.action": "approve",
            "hitl.reviewer": "officer@bank",
            "hitl.via": "coordinator",
            "hitl.outcome": "completed",
            "hitl.review_id": paused.review_id,
            "hitl.rules": ("guarantee",),
            "hitl.reason_code": "compliant_as_drafted",
        }
        (resume,) = otel.finished("hitl.resume")
        assert resume.parent is not None
        assert resume.parent.span_id == decide.context.span_id  # type: ignore[union-attr]
        assert resume.attributes is not None
        assert resume.attributes["hitl.review_id"] == paused.review_id
        assert resume.attributes["hitl.decision_kind"] == "human"
        assert process.parent is None
        assert decide.parent is None

    async def test_reject(self, otel: Otel) -> None:
        """A rejection's span says so, with the outcome `rejected`."""
        thread = tid()
        await otel.coord.process(thread, CUSTOMER)
        await otel.coord.reject(thread, reviewer="officer@bank", reason=REASON)
        (decide,) = otel.finished("hitl.decide")
        assert decide.attributes is not None
        assert decide.attributes["hitl.action"] == "reject"
        assert decide.attributes["hitl.outcome"] == "rejected"

    async def test_error_is_recorded_by_type(self, otel: Otel) -> None:
        """A refused decision: status ERROR and the exception's type, not its message."""
        with pytest.raises(ReviewNotFoundError):
            await otel.coord.approve(tid(), reviewer="officer@bank")
        (decide,) = otel.finished("hitl.decide")
        assert decide.status.status_code is StatusCode.ERROR
        assert decide.status.description == "ReviewNotFoundError"
        assert decide.attributes is not None
        assert decide.attributes["error.type"] == "hitl_compliance.errors.ReviewNotFoundError"
        (event,) = decide.events
        assert dict(event.attributes or {}) == {
            "exception.type": "hitl_compliance.errors.ReviewNotFoundError"
        }

    async def test_decision_inside_the_graph(self, otel: Otel) -> None:
        """A raw resume's decision gets a `hitl.decide` span with `via` = `graph`."""
        thread = tid()
        await otel.coord.process(thread, CUSTOMER)
        made = Decision(approved=False, reviewer="script@bank", decided_at=otel.clock())
        config = {"configurable": {"thread_id": thread}}
        await otel.coord.graph.ainvoke(Command(resume=made.to_state()), config)  # type: ignore[arg-type]
        (decide,) = otel.finished("hitl.decide")
        assert dict(decide.attributes or {}) == {
            "hitl.thread_id": thread,
            "hitl.action": "reject",
            "hitl.reviewer": "script@bank",
            "hitl.via": "graph",
            "hitl.outcome": "claimed",
        }
        assert otel.value("hitl.decisions", outcome="rejected", via="graph").value == 1

    async def test_sweep_and_recover(self, otel: Otel) -> None:
        """A sweep's span counts what it resolved, its resume nested; recover has its own."""
        thread = tid()
        await otel.coord.process(thread, CUSTOMER)
        otel.clock.now = T0 + timedelta(minutes=6)
        assert len(await otel.coord.expire_overdue()) == 1
        assert await otel.coord.recover() == []
        (sweep,) = otel.finished("hitl.sweep")
        assert dict(sweep.attributes or {}) == {"hitl.count": 1}
        (resume,) = otel.finished("hitl.resume")
        assert resume.parent is not None
        assert resume.parent.span_id == sweep.context.span_id  # type: ignore[union-attr]
        assert resume.attributes is not None
        assert resume.attributes["hitl.decision_kind"] == "system"
        (recover,) = otel.finished("hitl.recover")
        assert dict(recover.attributes or {}) == {"hitl.count": 0}

    async def test_sweeper_loop(self, otel: Otel) -> None:
        """Each sweep of `run_sla_sweeper` is a `hitl.sweep` span too."""
        thread = tid()
        await otel.coord.process(thread, CUSTOMER)
        otel.clock.now = T0 + timedelta(minutes=6)
        sweeper = asyncio.create_task(otel.coord.run_sla_sweeper(interval=3600))
        try:
            for _ in range(200):
                if otel.finished("hitl.sweep"):
                    break
                await asyncio.sleep(0.01)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        (sweep,) = otel.finished("hitl.sweep")
        assert dict(sweep.attributes or {}) == {"hitl.count": 1}
        assert otel.value("hitl.sla.breaches", action="reject").value == 1


class TestAttachedAuthority:
    async def test_decisions_on_a_graph_no_coordinator_drives(self, backend: Backend) -> None:
        """attach_authority(telemetry=): refused and claimed raw decisions, counted once."""
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        reader = InMemoryMetricReader()
        graph = attach_authority(
            build_compliance_graph(
                draft,
                rules=[KeywordRule("guarantee", ["guaranteed returns"])],
                checkpointer=backend.checkpointer,
                style="command_resume",
            ),
            reviews=backend.reviews,
            policy=RoleBasedPolicy(rule_roles={"guarantee": "smcr"}),
            telemetry=Telemetry(
                tracer_provider=tracer_provider,
                meter_provider=MeterProvider(metric_readers=[reader]),
            ),
        )
        reader.get_metrics_data()  # a first collection, as a periodic reader makes
        config = {"configurable": {"thread_id": tid()}}
        await graph.ainvoke({"customer_message": CUSTOMER}, config)  # type: ignore[arg-type]
        for reviewer, roles in (("intern@bank", []), ("officer@bank", ["smcr"])):
            made = Decision(
                approved=True, reviewer=reviewer, roles=roles, decided_at=datetime.now(timezone.utc)
            )
            await graph.ainvoke(Command(resume=made.to_state()), config)  # type: ignore[arg-type]
        refused, claimed = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
        assert refused.attributes is not None
        assert claimed.attributes is not None
        assert (refused.name, refused.attributes["hitl.outcome"]) == ("hitl.decide", "refused")
        assert refused.attributes["error.type"] == "hitl_compliance.errors.NotAuthorizedError"
        assert refused.status.status_code is StatusCode.ERROR
        assert (claimed.attributes["hitl.outcome"], claimed.attributes["hitl.via"]) == (
            "claimed",
            "graph",
        )
        otel = Otel(None, spans, reader, Clock())  # type: ignore[arg-type]
        assert otel.value("hitl.decisions", outcome="approved", via="graph").value == 1
        assert otel.value("hitl.time_to_decision", outcome="approved", via="graph").count == 1
        assert otel.value("hitl.reviews.pending").value == 0


class TestMetrics:
    async def test_decisions_by_outcome(self, otel: Otel) -> None:
        """approved, edited, rejected and expired each count once; the histogram too."""
        coord = otel.coord
        threads = [tid() for _ in range(4)]
        for thread in threads:
            await coord.process(thread, CUSTOMER)
        otel.clock.now = T0 + timedelta(seconds=30)
        await coord.approve(threads[0], reviewer="officer@bank")
        await coord.approve(threads[1], reviewer="officer@bank", response="A safer reply.")
        await coord.reject(threads[2], reviewer="officer@bank")
        otel.clock.now = T0 + timedelta(minutes=6)
        assert len(await coord.expire_overdue()) == 1
        for outcome in ("approved", "edited", "rejected", "expired"):
            point = otel.value("hitl.decisions", outcome=outcome, via="coordinator")
            assert point.value == 1, outcome
        waited = {
            outcome: otel.value("hitl.time_to_decision", outcome=outcome, via="coordinator")
            for outcome in ("approved", "edited", "rejected", "expired")
        }
        assert {o: (p.count, p.sum) for o, p in waited.items()} == {
            "approved": (1, 30.0),
            "edited": (1, 30.0),
            "rejected": (1, 30.0),
            "expired": (1, 360.0),
        }
        assert otel.value("hitl.sla.breaches", action="reject").value == 1
        bounds = waited["approved"].explicit_bounds
        assert tuple(bounds) == WAIT_BUCKETS  # a week, not the SDK's default 10,000 s

    async def test_pending_gauge(self, otel: Otel) -> None:
        """The gauge reports the store's pending count after each operation."""
        assert otel.value("hitl.reviews.pending") is None  # nothing counted yet
        first, second = tid(), tid()
        await otel.coord.process(first, CUSTOMER)
        await otel.coord.process(second, CUSTOMER)
        assert otel.value("hitl.reviews.pending").value == 2
        await otel.coord.reject(first, reviewer="officer@bank")
        assert otel.value("hitl.reviews.pending").value == 1
        otel.clock.now = T0 + timedelta(minutes=6)
        await otel.coord.expire_overdue()
        assert otel.value("hitl.reviews.pending").value == 0

    async def test_no_count_before_the_gauge_is_collected(self, backend: Backend) -> None:
        """Until a reader collects the gauge, operations read no pending count."""
        reader = InMemoryMetricReader()
        graph = build_compliance_graph(
            draft,
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(
            graph,
            reviews=backend.reviews,
            telemetry=Telemetry(meter_provider=MeterProvider(metric_readers=[reader])),
        )
        otel = Otel(coord, InMemorySpanExporter(), reader, Clock())
        await coord.process(tid(), CUSTOMER)
        assert otel.value("hitl.reviews.pending") is None  # no count was read
        await coord.process(tid(), CUSTOMER)
        assert otel.value("hitl.reviews.pending").value == 2


class TestCountPending:
    async def test_counts_pending_not_claimed_or_decided(self, backend: Backend) -> None:
        """count_pending counts pending reviews only: a claim or a decision takes one off."""
        store = backend.reviews
        assert isinstance(store, PendingCounter)
        graph = build_compliance_graph(
            draft,
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=store, telemetry=Telemetry(enabled=False))
        assert await store.count_pending() == 0
        threads = [tid() for _ in range(3)]
        for thread in threads:
            await coord.process(thread, "hello")
        assert await store.count_pending() == 3
        await store.claim(
            threads[0],
            claim_id="c1",
            reviewer="officer@bank",
            decision=Decision(
                approved=False, reviewer="officer@bank", decided_at=coord.now()
            ).to_state(),
            now=coord.now(),
        )
        assert await store.count_pending() == 2
        await coord.approve(threads[1], reviewer="officer@bank")
        assert await store.count_pending() == 1
        assert len(await coord.pending()) == 1


class TestNoCustomerText:
    async def test_nothing_exported_quotes_the_conversation(self, otel: Otel) -> None:
        """A whole cycle with recognisable text: none of it in spans, events or metrics."""
        coord = otel.coord
        threads = [tid() for _ in range(4)]
        for thread in threads:
            await coord.process(thread, CUSTOMER)
        with pytest.raises(PolicyViolationError) as refused:
            await coord.approve(
                threads[0], reviewer="officer@bank", response=f"{EDIT} SSN 123-45-6789"
            )
        assert "123-45-6789" in str(refused.value)  # the error quotes the evidence
        await coord.approve(threads[0], reviewer="officer@bank", response=f"{EDIT} is fine.")
        await coord.reject(threads[1], reviewer="officer@bank", reason=REASON)
        made = Decision(approved=True, reviewer="s@bank", response=EDIT, decided_at=otel.clock())
        config = {"configurable": {"thread_id": threads[2]}}
        await coord.graph.ainvoke(Command(resume=made.to_state()), config)  # type: ignore[arg-type]
        otel.clock.now = T0 + timedelta(minutes=6)
        await coord.expire_overdue()
        await coord.recover()

        exported: list[str] = []
        spans = otel.finished()
        assert {s.name for s in spans} == {
            "hitl.process",
            "hitl.decide",
            "hitl.resume",
            "hitl.sweep",
            "hitl.recover",
        }
        for span in spans:
            exported += [span.name, str(span.status.description)]
            exported += [str(v) for v in (span.attributes or {}).values()]
            for event in span.events:
                exported += [event.name, *(str(v) for v in (event.attributes or {}).values())]
        points = list(otel.points())
        assert {name for name, _, _ in points} == {
            "hitl.decisions",
            "hitl.time_to_decision",
            "hitl.sla.breaches",
            "hitl.reviews.pending",
        }
        for name, attributes, _ in points:
            exported += [
                name,
                *(str(k) for k in attributes),
                *(str(v) for v in attributes.values()),
            ]
        text = "\n".join(exported)
        for marker in (CUSTOMER, EDIT, REASON, "Guaranteed", "123-45-6789"):
            assert marker not in text, marker
        assert "PolicyViolationError" in text  # the refusal is recorded, by its type
