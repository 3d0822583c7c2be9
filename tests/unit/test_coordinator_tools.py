"""HitlCoordinator on a gated ReAct agent: each flagged tool call is a review it decides."""

from __future__ import annotations

from typing import Any

import pytest
from examples.command_resume_tool_approval import SENT, ScriptedModel, build_agent
from langchain_core.messages import ToolCall
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    InvalidDecisionError,
    NotAuthorizedError,
    PolicyViolationError,
    Reviewer,
    ReviewIdRequiredError,
    RoleBasedPolicy,
    build_compliance_graph,
)
from hitl_compliance.models import sha256_text

OFFICER = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))


def call(call_id: str, amount: int, account: str = "12345678") -> ToolCall:
    args = {"amount_gbp": amount, "to_account": account}
    return ToolCall(name="transfer", args=args, id=call_id, type="tool_call")


@pytest.fixture
def coord() -> HitlCoordinator:
    """A coordinator on the example's agent, with payments officers as approvers."""
    SENT.clear()
    plans = {
        "one": [call("a", 5_000)],
        "two": [call("b", 3_000), call("c", 4_000, "87654321")],
    }
    policy = RoleBasedPolicy(rule_roles={"transfer_limits": "payments_officer"})
    return HitlCoordinator(build_agent(ScriptedModel(plans=plans)), policy=policy)


class TestToolReviews:
    async def test_edit_runs_the_call_with_new_arguments(self, coord: HitlCoordinator) -> None:
        """tool_args edits the call; the edited call is what runs, and it is recorded."""
        paused = await coord.process("t", "one")
        assert paused.status == "paused"
        assert paused.draft_response == 'transfer({"amount_gbp": 5000, "to_account": "12345678"})'
        done = await coord.approve("t", reviewer=OFFICER, tool_args={**_args(900)})
        assert done.status == "completed"
        assert SENT == ["£900 to 12345678"]
        [approved] = [r for r in await coord.audit_log("t") if r.event == "approved"]
        assert approved.payload["tool_args"] == _args(900)
        assert (
            approved.payload["delivered"]
            == 'transfer({"amount_gbp": 900, "to_account": "12345678"})'
        )

    async def test_edit_approves_the_call_that_runs(self, coord: HitlCoordinator) -> None:
        """The approval's text hash is of the edited call as delivered (a regression: it hashed
        the bare arguments, so the audit named a delivery no approver had approved)."""
        await coord.process("t", "one")
        await coord.approve("t", reviewer=OFFICER, tool_args=_args(900))
        [approved] = [r for r in await coord.audit_log("t") if r.event == "approved"]
        assert approved.payload["text_sha256"] == sha256_text(approved.payload["delivered"])

    async def test_blocked_edit_is_refused_before_the_claim(self, coord: HitlCoordinator) -> None:
        """An edit the rules block is a PolicyViolationError; the review stays pending."""
        await coord.process("t", "one")
        with pytest.raises(PolicyViolationError):
            await coord.approve("t", reviewer=OFFICER, tool_args=_args(30_000))
        assert [r.thread_id for r in await coord.pending()] == ["t"]
        assert SENT == []

    async def test_wrong_kind_of_edit(self, coord: HitlCoordinator) -> None:
        """A text edit of a tool call's review is refused; nothing changes."""
        await coord.process("t", "one")
        with pytest.raises(InvalidDecisionError, match="tool_args"):
            await coord.approve("t", reviewer=OFFICER, response="something else")
        assert [r.thread_id for r in await coord.pending()] == ["t"]

    async def test_policy_names_the_role(self, coord: HitlCoordinator) -> None:
        """A reviewer without the payments role may not decide a transfer."""
        await coord.process("t", "one")
        with pytest.raises(NotAuthorizedError):
            await coord.approve("t", reviewer="clerk@bank")

    async def test_two_calls_two_reviews(self, coord: HitlCoordinator) -> None:
        """Two flagged calls in one message are two reviews, pending at once, decided one by one."""
        first = await coord.process("t", "two")
        assert first.status == "paused"
        pending = {r.draft_response[len("transfer(") :][:20]: r for r in await coord.pending()}
        b = pending['{"amount_gbp": 3000,']
        c = pending['{"amount_gbp": 4000,']
        assert first.review_id in {b.review_id, c.review_id}
        with pytest.raises(ReviewIdRequiredError) as info:
            await coord.approve("t", reviewer=OFFICER)
        assert set(info.value.review_ids) == {b.review_id, c.review_id}
        second = await coord.approve("t", reviewer=OFFICER, review_id=b.review_id)
        assert second.status == "paused"
        assert second.review_id == c.review_id
        [left] = await coord.pending()
        assert left.review_id == c.review_id
        assert SENT == []  # nothing runs before the last decision
        done = await coord.reject("t", reviewer=OFFICER, reason="unknown payee")
        assert done.status == "completed"
        assert SENT == ["£3,000 to 12345678"]
        rows = await coord.audit_log("t")
        assert [(row.event, row.review_id) for row in rows][2:] == [
            ("approved", b.review_id),
            ("replied", None),  # the calls' message: its text passed, its calls listed
            ("replied", None),  # the model's final reply, after the approved call ran
            ("rejected", c.review_id),
        ]
        calls = rows[3].payload["tool_calls"]
        assert [(c["id"], c["status"], c["decided_by"]) for c in calls] == [
            ("b", "approved", OFFICER.id),
            ("c", "rejected", OFFICER.id),
        ]
        assert [row.event for row in rows][:2] == ["paused", "paused"]
        assert (await coord.verify_audit("t")).ok


async def test_tool_args_on_a_factory_graph_is_refused() -> None:
    """A factory graph's reviews are of text: tool_args is an InvalidDecisionError."""
    graph = build_compliance_graph(
        lambda state: "guaranteed returns", checkpointer=InMemorySaver(), rules=[_rule()]
    )
    coord = HitlCoordinator(graph, policy=RoleBasedPolicy(rule_roles={}))
    await coord.process("t", "hi")
    with pytest.raises(InvalidDecisionError, match="tool_args"):
        await coord.approve("t", reviewer="o@bank", tool_args={"x": 1})


def _args(amount: int) -> dict[str, Any]:
    return {"amount_gbp": amount, "to_account": "12345678"}


def _rule() -> Any:
    from hitl_compliance import KeywordRule

    return KeywordRule("guarantee", ["guaranteed returns"])
