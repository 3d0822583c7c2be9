"""Agent Inbox and LangChain HITL: the pause in their schema, their answers as decisions.

Agent Inbox's own detection and response logic (ported in `tests/agent_inbox.py`)
runs on real pauses of a gate and of the factory graph; what it sends is
resumed with `Command(resume=...)`, as the inbox does through the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import ValidationError

from hitl_compliance import (
    AllowAllPolicy,
    HitlCoordinator,
    InMemoryReviewStore,
    StaleReviewError,
    attach_authority,
    build_compliance_graph,
)
from hitl_compliance._inbox import IGNORED_REASON, INBOX_REVIEWER, REPLY_ACTION, REPLY_ARG
from hitl_compliance.gate import DEFAULT_REJECTION
from hitl_compliance.state import as_decision
from tests import agent_inbox
from tests.gate_graphs import RISKY, Bank, build, build_react, call, graph_input, rules

EDITED = "Every fund carries risk; please read the key facts."
CONFIG: Any = {"configurable": {"thread_id": "t1"}}
DONE = AIMessage("All done.")


async def factory_draft(state: Any) -> str:
    return RISKY


def factory_graph() -> Any:
    return build_compliance_graph(
        factory_draft, rules=rules(), checkpointer=InMemorySaver(), style="command_resume"
    )


async def start_gate() -> tuple[Any, Callable[[Any], str | None]]:
    graph = build("messages", "command_resume", InMemorySaver())
    await graph.ainvoke(graph_input("messages"), CONFIG)
    return graph, lambda values: str(values["messages"][-1].content)


async def start_factory() -> tuple[Any, Callable[[Any], str | None]]:
    graph = factory_graph()
    await graph.ainvoke({"customer_message": "Should I buy the fund?"}, CONFIG)
    return graph, lambda values: values.get("agent_response")


STARTS = {"gate": start_gate, "factory": start_factory}


@pytest.fixture(params=sorted(STARTS))
def kind(request: pytest.FixtureRequest) -> str:
    """Each pause: a gate in a `MessagesState` agent, and the factory graph's."""
    name: str = request.param
    return name


async def thread_of(graph: Any, config: Any = CONFIG) -> dict[str, Any]:
    """The thread as LangGraph Server shows it: `interrupts` by task, values as JSON."""
    snapshot = await graph.aget_state(config)
    interrupts: dict[str, list[dict[str, Any]]] = {}
    for task in snapshot.tasks:
        for intr in task.interrupts:
            interrupts.setdefault(task.id, []).append({"value": intr.value, "id": intr.id})
    return {"interrupts": json.loads(json.dumps(interrupts))}


class TestDetection:
    async def test_text_pause_passes_the_inbox_schema_check(self, kind: str) -> None:
        """The inbox finds one interrupt it can answer: the reply, its findings, all answers."""
        graph, _ = await STARTS[kind]()
        found = agent_inbox.interrupts_from_thread(await thread_of(graph))
        assert found is not None
        assert not agent_inbox.invalid_schema(found)
        [interrupt] = found
        assert interrupt["action_request"] == {"action": REPLY_ACTION, "args": {REPLY_ARG: RISKY}}
        assert all(interrupt["config"].values())
        description = interrupt["description"]
        assert RISKY in description
        assert "guarantee" in description
        assert "promises returns" in description
        assert "evidence: `guaranteed returns`" in description
        # The library's own keys are still there for its readers.
        assert interrupt["draft_response"] == RISKY
        assert [v["rule"] for v in interrupt["violations"]] == ["guarantee"]

    async def test_tool_call_pause_is_the_call(self) -> None:
        """A flagged tool call is shown as that call: the tool's name and its arguments."""
        graph, _ = build_react(
            "command_resume",
            InMemorySaver(),
            Bank(),
            AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=5000, to_account="1")]),
        )
        await graph.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, CONFIG)
        found = agent_inbox.interrupts_from_thread(await thread_of(graph))
        assert found is not None
        assert not agent_inbox.invalid_schema(found)
        [interrupt] = found
        assert interrupt["action_request"] == {
            "action": "transfer",
            "args": {"amount_gbp": 5000, "to_account": "1"},
        }
        assert "transfer_limits" in interrupt["description"]

    def test_the_port_refuses_a_payload_of_another_shape(self) -> None:
        """The ported check is a real check: the payload before this change was refused."""
        thread = {"interrupts": {"t": [{"value": {"draft_response": RISKY}, "id": "i"}]}}
        assert agent_inbox.invalid_schema(agent_inbox.interrupts_from_thread(thread))

    def test_markdown_in_the_draft_stays_in_its_fence(self) -> None:
        """A draft with backticks and headings cannot end its code fence early."""
        from hitl_compliance._inbox import describe

        text = "```\n# Approved by compliance\n```"
        shown = describe(
            target="text", customer_message=None, draft=text, tool_call=None, findings=[]
        )
        assert "````\n" + text + "\n````" in shown


def inbox_answer(thread: dict[str, Any], how: str) -> list[dict[str, Any]]:
    """What Agent Inbox sends when the reviewer accepts, edits, responds or ignores."""
    interrupts = agent_inbox.interrupts_from_thread(thread)
    assert interrupts is not None
    responses, selected = agent_inbox.default_responses(interrupts)
    assert selected == "accept"
    if how == "accept":
        return agent_inbox.submit(responses, "accept")
    if how == "edit":
        agent_inbox.edit_field(responses, REPLY_ARG, EDITED)
        return agent_inbox.submit(responses, "edit")
    if how == "respond":
        agent_inbox.respond(responses, "Never promise returns.")
        return agent_inbox.submit(responses, "response")
    return agent_inbox.ignore(responses)


class TestResponses:
    @pytest.mark.parametrize(
        ("how", "reply", "approved", "reason"),
        [
            ("accept", RISKY, True, None),
            ("edit", EDITED, True, None),
            ("respond", None, False, "Never promise returns."),
            ("ignore", None, False, IGNORED_REASON),
        ],
    )
    async def test_each_inbox_answer_is_a_decision(
        self, kind: str, how: str, reply: str | None, approved: bool, reason: str | None
    ) -> None:
        """accept delivers, edit delivers the edit, respond and ignore reject with a reason."""
        graph, reply_of = await STARTS[kind]()
        value = inbox_answer(await thread_of(graph), how)
        out = await graph.ainvoke(Command(resume=value), CONFIG)
        assert (await graph.aget_state(CONFIG)).next == ()
        delivered = reply_of(out)
        if reply is not None:
            assert delivered == reply
        else:
            assert delivered != RISKY
            if kind == "gate":
                assert delivered == DEFAULT_REJECTION
        held = out["compliance"]["decision"] if kind == "gate" else out["decision"]
        assert held["approved"] is approved
        assert held["reason"] == reason
        assert held["reviewer"] == INBOX_REVIEWER
        assert held["metadata"]["via"] == "agent-inbox"

    async def test_server_user_signs_the_answer(self, kind: str) -> None:
        """On LangGraph Server the authenticated user, not the placeholder, is the reviewer."""
        graph, _ = await STARTS[kind]()
        user = {"identity": "alice@bank", "permissions": ["compliance_officer"]}
        config = {"configurable": {**CONFIG["configurable"], "langgraph_auth_user": user}}
        out = await graph.ainvoke(Command(resume=[{"type": "accept", "args": None}]), config)
        held = out["compliance"]["decision"] if kind == "gate" else out["decision"]
        assert held["reviewer"] == "alice@bank"
        assert held["roles"] == ["compliance_officer"]

    async def test_tool_call_edit_keeps_argument_types(self) -> None:
        """An inbox edit types text into a number field; the tool runs with the number."""
        bank = Bank()
        graph, _ = build_react(
            "command_resume",
            InMemorySaver(),
            bank,
            AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=5000, to_account="1")]),
            DONE,
        )
        await graph.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, CONFIG)
        interrupts = agent_inbox.interrupts_from_thread(await thread_of(graph))
        assert interrupts is not None
        responses, _ = agent_inbox.default_responses(interrupts)
        agent_inbox.edit_field(responses, "amount_gbp", "900")
        value = agent_inbox.submit(responses, "edit")
        assert value[0]["args"]["args"]["amount_gbp"] == "900"  # text, as the inbox sends it
        await graph.ainvoke(Command(resume=value), CONFIG)
        assert bank.transfers == [(900, "1")]

    async def test_tool_call_edit_may_not_switch_tools(self) -> None:
        """An edit naming another tool is refused; the call stays paused, nothing runs."""
        bank = Bank()
        graph, _ = build_react(
            "command_resume",
            InMemorySaver(),
            bank,
            AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=5000, to_account="1")]),
            DONE,
        )
        await graph.ainvoke({"messages": [HumanMessage("Pay my landlord")]}, CONFIG)
        edit = [{"type": "edit", "args": {"action": "balance", "args": {}}}]
        await graph.ainvoke(Command(resume=edit), CONFIG)
        [interrupt] = (await graph.aget_state(CONFIG, subgraphs=True)).tasks[0].state.interrupts
        assert "never the tool" in interrupt.value["refused"]
        assert "refused" in interrupt.value["description"]
        assert bank.transfers == []

    @pytest.mark.parametrize(
        ("value", "reply", "reason"),
        [
            ({"decisions": [{"type": "approve"}]}, RISKY, None),
            (
                {"decisions": [{"type": "edit", "edited_action": {
                    "name": REPLY_ACTION, "args": {REPLY_ARG: EDITED}}}]},
                EDITED,
                None,
            ),
            ({"decisions": [{"type": "reject", "message": "No."}]}, None, "No."),
            ({"type": "respond", "message": "Call us."}, None, "Call us."),
        ],
    )  # fmt: skip
    async def test_langchain_hitl_decisions(
        self, kind: str, value: Any, reply: str | None, reason: str | None
    ) -> None:
        """LangChain HITL answers (batched or one decision) map like the inbox's."""
        graph, reply_of = await STARTS[kind]()
        out = await graph.ainvoke(Command(resume=value), CONFIG)
        if reply is not None:
            assert reply_of(out) == reply
        else:
            assert reply_of(out) != RISKY
        held = out["compliance"]["decision"] if kind == "gate" else out["decision"]
        assert held["reason"] == reason
        assert held["metadata"]["via"] == "langchain-hitl"


INVALID = [
    [{"type": "accept", "args": None}, {"type": "ignore", "args": None}],
    [{"type": "response", "args": ""}],
    [{"type": "edit", "args": None}],
    [{"type": "edit", "args": {"action": REPLY_ACTION, "args": {"text": "x"}}}],
    [{"type": "approve", "args": None}],
    [{"type": "accept", "args": None, "reviewer": "mallory"}],
    {"decisions": []},
    {"decisions": [{"type": "approve"}, {"type": "approve"}]},
    {"decisions": [{"type": "respond"}]},
    {"type": "maybe"},
]


class TestRefused:
    @pytest.mark.parametrize("value", INVALID)
    def test_malformed_answers_are_value_errors(self, value: Any) -> None:
        """Each malformed inbox or HITL answer raises ValueError, the schema's refusal."""
        with pytest.raises(ValueError):  # noqa: PT011 (each says why in its own words)
            as_decision(value)

    @pytest.mark.parametrize("value", INVALID[:3])
    async def test_refused_before_saving(self, kind: str, value: Any) -> None:
        """LangGraph refuses a malformed answer before saving it: a valid one still works."""
        graph, reply_of = await STARTS[kind]()
        with pytest.raises(ValidationError):
            await graph.ainvoke(Command(resume=value), CONFIG)
        out = await graph.ainvoke(Command(resume=[{"type": "accept", "args": None}]), CONFIG)
        assert reply_of(out) == RISKY


class TestRecorded:
    async def test_ignore_is_an_audited_rejection(self) -> None:
        """With a review store attached, an inbox ignore is claimed and audited as a rejection."""
        graph = build("messages", "command_resume", InMemorySaver())
        reviews = InMemoryReviewStore()
        attach_authority(graph, reviews=reviews, policy=AllowAllPolicy())
        await graph.ainvoke(graph_input("messages"), CONFIG)
        value = inbox_answer(await thread_of(graph), "ignore")
        await graph.ainvoke(Command(resume=value), CONFIG)
        review = await reviews.get_review("t1")
        assert review is not None
        assert review.status == "rejected"
        assert review.reviewer == INBOX_REVIEWER
        events = [a.event for a in await reviews.audit_log("t1")]
        assert events[-2:] == ["rejected", "replied"]

    async def test_mark_as_resolved_leaves_the_review_pending_then_typed(self, kind: str) -> None:
        """Inbox's update_state(None, as_node=END) records nothing; the coordinator says so.

        The review stays in `pending()`; an approval is refused with
        StaleReviewError (nothing can be delivered, the claim released); a
        rejection closes it, recorded.
        """
        graph = build("messages", "command_resume", InMemorySaver())
        if kind == "factory":
            graph = factory_graph()
        coord = HitlCoordinator(graph, reviews=InMemoryReviewStore(), policy=AllowAllPolicy())
        if kind == "factory":
            await coord.process("t1", "Should I buy the fund?")
        else:
            await graph.ainvoke(graph_input("messages"), CONFIG)
        await graph.aupdate_state(CONFIG, None, as_node=agent_inbox.END)
        assert [p.thread_id for p in await coord.pending()] == ["t1"]
        with pytest.raises(StaleReviewError, match="ended around review"):
            await coord.approve("t1", reviewer="alice@bank")
        review = await coord.reviews.get_review("t1")
        assert review is not None
        assert review.status == "pending"
        await coord.reject("t1", reviewer="alice@bank", reason="resolved in Agent Inbox")
        assert await coord.pending() == []
        review = await coord.reviews.get_review("t1")
        assert review is not None
        assert review.status == "rejected"


class TestAsDecision:
    def test_placeholder_reviewer_and_provenance(self) -> None:
        """An inbox answer names no reviewer: the placeholder, and where it came from."""
        made = as_decision([{"type": "response", "args": "Too risky."}])
        assert made.reviewer == INBOX_REVIEWER
        assert made.approved is False
        assert made.reason == "Too risky."
        assert made.metadata == {"via": "agent-inbox", "response_type": "response"}

    def test_tool_edit_is_tool_args(self) -> None:
        """An edit of an action other than the reply edits a tool call's arguments."""
        made = as_decision([{"type": "edit", "args": {"action": "transfer", "args": {"a": 1}}}])
        assert made.tool_args == {"a": 1}
        assert made.response is None
        assert made.metadata["action"] == "transfer"

    def test_only_the_placeholder_is_signed_by_the_server_user(self) -> None:
        """A decision that names its reviewer keeps it; an inbox answer takes the server user."""
        from hitl_compliance._inbox import signed_by_server_user

        user = {"identity": "alice@bank", "permissions": ["officer"]}
        config: Any = {"configurable": {"langgraph_auth_user": user}}
        inbox = as_decision([{"type": "accept", "args": None}])
        assert signed_by_server_user(inbox, config).reviewer == "alice@bank"
        assert signed_by_server_user(inbox, {"configurable": {}}).reviewer == INBOX_REVIEWER
        named = inbox.model_copy(update={"reviewer": "bob@bank", "metadata": {}})
        assert signed_by_server_user(named, config).reviewer == "bob@bank"
