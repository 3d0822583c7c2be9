"""ComplianceMiddleware on every backend: decided from another process, races give one outcome.

A LangChain `create_agent` agent pauses at a transfer over the limit. The CLI,
in a process of its own, lists and approves it; so does the review router over
HTTP; and an approval and a
rejection sent as LangChain `HITLResponse`s at the same moment are claimed
once, on SQLite and PostgreSQL as in memory.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "langchain.agents", reason='needs the langchain extra: pip install "hitl-compliance[langchain]"'
)

from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.types import Command

from hitl_compliance import HitlCoordinator, Reviewer, gate_pauses
from hitl_compliance.backends import open_backend
from hitl_compliance.stops import STOP_RULE
from tests.gate_graphs import PAY_BIG, PAY_SMALL, Bank
from tests.middleware_app import POLICY, agent

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
OFFICER = {"identity": "payments@bank", "permissions": ["payments_officer"]}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agent.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


def cli(*argv: str, db: Path) -> subprocess.CompletedProcess[str]:
    """`hitl-compliance *argv --app tests.middleware_app:app` on the SQLite file `db`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hitl_compliance",
            *argv,
            "--backend",
            f"sqlite:///{db}",
            "--app",
            "tests.middleware_app:app",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_cli_decides_the_agents_pause(tmp_path: Path) -> None:
    """Paused here; the CLI (another process) lists it, refuses a clerk, approves an officer."""
    db = tmp_path / "agent.db"
    async with open_backend(f"sqlite:///{db}") as backend:
        graph = agent(backend.checkpointer)
        coord = HitlCoordinator(graph, reviews=backend.reviews, policy=POLICY)
        assert (await coord.process("pay-1", PAY_BIG)).status == "paused"
    pending = cli("pending", db=db)
    assert pending.returncode == 0, pending.stderr
    assert "transfer_limits" in pending.stdout
    refused = cli("approve", "pay-1", "--reviewer", "clerk@bank", db=db)
    assert refused.returncode == 1
    assert "NotAuthorizedError" in refused.stderr
    officer = ["--reviewer", "payments@bank", "--role", "payments_officer"]
    approved = cli("approve", "pay-1", *officer, db=db)
    assert approved.returncode == 0, approved.stderr
    async with open_backend(f"sqlite:///{db}") as backend:
        state = await agent(backend.checkpointer).aget_state(
            {"configurable": {"thread_id": "pay-1"}}
        )
        [ran] = [m for m in state.values["messages"] if isinstance(m, ToolMessage)]
        assert ran.content == "sent 5000 GBP to 12345678"
        rows = await backend.reviews.audit_log("pay-1")
        # The approval's run replies (the pass with the call, then the answer), then is recorded.
        assert [r.event for r in rows] == ["paused", "denied", "replied", "replied", "approved"]


async def test_the_review_router_decides_the_agents_pause(tmp_path: Path) -> None:
    """GET /reviews lists the agent's review; POST approve runs the call once."""
    fastapi = pytest.importorskip("fastapi", reason='needs the api extra: "hitl-compliance[api]"')
    import httpx

    from hitl_compliance import Reviewer
    from hitl_compliance.fastapi import create_review_router

    def authenticate() -> Reviewer:
        return Reviewer("payments@bank", roles=frozenset({"payments_officer"}))

    async with open_backend(f"sqlite:///{tmp_path / 'svc.db'}") as backend:
        bank = Bank()
        coord = HitlCoordinator(
            agent(backend.checkpointer, bank), reviews=backend.reviews, policy=POLICY
        )
        assert (await coord.process("pay-9", PAY_BIG)).status == "paused"
        service = fastapi.FastAPI()
        service.include_router(create_review_router(coord, authenticate=authenticate))
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            listed = (await client.get("/reviews")).json()
            assert [r["thread_id"] for r in listed["items"]] == ["pay-9"]
            done = await client.post("/reviews/pay-9/approve", json={})
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "completed"
        assert bank.transfers == [(5_000, "12345678")]
        assert [row.event for row in await coord.audit_log("pay-9")] == [
            "paused",
            "replied",
            "replied",
            "approved",
        ]


async def test_racing_hitl_responses_one_outcome(url: str) -> None:
    """An approval and a rejection of one pause at once: one claim, one row, one run at most."""
    async with open_backend(url) as backend:
        bank = Bank()
        graph = agent(backend.checkpointer, bank)
        HitlCoordinator(graph, reviews=backend.reviews, policy=POLICY)  # attached only
        thread = f"race-{uuid.uuid4().hex}"
        config: Any = {"configurable": {"thread_id": thread, "langgraph_auth_user": OFFICER}}
        await graph.ainvoke({"messages": [HumanMessage(PAY_BIG)]}, config)
        approve = Command(resume={"decisions": [{"type": "approve"}]})
        reject = Command(resume={"decisions": [{"type": "reject", "message": "no"}]})
        await asyncio.gather(
            graph.ainvoke(approve, config), graph.ainvoke(reject, config), return_exceptions=True
        )
        rows = await backend.reviews.audit_log(thread)
        decided = [r for r in rows if r.event in ("approved", "rejected")]
        assert len(decided) == 1
        assert decided[0].actor == "payments@bank"
        ran = decided[0].event == "approved"
        assert bank.transfers == ([(5_000, "12345678")] if ran else [])
        assert await gate_pauses(graph, {"configurable": {"thread_id": thread}}) == []


async def test_a_stop_holds_the_agents_small_transfer(url: str) -> None:
    """While delivery is stopped, a transfer under the limit (no rule flags it) waits too."""
    head = Reviewer("head@bank", roles=frozenset({"compliance-head"}))
    async with open_backend(url, table_prefix=f"s{uuid.uuid4().hex[:8]}_") as backend:
        coord = HitlCoordinator(agent(backend.checkpointer), reviews=backend.reviews, policy=POLICY)
        await coord.stop_delivery("all", by=head, reason="payments incident")
        held = await coord.process("pay-s", PAY_SMALL)
        assert held.status == "paused"
        assert STOP_RULE in {v.rule for v in held.violations}
