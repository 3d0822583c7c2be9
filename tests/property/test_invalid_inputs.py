"""Property: a bad value of any public coordinator parameter is a typed error that changes nothing.

`bad_calls()` picks a public method and replaces exactly one argument with a
generated bad value (wrong type, NUL or lone surrogate, NaN, an int beyond 64
bits, a timedelta beyond the calendar, too-deep JSON...). On every backend the
call must raise [`InvalidInputError`][hitl_compliance.InvalidInputError] and
leave the review, the audit ledger, the checkpoints and the turn table as they
were; the paused review is then approved normally. The backends come from the
library's pytest plugin (`hitl_backend_url`: memory, a SQLite file, Postgres).
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_compliance import HitlCoordinator, InvalidInputError, KeywordRule, build_compliance_graph
from hitl_compliance.backends import open_backend
from tests.strategies import COORDINATOR_PARAMETERS, FRESH, PAUSED, BadCall, bad_calls

DRAFT = "Our fund offers guaranteed returns of 9% a year."
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=timezone.utc)
# Every example shares the test's backend (one event loop, one pool); each uses
# threads of its own, so sharing the function-scoped fixture is intended.
PER_BACKEND = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Harness:
    """A coordinator on an opened backend, counting drafter calls."""

    coord: HitlCoordinator
    export_dir: Path
    drafts: list[str]


@pytest_asyncio.fixture
async def harness(
    hitl_backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """A coordinator on each backend (tables of its own prefix), for all examples of a test."""
    drafts: list[str] = []
    exports = tmp_path / "exports"
    exports.mkdir()
    # A relative path a broken check let through lands here, not in the repository.
    monkeypatch.chdir(exports)

    def draft(state: Any) -> str:
        drafts.append(state.customer_message)
        return DRAFT

    async with open_backend(hitl_backend_url, table_prefix=f"b{uuid.uuid4().hex[:8]}_") as b:
        graph = build_compliance_graph(
            draft,
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=b.checkpointer,
        )
        yield Harness(HitlCoordinator(graph, reviews=b.reviews), exports, drafts)


async def state_of(h: Harness, paused: str, fresh: str) -> tuple[Any, ...]:
    """Everything a refused call must leave alone."""
    store = h.coord.reviews
    history = [
        s.config["configurable"]["checkpoint_id"]
        async for s in h.coord.graph.aget_state_history({"configurable": {"thread_id": paused}})
    ]
    fresh_state = await h.coord.graph.aget_state({"configurable": {"thread_id": fresh}})
    return (
        await store.get_review(paused),
        await store.list_pending(),
        await store.audit_rows(),
        await store.audit_head(),
        await store.stale_turns(started_before=FAR_FUTURE),
        history,
        fresh_state.values,
        len(h.drafts),
        sorted(p.name for p in h.export_dir.iterdir()),
    )


def bound(call: BadCall, paused: str, fresh: str, export: Path) -> dict[str, Any]:
    """The call's arguments with the placeholders replaced by this example's values."""
    swap = {PAUSED: paused, FRESH: fresh, "<export path>": str(export)}
    return {k: swap.get(v, v) if isinstance(v, str) else v for k, v in call.kwargs.items()}


async def attempt(coord: HitlCoordinator, call: BadCall, kwargs: dict[str, Any]) -> None:
    method = getattr(coord, call.method)
    if call.method == "run_sla_sweeper":
        # A sweeper that accepted the value would loop forever: bound the wait.
        await asyncio.wait_for(method(**kwargs), timeout=5)
    else:
        await method(**kwargs)


@pytest.mark.hitl_backends("memory", "sqlite", "postgres")
@PER_BACKEND
@given(calls=st.lists(bad_calls(), min_size=1, max_size=4))
async def test_bad_arguments_are_refused_and_change_nothing(
    harness: Harness, calls: list[BadCall]
) -> None:
    """Each bad call raises InvalidInputError; store, ledger, checkpoints and turns stay put."""
    paused, fresh = f"p-{uuid.uuid4().hex}", f"f-{uuid.uuid4().hex}"
    assert (await harness.coord.process(paused, "Should I invest?")).status == "paused"
    before = await state_of(harness, paused, fresh)
    for call in calls:
        kwargs = bound(call, paused, fresh, harness.export_dir / "audit.jsonl")
        with pytest.raises(InvalidInputError):
            await attempt(harness.coord, call, kwargs)
        assert await state_of(harness, paused, fresh) == before, call
    assert (await harness.coord.approve(paused, reviewer="alice")).status == "completed"


class TestCoverage:
    """`bad_calls` generates a bad value for every parameter of every public method."""

    def test_every_public_parameter_is_covered(self) -> None:
        """A new public method or parameter without a bad-value strategy fails this test."""
        wanted = set()
        for name, member in inspect.getmembers(HitlCoordinator, inspect.iscoroutinefunction):
            if name.startswith("_"):
                continue
            for param in list(inspect.signature(member).parameters.values())[1:]:
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    wanted.add((name, "metadata"))  # the one field every state schema has
                else:
                    wanted.add((name, param.name))
        assert wanted == set(COORDINATOR_PARAMETERS)
