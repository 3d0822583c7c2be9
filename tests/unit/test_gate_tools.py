"""Tool calls through the compliance gate: one review per flagged call, valid history."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END
from langgraph.types import Command
from pydantic import ValidationError

from hitl_compliance import (
    ConfigurationError,
    Decision,
    GateItem,
    GateOutcome,
    GateView,
    KeywordRule,
    PauseStyle,
    ToolCallRule,
    compliance_gate,
    route_after_gate,
)
from hitl_compliance._gate_items import item_review_id
from hitl_compliance.gate import DEFAULT_REJECTION, GatePause, gate_pauses, resume_gate
from tests.gate_graphs import RISKY, Bank, build_react, call, decision, transfer_rule

CONFIG: Any = {"configurable": {"thread_id": "t1"}}
ASK = {"messages": [HumanMessage("Pay my landlord")]}


def assert_valid_history(messages: list[BaseMessage]) -> None:
    """Each AIMessage's tool calls are answered once each, by the ToolMessages right after it."""
    i = 0
    while i < len(messages):
        message = messages[i]
        if isinstance(message, AIMessage) and message.tool_calls:
            ids = sorted(str(c["id"]) for c in message.tool_calls)
            answers = []
            j = i + 1
            while j < len(messages) and isinstance(messages[j], ToolMessage):
                answers.append(messages[j].tool_call_id)  # type: ignore[attr-defined]
                j += 1
            assert sorted(answers) == ids, (ids, answers)
            i = j
            continue
        assert not isinstance(message, ToolMessage), f"orphan tool message at {i}"
        i += 1


def one_transfer(amount: int, to: str = "12345678") -> AIMessage:
    """The model's turn: one transfer call."""
    return AIMessage("", tool_calls=[call("transfer", "c1", amount_gbp=amount, to_account=to)])


DONE = AIMessage("All done.")


def call_outcome(messages: list[BaseMessage], call_id: str) -> GateItem:
    """The gate's outcome for one call, from the cleared message of its pass.

    The state key holds the latest pass only (the model's final reply passes the
    gate too); each cleared message carries its own pass's outcome.
    """
    for message in messages:
        data = message.response_metadata.get("hitl_compliance")
        if data is None:
            continue
        for item in GateOutcome.from_dict(data).tool_calls:
            if item.tool_call is not None and item.tool_call["id"] == call_id:
                return item
    raise AssertionError(f"no gate outcome for call {call_id}")


async def only_pause(graph: Any) -> GatePause:
    [pause] = await gate_pauses(graph, CONFIG)
    return pause


class TestToolCallRule:
    def test_thresholds_and_evidence(self) -> None:
        """At most 1,000 passes, above is review, above 25,000 is block; evidence names it."""
        rule = transfer_rule()

        def judged(amount: object) -> tuple[str, tuple[str, ...]]:
            view = GateView(tool_call={"name": "transfer", "args": {"amount_gbp": amount}})
            result = rule.evaluate(view)
            return result.verdict, result.evidence

        assert judged(1_000) == ("pass", ())
        assert judged(5_000) == ("review", ("transfer: amount_gbp=5000",))
        assert judged("5,000") == ("review", ("transfer: amount_gbp='5,000'",))
        assert judged(40_000)[0] == "block"
        assert judged("lots")[0] == "review"  # not a number: fails closed
        assert judged(None)[0] == "review"
        assert judged(True)[0] == "review"
        blocked = rule.evaluate(
            GateView(tool_call={"name": "transfer", "args": {"amount_gbp": 40_000}})
        )
        assert "moves customer money" in blocked.reason
        assert "25,000" in blocked.reason

    def test_other_tools_and_text_pass(self) -> None:
        """Another tool, or the reply text (no tool call), passes."""
        rule = transfer_rule()
        assert rule.evaluate(GateView(tool_call={"name": "balance", "args": {}})).verdict == "pass"
        assert rule.evaluate(GateView(draft_response="transfer 90000")).verdict == "pass"

    def test_every_call_of_a_tool(self) -> None:
        """Without an argument, every call to the tool gets the verdict."""
        rule = ToolCallRule("no_closures", ["close_account"], verdict="block")
        view = GateView(tool_call={"name": "close_account", "args": {"id": "A1"}})
        result = rule.evaluate(view)
        assert (result.verdict, result.evidence) == ("block", ("close_account(id='A1')",))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"tools": []},
            {"review_above": 10},
            {"argument": "amount"},
            {"argument": "amount", "review_above": 10, "block_above": 5},
            {"argument": "amount", "review_above": float("nan")},
            {"verdict": "pass"},
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any]) -> None:
        """Each inconsistent option is refused when the rule is built."""
        options: dict[str, Any] = {"tools": "transfer", **kwargs}
        with pytest.raises(ConfigurationError):
            ToolCallRule("r", **options)

    def test_bad_applies_to_is_refused_by_the_gate(self) -> None:
        """A rule naming an unknown target fails at build time."""

        class Odd:
            name = "odd"
            applies_to = ("json",)

            def evaluate(self, state: Any) -> Any:
                raise AssertionError

        with pytest.raises(ConfigurationError, match="applies_to"):
            compliance_gate([Odd()])


class TestReviews:
    async def test_clean_call_runs_without_a_pause(self, style: PauseStyle) -> None:
        """A call under the review limit and a harmless tool run at once."""
        bank = Bank()
        turn = AIMessage(
            "",
            tool_calls=[
                call("transfer", "c1", amount_gbp=500, to_account="1"),
                call("balance", "c2"),
            ],
        )
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        out = await graph.ainvoke(ASK, CONFIG)
        assert await gate_pauses(graph, CONFIG) == []
        assert bank.transfers == [(500, "1")]
        assert bank.lookups == 1
        assert out["messages"][-1].content == "All done."
        assert_valid_history(out["messages"])

    async def test_approve_runs_the_call_once(self, style: PauseStyle) -> None:
        """The call runs only after approval, once, with the proposed arguments."""
        bank = Bank()
        graph, _model = build_react(style, InMemorySaver(), bank, one_transfer(5_000), DONE)
        await graph.ainvoke(ASK, CONFIG)
        pause = await only_pause(graph)
        assert pause.target == "tool_call"
        assert pause.tool_call == {
            "id": "c1",
            "name": "transfer",
            "args": {"amount_gbp": 5_000, "to_account": "12345678"},
        }
        assert [f.rule for f in pause.outcome.findings] == ["transfer_limits"]
        assert pause.outcome.findings[0].evidence == ("transfer: amount_gbp=5000",)
        assert pause.review_id == item_review_id(str(pause.outcome.pass_id), "c1")
        assert bank.transfers == []
        out = await resume_gate(graph, CONFIG, pause, decision())
        assert bank.transfers == [(5_000, "12345678")]
        assert out["messages"][-1].content == "All done."
        assert_valid_history(out["messages"])
        item = call_outcome(out["messages"], "c1")
        assert (item.status, item.review_id) == ("approved", pause.review_id)
        assert item.decision is not None
        assert item.decision.reviewer == "officer@bank"

    async def test_edit_changes_the_arguments(self, style: PauseStyle) -> None:
        """An edit runs the call with the new arguments, re-checked by the rules."""
        bank = Bank()
        graph, _model = build_react(style, InMemorySaver(), bank, one_transfer(5_000), DONE)
        await graph.ainvoke(ASK, CONFIG)
        pause = await only_pause(graph)
        edited = {"amount_gbp": 2_000, "to_account": "12345678"}
        out = await resume_gate(graph, CONFIG, pause, decision(tool_args=edited))
        assert bank.transfers == [(2_000, "12345678")]
        assert_valid_history(out["messages"])
        item = call_outcome(out["messages"], "c1")
        assert item.status == "edited"
        assert item.args == edited
        assert [f.rule for f in item.edit_findings] == ["transfer_limits"]  # still a review

    async def test_edit_still_blocked_is_refused(self, style: PauseStyle) -> None:
        """An edit the rules block is refused: same pause, nothing run, then a decision works."""
        bank = Bank()
        graph, _model = build_react(style, InMemorySaver(), bank, one_transfer(5_000), DONE)
        await graph.ainvoke(ASK, CONFIG)
        pause = await only_pause(graph)
        blocked = {"amount_gbp": 90_000, "to_account": "12345678"}
        await resume_gate(graph, CONFIG, pause, decision(tool_args=blocked))
        again = await only_pause(graph)
        assert again.review_id == pause.review_id
        assert again.tool_call == pause.tool_call
        assert again.outcome.refused is not None
        assert "blocked by the rules" in again.outcome.refused
        assert bank.transfers == []
        await resume_gate(graph, CONFIG, again, decision())
        assert bank.transfers == [(5_000, "12345678")]

    async def test_reject_answers_the_call(self, style: PauseStyle) -> None:
        """A rejected call never runs; a ToolMessage gives the reason and the model goes on."""
        bank = Bank()
        graph, model = build_react(style, InMemorySaver(), bank, one_transfer(5_000), DONE)
        await graph.ainvoke(ASK, CONFIG)
        pause = await only_pause(graph)
        out = await resume_gate(graph, CONFIG, pause, decision(approved=False, reason="scam"))
        assert bank.transfers == []
        messages = out["messages"]
        assert_valid_history(messages)
        answer = messages[-2]
        assert isinstance(answer, ToolMessage)
        assert answer.tool_call_id == "c1"
        assert answer.status == "error"
        assert "rejected" in str(answer.content)
        assert "scam" in str(answer.content)
        assert isinstance(model.seen[-1][-1], ToolMessage)  # the model read the rejection
        assert messages[-1].content == "All done."

    async def test_two_flagged_calls_are_two_reviews(self, style: PauseStyle) -> None:
        """Each flagged call is a pause under its own id; the clean one waits for both.

        The dynamic style pauses for both at once (one interrupt each), the static
        style one after the other.
        """
        bank = Bank()
        turn = AIMessage(
            "",
            tool_calls=[
                call("transfer", "c1", amount_gbp=5_000, to_account="111"),
                call("balance", "c2"),
                call("transfer", "c3", amount_gbp=3_000, to_account="222"),
            ],
        )
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        await graph.ainvoke(ASK, CONFIG)
        first, *parallel = await gate_pauses(graph, CONFIG)
        assert first.tool_call is not None
        assert first.tool_call["id"] == "c1"
        assert len(parallel) == (1 if style == "command_resume" else 0)
        await resume_gate(graph, CONFIG, first, decision())
        second = await only_pause(graph)
        assert parallel in ([], [second])
        assert second.tool_call is not None
        assert second.tool_call["id"] == "c3"
        assert second.review_id != first.review_id
        assert (bank.transfers, bank.lookups) == ([], 0)  # nothing runs before the last decision
        out = await resume_gate(graph, CONFIG, second, decision(approved=False, reason="no"))
        assert bank.transfers == [(5_000, "111")]
        assert bank.lookups == 1
        messages = out["messages"]
        assert_valid_history(messages)
        # The refused call moved to its own AIMessage, answered at once; ToolNode ran the rest.
        shapes = [
            (type(m).__name__, [c["id"] for c in getattr(m, "tool_calls", [])]) for m in messages
        ]
        assert shapes[1:4] == [
            ("AIMessage", ["c3"]),
            ("ToolMessage", []),
            ("AIMessage", ["c1", "c2"]),
        ]

    async def test_blocked_call_never_runs(self, style: PauseStyle) -> None:
        """A call over the block limit is answered as blocked, without a pause."""
        bank = Bank()
        graph, _model = build_react(style, InMemorySaver(), bank, one_transfer(40_000), DONE)
        out = await graph.ainvoke(ASK, CONFIG)
        assert await gate_pauses(graph, CONFIG) == []
        assert bank.transfers == []
        assert_valid_history(out["messages"])
        [answer] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert "blocked" in str(answer.content)

    async def test_text_rule_ignores_call_arguments(self, style: PauseStyle) -> None:
        """A text rule does not fire on a tool call's arguments."""
        bank = Bank()
        turn = AIMessage(
            "", tool_calls=[call("transfer", "c1", amount_gbp=10, to_account="guaranteed returns")]
        )
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        await graph.ainvoke(ASK, CONFIG)
        assert await gate_pauses(graph, CONFIG) == []
        assert bank.transfers == [(10, "guaranteed returns")]

    async def test_text_then_call(self, style: PauseStyle) -> None:
        """A risky text and a flagged call are two reviews: the text first."""
        bank = Bank()
        turn = AIMessage(
            RISKY, tool_calls=[call("transfer", "c1", amount_gbp=5_000, to_account="1")]
        )
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        await graph.ainvoke(ASK, CONFIG)
        text = await only_pause(graph)
        assert (text.target, text.tool_call) == ("text", None)
        assert text.review_id == text.outcome.pass_id
        await resume_gate(graph, CONFIG, text, decision(response="Sending it now."))
        tool = await only_pause(graph)
        assert tool.target == "tool_call"
        out = await resume_gate(graph, CONFIG, tool, decision())
        assert bank.transfers == [(5_000, "1")]
        cleared = next(m for m in out["messages"] if isinstance(m, AIMessage))
        assert cleared.content == "Sending it now."

    async def test_rejected_text_drops_the_calls(self, style: PauseStyle) -> None:
        """Rejecting the reply text sends the rejection message; no call is reviewed or run."""
        bank = Bank()
        turn = AIMessage(
            RISKY, tool_calls=[call("transfer", "c1", amount_gbp=5_000, to_account="1")]
        )
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        await graph.ainvoke(ASK, CONFIG)
        out = await resume_gate(graph, CONFIG, await only_pause(graph), decision(approved=False))
        assert await gate_pauses(graph, CONFIG) == []
        assert out["messages"][-1].content == DEFAULT_REJECTION
        assert out["messages"][-1].tool_calls == []
        assert bank.transfers == []

    @pytest.mark.parametrize(
        ("target", "kwargs"),
        [("tool_call", {"response": "a text"}), ("text", {"tool_args": {"amount_gbp": 1}})],
    )
    async def test_edit_of_the_wrong_kind_is_refused(
        self, style: PauseStyle, target: str, kwargs: dict[str, Any]
    ) -> None:
        """A text edit on a call review, or tool_args on a text review, keeps the pause."""
        bank = Bank()
        turn = one_transfer(5_000) if target == "tool_call" else AIMessage(RISKY)
        graph, _model = build_react(style, InMemorySaver(), bank, turn, DONE)
        await graph.ainvoke(ASK, CONFIG)
        pause = await only_pause(graph)
        await resume_gate(graph, CONFIG, pause, decision(**kwargs))
        again = await only_pause(graph)
        assert again.review_id == pause.review_id
        assert again.outcome.refused is not None
        assert bank.transfers == []


class TestDynamicPayload:
    async def test_payload_names_the_call(self) -> None:
        """The interrupt value says what is under review; a bad resume is refused unsaved."""
        bank = Bank()
        graph, _model = build_react(
            "command_resume", InMemorySaver(), bank, one_transfer(5_000), DONE
        )
        out = await graph.ainvoke(ASK, CONFIG)
        [intr] = out["__interrupt__"]
        assert intr.value["target"] == "tool_call"
        assert intr.value["tool_call"]["args"] == {"amount_gbp": 5_000, "to_account": "12345678"}
        assert intr.value["draft_response"].startswith("transfer(")
        with pytest.raises(ValidationError):
            await graph.ainvoke(
                Command(resume={intr.id: {"approved": True, "tool_args": {"x": float("nan")}}}),
                CONFIG,
            )
        assert bank.transfers == []
        await resume_gate(graph, CONFIG, await only_pause(graph), decision())
        assert bank.transfers == [(5_000, "12345678")]


class TestDecision:
    def test_tool_args_are_storable_json(self) -> None:
        """tool_args must be JSON every store keeps; absent, the stored form is unchanged."""
        with pytest.raises(ValidationError):
            decision(tool_args={"n": 2**70})
        assert "tool_args" not in decision().to_state()
        made = decision(tool_args={"amount_gbp": 1})
        assert Decision.model_validate(made.to_state()) == made


class TestRouter:
    def test_routes(self) -> None:
        """Calls left go to tools; all refused goes back to the model; a reply ends."""
        calls = AIMessage("", tool_calls=[call("balance", "c1")])
        answer = ToolMessage("rejected", tool_call_id="c1")
        assert route_after_gate({"messages": [calls]}) == "tools"
        assert route_after_gate({"messages": [calls, answer]}) == "model"
        assert route_after_gate({"messages": [AIMessage("hi")]}) == END
        assert route_after_gate([calls], tools="act") == "act"


def test_keyword_rule_opting_in_sees_calls() -> None:
    """A rule that says applies_to tool_call is run on each call."""

    class ArgsKeyword:
        name = "crypto"
        applies_to = ("tool_call",)

        def evaluate(self, state: GateView) -> Any:
            rule = KeywordRule(self.name, ["bitcoin"])
            return rule.evaluate(GateView(draft_response=str((state.tool_call or {}).get("args"))))

    gate = compliance_gate([ArgsKeyword()])
    assert gate is not None
