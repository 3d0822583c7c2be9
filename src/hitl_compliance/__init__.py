"""hitl-compliance: human-in-the-loop compliance graphs on LangGraph.

A risky AI-drafted reply never reaches a customer until a compliance officer
approves, edits or rejects it, with a durable record of who decided what.
"""

from hitl_compliance.backends import Backend, mask_url, open_backend
from hitl_compliance.coordinator import Clock, HitlCoordinator, OnTimeout
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    CrossOriginRequestError,
    DraftError,
    DuplicateVoteError,
    HitlError,
    InvalidDecisionError,
    InvalidInputError,
    NotAuthorizedError,
    PauseDisabledError,
    PolicyViolationError,
    ReviewNotFoundError,
    StaleReviewError,
    StoreError,
    ThreadBusyError,
    UnsupportedMediaTypeError,
)
from hitl_compliance.gate import GateOutcome, GatePause, GateStatus, compliance_gate, protect_stream
from hitl_compliance.graph import (
    NODES,
    ComplianceGraph,
    Drafter,
    PauseStyle,
    build_compliance_graph,
)
from hitl_compliance.hooks import DecidedEvent, ExpiredEvent, Hooks, PausedEvent, ReviewEvent
from hitl_compliance.ledger import LedgerBreak, LedgerReport
from hitl_compliance.models import (
    AuditRecord,
    HookDelivery,
    PendingReview,
    ProcessResult,
    ReviewRecord,
    Vote,
)
from hitl_compliance.policy import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    Reviewer,
    RoleBasedPolicy,
    canonical_reviewer_id,
)
from hitl_compliance.rules import (
    ComplianceRule,
    KeywordRule,
    RegexRule,
    RuleResult,
    Severity,
    Verdict,
)
from hitl_compliance.state import ComplianceState, Decision, merge_metadata
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore

__all__ = [
    "NODES",
    "AllowAllPolicy",
    "AlreadyDecidedError",
    "ApprovalPolicy",
    "AuditRecord",
    "Authorization",
    "Backend",
    "Clock",
    "ComplianceGraph",
    "ComplianceRule",
    "ComplianceState",
    "ConfigurationError",
    "CrossOriginRequestError",
    "DecidedEvent",
    "Decision",
    "DraftError",
    "Drafter",
    "DuplicateVoteError",
    "ExpiredEvent",
    "GateOutcome",
    "GatePause",
    "GateStatus",
    "HitlCoordinator",
    "HitlError",
    "HookDelivery",
    "Hooks",
    "InMemoryReviewStore",
    "InvalidDecisionError",
    "InvalidInputError",
    "KeywordRule",
    "LedgerBreak",
    "LedgerReport",
    "NotAuthorizedError",
    "OnTimeout",
    "PauseDisabledError",
    "PauseStyle",
    "PausedEvent",
    "PendingReview",
    "PolicyViolationError",
    "ProcessResult",
    "RegexRule",
    "ReviewEvent",
    "ReviewNotFoundError",
    "ReviewRecord",
    "ReviewStore",
    "Reviewer",
    "RoleBasedPolicy",
    "RuleResult",
    "Severity",
    "StaleReviewError",
    "StoreError",
    "ThreadBusyError",
    "UnsupportedMediaTypeError",
    "Verdict",
    "Vote",
    "build_compliance_graph",
    "canonical_reviewer_id",
    "compliance_gate",
    "mask_url",
    "merge_metadata",
    "open_backend",
    "protect_stream",
]
