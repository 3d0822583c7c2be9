"""Reviewer authority: who may decide a review, and how many approvals it needs.

An [`ApprovalPolicy`][hitl_compliance.ApprovalPolicy] looks at the findings a
review carries (and, for an edited reply, the findings of the edit) and
answers two questions: may this [`Reviewer`][hitl_compliance.Reviewer] decide
it, and how many distinct approvers does it need (four-eyes and quorum)?
[`RoleBasedPolicy`][hitl_compliance.RoleBasedPolicy] answers both from maps of
rule names and severities to roles and quorums.

Reviewer ids are compared in one canonical form
([`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id]), so a person
cannot approve their own request, or count twice toward a quorum, by spelling
their id another way. A policy may define its own `canonical_id(reviewer_id)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hitl_compliance._normalize import canonical_id
from hitl_compliance._text import plain_text
from hitl_compliance.errors import ConfigurationError, InvalidDecisionError
from hitl_compliance.rules import RuleResult

__all__ = [
    "AllowAllPolicy",
    "ApprovalPolicy",
    "Authorization",
    "Reviewer",
    "RoleBasedPolicy",
    "as_reviewer",
    "canonical_reviewer_id",
]


def canonical_reviewer_id(reviewer_id: str) -> str:
    """The form in which reviewer ids are compared: one string per person, however spelt.

    Case-folded, NFKC, with invisible format characters (zero-width space, soft
    hyphen, BOM, bidi controls) and all white space removed, and look-alike
    characters mapped to their Latin skeleton as Unicode TS #39 defines it
    (Cyrillic "о" and fullwidth "ｏ" read as "o"; "i", "I", "1" and "|" read as
    "l"; "0" as "o"; "rn" as "m"). Two ids with the same canonical form are the
    same person: the requester of a review may not approve it under either, and
    they count once toward a quorum. The id as given is what records and audit
    rows show; the canonical form is stored beside it (`Vote.reviewer_key`).

    Merging look-alikes errs on the safe side: two real people whose ids differ only
    by such characters would need a third approver. A policy can define its own
    `canonical_id(reviewer_id)` (for example, an employee number from a directory).

    Raises:
        InvalidDecisionError: the id has no visible character at all.

    Example:
        >>> canonical_reviewer_id(" Officer@Bank ") == canonical_reviewer_id("\u043efficer@bank")
        True
    """
    key = canonical_id(reviewer_id)
    if not key:
        raise InvalidDecisionError(
            f"Invalid reviewer {reviewer_id!r}: a reviewer id needs at least one visible character."
        )
    return key


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A person (or system) deciding reviews: an id and the roles it holds.

    Example:
        >>> Reviewer("officer@bank", roles=frozenset({"smcr_approver"})).id
        'officer@bank'
    """

    id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip() or len(self.id) > 256:
            raise InvalidDecisionError(
                "Invalid reviewer: reviewer must not be blank (a str of at most 256 chars)."
            )
        # Refuses an id of only invisible characters, which would be no one's and anyone's.
        canonical_reviewer_id(self.id)
        if not isinstance(self.roles, frozenset):
            object.__setattr__(self, "roles", frozenset(self.roles))
        if not all(isinstance(r, str) for r in self.roles):
            raise InvalidDecisionError("Reviewer roles must be strings.")
        # Ids and roles end up in audit rows: refuse what no store could keep (NUL...).
        for text in (self.id, *self.roles):
            try:
                plain_text(text)
            except ValueError as exc:
                raise InvalidDecisionError(
                    f"Invalid reviewer: reviewer ids and roles {exc}."
                ) from None


def as_reviewer(reviewer: str | Reviewer) -> Reviewer:
    """Accept a bare id (no roles) or a [`Reviewer`][hitl_compliance.Reviewer]."""
    if isinstance(reviewer, Reviewer):
        return reviewer
    if isinstance(reviewer, str):
        return Reviewer(reviewer)
    raise InvalidDecisionError(
        f"reviewer must be a str id or a Reviewer, got {type(reviewer).__name__}."
    )


@dataclass(frozen=True, slots=True)
class Authorization:
    """A policy's answer for one reviewer on one set of findings."""

    allowed: bool
    reason: str = ""
    missing_roles: frozenset[str] = field(default_factory=frozenset)


@runtime_checkable
class ApprovalPolicy(Protocol):
    """Decides who may decide a review and how many approvals it needs.

    Both methods receive the findings (non-pass [`RuleResult`][hitl_compliance.RuleResult]s)
    that the decision covers: the paused draft's, plus an edit's new ones.

    A policy may also define `canonical_id(reviewer_id: str) -> str`, the form in
    which the coordinator compares ids (requester versus approver, one vote per
    person). It is optional, so policies written before it still satisfy this
    protocol; without it the coordinator uses
    [`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id]. It must return a
    non-empty str and should be idempotent.
    """

    def authorize(self, reviewer: Reviewer, findings: Sequence[RuleResult]) -> Authorization:
        """Whether `reviewer` may decide a review carrying `findings`."""
        ...

    def approvals_required(self, findings: Sequence[RuleResult]) -> int:
        """How many distinct approvers a review carrying `findings` needs (>= 1)."""
        ...


class AllowAllPolicy:
    """Every reviewer may decide everything, with one approval: the default.

    Use a real policy in production; the coordinator logs a warning once when
    it runs without one.
    """

    def authorize(self, reviewer: Reviewer, findings: Sequence[RuleResult]) -> Authorization:
        """Always allowed."""
        return Authorization(True)

    def approvals_required(self, findings: Sequence[RuleResult]) -> int:
        """Always one."""
        return 1

    def canonical_id(self, reviewer_id: str) -> str:
        """The default form: [`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id]."""
        return canonical_reviewer_id(reviewer_id)


def _role_sets(
    mapping: Mapping[str, str | Iterable[str]] | None, what: str
) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for key, roles in (mapping or {}).items():
        role_set = frozenset([roles] if isinstance(roles, str) else roles)
        if not role_set or not all(isinstance(r, str) and r for r in role_set):
            raise ConfigurationError(f"RoleBasedPolicy: {what} {key!r} needs at least one role.")
        out[key] = role_set
    return out


class RoleBasedPolicy:
    """Maps rule names and severities to the roles allowed to decide them, and to quorums.

    For each finding, the reviewer must hold at least one of the roles listed
    for its rule and at least one of the roles listed for its severity. The
    approvals a review needs is the largest quorum among its findings' rules
    and severities (default 1). `default_roles`, when given, apply to findings
    no map mentions.

    Example:
        ```python
        policy = RoleBasedPolicy(
            rule_roles={"investment_advice": "smcr_approver"},
            severity_roles={"high": {"senior_compliance", "smcr_approver"}},
            quorum={"high": 2},  # four-eyes on high-severity findings
        )
        coord = HitlCoordinator(graph, policy=policy)
        ```
    """

    def __init__(
        self,
        *,
        rule_roles: Mapping[str, str | Iterable[str]] | None = None,
        severity_roles: Mapping[str, str | Iterable[str]] | None = None,
        quorum: Mapping[str, int] | None = None,
        default_roles: str | Iterable[str] | None = None,
    ) -> None:
        self._rule_roles = _role_sets(rule_roles, "rule")
        self._severity_roles = _role_sets(severity_roles, "severity")
        self._default = (
            None if default_roles is None else _role_sets({"default": default_roles}, "default")
        )
        self._quorum: dict[str, int] = {}
        for key, count in (quorum or {}).items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigurationError(
                    f"RoleBasedPolicy: quorum for {key!r} must be an int >= 1, got {count!r}."
                )
            self._quorum[key] = count

    def required_roles(self, finding: RuleResult) -> list[frozenset[str]]:
        """The role sets a reviewer must each intersect to decide `finding`."""
        required = [
            roles
            for roles in (
                self._rule_roles.get(finding.rule),
                self._severity_roles.get(finding.severity),
            )
            if roles is not None
        ]
        if not required and self._default is not None:
            required.append(self._default["default"])
        return required

    def authorize(self, reviewer: Reviewer, findings: Sequence[RuleResult]) -> Authorization:
        """Allowed when the reviewer holds a listed role for every finding's rule and severity."""
        missing: set[str] = set()
        blocking: list[str] = []
        for finding in findings:
            for roles in self.required_roles(finding):
                if not roles & reviewer.roles:
                    missing |= roles
                    blocking.append(finding.rule)
        if not missing:
            return Authorization(True)
        return Authorization(
            False,
            reason=(
                f"{reviewer.id} lacks a role for {sorted(set(blocking))}: needs one of "
                f"{sorted(missing)}"
            ),
            missing_roles=frozenset(missing),
        )

    def approvals_required(self, findings: Sequence[RuleResult]) -> int:
        """The largest quorum configured for any finding's rule or severity (default 1)."""
        counts = [1]
        for finding in findings:
            for key in (finding.rule, finding.severity):
                if key in self._quorum:
                    counts.append(self._quorum[key])
        return max(counts)

    def canonical_id(self, reviewer_id: str) -> str:
        """The default form: [`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id].

        Subclass and override to identify people another way.
        """
        return canonical_reviewer_id(reviewer_id)
