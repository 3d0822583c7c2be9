"""An evidence pack's document: one review's record gathered from the library's own reads.

Everything comes from public store reads and the coordinator's evidence
functions: the review row (or, for an earlier review of the thread, its
`paused` row and the paused checkpoint), the thread's audit rows, the
`replied` row of the review's turn, the decision rows, `verify_audit` of the
thread and of the whole store, and the store's newest sealed head. The
document is plain JSON data; [`EvidencePack`][hitl_compliance.EvidencePack]
renders and writes it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hitl_compliance import _validate
from hitl_compliance._coordination import evidence
from hitl_compliance._coordination.context import Context, check_thread_id
from hitl_compliance._coordination.retention import kept_state
from hitl_compliance._decision_kinds import decision_events
from hitl_compliance.errors import ReviewNotFoundError
from hitl_compliance.evidence_pack import EVIDENCE_PACK_FORMAT, EvidencePack, text_of
from hitl_compliance.ledger import LedgerReport, format_at
from hitl_compliance.models import AuditRecord, ReviewRecord, sha256_text
from hitl_compliance.retention import RetentionStore
from hitl_compliance.rules import RuleResult
from hitl_compliance.signing import KeySource
from hitl_compliance.stores.base import SealStore

__all__ = ["evidence_pack"]

_DECISION_ROWS = frozenset(
    {
        "paused",
        "voted",
        "denied",
        "approved",
        "rejected",
        "expired",
        "escalated",
        "dated",
        "recovered",
        "replied",
        "assigned",
        "reassigned",
    }
)
"""The rows "Who decided, when" lists: the review's events and its turn's reply."""


async def evidence_pack(
    ctx: Context,
    thread_id: str,
    review_id: str | None,
    *,
    public_key: KeySource | Sequence[KeySource] | None = None,
) -> EvidencePack:
    """The pack of the thread's review `review_id` (its latest review when None).

    Raises:
        ReviewNotFoundError: the thread never paused, or `review_id` is not one of its reviews.
    """
    check_thread_id(thread_id)
    if review_id is not None:
        _validate.text("review_id", review_id)
    rows = await ctx.reviews.audit_log(thread_id)
    review = await _review(ctx, thread_id, review_id, rows)
    own = _own_rows(review, rows)
    thread_report = await evidence.verify_audit(ctx, thread_id)
    store_report = await evidence.verify_audit(ctx, None, public_key=public_key)
    seals = await ctx.reviews.seals() if isinstance(ctx.reviews, SealStore) else []
    data = _document(review, own, thread_report, store_report, seals[-1:], ctx)
    return EvidencePack.from_data(data)


async def _review(
    ctx: Context, thread_id: str, review_id: str | None, rows: list[AuditRecord]
) -> ReviewRecord:
    """The review the pack is of: the row the store keeps, or one rebuilt from its ledger rows."""
    latest = await ctx.reviews.get_review(thread_id)
    if review_id is None or (latest is not None and latest.review_id == review_id):
        if latest is None:
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} has no review: it never paused, so there is no "
                "evidence pack to make. Check the thread id (coord.audit_log lists its rows).",
                thread_id=thread_id,
            )
        return latest
    for opened in await ctx.reviews.open_reviews(thread_id):
        if opened.review_id == review_id:
            return opened
    paused = next((r for r in rows if r.review_id == review_id and r.event == "paused"), None)
    if paused is None or paused.checkpoint_id is None:
        raise ReviewNotFoundError(
            f"Thread {thread_id!r} has no review {review_id!r}. Its reviews are the "
            "review_id of its `paused` audit rows (coord.audit_log).",
            thread_id=thread_id,
        )
    return await _earlier_review(ctx, paused, rows)


async def _earlier_review(
    ctx: Context, paused: AuditRecord, rows: list[AuditRecord]
) -> ReviewRecord:
    """An earlier, decided review of the thread: its ledger rows and its paused checkpoint.

    The store keeps a thread's latest and open review rows; an earlier one is
    read back from what the ledger committed to and the checkpoint it paused at.
    """
    status_of = {event: status for status, event in decision_events().items()}
    decided = next(
        (r for r in rows if r.review_id == paused.review_id and r.event in status_of), None
    )
    payload = paused.payload
    record = ReviewRecord(
        review_id=str(paused.review_id),
        thread_id=paused.thread_id,
        checkpoint_id=str(paused.checkpoint_id),
        status="pending" if decided is None else status_of[decided.event],
        violations=[RuleResult.from_dict(v) for v in payload.get("violations") or []],
        requested_at=paused.at,
        requested_by=payload.get("requested_by"),
        approvals_required=int(payload.get("approvals_required") or 1),
        decided_at=None if decided is None else decided.at,
        reviewer=None if decided is None else decided.actor,
        decision=None if decided is None else dict(decided.payload),
    )
    kept = None
    if isinstance(ctx.reviews, RetentionStore):
        kept = await ctx.reviews.evidence(record.review_id)
    state = kept_state(ctx, kept) if kept is not None else await ctx.driver.paused_state(record)
    return record.model_copy(
        update={
            "customer_message": state.customer_message,
            "draft_response": state.draft_response or "",
        }
    )


def _own_rows(review: ReviewRecord, rows: list[AuditRecord]) -> list[AuditRecord]:
    """The review's rows and its turn's `replied` row: the first one after it paused.

    A `replied` row names no review (a gate's turn may decide several reviews,
    and replies once when the last is decided); a thread's next turn cannot
    start before its turn replied, so the first `replied` row after the
    review's `paused` row is its turn's.
    """
    own = [r for r in rows if r.review_id == review.review_id]
    if not own:
        return []
    start = own[0].seq
    replied = next((r for r in rows if r.seq > start and r.event == "replied"), None)
    if replied is not None:
        own.append(replied)
    return sorted(own, key=lambda r: r.seq)


def _document(
    review: ReviewRecord,
    own: list[AuditRecord],
    thread_report: LedgerReport,
    store_report: LedgerReport,
    seals: Sequence[Any],
    ctx: Context,
) -> dict[str, Any]:
    """The pack's JSON document (plain data, deterministic for the same records)."""
    replied = next((r for r in own if r.event == "replied"), None)
    paused = next((r for r in own if r.event == "paused"), None)
    decision_row = next((r for r in own if r.event in decision_events().values()), None)
    draft = text_of(review.draft_response)
    findings = [f.to_dict() for f in review.violations]
    decision = dict(decision_row.payload) if decision_row is not None else review.decision or {}
    return {
        "format": EVIDENCE_PACK_FORMAT,
        "thread_id": review.thread_id,
        "review_id": review.review_id,
        "checkpoint_id": review.checkpoint_id,
        "customer_message": text_of(review.customer_message),
        "draft": {
            "text": draft,
            "sha256": sha256_text(draft),
            "highlights": highlights(draft, review.violations),
            # False: the text shown is not the one the ledger committed to (an earlier
            # gate review, whose text no store row keeps, or a review row changed since).
            "matches_ledger": paused is not None
            and paused.payload.get("draft_sha256") == sha256_text(draft),
        },
        "findings": findings,
        "rules": [] if replied is None else list(replied.payload.get("rules") or []),
        "ruleset": None if replied is None else replied.payload.get("ruleset"),
        "drafter": None if replied is None else replied.payload.get("drafter"),
        "review": {
            "status": review.status,
            "requested_at": format_at(review.requested_at),
            "requested_by": review.requested_by,
            "approvals_required": review.approvals_required,
            "deadline": None if review.deadline is None else format_at(review.deadline),
            "decided_at": None if review.decided_at is None else format_at(review.decided_at),
            "reviewer": review.reviewer,
        },
        "decisions": [_decision(row, ctx) for row in own if row.event in _DECISION_ROWS],
        "edit": _edit(draft, decision),
        "delivered": _delivered(replied, decision),
        "ledger": [_ledger_row(row) for row in own],
        "verification": _verification(own, thread_report, store_report, seals),
    }


def highlights(text: str, findings: Sequence[RuleResult]) -> list[dict[str, Any]]:
    """Where each finding's evidence occurs in `text`: `{start, end, rules}`, merged, in order."""
    spans: list[tuple[int, int, str]] = []
    for finding in findings:
        for quoted in finding.evidence:
            if not quoted:
                continue
            for match in re.finditer(re.escape(quoted), text, flags=re.IGNORECASE):
                spans.append((match.start(), match.end(), finding.rule))
    merged: list[dict[str, Any]] = []
    for start, end, rule in sorted(spans):
        if merged and start < merged[-1]["end"]:
            last = merged[-1]
            last["end"] = max(last["end"], end)
            if rule not in last["rules"]:
                last["rules"].append(rule)
        else:
            merged.append({"start": start, "end": end, "rules": [rule]})
    for span in merged:
        span["rules"].sort()
    return merged


_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
_REWRITE = 0.5
"""Below this share of words kept, an edit is shown as a rewrite rather than word by word."""


def word_diff(before: str, after: str) -> list[list[str]]:
    """`before` -> `after` as `[op, text]` runs: `=` kept, `-` removed, `+` added."""
    old, new = _TOKENS.findall(before), _TOKENS.findall(after)
    runs: list[list[str]] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    if matcher.ratio() < _REWRITE:
        # A rewrite read word by word interleaves two texts: show the old, then the new.
        return [[op, text] for op, text in (("-", before), ("+", after)) if text]
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            runs.append(["=", "".join(old[i1:i2])])
            continue
        if i2 > i1:
            runs.append(["-", "".join(old[i1:i2])])
        if j2 > j1:
            runs.append(["+", "".join(new[j1:j2])])
    return runs


def _edit(draft: str, decision: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reviewer's edit of the draft (None when the draft was not edited)."""
    edited = decision.get("response")
    if edited is None or text_of(edited) == draft:
        return None
    after = text_of(edited)
    return {
        "edited": after,
        "sha256": sha256_text(after),
        "diff": word_diff(draft, after),
        "findings_on_edit": list(decision.get("edit_findings") or []),
    }


def _delivered(replied: AuditRecord | None, decision: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the customer got, per the turn's `replied` row (and the text where kept)."""
    if replied is None:
        return None
    recorded = replied.payload.get("delivered_sha256")
    text = decision.get("delivered")
    shown = None if text is None else text_of(text)
    return {
        "outcome": replied.payload.get("outcome"),
        "decided_by": replied.payload.get("decided_by"),
        "sha256": recorded,
        "text": shown,
        "text_matches_ledger": shown is not None and sha256_text(shown) == recorded,
    }


def _decision(row: AuditRecord, ctx: Context) -> dict[str, Any]:
    payload = row.payload
    code = payload.get("reason_code")
    known = ctx.reason_codes.get(code) if isinstance(code, str) else None
    return {
        "seq": row.seq,
        "at": format_at(row.at),
        "event": row.event,
        "actor": row.actor,
        "roles": [str(r) for r in payload.get("roles") or []],
        "reason_code": code,
        "reason_label": None if known is None else known.label,
        "reason": None if payload.get("reason") is None else text_of(payload.get("reason")),
        "outcome": payload.get("outcome"),
    }


def _ledger_row(row: AuditRecord) -> dict[str, Any]:
    full = row.to_row()
    return {name: full[name] for name in sorted(full)}


def _report(report: LedgerReport) -> dict[str, Any]:
    broken = report.first_broken
    return {
        "ok": report.ok,
        "checked": report.checked,
        "head_hash": report.head_hash,
        "first_broken": None
        if broken is None
        else {"seq": broken.seq, "thread_id": broken.thread_id, "reason": broken.reason},
        "proof": None if report.proof is None else report.proof.statements(),
        "signatures_checked": report.proof is not None and report.proof.signatures_checked,
    }


def _verification(
    own: list[AuditRecord],
    thread_report: LedgerReport,
    store_report: LedgerReport,
    seals: Sequence[Any],
) -> dict[str, Any]:
    sealed = None
    if seals:
        head = seals[-1]
        last = max((r.seq for r in own), default=0)
        sealed = {**head.to_record(), "covers_review": head.seq >= last}
        del sealed["type"]
    return {
        "thread": _report(thread_report),
        "store": _report(store_report),
        "sealed_head": sealed,
    }
