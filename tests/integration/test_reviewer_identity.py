"""Reviewer ids compare canonically on every backend: no spelling makes a second person.

Hypothesis spells the requester's and an approver's ids other ways (case,
spaces, invisible characters, fullwidth NFKC forms, TS #39 look-alikes); on the
in-memory, SQLite and PostgreSQL stores the requester is still refused and the
approver still counts once toward a four-eyes quorum.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_compliance import (
    DuplicateVoteError,
    HitlCoordinator,
    KeywordRule,
    NotAuthorizedError,
    RoleBasedPolicy,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance.testing.strategies import spellings

IDS = st.from_regex(r"[a-z][a-z0-9.]{2,10}@bank", fullmatch=True)


@dataclass
class World:
    """A coordinator needing two approvals for every draft, on one backend and event loop."""

    loop: asyncio.AbstractEventLoop
    coord: HitlCoordinator

    def run(self, awaitable: Any) -> Any:
        """Run `awaitable` on the backend's loop."""
        return self.loop.run_until_complete(awaitable)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """Each backend, opened once for all of a test's examples."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'identity.db'}"
    else:
        url = str(request.getfixturevalue("postgres_dsn"))
    loop = asyncio.new_event_loop()
    backend_cm = open_backend(url)
    backend = loop.run_until_complete(backend_cm.__aenter__())
    graph = build_compliance_graph(
        lambda state: "guaranteed returns",
        rules=[KeywordRule("guarantee", ["guaranteed returns"], severity="high")],
        checkpointer=backend.checkpointer,
    )
    coord = HitlCoordinator(
        graph, reviews=backend.reviews, policy=RoleBasedPolicy(quorum={"high": 2})
    )
    try:
        yield World(loop, coord)
    finally:
        loop.run_until_complete(backend_cm.__aexit__(None, None, None))
        loop.close()


EXAMPLES = settings(
    max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


class TestCanonicalIdentity:
    @EXAMPLES
    @given(data=st.data(), requester=IDS)
    def test_requester_is_refused_under_any_spelling(
        self, world: World, data: st.DataObject, requester: str
    ) -> None:
        """Any spelling of the requester's id is refused, leaving the review without votes."""
        thread = f"t-{uuid.uuid4().hex}"
        world.run(world.coord.process(thread, "hi", requested_by=requester))
        variant = data.draw(spellings(requester), label="variant")
        assert not world.run(world.coord.may_decide(thread, variant)).allowed
        with pytest.raises(NotAuthorizedError):
            world.run(world.coord.approve(thread, reviewer=variant))
        review = world.run(world.coord.review(thread))
        assert review.votes == []
        events = [a.event for a in world.run(world.coord.audit_log(thread))]
        assert events == ["paused", "denied"]

    @EXAMPLES
    @given(data=st.data(), approver=IDS)
    def test_one_approver_never_counts_twice(
        self, world: World, data: st.DataObject, approver: str
    ) -> None:
        """After one approval, every other spelling of the approver is a duplicate vote."""
        thread = f"t-{uuid.uuid4().hex}"
        world.run(world.coord.process(thread, "hi"))
        first = world.run(world.coord.approve(thread, reviewer=approver))
        assert first.status == "paused"
        variants = data.draw(st.lists(spellings(approver), min_size=1, max_size=3), label="v")
        for variant in variants:
            with pytest.raises(DuplicateVoteError):
                world.run(world.coord.approve(thread, reviewer=variant))
        review = world.run(world.coord.review(thread))
        assert [v.reviewer for v in review.votes] == [approver]
        assert review.approvals_required == 2
        events = [a.event for a in world.run(world.coord.audit_log(thread))]
        assert events == ["paused", "voted"]
