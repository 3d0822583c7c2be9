"""Assignment and delegation: which reviewer (or queue) a review waits for, and why.

A [`Routing`][hitl_compliance.Routing] passed as `HitlCoordinator(routing=...)`
assigns every review when it pauses: the first
[`AssignmentRule`][hitl_compliance.AssignmentRule] matching one of its
findings (by rule name, severity, or a role the policy requires) names a
reviewer id or a queue (`"queue:<name>"`), else `Routing.default`. A
supervisor moves a review with `reassign`; a reviewer away from the office
hands their reviews on until a date with `delegate`. Every change is a row of
the audit ledger (`assigned`, `reassigned`, `delegated`, `delegation_revoked`).

Assignment routes work; it does not authorise. Who may decide stays with the
[`ApprovalPolicy`][hitl_compliance.ApprovalPolicy] unless `Routing(enforce=True)`,
which also refuses a decision by anyone the review is not assigned to (directly,
through a queue the reviewer belongs to, or through a delegation in force).

Example:
    ```python
    routing = Routing(
        rules=[
            AssignmentRule("queue:compliance-l2", rule="guarantee"),
            AssignmentRule("alice@bank", severity="high"),
        ],
        queues={"compliance-l2": {"bob@bank", "carol@bank"}},
    )
    coord = HitlCoordinator(graph, routing=routing)
    mine = await coord.pending(assigned_to="bob@bank")
    print(mine[0].assigned_to, mine[0].assignment_reason)
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from hitl_compliance.errors import ConfigurationError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult

__all__ = [
    "ASSIGNMENT_EVENTS",
    "DELEGATION_THREAD",
    "QUEUE_PREFIX",
    "Assignment",
    "AssignmentRule",
    "AssignmentStore",
    "Delegation",
    "Routing",
    "assigned_payload",
    "delegated_payload",
]

QUEUE_PREFIX = "queue:"
"""An assignee naming a queue, not a reviewer: `"queue:compliance-l2"`."""

DELEGATION_THREAD = "hitl:delegations"
"""The ledger thread of `delegated` and `delegation_revoked` rows (they belong to no thread)."""

ASSIGNMENT_EVENTS = ("assigned", "reassigned", "delegated", "delegation_revoked")
"""The audit events of assignment changes, in the order a review may see them."""


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise ConfigurationError(f"{name} must be a non-empty str of at most 256 chars.")
    return value


@dataclass(frozen=True, slots=True)
class AssignmentRule:
    """Route reviews with a matching finding to `to` (a reviewer id or `"queue:<name>"`).

    A finding matches when every criterion given matches it: its `rule` name,
    its `severity`, and `role` among the roles the policy requires for it (a
    policy with `required_roles`, such as
    [`RoleBasedPolicy`][hitl_compliance.RoleBasedPolicy]).

    Raises:
        ConfigurationError: no criterion, or a blank target or criterion.
    """

    to: str
    rule: str | None = None
    severity: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        _text(self.to, "AssignmentRule.to")
        given = [v for v in (self.rule, self.severity, self.role) if v is not None]
        if not given:
            raise ConfigurationError(
                "AssignmentRule needs at least one of rule=, severity= or role=; use "
                "Routing(default=...) for reviews no rule matches."
            )
        for value in given:
            _text(value, "AssignmentRule criterion")

    def describe(self) -> str:
        """The criteria as a reviewer reads them: `rule guarantee, severity high`."""
        parts = [
            f"{name} {value}"
            for name, value in (("rule", self.rule), ("severity", self.severity))
            if value is not None
        ]
        if self.role is not None:
            parts.append(f"role {self.role} required")
        return ", ".join(parts)

    def matches(self, finding: RuleResult, roles: Iterable[frozenset[str]]) -> bool:
        """Whether `finding` (needing the role sets `roles`) matches every criterion."""
        if self.rule is not None and finding.rule != self.rule:
            return False
        if self.severity is not None and finding.severity != self.severity:
            return False
        return self.role is None or any(self.role in r for r in roles)


def _queues(value: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise ConfigurationError("Routing queues must map a queue name to reviewer ids.")
    out: dict[str, frozenset[str]] = {}
    for name, members in value.items():
        _text(name, "Routing queue name")
        if isinstance(members, str):
            raise ConfigurationError(f"Routing queue {name!r} must list reviewer ids, not a str.")
        out[name] = frozenset(_text(m, f"member of queue {name!r}") for m in members)
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class Routing:
    """How reviews are assigned when they pause, and who may move them.

    Args:
        rules: Tried in order; the first with a matching finding assigns the review.
        default: The assignee when no rule matches (a reviewer id or `"queue:<name>"`).
        queues: Queue name to the reviewer ids in it: `pending(assigned_to=id)`
            lists the reviews of the queues `id` belongs to too.
        supervisor_roles: A [`Reviewer`][hitl_compliance.Reviewer] holding one of
            these may `reassign` any review and `delegate` for anyone; a reviewer
            may always delegate their own reviews. Empty: anyone may.
        enforce: Refuse (`NotAuthorizedError`) a decision by a reviewer the review
            is not assigned to, directly, through a queue or through a delegation
            in force. Off by default: assignment routes work, the policy authorises.

    Raises:
        ConfigurationError: a value of the wrong shape.
    """

    rules: Sequence[AssignmentRule] = ()
    default: str = "queue:default"
    queues: Mapping[str, Iterable[str]] = field(default_factory=dict)
    supervisor_roles: frozenset[str] = frozenset({"supervisor"})
    enforce: bool = False

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        if not all(isinstance(r, AssignmentRule) for r in rules):
            raise ConfigurationError("Routing rules must be AssignmentRule values.")
        object.__setattr__(self, "rules", rules)
        _text(self.default, "Routing.default")
        object.__setattr__(self, "queues", _queues(self.queues))
        roles = frozenset(self.supervisor_roles)
        if not all(isinstance(r, str) for r in roles):
            raise ConfigurationError("Routing supervisor_roles must be strings.")
        object.__setattr__(self, "supervisor_roles", roles)
        if not isinstance(self.enforce, bool):
            raise ConfigurationError("Routing enforce must be a bool.")

    def route(
        self,
        findings: Sequence[RuleResult],
        roles_for: Callable[[RuleResult], Iterable[frozenset[str]]] | None = None,
    ) -> tuple[str, str]:
        """`(assignee, reason)` for a review with these findings.

        `roles_for` is the policy's `required_roles(finding)` when it has one.
        """
        for rule in self.rules:
            for finding in findings:
                roles = list(roles_for(finding)) if roles_for is not None else []
                if rule.matches(finding, roles):
                    return rule.to, f"{rule.describe()} -> {rule.to}"
        return self.default, f"no routing rule matched -> {self.default}"

    def queues_of(self, reviewer_id: str) -> list[str]:
        """The assignees `"queue:<name>"` of every queue `reviewer_id` belongs to, sorted."""
        return sorted(f"{QUEUE_PREFIX}{q}" for q, m in self.queues.items() if reviewer_id in m)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Whom a review waits for (`assigned_to`: a reviewer id or `"queue:<name>"`) and why."""

    review_id: str
    thread_id: str
    assigned_to: str
    reason: str


@dataclass(frozen=True, slots=True)
class Delegation:
    """`from_reviewer`'s reviews also wait for `to_reviewer` until `until` (out of office)."""

    from_reviewer: str
    to_reviewer: str
    until: datetime
    by: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        """Whether the delegation is in force at `now` (it ends at `until`, exclusive)."""
        return now < self.until


@runtime_checkable
class AssignmentStore(Protocol):
    """The assignment capability of a review store (the library's three stores have it).

    Each write appends its audit row in the same transaction as the change.
    """

    async def assign(
        self,
        review_id: str,
        *,
        to: str,
        reason: str,
        by: str,
        now: datetime,
        initial: bool,
    ) -> Assignment | None:
        """Assign the pending review `review_id` to `to`, with its audit row.

        `initial`: the routing at pause (an `assigned` row), written only when
        the review has no assignee yet, so routing an already routed pause
        again writes nothing and returns the assignment in force. Otherwise a
        `reassigned` row naming the previous assignee. None, writing nothing,
        when the review is unknown or not pending.
        """
        ...

    async def assignments(self, review_ids: Sequence[str]) -> list[Assignment]:
        """The assignments of those of `review_ids` that have one, in no order."""
        ...

    async def list_assigned(
        self,
        assignees: Sequence[str],
        *,
        limit: int | None = None,
        requested_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ReviewRecord]:
        """Pending reviews assigned to any of `assignees`, by `(requested_at, review_id)`.

        Read through an index on `(assigned_to, requested_at, review_id)` of
        pending rows: O(returned rows) per assignee.
        """
        ...

    async def delegate(self, delegation: Delegation) -> Delegation:
        """Record the delegation (replacing the delegator's earlier one), with a `delegated` row."""
        ...

    async def revoke_delegation(
        self, from_reviewer: str, *, by: str, now: datetime
    ) -> Delegation | None:
        """End the delegation with a `delegation_revoked` row; None (and no row) if none."""
        ...

    async def delegations(self) -> list[Delegation]:
        """Every recorded delegation, expired ones included, by `(from_reviewer)`."""
        ...


def assigned_payload(to: str, reason: str, previous: str | None) -> dict[str, Any]:
    """The payload of an `assigned` / `reassigned` audit row; every store writes the same."""
    payload: dict[str, Any] = {"to": to, "reason": reason}
    if previous is not None:
        payload["from"] = previous
    return payload


def delegated_payload(delegation: Delegation) -> dict[str, Any]:
    """The payload of a `delegated` / `delegation_revoked` audit row."""
    return {
        "from": delegation.from_reviewer,
        "to": delegation.to_reviewer,
        "until": delegation.until.isoformat(),
    }
