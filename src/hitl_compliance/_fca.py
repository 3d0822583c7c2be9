"""The FCA support-agent scenario shared by the demo, the examples and the docs.

A UK bank's support agent drafts replies with an LLM; a compliance node checks
every draft against rules modelled on the FCA's conduct rules (personal
recommendations, misleading promotions, disclosure of account data). Here the
"LLM" is a deterministic stand-in so the scenario runs offline.
"""

from __future__ import annotations

from hitl_compliance.rules import ComplianceRule, KeywordRule, RegexRule
from hitl_compliance.state import ComplianceState

__all__ = ["SCRIPT", "fca_drafter", "fca_rules"]

SCRIPT: dict[str, str] = {
    "What are your opening hours?": (
        "Our branches are open 9am to 5pm, Monday to Friday, and our app is available 24/7."
    ),
    "Should I move my savings into the Global Equity Fund?": (
        "Yes, you should invest in the Global Equity Fund: it offers guaranteed returns "
        "of 8% a year."
    ),
    "What is the account number on my joint account?": (
        "The joint account is sort code 20-00-00, account 12345678."
    ),
}


def fca_drafter(state: ComplianceState) -> str:
    """Stand-in for the LLM: a scripted reply per customer message."""
    return SCRIPT.get(
        state.customer_message, "Thanks for your message; a colleague will follow up shortly."
    )


def fca_rules() -> list[ComplianceRule]:
    """Rules a UK retail bank's compliance team might start from."""
    return [
        KeywordRule(
            "investment_advice",
            ["you should invest", "I recommend investing", "buy this fund"],
            verdict="review",
            reason="Personal recommendation: needs a suitability check (COBS 9A).",
        ),
        KeywordRule(
            "guaranteed_returns",
            ["guaranteed returns", "risk-free", "can't lose"],
            verdict="review",
            reason="Financial promotion must be fair, clear and not misleading (COBS 4.2).",
        ),
        RegexRule(
            "account_details",
            r"\b\d{2}-\d{2}-\d{2}\b.*?\b\d{8}\b",
            verdict="block",
            reason="Discloses account details in a chat reply.",
        ),
    ]
