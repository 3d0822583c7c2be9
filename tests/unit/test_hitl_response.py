"""LangChain's `HITLResponse` as a resume value: one decision in, a `Decision` or a ValueError out.

Core only (no LangChain needed): `as_decision` reads the shape, so the gate's
`response_schema` accepts it and LangGraph refuses a bad one before saving.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance import Decision
from hitl_compliance._hitl_response import ANONYMOUS, EDITED_TOOL, is_hitl_response
from hitl_compliance.state import as_decision

ACTION = {"name": "transfer", "args": {"amount_gbp": 900}}

json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)
decision_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["approve", "edit", "reject", "respond", "accept", "other"])},
    optional={
        "message": json_value,
        "edited_action": json_value | st.just(ACTION),
        "reviewer": json_value,
        "args": json_value,
    },
)
response_like = st.fixed_dictionaries(
    {"decisions": st.lists(decision_like, max_size=2) | json_value},
    optional={"reviewer": json_value, "extra": json_value},
)


class TestShapes:
    def test_each_type(self) -> None:
        """approve, edit and reject become an approval, an args edit and a rejection."""
        approve = as_decision({"decisions": [{"type": "approve"}]})
        assert (approve.approved, approve.reviewer, approve.tool_args) == (True, ANONYMOUS, None)
        edit = as_decision({"decisions": [{"type": "edit", "edited_action": ACTION}]})
        assert (edit.approved, edit.tool_args) == (True, ACTION["args"])
        assert edit.metadata[EDITED_TOOL] == "transfer"
        reject = as_decision({"type": "reject", "message": "no", "reviewer": "a@bank"})
        assert (reject.approved, reject.reason, reject.reviewer) == (False, "no", "a@bank")

    def test_a_decision_is_not_taken_for_one(self) -> None:
        """The library's own Decision and other shapes (Agent Inbox's) are left alone."""
        mine = Decision(approved=True, reviewer="a@bank", decided_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]
        assert not is_hitl_response(mine.to_state())
        assert not is_hitl_response({"type": "accept", "args": None})
        assert not is_hitl_response({"type": "edit", "args": {"action": "transfer", "args": {}}})
        assert not is_hitl_response([{"type": "accept"}])

    @pytest.mark.parametrize(
        "value",
        [
            {"decisions": []},
            {"decisions": [{"type": "approve"}] * 2},
            {"decisions": "approve"},
            {"decisions": ["approve"]},
            {"decisions": [{"type": "respond"}]},
            {"decisions": [{"type": "edit", "edited_action": {"args": {}}}]},
            {"decisions": [{"type": "edit"}]},  # found by hypothesis: was a KeyError
            {"type": "edit"},
            {"decisions": [{"type": "edit", "edited_action": ACTION, "message": "x"}]},
            {"decisions": [{"type": "approve"}], "extra": 1},
            {"type": "reject", "message": 1},
            {"type": "approve", "reviewer": 1},
            {"type": "approve", "reviewer": " "},
        ],
    )
    def test_invalid_is_a_value_error(self, value: Any) -> None:
        """Anything but exactly one valid decision raises ValueError (LangGraph saves nothing)."""
        with pytest.raises(ValueError):  # noqa: PT011 - the response_schema contract is ValueError
            as_decision(value)


@given(value=response_like | decision_like)
def test_a_decision_or_a_value_error(value: dict[str, Any]) -> None:
    """Any value of these shapes is a valid Decision or refused with ValueError, nothing else."""
    try:
        made = as_decision(value)
    except ValueError:
        return
    assert isinstance(made, Decision)
    kind = (value["decisions"][0] if "decisions" in value else value)["type"]
    assert made.approved == (kind != "reject")
