"""Shared fixtures, the Hypothesis profiles, and the strict checkpoint serializer.

The library promises that graph state survives LangGraph's serializer in
strict mode, so the whole session runs with `LANGGRAPH_STRICT_MSGPACK=true`.
LangGraph reads the variable once, when it is first imported; the library's
pytest plugin (`pytest_hitl_compliance`) imports neither the library nor
LangGraph as pytest starts, so setting it here, first, is enough
(`tests/testing/test_package.py` checks that strict mode is really on).
"""

from __future__ import annotations

import os

os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ComplianceRule,
    ComplianceState,
    HitlCoordinator,
    PauseStyle,
    ReviewStore,
    build_compliance_graph,
)
from tests.helpers import FakeClock, ScriptedDrafter, default_rules

# tests/testing/test_plugin.py runs the library's pytest plugin in inner pytest sessions.
pytest_plugins = ["pytester"]

settings.register_profile(
    "ci", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STYLES: tuple[PauseStyle, ...] = ("interrupt_before", "command_resume")


class _SerdeLogRecorder(logging.Handler):
    """Collects LangGraph serializer warnings (it logs them instead of warning)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "serde" in record.name:
            self.records.append(record)


def pytest_configure(config: pytest.Config) -> None:
    """Register this suite's own markers (the run uses --strict-markers)."""
    config.addinivalue_line(
        "markers",
        "allow_serializer_warnings: the test provokes LangGraph serializer warnings on purpose",
    )


@pytest.fixture(autouse=True)
def _no_serializer_warnings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test during which LangGraph's checkpoint serializer complained.

    LangGraph logs these (once per type and process) instead of warning, so the
    `filterwarnings = error` setting alone would not catch them.
    """
    if request.node.get_closest_marker("allow_serializer_warnings"):
        yield
        return
    recorder = _SerdeLogRecorder()
    logger = logging.getLogger("langgraph")
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
    messages = [r.getMessage() for r in recorder.records]
    assert not messages, f"LangGraph serializer warnings: {messages}"


@pytest.fixture(params=STYLES)
def style(request: pytest.FixtureRequest) -> PauseStyle:
    """Each pause style in turn: every test using it runs once per style."""
    value: PauseStyle = request.param
    return value


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock that stands still until a test advances it."""
    return FakeClock()


@pytest.fixture
def drafter() -> ScriptedDrafter:
    """The scripted drafter (see `helpers.SCRIPT`)."""
    return ScriptedDrafter()


CoordinatorFactory = Callable[..., HitlCoordinator]


@pytest.fixture
def coordinator_factory(drafter: ScriptedDrafter, clock: FakeClock) -> CoordinatorFactory:
    """Build a graph on a fresh InMemorySaver plus its coordinator, in an explicit style."""

    def build(
        style: PauseStyle,
        *,
        draft: Any = None,
        rules: Sequence[ComplianceRule] | None = None,
        state_schema: type[ComplianceState] = ComplianceState,
        rejection_message: str | None = None,
        reviews: ReviewStore | None = None,
        lease: timedelta = timedelta(seconds=30),
    ) -> HitlCoordinator:
        graph = build_compliance_graph(
            drafter if draft is None else draft,
            rules=default_rules() if rules is None else rules,
            checkpointer=InMemorySaver(),
            style=style,
            state_schema=state_schema,
            rejection_message=rejection_message,
        )
        return HitlCoordinator(graph, reviews=reviews, lease=lease, clock=clock)

    return build


@pytest.fixture
def make_coordinator(
    coordinator_factory: CoordinatorFactory, style: PauseStyle
) -> CoordinatorFactory:
    """Like `coordinator_factory`, in the parametrised `style`."""

    def build(**kwargs: Any) -> HitlCoordinator:
        return coordinator_factory(style, **kwargs)

    return build


@pytest.fixture
def coord(make_coordinator: CoordinatorFactory) -> HitlCoordinator:
    """A coordinator over the default rules and scripted drafter, in each style."""
    return make_coordinator()
