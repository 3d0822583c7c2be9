"""Unit tests of `hitl_compliance.coordinator`: turns, reviews, decisions, recovery.

Every test that takes the `coord` / `make_coordinator` fixtures runs once per
pause style.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

from hitl_compliance import (
    AlreadyDecidedError,
    ComplianceState,
    ConfigurationError,
    Decision,
    HitlCoordinator,
    InMemoryReviewStore,
    InvalidDecisionError,
    InvalidInputError,
    ProcessResult,
    ReviewNotFoundError,
    RuleResult,
    ThreadBusyError,
    build_compliance_graph,
    rule_version,
    ruleset_fingerprint,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.graph import graph_spec
from tests.conftest import CoordinatorFactory
from tests.helpers import (
    CLEAN,
    EPOCH,
    RISKY,
    SCRIPT,
    SECRET,
    FakeClock,
    ScriptedDrafter,
    checkpoint_id,
    config_for,
    finished_runs,
    snapshot,
)

GUARANTEE_FINDING = RuleResult("guarantee", "review", "promises returns", ("guaranteed returns",))


class Colour(enum.Enum):
    """An enum the checkpoint serializer's strict allowlist does not know."""

    RED = "red"


class Note(BaseModel):
    """A pydantic model the checkpoint serializer's strict allowlist does not know."""

    text: str


class BankState(ComplianceState):
    """A user state schema with fields of its own."""

    customer_id: str = ""
    tier: int = 0


async def events(coord: HitlCoordinator, thread_id: str) -> list[str]:
    """The thread's review events, oldest first (its `replied` records: TestReplyRecords)."""
    return [r.event for r in await coord.audit_log(thread_id) if r.event != REPLIED]


async def paused_at(coord: HitlCoordinator, thread_id: str) -> str | None:
    """The checkpoint id the thread is paused at (asserting it is paused)."""
    snap = await snapshot(coord, thread_id)
    assert snap.next == ("human_approval",)
    return checkpoint_id(snap)


def driven_config(coord: HitlCoordinator, thread_id: str) -> Any:
    """The config of a run the coordinator drives (a raw run's pause records itself)."""
    return coord._ctx.driver._config(thread_id)  # type: ignore[attr-defined]


async def resume_like_the_coordinator(
    coord: HitlCoordinator, thread_id: str, decision: dict[str, Any]
) -> None:
    """Resume a pause through the graph as a (then crashed) coordinator would have.

    With the coordinator's own run config: a resume around it would be checked and
    recorded by the graph itself, leaving recover() nothing to do.
    """
    config = driven_config(coord, thread_id)
    if graph_spec(coord.graph).style == "interrupt_before":
        await coord.graph.aupdate_state(config, {"decision": decision}, as_node="human_approval")
        await coord.graph.ainvoke(None, config)
    else:
        await coord.graph.ainvoke(Command(resume=decision), config)


class TestConstruction:
    def test_foreign_graph(self) -> None:
        """A graph not built by build_compliance_graph is refused."""
        builder: Any = StateGraph(ComplianceState)
        builder.add_node("draft", lambda state: {})
        builder.add_edge(START, "draft")
        builder.add_edge("draft", END)
        with pytest.raises(ConfigurationError, match="build_compliance_graph"):
            HitlCoordinator(builder.compile(checkpointer=InMemorySaver()))

    @pytest.mark.parametrize("graph", [None, object(), {"not": "a graph"}])
    def test_not_a_graph(self, graph: Any) -> None:
        """Anything that is not a compiled graph is refused."""
        with pytest.raises(ConfigurationError):
            HitlCoordinator(graph)

    def test_bad_store(self, coord: HitlCoordinator) -> None:
        """A review store not implementing ReviewStore is refused."""
        with pytest.raises(ConfigurationError, match="ReviewStore"):
            HitlCoordinator(coord.graph, reviews=object())  # type: ignore[arg-type]

    @pytest.mark.parametrize("lease", [timedelta(0), timedelta(seconds=-1), 30])
    def test_bad_lease(self, coord: HitlCoordinator, lease: Any) -> None:
        """A lease that is not a positive timedelta is refused."""
        with pytest.raises(ConfigurationError, match="lease"):
            HitlCoordinator(coord.graph, lease=lease)

    def test_default_store(self, coord: HitlCoordinator) -> None:
        """Without reviews=, the coordinator keeps reviews in memory."""
        assert isinstance(HitlCoordinator(coord.graph).reviews, InMemoryReviewStore)

    async def test_naive_clock(self, coord: HitlCoordinator, drafter: ScriptedDrafter) -> None:
        """A clock returning naive datetimes raises ConfigurationError before anything runs."""
        naive = HitlCoordinator(coord.graph, clock=lambda: datetime(2025, 1, 1))  # naive on purpose
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            await naive.process("t", CLEAN)
        assert drafter.calls == []
        assert (await snapshot(naive, "t")).values == {}

    async def test_graph_without_checkpointer(self) -> None:
        """A coordinator over a graph without a checkpointer is refused at construction."""
        graph = build_compliance_graph(ScriptedDrafter(), checkpointer=None, pause=False)
        with pytest.raises(ConfigurationError, match="checkpointer"):
            HitlCoordinator(graph)


class TestProcess:
    async def test_completed(self, coord: HitlCoordinator, drafter: ScriptedDrafter) -> None:
        """A clean draft is delivered at once by the LLM."""
        result = await coord.process("t", CLEAN)
        assert result == ProcessResult(
            status="completed",
            thread_id="t",
            awaiting_approval=False,
            agent_response=SCRIPT[CLEAN],
            violations=[],
            draft_response=SCRIPT[CLEAN],
            customer_message=CLEAN,
            agent_type="llm",
            is_compliant=True,
            reviewer=None,
            checkpoint_id=result.checkpoint_id,
            review_id=None,
            metadata={},
        )
        assert result.checkpoint_id == checkpoint_id(await snapshot(coord, "t"))
        assert await coord.pending() == []
        assert await events(coord, "t") == []

    async def test_paused(self, coord: HitlCoordinator) -> None:
        """A draft with a review finding pauses: nothing delivered, a review opened."""
        result = await coord.process("t", RISKY, requested_by="agent-7")
        assert result.status == "paused"
        assert result.awaiting_approval is True
        assert result.agent_response is None
        assert result.agent_type is None
        assert result.is_compliant is False
        assert result.draft_response == SCRIPT[RISKY]
        assert result.violations == [GUARANTEE_FINDING]
        assert result.reviewer is None
        assert result.review_id is not None
        assert result.checkpoint_id == await paused_at(coord, "t")
        assert await events(coord, "t") == ["paused"]

    async def test_rejected_by_block(self, coord: HitlCoordinator) -> None:
        """A blocked draft is rejected without a human and opens no review."""
        result = await coord.process("t", SECRET)
        assert result.status == "rejected"
        assert result.awaiting_approval is False
        assert result.agent_response is None
        assert result.agent_type == "system"
        assert result.is_compliant is False
        assert [v.verdict for v in result.violations] == ["block"]
        assert result.violations[0].evidence == ("123-45-6789",)
        assert result.review_id is None
        assert await coord.pending() == []

    async def test_rejected_by_block_with_message(
        self, make_coordinator: CoordinatorFactory
    ) -> None:
        """A blocked draft gets the rejection message, never the draft."""
        coord = make_coordinator(rejection_message="We cannot help with that here.")
        result = await coord.process("t", SECRET)
        assert result.agent_response == "We cannot help with that here."

    async def test_paused_thread_is_busy(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter
    ) -> None:
        """process on a paused thread raises ThreadBusyError and changes nothing."""
        paused = await coord.process("t", RISKY)
        with pytest.raises(ThreadBusyError) as info:
            await coord.process("t", CLEAN)
        assert info.value.thread_id == "t"
        assert await paused_at(coord, "t") == paused.checkpoint_id
        assert [p.review_id for p in await coord.pending()] == [paused.review_id]
        assert drafter.calls == [RISKY]

    async def test_completed_thread_new_turn(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter
    ) -> None:
        """process on a completed thread starts a new turn with a fresh draft."""
        await coord.process("t", CLEAN)
        second = await coord.process("t", RISKY)
        assert second.status == "paused"
        assert second.customer_message == RISKY
        assert (await snapshot(coord, "t")).values["turn"] == 2
        assert drafter.calls == [CLEAN, RISKY]

    async def test_new_turn_after_decision(self, coord: HitlCoordinator) -> None:
        """After a decision, the next turn starts clean: no old findings or decision."""
        await coord.process("t", RISKY)
        await coord.approve("t", reviewer="alice")
        result = await coord.process("t", CLEAN)
        assert (result.status, result.agent_type, result.violations) == ("completed", "llm", [])
        assert (await snapshot(coord, "t")).values["decision"] is None

    async def test_new_turn_after_block(self, coord: HitlCoordinator) -> None:
        """A thread rejected by a block takes a new turn."""
        await coord.process("t", SECRET)
        assert (await coord.process("t", CLEAN)).status == "completed"

    async def test_pre_existing_metadata(self, coord: HitlCoordinator) -> None:
        """metadata= passed to process lands in the state and the result."""
        result = await coord.process("t", CLEAN, metadata={"crm": {"id": 7}})
        assert result.metadata == {"crm": {"id": 7}}

    async def test_custom_state_fields(self, make_coordinator: CoordinatorFactory) -> None:
        """Fields of a custom state_schema set through process(**fields) are checkpointed."""
        coord = make_coordinator(state_schema=BankState)
        await coord.process("t", RISKY, customer_id="C-42", tier=2)
        values = (await snapshot(coord, "t")).values
        assert (values["customer_id"], values["tier"]) == ("C-42", 2)
        await coord.approve("t", reviewer="alice")
        decided = await coord.state_at_decision("t")
        assert isinstance(decided, BankState)
        assert (decided.customer_id, decided.tier) == ("C-42", 2)

    async def test_custom_fields_kept_across_turns(
        self, make_coordinator: CoordinatorFactory
    ) -> None:
        """A custom field set in one turn is still there in the next turn."""
        coord = make_coordinator(state_schema=BankState)
        await coord.process("t", CLEAN, customer_id="C-42")
        await coord.process("t", CLEAN)
        assert (await snapshot(coord, "t")).values["customer_id"] == "C-42"

    async def test_drafter_sees_custom_state(
        self, make_coordinator: CoordinatorFactory, drafter: ScriptedDrafter
    ) -> None:
        """The drafter receives an instance of the custom state_schema with its fields."""
        coord = make_coordinator(state_schema=BankState)
        await coord.process("t", CLEAN, customer_id="C-42", tier=2)
        (state,) = drafter.states
        assert isinstance(state, BankState)
        assert (state.customer_id, state.tier) == ("C-42", 2)

    async def test_rule_sees_custom_state(self, make_coordinator: CoordinatorFactory) -> None:
        """A rule can read a custom state field (here: VIP customers pass without review)."""

        class VipOnly:
            name = "vip_only"

            def evaluate(self, state: ComplianceState) -> RuleResult:
                tier = state.tier  # type: ignore[attr-defined]
                return RuleResult(self.name, "pass" if tier >= 2 else "review")

        coord = make_coordinator(state_schema=BankState, rules=[VipOnly()])
        assert (await coord.process("vip", CLEAN, tier=2)).status == "completed"
        assert (await coord.process("basic", CLEAN, tier=0)).status == "paused"

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"customer_idd": "typo"}, "Unknown state fields"),
            ({"turn": 5}, "set by the library"),
            ({"draft_response": "forged"}, "set by the library"),
            ({"agent_type": "human_admin"}, "set by the library"),
            ({"tier": "not a number"}, "Invalid input"),
        ],
    )
    async def test_invalid_fields(
        self,
        make_coordinator: CoordinatorFactory,
        drafter: ScriptedDrafter,
        fields: dict[str, Any],
        match: str,
    ) -> None:
        """Unknown, library-owned or ill-typed fields raise InvalidInputError; nothing runs."""
        coord = make_coordinator(state_schema=BankState)
        with pytest.raises(InvalidInputError, match=match):
            await coord.process("t", CLEAN, **fields)
        assert drafter.calls == []
        assert (await snapshot(coord, "t")).values == {}
        assert (await coord.process("t", CLEAN)).status == "completed"

    @pytest.mark.parametrize("thread_id", ["", "   ", "x" * 513, None, 7])
    async def test_invalid_thread_id(self, coord: HitlCoordinator, thread_id: Any) -> None:
        """A blank, over-long or non-str thread id raises InvalidInputError."""
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.process(thread_id, CLEAN)

    @pytest.mark.parametrize("message", [None, 42, b"hi"])
    async def test_invalid_message(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, message: Any
    ) -> None:
        """A message that is not str raises InvalidInputError and nothing runs."""
        with pytest.raises(InvalidInputError, match="message"):
            await coord.process("t", message)
        assert drafter.calls == []

    async def test_drafter_error_frees_thread(self, make_coordinator: CoordinatorFactory) -> None:
        """When the drafter raises, the error propagates and the thread takes a new turn later."""
        failing = {"fail": True}

        def draft(state: ComplianceState) -> str:
            if failing["fail"]:
                raise RuntimeError("LLM down")
            return "fine"

        coord = make_coordinator(draft=draft)
        with pytest.raises(RuntimeError, match="LLM down"):
            await coord.process("t", CLEAN)
        failing["fail"] = False
        assert (await coord.process("t", CLEAN)).status == "completed"

    async def test_concurrent_turns_one_thread(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter
    ) -> None:
        """Two concurrent process calls on one thread: one runs, the other is ThreadBusyError."""
        outcomes = await asyncio.gather(
            coord.process("t", CLEAN), coord.process("t", CLEAN), return_exceptions=True
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["ProcessResult", "ThreadBusyError"]
        assert drafter.calls == [CLEAN]

    @pytest.mark.parametrize("metadata", ["not a mapping", ["a"], 42])
    async def test_metadata_not_a_mapping(self, coord: HitlCoordinator, metadata: Any) -> None:
        """metadata= that is not a mapping raises InvalidInputError and nothing runs."""
        with pytest.raises(InvalidInputError):
            await coord.process("t", CLEAN, metadata=metadata)
        assert (await snapshot(coord, "t")).values == {}

    @pytest.mark.allow_serializer_warnings
    @pytest.mark.parametrize(
        "value",
        [object(), Colour.RED, Note(text="x")],
        ids=["object", "enum", "pydantic-model"],
    )
    async def test_metadata_not_json(self, coord: HitlCoordinator, value: Any) -> None:
        """metadata= holding a non-JSON value raises InvalidInputError, as a decision's does."""
        with pytest.raises(InvalidInputError):
            await coord.process("t", CLEAN, metadata={"value": value})


class TestPending:
    async def test_oldest_first(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """pending() lists paused threads by request time, oldest first."""
        for thread_id in ["c", "a", "b"]:
            await coord.process(thread_id, RISKY)
            clock.advance(seconds=1)
        assert [p.thread_id for p in await coord.pending()] == ["c", "a", "b"]
        assert [p.thread_id for p in await coord.pending(limit=2)] == ["c", "a"]

    async def test_fields(self, coord: HitlCoordinator) -> None:
        """A pending review shows the draft, its hash, findings, requester and time."""
        result = await coord.process("t", RISKY, requested_by="agent-7")
        (review,) = await coord.pending()
        assert review.thread_id == "t"
        assert review.review_id == result.review_id
        assert review.checkpoint_id == result.checkpoint_id
        assert review.customer_message == RISKY
        assert review.draft_response == SCRIPT[RISKY]
        assert review.draft_sha256 == hashlib.sha256(SCRIPT[RISKY].encode()).hexdigest()
        assert review.violations == [GUARANTEE_FINDING]
        assert review.requested_at == EPOCH
        assert review.requested_by == "agent-7"

    async def test_excludes_decided(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """Decided, completed and blocked threads are not pending."""
        await coord.process("a", RISKY)
        await coord.process("b", RISKY)
        await coord.process("c", CLEAN)
        await coord.process("d", SECRET)
        await coord.reject("a", reviewer="bob")
        assert [p.thread_id for p in await coord.pending()] == ["b"]

    @pytest.mark.parametrize("limit", [0, -1, 1.5, "2"])
    async def test_invalid_limit(self, coord: HitlCoordinator, limit: Any) -> None:
        """A limit that is not a positive int raises InvalidInputError."""
        with pytest.raises(InvalidInputError, match="limit"):
            await coord.pending(limit=limit)


class TestApprove:
    async def test_delivers_draft(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """Approving without a response delivers the draft as the human's decision."""
        paused = await coord.process("t", RISKY)
        clock.advance(minutes=5)
        result = await coord.approve("t", reviewer="alice")
        assert result.status == "completed"
        assert result.awaiting_approval is False
        assert result.agent_response == SCRIPT[RISKY]
        assert result.agent_type == "human_admin"
        assert result.is_compliant is True
        assert result.reviewer == "alice"
        assert result.review_id == paused.review_id
        assert result.violations == [GUARANTEE_FINDING]
        assert result.metadata == {
            "reviewer": "alice",
            "decided_at": (EPOCH + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        }
        assert (await snapshot(coord, "t")).next == ()

    async def test_delivers_edit(self, coord: HitlCoordinator) -> None:
        """Approving with a response delivers the reviewer's text, not the draft."""
        await coord.process("t", RISKY)
        result = await coord.approve("t", reviewer="alice", response="Returns are not guaranteed.")
        assert result.agent_response == "Returns are not guaranteed."
        assert result.draft_response == SCRIPT[RISKY]
        assert (result.agent_type, result.is_compliant) == ("human_admin", True)

    async def test_metadata_merged(self, coord: HitlCoordinator) -> None:
        """Decision metadata patches the thread's metadata instead of replacing it."""
        await coord.process("t", RISKY, metadata={"crm": {"id": 7}, "channel": "chat"})
        result = await coord.approve(
            "t", reviewer="alice", metadata={"crm": {"ticket": "C-9"}, "score": 0.5}
        )
        assert result.metadata["crm"] == {"id": 7, "ticket": "C-9"}
        assert result.metadata["channel"] == "chat"
        assert result.metadata["score"] == 0.5
        assert result.metadata["reviewer"] == "alice"

    async def test_removes_pending(self, coord: HitlCoordinator) -> None:
        """An approved review is no longer pending and the audit log ends in approved."""
        await coord.process("t", RISKY)
        await coord.approve("t", reviewer="alice")
        assert await coord.pending() == []
        log = await coord.audit_log("t")
        assert [r.event for r in log] == ["paused", "replied", "approved"]
        assert log[2].actor == "alice"
        assert log[2].payload["delivered"] == SCRIPT[RISKY]

    async def test_drafter_runs_once(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter
    ) -> None:
        """The drafter runs exactly once for a turn, across process and approve."""
        await coord.process("t", RISKY)
        await coord.approve("t", reviewer="alice", response="edited")
        assert drafter.calls == [RISKY]
        assert await finished_runs(coord, "t") == 1

    async def test_twice(self, coord: HitlCoordinator) -> None:
        """A second decision on one pause raises AlreadyDecidedError and changes nothing."""
        await coord.process("t", RISKY)
        first = await coord.approve("t", reviewer="alice")
        with pytest.raises(AlreadyDecidedError) as info:
            await coord.approve("t", reviewer="bob", response="other")
        assert info.value.status == "approved"
        with pytest.raises(AlreadyDecidedError):
            await coord.reject("t", reviewer="bob")
        assert (await snapshot(coord, "t")).values["agent_response"] == first.agent_response
        assert await events(coord, "t") == ["paused", "approved"]
        assert await finished_runs(coord, "t") == 1

    @pytest.mark.parametrize("thread_id", ["never-seen", "completed", "blocked"])
    async def test_not_paused(self, coord: HitlCoordinator, thread_id: str) -> None:
        """Approving a thread that never paused raises ReviewNotFoundError and creates nothing."""
        if thread_id == "completed":
            await coord.process(thread_id, CLEAN)
        elif thread_id == "blocked":
            await coord.process(thread_id, SECRET)
        before = await snapshot(coord, thread_id)
        with pytest.raises(ReviewNotFoundError):
            await coord.approve(thread_id, reviewer="alice")
        after = await snapshot(coord, thread_id)
        assert checkpoint_id(after) == checkpoint_id(before)
        assert after.values == before.values

    async def test_unknown_thread_not_created(self, coord: HitlCoordinator) -> None:
        """Deciding an unknown thread leaves no LangGraph thread behind."""
        with pytest.raises(ReviewNotFoundError):
            await coord.approve("ghost", reviewer="alice")
        with pytest.raises(ReviewNotFoundError):
            await coord.reject("ghost", reviewer="alice")
        snap = await snapshot(coord, "ghost")
        assert snap.values == {}
        assert checkpoint_id(snap) is None
        assert await events(coord, "ghost") == []

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"reviewer": ""},
            {"reviewer": "   "},
            {"reviewer": None},
            {"reviewer": "x" * 257},
            {"reviewer": "alice", "response": ""},
            {"reviewer": "alice", "response": " \n "},
            {"reviewer": "alice", "response": 42},
            {"reviewer": "alice", "metadata": {"obj": object()}},
            {"reviewer": "alice", "metadata": {"when": datetime(2025, 1, 1)}},  # naive on purpose
            {"reviewer": "alice", "metadata": ["not", "a", "mapping"]},
            {"reviewer": "alice", "metadata": object()},
        ],
    )
    async def test_invalid_decision(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, kwargs: dict[str, Any]
    ) -> None:
        """An invalid decision raises InvalidDecisionError; the thread stays paused and pending."""
        paused = await coord.process("t", RISKY)
        with pytest.raises(InvalidDecisionError):
            await coord.approve("t", **kwargs)
        assert await paused_at(coord, "t") == paused.checkpoint_id
        assert [p.review_id for p in await coord.pending()] == [paused.review_id]
        assert await events(coord, "t") == ["paused"]
        result = await coord.approve("t", reviewer="alice")
        assert result.status == "completed"
        assert drafter.calls == [RISKY]

    async def test_invalid_decision_is_input_error(self, coord: HitlCoordinator) -> None:
        """InvalidDecisionError is an InvalidInputError."""
        await coord.process("t", RISKY)
        with pytest.raises(InvalidInputError):
            await coord.approve("t", reviewer=" ")


class TestReject:
    async def test_no_message(self, coord: HitlCoordinator, drafter: ScriptedDrafter) -> None:
        """Rejecting delivers nothing when the graph has no rejection message."""
        await coord.process("t", RISKY, metadata={"crm": {"id": 1}})
        result = await coord.reject("t", reviewer="bob", reason="promises returns")
        assert result.status == "rejected"
        assert result.agent_response is None
        assert result.agent_type == "human_admin"
        assert result.is_compliant is False
        assert result.reviewer == "bob"
        assert result.metadata["rejection_reason"] == "promises returns"
        assert result.metadata["crm"] == {"id": 1}
        assert await events(coord, "t") == ["paused", "rejected"]
        assert drafter.calls == [RISKY]
        assert await finished_runs(coord, "t") == 1

    async def test_rejection_message(self, make_coordinator: CoordinatorFactory) -> None:
        """Rejecting delivers the graph's rejection message."""
        coord = make_coordinator(rejection_message="An adviser will call you.")
        await coord.process("t", RISKY)
        result = await coord.reject("t", reviewer="bob")
        assert result.agent_response == "An adviser will call you."
        assert result.metadata.get("rejection_reason") is None

    async def test_unknown_thread(self, coord: HitlCoordinator) -> None:
        """Rejecting an unknown thread raises ReviewNotFoundError."""
        with pytest.raises(ReviewNotFoundError) as info:
            await coord.reject("ghost", reviewer="bob")
        assert info.value.thread_id == "ghost"

    @pytest.mark.parametrize(
        "kwargs",
        [{"reviewer": ""}, {"reviewer": "bob", "metadata": {"x": {1, 2}}}],
    )
    async def test_invalid(self, coord: HitlCoordinator, kwargs: dict[str, Any]) -> None:
        """An invalid rejection raises InvalidDecisionError and leaves the pause as it was."""
        paused = await coord.process("t", RISKY)
        with pytest.raises(InvalidDecisionError):
            await coord.reject("t", **kwargs)
        assert await paused_at(coord, "t") == paused.checkpoint_id
        assert len(await coord.pending()) == 1

    async def test_reason_not_carried_to_later_approval(self, coord: HitlCoordinator) -> None:
        """An approval in a later turn does not report an earlier turn's rejection reason."""
        await coord.process("t", RISKY)
        await coord.reject("t", reviewer="bob", reason="too risky")
        await coord.process("t", RISKY)
        result = await coord.approve("t", reviewer="alice")
        assert result.metadata.get("rejection_reason") is None


class TestConcurrentDecisions:
    async def test_one_winner(self, coord: HitlCoordinator, drafter: ScriptedDrafter) -> None:
        """Of ten concurrent approve/reject calls on one pause exactly one wins."""
        await coord.process("t", RISKY)

        async def decide(i: int) -> ProcessResult:
            if i % 2:
                return await coord.reject("t", reviewer=f"officer-{i}")
            return await coord.approve("t", reviewer=f"officer-{i}", response=f"edit {i}")

        outcomes = await asyncio.gather(*(decide(i) for i in range(10)), return_exceptions=True)
        wins = [o for o in outcomes if isinstance(o, ProcessResult)]
        losses = [o for o in outcomes if not isinstance(o, ProcessResult)]
        assert len(wins) == 1
        assert len(losses) == 9
        assert all(isinstance(o, AlreadyDecidedError) for o in losses)
        (win,) = wins
        log = [r for r in await coord.audit_log("t") if r.event != REPLIED]
        assert [r.event for r in log] == ["paused", win.status.replace("completed", "approved")]
        assert log[1].actor == win.reviewer
        assert drafter.calls == [RISKY]
        assert await finished_runs(coord, "t") == 1
        values = (await snapshot(coord, "t")).values
        assert values["agent_response"] == win.agent_response
        assert values["decision"]["reviewer"] == win.reviewer

    async def test_threads_independent(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter
    ) -> None:
        """Concurrent decisions on different threads all succeed."""
        drafter.script.update({f"m{i}": "guaranteed returns" for i in range(5)})
        for i in range(5):
            await coord.process(f"t{i}", f"m{i}")
        results = await asyncio.gather(
            *(coord.approve(f"t{i}", reviewer="alice") for i in range(5))
        )
        assert [r.status for r in results] == ["completed"] * 5
        assert drafter.counts == {f"m{i}": 1 for i in range(5)}

    async def test_process_while_claimed(self, coord: HitlCoordinator) -> None:
        """While a decision is in flight the thread refuses a new turn."""
        await coord.process("t", RISKY)
        decision = Decision(approved=True, reviewer="alice", decided_at=EPOCH).to_state()
        await coord.reviews.claim(
            "t", claim_id="in-flight", reviewer="alice", decision=decision, now=EPOCH
        )
        with pytest.raises(ThreadBusyError):
            await coord.process("t", CLEAN)
        with pytest.raises(AlreadyDecidedError) as info:
            await coord.approve("t", reviewer="bob")
        assert info.value.status == "claimed"


class TestFailedDecision:
    async def test_failure_before_graph_releases_claim(
        self, coord: HitlCoordinator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A decision whose resume fails before the graph changed is released back to pending."""
        paused = await coord.process("t", RISKY)

        async def lost(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("checkpointer connection lost")

        with monkeypatch.context() as patch:
            patch.setattr(coord.graph, "aupdate_state", lost)
            patch.setattr(coord.graph, "ainvoke", lost)
            with pytest.raises(ConnectionError):
                await coord.approve("t", reviewer="alice")
        assert await paused_at(coord, "t") == paused.checkpoint_id
        assert [p.review_id for p in await coord.pending()] == [paused.review_id]
        assert await events(coord, "t") == ["paused"]
        result = await coord.reject("t", reviewer="bob")
        assert (result.status, result.reviewer) == ("rejected", "bob")

    async def test_static_failure_after_update_kept_for_recover(
        self,
        coordinator_factory: CoordinatorFactory,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Static style: a failure after aupdate_state keeps the claim; recover() finishes it."""
        coord = coordinator_factory("interrupt_before")
        await coord.process("t", RISKY)

        async def lost(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("checkpointer connection lost")

        with monkeypatch.context() as patch:
            patch.setattr(coord.graph, "ainvoke", lost)
            with pytest.raises(ConnectionError):
                await coord.approve("t", reviewer="alice", response="edited")
        assert (await snapshot(coord, "t")).next == ("deliver",)
        assert await coord.pending() == []
        with pytest.raises(AlreadyDecidedError):
            await coord.reject("t", reviewer="bob")
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert (result.agent_response, result.reviewer) == ("edited", "alice")
        assert await events(coord, "t") == ["paused", "recovered", "approved"]
        assert await finished_runs(coord, "t") == 1


class TestEvidence:
    async def test_state_at_decision(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """state_at_decision returns the exact paused state the reviewer saw."""
        paused = await coord.process("t", RISKY)
        clock.advance(minutes=1)
        await coord.approve("t", reviewer="alice", response="edited")
        state = await coord.state_at_decision("t")
        assert state.draft_response == SCRIPT[RISKY]
        assert state.rule_results == [GUARANTEE_FINDING]
        assert state.agent_response is None
        assert state.decision is None
        assert paused.checkpoint_id == (await coord.reviews.get_review("t")).checkpoint_id  # type: ignore[union-attr]

    async def test_state_at_decision_never_paused(self, coord: HitlCoordinator) -> None:
        """state_at_decision on a thread that never paused raises ReviewNotFoundError."""
        await coord.process("t", CLEAN)
        with pytest.raises(ReviewNotFoundError):
            await coord.state_at_decision("t")

    async def test_audit_log(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """The audit log records the pause and then the decision, with hash, actor and time."""
        paused = await coord.process("t", RISKY, requested_by="agent-7")
        clock.advance(minutes=2)
        await coord.approve("t", reviewer="alice", metadata={"ticket": "C-9"})
        pause, reply, approval = await coord.audit_log("t")
        assert (pause.event, pause.actor, pause.at) == ("paused", "agent-7", EPOCH)
        assert pause.review_id == approval.review_id == paused.review_id
        assert pause.checkpoint_id == approval.checkpoint_id == paused.checkpoint_id
        assert pause.payload["draft_sha256"] == hashlib.sha256(SCRIPT[RISKY].encode()).hexdigest()
        assert pause.payload["violations"] == [GUARANTEE_FINDING.to_dict()]
        assert (approval.event, approval.actor) == ("approved", "alice")
        assert approval.at == EPOCH + timedelta(minutes=2)
        assert approval.payload["metadata"] == {"ticket": "C-9"}
        assert approval.seq > reply.seq > pause.seq
        # The graph's reply record: what went out, under which rules, decided by whom.
        rules = graph_spec(coord.graph).rules
        assert (reply.event, reply.actor) == ("replied", "alice")
        assert reply.payload == {
            "outcome": "delivered",
            "delivered_sha256": hashlib.sha256(SCRIPT[RISKY].encode()).hexdigest(),
            "rules": [{"name": r.name, "version": rule_version(r)} for r in rules],
            "ruleset": ruleset_fingerprint(rules),
            "drafter": None,
            "decided_by": "alice",
            "turn": "1",
        }

    async def test_audit_log_per_thread(self, coord: HitlCoordinator) -> None:
        """Each thread's audit log holds only its own events."""
        await coord.process("a", RISKY)
        await coord.process("b", RISKY)
        await coord.reject("b", reviewer="bob")
        assert await events(coord, "a") == ["paused"]
        assert await events(coord, "b") == ["paused", "rejected"]


class TestRecover:
    def _decision(self, reviewer: str = "alice", *, approved: bool = True) -> dict[str, Any]:
        return Decision(approved=approved, reviewer=reviewer, decided_at=EPOCH).to_state()

    async def test_abandoned_claim(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """A claim whose decider died before resuming is finished by recover()."""
        paused = await coord.process("t", RISKY)
        await coord.reviews.claim(
            "t",
            claim_id="dead",
            reviewer="alice",
            decision=self._decision(),
            now=clock() - timedelta(hours=1),
        )
        (result,) = await coord.recover()
        assert result.status == "completed"
        assert result.agent_response == SCRIPT[RISKY]
        assert result.agent_type == "human_admin"
        assert result.reviewer == "alice"
        assert result.review_id == paused.review_id
        assert await events(coord, "t") == ["paused", "recovered", "approved"]
        assert drafter.calls == [RISKY]
        assert await finished_runs(coord, "t") == 1
        assert await coord.recover() == []

    async def test_abandoned_rejection(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """An abandoned rejection is finished as a rejection."""
        await coord.process("t", RISKY)
        await coord.reviews.claim(
            "t",
            claim_id="dead",
            reviewer="bob",
            decision=self._decision("bob", approved=False),
            now=clock(),
        )
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert (result.status, result.reviewer) == ("rejected", "bob")
        assert await events(coord, "t") == ["paused", "recovered", "rejected"]

    async def test_static_crash_after_update(
        self, coordinator_factory: CoordinatorFactory, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """Static style: a crash between aupdate_state and ainvoke is finished from deliver."""
        coord = coordinator_factory("interrupt_before")
        await coord.process("t", RISKY)
        decision = self._decision()
        await coord.reviews.claim(
            "t", claim_id="dead", reviewer="alice", decision=decision, now=clock()
        )
        await coord.graph.aupdate_state(
            config_for("t"), {"decision": decision}, as_node="human_approval"
        )
        assert (await snapshot(coord, "t")).next == ("deliver",)
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert (result.status, result.agent_type) == ("completed", "human_admin")
        assert (await snapshot(coord, "t")).next == ()
        assert await events(coord, "t") == ["paused", "recovered", "approved"]
        assert drafter.calls == [RISKY]
        assert await finished_runs(coord, "t") == 1

    async def test_crash_after_resume(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """A crash after the graph finished but before the decision was recorded is recorded."""
        await coord.process("t", RISKY)
        decision = self._decision()
        await coord.reviews.claim(
            "t", claim_id="dead", reviewer="alice", decision=decision, now=clock()
        )
        await resume_like_the_coordinator(coord, "t", decision)
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert result.status == "completed"
        assert await events(coord, "t") == ["paused", "recovered", "approved"]
        assert await finished_runs(coord, "t") == 1
        assert drafter.calls == [RISKY]

    async def test_paused_without_review(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """A thread that paused but died before its review row was written becomes pending."""
        await coord.reviews.begin_turn("t", owner="dead", now=clock())
        await coord.graph.ainvoke({"customer_message": RISKY}, driven_config(coord, "t"))
        assert await coord.pending() == []
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert result.status == "paused"
        (review,) = await coord.pending()
        assert review.review_id == result.review_id
        assert review.checkpoint_id == await paused_at(coord, "t")
        approved = await coord.approve("t", reviewer="alice")
        assert approved.status == "completed"
        assert drafter.calls == [RISKY]

    async def test_completed_turn_left_open(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """A turn that finished but was never closed is closed, freeing the thread."""
        await coord.reviews.begin_turn("t", owner="dead", now=clock())
        await coord.graph.ainvoke({"customer_message": CLEAN}, config_for("t"))
        with pytest.raises(ThreadBusyError):
            await coord.process("t", CLEAN)
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert result.status == "completed"
        assert (await coord.process("t", CLEAN)).status == "completed"

    async def test_fresh_claim_left_alone(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """recover() does not take over a claim younger than the lease."""
        paused = await coord.process("t", RISKY)
        await coord.reviews.claim(
            "t", claim_id="alive", reviewer="alice", decision=self._decision(), now=clock()
        )
        clock.advance(seconds=29)
        assert await coord.recover() == []
        review = await coord.reviews.get_review("t")
        assert review is not None
        assert (review.status, review.claim_id) == ("claimed", "alive")
        assert await paused_at(coord, "t") == paused.checkpoint_id
        assert await events(coord, "t") == ["paused"]

    async def test_fresh_turn_left_alone(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """recover() does not take over a turn younger than the lease."""
        await coord.reviews.begin_turn("t", owner="alive", now=clock())
        await coord.graph.ainvoke({"customer_message": RISKY}, driven_config(coord, "t"))
        assert await coord.recover() == []
        assert await coord.pending() == []

    async def test_nothing_to_do(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """recover() with only healthy threads does nothing."""
        await coord.process("a", RISKY)
        await coord.process("b", CLEAN)
        clock.advance(hours=1)
        assert await coord.recover() == []
        assert len(await coord.pending()) == 1

    async def test_run_died_mid_way(
        self, make_coordinator: CoordinatorFactory, clock: FakeClock
    ) -> None:
        """A turn whose run died in a node is run on from its checkpoint by recover()."""
        attempts: list[str] = []

        def flaky(state: ComplianceState) -> str:
            attempts.append(state.customer_message)
            if len(attempts) == 1:
                raise RuntimeError("process killed")
            return SCRIPT[RISKY]

        coord = make_coordinator(draft=flaky)
        await coord.reviews.begin_turn("t", owner="dead", now=clock())
        with pytest.raises(RuntimeError):
            await coord.graph.ainvoke({"customer_message": RISKY}, driven_config(coord, "t"))
        assert (await snapshot(coord, "t")).next == ("draft",)
        clock.advance(minutes=1)
        (result,) = await coord.recover()
        assert result.status == "paused"
        assert attempts == [RISKY, RISKY]
        assert len(await coord.pending()) == 1

    async def test_concurrent_recovers(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, clock: FakeClock
    ) -> None:
        """Several recover() calls at once finish an abandoned decision exactly once."""
        await coord.process("t", RISKY)
        await coord.reviews.claim(
            "t", claim_id="dead", reviewer="alice", decision=self._decision(), now=clock()
        )
        clock.advance(minutes=1)
        other = HitlCoordinator(coord.graph, reviews=coord.reviews, clock=clock)
        batches = await asyncio.gather(coord.recover(), other.recover(), coord.recover())
        assert sum(len(b) for b in batches) == 1
        assert await events(coord, "t") == ["paused", "recovered", "approved"]
        assert await finished_runs(coord, "t") == 1
        assert drafter.calls == [RISKY]

    async def test_turn_without_checkpoint(self, coord: HitlCoordinator, clock: FakeClock) -> None:
        """A turn that died before its first checkpoint is released so the thread works again."""
        await coord.reviews.begin_turn("t", owner="dead", now=clock())
        clock.advance(minutes=1)
        await coord.recover()
        assert (await coord.process("t", CLEAN)).status == "completed"
