"""Retention and legal hold: prune past the ceiling, never under the floor, never a held thread.

The deletions themselves are the store's
([`RetentionStore`][hitl_compliance.RetentionStore]): each one atomic with its
`pruned` ledger row and its hold check. This module picks what to prune, keeps
a decision's evidence before its checkpoints go, and deletes the checkpoints
through the checkpointer's `adelete_thread`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hitl_compliance import _validate
from hitl_compliance._coordination.context import Context, check_thread_id
from hitl_compliance.errors import ConfigurationError, InvalidInputError, LegalHoldError
from hitl_compliance.retention import (
    Hold,
    RetentionPolicy,
    RetentionReport,
    RetentionStore,
    hold_error,
)
from hitl_compliance.state import ComplianceState, GateView

__all__ = [
    "RETENTION_ACTOR",
    "apply_retention",
    "ensure_not_held",
    "holds",
    "kept_state",
    "place_hold",
    "release_hold",
]

RETENTION_ACTOR = "system:retention"
"""The actor of every `pruned` audit row."""


def _store(ctx: Context) -> RetentionStore:
    store = ctx.reviews
    if not isinstance(store, RetentionStore):
        raise ConfigurationError(
            f"The review store {type(store).__name__} has no retention capability "
            "(place_hold, prune_thread, ...); use InMemoryReviewStore, SqliteReviewStore "
            "or PostgresReviewStore, or implement hitl_compliance.RetentionStore."
        )
    return store


def _text(value: object, name: str) -> str:
    text = _validate.text(name, value)
    if not text.strip():
        raise InvalidInputError(f"{name} must not be empty: a hold says why and who.")
    return text


async def place_hold(ctx: Context, thread_id: str, *, reason: str, by: str) -> Hold:
    """Hold the thread (audited); the hold in force."""
    check_thread_id(thread_id)
    return await _store(ctx).place_hold(
        thread_id, reason=_text(reason, "reason"), by=_text(by, "by"), now=ctx.now()
    )


async def release_hold(ctx: Context, thread_id: str, *, by: str) -> Hold | None:
    """Release the thread's hold (audited); the released hold, or None if there was none."""
    check_thread_id(thread_id)
    return await _store(ctx).release_hold(thread_id, by=_text(by, "by"), now=ctx.now())


async def holds(ctx: Context) -> list[Hold]:
    """Every hold in force, oldest first."""
    return await _store(ctx).holds()


async def ensure_not_held(ctx: Context, thread_id: str, *, action: str = "erase") -> None:
    """Raise [`LegalHoldError`][hitl_compliance.LegalHoldError] if the thread is held."""
    check_thread_id(thread_id)
    hold = await _store(ctx).get_hold(thread_id)
    if hold is not None:
        raise hold_error(hold, action=action)


def _cutoff(ctx: Context, policy: RetentionPolicy, now: datetime) -> datetime:
    """Records older than this may go: past the ceiling at `now`, and past the floor by the clock.

    The floor is measured against the coordinator's own clock too, so a `now`
    given in the future never deletes a record younger than its floor.
    """
    return min(now - policy.ceiling, ctx.now() - policy.floor)


async def apply_retention(
    ctx: Context, policies: tuple[RetentionPolicy, ...], now: datetime | None
) -> RetentionReport:
    """Prune every class a policy names; held threads are skipped and reported."""
    # A bad argument is refused as such, whatever the configuration.
    at = ctx.now() if now is None else _validate.aware_datetime("now", now)
    if not policies:
        raise ConfigurationError(
            "apply_retention() needs retention policies: pass retention=[RetentionPolicy(...)] "
            "to HitlCoordinator."
        )
    store = _store(ctx)
    if any(p.record_class == "checkpoints" for p in policies):
        _checkpointer(ctx)  # refused before anything is deleted
    counts = {"reviews": 0, "audit": 0, "checkpoints": 0}
    held: set[str] = set()
    # Checkpoints first (their evidence goes to the review row's side table), then
    # reviews, then audit rows: each class's tombstones are written before the next.
    order = {"checkpoints": 0, "reviews": 1, "audit": 2}
    for policy in sorted(policies, key=lambda p: order[p.record_class]):
        before = _cutoff(ctx, policy, at)
        for thread_id in await store.retention_candidates(policy.record_class, before=before):
            try:
                if policy.record_class == "checkpoints":
                    counts["checkpoints"] += await _prune_checkpoints(ctx, store, thread_id, at)
                else:
                    counts[policy.record_class] += await store.prune_thread(
                        thread_id,
                        policy.record_class,
                        before=before,
                        now=at,
                        actor=RETENTION_ACTOR,
                    )
            except LegalHoldError:
                held.add(thread_id)
    return RetentionReport(
        now=at,
        reviews=counts["reviews"],
        audit_rows=counts["audit"],
        checkpoint_threads=counts["checkpoints"],
        held=tuple(sorted(held)),
    )


async def _prune_checkpoints(
    ctx: Context, store: RetentionStore, thread_id: str, now: datetime
) -> int:
    """Keep the latest decision's state with its review, then delete the thread's checkpoints."""
    checkpointer = _checkpointer(ctx)
    review = await ctx.reviews.get_review(thread_id)
    if review is None:
        return 0
    state = await ctx.driver.paused_state(review)
    await store.keep_evidence(
        thread_id,
        review_id=review.review_id,
        checkpoint_id=review.checkpoint_id,
        state={"schema": type(state).__name__, "values": state.model_dump(mode="json")},
        now=now,
        actor=RETENTION_ACTOR,
    )
    try:
        await checkpointer.adelete_thread(thread_id)
    except NotImplementedError as exc:  # BaseCheckpointSaver's default
        raise ConfigurationError(
            f"The checkpointer {type(checkpointer).__name__} cannot delete a thread "
            "(adelete_thread): drop the 'checkpoints' retention policy or use a saver "
            "that implements it (LangGraph's memory, SQLite and Postgres savers do)."
        ) from exc
    return 1


def _checkpointer(ctx: Context) -> Any:
    """The graph's checkpointer, which must be able to delete a thread's checkpoints."""
    checkpointer = getattr(ctx.graph, "checkpointer", None)
    if checkpointer is None or not hasattr(checkpointer, "adelete_thread"):
        raise ConfigurationError(
            "Pruning checkpoints needs the graph's checkpointer (a LangGraph "
            "BaseCheckpointSaver with adelete_thread); a remote graph's checkpoints are "
            "the server's: drop the 'checkpoints' policy."
        )
    return checkpointer


def kept_state(ctx: Context, kept: dict[str, Any]) -> ComplianceState:
    """The state a decision's kept evidence holds, as `state_at_decision` returns it."""
    values = kept.get("values", {})
    if ctx.spec is not None:
        return ctx.spec.state_schema.model_validate(values)
    schema = GateView if kept.get("schema") == "GateView" else ComplianceState
    return schema.model_validate(values)
