"""Unit tests of how the coordinator runs the graph: what one cycle reads and writes.

* The run's own checkpoint stream says where it stopped: no checkpoint is read
  back after a run, and the checkpoint id a review records is the pause's.
* A thread's first turn writes no reset values; a later turn still starts clean.
* No node or router runs on a worker thread.

Tests taking the `coord` / `make_coordinator` fixtures run once per pause style.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from hitl_compliance import ComplianceState, HitlCoordinator, PauseStyle, RuleResult
from hitl_compliance import graph as graph_module
from hitl_compliance.graph import TURN_FIELDS, build_compliance_graph
from tests.conftest import CoordinatorFactory
from tests.helpers import CLEAN, RISKY, SCRIPT, ScriptedDrafter, checkpoint_id, config_for, snapshot


async def paused_at(coord: HitlCoordinator, thread_id: str) -> str | None:
    snap = await snapshot(coord, thread_id)
    assert snap.next == ("human_approval",)
    return checkpoint_id(snap)


class CountingSaver(InMemorySaver):
    """An InMemorySaver counting checkpoint reads (`aget_tuple`).

    The count lives in a shared list: with a strict serializer allowlist LangGraph
    runs on a shallow copy of the saver.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counter = [0]

    @property
    def reads(self) -> int:
        return self.counter[0]

    def reset(self) -> None:
        self.counter[0] = 0

    async def aget_tuple(self, config: Any) -> Any:
        self.counter[0] += 1
        return await super().aget_tuple(config)


class TestNoReadBack:
    @pytest.mark.parametrize(
        ("style", "approve_reads"), [("interrupt_before", 2), ("command_resume", 1)]
    )
    async def test_cycle_reads_only_what_the_runs_load(
        self,
        drafter: ScriptedDrafter,
        monkeypatch: pytest.MonkeyPatch,
        style: PauseStyle,
        approve_reads: int,
    ) -> None:
        """Each run loads its thread's checkpoint once (so does aupdate_state); nothing is
        read back after a run. Static approve = aupdate_state + run; dynamic = one run."""
        saver = CountingSaver()
        graph: Any = build_compliance_graph(
            drafter, rules=[_ReviewRisky()], checkpointer=saver, style=style
        )
        coord = HitlCoordinator(graph)

        async def no_snapshot(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the coordinator read a snapshot back after a run")

        monkeypatch.setattr(graph, "aget_state", no_snapshot)
        done = await coord.process("clean", CLEAN)
        assert (done.status, saver.reads) == ("completed", 1)
        saver.reset()
        paused = await coord.process("t", RISKY)
        assert (paused.status, saver.reads) == ("paused", 1)
        saver.reset()
        decided = await coord.approve("t", reviewer="alice")
        assert (decided.status, saver.reads) == ("completed", approve_reads)
        monkeypatch.undo()
        assert paused.checkpoint_id == (await coord.reviews.get_review("t")).checkpoint_id  # type: ignore[union-attr]
        assert decided.checkpoint_id == checkpoint_id(await snapshot(coord, "t"))

    async def test_checkpoint_ids_are_the_runs(self, coord: HitlCoordinator) -> None:
        """Pause and decision record the exact checkpoints the graph is at afterwards."""
        paused = await coord.process("t", RISKY)
        assert paused.checkpoint_id == await paused_at(coord, "t")
        review = await coord.reviews.get_review("t")
        assert review is not None
        assert review.checkpoint_id == paused.checkpoint_id
        decided = await coord.approve("t", reviewer="alice")
        final = await snapshot(coord, "t")
        assert (final.next, decided.checkpoint_id) == ((), checkpoint_id(final))
        assert (await coord.state_at_decision("t")).draft_response == paused.draft_response

    async def test_wrapper_without_stream_mode(
        self, coord: HitlCoordinator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A graph wrapper that drops `stream_mode` still works: the snapshot is read instead."""
        graph: Any = coord.graph
        original = graph.ainvoke

        async def plain(value: Any, config: Any = None, **kwargs: Any) -> Any:
            return await original(value, config)

        monkeypatch.setattr(graph, "ainvoke", plain)
        paused = await coord.process("t", RISKY)
        assert (paused.status, paused.checkpoint_id) == ("paused", await paused_at(coord, "t"))
        decided = await coord.approve("t", reviewer="alice")
        assert (decided.status, decided.agent_type) == ("completed", "human_admin")
        assert decided.checkpoint_id == checkpoint_id(await snapshot(coord, "t"))

    async def test_drafter_running_a_nested_graph(
        self, make_coordinator: CoordinatorFactory
    ) -> None:
        """Checkpoints of a graph the drafter runs (another namespace) do not count as ours."""

        class Inner(BaseModel):
            text: str = ""

        async def write(state: Inner) -> dict[str, Any]:
            return {"text": SCRIPT[RISKY]}

        builder: Any = StateGraph(Inner)
        builder.add_node("write", write)
        builder.add_edge(START, "write")
        builder.add_edge("write", END)
        inner = builder.compile()  # a subgraph: checkpoints in the parent's saver

        async def draft(state: ComplianceState) -> str:
            out = await inner.ainvoke({"text": ""})
            return str(out["text"])

        coord = make_coordinator(draft=draft)
        paused = await coord.process("t", "hi")
        assert (paused.status, paused.draft_response) == ("paused", SCRIPT[RISKY])
        assert paused.checkpoint_id == await paused_at(coord, "t")
        done = await coord.approve("t", reviewer="alice")
        assert (done.status, done.checkpoint_id) == (
            "completed",
            checkpoint_id(await snapshot(coord, "t")),
        )

    @pytest.mark.parametrize("durability", ["sync", "async", "exit"])
    @pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
    async def test_last_checkpoint_event_is_the_saved_position(
        self, drafter: ScriptedDrafter, style: PauseStyle, durability: Any
    ) -> None:
        """LangGraph contract the coordinator relies on, in every durability mode: the
        last checkpoint a run streams is the one saved, with its `next`."""
        graph = build_compliance_graph(
            drafter, rules=[_AlwaysReview()], checkpointer=InMemorySaver(), style=style
        )
        events = await graph.ainvoke(
            {"customer_message": RISKY},
            config_for("t"),
            stream_mode="checkpoints",
            durability=durability,
        )
        snap = await graph.aget_state(config_for("t"))
        last = events[-1]
        assert last["config"]["configurable"]["checkpoint_id"] == checkpoint_id(snap)
        assert tuple(last["next"]) == snap.next == ("human_approval",)


class _AlwaysReview:
    name = "always"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        return RuleResult(self.name, "review", "every draft is reviewed")


class _Recorder:
    """A pass rule recording the state it was evaluated on."""

    name = "recorder"

    def __init__(self) -> None:
        self.states: list[ComplianceState] = []

    def evaluate(self, state: ComplianceState) -> RuleResult:
        self.states.append(state)
        return RuleResult(self.name, "pass")


def _written_channels(saver: InMemorySaver, thread_id: str) -> set[str]:
    """Every state channel any checkpoint of the thread has a stored value for."""
    return {key[2] for key in saver.blobs if key[0] == thread_id}


class TestTurnResets:
    async def test_first_turn_writes_no_resets(self, coord: HitlCoordinator) -> None:
        """A fresh thread's pause stores no reset value for fields the turn never set."""
        await coord.process("t", RISKY)
        saver = coord.graph.checkpointer
        assert isinstance(saver, InMemorySaver)
        written = _written_channels(saver, "t")
        assert written.isdisjoint({"agent_response", "agent_type", "decision"})
        values = (await snapshot(coord, "t")).values
        # Unset fields are absent from the raw values; the schema's defaults apply.
        assert "decision" not in values
        assert "agent_type" not in values

    async def test_later_turn_starts_clean(
        self, make_coordinator: CoordinatorFactory, drafter: ScriptedDrafter
    ) -> None:
        """After a decided turn, drafter and rules of the next turn see no old values."""
        recorder = _Recorder()
        coord = make_coordinator(rules=[recorder, _ReviewRisky()])
        await coord.process("t", RISKY)
        await coord.approve("t", reviewer="alice", response="Edited.")
        second = await coord.process("t", CLEAN)
        assert (second.status, second.violations, second.agent_type) == ("completed", [], "llm")
        for state in (drafter.states[-1], recorder.states[-1]):
            assert state.customer_message == CLEAN
            assert (state.decision, state.agent_response, state.agent_type) == (None, None, None)
            assert (state.violations, state.is_compliant) == ([], None)
        assert drafter.states[-1].draft_response is None
        assert recorder.states[-1].draft_response == second.draft_response
        assert recorder.states[-1].turn == 2

    async def test_turn_fields_are_the_reset_fields(self) -> None:
        """TURN_FIELDS names exactly the state fields a turn produces."""
        produced = {"draft_response", "violations", "agent_response", "agent_type"}
        assert set(TURN_FIELDS) == produced | {"is_compliant", "decision"}
        assert set(TURN_FIELDS) <= set(ComplianceState.model_fields)


class _ReviewRisky:
    name = "risky"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        verdict = "review" if state.customer_message == RISKY else "pass"
        return RuleResult(self.name, verdict)


class _RecordingExecutor(ThreadPoolExecutor):
    """A default executor that records every submission."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(getattr(fn, "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


class TestNoWorkerThreads:
    async def test_cycle_runs_on_the_loop(self, coord: HitlCoordinator, style: PauseStyle) -> None:
        """Every node and router is async: LangGraph runs none of them in a worker thread."""
        executor = _RecordingExecutor()
        # The test's own event loop: it shuts this executor down when the test ends.
        asyncio.get_running_loop().set_default_executor(executor)
        await coord.process("t", RISKY)
        await coord.reject("t", reviewer="alice")
        await coord.process("t", CLEAN)
        await coord.process("u", RISKY)
        await coord.approve("u", reviewer="alice")
        assert executor.submitted == []

    async def test_interrupt_node_before_python_311(
        self, drafter: ScriptedDrafter, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where asyncio tasks do not carry the run's context (Python 3.10), the dynamic
        human_approval node hands interrupt() its config itself; still no worker thread."""
        monkeypatch.setattr(graph_module, "_ASYNC_INTERRUPT", False)
        graph = build_compliance_graph(
            drafter, rules=[_ReviewRisky()], checkpointer=InMemorySaver(), style="command_resume"
        )
        coord = HitlCoordinator(graph)
        executor = _RecordingExecutor()
        asyncio.get_running_loop().set_default_executor(executor)
        paused = await coord.process("t", RISKY)
        assert paused.status == "paused"
        assert (await coord.approve("t", reviewer="alice")).status == "completed"
        assert executor.submitted == []
