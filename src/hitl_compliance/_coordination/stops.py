"""The stop switch: who may switch it, and the audited switch itself (the store's).

The store keeps the switches and appends the `delivery_stopped` /
`delivery_resumed` audit rows in the same transaction
([`DeliveryStopStore`][hitl_compliance.DeliveryStopStore]); this module checks
the actor's role first, so a refused switch writes nothing, and drops this
process's cached switches after a switch so its next turn sees it at once.
"""

from __future__ import annotations

from hitl_compliance import _stops, _validate
from hitl_compliance._coordination.context import Context
from hitl_compliance.errors import ConfigurationError, InvalidInputError, NotAuthorizedError
from hitl_compliance.policy import Reviewer, as_reviewer
from hitl_compliance.stops import DeliveryStopStore, StopScope, StopSwitch

__all__ = ["resume_delivery", "stop_delivery", "stops"]


def _store(ctx: Context) -> DeliveryStopStore:
    store = ctx.reviews
    if not isinstance(store, DeliveryStopStore):
        raise ConfigurationError(
            f"The review store {type(store).__name__} has no stop switch (stop_delivery, "
            "resume_delivery, delivery_stops); use InMemoryReviewStore, SqliteReviewStore "
            "or PostgresReviewStore, or implement hitl_compliance.DeliveryStopStore."
        )
    return store


def _scope(scope: object) -> StopScope:
    if isinstance(scope, StopScope):
        return scope
    if isinstance(scope, str):
        return StopScope.parse(scope)
    raise InvalidInputError(
        f"scope must be a StopScope or a scope key such as 'all', got {type(scope).__name__}."
    )


def _authorised(ctx: Context, by: object, action: str) -> Reviewer:
    """The actor as a reviewer, if it holds a stop role; else NotAuthorizedError."""
    if not isinstance(by, (str, Reviewer)):
        raise InvalidInputError(f"by must be a str id or a Reviewer, got {type(by).__name__}.")
    if not _validate.text("by", by.id if isinstance(by, Reviewer) else by).strip():
        raise InvalidInputError("by must name who switches: a non-blank id.")
    actor = as_reviewer(by)
    if not actor.roles & ctx.stop_roles:
        raise NotAuthorizedError(
            f"{actor.id!r} may not {action} delivery: it takes one of the roles "
            f"{sorted(ctx.stop_roles)} (the coordinator's stop_roles). Nothing changed; ask "
            "a holder of one of them, passing by=Reviewer(id, roles=...).",
            reviewer=actor.id,
            missing_roles=ctx.stop_roles,
        )
    return actor


async def stop_delivery(ctx: Context, scope: object, *, by: object, reason: object) -> StopSwitch:
    """Switch a stop on (authorised, audited, durable on return); the stop in force."""
    checked = _scope(scope)
    text = _validate.text("reason", reason)
    if not text.strip():
        raise InvalidInputError("reason must not be empty: a stop says why.")
    actor = _authorised(ctx, by, "stop")
    store = _store(ctx)
    try:
        return await store.stop_delivery(checked, reason=text, by=actor.id, now=ctx.now())
    finally:
        _stops.forget(store)


async def resume_delivery(ctx: Context, scope: object, *, by: object) -> StopSwitch | None:
    """Switch a stop off (authorised, audited); the stop switched off, or None if it was off."""
    checked = _scope(scope)
    actor = _authorised(ctx, by, "resume")
    store = _store(ctx)
    try:
        return await store.resume_delivery(checked, by=actor.id, now=ctx.now())
    finally:
        _stops.forget(store)


async def stops(ctx: Context) -> list[StopSwitch]:
    """Every stop in force, oldest first (read from the store, not the cache)."""
    return await _store(ctx).delivery_stops()
