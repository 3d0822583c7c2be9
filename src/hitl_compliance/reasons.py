"""Reason codes: a configurable taxonomy of why a review was decided as it was, and when one is due.

A [`ReasonCode`][hitl_compliance.ReasonCode] is a stable machine code with a
label and a description; [`ReasonCodes`][hitl_compliance.ReasonCodes] is the
taxonomy a coordinator accepts ([`FCA_RETAIL_REASON_CODES`][hitl_compliance.FCA_RETAIL_REASON_CODES]
by default), and [`ReasonPolicy`][hitl_compliance.ReasonPolicy] says which
actions (`approve`, `edit`, `reject`, `expiry`) need one. The code a decision
carries is checked on every path a decision takes (`approve()` / `reject()`,
a raw `Command(resume=...)`, a server run, the SLA) before anything is
written, and recorded as `reason_code` in the payload of its audit row, where
[`HitlCoordinator.reason_code_counts`][hitl_compliance.HitlCoordinator.reason_code_counts]
counts it.

Example:
    ```python
    codes = FCA_RETAIL_REASON_CODES.with_codes(
        ReasonCode("crypto_promotion", "Cryptoasset promotion", "Needs the crypto risk warning.")
    )
    coord = HitlCoordinator(
        graph,
        reason_codes=codes,
        reason_policy=ReasonPolicy(require={"reject", "edit", "expiry"}, expiry_code="sla_expired"),
    )
    await coord.reject("t1", reviewer="officer@bank", reason_code="misleading_promotion")
    ```
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from hitl_compliance.errors import ConfigurationError, ReasonCodeError
from hitl_compliance.models import AuditRecord

__all__ = [
    "FCA_RETAIL_REASON_CODES",
    "ReasonAction",
    "ReasonCode",
    "ReasonCodeCount",
    "ReasonCodes",
    "ReasonPolicy",
    "check_reason",
    "count_reason_codes",
    "reason_action",
]

ReasonAction = Literal["approve", "edit", "reject", "expiry"]
"""What a decision did: approved the draft as it is, approved an edit, rejected, or the SLA's."""

_ACTIONS: frozenset[str] = frozenset(get_args(ReasonAction))
_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """One reason of the taxonomy: a stable `code` (recorded), a `label` and a `description`.

    `requires_text`: a decision with this code must also give a free-text
    reason (`reason=`), as `other` does.

    Example:
        ```python
        ReasonCode("crypto_promotion", "Cryptoasset promotion", "COBS 4.12A risk warning missing.")
        ```
    """

    code: str
    label: str
    description: str = ""
    requires_text: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _CODE_RE.fullmatch(self.code):
            raise ConfigurationError(
                f"A reason code is lower-case letters, digits and '_', starting with a "
                f"letter, at most 64 characters; got {self.code!r}."
            )
        if not isinstance(self.label, str) or not self.label.strip():
            raise ConfigurationError(f"Reason code {self.code!r} needs a label.")
        if not isinstance(self.description, str):
            raise ConfigurationError(f"Reason code {self.code!r}: description must be a str.")


@dataclass(frozen=True, slots=True)
class ReasonCodes:
    """A taxonomy of reason codes, in the order reviewers are shown them; codes are unique.

    Example:
        ```python
        codes = ReasonCodes((ReasonCode("off_brand", "Off brand"), ReasonCode("other", "Other")))
        assert "off_brand" in codes
        ```
    """

    codes: tuple[ReasonCode, ...]

    def __post_init__(self) -> None:
        codes = tuple(self.codes)
        object.__setattr__(self, "codes", codes)
        if not codes:
            raise ConfigurationError("A reason code taxonomy needs at least one code.")
        for each in codes:
            if not isinstance(each, ReasonCode):
                raise ConfigurationError(
                    f"ReasonCodes holds ReasonCode values, got {type(each).__name__}."
                )
        seen = [c.code for c in codes]
        twice = sorted({c for c in seen if seen.count(c) > 1})
        if twice:
            raise ConfigurationError(f"Reason codes must be unique; repeated: {twice}.")

    def __iter__(self) -> Iterator[ReasonCode]:
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: object) -> bool:
        return any(c.code == code for c in self.codes)

    def get(self, code: str) -> ReasonCode | None:
        """The reason with this code, or None."""
        for each in self.codes:
            if each.code == code:
                return each
        return None

    def with_codes(self, *codes: ReasonCode) -> ReasonCodes:
        """This taxonomy plus `codes` (a code already present is replaced in place)."""
        new = {c.code: c for c in codes}
        kept = [new.pop(c.code, c) for c in self.codes]
        return ReasonCodes((*kept, *new.values()))


FCA_RETAIL_REASON_CODES = ReasonCodes(
    (
        ReasonCode(
            "misleading_promotion",
            "Misleading financial promotion",
            "Not clear, fair and not misleading (COBS 4.2): overstated returns, hidden risks.",
        ),
        ReasonCode(
            "missing_risk_warning",
            "Missing risk warning",
            "A required risk warning or prominent risk disclosure is absent (COBS 4).",
        ),
        ReasonCode(
            "unsuitable_advice",
            "Unsuitable advice",
            "A personal recommendation without a suitability assessment, or unsuitable "
            "for the customer (COBS 9/9A).",
        ),
        ReasonCode(
            "vulnerable_customer",
            "Vulnerable customer",
            "Signs of vulnerability not taken into account (FG21/1, Consumer Duty).",
        ),
        ReasonCode(
            "unfair_terms",
            "Unfair terms or treatment",
            "Terms or outcomes that are unfair to the customer (CRA 2015, PRIN 2A fair value).",
        ),
        ReasonCode(
            "costs_charges_disclosure",
            "Costs and charges not disclosed",
            "Costs, charges or fees missing or unclear (COBS 6.1ZA).",
        ),
        ReasonCode(
            "consumer_understanding",
            "Poor consumer understanding",
            "Jargon, ambiguity or missing information the customer needs to decide "
            "(Consumer Duty, PRIN 2A.5).",
        ),
        ReasonCode(
            "pressure_selling",
            "Pressure selling",
            "Urgency, pressure or incentives that push the customer to act (PRIN 2A.2).",
        ),
        ReasonCode(
            "complaint_handling",
            "Complaint not handled",
            "An expression of dissatisfaction treated as anything but a complaint (DISP 1).",
        ),
        ReasonCode(
            "personal_data",
            "Personal data exposure",
            "Personal or account data disclosed that should not be (UK GDPR).",
        ),
        ReasonCode(
            "compliant_as_drafted",
            "Compliant as drafted",
            "The finding was a false positive; the draft is fine.",
        ),
        ReasonCode(
            "sla_expired",
            "Review deadline passed",
            "Nobody decided within the SLA; the system resolved the review.",
        ),
        ReasonCode(
            "other",
            "Other",
            "Anything else; say what in the reason text.",
            requires_text=True,
        ),
    )
)
"""The default taxonomy: FCA retail conduct reasons, a false positive, the SLA's, and `other`."""


@dataclass(frozen=True, slots=True)
class ReasonPolicy:
    """Which actions need a reason code, and the code the SLA records when it decides.

    Args:
        require: Of `"approve"` (the draft as it is), `"edit"` (an approval of an
            edited reply or tool arguments), `"reject"` and `"expiry"` (the SLA's
            reject / approve_draft). Default: none (a code is optional, but checked
            when given).
        expiry_code: The code an SLA outcome records; required when `"expiry"` is.

    Example:
        ```python
        ReasonPolicy(require={"reject", "edit", "expiry"}, expiry_code="sla_expired")
        ```
    """

    require: frozenset[ReasonAction] = field(default_factory=frozenset)
    expiry_code: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.require, str) or not isinstance(self.require, Iterable):
            raise ConfigurationError(
                f"ReasonPolicy(require=...) is a set of actions, got {self.require!r}."
            )
        require = frozenset(self.require)
        unknown = sorted(require - _ACTIONS)
        if unknown:
            raise ConfigurationError(
                f"ReasonPolicy(require=...) takes {sorted(_ACTIONS)}; unknown: {unknown}."
            )
        object.__setattr__(self, "require", require)
        if "expiry" in require and self.expiry_code is None:
            raise ConfigurationError(
                "ReasonPolicy requires a code on expiry: name it with expiry_code= "
                "(say 'sla_expired')."
            )

    def requires(self, action: ReasonAction) -> bool:
        """Whether a decision of this action needs a reason code."""
        return action in self.require

    def check(self, codes: ReasonCodes) -> None:
        """Refuse a policy whose `expiry_code` is not in `codes` (ConfigurationError)."""
        if self.expiry_code is None:
            return
        reason = codes.get(self.expiry_code)
        if reason is None:
            raise ConfigurationError(
                f"ReasonPolicy(expiry_code={self.expiry_code!r}) is not in the reason codes; "
                "add it to the taxonomy or pick one of its codes."
            )
        if reason.requires_text:
            raise ConfigurationError(
                f"ReasonPolicy(expiry_code={self.expiry_code!r}) needs a reason text, which "
                "the SLA has none of; pick a code without requires_text (say 'sla_expired')."
            )


@dataclass(frozen=True, slots=True)
class ReasonCodeCount:
    """How many audit rows of one `event` (`approved`, `rejected`, `expired`) carry `code`."""

    code: str
    event: str
    count: int


def reason_action(*, approved: bool, system: bool, edited: bool) -> ReasonAction:
    """What a decision is, for the policy: `expiry` (the SLA's), `reject`, `edit` or `approve`."""
    if system:
        return "expiry"
    if not approved:
        return "reject"
    return "edit" if edited else "approve"


def check_reason(
    codes: ReasonCodes,
    policy: ReasonPolicy,
    *,
    action: ReasonAction,
    code: str | None,
    text: str | None,
    thread_id: str | None = None,
) -> None:
    """Refuse a decision whose code is unknown, missing where required, or lacks its text.

    Raises:
        ReasonCodeError: with `code` and `action`; nothing has been written.
    """
    if code is None:
        if policy.requires(action):
            raise ReasonCodeError(
                f"A reason code is required to {action} (the reason policy says so); "
                f"pass reason_code= one of {[c.code for c in codes]}.",
                thread_id=thread_id,
                action=action,
            )
        return
    reason = codes.get(code)
    if reason is None:
        raise ReasonCodeError(
            f"Unknown reason code {code!r}; pick one of {[c.code for c in codes]}.",
            thread_id=thread_id,
            code=code,
            action=action,
        )
    if reason.requires_text and not (text or "").strip():
        raise ReasonCodeError(
            f"Reason code {code!r} needs a reason text: say why in reason=.",
            thread_id=thread_id,
            code=code,
            action=action,
        )


def count_reason_codes(
    rows: Iterable[AuditRecord], *, since: datetime | None, until: datetime | None
) -> tuple[ReasonCodeCount, ...]:
    """Count the `reason_code` of audit rows at `since <= at < until`, by code then event.

    What a store without its own query computes from its rows; the SQL stores
    run the same count as one `GROUP BY`.
    """
    counted: Counter[tuple[str, str]] = Counter()
    for row in rows:
        code = row.payload.get("reason_code")
        if not isinstance(code, str):
            continue
        if (since is not None and row.at < since) or (until is not None and row.at >= until):
            continue
        counted[(code, row.event)] += 1
    return tuple(ReasonCodeCount(code, event, n) for (code, event), n in sorted(counted.items()))
