"""Deprecation path for review stores written before hook leases (`claim_hooks`).

A store implementing the earlier `ReviewStore` protocol (no `claim_hooks` /
`renew_hook`, a `finish_hook` without `owner=`) still works, wrapped in
[`LeaselessHooks`][hitl_compliance.stores._legacy.LeaselessHooks], with a
`DeprecationWarning`: its hooks are then called without a lease, so two
processes may call one owed hook twice, as before hook leases existed.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

from hitl_compliance.models import HookDelivery

__all__ = ["LeaselessHooks", "is_leaseless", "wrap_leaseless"]

_LEASE_METHODS = ("claim_hooks", "renew_hook")


def is_leaseless(store: Any) -> bool:
    """Whether `store` is a pre-lease store: every protocol method except the lease ones."""
    from hitl_compliance.stores.base import ReviewStore

    required = [
        name
        for name in dir(ReviewStore)
        if not name.startswith("_") and callable(getattr(ReviewStore, name, None))
    ]
    missing = [name for name in required if not callable(getattr(store, name, None))]
    return bool(missing) and set(missing) <= set(_LEASE_METHODS)


def wrap_leaseless(store: Any) -> LeaselessHooks:
    """`store`, with the lease methods emulated; warns that support will end."""
    warnings.warn(
        f"{type(store).__name__} does not implement ReviewStore.claim_hooks / renew_hook "
        "(added with hook outbox leases). Its hooks are called without a lease, so "
        "two processes may call one owed hook twice. Implement both (see "
        "ReviewStoreConformance); stores without them will be refused in a later release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return LeaselessHooks(store)


class LeaselessHooks:
    """A pre-lease store, with `claim_hooks` as a read and leases always granted."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_hooks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        thread_id: str | None = None,
        hooks: frozenset[str] | None = None,
        created_before: datetime | None = None,
        include_failed: bool = True,
        limit: int | None = None,
    ) -> list[HookDelivery]:
        """The store's `pending_hooks`, filtered as `claim_hooks` filters; nothing is leased."""
        rows: list[HookDelivery] = await self._store.pending_hooks(
            thread_id=thread_id, created_before=created_before
        )
        chosen = [
            row
            for row in rows
            if (hooks is None or row.hook in hooks) and (include_failed or row.status == "pending")
        ]
        return chosen if limit is None else chosen[:limit]

    async def renew_hook(self, delivery_id: str, *, owner: str, lease_until: datetime) -> bool:
        """Nothing to renew: the row was never leased."""
        return True

    async def finish_hook(
        self,
        delivery_id: str,
        *,
        ok: bool,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """The store's own `finish_hook`, without `owner=` (which it does not know)."""
        await self._store.finish_hook(delivery_id, ok=ok, error=error, now=now)
        return True
