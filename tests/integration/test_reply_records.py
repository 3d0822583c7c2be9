"""Every outbound reply has a ledger record, on every backend and every path a turn takes.

A turn that delivers (the rules passed, or a reviewer approved or edited),
blocks (a rule's `block`) or rejects (a reviewer, or the SLA) appends exactly
one `replied` row: the delivered text's SHA-256, the rules evaluated with
their versions, the rule set's fingerprint, the drafter where known, and who
decided. The rows are in the hash chain, so the ledger still verifies.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph

from hitl_compliance import (
    AuditRecord,
    ComplianceState,
    HitlCoordinator,
    KeywordRule,
    PauseStyle,
    RegexRule,
    compliance_gate,
    gate_pauses,
    open_backend,
    rule_version,
    ruleset_fingerprint,
)
from hitl_compliance.backends import Backend
from hitl_compliance.coordinator import SLA_ACTOR
from hitl_compliance.gate import resume_gate
from hitl_compliance.testing import EPOCH, FakeClock
from tests.gate_graphs import GatedMessages, decision

RISKY = "You should invest now: guaranteed returns of 8%."
SAFE = "Our savings account pays 4% AER, variable."
SCAM = "Send your PIN to this number."
REJECTION = "A colleague will be in touch."
RULES = (
    KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns", version="2026.2"),
    RegexRule("pin", r"\bPIN\b", verdict="block", reason="asks for a PIN"),
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def replies(rows: list[AuditRecord]) -> list[dict[str, Any]]:
    """The payloads of a thread's `replied` rows, oldest first."""
    return [row.payload for row in rows if row.event == "replied"]


def drafter(state: ComplianceState) -> str:
    """Replies with the customer's message: the test picks the draft by what it sends."""
    return state.customer_message


@pytest_asyncio.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    async with open_backend(backend_url) as opened:
        yield opened


def coordinator(backend: Backend, style: PauseStyle, **options: Any) -> HitlCoordinator:
    from hitl_compliance import build_compliance_graph

    graph = build_compliance_graph(
        drafter,
        rules=RULES,
        checkpointer=backend.checkpointer,
        style=style,
        rejection_message=REJECTION,
    )
    return HitlCoordinator(graph, reviews=backend.reviews, **options)


@pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
class TestFactoryGraph:
    async def test_each_outcome_has_one_record(self, backend: Backend, style: PauseStyle) -> None:
        """Delivered, edited, blocked, rejected and expired turns: one row each, right fields."""
        clock = FakeClock()
        coord = coordinator(backend, style, sla=timedelta(minutes=5), clock=clock)
        run = uuid.uuid4().hex
        auto, edit, block, reject, expire = (f"{run}-{n}" for n in range(5))
        assert (await coord.process(auto, SAFE)).status == "completed"
        await coord.process(edit, RISKY)
        await coord.approve(edit, reviewer="officer@bank", response=SAFE)
        assert (await coord.process(block, SCAM)).status == "rejected"
        await coord.process(reject, RISKY)
        await coord.reject(reject, reviewer="officer@bank", reason="promises returns")
        await coord.process(expire, RISKY)
        clock.advance(minutes=6)
        await coord.expire_overdue()

        expected = {
            auto: ("delivered", SAFE, "auto"),
            edit: ("edited", SAFE, "officer@bank"),
            block: ("blocked", REJECTION, "auto"),
            reject: ("rejected", REJECTION, "officer@bank"),
            expire: ("expired", REJECTION, SLA_ACTOR),
        }
        for thread, (outcome, sent, by) in expected.items():
            rows = await coord.audit_log(thread)
            # Timed by the coordinator's clock, like the rows the coordinator writes.
            assert all(EPOCH <= r.at <= EPOCH + timedelta(minutes=6) for r in rows)
            [record] = replies(rows)
            assert record == {
                "outcome": outcome,
                "delivered_sha256": sha(sent),
                "rules": [
                    {"name": "guarantee", "version": "2026.2"},
                    {"name": "pin", "version": rule_version(RULES[1])},
                ],
                "ruleset": ruleset_fingerprint(RULES),
                "drafter": None,
                "decided_by": by,
                "turn": "1",
            }, thread
            assert (await coord.verify_audit(thread)).ok
        assert (await coord.verify_audit()).ok

    async def test_each_turn_of_a_thread_is_recorded(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """A conversation's turns each get their own record, keyed by the turn number."""
        coord = coordinator(backend, style)
        thread = uuid.uuid4().hex
        await coord.process(thread, SAFE)
        await coord.process(thread, RISKY)
        await coord.approve(thread, reviewer="officer@bank")
        await coord.process(thread, SAFE)
        records = replies(await coord.audit_log(thread))
        assert [(r["turn"], r["outcome"], r["decided_by"]) for r in records] == [
            ("1", "delivered", "auto"),
            ("2", "delivered", "officer@bank"),
            ("3", "delivered", "auto"),
        ]
        assert [r["delivered_sha256"] for r in records] == [sha(SAFE), sha(RISKY), sha(SAFE)]


async def test_a_chat_model_drafter_is_named(backend: Backend) -> None:
    """The factory graph records the model that drafted the reply (its `model_name`)."""
    from hitl_compliance import build_compliance_graph

    model = GenericFakeChatModel(
        messages=iter([AIMessage(SAFE, response_metadata={"model_name": "gpt-test-1"})])
    )
    graph = build_compliance_graph(model, rules=RULES, checkpointer=backend.checkpointer)
    coord = HitlCoordinator(graph, reviews=backend.reviews)
    thread = uuid.uuid4().hex
    assert (await coord.process(thread, "What rate do you pay?")).status == "completed"
    [record] = replies(await coord.audit_log(thread))
    assert (record["drafter"], record["outcome"]) == ("gpt-test-1", "delivered")


def gated_chat(backend: Backend, style: PauseStyle, reply: AIMessage) -> Any:
    """A user's chat graph (model -> gate) whose gate records in the backend's store."""
    gate = compliance_gate(list(RULES), style=style, reviews=backend.reviews)

    async def model(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [reply]}

    builder: Any = StateGraph(GatedMessages)
    builder.add_node("model", model)
    builder.add_node("compliance", gate)
    builder.add_edge(START, "model")
    builder.add_edge("model", "compliance")
    builder.add_edge("compliance", END)
    return builder.compile(checkpointer=backend.checkpointer)


@pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
class TestGateInYourOwnGraph:
    async def test_a_raw_run_records_an_auto_delivered_reply(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """No coordinator: the gate's store gets the record, with the model's name."""
        reply = AIMessage(SAFE, response_metadata={"model_name": "claude-test"})
        graph = gated_chat(backend, style, reply)
        thread = uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"messages": [HumanMessage("Rate?")]}, config)
        [record] = replies(await backend.reviews.audit_log(thread))
        assert record["outcome"] == "delivered"
        assert record["delivered_sha256"] == sha(SAFE)
        assert record["drafter"] == "claude-test"
        assert record["decided_by"] == "auto"
        assert record["ruleset"] == ruleset_fingerprint(RULES)

    async def test_a_raw_decision_is_recorded_after_its_outcome(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """A reviewer's raw resume: the outcome row, then the reply record naming the reviewer."""
        graph = gated_chat(backend, style, AIMessage(RISKY))
        thread = uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"messages": [HumanMessage("Invest?")]}, config)
        [pause] = await gate_pauses(graph, config)
        await resume_gate(graph, config, pause, decision(response=SAFE))
        rows = await backend.reviews.audit_log(thread)
        assert [row.event for row in rows] == ["paused", "approved", "replied"]
        assert rows[2].review_id == rows[0].review_id  # the reply names its review
        [record] = replies(rows)
        assert (record["outcome"], record["decided_by"]) == ("edited", "officer@bank")
        assert record["delivered_sha256"] == sha(SAFE)

    async def test_a_blocked_reply_is_recorded(self, backend: Backend, style: PauseStyle) -> None:
        """A rule's block: no review, one record of what the customer got instead."""
        graph = gated_chat(backend, style, AIMessage(SCAM))
        thread = uuid.uuid4().hex
        await graph.ainvoke(
            {"messages": [HumanMessage("Help")]}, {"configurable": {"thread_id": thread}}
        )
        [row] = await backend.reviews.audit_log(thread)
        assert row.review_id is None  # a block opens no review: the record names none
        assert (row.payload["outcome"], row.payload["decided_by"]) == ("blocked", "auto")


def test_a_changed_rule_changes_the_fingerprint() -> None:
    """The derived version follows the configuration; the fingerprint follows the versions."""
    a = KeywordRule("guarantee", ["guaranteed returns"])
    same = KeywordRule("guarantee", ["guaranteed returns"])
    wider = KeywordRule("guarantee", ["guaranteed returns", "risk-free"])
    assert rule_version(a) == rule_version(same) != rule_version(wider)
    assert ruleset_fingerprint([a, RULES[1]]) == ruleset_fingerprint([RULES[1], same])
    assert ruleset_fingerprint([a]) != ruleset_fingerprint([wider])
    assert rule_version(KeywordRule("guarantee", ["x"], version=" v7 ")) == "v7"
