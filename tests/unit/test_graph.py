"""Unit tests of `hitl_compliance.graph`: the factory's checks and the graph's routing."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    NODES,
    ComplianceState,
    ConfigurationError,
    DraftError,
    KeywordRule,
    PauseDisabledError,
    PauseStyle,
    RegexRule,
    RuleResult,
    build_compliance_graph,
)
from hitl_compliance.graph import copy_graph, graph_spec
from tests.helpers import (
    RISKY,
    SECRET,
    AsyncKeywordRule,
    NotAResultRule,
    RaisingRule,
    ScriptedDrafter,
    config_for,
)

GUARANTEE = KeywordRule("guarantee", ["guaranteed returns"])
SSN = RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block")


def build(style: PauseStyle = "interrupt_before", **kwargs: Any) -> Any:
    """A graph over the scripted drafter and the two standard rules, on an InMemorySaver."""
    options: dict[str, Any] = {
        "rules": [GUARANTEE, SSN],
        "checkpointer": InMemorySaver(),
        "style": style,
        **kwargs,
    }
    return build_compliance_graph(options.pop("draft", ScriptedDrafter()), **options)


class TestBuild:
    def test_node_names(self, style: PauseStyle) -> None:
        """The graph's nodes are exactly draft/compliance/human_approval/deliver/rejected."""
        graph = build(style)
        assert NODES == ("draft", "compliance", "human_approval", "deliver", "rejected")
        assert set(graph.get_graph().nodes) - {"__start__", "__end__"} == set(NODES)

    def test_spec_recorded(self, style: PauseStyle) -> None:
        """The factory records its options for the coordinator."""
        graph = build(style, rejection_message="Sorry.")
        spec = graph_spec(graph)
        assert (spec.style, spec.rejection_message, spec.pause) == (style, "Sorry.", True)
        assert [r.name for r in spec.rules] == ["guarantee", "ssn"]

    def test_pause_without_checkpointer(self, style: PauseStyle) -> None:
        """A pausing graph without a checkpointer is refused, since LangGraph would never pause."""
        with pytest.raises(ConfigurationError, match="checkpointer"):
            build_compliance_graph(ScriptedDrafter(), checkpointer=None, style=style)

    def test_duplicate_rule_names(self) -> None:
        """Two rules with one name are refused."""
        with pytest.raises(ConfigurationError, match="'guarantee' appears twice"):
            build(rules=[GUARANTEE, KeywordRule("guarantee", ["other"])])

    @pytest.mark.parametrize("bad_style", ["static", "", None, "INTERRUPT_BEFORE"])
    def test_bad_style(self, bad_style: Any) -> None:
        """An unknown pause style is refused."""
        with pytest.raises(ConfigurationError, match="style"):
            build(bad_style)

    @pytest.mark.parametrize("rule", [object(), "guarantee", lambda state: None])
    def test_non_rule_object(self, rule: Any) -> None:
        """An object without name and evaluate is refused as a rule."""
        with pytest.raises(ConfigurationError, match="not a ComplianceRule"):
            build(rules=[rule])

    def test_non_callable_drafter(self) -> None:
        """A drafter that cannot be called is refused."""
        with pytest.raises(ConfigurationError, match="callable"):
            build(draft="not callable")

    def test_bad_state_schema(self) -> None:
        """A state schema that is not a ComplianceState subclass is refused."""
        with pytest.raises(ConfigurationError, match="state_schema"):
            build(state_schema=dict)

    def test_bad_checkpointer(self) -> None:
        """A checkpointer that is not a LangGraph saver is refused."""
        with pytest.raises(ConfigurationError, match="BaseCheckpointSaver"):
            build(checkpointer=object())

    def test_bad_rejection_message(self) -> None:
        """A rejection message that is not text is refused."""
        with pytest.raises(ConfigurationError, match="rejection_message"):
            build(rejection_message=42)

    def test_spec_of_foreign_graph(self) -> None:
        """graph_spec refuses an object the factory did not build."""
        with pytest.raises(ConfigurationError, match="build_compliance_graph"):
            graph_spec(object())


class TestCopyGraph:
    def test_copy_is_the_same_build(self, style: PauseStyle) -> None:
        """A copy is a new object with the original's build options and checkpointer."""
        graph = build(style, rejection_message="Sorry.")
        copy = copy_graph(graph)
        assert copy is not graph
        assert graph_spec(copy) == graph_spec(graph)
        assert copy.checkpointer is graph.checkpointer

    async def test_patching_the_copy_leaves_the_original(self, style: PauseStyle) -> None:
        """A method patched on the copy runs there only; the original still runs its own."""
        graph = build(style)
        copy = copy_graph(graph)
        calls: list[str] = []
        original_ainvoke = copy.ainvoke

        async def ainvoke(*args: Any, **kwargs: Any) -> Any:
            calls.append("copy")
            return await original_ainvoke(*args, **kwargs)

        copy.ainvoke = ainvoke  # type: ignore[method-assign]
        out = await copy.ainvoke({"customer_message": "hello"}, config_for("t1"))
        assert out["agent_response"] == out["draft_response"]
        await graph.ainvoke({"customer_message": "hello"}, config_for("t2"))
        assert calls == ["copy"]

    def test_copy_of_a_foreign_graph_is_refused(self) -> None:
        """copy_graph refuses an object the factory did not build, like graph_spec."""
        with pytest.raises(ConfigurationError, match="build_compliance_graph"):
            copy_graph(object())  # type: ignore[arg-type]


class TestRouting:
    async def test_clean_draft_delivered_by_llm(self, style: PauseStyle) -> None:
        """A draft with no finding is delivered as is, agent_type llm."""
        graph = build(style)
        out = await graph.ainvoke({"customer_message": "hello"}, config_for("t"))
        assert out["agent_response"] == out["draft_response"]
        assert (out["agent_type"], out["is_compliant"], out["violations"]) == ("llm", True, [])
        assert out["turn"] == 1

    async def test_review_draft_pauses(self, style: PauseStyle) -> None:
        """A draft with a review finding stops before human_approval with nothing delivered."""
        graph = build(style)
        await graph.ainvoke({"customer_message": RISKY}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        assert snap.values.get("agent_response") is None
        assert snap.values["is_compliant"] is False
        assert snap.values["violations"] == [
            RuleResult("guarantee", "review", "", ("guaranteed returns",)).to_dict()
        ]

    async def test_paused_interrupt_payload(self) -> None:
        """With command_resume, the interrupt carries the draft and findings as plain data."""
        graph = build("command_resume")
        await graph.ainvoke({"customer_message": RISKY}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        (interrupt,) = snap.interrupts
        assert interrupt.value["draft_response"] == snap.values["draft_response"]
        assert interrupt.value["violations"] == snap.values["violations"]

    async def test_static_pause_has_no_interrupt(self) -> None:
        """With interrupt_before, the pause is static: no interrupt value."""
        graph = build("interrupt_before")
        await graph.ainvoke({"customer_message": RISKY}, config_for("t"))
        assert (await graph.aget_state(config_for("t"))).interrupts == ()

    async def test_block_rejected_without_human(self, style: PauseStyle) -> None:
        """A block finding goes straight to rejected, agent_type system, nothing delivered."""
        graph = build(style)
        await graph.ainvoke({"customer_message": SECRET}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ()
        assert snap.values["agent_type"] == "system"
        assert snap.values.get("agent_response") is None
        assert snap.values["is_compliant"] is False
        assert snap.values.get("decision") is None

    async def test_block_delivers_rejection_message(self, style: PauseStyle) -> None:
        """On a block, the customer gets the rejection message, never the draft."""
        graph = build(style, rejection_message="We cannot answer that.")
        out = await graph.ainvoke({"customer_message": SECRET}, config_for("t"))
        assert out["agent_response"] == "We cannot answer that."

    async def test_block_beats_review(self, style: PauseStyle) -> None:
        """A draft with both review and block findings is rejected without a pause."""
        drafter = ScriptedDrafter({"both": "guaranteed returns, SSN 123-45-6789"})
        graph = build(style, draft=drafter)
        await graph.ainvoke({"customer_message": "both"}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ()
        assert {v["verdict"] for v in snap.values["violations"]} == {"review", "block"}
        assert snap.values["agent_type"] == "system"

    async def test_raising_rule_sends_to_review(self, style: PauseStyle) -> None:
        """A rule that raises becomes a review finding whose reason holds the error."""
        graph = build(style, rules=[RaisingRule()])
        await graph.ainvoke({"customer_message": "hello"}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        (finding,) = snap.values["violations"]
        assert (finding["rule"], finding["verdict"]) == ("raises", "review")
        assert "rule backend down" in finding["reason"]

    async def test_non_result_rule_sends_to_review(self, style: PauseStyle) -> None:
        """A rule returning a non-RuleResult becomes a review finding saying so."""
        graph = build(style, rules=[NotAResultRule()])
        await graph.ainvoke({"customer_message": "hello"}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        (finding,) = snap.values["violations"]
        assert finding["rule"] == "not_a_result"
        assert "not RuleResult" in finding["reason"]

    async def test_async_rule(self, style: PauseStyle) -> None:
        """An async rule is awaited and its finding routes the draft."""
        graph = build(style, rules=[AsyncKeywordRule("async_fund", "fund")])
        await graph.ainvoke({"customer_message": RISKY}, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.next == ("human_approval",)
        assert snap.values["violations"][0]["evidence"] == ["fund"]

    async def test_async_drafter(self, style: PauseStyle) -> None:
        """An async drafter is awaited."""
        drafter = ScriptedDrafter(is_async=True)
        graph = build(style, draft=drafter)
        out = await graph.ainvoke({"customer_message": "hello"}, config_for("t"))
        assert out["agent_response"] == drafter.text_for("hello")
        assert drafter.calls == ["hello"]

    @pytest.mark.parametrize("reply", [None, 42, b"bytes", ["a"]])
    async def test_drafter_non_str(self, style: PauseStyle, reply: Any) -> None:
        """A drafter returning anything but str raises DraftError."""
        graph = build(style, draft=lambda state: reply)
        with pytest.raises(DraftError, match=type(reply).__name__):
            await graph.ainvoke({"customer_message": "hello"}, config_for("t"))

    async def test_state_given_to_drafter(self, style: PauseStyle) -> None:
        """The drafter receives the state schema instance with the customer message."""
        drafter = ScriptedDrafter()
        graph = build(style, draft=drafter)
        await graph.ainvoke({"customer_message": "hello"}, config_for("t"))
        (state,) = drafter.states
        assert isinstance(state, ComplianceState)
        assert state.customer_message == "hello"


class TestPauseDisabled:
    @pytest.mark.parametrize("checkpointer", [None, InMemorySaver()])
    async def test_review_draft_raises(self, style: PauseStyle, checkpointer: Any) -> None:
        """With pause=False, a draft needing review raises PauseDisabledError, never passes."""
        graph = build(style, pause=False, checkpointer=checkpointer)
        with pytest.raises(PauseDisabledError, match="guarantee"):
            await graph.ainvoke({"customer_message": RISKY}, config_for("t"))

    async def test_clean_draft_delivers(self, style: PauseStyle) -> None:
        """With pause=False and no checkpointer, a clean draft is delivered."""
        graph = build(style, pause=False, checkpointer=None)
        out = await graph.ainvoke({"customer_message": "hello"})
        assert (out["agent_type"], out["is_compliant"]) == ("llm", True)
        assert out["agent_response"] == out["draft_response"]

    async def test_block_still_rejected(self, style: PauseStyle) -> None:
        """With pause=False, a blocked draft is still rejected without raising."""
        graph = build(style, pause=False, checkpointer=None)
        out = await graph.ainvoke({"customer_message": SECRET})
        assert (out["agent_type"], out["agent_response"]) == ("system", None)


class TestStaticResumeGuard:
    async def test_resume_without_decision(self) -> None:
        """Resuming a static pause with ainvoke(None) alone delivers nothing."""
        graph = build("interrupt_before")
        await graph.ainvoke({"customer_message": RISKY}, config_for("t"))
        with pytest.raises(Exception, match="without a decision"):
            await graph.ainvoke(None, config_for("t"))
        snap = await graph.aget_state(config_for("t"))
        assert snap.values.get("agent_response") is None
