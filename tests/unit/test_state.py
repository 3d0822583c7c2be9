"""Unit tests of `hitl_compliance.state`: the metadata reducer, the state and Decision."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import ValidationError

from hitl_compliance import ComplianceState, Decision, RuleResult, merge_metadata

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


class TestMergeMetadata:
    def test_adds_new_keys(self) -> None:
        """Keys only on the right are added."""
        assert merge_metadata({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}

    def test_right_wins_on_scalars(self) -> None:
        """A scalar on the right replaces the left value."""
        assert merge_metadata({"a": 1}, {"a": 2}) == {"a": 2}

    def test_patches_nested(self) -> None:
        """Nested dicts merge key by key, at any depth."""
        left = {"crm": {"id": 1, "tags": {"vip": True}}, "keep": "me"}
        right = {"crm": {"agent": "bob", "tags": {"new": 1}}}
        assert merge_metadata(left, right) == {
            "crm": {"id": 1, "agent": "bob", "tags": {"vip": True, "new": 1}},
            "keep": "me",
        }

    def test_dict_replaces_scalar_and_back(self) -> None:
        """When only one side is a mapping, the right side replaces the left."""
        assert merge_metadata({"a": 1}, {"a": {"x": 1}}) == {"a": {"x": 1}}
        assert merge_metadata({"a": {"x": 1}}, {"a": 1}) == {"a": 1}

    @pytest.mark.parametrize(("left", "right"), [(None, None), ({}, None), (None, {})])
    def test_none_is_empty(self, left: Any, right: Any) -> None:
        """None on either side counts as an empty mapping."""
        assert merge_metadata(left, right) == {}

    def test_inputs_not_mutated(self) -> None:
        """Merging leaves both inputs unchanged."""
        left = {"n": {"x": 1}}
        right = {"n": {"y": 2}}
        merge_metadata(left, right)
        assert left == {"n": {"x": 1}}
        assert right == {"n": {"y": 2}}


class TestComplianceState:
    def test_defaults(self) -> None:
        """A new state has no draft, no findings and turn 0."""
        state = ComplianceState()
        assert state.draft_response is None
        assert state.violations == []
        assert state.metadata == {}
        assert state.turn == 0

    def test_rule_results(self) -> None:
        """rule_results turns stored violation dicts back into RuleResults."""
        finding = RuleResult("r", "review", "why", ("x",))
        state = ComplianceState(violations=[finding.to_dict()])
        assert state.rule_results == [finding]

    def test_survives_strict_serializer(self) -> None:
        """The state's plain-data dump round-trips through LangGraph's serializer."""
        state = ComplianceState(
            customer_message="hi",
            draft_response="draft",
            violations=[RuleResult("r", "review", "", ("x",)).to_dict()],
            metadata={"n": {"x": [1, 2.5, None, True]}},
            decision=Decision(approved=True, reviewer="a", decided_at=NOW).to_state(),
        )
        serde = JsonPlusSerializer()
        values = state.model_dump()
        assert serde.loads_typed(serde.dumps_typed(values)) == values


class TestDecision:
    def test_to_state_is_json(self) -> None:
        """to_state gives plain JSON data, the timestamp as ISO text."""
        decision = Decision(approved=False, reviewer="bob", reason="no", decided_at=NOW)
        assert decision.to_state() == {
            "approved": False,
            "reviewer": "bob",
            "response": None,
            "reason": "no",
            "metadata": {},
            "decided_at": "2025-01-01T00:00:00Z",
            "kind": "human",
            "roles": [],
            "text_sha256": None,
            "approvers": [],
            "edit_findings": [],
        }

    def test_round_trip(self) -> None:
        """model_validate(to_state()) gives back an equal decision."""
        decision = Decision(
            approved=True, reviewer="a", response="edited", metadata={"t": [1]}, decided_at=NOW
        )
        assert Decision.model_validate(decision.to_state()) == decision

    @pytest.mark.parametrize(
        "fields",
        [
            {"reviewer": ""},
            {"reviewer": "   "},
            {"reviewer": "x" * 257},
            {"response": "  "},
            {"decided_at": datetime(2025, 1, 1)},  # naive on purpose
            {"metadata": {"x": object()}},
            {"unknown": 1},
        ],
    )
    def test_invalid(self, fields: dict[str, Any]) -> None:
        """Blank reviewer/response, naive time, non-JSON metadata and extra fields are refused."""
        values: dict[str, Any] = {"approved": True, "reviewer": "a", "decided_at": NOW, **fields}
        with pytest.raises(ValidationError):
            Decision(**values)

    def test_frozen(self) -> None:
        """A decision cannot be changed once made."""
        decision = Decision(approved=True, reviewer="a", decided_at=NOW)
        with pytest.raises(ValidationError):
            decision.approved = False  # type: ignore[misc]
