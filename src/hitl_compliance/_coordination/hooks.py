"""Hook calls after durable events, each under a lease on its outbox row; who configured a store.

Every pause, decision and expiry appends an audit row, and the store writes an
outbox row for each hook the application handles in the same transaction.
[`dispatch`][hitl_compliance._coordination.hooks.dispatch] then claims those
rows, calls the hooks and records each outcome; a failed or unreached call
stays for `recover()`.

A store writes outbox rows for the hook names it was last configured with,
so two coordinators sharing one store instance would silently drop the
first one's events. The store owns that configuration (`configured_hooks`);
[`register_hooks`][hitl_compliance._coordination.hooks.register_hooks] reads
it to warn when a later coordinator drops hooks an earlier one needs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable
from datetime import datetime

from hitl_compliance import _personal
from hitl_compliance._coordination.context import Context
from hitl_compliance.erasure import PersonalStore
from hitl_compliance.hooks import event_for
from hitl_compliance.models import HookDelivery
from hitl_compliance.stores.base import ReviewStore

__all__ = ["dispatch", "register_hooks", "under_lease"]

logger = logging.getLogger("hitl_compliance")


def register_hooks(store: ReviewStore, names: frozenset[str]) -> frozenset[str]:
    """Tell `store` which hooks get outbox rows; warn when that drops hooks it had.

    The store owns its configuration: a store exposing `configured_hooks`
    (ours do) says what an earlier coordinator configured, so a second
    coordinator that would silently stop an earlier one's outbox rows is
    logged. A store without it is configured with nothing to compare.

    Returns:
        The hook names the store had and this configuration drops.
    """
    previous = getattr(store, "configured_hooks", None)
    dropped = previous - names if isinstance(previous, frozenset) else frozenset()
    if dropped:
        logger.warning(
            "A second HitlCoordinator on the same %s instance stops outbox rows for "
            "hooks %s of the first; give each coordinator its own store instance.",
            type(store).__name__,
            sorted(dropped),
        )
    store.configure_hooks(names)
    return dropped


async def dispatch(
    ctx: Context, thread_id: str | None, *, created_before: datetime | None = None
) -> None:
    """Call the hooks owed by durable events, each under a lease; failures go to recover().

    The rows are claimed first, so another replica, turn or `recover()`
    never calls a hook this call is making, and the outcome is recorded
    only while the lease is still ours. Without hooks it makes no store call,
    so the hot path of an application without hooks pays nothing.
    """
    names = ctx.hooks.names()
    if not names:
        return
    owner = uuid.uuid4().hex
    now = ctx.now()
    lease_until = now + ctx.lease
    deliveries = await ctx.reviews.claim_hooks(
        owner=owner,
        now=now,
        lease_until=lease_until,
        thread_id=thread_id,
        hooks=names,
        created_before=created_before,
        # Failed calls are retried by recover(), not by the next decision on the thread.
        include_failed=thread_id is None,
    )
    deliveries = await _revealed(ctx, deliveries)
    for delivery in deliveries:
        if ctx.now() >= lease_until:
            # Earlier hooks used up the lease: another process may take this row
            # over now, so calling it here could make the same call twice at once.
            logger.warning(
                "hook %s for thread %s (audit seq %s) not called: the lease ran out "
                "while earlier hooks ran; recover() will call it",
                delivery.hook,
                delivery.record.thread_id,
                delivery.record.seq,
            )
            continue
        hook = getattr(ctx.hooks, delivery.hook)
        error: str | None = None
        try:
            outcome = hook(event_for(delivery))
            if inspect.isawaitable(outcome):
                await under_lease(ctx, outcome, delivery.delivery_id, owner)
        except Exception as exc:
            error = repr(exc)
            logger.exception(
                "hook %s failed for thread %s (audit seq %s); recover() will retry it",
                delivery.hook,
                delivery.record.thread_id,
                delivery.record.seq,
            )
        recorded = await ctx.reviews.finish_hook(
            delivery.delivery_id, ok=error is None, error=error, now=ctx.now(), owner=owner
        )
        if not recorded:
            logger.warning(
                "hook %s for thread %s (audit seq %s, delivery %s) outran its lease of %s "
                "and another caller took it over: it may have been called twice (with the "
                "same delivery_id); raise the coordinator's lease= above the hook's run time",
                delivery.hook,
                delivery.record.thread_id,
                delivery.record.seq,
                delivery.delivery_id,
                ctx.lease,
            )


async def under_lease(ctx: Context, call: Awaitable[object], delivery_id: str, owner: str) -> None:
    """Await an async hook call, renewing its lease every third of the lease meanwhile.

    So a live call keeps its row however long it runs, and only a caller
    that died (or whose event loop stalls for a whole lease) is taken over.
    """
    renewer = asyncio.create_task(_renew_lease(ctx, delivery_id, owner))
    try:
        await call
    finally:
        renewer.cancel()
        # Reaps the renewer; unlike `await renewer`, never swallows our own cancellation.
        await asyncio.gather(renewer, return_exceptions=True)


async def _renew_lease(ctx: Context, delivery_id: str, owner: str) -> None:
    """Extend the delivery's lease every third of it until cancelled or the lease is lost."""
    interval = ctx.lease.total_seconds() / 3
    while True:
        await asyncio.sleep(interval)
        try:
            held = await ctx.reviews.renew_hook(
                delivery_id, owner=owner, lease_until=ctx.now() + ctx.lease
            )
        except Exception:
            logger.exception("could not renew the lease of hook delivery %s", delivery_id)
            continue
        if not held:
            logger.warning(
                "hook delivery %s lost its lease to another caller while running",
                delivery_id,
            )
            return


async def _revealed(ctx: Context, deliveries: list[HookDelivery]) -> list[HookDelivery]:
    """The deliveries with their records' personal values put back (a hook sees the text)."""
    store = ctx.reviews
    if not isinstance(store, PersonalStore) or not any(
        _personal.commits(d.record.payload) for d in deliveries
    ):
        return deliveries
    values = [
        v for t in {d.record.thread_id for d in deliveries} for v in await store.personal_values(t)
    ]
    return [
        d.model_copy(update={"record": _personal.revealed([d.record], values)[0]})
        for d in deliveries
    ]
