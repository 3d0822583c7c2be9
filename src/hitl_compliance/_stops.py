"""Which stops hold a turn: the store's switches, cached per process for `STOP_REFRESH`.

Every compliance step (the factory graph's `compliance` node, each
`compliance_gate`) asks `holding(store, ...)` before it routes. The switches
are read from the shared store at most once per `STOP_REFRESH` seconds per
store in a process, so the check costs one indexed read a quarter second
whatever the traffic, and a switch made in another process is seen within that
time. A switch made through this process's store object is seen at once.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from hitl_compliance._authority import AUTHORITY_KEY, DecisionAuthority, ready_store
from hitl_compliance.stops import STOP_REFRESH, DeliveryStopStore, StopSwitch

__all__ = ["forget", "holding", "product_of", "run_store", "switches"]

_Cached = tuple[float, tuple[StopSwitch, ...]]
_cache: weakref.WeakKeyDictionary[Any, _Cached] = weakref.WeakKeyDictionary()


async def switches(store: object) -> tuple[StopSwitch, ...]:
    """The stops in force in `store` (none for a store without the capability), cached."""
    if not isinstance(store, DeliveryStopStore):
        return ()
    now = time.monotonic()
    try:
        cached = _cache.get(store)
    except TypeError:  # a store that cannot be weakly referenced: read every time
        return tuple(await store.delivery_stops())
    if cached is not None and now - cached[0] < STOP_REFRESH:
        return cached[1]
    found = tuple(await store.delivery_stops())
    _cache[store] = (now, found)
    return found


def forget(store: object) -> None:
    """Drop the cached switches of `store`: this process just switched one."""
    with contextlib.suppress(TypeError):
        _cache.pop(store, None)


async def holding(
    store: object, *, ruleset: str | None, product: str | None
) -> tuple[StopSwitch, ...]:
    """The stops that hold a turn of this rule set fingerprint and product (oldest first)."""
    return tuple(
        s for s in await switches(store) if s.scope.covers(ruleset=ruleset, product=product)
    )


def product_of(state: Any) -> str | None:
    """The product a turn is about: its state's `product` field, else `metadata["product"]`."""
    if isinstance(state, Mapping):
        direct = state.get("product")
        metadata = state.get("metadata")
    else:
        direct = getattr(state, "product", None)
        metadata = getattr(state, "metadata", None)
    if isinstance(direct, str) and direct:
        return direct
    if isinstance(metadata, Mapping):
        named = metadata.get("product")
        if isinstance(named, str) and named:
            return named
    return None


async def run_store(
    config: RunnableConfig, *authorities: DecisionAuthority | None
) -> object | None:
    """The review store a run answers to: its coordinator's, else the first attached authority's.

    A coordinator in this process names its store in the run's config; any
    other run (a server, a raw `ainvoke`) answers to the authority attached to
    the graph (`attach_authority`, a coordinator) or a gate's own `reviews=`.
    """
    given = (config.get("configurable") or {}).get(AUTHORITY_KEY)
    if given is not None:
        return getattr(given, "reviews", None)
    for authority in authorities:
        if authority is not None:
            return await ready_store(authority)
    return None
