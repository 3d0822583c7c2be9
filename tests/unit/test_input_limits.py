"""`InputLimits`: the largest texts and metadata accepted, on every path of a turn or decision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from hitl_compliance import (
    ConfigurationError,
    HitlCoordinator,
    InMemoryReviewStore,
    InputLimits,
    InputTooLargeError,
    InvalidInputError,
    KeywordRule,
    attach_authority,
    build_compliance_graph,
)
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, json_size

RULES = [KeywordRule("guarantee", ["guaranteed returns"])]
CONFIG: Any = {"configurable": {"thread_id": "t"}}
SMALL = InputLimits(max_text_chars=100, max_metadata_bytes=100)


def factory(style: Any = "interrupt_before") -> Any:
    return build_compliance_graph(
        lambda state: "guaranteed returns",
        rules=RULES,
        checkpointer=InMemorySaver(),
        style=style,
    )


def approval(**fields: Any) -> dict[str, Any]:
    return {"approved": True, "reviewer": "officer", "decided_at": "2026-12-02T12:00:00Z", **fields}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


class TestInputLimits:
    def test_defaults_are_documented(self) -> None:
        """The defaults are one million characters per text and bytes per metadata."""
        assert InputLimits(1_000_000, 1_000_000) == DEFAULT_INPUT_LIMITS

    @pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
    def test_a_limit_must_be_a_positive_int(self, bad: Any) -> None:
        """A non-positive or non-int limit is a ConfigurationError naming the field."""
        with pytest.raises(ConfigurationError, match="max_text_chars"):
            InputLimits(max_text_chars=bad)
        with pytest.raises(ConfigurationError, match="max_metadata_bytes"):
            InputLimits(max_metadata_bytes=bad)

    def test_is_frozen(self) -> None:
        """A limit cannot be changed once built."""
        with pytest.raises(AttributeError):
            SMALL.max_text_chars = 5  # type: ignore[misc]

    def test_check_text_refuses_past_the_limit_only(self) -> None:
        """Exactly the limit passes; one more character raises with field, size and limit."""
        SMALL.check_text("response", "x" * 100)
        with pytest.raises(InputTooLargeError) as caught:
            SMALL.check_text("response", "x" * 101, thread_id="t")
        err = caught.value
        assert isinstance(err, InvalidInputError)
        assert (err.field, err.size, err.limit, err.unit, err.thread_id) == (
            "response",
            101,
            100,
            "characters",
            "t",
        )
        assert "InputLimits(max_text_chars=...)" in str(err)

    def test_check_json_measures_utf8_bytes(self) -> None:
        """Metadata is measured as UTF-8 JSON: 40 two-byte characters are over 80 bytes."""
        SMALL.check_json("metadata", {"k": "é" * 40})
        with pytest.raises(InputTooLargeError, match="metadata") as caught:
            SMALL.check_json("metadata", {"k": "é" * 50})
        assert caught.value.unit == "bytes"

    @given(json_values)
    def test_json_size_never_exceeds_what_json_writes(self, value: Any) -> None:
        """The measured size is at most the compact UTF-8 JSON's (escapes only add bytes)."""
        written = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        assert json_size(value, 10**9) <= len(written)


class TestCoordinator:
    async def test_refuses_a_long_message_before_the_turn(self) -> None:
        """A message past the limit raises and writes no checkpoint and no review."""
        coord = HitlCoordinator(factory(), limits=SMALL)
        with pytest.raises(InputTooLargeError, match="message"):
            await coord.process("t", "x" * 101)
        assert not (await coord.graph.aget_state(CONFIG)).values
        assert await coord.pending() == []
        assert (await coord.process("t", "x" * 100)).status == "paused"

    async def test_refuses_large_turn_metadata(self) -> None:
        """Turn metadata past the byte limit raises before the turn runs."""
        coord = HitlCoordinator(factory(), limits=SMALL)
        with pytest.raises(InputTooLargeError, match="metadata"):
            await coord.process("t", "hi", metadata={"note": "x" * 200})
        assert not (await coord.graph.aget_state(CONFIG)).values

    @pytest.mark.parametrize(
        ("call", "kwargs", "field"),
        [
            ("approve", {"response": "x" * 101}, "response"),
            ("approve", {"metadata": {"k": "x" * 200}}, "metadata"),
            ("approve", {"reason": "x" * 101}, "reason"),
            ("reject", {"reason": "x" * 101}, "reason"),
            ("reject", {"metadata": {"k": "x" * 200}}, "metadata"),
        ],
    )
    async def test_refuses_a_large_decision_and_changes_nothing(
        self, call: str, kwargs: dict[str, Any], field: str
    ) -> None:
        """A decision past the limits raises naming the field; the review stays pending."""
        coord = HitlCoordinator(factory(), limits=SMALL)
        await coord.process("t", "hi")
        before = (await coord.pending(), await coord.reviews.audit_rows())
        with pytest.raises(InputTooLargeError) as caught:
            await getattr(coord, call)("t", reviewer="officer", **kwargs)
        assert caught.value.field == field
        assert (await coord.pending(), await coord.reviews.audit_rows()) == before
        assert (await coord.approve("t", reviewer="officer")).status == "completed"

    async def test_a_raised_limit_accepts_a_long_edit(self) -> None:
        """Past the default, a coordinator with a raised limit delivers the edit as given."""
        edit = "Capital at risk. " * 70_000  # 1.19 million characters
        coord = HitlCoordinator(factory())
        await coord.process("t", "hi")
        with pytest.raises(InputTooLargeError):
            await coord.approve("t", reviewer="officer", response=edit)
        raised = HitlCoordinator(factory(), limits=InputLimits(max_text_chars=2_000_000))
        await raised.process("t", "hi")
        result = await raised.approve("t", reviewer="officer", response=edit)
        assert result.agent_response == edit

    def test_limits_must_be_input_limits(self) -> None:
        """Anything but an InputLimits is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="InputLimits"):
            HitlCoordinator(factory(), limits={"max_text_chars": 5})  # type: ignore[arg-type]


class TestRawResume:
    async def test_attached_limits_refuse_a_large_raw_resume(self) -> None:
        """A `Command(resume=...)` past the attached limits is refused at the pause, unclaimed."""
        store = InMemoryReviewStore()
        graph = attach_authority(factory("command_resume"), reviews=store, limits=SMALL)
        await graph.ainvoke({"customer_message": "hi"}, CONFIG)
        out = await graph.ainvoke(Command(resume=approval(response="x" * 101)), CONFIG)
        assert "response is 101 characters" in out["__interrupt__"][0].value["refused"]
        [review] = await store.open_reviews("t")
        assert review.status == "pending"
        assert [r.event for r in await store.audit_log("t")] == ["paused"]
        out = await graph.ainvoke(Command(resume=approval(response="x" * 100)), CONFIG)
        assert out["agent_response"] == "x" * 100

    async def test_a_coordinators_limits_hold_for_raw_resumes(self) -> None:
        """A coordinator attaches its limits: a raw resume around it meets the same ones."""
        coord = HitlCoordinator(factory("command_resume"), limits=SMALL)
        await coord.process("t", "hi")
        out = await coord.graph.ainvoke(Command(resume=approval(metadata={"k": "x" * 200})), CONFIG)
        assert "metadata is" in out["__interrupt__"][0].value["refused"]
        assert [p.thread_id for p in await coord.pending()] == ["t"]

    async def test_update_state_past_the_limit_raises_and_saves_nothing(self) -> None:
        """A static pause decided with update_state past the limit raises InputTooLargeError."""
        coord = HitlCoordinator(factory(), limits=SMALL)
        await coord.process("t", "hi")
        graph = coord.graph
        before = await graph.aget_state(CONFIG)
        with pytest.raises(InputTooLargeError):
            await graph.aupdate_state(
                CONFIG, {"decision": approval(response="x" * 101)}, as_node="human_approval"
            )
        after = await graph.aget_state(CONFIG)
        assert after.config == before.config
        assert [p.thread_id for p in await coord.pending()] == ["t"]

    async def test_a_graph_without_an_authority_uses_the_defaults(self) -> None:
        """No authority attached: a raw resume past the default limits is refused."""
        graph = factory("command_resume")
        await graph.ainvoke({"customer_message": "hi"}, CONFIG)
        huge = "x" * (DEFAULT_INPUT_LIMITS.max_text_chars + 1)
        out = await graph.ainvoke(Command(resume=approval(response=huge)), CONFIG)
        assert "over the limit" in out["__interrupt__"][0].value["refused"]
