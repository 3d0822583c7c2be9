"""Decision hooks: your code, called after a pause or a decision is durable.

Typical uses: persist the human agent's message, clear the application's own
`is_escalated` flag, notify a channel. A hook runs after the store has
committed the event, from an outbox row written in the same transaction, so
a crash never loses the call; a hook that raises is logged, recorded on its
outbox row, and retried by `recover()`. It never undoes or repeats the decision.

**Delivery guarantee: at least once, with a stable delivery id.** Before a
hook is called, the caller claims its outbox row with a lease (the
coordinator's `lease=`, 30 s by default) in one atomic store call, so no other
replica, turn or `recover()` calls it while the lease holds; an async hook
renews the lease while it runs. A call that returned is recorded and never
made again. A hook is called again only when it raised, or when its caller
died before recording the outcome (or a sync hook, which cannot renew, ran
longer than the lease): then, once the lease has expired, `recover()` calls it
with the **same** [`delivery_id`][hitl_compliance.hooks.ReviewEvent.delivery_id].
So make a hook's effect idempotent on `event.delivery_id` (a unique key,
an `Idempotency-Key` header) and it takes effect exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hitl_compliance.models import AuditRecord, HookDelivery
from hitl_compliance.rules import RuleResult

__all__ = [
    "DecidedEvent",
    "ExpiredEvent",
    "Hook",
    "Hooks",
    "PausedEvent",
    "ReviewEvent",
    "event_for",
]


class ReviewEvent(BaseModel):
    """What every hook event carries: the audit row that caused it, and the delivery's id."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str = ""
    """The outbox row's id: the same on every retry of this call, unique per call owed.

    Deduplicate on it to make a hook's effect exactly-once. Empty only on an
    event built by hand rather than by the coordinator.
    """

    thread_id: str
    review_id: str | None
    checkpoint_id: str | None
    actor: str
    at: datetime
    seq: int
    record: AuditRecord


class PausedEvent(ReviewEvent):
    """A draft paused for review (`on_paused`)."""

    violations: list[RuleResult] = Field(default_factory=list)
    draft_sha256: str = ""


class DecidedEvent(ReviewEvent):
    """A human decision was applied (`on_decided`): the reply delivered, or not."""

    approved: bool
    reviewer: str
    agent_response: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExpiredEvent(ReviewEvent):
    """A review passed its SLA deadline (`on_expired`): rejected, approved or escalated."""

    action: str
    approved: bool | None = None
    agent_response: str | None = None


Hook = Callable[[Any], "Awaitable[None] | None"]
"""A hook: a sync or async callable taking one event."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """The application's callbacks; any may be None.

    Example:
        ```python
        async def clear_escalation(event: DecidedEvent) -> None:
            await messages.save(event.thread_id, event.agent_response, author=event.reviewer)
            await conversations.set_escalated(event.thread_id, False)

        coord = HitlCoordinator(graph, hooks=Hooks(on_decided=clear_escalation))
        ```
    """

    on_paused: Callable[[PausedEvent], Awaitable[None] | None] | None = None
    on_decided: Callable[[DecidedEvent], Awaitable[None] | None] | None = None
    on_expired: Callable[[ExpiredEvent], Awaitable[None] | None] | None = None

    def names(self) -> frozenset[str]:
        """The names of the hooks that are set."""
        return frozenset(
            name
            for name in ("on_paused", "on_decided", "on_expired")
            if getattr(self, name) is not None
        )


def event_for(delivery: HookDelivery) -> ReviewEvent:
    """Build the typed event for one outbox row from its audit record."""
    record = delivery.record
    base: dict[str, Any] = {
        "delivery_id": delivery.delivery_id,
        "thread_id": record.thread_id,
        "review_id": record.review_id,
        "checkpoint_id": record.checkpoint_id,
        "actor": record.actor,
        "at": record.at,
        "seq": record.seq,
        "record": record,
    }
    payload = record.payload
    if delivery.hook == "on_paused":
        return PausedEvent(
            **base,
            violations=[RuleResult.from_dict(v) for v in payload.get("violations", [])],
            draft_sha256=str(payload.get("draft_sha256", "")),
        )
    if delivery.hook == "on_decided":
        return DecidedEvent(
            **base,
            approved=record.event == "approved",
            reviewer=record.actor,
            agent_response=_text(payload.get("delivered")),
            metadata=dict(payload.get("metadata") or {}),
        )
    return ExpiredEvent(
        **base,
        action=str(payload.get("action", record.event)),
        approved=payload.get("approved"),
        agent_response=_text(payload.get("delivered")),
    )


def _text(value: object) -> str | None:
    """A delivered text as a hook event holds it: None when erased (or none was sent)."""
    return value if isinstance(value, str) else None
