"""Decisions made around the coordinator, on every backend: the same checks, once, audited.

A gated ReAct agent pauses at two flagged transfers (parallel reviews). Its
pauses are resumed the way a script or a server would, with raw
`Command(resume={interrupt_id: ...})`: an unauthorised decision is refused
(audited) and leaves both reviews pending; authorised ones are claimed and
recorded once each, with the run's server-authenticated user as the reviewer
when it has one, whatever name the resume value carries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from langgraph.types import Command

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    RoleBasedPolicy,
    gate_pauses,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.backends import Backend, open_backend
from hitl_compliance.gate import GatePause
from tests.gate_graphs import Bank, build_react, call

POLICY = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})


def turn() -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            call("transfer", "c1", amount_gbp=5_000, to_account="111"),
            call("transfer", "c3", amount_gbp=3_000, to_account="222"),
        ],
    )


def made(reviewer: str, *roles: str, approved: bool = True, **fields: Any) -> dict[str, Any]:
    return Decision(
        approved=approved,
        reviewer=reviewer,
        roles=list(roles),
        decided_at="2026-12-02T12:00:00Z",  # type: ignore[arg-type]
        **fields,
    ).to_state()


@dataclass
class Raw:
    backend: Backend
    bank: Bank
    graph: Any
    thread: str

    @property
    def config(self) -> Any:
        return {"configurable": {"thread_id": self.thread}}

    async def pauses(self) -> dict[str, GatePause]:
        found = await gate_pauses(self.graph, self.config)
        return {p.outcome.tool_call["args"]["to_account"]: p for p in found}  # type: ignore[index]

    async def resume(self, account: str, value: dict[str, Any], **configurable: Any) -> Any:
        pause = (await self.pauses())[account]
        config = {"configurable": {**self.config["configurable"], **configurable}}
        return await self.graph.ainvoke(Command(resume={pause.interrupt_id: value}), config)

    async def events(self) -> list[tuple[str, str]]:
        rows = await self.backend.reviews.audit_log(self.thread)
        return [(row.event, row.actor) for row in rows if row.event != REPLIED]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'raw.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest_asyncio.fixture
async def raw(url: str) -> AsyncIterator[Raw]:
    """The agent paused by a raw ainvoke, its coordinator attached (never driving it)."""
    async with open_backend(url) as backend:
        bank = Bank()
        graph, _ = build_react(
            "command_resume", backend.checkpointer, bank, turn(), AIMessage("Done.")
        )
        HitlCoordinator(graph, reviews=backend.reviews, policy=POLICY)
        agent = Raw(backend, bank, graph, f"raw-{uuid.uuid4().hex}")
        await graph.ainvoke({"messages": [("user", "Pay both")]}, agent.config)
        yield agent


class TestRawDecisions:
    async def test_refused_then_decided_one_by_one(self, raw: Raw) -> None:
        """No role: refused, audited, both pending; then approve one, reject the other."""
        assert sorted(await raw.pauses()) == ["111", "222"]
        await raw.resume("111", made("intern@bank"))
        pauses = await raw.pauses()
        assert sorted(pauses) == ["111", "222"]
        assert "may not decide" in (pauses["111"].outcome.refused or "")
        assert raw.bank.transfers == []

        await raw.resume("111", made("payments@bank", "payments_officer"))
        assert sorted(await raw.pauses()) == ["222"]
        assert raw.bank.transfers == []  # the wave runs once both are decided
        out = await raw.resume("222", made("payments@bank", "payments_officer", approved=False))
        assert await raw.pauses() == {}
        assert raw.bank.transfers == [(5_000, "111")]
        assert out["messages"][-1].content == "Done."
        assert await raw.events() == [
            ("paused", "system"),
            ("paused", "system"),
            ("denied", "intern@bank"),
            ("approved", "payments@bank"),
            ("rejected", "payments@bank"),
        ]
        rows = await raw.backend.reviews.audit_rows(raw.thread)
        assert [row for row in rows if row.event != REPLIED][-1].payload["via"] == "graph"
        # The wave's pass and the agent's answer each record their reply, after the decisions.
        assert [(row.event, row.actor) for row in rows[-2:]] == [(REPLIED, "auto")] * 2
        assert [(c["status"], c["decided_by"]) for c in rows[-2].payload["tool_calls"]] == [
            ("approved", "payments@bank"),
            ("rejected", "payments@bank"),
        ]

    async def test_tool_args_past_the_limits_are_refused_unclaimed(self, raw: Raw) -> None:
        """Edited arguments past the default InputLimits are refused at the pause, unaudited."""
        before = await raw.events()
        huge = {"amount_gbp": 10, "to_account": "111", "note": "x" * 1_000_001}
        await raw.resume("111", made("payments@bank", "payments_officer", tool_args=huge))
        pauses = await raw.pauses()
        assert sorted(pauses) == ["111", "222"]
        assert "tool_args is" in (pauses["111"].outcome.refused or "")
        assert await raw.events() == before
        assert raw.bank.transfers == []

    async def test_edited_arguments_are_rechecked(self, raw: Raw) -> None:
        """An edit the rules block is refused; an edit they allow runs with its arguments."""
        officer = ("payments@bank", "payments_officer")
        await raw.resume(
            "111", made(*officer, tool_args={"amount_gbp": 90_000, "to_account": "111"})
        )
        assert "blocked" in ((await raw.pauses())["111"].outcome.refused or "")
        await raw.resume("111", made(*officer, tool_args={"amount_gbp": 900, "to_account": "111"}))
        await raw.resume("222", made(*officer))
        assert sorted(raw.bank.transfers) == [(900, "111"), (3_000, "222")]
        rows = await raw.backend.reviews.audit_log(raw.thread)
        assert [r.event for r in rows] == [
            "paused",
            "paused",
            "approved",
            "approved",
            REPLIED,
            REPLIED,
        ]
        assert [c["status"] for c in rows[4].payload["tool_calls"]] == ["edited", "approved"]

    async def test_the_server_user_is_the_reviewer(self, raw: Raw) -> None:
        """With langgraph_auth_user in the run's config, its identity and permissions decide."""
        intern = {"identity": "intern@bank", "permissions": []}
        # The resume value names an officer and claims the role: the server user decides.
        await raw.resume(
            "111", made("payments@bank", "payments_officer"), langgraph_auth_user=intern
        )
        assert "intern@bank may not decide" in ((await raw.pauses())["111"].outcome.refused or "")
        officer = {"identity": "officer@bank", "permissions": ["payments_officer"]}
        await raw.resume("111", made("someone-else"), langgraph_auth_user=officer)
        await raw.resume("222", made("someone-else"), langgraph_auth_user=officer)
        assert [actor for event, actor in await raw.events() if event == "approved"] == [
            "officer@bank",
            "officer@bank",
        ]
        assert ("denied", "intern@bank") in await raw.events()

    async def test_decided_once_then_refused(self, raw: Raw) -> None:
        """A second raw decision of a decided review is not applied: LangGraph has no pause."""
        officer = ("payments@bank", "payments_officer")
        await raw.resume("111", made(*officer))
        stale = {p.review_id for p in (await raw.pauses()).values()}
        await raw.resume("222", made(*officer))
        assert await raw.pauses() == {}
        assert len([e for e, _ in await raw.events() if e == "approved"]) == 2
        assert stale  # the decided reviews are gone from pending too
        coord = HitlCoordinator(raw.graph, reviews=raw.backend.reviews, policy=POLICY)
        assert [p for p in await coord.pending() if p.thread_id == raw.thread] == []


class TestStoreOnlyGate:
    async def test_a_gate_with_reviews_records_without_any_coordinator(self, url: str) -> None:
        """reviews= alone: the pause and the raw decision are recorded, claimed once."""
        async with open_backend(url) as backend:
            bank = Bank()
            graph, _ = build_react(
                "command_resume",
                backend.checkpointer,
                bank,
                AIMessage(
                    "", tool_calls=[call("transfer", "c1", amount_gbp=5_000, to_account="9")]
                ),
                AIMessage("Done."),
                reviews=backend.reviews,
            )
            config = {"configurable": {"thread_id": f"solo-{uuid.uuid4().hex}"}}
            await graph.ainvoke({"messages": [("user", "Pay")]}, config)
            [pause] = await gate_pauses(graph, config)
            await graph.ainvoke(Command(resume={pause.interrupt_id: made("officer@bank")}), config)
            assert bank.transfers == [(5_000, "9")]
            thread = config["configurable"]["thread_id"]
            rows = await backend.reviews.audit_log(thread)
            assert [(r.event, r.actor) for r in rows] == [
                ("paused", "system"),
                ("approved", "officer@bank"),
                (REPLIED, "auto"),  # the pass with the approved call
                (REPLIED, "auto"),  # the agent's answer
            ]
            assert (await backend.reviews.get_review(thread)).status == "approved"  # type: ignore[union-attr]


class TestRawRace:
    async def test_two_raw_decisions_racing_one_outcome(self, raw: Raw) -> None:
        """An approval and a rejection of one review racing: one is claimed, one row, one run."""
        officer = ("payments@bank", "payments_officer")
        await raw.resume("222", made(*officer, approved=False))
        await asyncio.gather(
            raw.resume("111", made("a@bank", "payments_officer")),
            raw.resume("111", made("b@bank", "payments_officer", approved=False)),
            return_exceptions=True,
        )
        decided = [(e, a) for e, a in await raw.events() if e in ("approved", "rejected")]
        assert len(decided) == 2  # 222's rejection and one outcome of 111
        assert decided[0] == ("rejected", "payments@bank")
        assert raw.bank.transfers in ([], [(5_000, "111")])
        assert (decided[1] == ("approved", "a@bank")) == (raw.bank.transfers == [(5_000, "111")])
        assert await raw.pauses() == {}
        rows = await raw.backend.reviews.audit_rows(raw.thread)
        assert [row for row in rows if row.event != REPLIED][-1].event in (
            "approved",
            "rejected",
        )
        assert [row.event for row in rows].count(REPLIED) == 2  # one wave, one answer
