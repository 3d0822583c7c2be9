"""Agent Inbox against the example deployment under a real `langgraph dev`.

Each test does what Agent Inbox does (its logic ported in `tests/agent_inbox.py`):
list the interrupted threads, read each thread's `interrupts` with the inbox's
own detection, build the reviewer's answer with its response logic, and send it
as `runs.create(thread, graph, command={"resume": answer})` (or, for "Mark as
resolved", `threads.update_state(thread, None, as_node="__end__")`).
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient

from hitl_compliance._inbox import IGNORED_REASON, INBOX_REVIEWER, REPLY_ACTION, REPLY_ARG
from tests import agent_inbox
from tests.server._helpers import EDITED, RISKY_QUESTION, RISKY_REPLY, outcome_of, turn_input

pytestmark = [pytest.mark.server, pytest.mark.once]

RESPONSE = "We never promise returns."
OFFICER = "alice@bank"


async def paused_turn(agent: LangGraphClient, graph_id: str) -> str:
    """A risky turn on a new thread, run to its pause; its thread id."""
    thread = await agent.threads.create()
    await agent.runs.wait(thread["thread_id"], graph_id, input=turn_input(graph_id, RISKY_QUESTION))
    return str(thread["thread_id"])


async def inbox_view(officer: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    """The thread as the inbox lists it: interrupted, its interrupts in the inbox's schema."""
    listed = await officer.threads.search(status="interrupted", limit=100)
    assert thread_id in {t["thread_id"] for t in listed}
    thread = dict(await officer.threads.get(thread_id))
    interrupts = agent_inbox.interrupts_from_thread(thread)
    assert not agent_inbox.invalid_schema(interrupts), thread["interrupts"]
    assert interrupts is not None
    return interrupts


async def send(
    officer: LangGraphClient, thread_id: str, graph_id: str, answer: list[dict[str, Any]]
) -> dict[str, Any]:
    """`sendHumanResponse`: the answer as `command.resume`; the thread once the run ended."""
    run = await officer.runs.create(thread_id, graph_id, command={"resume": answer})
    await officer.runs.join(thread_id, run["run_id"])
    return dict(await officer.threads.get(thread_id))


class TestDetection:
    async def test_the_inbox_lists_the_pause(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """The inbox's check accepts the pause: the reply, findings, evidence, all answers."""
        thread_id = await paused_turn(agent, graph_id)
        [interrupt] = await inbox_view(officer, thread_id)
        assert interrupt["action_request"] == {
            "action": REPLY_ACTION,
            "args": {REPLY_ARG: RISKY_REPLY},
        }
        assert interrupt["config"] == {
            "allow_accept": True,
            "allow_edit": True,
            "allow_respond": True,
            "allow_ignore": True,
        }
        assert "guarantee" in interrupt["description"]
        assert "evidence:" in interrupt["description"]
        responses, selected = agent_inbox.default_responses([interrupt])
        assert selected == "accept"
        assert {r["type"] for r in responses} == {"edit", "response", "ignore", "accept"}


class TestAnswers:
    @pytest.mark.parametrize("how", ["accept", "edit", "respond", "ignore"])
    async def test_each_answer_is_delivered_or_recorded(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str, how: str
    ) -> None:
        """accept/edit deliver, respond/ignore reject with their reason; the officer signs each."""
        thread_id = await paused_turn(agent, graph_id)
        interrupts = await inbox_view(officer, thread_id)
        responses, _ = agent_inbox.default_responses(interrupts)
        if how == "accept":
            answer = agent_inbox.submit(responses, "accept")
        elif how == "edit":
            agent_inbox.edit_field(responses, REPLY_ARG, EDITED)
            answer = agent_inbox.submit(responses, "edit")
        elif how == "respond":
            agent_inbox.respond(responses, RESPONSE)
            answer = agent_inbox.submit(responses, "response")
        else:
            answer = agent_inbox.ignore(responses)
        thread = await send(officer, thread_id, graph_id, answer)
        assert thread["status"] == "idle"
        assert thread["interrupts"] == {}
        reply, decision = outcome_of(graph_id, thread["values"])
        assert decision is not None
        # The server's authenticated user replaces the inbox's placeholder.
        assert decision["reviewer"] == OFFICER
        assert decision["reviewer"] != INBOX_REVIEWER
        assert decision["metadata"]["via"] == "agent-inbox"
        assert decision["metadata"]["response_type"] == answer[0]["type"]
        if how in {"accept", "edit"}:
            assert decision["approved"] is True
            assert reply == (RISKY_REPLY if how == "accept" else EDITED)
        else:
            assert decision["approved"] is False
            assert decision["reason"] == (RESPONSE if how == "respond" else IGNORED_REASON)
            assert reply != RISKY_REPLY

    async def test_two_answers_at_once_are_refused_and_the_pause_stays(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """A malformed answer fails its run before anything is saved; the inbox can answer again."""
        thread_id = await paused_turn(agent, graph_id)
        run = await officer.runs.create(
            thread_id,
            graph_id,
            command={
                "resume": [{"type": "accept", "args": None}, {"type": "ignore", "args": None}]
            },
        )
        await officer.runs.join(thread_id, run["run_id"])
        assert (await officer.runs.get(thread_id, run["run_id"]))["status"] == "error"
        state = await officer.threads.get_state(thread_id)
        assert [len(task["interrupts"]) for task in state["tasks"]] == [1]
        thread = await send(officer, thread_id, graph_id, [{"type": "accept", "args": None}])
        assert outcome_of(graph_id, thread["values"])[0] == RISKY_REPLY


class TestMarkAsResolved:
    async def test_resolving_ends_the_thread_with_nothing_delivered(
        self, agent: LangGraphClient, officer: LangGraphClient, graph_id: str
    ) -> None:
        """`ignoreThread` (update_state(None, as_node=END)) delivers nothing and decides nothing.

        The factory graph's reply stays unset; the gated agent's last message
        is the model's draft without the gate's outcome on it (a cleared reply
        carries `response_metadata["hitl_compliance"]`). No decision exists:
        with a review store attached the review stays pending (see the guide).
        """
        thread_id = await paused_turn(agent, graph_id)
        await inbox_view(officer, thread_id)
        await officer.threads.update_state(thread_id, None, as_node=agent_inbox.END)
        thread = dict(await officer.threads.get(thread_id))
        assert thread["status"] == "idle"
        assert thread["interrupts"] == {}
        reply, decision = outcome_of(graph_id, thread["values"])
        assert decision is None
        if graph_id == "compliance":
            assert reply is None
