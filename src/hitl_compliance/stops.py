"""The stop switch: hold every reply for review, whatever the rules say.

An authorised role (by default `"compliance-head"`; see `stop_roles` of
[`HitlCoordinator`][hitl_compliance.HitlCoordinator]) switches a
[`StopSwitch`][hitl_compliance.StopSwitch] on for a
[`StopScope`][hitl_compliance.StopScope]: all delivery, one rule set (by its
fingerprint, as reply records name it) or one product (the state's `product`
field, or `metadata["product"]`). While it is on, every turn in scope pauses for
review with a `stop_switch` finding saying who stopped delivery and why,
whatever its rules found (a `block` still rejects). Switching is audited
(`delivery_stopped`, `delivery_resumed` rows of the hash-chained ledger) and
stored in the review store, so every process sharing the store honours it
within [`STOP_REFRESH`][hitl_compliance.stops.STOP_REFRESH] (each process
caches the switches that long). Resuming delivery approves nothing: a paused
turn stays paused until a reviewer decides it.

Example:
    ```python
    head = Reviewer("ceo@bank", roles=frozenset({"compliance-head"}))
    await coord.stop_delivery(StopScope.everything(), by=head, reason="FCA dear-CEO letter")
    await coord.resume_delivery(StopScope.everything(), by=head)
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from hitl_compliance._text import plain_text
from hitl_compliance.errors import InvalidInputError
from hitl_compliance.rules import RuleResult

__all__ = [
    "DELIVERY_RESUMED",
    "DELIVERY_STOPPED",
    "STOP_REFRESH",
    "STOP_RULE",
    "STOP_THREAD",
    "DeliveryStopStore",
    "StopKind",
    "StopScope",
    "StopSwitch",
    "stop_finding",
]

StopKind = Literal["all", "ruleset", "product"]
"""What a stop covers: every turn, the turns of one rule set, or of one product."""

STOP_RULE = "stop_switch"
"""The rule name of the finding a stop adds to every turn it holds."""

STOP_THREAD = "hitl:delivery"
"""The thread id of the `delivery_stopped` / `delivery_resumed` audit rows."""

DELIVERY_STOPPED = "delivery_stopped"
"""The audit event of switching a stop on."""

DELIVERY_RESUMED = "delivery_resumed"
"""The audit event of switching a stop off."""

STOP_REFRESH = 0.25
"""Seconds a process may serve the switches it read from the store before reading again.

Well under a second, so a stop switched in one process holds the next turn in
every other process sharing the store within one second.
"""

_KINDS: tuple[str, ...] = ("all", "ruleset", "product")


@dataclass(frozen=True, slots=True)
class StopScope:
    """What a stop holds: `all` delivery, one rule set (`value`: its fingerprint) or one product.

    Example:
        >>> StopScope.product("isa").key
        'product:isa'
        >>> StopScope.parse("all") == StopScope.everything()
        True
    """

    kind: StopKind = "all"
    value: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidInputError(f"StopScope kind must be one of {_KINDS}, got {self.kind!r}.")
        if self.kind == "all":
            if self.value is not None:
                raise InvalidInputError("StopScope('all') takes no value.")
            return
        if not isinstance(self.value, str) or not self.value.strip():
            raise InvalidInputError(
                f"StopScope({self.kind!r}) needs a non-blank value: the "
                f"{'rule set fingerprint' if self.kind == 'ruleset' else 'product name'}."
            )
        if any(ord(c) < 32 for c in self.value):
            raise InvalidInputError("A StopScope value may not hold control characters.")
        try:
            plain_text(self.value)
        except ValueError as exc:
            raise InvalidInputError(f"A StopScope value {exc}.") from None

    @classmethod
    def everything(cls) -> StopScope:
        """Every turn of every graph on the store."""
        return cls("all")

    @classmethod
    def ruleset(cls, fingerprint: str) -> StopScope:
        """The turns of graphs and gates whose rule set has this fingerprint."""
        return cls("ruleset", fingerprint)

    @classmethod
    def product(cls, name: str) -> StopScope:
        """The turns whose state names this product (`product`, or `metadata["product"]`)."""
        return cls("product", name)

    @property
    def key(self) -> str:
        """The scope as one string (`all`, `ruleset:<fingerprint>`, `product:<name>`)."""
        return "all" if self.kind == "all" else f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, key: str) -> StopScope:
        """The scope a `key` names.

        Raises:
            InvalidInputError: not `all`, `ruleset:<fingerprint>` or `product:<name>`.
        """
        if not isinstance(key, str):
            raise InvalidInputError(f"A stop scope is a str, got {type(key).__name__}.")
        if key == "all":
            return cls("all")
        kind, sep, value = key.partition(":")
        if not sep or kind not in ("ruleset", "product"):
            raise InvalidInputError(
                f"Unknown stop scope {key!r}: use 'all', 'ruleset:<fingerprint>' or "
                "'product:<name>'."
            )
        return cls(kind, value)  # type: ignore[arg-type]  # checked just above

    def covers(self, *, ruleset: str | None, product: str | None) -> bool:
        """Whether a turn of this rule set fingerprint and product is in scope."""
        if self.kind == "all":
            return True
        if self.kind == "ruleset":
            return ruleset is not None and ruleset == self.value
        return product is not None and product == self.value


@dataclass(frozen=True, slots=True)
class StopSwitch:
    """A stop in force: its scope, who switched it on, why and since when."""

    scope: StopScope
    by: str
    reason: str
    since: datetime

    @property
    def banner(self) -> str:
        """One line for an inbox: `Delivery stopped (all) by X since T: reason`."""
        return (
            f"Delivery stopped ({self.scope.key}) by {self.by} since "
            f"{self.since.isoformat(timespec='seconds')}: {self.reason}"
        )


def stop_finding(stops: tuple[StopSwitch, ...] | list[StopSwitch]) -> RuleResult:
    """The `review` finding a turn held by `stops` carries: who stopped delivery, and why."""
    return RuleResult(
        STOP_RULE,
        "review",
        "delivery is stopped: every reply waits for review",
        tuple(f"delivery stopped by {s.by}: {s.reason}" for s in stops),
        "high",
    )


@runtime_checkable
class DeliveryStopStore(Protocol):
    """The stop-switch capability of a review store (the library's three stores have it).

    Each switch is one transaction with its audit row, so a stop is durable
    (and audited) before `stop_delivery` returns.
    """

    async def stop_delivery(
        self, scope: StopScope, *, reason: str, by: str, now: datetime
    ) -> StopSwitch:
        """Switch the stop on, appending a `delivery_stopped` audit row; the stop in force.

        Idempotent: a scope already stopped returns its stop and writes nothing.
        """
        ...

    async def resume_delivery(
        self, scope: StopScope, *, by: str, now: datetime
    ) -> StopSwitch | None:
        """Switch the stop off, appending `delivery_resumed`; None (and no row) if it was off."""
        ...

    async def delivery_stops(self) -> list[StopSwitch]:
        """Every stop in force, oldest first."""
        ...
