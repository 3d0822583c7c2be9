"""Test doubles shared by the whole suite: the kit's fakes set up for it, odd rules.

The scripted drafter and the fake clock are the ones the library ships in
`hitl_compliance.testing` (so downstream teams test with what we test with);
this module gives them the suite's script. Fixtures that build them are in
`conftest.py`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import hypothesis
import hypothesis.strategies as st
import pytest
from hypothesis.stateful import invariant, precondition, rule
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot

from hitl_compliance import (
    ComplianceRule,
    ComplianceState,
    HitlCoordinator,
    KeywordRule,
    PolicyViolationError,
    RegexRule,
    ReviewIdRequiredError,
    RuleResult,
    ThreadBusyError,
)
from hitl_compliance.testing import EPOCH, FakeClock
from hitl_compliance.testing import ScriptedDrafter as KitScriptedDrafter
from hitl_compliance.testing.stateful import CoordinatorMachine
from tests.gate_graphs import Bank, build_agent

__all__ = [
    "CLEAN",
    "EPOCH",
    "RISKY",
    "SCRIPT",
    "SECRET",
    "AsyncKeywordRule",
    "FakeClock",
    "GatedSuiteMachine",
    "NotAResultRule",
    "ParallelToolsMachine",
    "RaisingRule",
    "ScriptedDrafter",
    "SuiteMachine",
    "checkpoint_id",
    "config_for",
    "default_rules",
    "finished_runs",
    "snapshot",
]

CLEAN = "hello"
RISKY = "invest"
SECRET = "ssn"

SCRIPT: Mapping[str, str] = {
    CLEAN: "Thanks for your message, we will get back to you.",
    RISKY: "Our fund offers guaranteed returns of 9% a year.",
    SECRET: "Your SSN on file is 123-45-6789.",
}
"""Customer message -> draft: CLEAN passes, RISKY needs review, SECRET is blocked."""


class ScriptedDrafter(KitScriptedDrafter):
    """The kit's [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter], scripted
    with this suite's `SCRIPT` unless given another script."""

    def __init__(self, script: Mapping[str, str] | None = None, **options: Any) -> None:
        super().__init__(SCRIPT if script is None else script, **options)


def default_rules() -> list[ComplianceRule]:
    """The rules most tests use: a reviewable promise and a blocked SSN."""
    return [
        KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns"),
        RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block", reason="personal data"),
    ]


class SuiteMachine(CoordinatorMachine):
    """The kit's coordinator state machine over this suite's rules and script, without crashes."""

    compliance_rules = default_rules()
    script = SCRIPT
    expected_status: ClassVar[Mapping[str, str]] = {
        CLEAN: "completed",
        RISKY: "paused",
        SECRET: "rejected",
    }
    reviewers = ("alice", "bob")
    edits = ("Edited.",)
    faults = ()


class GatedSuiteMachine(SuiteMachine):
    """`SuiteMachine` on a gated `MessagesState` ReAct agent (`graph_kind` "react"), or on a
    parent graph with that agent as a subgraph ("subgraph").

    The model answers the suite's script as text, and `PAY_SMALL` / `PAY_HUGE` with a
    `transfer` call that runs at once / is blocked; the kit's machine decides text
    reviews (the reviewed tool calls are run over every fault point in
    `tests/testing/test_faults.py`).
    """

    graph_kind: ClassVar[Literal["react", "subgraph"]] = "react"
    messages = (*SCRIPT, "pay my gym", "pay my yacht broker")
    expected_status: ClassVar[Mapping[str, str]] = {
        **SuiteMachine.expected_status,
        "pay my gym": "completed",
        "pay my yacht broker": "completed",
    }
    rejection_message = "A colleague will contact you."

    def build_graph(self, drafter: Any, checkpointer: BaseCheckpointSaver[Any]) -> Any:
        """The gated agent of `graph_kind` over the suite's rules and script.

        Its gate answers to the example's store, so a pause is recorded and a
        decision checked even where the coordinator's own call crashed.
        """
        return build_agent(
            self.graph_kind,
            self.style,
            checkpointer,
            self.compliance_rules,
            dict(self.script),
            rejection_message=self.rejection_message,
            reviews=self.backend.reviews,
        )


PAY_TWO = "pay my landlord and my builder"
PARALLEL: dict[str, list[tuple[int, str]]] = {PAY_TWO: [(5_000, "12345678"), (3_000, "22223333")]}
"""Two transfers above the review limit in one message: two reviews, pending at once."""
TOOL_EDITS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"amount_gbp": 900, "to_account": "99990000"},
    {"amount_gbp": 30_000, "to_account": "99990000"},  # blocked by the re-check
)
"""What an approval of one call runs: the model's arguments, an edit, or a blocked edit."""
ACTIONS = ("approve", "approve tool_args", "reject")
"""What `decide_one` does with one review."""
_PARALLEL_ACCOUNTS = {
    *(account for calls in PARALLEL.values() for _, account in calls),
    *(edit["to_account"] for edit in TOOL_EDITS if edit is not None),
}
"""The accounts only this machine's rules pay (the kit's `pay my gym` pays another)."""


class ParallelToolsMachine(GatedSuiteMachine):
    """`GatedSuiteMachine` (ReAct, dynamic pause) plus threads paused on two tool calls at once.

    The kit's rules drive the text threads (`threads`); the rules here drive
    `tool_threads`, each paused by `PAY_TWO` on two flagged transfers, both pending
    at once: approve one by `review_id` (as proposed, edited with `tool_args`, or
    with an edit the rules block), reject one, or decide without `review_id`. The
    model keeps each thread's open review ids and the transfers approved so far.

    Invariants (beside the kit's): `pending()` lists exactly each tool thread's open
    reviews; every decided review has exactly one decision audit row, every open one
    none; a decision without `review_id` while two wait is a `ReviewIdRequiredError`
    naming both, changing nothing; the bank ran exactly the approved calls, with the
    edited arguments, once each thread's last review was decided.
    """

    graph_kind: ClassVar[Literal["react", "subgraph"]] = "react"
    tool_threads: ClassVar[tuple[str, ...]] = ("p1", "p2")

    def __init__(self) -> None:
        self.bank = Bank()
        super().__init__()
        self.open: dict[str, dict[str, tuple[int, str]]] = {}  # thread -> review id -> call
        self.approved: dict[str, list[tuple[int, str]]] = {}  # thread -> calls to run
        self.decided: dict[str, Counter[str]] = {}  # thread -> review id -> decision rows
        self.ran: list[tuple[int, str]] = []  # transfers the bank must have made

    def build_graph(self, drafter: Any, checkpointer: BaseCheckpointSaver[Any]) -> Any:
        """The gated agent, also proposing `PARALLEL`'s two transfers for `PAY_TWO`."""
        return build_agent(
            self.graph_kind,
            self.style,
            checkpointer,
            self.compliance_rules,
            dict(self.script),
            bank=self.bank,
            rejection_message=self.rejection_message,
            reviews=self.backend.reviews,
            parallel=PARALLEL,
        )

    def _waiting(self) -> list[str]:
        return [t for t in self.tool_threads if self.open.get(self.tid(t))]

    def _several(self) -> list[str]:
        return [t for t in self.tool_threads if len(self.open.get(self.tid(t), {})) > 1]

    @rule(data=st.data())
    def process_two_calls(self, data: st.DataObject) -> None:
        """Process `PAY_TWO`: two reviews open at once (a busy thread refuses)."""
        thread = self.tid(data.draw(st.sampled_from(self.tool_threads), label="tool thread"))
        if self.open.get(thread):
            try:
                self.run(self.coord.process(thread, PAY_TWO))
            except ThreadBusyError:
                return
            raise AssertionError(f"processing busy tool thread {thread!r} did not refuse")
        result = self.run(self.coord.process(thread, PAY_TWO))
        assert result.status == "paused", result
        pending = [r for r in self.run(self.coord.pending()) if r.thread_id == thread]
        assert len(pending) == 2, f"{thread!r} waits for {len(pending)} reviews, not 2"
        assert result.review_id in {r.review_id for r in pending}
        self.open[thread] = {r.review_id: _call_of(r.draft_response) for r in pending}
        self.approved[thread] = []
        self.status[thread] = "paused"

    @precondition(lambda self: bool(self._waiting()))
    @rule(data=st.data(), edit=st.sampled_from(TOOL_EDITS), action=st.sampled_from(ACTIONS))
    def decide_one(self, data: st.DataObject, edit: dict[str, Any] | None, action: str) -> None:
        """Approve (as proposed, or with `edit` as `tool_args`) or reject one review by its id."""
        approve = action != "reject"
        edit = edit if action == "approve tool_args" else None
        thread = self.tid(data.draw(st.sampled_from(self._waiting()), label="tool thread"))
        review_id = data.draw(st.sampled_from(sorted(self.open[thread])), label="review")
        reviewer = data.draw(st.sampled_from(list(self.reviewers)), label="reviewer")
        if not approve:
            result = self.run(
                self.coord.reject(thread, reviewer=reviewer, reason="no", review_id=review_id)
            )
        elif edit is not None and edit["amount_gbp"] > 25_000:
            try:
                self.run(
                    self.coord.approve(
                        thread, reviewer=reviewer, tool_args=edit, review_id=review_id
                    )
                )
            except PolicyViolationError:
                hypothesis.event("tool call: blocked tool_args refused")
                return  # refused before the claim: the model does not change
            raise AssertionError(f"a blocked edit of {review_id!r} was approved")
        else:
            result = self.run(
                self.coord.approve(thread, reviewer=reviewer, tool_args=edit, review_id=review_id)
            )
        call = self.open[thread].pop(review_id)
        if approve:
            self.approved[thread].append(
                call if edit is None else (edit["amount_gbp"], edit["to_account"])
            )
        kind = "reject" if not approve else "approve" if edit is None else "approve tool_args"
        hypothesis.event(f"tool call: {kind} by review_id: {result.status}")
        self._after_one(thread, review_id, result.status, result.review_id)

    @precondition(lambda self: bool(self._waiting()))
    @rule(data=st.data(), approve=st.booleans())
    def decide_without_review_id(self, data: st.DataObject, approve: bool) -> None:
        """No `review_id`: refused while two wait (naming both), the one left when one does."""
        thread = self.tid(data.draw(st.sampled_from(self._waiting()), label="tool thread"))
        decide = self.coord.approve if approve else self.coord.reject
        waiting = set(self.open[thread])
        if len(waiting) > 1:
            with pytest.raises(ReviewIdRequiredError) as refused:
                self.run(decide(thread, reviewer="alice"))
            assert set(refused.value.review_ids) == waiting, (refused.value, waiting)
            assert refused.value.thread_id == thread
            hypothesis.event("tool call: no review_id, two wait: ReviewIdRequiredError")
            return
        [review_id] = waiting
        result = self.run(decide(thread, reviewer="alice"))
        hypothesis.event(f"tool call: the last one without review_id: {result.status}")
        call = self.open[thread].pop(review_id)
        if approve:
            self.approved[thread].append(call)
        self._after_one(thread, review_id, result.status, result.review_id)

    def _after_one(self, thread: str, review_id: str, status: str, next_id: str | None) -> None:
        """One review decided: the thread waits for the others, or its calls ran."""
        self.decided.setdefault(thread, Counter())[review_id] += 1
        self.decisions[thread] += 1  # the kit's invariant counts a thread's decision rows
        if self.open[thread]:
            assert status == "paused", f"{thread!r} went on with reviews open: {status}"
            assert next_id in self.open[thread], (next_id, self.open[thread])
            return
        assert status == "completed", f"{thread!r} after its last review: {status}"
        self.status[thread] = "done"
        self.ran.extend(self.approved.pop(thread))

    @invariant()
    def each_review_decided_once(self) -> None:
        """pending() lists each tool thread's open reviews; one decision row per decided review."""
        pending = self.run(self.coord.pending())
        for name in self.tool_threads:
            thread = self.tid(name)
            listed = {r.review_id for r in pending if r.thread_id == thread}
            assert listed == set(self.open.get(thread, {})), (thread, listed, self.open)
            rows = self.run(self.backend.reviews.audit_log(thread))
            decided = Counter(r.review_id for r in rows if r.event in ("approved", "rejected"))
            expected = self.decided.get(thread, Counter())
            assert decided == expected, f"{thread!r}: decision rows {decided}, model {expected}"
            assert all(n == 1 for n in decided.values()), f"{thread!r} decided twice: {decided}"
        ran = [t for t in self.bank.transfers if t[1] in _PARALLEL_ACCOUNTS]
        assert Counter(ran) == Counter(self.ran), f"the bank ran {ran}, the model {self.ran}"


def _call_of(draft: str) -> tuple[int, str]:
    """The (amount, account) of a transfer review's draft, `transfer({...})`."""
    args = json.loads(draft[len("transfer(") : -1])
    return int(args["amount_gbp"]), str(args["to_account"])


class RaisingRule:
    """A rule whose `evaluate` always raises."""

    name = "raises"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        raise RuntimeError("rule backend down")


class NotAResultRule:
    """A rule whose `evaluate` returns something other than a `RuleResult`."""

    name = "not_a_result"

    def evaluate(self, state: ComplianceState) -> Any:
        return "pass"


class AsyncKeywordRule:
    """An async rule: `review` when `word` is in the draft."""

    def __init__(self, name: str, word: str) -> None:
        self.name = name
        self.word = word

    async def evaluate(self, state: ComplianceState) -> RuleResult:
        draft = state.draft_response or ""
        if self.word in draft:
            return RuleResult(self.name, "review", "async rule matched", (self.word,))
        return RuleResult(self.name, "pass")


def config_for(thread_id: str) -> Any:
    """The LangGraph config of a thread's latest checkpoint."""
    return {"configurable": {"thread_id": thread_id}}


async def snapshot(coord: HitlCoordinator, thread_id: str) -> StateSnapshot:
    """The thread's latest LangGraph snapshot."""
    return await coord.graph.aget_state(config_for(thread_id))


def checkpoint_id(snap: StateSnapshot) -> str | None:
    """The checkpoint id of a snapshot (`None` for a thread with no checkpoint)."""
    value = snap.config.get("configurable", {}).get("checkpoint_id")
    return None if value is None else str(value)


async def finished_runs(coord: HitlCoordinator, thread_id: str) -> int:
    """How many runs reached END on the thread (one per completed turn).

    A second resume of one pause would end a second time, so this counts how
    often `deliver` / `rejected` ran.
    """
    history = [s async for s in coord.graph.aget_state_history(config_for(thread_id))]
    return sum(1 for s in history if s.next == ())


def lane_zero_thread(name: str, lanes: int = 16) -> str:
    """A fresh thread id whose ledger lane is 0 (of `lanes`): its rows chain with
    the other such threads' in one lane, so tests written for one chain hold on
    PostgreSQL's lanes too."""
    import uuid

    from hitl_compliance.ledger import lane_of

    while lane_of(thread := f"{name}-{uuid.uuid4().hex}", lanes) != 0:
        pass
    return thread
