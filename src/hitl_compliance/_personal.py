"""Personal data outside the hashed bytes: salted commitments in the chain, values beside it.

Before an audit row is sealed, each personal value of its payload (the text a
customer got, an edit's diff, a reviewer's edited text, the delivered text's
SHA-256) is replaced by a commitment `{"$personal": SHA-256(salt || JCS(value))}`
under a fresh random 32-byte salt; the salt and the value go to the store's
personal side table ([`PersonalStore`][hitl_compliance.PersonalStore]). The
chain hashes only the commitment, so erasing the side rows
(`coord.erase_subject`) leaves every verifier green, and without the salt
nothing in the chain confirms a guess of the text.

Readers get the payload with the values put back (`AuditRecord.payload`) and,
once erased, `{"$erased": true, "$personal": digest}` in their place;
`AuditRecord.to_row()` gives the sealed (hashed) form plus `personal`, each
digest's salt and value (None once erased), which
[`ledger.verify_rows`][hitl_compliance.ledger.verify_rows] checks against the
commitment (an edited side value breaks verification).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from hitl_compliance._commitments import paused_payload
from hitl_compliance.erasure import ERASED_TEXT, PersonalStore, PersonalValue
from hitl_compliance.errors import ThreadBusyError
from hitl_compliance.ledger import ERASED_KEY, PERSONAL_KEY, personal_digest
from hitl_compliance.models import AuditRecord, ReviewRecord

__all__ = [
    "DECISION_PERSONAL",
    "ERASED_STATE",
    "PAUSED_PERSONAL",
    "REPLY_PERSONAL",
    "SUBJECT_FIELD",
    "commits",
    "digest_of",
    "erased_payload",
    "legacy_seqs",
    "open_review_error",
    "redacted_decision",
    "redacted_review",
    "reveal",
    "revealed",
    "seal",
    "sealed",
    "sealed_paused",
    "subject_of",
]

DECISION_PERSONAL = ("delivered", "diff", "response", "text_sha256")
"""The personal fields of a decision row's payload (the text sent, the edit's diff and text)."""

PAUSED_PERSONAL = ("draft_sha256", "commitment")
"""The personal fields of a `paused` row's payload (unsalted, each confirms a draft guess)."""

REPLY_PERSONAL = ("delivered_sha256",)
"""The personal fields of a `replied` row's payload (the sent text's hash confirms a guess)."""


def digest_of(value: object) -> str | None:
    """The commitment's digest if `value` is a sealed personal value, else None."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(PERSONAL_KEY), str):
        return str(value[PERSONAL_KEY])
    return None


def commits(payload: Mapping[str, Any]) -> bool:
    """Whether the payload holds a commitment to a personal value."""
    return any(digest_of(v) is not None for v in payload.values())


def seal(
    payload: Mapping[str, Any],
    fields: Iterable[str],
    *,
    thread_id: str,
    subject: str | None,
) -> tuple[dict[str, Any], list[PersonalValue]]:
    """`payload` with each non-None personal field replaced by its salted commitment.

    Returns the sealed payload and the values to keep in the side table.
    """
    sealed = dict(payload)
    kept: list[PersonalValue] = []
    for name in fields:
        value = sealed.get(name)
        if value is None or digest_of(value) is not None:
            continue
        salt = os.urandom(32).hex()
        digest = personal_digest(salt, value)
        kept.append(PersonalValue(digest, thread_id, subject, salt, value))
        sealed[name] = {PERSONAL_KEY: digest}
    return sealed, kept


def reveal(
    payload: Mapping[str, Any], values: Mapping[str, PersonalValue]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The payload with its personal values put back, and the row's `personal` proof.

    None when the payload holds no commitment (nothing to reveal). An erased
    value reads `{"$erased": true, "$personal": digest}`; its proof entry is None.
    """
    shown = dict(payload)
    proof: dict[str, Any] = {}
    for name, value in payload.items():
        digest = digest_of(value)
        if digest is None:
            continue
        kept = values.get(digest)
        if kept is None:
            shown[name] = {ERASED_KEY: True, PERSONAL_KEY: digest}
            proof[digest] = None
        else:
            shown[name] = kept.value
            proof[digest] = {"salt": kept.salt, "value": kept.value}
    return (shown, proof) if proof else None


def revealed(
    records: Iterable[AuditRecord],
    values: Iterable[PersonalValue] | Mapping[str, PersonalValue],
) -> list[AuditRecord]:
    """The records with their personal values put back (see [`reveal`][..reveal]).

    `values` may be a mapping by digest already (the memory store's own), so a
    thread's read costs its rows, not every value the store keeps.
    """
    by_digest = values if isinstance(values, Mapping) else {v.digest: v for v in values}
    out: list[AuditRecord] = []
    for record in records:
        shown = reveal(record.payload, by_digest) if record.sealed_payload is None else None
        if shown is None:
            out.append(record)
            continue
        payload, proof = shown
        update = {"payload": payload, "sealed_payload": record.payload, "personal": proof}
        out.append(record.model_copy(update=update))
    return out


def legacy_seqs(records: Iterable[AuditRecord]) -> tuple[int, ...]:
    """Seqs of rows holding personal text inside their hashed bytes (written before sealing).

    Such a row cannot be redacted without breaking the chain; erasure reports it.
    """
    found: list[int] = []
    for record in records:
        payload = record.sealed_payload if record.sealed_payload is not None else record.payload
        names = {"replied": REPLY_PERSONAL, "paused": PAUSED_PERSONAL}.get(
            record.event, DECISION_PERSONAL
        )
        if any(payload.get(n) is not None and digest_of(payload.get(n)) is None for n in names):
            found.append(record.seq)
    return tuple(found)


def sealed_paused(review: ReviewRecord) -> tuple[dict[str, Any], list[PersonalValue]]:
    """A review's `paused` payload with its draft hash and commitment salted, and their values."""
    return seal(
        paused_payload(review),
        PAUSED_PERSONAL,
        thread_id=review.thread_id,
        subject=review.requested_by,
    )


def erased_payload(*, values: int, reviews: int, evidence: int) -> dict[str, Any]:
    """The payload of an `erased` row: counts only, no personal data (not even the subject)."""
    return {"values": values, "reviews": reviews, "evidence": evidence}


def open_review_error(thread_id: str) -> ThreadBusyError:
    """The refusal of erasing a thread with an open review (one message for every store)."""
    return ThreadBusyError(
        f"Thread {thread_id!r} has an open review: its personal data is what the reviewer "
        "decides on, so it is not erased. Nothing was changed; decide or expire the review "
        "(`approve`, `reject`, `expire_overdue`) and erase again.",
        thread_id=thread_id,
    )


ERASED_STATE: dict[str, Any] = {"erased": True}
"""What an erased thread's kept decision state (retention's evidence) reads."""


def redacted_review(review: ReviewRecord) -> ReviewRecord:
    """The review with its personal text (customer message, draft, edited texts) erased."""
    decision, votes = redacted_decision(
        review.decision, [v.model_dump(mode="json") for v in review.votes]
    )
    update = {
        "customer_message": ERASED_TEXT,
        "draft_response": ERASED_TEXT,
        "decision": decision,
        "votes": [type(v).model_validate(d) for v, d in zip(review.votes, votes, strict=True)],
    }
    return review.model_copy(update=update)


def redacted_decision(
    decision: dict[str, Any] | None, votes: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A review's decision and votes (plain JSON) with their edited texts erased."""

    def redact(item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "response": ERASED_TEXT} if item.get("response") is not None else item

    return (None if decision is None else redact(decision)), [redact(v) for v in votes]


SUBJECT_FIELD = "subject_id"
"""The state field naming the data subject, when the state schema has one."""


def subject_of(state: object) -> str | None:
    """The data subject of a state: its `subject_id` field if set, else `requested_by`."""
    for name in (SUBJECT_FIELD, "requested_by"):
        value = getattr(state, name, None)
        if isinstance(value, str) and value:
            return value
    return None


async def sealed(
    store: object,
    payload: Mapping[str, Any],
    fields: Iterable[str],
    *,
    thread_id: str,
    subject: str | None,
) -> dict[str, Any]:
    """`payload` sealed, its values kept in `store`; unchanged for a store without the capability.

    The caller's next call writes the row to `store`. A store that can stage
    values keeps them with that write, in its transaction or round trip; any
    other store keeps them now, before the row. Either way a row is never
    durable without its values, and a write that fails leaves at most values no
    row commits to, which erasure of the thread removes.
    """
    if not isinstance(store, PersonalStore):
        return dict(payload)
    out, values = seal(payload, fields, thread_id=thread_id, subject=subject)
    if values:
        if isinstance(store, StagingStore):
            store.stage_personal(values)
        else:
            await store.put_personal(values)
    return out


@runtime_checkable
class StagingStore(Protocol):
    """A personal-data store that keeps staged values with its next write (see `sealed`)."""

    def stage_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep `values` in the store's next write's transaction (or round trip)."""
        ...
