"""This suite's Hypothesis strategies: the testing kit's, narrowed to the suite's reviewers.

Every strategy lives in `hitl_compliance.testing.strategies` (downstream teams
get the same ones); this module only fixes the choices the suite's property
tests rely on: human decisions only (no SLA expiry), by plain reviewer ids.
"""

from __future__ import annotations

from hypothesis import strategies as st

from hitl_compliance.testing import HumanDecision
from hitl_compliance.testing import strategies as kit
from hitl_compliance.testing.strategies import (
    PATTERNS,
    TRIGGERS,
    BuiltinRule,
    Scenario,
    evasions,
    rule_sets,
)

__all__ = [
    "PATTERNS",
    "TRIGGERS",
    "BuiltinRule",
    "HumanDecision",
    "Scenario",
    "decisions",
    "evasions",
    "rule_sets",
    "scenarios",
]

REVIEWERS = st.sampled_from(["alice@bank", "bob@bank", "Ωfficer"])


def decisions() -> st.SearchStrategy[HumanDecision]:
    """Approve as drafted, approve with an edit, or reject, by a reviewer id without roles."""
    return kit.decisions(kinds=("approve", "edit", "reject"), reviewer=REVIEWERS)


def scenarios() -> st.SearchStrategy[Scenario]:
    """A draft and the decision a reviewer makes if the draft pauses."""
    return kit.scenarios(decision=decisions())
