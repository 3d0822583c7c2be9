"""The claims assistant's compliance set-up: its rules, who may approve what, its graph."""

from __future__ import annotations

from typing import Any

from hitl_compliance import (
    ComplianceGraph,
    ComplianceState,
    Drafter,
    KeywordRule,
    PauseStyle,
    RegexRule,
    RoleBasedPolicy,
    build_compliance_graph,
)

__all__ = ["HANDOFF", "POLICY", "RULES", "build_graph", "draft_reply"]

RULES = [
    KeywordRule(
        "payout_promise",
        ["guaranteed payout", "will definitely pay", "fully covered"],
        reason="promises the outcome of a claim before it is assessed",
        severity="high",
    ),
    RegexRule(
        "policy_number",
        r"\bPOL-\d{8}\b",
        verdict="block",
        reason="policy numbers never go out in chat",
    ),
]
"""A promise about a claim's outcome needs an adjuster; a policy number is never sent."""

POLICY = RoleBasedPolicy(rule_roles={"payout_promise": "claims_adjuster"})
"""Only claims adjusters may decide payout promises."""

HANDOFF = "A claims handler will contact you shortly."
"""What the customer gets when a reply is rejected or blocked."""


def draft_reply(state: ComplianceState) -> str:
    """The production drafter's stand-in (in the real service: an LLM call)."""
    return f"Thank you for your message about: {state.customer_message}"


def build_graph(
    draft: Drafter, *, checkpointer: Any, style: PauseStyle = "interrupt_before"
) -> ComplianceGraph:
    """The assistant's compliance graph around `draft`."""
    return build_compliance_graph(
        draft, rules=RULES, checkpointer=checkpointer, style=style, rejection_message=HANDOFF
    )
