"""Retention and legal hold: how long each record class is kept, and what nothing may delete.

Regulated records are kept for a minimum time and then deleted (FCA SYSC 9 /
MiFID II Art 16(7): five to seven years, unalterable while kept; GDPR: not
longer than needed). A [`RetentionPolicy`][hitl_compliance.RetentionPolicy]
per record class gives a **floor** (nothing younger is ever deleted) and a
**ceiling** (`await coord.apply_retention()` deletes what is older);
a [`Hold`][hitl_compliance.Hold] on a thread keeps everything of it until
released. Every deletion, hold and release is a row of the audit ledger, and
the ledger still verifies after pruning (see [`ledger`][hitl_compliance.ledger]).

Example:
    ```python
    coord = HitlCoordinator(graph, retention=[
        RetentionPolicy("audit", floor=timedelta(days=5 * 365), ceiling=timedelta(days=7 * 365)),
        RetentionPolicy("checkpoints", floor=timedelta(0), ceiling=timedelta(days=30)),
    ])
    report = await coord.apply_retention()
    ```
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from hitl_compliance.errors import ConfigurationError, LegalHoldError

__all__ = [
    "Hold",
    "RecordClass",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionStore",
    "check_policies",
    "dumps_state",
    "hold_error",
    "tombstone_payload",
]

RecordClass = Literal["reviews", "audit", "checkpoints"]
"""What a policy prunes: decided review rows (with their kept evidence), the
audit rows of finished threads (whole threads; tombstones stay), or the
LangGraph checkpoints of decided threads (after their evidence is kept)."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long records of one class are kept: at least `floor`, at most `ceiling`.

    Age is measured from a record's last activity: a review's `decided_at`, a
    thread's newest audit row, a decided thread's decision.

    Example:
        ```python
        RetentionPolicy("reviews", floor=timedelta(days=5 * 365), ceiling=timedelta(days=7 * 365))
        ```

    Raises:
        ConfigurationError: an unknown record class, a negative floor, or a
            ceiling below the floor.
    """

    record_class: RecordClass
    floor: timedelta
    ceiling: timedelta

    def __post_init__(self) -> None:
        if self.record_class not in get_args(RecordClass):
            raise ConfigurationError(
                f"RetentionPolicy record_class must be one of {get_args(RecordClass)}, "
                f"got {self.record_class!r}."
            )
        for name in ("floor", "ceiling"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ConfigurationError(
                    f"RetentionPolicy {name} must be a timedelta >= 0, got {value!r}."
                )
        if self.ceiling < self.floor:
            raise ConfigurationError(
                f"RetentionPolicy for {self.record_class!r}: the ceiling ({self.ceiling}) is "
                f"below the floor ({self.floor}); records must be kept at least the floor, "
                "so raise the ceiling or lower the floor."
            )


def check_policies(policies: Sequence[RetentionPolicy]) -> tuple[RetentionPolicy, ...]:
    """The policies as a tuple, refusing a non-policy or two policies for one class.

    Raises:
        ConfigurationError: an item is not a `RetentionPolicy`, or a class repeats.
    """
    seen: set[str] = set()
    for policy in policies:
        if not isinstance(policy, RetentionPolicy):
            raise ConfigurationError(
                f"retention must list RetentionPolicy values, got {type(policy).__name__}."
            )
        if policy.record_class in seen:
            raise ConfigurationError(
                f"Two retention policies for {policy.record_class!r}: give one per record class."
            )
        seen.add(policy.record_class)
    return tuple(policies)


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold on a thread: nothing of it is pruned or erased until it is released."""

    thread_id: str
    reason: str
    placed_by: str
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one `apply_retention` run deleted, per record class, and which threads it kept."""

    now: datetime
    """The time the run measured ages against."""
    reviews: int = 0
    """Review rows deleted."""
    audit_rows: int = 0
    """Audit rows deleted (each thread's gap documented by a `pruned` tombstone)."""
    checkpoint_threads: int = 0
    """Decided threads whose checkpoints were deleted (their evidence kept first)."""
    held: tuple[str, ...] = field(default=())
    """Threads with prunable records that a legal hold kept, sorted."""


@runtime_checkable
class RetentionStore(Protocol):
    """The retention capability of a review store (the library's three stores have it).

    Every method that deletes appends a `pruned` audit row in the same
    transaction and refuses a held thread with
    [`LegalHoldError`][hitl_compliance.LegalHoldError], checked inside that
    transaction, so a hold placed concurrently is never overtaken.
    """

    async def place_hold(self, thread_id: str, *, reason: str, by: str, now: datetime) -> Hold:
        """Hold the thread and append a `hold_placed` audit row; the hold in force.

        Idempotent: on a held thread, return the existing hold and write nothing.
        """
        ...

    async def release_hold(self, thread_id: str, *, by: str, now: datetime) -> Hold | None:
        """Release the thread's hold, appending a `hold_released` row; None (and no row) if none."""
        ...

    async def get_hold(self, thread_id: str) -> Hold | None:
        """The thread's hold, or None."""
        ...

    async def holds(self) -> list[Hold]:
        """Every hold in force, oldest first."""
        ...

    async def retention_candidates(
        self, record_class: RecordClass, *, before: datetime
    ) -> list[str]:
        """Thread ids with records of `record_class` older than `before`, held ones included.

        `reviews`: threads with a decided review decided before `before`.
        `audit`: threads with no open review or turn whose newest non-tombstone
        audit row is older. `checkpoints`: threads with no open review or turn
        whose latest review was decided before `before` and has no kept evidence.
        """
        ...

    async def prune_thread(
        self,
        thread_id: str,
        record_class: Literal["reviews", "audit"],
        *,
        before: datetime,
        now: datetime,
        actor: str,
    ) -> int:
        """Delete the thread's records of the class older than `before`; how many.

        `audit`: every non-tombstone row, only when the newest is older than
        `before` and the thread has no open review or turn; the `pruned` row
        lists each as `[seq, hash]`. `reviews`: decided reviews (and their kept
        evidence); the `pruned` row lists their ids. 0, writing nothing, when
        there is nothing to delete.

        Raises:
            LegalHoldError: the thread is held; nothing changed.
        """
        ...

    async def keep_evidence(
        self,
        thread_id: str,
        *,
        review_id: str,
        checkpoint_id: str,
        state: dict[str, Any],
        now: datetime,
        actor: str,
    ) -> None:
        """Keep the state a review was decided on, before its checkpoints are deleted.

        Appends a `pruned` row (`record_class: "checkpoints"`, the state's SHA-256).
        Idempotent per review: when its evidence is kept already, writes nothing.

        Raises:
            LegalHoldError: the thread is held; nothing changed.
        """
        ...

    async def evidence(self, review_id: str) -> dict[str, Any] | None:
        """The state kept for the review by `keep_evidence`, or None."""
        ...


def hold_error(hold: Hold, *, action: str) -> LegalHoldError:
    """The error refusing `action` (`"prune"`, `"erase"`) on a held thread: one message for all.

    For store adapters: raise it from every deleting method of a held thread.
    """
    return LegalHoldError(
        f"Thread {hold.thread_id!r} is under legal hold ({hold.reason!r}, placed by "
        f"{hold.placed_by!r} at {hold.placed_at.isoformat()}): its records may not be "
        f"{'pruned' if action == 'prune' else 'erased'}. Nothing was deleted; release the "
        "hold first (`await coord.release_hold(thread_id, by=...)`) if it no longer applies.",
        thread_id=hold.thread_id,
        reason=hold.reason,
        placed_by=hold.placed_by,
    )


def tombstone_payload(record_class: RecordClass, **fields: Any) -> dict[str, Any]:
    """The payload of a `pruned` audit row: the class and what went (see `ledger`)."""
    return {"record_class": record_class, **fields}


def dumps_state(state: dict[str, Any]) -> str:
    """The JSON text kept as a decision's evidence (its SHA-256 goes in the ledger)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
