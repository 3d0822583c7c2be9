"""The workload every benchmark shares: one drafter, one rule set, one decision.

The drafter returns at once (no LLM call), so every millisecond measured is
orchestration overhead: checkpoints, review rows, validation. A real LLM call
takes hundreds of milliseconds and would hide all of it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hitl_compliance import ComplianceState, KeywordRule, RegexRule

__all__ = [
    "MESSAGE",
    "REVIEWER",
    "RISKY_REPLY",
    "SAFE_REPLY",
    "draft",
    "raw_decision",
    "rules",
    "safe_draft",
]

MESSAGE = "Should I move my pension into the Global Equity Fund?"
"""What every benchmark customer asks."""

RISKY_REPLY = "Our fund offers guaranteed returns of 9% a year."
"""What the drafter always answers: it trips the `guarantee` rule, so every turn pauses."""

SAFE_REPLY = "The fund's value can fall as well as rise; our adviser can talk you through it."
"""What the safe drafter answers: no rule fires, so the turn is delivered at once."""

REVIEWER = "officer@bank.example"
"""Who approves every paused draft."""


def draft(state: ComplianceState) -> str:
    """The zero-latency drafter used by both the library and the raw baseline."""
    return RISKY_REPLY


def safe_draft(state: ComplianceState) -> str:
    """The zero-latency drafter of the non-paused turn: a reply every rule passes."""
    return SAFE_REPLY


def rules() -> list[KeywordRule | RegexRule]:
    """The rules both sides evaluate: one `review` keyword rule and one `block` regex."""
    return [
        KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns"),
        RegexRule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", verdict="block", reason="personal data"),
    ]


def raw_decision(*, approved: bool = True) -> dict[str, Any]:
    """The decision a careful raw-LangGraph user records: who, when, what."""
    return {
        "approved": approved,
        "reviewer": REVIEWER,
        "response": None,
        "reason": None,
        "metadata": {},
        "decided_at": datetime.now(timezone.utc).isoformat(),
        "kind": "human",
    }
