"""Stateful property test: any interleaving of process/approve/reject/crash/recover keeps
the review store, the audit log and the checkpointed graph state in agreement."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    HitlError,
    KeywordRule,
    PauseStyle,
    build_compliance_graph,
)
from hitl_compliance.backends import open_backend

THREADS = ("a", "b", "c")
LEASE = timedelta(seconds=30)


class LifecycleMachine(RuleBasedStateMachine):
    """Drives one coordinator and keeps a model of what each thread should be."""

    url: str = "memory://"
    style: PauseStyle = "interrupt_before"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.prefix = uuid.uuid4().hex[:8]
        self.drafts: Counter[str] = Counter()
        self.turns: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.model: dict[str, str] = {}  # thread -> paused | claimed | done
        self.claimed_at: dict[str, datetime] = {}
        self._cm = open_backend(self.url)
        self.backend = self.run(self._cm.__aenter__())

        def draft(state: Any) -> str:
            self.drafts[state.metadata["thread"]] += 1
            return "guaranteed returns" if "risky" in state.customer_message else "hello"

        graph = build_compliance_graph(
            draft,
            rules=[KeywordRule("g", ["guaranteed returns"])],
            checkpointer=self.backend.checkpointer,
            style=self.style,
        )
        self.coord = HitlCoordinator(
            graph, reviews=self.backend.reviews, lease=LEASE, clock=lambda: self.now
        )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def tid(self, thread: str) -> str:
        return f"{self.prefix}-{thread}"

    def teardown(self) -> None:
        self.run(self._cm.__aexit__(None, None, None))
        self.loop.close()

    @rule(thread=st.sampled_from(THREADS), risky=st.booleans())
    def process(self, thread: str, risky: bool) -> None:
        message = "risky question" if risky else "simple question"
        try:
            result = self.run(
                self.coord.process(self.tid(thread), message, metadata={"thread": thread})
            )
        except HitlError:
            assert self.model.get(thread) in ("paused", "claimed")
            return
        assert self.model.get(thread) not in ("paused", "claimed")
        self.turns[thread] += 1
        assert result.status == ("paused" if risky else "completed")
        self.model[thread] = "paused" if risky else "done"

    @rule(thread=st.sampled_from(THREADS), approve=st.booleans(), edit=st.booleans())
    def decide(self, thread: str, approve: bool, edit: bool) -> None:
        tid = self.tid(thread)
        try:
            if approve:
                result = self.run(
                    self.coord.approve(tid, reviewer="o", response="edited" if edit else None)
                )
            else:
                result = self.run(self.coord.reject(tid, reviewer="o", reason="no"))
        except HitlError:
            assert self.model.get(thread) != "paused"
            return
        assert self.model.get(thread) == "paused"
        self.decisions[thread] += 1
        self.model[thread] = "done"
        assert result.status == ("completed" if approve else "rejected")
        if approve:
            assert result.agent_response == ("edited" if edit else "guaranteed returns")

    @precondition(lambda self: "paused" in self.model.values())
    @rule(data=st.data())
    def crash_after_claim(self, data: st.DataObject) -> None:
        """A decider claims the review, then its process dies before resuming."""
        thread = data.draw(st.sampled_from([t for t, s in self.model.items() if s == "paused"]))
        decision = Decision(approved=True, reviewer="crashed", decided_at=self.now)
        self.run(
            self.backend.reviews.claim(
                self.tid(thread),
                claim_id=uuid.uuid4().hex,
                reviewer="crashed",
                decision=decision.to_state(),
                now=self.now,
            )
        )
        self.model[thread] = "claimed"
        self.claimed_at[thread] = self.now

    @rule()
    def tick(self) -> None:
        self.now += LEASE / 2

    @rule()
    def recover(self) -> None:
        results = self.run(self.coord.recover())
        finished = {r.thread_id for r in results}
        for thread, status in list(self.model.items()):
            if status == "claimed" and self.claimed_at[thread] < self.now - LEASE:
                assert self.tid(thread) in finished
                self.model[thread] = "done"
                self.decisions[thread] += 1
            else:
                assert self.tid(thread) not in finished

    @invariant()
    def store_audit_and_graph_agree(self) -> None:
        pending = {
            p.thread_id
            for p in self.run(self.coord.pending())
            if p.thread_id.startswith(self.prefix)  # the SQLite file outlives one example
        }
        assert pending == {self.tid(t) for t, s in self.model.items() if s == "paused"}
        for thread in THREADS:
            tid = self.tid(thread)
            snap = self.run(self.coord.graph.aget_state({"configurable": {"thread_id": tid}}))
            status = self.model.get(thread)
            assert (tuple(snap.next) == ("human_approval",)) == (status in ("paused", "claimed"))
            audit = self.run(self.coord.audit_log(tid))
            decided = [a for a in audit if a.event in ("approved", "rejected")]
            assert len(decided) == self.decisions[thread]
            assert sum(a.event == "paused" for a in audit) >= len(decided)
            assert self.drafts[thread] == self.turns[thread]
            review = self.run(self.backend.reviews.get_review(tid))
            if status == "paused":
                assert review is not None
                assert review.status == "pending"
                assert review.checkpoint_id == snap.config["configurable"]["checkpoint_id"]
            if status == "claimed":
                assert review is not None
                assert review.status == "claimed"


@pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_lifecycle(
    kind: str, style: PauseStyle, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Random lifecycles on every backend keep store, audit and checkpoints consistent."""

    class Machine(LifecycleMachine):
        pass

    Machine.style = style
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'm.db'}"}
    Machine.url = urls.get(kind) or str(request.getfixturevalue("postgres_dsn"))
    Machine.TestCase.settings = settings(
        max_examples={"memory": 25, "sqlite": 10, "postgres": 5}[kind],
        stateful_step_count=20,
        deadline=None,
    )
    Machine.TestCase().runTest()
