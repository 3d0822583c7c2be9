"""`HitlCoordinator` driving the example deployment through `RemoteGraph`, the store shared.

The served graphs are attached to the review store the session fixture names
(`HITL_REVIEWS_URL`: a PostgreSQL schema of its own with
`HITL_TEST_POSTGRES_DSN`); each test's coordinator opens the same store and
authenticates to the server with the example's coordinator token, which holds
`COORDINATOR_PERMISSION`. Thread ids are UUIDs, made by the server or by us.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk.client import LangGraphClient

from hitl_compliance import (
    Decision,
    HitlCoordinator,
    InvalidDecisionError,
    NotAuthorizedError,
    Reviewer,
    ReviewStore,
)
from hitl_compliance.coordinator import SLA_ACTOR
from hitl_compliance.fastapi import create_review_router
from tests.server._helpers import (
    COORDINATOR_TOKEN,
    EDITED,
    POLICY,
    RISKY_QUESTION,
    RISKY_REPLY,
    decision,
    events,
    new_thread,
    reply_of,
    sdk_client,
    turn_input,
)
from tests.server.conftest import SERVER_SLA

pytestmark = [pytest.mark.server, pytest.mark.once]

ROOT = Path(__file__).resolve().parents[2]

ALICE = Reviewer("alice@bank", roles=frozenset({"reviewer", "compliance_officer"}))
BOB = Reviewer("bob@bank", roles=frozenset({"reviewer"}))
CAROL = Reviewer("carol@bank", roles=frozenset({"compliance_officer"}))


Make = Callable[..., HitlCoordinator]


@pytest_asyncio.fixture
async def make(langgraph_server: str, store: ReviewStore) -> AsyncIterator[Make]:
    """A coordinator over `RemoteGraph(graph_id)` as the coordinator's service user."""
    graphs: list[RemoteGraph] = []

    def build(graph_id: str, **options: Any) -> HitlCoordinator:
        graph = RemoteGraph(
            graph_id,
            url=langgraph_server,
            headers={"Authorization": f"Bearer {COORDINATOR_TOKEN}"},
            api_key="",
        )
        graphs.append(graph)
        return HitlCoordinator(graph, reviews=store, policy=POLICY, **options)

    yield build
    for graph in graphs:
        if graph.client is not None:
            await graph.client.aclose()
        if graph.sync_client is not None:
            graph.sync_client.close()


class TestProcess:
    async def test_process_pauses_a_server_thread(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A turn on a server-assigned thread pauses; pending() lists it; the server agrees."""
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        result = await coord.process(thread_id, RISKY_QUESTION)
        assert result.status == "paused"
        assert result.draft_response == RISKY_REPLY
        assert [v.rule for v in result.violations] == ["guarantee"]
        assert thread_id in [p.thread_id for p in await coord.pending()]
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "interrupted"
        # The coordinator recorded the pause; the graph did not record it a second time.
        assert await events(coord, thread_id) == [("paused", "system")]

    async def test_process_on_a_new_uuid_thread(self, make: Make, graph_id: str) -> None:
        """A thread id the server has never seen is created by the coordinator's first run."""
        coord = make(graph_id)
        thread_id = str(uuid.uuid4())
        result = await coord.process(thread_id, RISKY_QUESTION, requested_by="support-bot")
        assert result.status == "paused"
        review = await coord.review(thread_id)
        # The factory graph keeps the requester (four-eyes); the agent's state has no field.
        assert review.requested_by == ("support-bot" if graph_id == "compliance" else None)

    async def test_clean_reply_completes(self, make: Make, graph_id: str) -> None:
        coord = make(graph_id)
        result = await coord.process(str(uuid.uuid4()), "Where is my new card?")
        assert result.status == "completed"
        assert "card" in (result.agent_response or "")


class TestDecide:
    async def test_approve_with_edit_delivers(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        """The officer's edit is delivered by the deployment; one `approved` row, by alice."""
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        result = await coord.approve(thread_id, reviewer=ALICE, response=EDITED)
        assert result.status == "completed"
        assert result.agent_response == EDITED
        assert result.reviewer == "alice@bank"
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) == EDITED
        assert await events(coord, thread_id) == [("paused", "system"), ("approved", "alice@bank")]
        assert thread_id not in [p.thread_id for p in await coord.pending()]

    async def test_reject_withholds_the_draft(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        result = await coord.reject(thread_id, reviewer=ALICE, reason="promises returns")
        assert result.status == "rejected"
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) != RISKY_REPLY
        assert await events(coord, thread_id) == [("paused", "system"), ("rejected", "alice@bank")]

    async def test_policy_refusal_changes_nothing(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A reviewer without the role is refused before the server is asked anything."""
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        with pytest.raises(NotAuthorizedError):
            await coord.approve(thread_id, reviewer=BOB)
        assert (await officer.threads.get(thread_id))["status"] == "interrupted"
        assert thread_id in [p.thread_id for p in await coord.pending()]
        assert ("denied", "bob@bank") in await events(coord, thread_id)
        done = await coord.approve(thread_id, reviewer=ALICE)
        assert done.status == "completed"

    async def test_an_edit_the_deployment_blocks_is_refused(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        """The served graph re-checks an edit; a blocked one is refused, the review waits."""
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        with pytest.raises(InvalidDecisionError, match="account_number"):
            await coord.approve(thread_id, reviewer=ALICE, response="Pay into 12345678.")
        assert (await officer.threads.get(thread_id))["status"] == "interrupted"
        review = await coord.review(thread_id)  # pending again: the claim was released
        assert review.thread_id == thread_id
        done = await coord.approve(thread_id, reviewer=ALICE, response=EDITED)
        assert done.agent_response == EDITED
        assert [e for e, _ in await events(coord, thread_id)] == ["paused", "approved"]

    async def test_pause_made_by_an_sdk_client(
        self, make: Make, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A pause of an ordinary client's run is listed, and decided by the coordinator."""
        coord = make(graph_id)
        thread_id = await new_thread(agent)
        await agent.runs.wait(thread_id, graph_id, input=turn_input(graph_id, RISKY_QUESTION))
        listed = [p for p in await coord.pending() if p.thread_id == thread_id]
        assert len(listed) == 1
        assert listed[0].draft_response == RISKY_REPLY
        # The deployment's SLA gave it a deadline: an SLA worker on the store expires it.
        assert listed[0].deadline is not None
        assert listed[0].deadline - listed[0].requested_at == SERVER_SLA
        result = await coord.approve(thread_id, reviewer=ALICE)
        assert result.status == "completed"
        thread = await officer.threads.get(thread_id)
        assert reply_of(graph_id, thread["values"]) == RISKY_REPLY
        assert [e for e, _ in await events(coord, thread_id)] == ["paused", "approved"]

    async def test_a_client_resume_run_first_leaves_the_claimed_decision_applied(
        self,
        make: Make,
        officer: LangGraphClient,
        graph_id: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A client's resume that the server runs between the coordinator's read and its run.

        The client's decision is refused (the review is claimed) and the thread
        pauses again; the coordinator's resume, sent after it read the thread,
        still applies the claimed decision (it answers the pause now waiting).
        """
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        graph = coord.graph
        sent = graph.ainvoke

        async def client_first(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, Command):
                await officer.runs.wait(
                    thread_id, graph_id, command={"resume": decision(approved=False)}
                )
            return await sent(value, *args, **kwargs)

        monkeypatch.setattr(graph, "ainvoke", client_first)
        result = await coord.approve(thread_id, reviewer=CAROL, response=EDITED)
        assert (result.status, result.agent_response) == ("completed", EDITED)
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) == EDITED
        assert await events(coord, thread_id) == [("paused", "system"), ("approved", "carol@bank")]

    async def test_coordinator_token_cannot_apply_an_unclaimed_decision(
        self, make: Make, langgraph_server: str, graph_id: str
    ) -> None:
        """The trusted permission resumes only what the store holds claimed: nothing else."""
        coord = make(graph_id)
        thread_id = str(uuid.uuid4())
        await coord.process(thread_id, RISKY_QUESTION)
        value = {
            "approved": True,
            "reviewer": "alice@bank",
            "decided_at": datetime.now(timezone.utc).isoformat(),
        }
        async with sdk_client(langgraph_server, COORDINATOR_TOKEN) as client:
            run = await client.runs.create(thread_id, graph_id, command={"resume": value})
            await client.runs.join(thread_id, run["run_id"])
            thread = await client.threads.get(thread_id)
        assert thread["status"] == "interrupted"
        assert reply_of(graph_id, thread["values"]) in (None, RISKY_REPLY)
        review = await coord.review(thread_id)
        assert review.thread_id == thread_id
        assert [e for e, _ in await events(coord, thread_id)] == ["paused"]


class TestSharedStore:
    async def test_one_coordinator_decides_threads_of_every_served_graph(
        self, make: Make, officer: LangGraphClient
    ) -> None:
        """The store lists reviews of both graphs; each thread resumes with its own graph."""
        agent_thread = await new_thread(officer)
        await make("gated_agent").process(agent_thread, RISKY_QUESTION)
        coord = make("compliance")
        assert agent_thread in [p.thread_id for p in await coord.pending()]
        result = await coord.approve(agent_thread, reviewer=ALICE, response=EDITED)
        assert result.status == "completed"
        thread = await officer.threads.get(agent_thread)
        assert reply_of("gated_agent", thread["values"]) == EDITED


class TestRecoverAndSla:
    async def test_recover_finishes_an_abandoned_claim(
        self, make: Make, store: ReviewStore, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A decision claimed by a process that died before resuming is finished by recover()."""
        coord = make(graph_id)
        thread_id = await new_thread(officer)
        paused = await coord.process(thread_id, RISKY_QUESTION)
        claimed_at = datetime.now(timezone.utc) - timedelta(minutes=5)
        made = Decision(
            approved=False,
            reviewer="alice@bank",
            roles=["compliance_officer"],
            reason="promises returns",
            decided_at=claimed_at,
        )
        await store.claim(
            thread_id,
            claim_id=uuid.uuid4().hex,
            reviewer="alice@bank",
            decision=made.to_state(),
            now=claimed_at,
            review_id=paused.review_id,
        )
        assert (await officer.threads.get(thread_id))["status"] == "interrupted"
        results = [r for r in await coord.recover() if r.thread_id == thread_id]
        assert [r.status for r in results] == ["rejected"]
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) != RISKY_REPLY
        assert [e for e, _ in await events(coord, thread_id)] == [
            "paused",
            "recovered",
            "rejected",
        ]

    async def test_recover_ends_a_turn_that_died_before_the_server_saw_it(
        self, make: Make, store: ReviewStore
    ) -> None:
        """A turn row whose thread the server never created is ended, not an error."""
        coord = make("compliance")
        thread_id = str(uuid.uuid4())
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        await store.begin_turn(thread_id, owner=uuid.uuid4().hex, now=started)
        assert [r for r in await coord.recover() if r.thread_id == thread_id] == []
        result = await coord.process(thread_id, RISKY_QUESTION)  # the thread is free again
        assert result.status == "paused"

    async def test_expire_overdue_rejects_on_the_deployment(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        coord = make(graph_id, sla=timedelta(minutes=5))
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        later = coord.now() + timedelta(minutes=6)
        results = [r for r in await coord.expire_overdue(now=later) if r.thread_id == thread_id]
        assert [r.status for r in results] == ["rejected"]
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) != RISKY_REPLY
        assert ("expired", SLA_ACTOR) in await events(coord, thread_id)


def cli(
    server: str, reviews_url: str, graph_id: str, *argv: str, token: str = COORDINATOR_TOKEN
) -> subprocess.CompletedProcess[str]:
    """`hitl-compliance ARGV --remote SERVER --graph GRAPH --backend REVIEWS` in a subprocess."""
    env = {**os.environ, "HITL_REMOTE_TOKEN": token, "PYTHONPATH": _pythonpath()}
    args = [sys.executable, "-m", "hitl_compliance", *(argv or ("pending",))]
    args += ["--remote", server, "--backend", reviews_url]
    if graph_id:
        args += ["--graph", graph_id]
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _pythonpath() -> str:
    return os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])


class TestCli:
    async def test_pending_show_approve_reject_recover(
        self, make: Make, langgraph_server: str, server_reviews_url: str, officer: LangGraphClient
    ) -> None:
        graph_id = "compliance"
        coord = make(graph_id)
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await coord.process(first, RISKY_QUESTION)
        await coord.process(second, RISKY_QUESTION)

        run = partial_cli(langgraph_server, server_reviews_url, graph_id)
        listed = await run("pending", "--json")
        assert listed.returncode == 0, listed.stderr
        threads = {item["thread_id"] for item in json.loads(listed.stdout)}
        assert {first, second} <= threads

        shown = await run("show", first)
        assert shown.returncode == 0, shown.stderr
        assert RISKY_REPLY in shown.stdout

        policy = "--policy", "tests.server._helpers:POLICY"
        refused = await run("approve", first, "--reviewer", "bob@bank", *policy)
        assert refused.returncode == 1
        assert "NotAuthorizedError" in refused.stderr

        approved = await run(
            "approve", first, "--reviewer", "alice@bank", "--role", "compliance_officer",
            "--response", EDITED, *policy,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert reply_of(graph_id, (await officer.threads.get(first))["values"]) == EDITED

        rejected = await run(
            "reject", second, "--reason", "promises returns", "--reviewer", "alice@bank",
            "--role", "compliance_officer", *policy,
        )  # fmt: skip
        assert rejected.returncode == 0, rejected.stderr
        assert (await officer.threads.get(second))["status"] == "idle"

        recovered = await run("recover")
        assert recovered.returncode == 0, recovered.stderr
        expired = await run("expire")
        assert expired.returncode == 0, expired.stderr
        for done in (listed, shown, refused, approved, rejected, recovered, expired):
            assert COORDINATOR_TOKEN not in done.stdout + done.stderr

    async def test_remote_needs_a_graph(
        self, langgraph_server: str, server_reviews_url: str
    ) -> None:
        done = await asyncio.to_thread(cli, langgraph_server, server_reviews_url, "")
        assert done.returncode == 2
        assert "--graph" in done.stderr


def partial_cli(server: str, reviews_url: str, graph_id: str) -> Any:
    async def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(cli, server, reviews_url, graph_id, *argv)

    return run


class TestSlaWorker:
    async def test_expire_every_expires_without_a_person(
        self,
        make: Make,
        store: ReviewStore,
        langgraph_server: str,
        server_reviews_url: str,
        officer: LangGraphClient,
        graph_id: str,
    ) -> None:
        """`expire --every` as a long-running worker rejects an overdue review on the server."""
        coord = make(graph_id, sla=timedelta(seconds=1))
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        env = {**os.environ, "HITL_REMOTE_TOKEN": COORDINATOR_TOKEN, "PYTHONPATH": _pythonpath()}
        argv = [sys.executable, "-m", "hitl_compliance", "expire", "--every", "0.5"]
        argv += ["--remote", langgraph_server, "--graph", graph_id]
        argv += ["--backend", server_reviews_url]
        worker = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                review = await store.get_review(thread_id)
                if review is not None and review.status == "expired":
                    break
                assert worker.returncode is None, await worker.communicate()
                await asyncio.sleep(0.3)
            else:
                pytest.fail("the SLA worker did not expire the overdue review within 60s")
        finally:
            worker.terminate()
            out, err = await asyncio.wait_for(worker.communicate(), timeout=30)
        assert COORDINATOR_TOKEN not in (out + err).decode()
        thread = await officer.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) != RISKY_REPLY
        assert ("expired", SLA_ACTOR) in await events(coord, thread_id)


_bearer = HTTPBearer(auto_error=False)
_REVIEWERS = {"alice": ALICE, "bob": BOB}


def _authenticate(credentials: HTTPAuthorizationCredentials | None = None) -> Reviewer:
    if credentials is None or credentials.credentials not in _REVIEWERS:
        raise HTTPException(401, "Unknown reviewer.")
    return _REVIEWERS[credentials.credentials]


class TestRouter:
    async def test_review_service_over_a_remote_coordinator(
        self, make: Make, officer: LangGraphClient, graph_id: str
    ) -> None:
        """The FastAPI review router serves a remote coordinator unchanged."""

        def authenticate(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Reviewer:
            return _authenticate(credentials)

        coord = make(graph_id)
        thread_id = await new_thread(officer)
        await coord.process(thread_id, RISKY_QUESTION)
        app = FastAPI()
        app.include_router(create_review_router(coord, authenticate=authenticate))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            listed = await client.get("/reviews", headers={"Authorization": "Bearer alice"})
            assert listed.status_code == 200, listed.text
            assert thread_id in [i["thread_id"] for i in listed.json()["items"]]
            refused = await client.post(
                f"/reviews/{thread_id}/approve", json={}, headers={"Authorization": "Bearer bob"}
            )
            assert refused.status_code == 403, refused.text
            approved = await client.post(
                f"/reviews/{thread_id}/approve",
                json={"response": EDITED},
                headers={"Authorization": "Bearer alice"},
            )
            assert approved.status_code == 200, approved.text
            assert approved.json()["agent_response"] == EDITED
        assert reply_of(graph_id, (await officer.threads.get(thread_id))["values"]) == EDITED
