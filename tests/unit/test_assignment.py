"""`Routing` and `AssignmentRule`: validated when made, first match wins, queues and delegations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AssignmentRule,
    ConfigurationError,
    Delegation,
    HitlCoordinator,
    KeywordRule,
    Routing,
    RuleResult,
    build_compliance_graph,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def finding(rule: str, severity: Any = "medium") -> RuleResult:
    return RuleResult(rule, "review", "why", (), severity=severity)


class TestAssignmentRule:
    def test_needs_a_criterion(self) -> None:
        """A rule without rule=, severity= or role= would match everything: refused."""
        with pytest.raises(ConfigurationError, match="default"):
            AssignmentRule("queue:x")

    @pytest.mark.parametrize("to", ["", "  ", "x" * 257, 3])
    def test_refuses_a_blank_target(self, to: Any) -> None:
        """The target must be a non-blank id of at most 256 characters."""
        with pytest.raises(ConfigurationError):
            AssignmentRule(to, rule="r")

    def test_all_criteria_must_match(self) -> None:
        """With rule and severity, a finding must have both; role reads the policy's role sets."""
        rule = AssignmentRule("ann", rule="r", severity="high")
        assert rule.matches(finding("r", "high"), [])
        assert not rule.matches(finding("r", "low"), [])
        assert not rule.matches(finding("s", "high"), [])
        by_role = AssignmentRule("ann", role="smcr")
        assert by_role.matches(finding("r"), [frozenset({"smcr", "x"})])
        assert not by_role.matches(finding("r"), [frozenset({"x"})])


class TestRouting:
    def test_first_matching_rule_wins_then_the_default(self) -> None:
        """Rules are tried in order over every finding; no match gives the default and says so."""
        routing = Routing(
            rules=[AssignmentRule("ann", rule="a"), AssignmentRule("ben", severity="high")],
            default="queue:rest",
        )
        assert routing.route([finding("z", "high"), finding("a")]) == ("ann", "rule a -> ann")
        assert routing.route([finding("z", "high")]) == ("ben", "severity high -> ben")
        assert routing.route([finding("z")]) == (
            "queue:rest",
            "no routing rule matched -> queue:rest",
        )

    def test_queues_of_a_member(self) -> None:
        """A reviewer's queues, as assignees, sorted."""
        routing = Routing(queues={"b": ["ann"], "a": {"ann", "ben"}})
        assert routing.queues_of("ann") == ["queue:a", "queue:b"]
        assert routing.queues_of("cat") == []
        assert routing.queues["a"] == frozenset({"ann", "ben"})

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"rules": ["not a rule"]},
            {"default": ""},
            {"queues": {"q": "ann"}},
            {"queues": ["q"]},
            {"supervisor_roles": frozenset({1})},
            {"enforce": "yes"},
        ],
    )
    def test_refuses_bad_configuration(self, kwargs: dict[str, Any]) -> None:
        """A value of the wrong shape is a ConfigurationError when the routing is made."""
        with pytest.raises(ConfigurationError):
            Routing(**kwargs)

    def test_is_frozen(self) -> None:
        """A routing cannot be changed after the coordinator took it."""
        routing = Routing()
        with pytest.raises(AttributeError):
            routing.enforce = True  # type: ignore[misc]


class TestDelegation:
    def test_ends_at_until(self) -> None:
        """In force before `until`, not at or after it."""
        d = Delegation("ann", "ben", T0, "ann", T0 - timedelta(days=1))
        assert d.active(T0 - timedelta(seconds=1))
        assert not d.active(T0)


class TestCoordinatorConfiguration:
    def test_routing_must_be_a_routing(self) -> None:
        """`routing=` takes a Routing only."""
        graph = build_compliance_graph(
            lambda s: "x", rules=[KeywordRule("k", ["x"])], checkpointer=InMemorySaver()
        )
        with pytest.raises(ConfigurationError):
            HitlCoordinator(graph, routing={"rules": []})  # type: ignore[arg-type]
        assert HitlCoordinator(graph, routing=Routing()).routing == Routing()
