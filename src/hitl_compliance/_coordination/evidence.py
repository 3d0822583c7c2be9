"""The evidence a review leaves: its audit log, ledger check and export, the decided state.

All read-only. The ledger's hash chain is checked by
[`ledger.verify_rows`][hitl_compliance.ledger.verify_rows] (its one
definition); an export is the JSON Lines file that module verifies offline.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from hitl_compliance import _validate
from hitl_compliance._coordination import integrity
from hitl_compliance._coordination.context import Context, check_thread_id
from hitl_compliance._coordination.retention import kept_state
from hitl_compliance.errors import (
    ConfigurationError,
    InvalidInputError,
    ReviewNotFoundError,
    SigningUnavailableError,
)
from hitl_compliance.ledger import LedgerBreak, LedgerReport, check_seals, verify_rows
from hitl_compliance.models import AuditRecord, ReviewRecord
from hitl_compliance.reasons import ReasonCodeCount, count_reason_codes
from hitl_compliance.retention import RetentionStore
from hitl_compliance.signing import Anchor, KeySource, PublicKey, public_keys
from hitl_compliance.state import ComplianceState
from hitl_compliance.stores._seals import head_missing
from hitl_compliance.stores.base import ReasonCodeCounter, SealStore

__all__ = [
    "audit_log",
    "export_audit",
    "reason_code_counts",
    "state_at_decision",
    "verify_audit",
]


async def reason_code_counts(
    ctx: Context, since: datetime | None, until: datetime | None
) -> tuple[ReasonCodeCount, ...]:
    """Decisions' reason codes counted in the store (contract: the coordinator's method)."""
    start = None if since is None else _validate.aware_datetime("since", since)
    end = None if until is None else _validate.aware_datetime("until", until)
    if isinstance(ctx.reviews, ReasonCodeCounter):
        return await ctx.reviews.reason_code_counts(since=start, until=end)
    return count_reason_codes(await ctx.reviews.audit_rows(), since=start, until=end)


async def verify_audit(
    ctx: Context,
    thread_id: str | None,
    *,
    public_key: KeySource | Sequence[KeySource] | None = None,
    anchors: Iterable[Anchor] | None = None,
) -> LedgerReport:
    """Verify one thread's chain, or the whole store's against its head and sealed heads.

    For one thread, its latest and open reviews are also cross-checked with the
    chain ([`integrity`][hitl_compliance._coordination.integrity]): a thread's own
    chain has no head, so a cut at its end (a decided review's decision row
    deleted) shows only as a review row the chain does not account for.
    """
    _validate.optional_thread_id(thread_id)
    keys = [] if public_key is None else _keys(public_key)
    anchors = None if anchors is None else _anchors(anchors)
    records = await ctx.reviews.audit_rows(thread_id)
    rows = [r.to_row() for r in records]
    if thread_id is not None:
        # A thread's chain has no head of its own, and seals sign the store-wide one.
        return await _cross_check(ctx, thread_id, records, verify_rows(rows, thread_id=thread_id))
    head = await ctx.reviews.audit_head()
    report = verify_rows(rows, head=head or (0, ""), thread_id=None)
    if head is None and rows and report.checked == len(rows):
        missing = LedgerBreak(
            int(rows[-1]["seq"]),
            None,
            "the chain head row is missing (deleted outside hitl-compliance): rows "
            "cut from the end with it cannot be seen without a sealed head",
        )
        report = LedgerReport(False, report.checked, missing, report.head_hash)
    store = ctx.reviews
    seals = await store.seals() if isinstance(store, SealStore) else []
    if anchors is None:
        sealing = store.sealing if isinstance(store, SealStore) else None
        anchors = () if sealing is None else sealing.anchors
    anchored = [head for anchor in anchors for head in await anchor.heads()]
    if not keys and not seals and not anchored:
        return report
    verifiers = {key.key_id: key.verify for key in keys}
    return check_seals(rows, report, seals, anchors=anchored, keys=verifiers or None)


_KEY_TYPES = (str, bytes, os.PathLike, PublicKey)


def _keys(source: object) -> list[PublicKey]:
    """The public keys `verify_audit(public_key=...)` names, or InvalidInputError."""
    several = isinstance(source, Sequence) and not isinstance(source, (str, bytes))
    if not isinstance(source, _KEY_TYPES) and not (
        several and source and all(isinstance(k, _KEY_TYPES) for k in source)  # type: ignore[attr-defined]
    ):
        raise InvalidInputError(
            "public_key is an Ed25519 public key: a PEM file's path, PEM bytes or a "
            "PublicKey (or a non-empty list of them after a key rotation); got "
            f"{type(source).__name__}."
        )
    try:
        return public_keys(source)  # type: ignore[arg-type]
    except SigningUnavailableError:
        raise
    except (ConfigurationError, ValueError) as exc:
        raise InvalidInputError(f"public_key: {exc}") from None


def _anchors(given: object) -> list[Anchor]:
    """The anchors `verify_audit(anchors=...)` names, or InvalidInputError."""
    listed = (
        list(given) if isinstance(given, Iterable) and not isinstance(given, (str, bytes)) else None
    )
    if listed is None or not all(callable(getattr(a, "heads", None)) for a in listed):
        raise InvalidInputError(
            "anchors is a list of Anchor objects (with an async heads()), e.g. "
            "[FileAnchor('anchors.jsonl')]."
        )
    return listed


async def _cross_check(
    ctx: Context, thread_id: str, records: list[AuditRecord], report: LedgerReport
) -> LedgerReport:
    """`report`, or the first break of the thread's latest and open reviews with the chain."""
    if not report.ok:
        return report
    breaks = [
        found
        for review in await _latest_reviews(ctx, thread_id)
        if (found := integrity.ledger_break(review, records)) is not None
    ]
    if not breaks:
        return report
    first = min(breaks, key=lambda b: -1 if b.seq is None else b.seq)
    return replace(report, ok=False, first_broken=first)


async def _latest_reviews(ctx: Context, thread_id: str) -> list[ReviewRecord]:
    """The thread's open reviews and its latest one: those at the end of its chain.

    An earlier review was decided before the next pause opened, so its decision
    row has a successor in the thread's chain, whose link shows its deletion.
    """
    found = {r.review_id: r for r in await ctx.reviews.open_reviews(thread_id)}
    latest = await ctx.reviews.get_review(thread_id)
    if latest is not None:
        found.setdefault(latest.review_id, latest)
    return list(found.values())


async def export_audit(ctx: Context, path: str | os.PathLike[str], *, thread_id: str | None) -> int:
    """Write the ledger as JSON Lines (rows, sealed heads, then the head for a whole store).

    With a sealing policy (`on_export`), the current head is sealed first.

    Raises:
        LedgerHeadMissingError: the chain head row was deleted (whole-store export).
    """
    target = _validate.export_path(path)
    _validate.optional_thread_id(thread_id)
    store = ctx.reviews
    if isinstance(store, SealStore) and thread_id is None:
        sealing = store.sealing
        if sealing is not None and sealing.on_export:
            await store.seal_head()
    rows = await store.audit_rows(thread_id)
    head = None if thread_id is not None else await store.audit_head()
    lines = [json.dumps({"type": "row", **r.to_row()}, ensure_ascii=False) for r in rows]
    if thread_id is None:
        if head is None and rows:
            raise head_missing("audit_head")
        if isinstance(store, SealStore):
            lines += [json.dumps(s.to_record()) for s in await store.seals()]
        seq, digest = head or (0, "")
        lines.append(json.dumps({"type": "head", "seq": seq, "hash": digest}))
    text = "".join(line + "\n" for line in lines)
    # Written in a worker thread: an export can be large, and must not block the loop.
    await asyncio.to_thread(_write_text, target, text)
    return len(rows)


async def audit_log(ctx: Context, thread_id: str) -> list[AuditRecord]:
    """The thread's audit records, oldest first."""
    check_thread_id(thread_id)
    return await ctx.reviews.audit_log(thread_id)


async def state_at_decision(ctx: Context, thread_id: str) -> ComplianceState:
    """The state of the paused checkpoint the latest review was decided on, read by id.

    Raises:
        ReviewNotFoundError: the thread never paused for review.
    """
    check_thread_id(thread_id)
    review = await ctx.reviews.get_review(thread_id)
    if review is None:
        raise ReviewNotFoundError(
            f"Thread {thread_id!r} has no review to show.", thread_id=thread_id
        )
    if isinstance(ctx.reviews, RetentionStore):
        # Retention deleted the checkpoints after keeping the decided state with the review.
        kept = await ctx.reviews.evidence(review.review_id)
        if kept is not None:
            return kept_state(ctx, kept)
    return await ctx.driver.paused_state(review)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
