"""Fixtures of the coordinator's concern modules (`hitl_compliance._coordination`).

Their functions take a [`Context`][hitl_compliance._coordination.context.Context],
so these unit tests build one directly (no `HitlCoordinator`), over a real
graph on an in-memory checkpointer and a real in-memory review store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import AllowAllPolicy, ApprovalPolicy, Hooks, InMemoryReviewStore, PauseStyle
from hitl_compliance._coordination.context import Context
from hitl_compliance.coordinator import OnTimeout
from hitl_compliance.graph import build_compliance_graph, graph_spec
from hitl_compliance.stores import ReviewStore
from tests.helpers import FakeClock, ScriptedDrafter, default_rules

ContextFactory = Callable[..., Context]


@pytest.fixture
def context_factory(
    style: PauseStyle, clock: FakeClock, drafter: ScriptedDrafter
) -> ContextFactory:
    """Build a coordination context in the parametrised style, options as `HitlCoordinator`'s."""

    def build(
        *,
        reviews: ReviewStore | None = None,
        policy: ApprovalPolicy | None = None,
        sla: timedelta | None = None,
        sla_by: Mapping[str, timedelta] | None = None,
        on_timeout: OnTimeout = "reject",
        hooks: Hooks | None = None,
        lease: timedelta = timedelta(seconds=30),
        draft: Any = None,
    ) -> Context:
        graph = build_compliance_graph(
            drafter if draft is None else draft,
            rules=default_rules(),
            checkpointer=InMemorySaver(),
            style=style,
        )
        ctx = Context(
            graph=graph,
            spec=graph_spec(graph),
            reviews=InMemoryReviewStore() if reviews is None else reviews,
            policy=AllowAllPolicy() if policy is None else policy,
            clock=clock,
            lease=lease,
            sla=sla,
            sla_by=MappingProxyType(dict(sla_by or {})),
            on_timeout=on_timeout,
            hooks=Hooks() if hooks is None else hooks,
        )
        ctx.reviews.configure_hooks(ctx.hooks.names())
        return ctx

    return build


@pytest.fixture
def ctx(context_factory: ContextFactory) -> Context:
    """A coordination context with the default rules, no SLA and no hooks, in each style."""
    return context_factory()
