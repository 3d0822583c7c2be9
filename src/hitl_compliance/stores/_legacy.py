"""Deprecation paths for review stores written against an earlier `ReviewStore` protocol.

* Before hook leases (no `claim_hooks` / `renew_hook`, a `finish_hook` without
  `owner=`): the store still works, wrapped in
  [`LeaselessHooks`][hitl_compliance.stores._legacy.LeaselessHooks], with a
  `DeprecationWarning`: its hooks are then called without a lease, so two
  processes may call one owed hook twice, as before hook leases existed.
* Before several pending reviews per thread (no `open_reviews`): the store
  still works, wrapped in
  [`OneOpenReview`][hitl_compliance.stores._legacy.OneOpenReview], with a
  `DeprecationWarning`: `open_reviews` is read from `get_review` (the latest
  review only), which is exact for a store that keeps one open review per thread.
* Before the SLA adopted reviews without a deadline (no `list_undated` /
  `set_deadline`): the store still works, wrapped in
  [`NoUndated`][hitl_compliance.stores._legacy.NoUndated], with a
  `DeprecationWarning`: it lists no such review, so a pause a raw run's gate
  recorded keeps no deadline, as before.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

from hitl_compliance.models import HookDelivery, ReviewRecord

__all__ = [
    "LeaselessHooks",
    "NoUndated",
    "OneOpenReview",
    "is_leaseless",
    "is_legacy",
    "wrap_leaseless",
    "wrap_legacy",
]

_LEASE_METHODS = ("claim_hooks", "renew_hook")
_MULTI_METHODS = ("open_reviews",)
_UNDATED_METHODS = ("list_undated", "set_deadline")


def _missing(store: Any) -> set[str]:
    """The `ReviewStore` protocol methods `store` does not implement."""
    from hitl_compliance.stores.base import ReviewStore

    required = [
        name
        for name in dir(ReviewStore)
        if not name.startswith("_") and callable(getattr(ReviewStore, name, None))
    ]
    return {name for name in required if not callable(getattr(store, name, None))}


def is_leaseless(store: Any) -> bool:
    """Whether `store` is a pre-lease store: every protocol method except the lease ones."""
    missing = _missing(store) - {*_MULTI_METHODS, *_UNDATED_METHODS}
    return bool(missing) and missing <= set(_LEASE_METHODS)


def is_legacy(store: Any) -> bool:
    """Whether `store` misses only methods a deprecation path here emulates."""
    missing = _missing(store)
    return bool(missing) and missing <= {*_LEASE_METHODS, *_MULTI_METHODS, *_UNDATED_METHODS}


def wrap_legacy(store: Any) -> Any:
    """`store`, with each missing method a deprecation path emulates; warns for each."""
    if is_leaseless(store):
        store = wrap_leaseless(store)
    if not callable(getattr(store, "open_reviews", None)):
        warnings.warn(
            f"{type(store).__name__} does not implement ReviewStore.open_reviews (added with "
            "several pending reviews per thread). The coordinator reads only its latest "
            "review, so a gate's parallel tool-call pauses cannot be decided one by one. "
            "Implement it (see ReviewStoreConformance's SeveralReviewsConformance); stores "
            "without it will be refused in a later release.",
            DeprecationWarning,
            stacklevel=3,
        )
        store = OneOpenReview(store)
    if not all(callable(getattr(store, name, None)) for name in _UNDATED_METHODS):
        warnings.warn(
            f"{type(store).__name__} does not implement ReviewStore.list_undated / "
            "set_deadline (added when the SLA began to date reviews opened without a "
            "deadline). A pause a raw run's gate recorded keeps no deadline, so the SLA "
            "never resolves it. Implement both (see ReviewStoreConformance's "
            "SlaConformance); stores without them will be refused in a later release.",
            DeprecationWarning,
            stacklevel=3,
        )
        store = NoUndated(store)
    return store


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


class OneOpenReview:
    """A store from before several open reviews per thread: `open_reviews` from `get_review`."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def open_reviews(self, thread_id: str) -> list[ReviewRecord]:
        """The thread's latest review when it is open (such a store keeps one open review)."""
        from hitl_compliance.stores._machine import is_open

        latest: ReviewRecord | None = await self._store.get_review(thread_id)
        return [latest] if latest is not None and is_open(latest.status) else []


class NoUndated:
    """A store from before the SLA dated reviews: it lists none, and dates none."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_undated(self, *, limit: int | None = None) -> list[ReviewRecord]:
        """None listed: such a store has no index of them, and a full scan per sweep is worse."""
        return []

    async def set_deadline(self, review_id: str, *, deadline: datetime) -> bool:
        """Nothing dated (never called: `list_undated` lists nothing)."""
        return False
