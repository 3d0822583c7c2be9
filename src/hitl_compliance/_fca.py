"""The FCA support-agent scenario shared by the demo, the CLI, the examples and the docs.

A UK bank's support agent drafts replies with an LLM; a compliance node checks
every draft against rules modelled on the FCA's conduct rules (personal
recommendations, misleading promotions, disclosure of account data). Here the
"LLM" is a deterministic stand-in so the scenario runs offline.

Reviewer authority follows the Senior Managers and Certification Regime
(SM&CR): a personal recommendation may only be signed off by an SMCR approver;
a misleading-promotion finding alone may also be decided by a compliance
officer.

[`app`][hitl_compliance._fca.app] is the CLI's default `--app`: it builds the
coordinator of this scenario on an opened [`Backend`][hitl_compliance.Backend].
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.graph import ComplianceGraph, PauseStyle, build_compliance_graph
from hitl_compliance.policy import RoleBasedPolicy
from hitl_compliance.retention import RetentionPolicy
from hitl_compliance.rules import ComplianceRule, KeywordRule, RegexRule
from hitl_compliance.state import ComplianceState

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from hitl_compliance.backends import Backend

__all__ = [
    "COMPLIANCE_OFFICER",
    "REJECTION_MESSAGE",
    "SCRIPT",
    "SLA",
    "SMCR_APPROVER",
    "app",
    "command_resume_app",
    "fca_coordinator",
    "fca_drafter",
    "fca_graph",
    "fca_policy",
    "fca_rules",
]

SMCR_APPROVER = "smcr_approver"
"""Role of a senior manager approved under SM&CR to sign off personal recommendations."""

COMPLIANCE_OFFICER = "compliance_officer"
"""Role of a compliance officer: may decide misleading-promotion findings."""

SLA = timedelta(hours=24)
"""How long a review may wait; `hitl-compliance expire` then rejects it (the safe default)."""

REJECTION_MESSAGE = "Sorry, I can't help with that here. A colleague will contact you."
"""What the customer receives when a draft is rejected or blocked."""

SCRIPT: dict[str, str] = {
    "What are your opening hours?": (
        "Our branches are open 9am to 5pm, Monday to Friday, and our app is available 24/7."
    ),
    "Should I move my savings into the Global Equity Fund?": (
        "Yes, you should invest in the Global Equity Fund: it offers guaranteed returns "
        "of 8% a year."
    ),
    "Is the Fixed Rate Saver safe for my pension lump sum?": (
        "The Fixed Rate Saver is risk-free: you can't lose money, so you should invest "
        "your lump sum there."
    ),
    "What is the account number on my joint account?": (
        "The joint account is sort code 20-00-00, account 12345678."
    ),
}
"""The stand-in LLM's reply to each customer message it knows."""


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
            severity="high",
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
            severity="critical",
        ),
    ]


def fca_policy() -> RoleBasedPolicy:
    """Who may decide which finding: personal recommendations need an SMCR approver."""
    return RoleBasedPolicy(
        rule_roles={
            "investment_advice": SMCR_APPROVER,
            "guaranteed_returns": {COMPLIANCE_OFFICER, SMCR_APPROVER},
        },
        default_roles={COMPLIANCE_OFFICER, SMCR_APPROVER},
    )


def fca_graph(
    checkpointer: BaseCheckpointSaver[Any], *, style: PauseStyle = "interrupt_before"
) -> ComplianceGraph:
    """The scenario's compiled graph on `checkpointer`."""
    return build_compliance_graph(
        fca_drafter,
        rules=fca_rules(),
        checkpointer=checkpointer,
        style=style,
        rejection_message=REJECTION_MESSAGE,
    )


FCA_RETENTION = (
    # MiFID II Art 16(6)-(7) / SYSC 9: five years, seven where the FCA asks.
    RetentionPolicy("reviews", floor=timedelta(days=5 * 365), ceiling=timedelta(days=7 * 365)),
    RetentionPolicy("audit", floor=timedelta(days=5 * 365), ceiling=timedelta(days=7 * 365)),
    # Checkpoints hold whole conversations; the decided state is kept with the review.
    RetentionPolicy("checkpoints", floor=timedelta(0), ceiling=timedelta(days=90)),
)
"""The scenario's retention: records five to seven years, checkpoints 90 days after a decision."""


def fca_coordinator(backend: Backend, *, style: PauseStyle = "interrupt_before") -> HitlCoordinator:
    """The scenario's coordinator: its graph, rules, SM&CR policy and SLA on `backend`."""
    return HitlCoordinator(
        fca_graph(backend.checkpointer, style=style),
        reviews=backend.reviews,
        policy=fca_policy(),
        sla=SLA,
        on_timeout="reject",
        retention=FCA_RETENTION,
    )


def app(backend: Backend) -> HitlCoordinator:
    """The CLI's default `--app` (`hitl_compliance._fca:app`): the scenario, static pauses."""
    return fca_coordinator(backend)


def command_resume_app(backend: Backend) -> HitlCoordinator:
    """`--app hitl_compliance._fca:command_resume_app`: the scenario with `interrupt()` pauses.

    A thread must be resumed by a graph of the pause style it paused in, so
    reviews left by `hitl-compliance demo --style command_resume` are decided
    with this app.
    """
    return fca_coordinator(backend, style="command_resume")
