"""The example deployment under a real `langgraph dev`, driven with `langgraph_sdk`.

Both graphs of `examples/langgraph_server/` load with the server's own
persistence (the factory graph built with `PLATFORM_CHECKPOINTER`, the gated
agent compiled with no checkpointer), pause on a risky reply, report the
pause as `status="interrupted"` with the gate's payload, and deliver the
reviewer's decision sent as `Command(resume=...)` through the server's API.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from hitl_compliance import ReviewStore
from tests.server._helpers import (
    EDITED,
    RISKY_QUESTION,
    RISKY_REPLY,
    SAFE_QUESTION,
    SAFE_REPLY,
    decision,
    events,
    reply_of,
    turn_input,
)
from tests.server.conftest import EXAMPLE

pytestmark = [pytest.mark.server, pytest.mark.once]


async def ask(client: LangGraphClient, graph_id: str, text: str) -> dict[str, Any]:
    """Run one turn on a new thread (the server assigns its id); return the thread."""
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], graph_id, input=turn_input(graph_id, text))
    return dict(await client.threads.get(thread["thread_id"]))


async def decide(
    client: LangGraphClient, thread_id: str, graph_id: str, value: dict[str, Any]
) -> dict[str, Any]:
    """Resume the paused thread with `value`; return the thread once the run ended."""
    run = await client.runs.create(thread_id, graph_id, command={"resume": value})
    await client.runs.join(thread_id, run["run_id"])
    return dict(await client.threads.get(thread_id))


def payload_of(thread: dict[str, Any]) -> dict[str, Any]:
    """The one interrupt's value of a paused thread."""
    interrupts = [i for found in thread["interrupts"].values() for i in found]
    assert len(interrupts) == 1, thread["interrupts"]
    value: dict[str, Any] = interrupts[0]["value"]
    return value


class TestPause:
    async def test_risky_reply_pauses_with_payload(
        self, agent: LangGraphClient, graph_id: str
    ) -> None:
        """A risky draft leaves the thread interrupted, the draft and finding in the payload."""
        thread = await ask(agent, graph_id, RISKY_QUESTION)
        assert thread["status"] == "interrupted"
        payload = payload_of(thread)
        assert payload["draft_response"] == RISKY_REPLY
        assert [v["rule"] for v in payload["violations"]] == ["guarantee"]
        assert payload["customer_message"] == RISKY_QUESTION
        if graph_id == "compliance":
            # Nothing delivered yet. (The agent's state holds the model's draft as
            # its last message while paused: the gate reads it there.)
            assert reply_of(graph_id, thread["values"]) is None

    async def test_clean_reply_is_delivered_without_pause(
        self, agent: LangGraphClient, graph_id: str
    ) -> None:
        """A clean draft goes straight out: the thread ends idle with the reply."""
        thread = await ask(agent, graph_id, SAFE_QUESTION)
        assert thread["status"] == "idle"
        assert thread["interrupts"] == {}
        assert reply_of(graph_id, thread["values"]) == SAFE_REPLY


class TestDecide:
    async def test_approval_with_edit_is_delivered(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """The officer's edited approval, sent as Command(resume=...), is the delivered reply."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread = await decide(
            officer, paused["thread_id"], graph_id, decision(approved=True, response=EDITED)
        )
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) == EDITED

    async def test_rejection_withholds_the_draft(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A rejection never delivers the risky draft."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread = await decide(officer, paused["thread_id"], graph_id, decision(approved=False))
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) != RISKY_REPLY
        if graph_id == "compliance":
            assert thread["values"]["is_compliant"] is False

    async def test_invalid_resume_fails_its_run_and_the_pause_stays(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A resume that is no Decision fails its run but never poisons the thread.

        LangGraph validates it against the pause's `response_schema` before saving
        it: the run ends in `error` (the server then shows the thread as `error`
        with no `interrupts`), the pause stays in the state's tasks, and a valid
        decision afterwards is delivered.
        """
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread_id = paused["thread_id"]
        run = await officer.runs.create(
            thread_id, graph_id, command={"resume": {"approved": "maybe"}}
        )
        await officer.runs.join(thread_id, run["run_id"])
        assert (await officer.runs.get(thread_id, run["run_id"]))["status"] == "error"
        state = await officer.threads.get_state(thread_id)
        assert [len(task["interrupts"]) for task in state["tasks"]] == [1]
        thread = await decide(officer, thread_id, graph_id, decision(approved=True))
        assert thread["status"] == "idle"
        assert reply_of(graph_id, thread["values"]) == RISKY_REPLY

    async def test_agent_may_not_resume(self, agent: LangGraphClient, graph_id: str) -> None:
        """The example's auth answers 403 when a non-officer sends a resume command."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await agent.runs.create(
                paused["thread_id"], graph_id, command={"resume": decision(approved=True)}
            )
        assert refused.value.response.status_code == 403
        thread = await agent.threads.get(paused["thread_id"])
        assert thread["status"] == "interrupted"


class TestServerDecisionsPassTheChecks:
    async def test_pause_is_recorded_under_the_servers_thread_id(
        self, agent: LangGraphClient, store: ReviewStore, graph_id: str
    ) -> None:
        """The server-assigned (UUID) thread's pause is a pending review with a `paused` row."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread_id = paused["thread_id"]
        [review] = await store.open_reviews(thread_id)
        assert (review.status, review.draft_response) == ("pending", RISKY_REPLY)
        assert [r.rule for r in review.violations] == ["guarantee"]
        assert await events(store, thread_id) == [("paused", "system")]

    async def test_the_reviewer_is_the_authenticated_user(
        self, agent: LangGraphClient, officer: LangGraphClient, store: ReviewStore, graph_id: str
    ) -> None:
        """A resume naming someone else is recorded as the server's user, alice@bank."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread_id = paused["thread_id"]
        value = decision(approved=True, response=EDITED, reviewer="mallory@elsewhere")
        thread = await decide(officer, thread_id, graph_id, value)
        assert reply_of(graph_id, thread["values"]) == EDITED
        assert await events(store, thread_id) == [("paused", "system"), ("approved", "alice@bank")]
        *_, row, reply = await store.audit_log(thread_id)
        # The served graph records the edited reply it sent, after the outcome row.
        assert (reply.event, reply.actor, reply.payload["outcome"]) == (
            "replied",
            "alice@bank",
            "edited",
        )
        assert (row.payload["delivered"], row.payload["via"]) == (EDITED, "graph")
        assert row.payload["roles"] == ["compliance_officer", "reviewer"]
        assert (await store.open_reviews(thread_id)) == []

    async def test_a_reviewer_without_the_role_is_refused_and_the_pause_stays(
        self,
        agent: LangGraphClient,
        trainee: LangGraphClient,
        officer: LangGraphClient,
        store: ReviewStore,
        graph_id: str,
    ) -> None:
        """The policy refuses bob (no compliance_officer): audited, still paused, then decidable."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread_id = paused["thread_id"]
        thread = await decide(trainee, thread_id, graph_id, decision(approved=True))
        assert thread["status"] == "interrupted"
        assert "bob@bank may not decide" in payload_of(thread)["refused"]
        assert await events(store, thread_id) == [("paused", "system"), ("denied", "bob@bank")]
        thread = await decide(officer, thread_id, graph_id, decision(approved=False))
        assert thread["status"] == "idle"
        assert [e for e, _ in await events(store, thread_id)] == ["paused", "denied", "rejected"]

    async def test_racing_decisions_have_one_outcome(
        self, agent: LangGraphClient, officer: LangGraphClient, store: ReviewStore, graph_id: str
    ) -> None:
        """An approval and a rejection sent at once: one outcome, one decision row."""
        paused = await ask(agent, graph_id, RISKY_QUESTION)
        thread_id = paused["thread_id"]
        runs = await asyncio.gather(
            *(
                officer.runs.create(
                    thread_id,
                    graph_id,
                    command={"resume": decision(approved=approved)},
                    multitask_strategy="enqueue",
                )
                for approved in (True, False)
            )
        )
        for run in runs:
            await officer.runs.join(thread_id, run["run_id"])
        outcomes = [e for e, _ in await events(store, thread_id) if e in ("approved", "rejected")]
        assert len(outcomes) == 1
        thread = await officer.threads.get(thread_id)
        delivered = reply_of(graph_id, thread["values"])
        assert (delivered == RISKY_REPLY) == (outcomes == ["approved"])


class TestAuth:
    async def test_agent_sees_only_its_own_threads(
        self, agent: LangGraphClient, officer: LangGraphClient
    ) -> None:
        """The officer sees the agent's thread; the agent gets 404 for the officer's."""
        mine = await agent.threads.create()
        theirs = await officer.threads.create()
        assert (await officer.threads.get(mine["thread_id"]))["metadata"]["owner"] == "support-bot"
        with pytest.raises(httpx.HTTPStatusError) as hidden:
            await agent.threads.get(theirs["thread_id"])
        assert hidden.value.response.status_code == 404

    @pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic b2ZmaWNlcg==", None])
    async def test_unknown_token_gets_401(self, langgraph_server: str, header: str | None) -> None:
        """An unknown token, another scheme or no header at all is refused with 401."""
        headers = {} if header is None else {"Authorization": header}
        async with httpx.AsyncClient(base_url=langgraph_server, headers=headers) as http:
            response = await http.post("/threads", json={})
        assert response.status_code == 401


class TestClientScript:
    def test_documented_walkthrough(self, langgraph_server: str) -> None:
        """`examples/langgraph_server/client.py` pauses and delivers on both graphs."""
        completed = subprocess.run(
            [sys.executable, str(EXAMPLE / "client.py"), langgraph_server],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        lines = completed.stdout.splitlines()
        assert lines == [
            f"compliance: interrupted: {RISKY_REPLY!r} (guarantee)",
            f"compliance: idle: delivered {EDITED!r}",
            f"gated_agent: interrupted: {RISKY_REPLY!r} (guarantee)",
            f"gated_agent: idle: delivered {EDITED!r}",
        ]
