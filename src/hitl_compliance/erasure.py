"""Erasure of a data subject's personal data, without breaking the audit chain.

Personal values of audit payloads are kept beside the chain, which hashes only
a salted commitment to each ([Erasure](../concepts/erasure.md));
[`HitlCoordinator.erase_subject`][hitl_compliance.HitlCoordinator.erase_subject]
deletes them, redacts the review rows and kept evidence, deletes the threads'
checkpoints and appends one `erased` row per thread, and every verifier stays
green. A store offers it by implementing
[`PersonalStore`][hitl_compliance.PersonalStore] (the three shipped stores do).

```python
report = await coord.erase_subject("customer-42")
assert (await coord.verify_audit()).ok
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from hitl_compliance.ledger import personal_digest

__all__ = ["ERASED_TEXT", "ErasureReport", "PersonalStore", "PersonalValue", "ThreadErasure"]

ERASED_TEXT = "[erased]"
"""What an erased review row's customer message and draft read."""


@dataclass(frozen=True, slots=True)
class PersonalValue:
    """One personal value kept beside the chain: its commitment's digest, salt and subject.

    `digest` is `SHA-256(bytes.fromhex(salt) || JCS(value))`, hex, and is what the
    audit row's payload holds (`{"$personal": digest}`).
    """

    digest: str
    thread_id: str
    subject: str | None
    salt: str
    value: Any

    def matches(self) -> bool:
        """Whether the value and salt still hash to the commitment (False: edited).

        Example:
            >>> PersonalValue("00", "t1", None, "ab", "x").matches()
            False
        """
        return personal_digest(self.salt, self.value) == self.digest


@dataclass(frozen=True, slots=True)
class ThreadErasure:
    """What erasure removed from one thread."""

    thread_id: str
    values: int
    """Personal values deleted from the side table."""
    reviews: int
    """Review rows whose customer message and draft were redacted."""
    evidence: int
    """Kept decision states (retention's evidence) redacted."""
    checkpoints: bool = False
    """Whether the thread's checkpoints were deleted."""
    legacy_rows: tuple[int, ...] = ()
    """Seqs of audit rows written before erasure existed, whose personal text is in
    the hashed bytes: they cannot be redacted without breaking the chain."""


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """The result of `erase_subject`: each thread erased, and what could not be."""

    subject: str
    threads: tuple[ThreadErasure, ...]
    not_erased: tuple[str, ...] = ()
    """What could not be erased, and why (one sentence each)."""


@runtime_checkable
class PersonalStore(Protocol):
    """A review store that keeps personal values beside its chain, and erases them.

    Every method leaves nothing half-done; `erase_thread` is one transaction
    with its hold check and its `erased` audit row.
    """

    async def put_personal(self, values: Sequence[PersonalValue]) -> None:
        """Keep these values (an existing digest is left as it is)."""
        ...

    async def personal_values(self, thread_id: str | None = None) -> list[PersonalValue]:
        """The values kept for the thread (every thread's when None)."""
        ...

    async def subject_threads(self, subject: str) -> list[str]:
        """The threads holding the subject's data: its values' or its requested reviews'."""
        ...

    async def erase_thread(self, thread_id: str, *, now: datetime, actor: str) -> ThreadErasure:
        """Delete the thread's personal values, redact its reviews and evidence, append `erased`.

        Raises:
            LegalHoldError: the thread is held (nothing changed).
            ThreadBusyError: the thread has an open review (nothing changed).
        """
        ...
