"""OpenTelemetry spans and metrics of a coordinator: the `otel` extra.

With `opentelemetry-api` installed (`pip install "hitl-compliance[otel]"`), a
[`HitlCoordinator`][hitl_compliance.HitlCoordinator] traces `process`,
decisions (its own and those made around it, inside the graph), resumes,
`recover` and SLA sweeps, and counts decisions, SLA breaches and the time
each review waited, through the global tracer and meter providers, or the
ones a [`Telemetry`][hitl_compliance.Telemetry] names. Spans and metrics carry
ids, outcomes and rule names, never customer text, drafts or edits. Without
the extra nothing is imported and every hook is one skipped branch. The
[telemetry guide](../guides/telemetry.md) lists every span, attribute and metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["INSTRUMENTATION_NAME", "Telemetry"]

INSTRUMENTATION_NAME = "hitl_compliance"
"""The name of the coordinator's tracer and meter (`hitl_compliance`)."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Where a coordinator's spans and metrics go (OpenTelemetry, the `otel` extra).

    A coordinator without `telemetry=` uses the global providers when
    `opentelemetry-api` is installed, and records nothing when it is not.

    Args:
        tracer_provider: Where spans go (default: the global tracer provider).
        meter_provider: Where metrics go (default: the global meter provider).
        enabled: False records nothing, whatever is installed.

    Example:
        ```python
        from opentelemetry.sdk.trace import TracerProvider

        coord = HitlCoordinator(graph, telemetry=Telemetry(tracer_provider=TracerProvider()))
        quiet = HitlCoordinator(graph, telemetry=Telemetry(enabled=False))
        ```
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    enabled: bool = True
