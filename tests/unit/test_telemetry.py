"""`Telemetry` and the coordinator's default: global providers with the extra, nothing without."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hitl_compliance import (
    INSTRUMENTATION_NAME,
    ConfigurationError,
    HitlCoordinator,
    KeywordRule,
    Telemetry,
    build_compliance_graph,
)
from hitl_compliance.graph import ComplianceGraph


def graph() -> ComplianceGraph:
    return build_compliance_graph(
        lambda state: "Guaranteed returns.",
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
    )


def run(*parts: str) -> str:
    """Run the code `parts` in a fresh interpreter; its stdout (fails on a non-zero exit)."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


CYCLE = """
    import asyncio
    from langgraph.checkpoint.memory import InMemorySaver
    from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph

    async def cycle():
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns.",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
        )
        coord = HitlCoordinator(graph)
        paused = await coord.process("t1", "hi")
        done = await coord.approve("t1", reviewer="officer@bank")
        await coord.expire_overdue()
        await coord.recover()
        return coord, paused.status, done.status
"""


class TestWithoutOpenTelemetry:
    def test_library_works_and_imports_none_of_it(self) -> None:
        """With opentelemetry unimportable: a whole cycle runs, nothing of it is imported."""
        out = run(
            """
            import sys
            sys.modules["opentelemetry"] = None  # what an environment without the extra has
            """,
            CYCLE,
            """
            coord, paused, done = asyncio.run(cycle())
            loaded = [m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v]
            print(paused, done, coord._ctx.telemetry, loaded)
            """,
        )
        assert out.split() == ["paused", "completed", "None", "[]"]

    def test_asking_for_telemetry_names_the_extra(self) -> None:
        """An explicit Telemetry() without the extra is a ConfigurationError naming it."""
        out = run(
            """
            import sys
            sys.modules["opentelemetry"] = None
            from langgraph.checkpoint.memory import InMemorySaver
            from hitl_compliance import ConfigurationError, HitlCoordinator, Telemetry
            from hitl_compliance import build_compliance_graph
            graph = build_compliance_graph(lambda s: "hi", checkpointer=InMemorySaver())
            try:
                HitlCoordinator(graph, telemetry=Telemetry())
            except ConfigurationError as exc:
                print(exc)
            HitlCoordinator(graph, telemetry=Telemetry(enabled=False))
            print("disabled ok")
            """
        )
        assert "hitl-compliance[otel]" in out
        assert "disabled ok" in out


class TestDefaults:
    def test_global_providers_by_default(self) -> None:
        """Without telemetry=, spans go to the global tracer provider (set after import)."""
        out = run(
            CYCLE,
            """
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            spans = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(provider)
            asyncio.run(cycle())
            finished = spans.get_finished_spans()
            print(sorted({s.name for s in finished}))
            print({s.instrumentation_scope.name for s in finished})
            """,
        )
        names, scopes = out.splitlines()
        assert names == str(
            ["hitl.decide", "hitl.process", "hitl.recover", "hitl.resume", "hitl.sweep"]
        )
        assert scopes == str({INSTRUMENTATION_NAME})

    def test_no_spans_until_a_global_provider_is_set_then_spans(self) -> None:
        """Built before any SDK: the API's proxy provider costs no span; one set later is used."""
        out = run(
            """
            import asyncio
            from langgraph.checkpoint.memory import InMemorySaver
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph

            graph = build_compliance_graph(
                lambda state: "Guaranteed returns.",
                rules=[KeywordRule("guarantee", ["guaranteed returns"])],
                checkpointer=InMemorySaver(),
            )
            coord = HitlCoordinator(graph)

            async def turn(thread):
                await coord.process(thread, "hi")
                await coord.approve(thread, reviewer="officer@bank")

            asyncio.run(turn("before"))
            spans = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(provider)
            asyncio.run(turn("after"))
            print(sorted({s.attributes["hitl.thread_id"] for s in spans.get_finished_spans()}))
            """,
        )
        assert out.strip() == str(["after"])

    async def test_disabled_records_nothing(self) -> None:
        """Telemetry(enabled=False) records nothing, even with providers given."""
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        coord = HitlCoordinator(
            graph(), telemetry=Telemetry(tracer_provider=provider, enabled=False)
        )
        await coord.process("t1", "hi")
        await coord.approve("t1", reviewer="officer@bank")
        assert spans.get_finished_spans() == ()

    async def test_coordinators_share_their_provider_instruments(self) -> None:
        """Two coordinators on one meter provider add to the same counter (one point)."""
        reader = InMemoryMetricReader()
        telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
        for thread in ("t1", "t2"):
            coord = HitlCoordinator(graph(), telemetry=telemetry)
            await coord.process(thread, "hi")
            await coord.approve(thread, reviewer="officer@bank")
        data = reader.get_metrics_data()
        assert data is not None
        points = [
            (metric.name, point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
            if metric.name == "hitl.decisions"
        ]
        assert [(name, point.value) for name, point in points] == [("hitl.decisions", 2)]

    def test_not_a_telemetry(self) -> None:
        """telemetry= of another type is a ConfigurationError; no coordinator is built."""
        with pytest.raises(ConfigurationError, match=r"hitl_compliance\.Telemetry"):
            HitlCoordinator(graph(), telemetry="on")  # type: ignore[arg-type]

    def test_frozen(self) -> None:
        """Telemetry is an immutable value."""
        telemetry = Telemetry()
        with pytest.raises(dataclasses.FrozenInstanceError):
            telemetry.enabled = False  # type: ignore[misc]
