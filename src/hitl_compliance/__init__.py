"""hitl-compliance: human-in-the-loop compliance graphs on LangGraph.

A risky AI-drafted reply never reaches a customer until a compliance officer
approves, edits or rejects it, with a durable record of who decided what.

`ComplianceMiddleware` (for LangChain's `create_agent`) needs the `langchain`
extra, so it is not in `__all__` (a star import must work without it):
import it from `hitl_compliance.middleware`, or as `hitl_compliance.ComplianceMiddleware`,
which loads that module on first use.
"""

from hitl_compliance.assignment import (
    DELEGATION_THREAD,
    Assignment,
    AssignmentRule,
    AssignmentStore,
    Delegation,
    Routing,
)
from hitl_compliance.authority import COORDINATOR_PERMISSION, attach_authority
from hitl_compliance.backends import Backend, mask_url, open_backend, review_store
from hitl_compliance.coordinator import Clock, HitlCoordinator, OnTimeout
from hitl_compliance.erasure import (
    ERASED_TEXT,
    ErasureReport,
    PersonalStore,
    PersonalValue,
    ThreadErasure,
)
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    CrossOriginRequestError,
    DraftError,
    DuplicateVoteError,
    HitlError,
    InputTooLargeError,
    InvalidDecisionError,
    InvalidInputError,
    LedgerHeadMissingError,
    LedgerValueError,
    LegalHoldError,
    NotAuthorizedError,
    PauseDisabledError,
    PolicyViolationError,
    QaAlreadyRecordedError,
    QaReviewNotFoundError,
    QuorumPendingError,
    ReasonCodeError,
    ReviewIdRequiredError,
    ReviewNotFoundError,
    SigningUnavailableError,
    StaleReviewError,
    StoreError,
    TamperedError,
    ThreadBusyError,
    UnsupportedMediaTypeError,
)
from hitl_compliance.evidence_pack import EvidenceFiles, EvidencePack
from hitl_compliance.gate import (
    GateItem,
    GateOutcome,
    GatePause,
    GateStatus,
    GateTarget,
    compliance_gate,
    gate_pauses,
    protect_stream,
    route_after_gate,
)
from hitl_compliance.graph import (
    NODES,
    ComplianceGraph,
    Drafter,
    PauseStyle,
    build_compliance_graph,
)
from hitl_compliance.hooks import DecidedEvent, ExpiredEvent, Hooks, PausedEvent, ReviewEvent
from hitl_compliance.ledger import LedgerBreak, LedgerReport, SealedHead, SealProof
from hitl_compliance.limits import InputLimits
from hitl_compliance.models import (
    AuditRecord,
    HookDelivery,
    PendingReview,
    ProcessResult,
    ReviewRecord,
    Vote,
)
from hitl_compliance.oversight import (
    CodeCount,
    OutcomeStats,
    OversightReport,
    OversightThresholds,
    PeriodStats,
    ReviewerStats,
    RubberStampFlag,
    RuleStats,
)
from hitl_compliance.platform import PLATFORM_CHECKPOINTER
from hitl_compliance.policy import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    Reviewer,
    RoleBasedPolicy,
    canonical_reviewer_id,
)
from hitl_compliance.qa import QaReview, QaRuleCount, QaSampling, QaStore, QaVerdict
from hitl_compliance.reasons import (
    FCA_RETAIL_REASON_CODES,
    ReasonAction,
    ReasonCode,
    ReasonCodeCount,
    ReasonCodes,
    ReasonPolicy,
)
from hitl_compliance.retention import (
    Hold,
    RecordClass,
    RetentionPolicy,
    RetentionReport,
    RetentionStore,
)
from hitl_compliance.rules import (
    ComplianceRule,
    KeywordRule,
    RegexRule,
    RuleResult,
    Severity,
    ToolCallRule,
    Verdict,
    rule_version,
    ruleset_fingerprint,
)
from hitl_compliance.signing import (
    Anchor,
    Ed25519Signer,
    FileAnchor,
    PublicKey,
    Sealing,
    Signer,
    load_public_key,
)
from hitl_compliance.state import ComplianceState, Decision, GateView, merge_metadata
from hitl_compliance.stops import DeliveryStopStore, StopScope, StopSwitch
from hitl_compliance.stores import InMemoryReviewStore, ReviewStore, SealStore
from hitl_compliance.telemetry import INSTRUMENTATION_NAME, Telemetry

__all__ = [
    "COORDINATOR_PERMISSION",
    "DELEGATION_THREAD",
    "ERASED_TEXT",
    "FCA_RETAIL_REASON_CODES",
    "INSTRUMENTATION_NAME",
    "NODES",
    "PLATFORM_CHECKPOINTER",
    "AllowAllPolicy",
    "AlreadyDecidedError",
    "Anchor",
    "ApprovalPolicy",
    "Assignment",
    "AssignmentRule",
    "AssignmentStore",
    "AuditRecord",
    "Authorization",
    "Backend",
    "Clock",
    "CodeCount",
    "ComplianceGraph",
    "ComplianceRule",
    "ComplianceState",
    "ConfigurationError",
    "CrossOriginRequestError",
    "DecidedEvent",
    "Decision",
    "Delegation",
    "DeliveryStopStore",
    "DraftError",
    "Drafter",
    "DuplicateVoteError",
    "Ed25519Signer",
    "ErasureReport",
    "EvidenceFiles",
    "EvidencePack",
    "ExpiredEvent",
    "FileAnchor",
    "GateItem",
    "GateOutcome",
    "GatePause",
    "GateStatus",
    "GateTarget",
    "GateView",
    "HitlCoordinator",
    "HitlError",
    "Hold",
    "HookDelivery",
    "Hooks",
    "InMemoryReviewStore",
    "InputLimits",
    "InputTooLargeError",
    "InvalidDecisionError",
    "InvalidInputError",
    "KeywordRule",
    "LedgerBreak",
    "LedgerHeadMissingError",
    "LedgerReport",
    "LedgerValueError",
    "LegalHoldError",
    "NotAuthorizedError",
    "OnTimeout",
    "OutcomeStats",
    "OversightReport",
    "OversightThresholds",
    "PauseDisabledError",
    "PauseStyle",
    "PausedEvent",
    "PendingReview",
    "PeriodStats",
    "PersonalStore",
    "PersonalValue",
    "PolicyViolationError",
    "ProcessResult",
    "PublicKey",
    "QaAlreadyRecordedError",
    "QaReview",
    "QaReviewNotFoundError",
    "QaRuleCount",
    "QaSampling",
    "QaStore",
    "QaVerdict",
    "QuorumPendingError",
    "ReasonAction",
    "ReasonCode",
    "ReasonCodeCount",
    "ReasonCodeError",
    "ReasonCodes",
    "ReasonPolicy",
    "RecordClass",
    "RegexRule",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionStore",
    "ReviewEvent",
    "ReviewIdRequiredError",
    "ReviewNotFoundError",
    "ReviewRecord",
    "ReviewStore",
    "Reviewer",
    "ReviewerStats",
    "RoleBasedPolicy",
    "Routing",
    "RubberStampFlag",
    "RuleResult",
    "RuleStats",
    "SealProof",
    "SealStore",
    "SealedHead",
    "Sealing",
    "Severity",
    "Signer",
    "SigningUnavailableError",
    "StaleReviewError",
    "StopScope",
    "StopSwitch",
    "StoreError",
    "TamperedError",
    "Telemetry",
    "ThreadBusyError",
    "ThreadErasure",
    "ToolCallRule",
    "UnsupportedMediaTypeError",
    "Verdict",
    "Vote",
    "attach_authority",
    "build_compliance_graph",
    "canonical_reviewer_id",
    "compliance_gate",
    "gate_pauses",
    "load_public_key",
    "mask_url",
    "merge_metadata",
    "open_backend",
    "protect_stream",
    "review_store",
    "route_after_gate",
    "rule_version",
    "ruleset_fingerprint",
]


def __getattr__(name: str) -> object:
    # Loaded on first use, never bound here: the core imports without LangChain.
    if name == "ComplianceMiddleware":
        from hitl_compliance.middleware import ComplianceMiddleware

        return ComplianceMiddleware
    raise AttributeError(f"module 'hitl_compliance' has no attribute {name!r}")
