"""What a review's `paused` audit row commits to: the content authorisation reads.

The review row (`hitl_reviews`) is outside the hash chain, yet `approve`,
`reject`, `may_decide` and the SLA decide from it. So the `paused` row's
payload carries that content (draft hash, findings, requester, quorum,
deadline) and `commitment`, the SHA-256 of its canonical JSON; the chain then
protects it, and [`integrity`][hitl_compliance._coordination.integrity]
compares a row read back with it before acting.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from hitl_compliance.ledger import format_at
from hitl_compliance.models import ReviewRecord, sha256_text

__all__ = ["COMMITTED_FIELDS", "commitment", "deadline_text", "paused_payload", "review_content"]

COMMITTED_FIELDS = ("draft_sha256", "violations", "requested_by", "approvals_required", "deadline")
"""The fields of a review's content its `paused` row commits to, in the order they are named."""


def deadline_text(deadline: datetime | None) -> str | None:
    """A deadline as the ledger writes timestamps (ISO-8601 UTC, microseconds), or None."""
    return None if deadline is None else format_at(deadline)


def review_content(review: ReviewRecord) -> dict[str, Any]:
    """The authorisation-relevant content of a review row, as plain JSON."""
    return {
        "draft_sha256": sha256_text(review.draft_response),
        # Plain JSON values already (evidence as a list), as a store keeps them.
        "violations": [v.to_dict() for v in review.violations],
        "requested_by": review.requested_by,
        "approvals_required": review.approvals_required,
        "deadline": deadline_text(review.deadline),
    }


def commitment(content: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of `content`."""
    text = json.dumps(
        {name: content.get(name) for name in COMMITTED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def paused_payload(review: ReviewRecord) -> dict[str, Any]:
    """The payload of a review's `paused` audit row: its content and the commitment to it."""
    content = review_content(review)
    return {**content, "commitment": commitment(content)}
