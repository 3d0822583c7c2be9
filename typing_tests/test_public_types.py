"""Static checks of the public types; mypy checks this module, nothing ever runs it.

Each `assert_type` fails type checking, not a test run, when a public
signature drifts.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langgraph.checkpoint.memory import InMemorySaver
from typing_extensions import assert_type

from hitl_compliance import (
    FCA_RETAIL_REASON_CODES,
    NODES,
    PLATFORM_CHECKPOINTER,
    Assignment,
    AuditRecord,
    ComplianceGraph,
    ComplianceRule,
    ComplianceState,
    DecidedEvent,
    Decision,
    Delegation,
    Ed25519Signer,
    ErasureReport,
    EvidenceFiles,
    EvidencePack,
    FileAnchor,
    HitlCoordinator,
    Hold,
    InMemoryReviewStore,
    KeywordRule,
    LedgerReport,
    LedgerValueError,
    OversightReport,
    OversightThresholds,
    PendingReview,
    ProcessResult,
    PublicKey,
    QaReview,
    QaRuleCount,
    QaSampling,
    QaStore,
    QaVerdict,
    ReasonCode,
    ReasonCodeCount,
    ReasonCodes,
    ReasonPolicy,
    RegexRule,
    RetentionPolicy,
    RetentionReport,
    Reviewer,
    ReviewerStats,
    ReviewStore,
    Routing,
    RuleResult,
    SealedHead,
    Sealing,
    SealProof,
    StopScope,
    StopSwitch,
    Telemetry,
    ThreadErasure,
    Verdict,
    Vote,
    build_compliance_graph,
    canonical_reviewer_id,
    load_public_key,
    merge_metadata,
)
from hitl_compliance.models import HookDelivery
from hitl_compliance.platform import PlatformCheckpointer
from hitl_compliance.stores import PendingCounter


def _draft(state: ComplianceState) -> str:
    return state.customer_message


async def _adraft(state: ComplianceState) -> str:
    return state.customer_message


async def _mdraft(state: ComplianceState) -> AIMessage:
    return AIMessage(state.customer_message)


class _BankState(ComplianceState):
    customer_id: str = ""


class _CustomRule:
    name = "custom"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        return RuleResult(self.name, "pass")


def check_build() -> None:
    graph = build_compliance_graph(
        _draft,
        rules=[KeywordRule("k", ["x"]), RegexRule("r", re.compile("y")), _CustomRule()],
        checkpointer=InMemorySaver(),
        style="command_resume",
        state_schema=_BankState,
        rejection_message="Sorry.",
    )
    assert_type(graph, ComplianceGraph)
    assert_type(build_compliance_graph(_adraft, checkpointer=None, pause=False), ComplianceGraph)
    # A drafter may be a chat model or chain, or return a message.
    chat = GenericFakeChatModel(messages=iter(["hi"]))
    assert_type(build_compliance_graph(chat, checkpointer=None, pause=False), ComplianceGraph)
    chain = ChatPromptTemplate.from_template("{customer_message}") | chat
    assert_type(build_compliance_graph(chain, checkpointer=None, pause=False), ComplianceGraph)
    assert_type(build_compliance_graph(_mdraft, checkpointer=None, pause=False), ComplianceGraph)
    assert_type(NODES, tuple[str, str, str, str, str])
    # LangGraph Server supplies persistence: the sentinel in place of a saver.
    served = build_compliance_graph(_draft, checkpointer=PLATFORM_CHECKPOINTER)
    assert_type(served, ComplianceGraph)
    assert_type(PLATFORM_CHECKPOINTER, Literal[PlatformCheckpointer.PLATFORM])


async def check_coordinator(graph: ComplianceGraph) -> None:
    coord = HitlCoordinator(graph, reviews=InMemoryReviewStore())
    assert_type(coord.graph, ComplianceGraph)
    assert_type(coord.reviews, ReviewStore)
    assert_type(await coord.process("t", "hi", requested_by="agent"), ProcessResult)
    assert_type(await coord.pending(), list[PendingReview])
    assert_type(await coord.pending(limit=5), list[PendingReview])
    assert_type(await coord.approve("t", reviewer="a", response="r", metadata={}), ProcessResult)
    assert_type(await coord.reject("t", reviewer="a", reason="no"), ProcessResult)
    assert_type(await coord.recover(), list[ProcessResult])
    assert_type(await coord.audit_log("t"), list[AuditRecord])
    assert_type(await coord.state_at_decision("t"), ComplianceState)
    pack = await coord.evidence_pack("t", review_id="r")
    assert_type(pack, EvidencePack)
    assert_type(pack.manifest_sha256, str)
    assert_type(pack.data, dict[str, Any])
    assert_type(pack.write("out"), EvidenceFiles)
    assert_type(pack.write("out").pdf, Path | None)
    assert_type(await coord.apply_retention(), RetentionReport)
    assert_type(await coord.place_hold("t", reason="enquiry", by="legal"), Hold)
    assert_type(await coord.release_hold("t", by="legal"), Hold | None)
    assert_type(await coord.holds(), list[Hold])
    head = Reviewer("head", roles=frozenset({"compliance-head"}))
    stop = await coord.stop_delivery(StopScope.product("isa"), by=head, reason="probe")
    assert_type(stop, StopSwitch)
    assert_type(stop.scope, StopScope)
    assert_type(stop.since, datetime)
    assert_type(await coord.resume_delivery("all", by=head), StopSwitch | None)
    assert_type(await coord.stops(), list[StopSwitch])
    assert_type(await coord.reassign("t", to="bob", by="lead", reason="cover"), Assignment)
    until = datetime(2031, 1, 1, tzinfo=timezone.utc)
    assert_type(await coord.delegate("bob", "cat", until=until, by="bob"), Delegation)
    assert_type(await coord.revoke_delegation("bob", by="bob"), Delegation | None)
    assert_type(await coord.delegations(), list[Delegation])
    assert_type(coord.routing, Routing | None)
    assert_type((await coord.pending(assigned_to="bob"))[0].assigned_to, str | None)
    erased = await coord.erase_subject("customer-42")
    assert_type(erased, ErasureReport)
    assert_type(erased.threads, tuple[ThreadErasure, ...])
    assert_type(RetentionPolicy("audit", floor=timedelta(0), ceiling=timedelta(1)).floor, timedelta)
    assert_type(coord.reason_codes, ReasonCodes)
    assert_type(coord.reason_policy, ReasonPolicy)
    assert_type(await coord.reject("t", reviewer="a", reason_code="unfair_terms"), ProcessResult)
    assert_type(await coord.reason_code_counts(), tuple[ReasonCodeCount, ...])
    report = await coord.oversight_report(
        since=datetime.now(timezone.utc), until=datetime.now(timezone.utc)
    )
    assert_type(report, OversightReport)
    assert_type(report.reviewers, tuple[ReviewerStats, ...])
    assert_type(report.flags[0].review_ids, tuple[str, ...])
    assert_type(OversightThresholds().reading_floor(600), float)
    assert_type(FCA_RETAIL_REASON_CODES.get("other"), ReasonCode | None)


async def check_qa(graph: ComplianceGraph) -> None:
    qa = QaSampling(rate=0.02, watch=frozenset({"crypto_isa"}), seed="q1")
    coord = HitlCoordinator(graph, reviews=InMemoryReviewStore(), qa_sampling=qa)
    assert_type(coord.qa_sampling, QaSampling | None)
    assert_type(qa.rate_for("isa"), float)
    assert_type(qa.selects("t", "1", "isa"), bool)
    assert_type(await coord.qa_pending(limit=10), list[QaReview])
    judged = await coord.qa_verdict("qa:t:1", reviewer="qa", verdict="disagree", reason_code="x")
    assert_type(judged, QaReview)
    assert_type(judged.verdict, QaVerdict | None)
    counts = await coord.qa_disagreement()
    assert_type(counts, tuple[QaRuleCount, ...])
    assert_type(counts[0].disagreement_rate, float | None)
    assert_type(isinstance(coord.reviews, QaStore), bool)


async def check_hook_outbox(store: ReviewStore, event: DecidedEvent) -> None:
    now = datetime.now(timezone.utc)
    claimed = await store.claim_hooks(owner="me", now=now, lease_until=now, hooks=None)
    assert_type(claimed, list[HookDelivery])
    assert_type(claimed[0].lease_owner, str | None)
    assert_type(claimed[0].lease_until, datetime | None)
    assert_type(await store.renew_hook("d", owner="me", lease_until=now), bool)
    assert_type(await store.finish_hook("d", ok=True, error=None, now=now, owner="me"), bool)
    assert_type(event.delivery_id, str)


def check_results(result: ProcessResult, review: PendingReview, record: AuditRecord) -> None:
    assert_type(result.status, Literal["paused", "completed", "rejected"])
    assert_type(result.awaiting_approval, bool)
    assert_type(result.agent_response, str | None)
    assert_type(result.violations, list[RuleResult])
    assert_type(review.draft_sha256, str)
    assert_type(review.requested_at, datetime)
    assert_type(record.event, str)
    assert_type(record.seq, int)
    assert_type(record.ledger_format, int)


def check_ledger_value_error(error: LedgerValueError) -> None:
    assert_type(error.event, str)
    assert_type(error.path, str)
    assert_type(error.thread_id, str | None)


def check_rule_result() -> None:
    result = RuleResult("r", "review", "why", ("span",))
    assert_type(result.rule, str)
    assert_type(result.verdict, Verdict)
    assert_type(result.reason, str)
    assert_type(result.evidence, tuple[str, ...])
    assert_type(result.to_dict(), dict[str, Any])
    assert_type(RuleResult.from_dict({"rule": "r", "verdict": "pass"}), RuleResult)
    rule: ComplianceRule = KeywordRule("k", ["x"], verdict="block")
    assert_type(rule.name, str)
    exact = KeywordRule("k", ["x"], exact=True)
    assert_type(exact.exact, bool)
    assert_type(RegexRule("r", "x", exact=True).exact, bool)


def check_canonical_ids() -> None:
    assert_type(canonical_reviewer_id("Officer@Bank"), str)
    vote = Vote(reviewer="a", at=datetime.now(timezone.utc), text_sha256="0" * 64)
    assert_type(vote.reviewer_key, str)


def check_state() -> None:
    state = ComplianceState()
    assert_type(state.rule_results, list[RuleResult])
    assert_type(merge_metadata({"a": 1}, None), dict[str, Any])
    decision = Decision(approved=True, reviewer="a", decided_at=datetime.now(timezone.utc))
    assert_type(decision.to_state(), dict[str, Any])


def check_rejected() -> None:
    RuleResult("r", "maybe")  # type: ignore[arg-type]
    build_compliance_graph(_draft, checkpointer=None, style="static")  # type: ignore[arg-type]


async def check_signed_heads(coord: HitlCoordinator, store: InMemoryReviewStore) -> None:
    signer = Ed25519Signer.generate()
    assert_type(signer.key_id, str)
    assert_type(signer.sign(b"m"), bytes)
    sealing = Sealing(signer, anchors=(FileAnchor("anchors.jsonl"),))
    store.configure_sealing(sealing)
    assert_type(await store.seal_head(), SealedHead | None)
    assert_type(await store.seals(), list[SealedHead])
    report = await coord.verify_audit(public_key=signer.public_key_pem())
    assert_type(report, LedgerReport)
    assert_type(report.proof, SealProof | None)
    assert_type(load_public_key("key.pem"), PublicKey)


async def check_telemetry(graph: ComplianceGraph, store: InMemoryReviewStore) -> None:
    telemetry = Telemetry(enabled=False)
    assert_type(telemetry.enabled, bool)
    HitlCoordinator(graph, reviews=store, telemetry=telemetry)
    assert isinstance(store, PendingCounter)
    assert_type(await store.count_pending(), int)
