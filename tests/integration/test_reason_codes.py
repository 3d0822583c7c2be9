"""Reason codes on every backend and every path a decision takes: checked first, then recorded.

A code that is unknown, or missing where the `ReasonPolicy` needs one, is
refused before anything is written (no claim, no audit row, no checkpoint
change), whether the decision comes from `approve()` / `reject()`, a raw
`Command(resume=...)` on a factory graph or a gated agent, or the SLA. An
accepted code is in the payload of the decision's audit row, and the store
counts the codes (SQL `GROUP BY` on SQLite and PostgreSQL) exactly as the
rows say.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    KeywordRule,
    PauseStyle,
    ReasonCodeCount,
    ReasonCodeError,
    ReasonPolicy,
    attach_authority,
    build_compliance_graph,
    gate_pauses,
    open_backend,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.backends import Backend
from hitl_compliance.reasons import count_reason_codes
from hitl_compliance.testing import FakeClock
from tests.gate_graphs import Bank, build_react, call

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
RISKY = "Guaranteed returns, invest now."
POLICY = ReasonPolicy(require={"reject", "edit", "expiry"}, expiry_code="sla_expired")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reasons.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    """An open backend with tables of its own (whole-store counts see only this test's rows)."""
    async with open_backend(url, table_prefix=f"r{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def factory_coord(
    backend: Backend, style: PauseStyle = "command_resume", **kwargs: Any
) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
        checkpointer=backend.checkpointer,
        style=style,
    )
    return HitlCoordinator(
        graph, reviews=backend.reviews, reason_policy=POLICY, clock=FakeClock(T0), **kwargs
    )


def tid() -> str:
    return f"t-{uuid.uuid4().hex}"


async def untouched(coord: HitlCoordinator, thread: str, checkpoint: str | None) -> None:
    """The review is still pending at the same checkpoint, with only its `paused` row."""
    review = await coord.review(thread)
    assert review.checkpoint_id == checkpoint
    assert [a.event for a in await coord.audit_log(thread)] == ["paused"]


class TestCoordinatorPath:
    @pytest.mark.parametrize("style", ["command_resume", "interrupt_before"])
    async def test_refused_before_anything_is_written(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """Missing, unknown, or `other` without text: ReasonCodeError, the review untouched."""
        coord = factory_coord(backend, style)
        thread = tid()
        paused = await coord.process(thread, RISKY)
        bad: list[dict[str, Any]] = [
            {"verb": "reject"},
            {"verb": "reject", "reason_code": "not_a_code"},
            {"verb": "reject", "reason_code": "other"},
            {"verb": "approve", "response": "Returns are not guaranteed."},
            {"verb": "approve", "response": "Returns vary.", "reason_code": "nope"},
        ]
        for call_ in bad:
            verb = call_.pop("verb")
            with pytest.raises(ReasonCodeError) as caught:
                await getattr(coord, verb)(thread, reviewer="officer@bank", **call_)
            assert caught.value.thread_id == thread
            await untouched(coord, thread, paused.checkpoint_id)
        result = await coord.reject(
            thread, reviewer="officer@bank", reason_code="misleading_promotion"
        )
        assert result.status == "rejected"
        last = (await coord.audit_log(thread))[-1]
        assert (last.event, last.payload["reason_code"]) == ("rejected", "misleading_promotion")
        assert result.metadata["reason_code"] == "misleading_promotion"

    async def test_edit_and_plain_approval(self, backend: Backend) -> None:
        """An edit records its code; a plain approval needs none (the policy says so)."""
        coord = factory_coord(backend)
        edited, plain = tid(), tid()
        await coord.process(edited, RISKY)
        await coord.process(plain, RISKY)
        await coord.approve(
            edited,
            reviewer="officer@bank",
            response="Returns are not guaranteed.",
            reason_code="other",
            reason="tone",
        )
        await coord.approve(plain, reviewer="officer@bank")
        row = (await coord.audit_log(edited))[-1]
        assert (row.payload["reason_code"], row.payload["reason"]) == ("other", "tone")
        assert "reason_code" not in (await coord.audit_log(plain))[-1].payload

    async def test_a_code_is_checked_before_the_policy_audits_a_denial(
        self, backend: Backend
    ) -> None:
        """The requester with a bad code: ReasonCodeError, and no `denied` row is written."""
        coord = factory_coord(backend)
        thread = tid()
        paused = await coord.process(thread, RISKY, requested_by="officer@bank")
        with pytest.raises(ReasonCodeError):
            await coord.approve(thread, reviewer="officer@bank", response="x y", reason_code="?")
        await untouched(coord, thread, paused.checkpoint_id)

    async def test_sla_records_the_expiry_code(self, backend: Backend) -> None:
        """An SLA rejection records the policy's expiry code."""
        clock = FakeClock(T0)
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(
            graph,
            reviews=backend.reviews,
            reason_policy=POLICY,
            clock=clock,
            sla=timedelta(hours=1),
        )
        thread = tid()
        await coord.process(thread, RISKY)
        clock.advance(hours=2)
        assert [r.thread_id for r in await coord.expire_overdue()] == [thread]
        row = (await coord.audit_log(thread))[-1]
        assert (row.event, row.payload["reason_code"]) == ("expired", "sla_expired")
        assert await coord.reason_code_counts() == (ReasonCodeCount("sla_expired", "expired", 1),)


class TestCounts:
    async def test_counted_in_the_store_as_the_rows_say(self, backend: Backend) -> None:
        """reason_code_counts groups by code and event, filters by time, equals a count of rows."""
        clock = FakeClock(T0)
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews, reason_policy=POLICY, clock=clock)
        plan = [
            ("reject", "misleading_promotion"),
            ("reject", "misleading_promotion"),
            ("reject", "missing_risk_warning"),
            ("approve", "misleading_promotion"),
            ("approve", None),
        ]
        for verb, code in plan:
            thread = tid()
            await coord.process(thread, RISKY)
            clock.advance(hours=1)
            await getattr(coord, verb)(thread, reviewer="officer@bank", reason_code=code)
        counts = await coord.reason_code_counts()
        assert counts == (
            ReasonCodeCount("misleading_promotion", "approved", 1),
            ReasonCodeCount("misleading_promotion", "rejected", 2),
            ReasonCodeCount("missing_risk_warning", "rejected", 1),
        )
        rows = await backend.reviews.audit_rows()
        assert counts == count_reason_codes(rows, since=None, until=None)
        # Decisions were made at T0+1h .. T0+5h: [T0+2h, T0+4h) holds the 2nd and 3rd.
        window = await coord.reason_code_counts(
            since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4)
        )
        assert window == (
            ReasonCodeCount("misleading_promotion", "rejected", 1),
            ReasonCodeCount("missing_risk_warning", "rejected", 1),
        )
        assert window == count_reason_codes(
            rows, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4)
        )
        assert await coord.reason_code_counts(since=T0 + timedelta(days=1)) == ()


def decision(approved: bool = False, **fields: Any) -> dict[str, Any]:
    return Decision(
        approved=approved,
        reviewer="officer@bank",
        decided_at=T0,
        **fields,
    ).to_state()


class TestRawResume:
    async def test_factory_graph(self, backend: Backend) -> None:
        """A raw Command(resume=...) without or with a bad code is refused; none written."""
        coord = factory_coord(backend)
        thread = tid()
        paused = await coord.process(thread, RISKY)
        config = {"configurable": {"thread_id": thread}}
        for value in (decision(), decision(reason_code="nope")):
            await coord.graph.ainvoke(Command(resume=value), config)
            await untouched(coord, thread, paused.checkpoint_id)
            assert "reason code" in str((await coord.graph.aget_state(config)).interrupts)
        await coord.graph.ainvoke(
            Command(resume=decision(reason_code="vulnerable_customer")), config
        )
        row = [r for r in await coord.audit_log(thread) if r.event != REPLIED][-1]
        assert (row.event, row.payload["reason_code"]) == ("rejected", "vulnerable_customer")
        assert row.payload["via"] == "graph"

    async def test_gated_agent(self, backend: Backend) -> None:
        """A gate's pause resumed raw: the same refusal, then the code in the ledger."""
        bank = Bank()
        graph, _ = build_react(
            "command_resume",
            backend.checkpointer,
            bank,
            AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=5_000, to_account="9")]),
            AIMessage("Done."),
        )
        HitlCoordinator(graph, reviews=backend.reviews, reason_policy=POLICY)
        thread = tid()
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"messages": [("user", "Pay")]}, config)
        [pause] = await gate_pauses(graph, config)
        edit = {"amount_gbp": 900, "to_account": "9"}
        await graph.ainvoke(
            Command(resume={pause.interrupt_id: decision(True, tool_args=edit)}), config
        )
        [again] = await gate_pauses(graph, config)
        assert "reason code" in (again.outcome.refused or "")
        rows = await backend.reviews.audit_log(thread)
        assert [r.event for r in rows] == ["paused"]
        assert bank.transfers == []
        coded = decision(True, tool_args=edit, reason_code="unsuitable_advice")
        await graph.ainvoke(Command(resume={again.interrupt_id: coded}), config)
        assert bank.transfers == [(900, "9")]
        row = [r for r in await backend.reviews.audit_log(thread) if r.event != REPLIED][-1]
        assert (row.event, row.payload["reason_code"]) == ("approved", "unsuitable_advice")

    async def test_attach_authority_takes_the_same_configuration(self, backend: Backend) -> None:
        """A served graph's authority (attach_authority) refuses and records codes the same way."""
        graph = build_compliance_graph(
            lambda state: state.customer_message,
            rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promise")],
            checkpointer=backend.checkpointer,
            style="command_resume",
        )
        attach_authority(graph, reviews=backend.reviews, reason_policy=POLICY, setup=False)
        thread = tid()
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"customer_message": RISKY}, config)
        await graph.ainvoke(Command(resume=decision(reason_code="nope")), config)
        assert [r.event for r in await backend.reviews.audit_log(thread)] == ["paused"]
        await graph.ainvoke(Command(resume=decision(reason_code="pressure_selling")), config)
        row = [r for r in await backend.reviews.audit_log(thread) if r.event != REPLIED][-1]
        assert (row.event, row.payload["reason_code"]) == ("rejected", "pressure_selling")
