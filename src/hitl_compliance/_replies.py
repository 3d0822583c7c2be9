"""One ledger record for every reply a turn sends: delivered, edited, blocked or rejected.

Outcome monitoring (Consumer Duty) and automatic logging over the system's
lifetime (EU AI Act Art. 12) need a record of the replies nobody reviewed as
much as of those somebody did. The step that sends a turn's reply (the factory
graph's `deliver` / `rejected`, a gate's `apply`) appends one `replied` event
to the store attached to the graph (by a coordinator, or `compliance_gate(...,
reviews=...)`). Its payload holds no customer text, only the delivered text's
SHA-256, so the record outlives an erasure of the text:

- `outcome`: `delivered`, `edited`, `blocked`, `rejected` or `expired`;
- `delivered_sha256`: SHA-256 of the UTF-8 text sent (None when nothing was);
- `rules`: the `{"name", "version"}` of each rule evaluated, and `ruleset` their
  [`ruleset_fingerprint`][hitl_compliance.ruleset_fingerprint];
- `drafter`: the model that wrote the draft where known (`metadata.drafted_by`,
  an `AIMessage`'s `response_metadata["model_name"]`), else None;
- `decided_by`: `auto` (the rules alone), the reviewer, or `system:sla`;
- `turn`: the same key on every re-execution of the sending step (a step re-run
  after a crash between the append and LangGraph's checkpoint write appends a
  second row with the same `turn`; readers count a turn once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from hitl_compliance import _personal
from hitl_compliance._authority import DecisionAuthority, ready_store
from hitl_compliance.rules import rule_version, ruleset_fingerprint

__all__ = [
    "AUTO",
    "REPLY_EVENT",
    "SLA_ACTOR",
    "ReplyOutcome",
    "RuleSet",
    "outcome_of",
    "record_reply",
    "sha256_text",
]

logger = logging.getLogger("hitl_compliance")

REPLY_EVENT = "replied"
"""The audit event of a turn's reply."""

AUTO = "auto"
"""`decided_by` of a reply the rules alone decided."""

SLA_ACTOR = "system:sla"
"""The reviewer and audit actor of every SLA outcome (its one home; `coordinator.SLA_ACTOR`)."""

ReplyOutcome = Literal["delivered", "edited", "blocked", "rejected", "expired"]
"""What became of a turn's draft."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules a graph evaluates, as every reply record names them (computed once per build)."""

    rules: tuple[tuple[str, str], ...]
    fingerprint: str

    @classmethod
    def of(cls, rules: Iterable[object]) -> RuleSet:
        """The `(name, version)` of each rule, in order, and the set's fingerprint."""
        listed = tuple(rules)
        named = tuple((str(getattr(r, "name", "")), rule_version(r)) for r in listed)
        return cls(named, ruleset_fingerprint(listed))


def outcome_of(*, sent: bool, edited: bool, decided_by: str) -> ReplyOutcome:
    """The outcome of a turn from whether its draft went out (`sent`) and who decided it."""
    if sent:
        return "edited" if edited else "delivered"
    if decided_by == AUTO:
        return "blocked"
    return "expired" if decided_by == SLA_ACTOR else "rejected"


def sha256_text(text: str | None) -> str | None:
    """SHA-256 of `text` as UTF-8, hex; None for no text."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


async def record_reply(
    authority: DecisionAuthority | None,
    *,
    thread_id: str,
    review_id: str | None,
    checkpoint_id: str | None,
    outcome: ReplyOutcome,
    delivered: str | None,
    ruleset: RuleSet,
    drafter: str | None,
    decided_by: str,
    turn: str,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    subject: str | None = None,
    product: str | None = None,
) -> None:
    """Append the turn's `replied` event to the authority's store (nothing without a store).

    A reply the rules delivered alone is then offered to the authority's QA
    sampler (a coordinator's `qa_sampling`), with the `replied` row's seq and
    the turn's `product` (its stratum).
    """
    if authority is None:
        return
    payload: dict[str, Any] = {
        "outcome": outcome,
        "delivered_sha256": sha256_text(delivered),
        "rules": [{"name": name, "version": version} for name, version in ruleset.rules],
        "ruleset": ruleset.fingerprint,
        "drafter": drafter,
        "decided_by": decided_by,
        "turn": turn,
    }
    if tool_calls:
        payload["tool_calls"] = [dict(call) for call in tool_calls]
    clock = getattr(authority, "now", None)  # a coordinator's (injectable) clock
    at = clock() if callable(clock) else datetime.now(timezone.utc)
    store = await ready_store(authority)
    # The sent text's hash is salted: after an erasure nothing confirms a guess of the text.
    payload = await _personal.sealed(
        store, payload, _personal.REPLY_PERSONAL, thread_id=thread_id, subject=subject
    )
    record = await store.append_audit(
        thread_id=thread_id,
        review_id=review_id,
        checkpoint_id=checkpoint_id,
        event=REPLY_EVENT,
        actor=decided_by,
        payload=payload,
        at=at,
    )
    sampler = getattr(authority, "sample_for_qa", None)
    if outcome == "delivered" and decided_by == AUTO and callable(sampler):
        await sampler(
            thread_id=thread_id,
            turn=turn,
            rules=tuple(name for name, _ in ruleset.rules),
            product=product,
            reply_seq=record.seq,
        )
