"""Compliance rules: the [`ComplianceRule`][hitl_compliance.ComplianceRule] protocol and built-ins.

A rule reads the graph state (usually `state.draft_response`) and returns a
frozen [`RuleResult`][hitl_compliance.RuleResult]: `pass`, `review` (a human
must decide) or `block` (rejected without a human). `evidence` holds the exact
text spans that triggered the verdict, so reviewers and auditors see why.

The built-in rules match on a normalised view of the text (NFKC, invisible
format characters removed, any white space as one space, confusable letters as
their Latin skeleton, and case-folded for `KeywordRule`), so a draft cannot slip
a phrase past them with a zero-width space or a Cyrillic "а"; their evidence is
still the text as written. `exact=True` opts a rule out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from hitl_compliance._normalize import normalize, normalized_phrase
from hitl_compliance.errors import ConfigurationError

if TYPE_CHECKING:
    from hitl_compliance.state import ComplianceState

__all__ = ["ComplianceRule", "KeywordRule", "RegexRule", "RuleResult", "Severity", "Verdict"]

Verdict = Literal["pass", "review", "block"]
"""What a rule decided: deliver (`pass`), ask a human (`review`), or refuse (`block`)."""

Severity = Literal["low", "medium", "high", "critical"]
"""How serious a finding is; an [`ApprovalPolicy`][hitl_compliance.ApprovalPolicy] may
require roles or several approvers by severity."""

_VERDICTS: frozenset[str] = frozenset({"pass", "review", "block"})
_SEVERITIES: frozenset[str] = frozenset({"low", "medium", "high", "critical"})
_SEVERITY = {"pass": 0, "review": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The frozen outcome of one rule on one draft.

    Example:
        >>> r = RuleResult("guarantee", "review", "promises returns", ("guaranteed returns",))
        >>> r.verdict, r.evidence
        ('review', ('guaranteed returns',))
    """

    rule: str
    verdict: Verdict
    reason: str = ""
    evidence: tuple[str, ...] = field(default=())
    severity: Severity = "medium"

    def __post_init__(self) -> None:
        if self.verdict not in _VERDICTS:
            raise ConfigurationError(
                f"RuleResult verdict must be one of pass/review/block, got {self.verdict!r} "
                f"from rule {self.rule!r}."
            )
        if self.severity not in _SEVERITIES:
            raise ConfigurationError(
                f"RuleResult severity must be one of low/medium/high/critical, got "
                f"{self.severity!r} from rule {self.rule!r}."
            )
        if not isinstance(self.evidence, tuple):
            object.__setattr__(self, "evidence", tuple(self.evidence))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as kept in checkpointed state and review stores."""
        return {
            "rule": self.rule,
            "verdict": self.verdict,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        """Rebuild a result from [`to_dict`][hitl_compliance.RuleResult.to_dict] output."""
        return cls(
            rule=str(data["rule"]),
            verdict=data["verdict"],
            reason=str(data.get("reason", "")),
            evidence=tuple(str(e) for e in data.get("evidence", ())),
            severity=data.get("severity", "medium"),
        )


def worst_verdict(results: Iterable[RuleResult]) -> Verdict:
    """The most severe verdict among `results` (`pass` when there are none)."""
    worst: Verdict = "pass"
    for result in results:
        if _SEVERITY[result.verdict] > _SEVERITY[worst]:
            worst = result.verdict
    return worst


@runtime_checkable
class ComplianceRule(Protocol):
    """A check run on every draft before it may reach a customer.

    `evaluate` may be sync or async. A rule that raises sends the draft to human
    review with the error as the reason: a broken rule never lets a draft through.

    Example:
        ```python
        class NoPhoneNumbers:
            name = "no_phone_numbers"

            def evaluate(self, state: ComplianceState) -> RuleResult:
                found = re.findall(r"\\+44\\d{10}", state.draft_response or "")
                return RuleResult(self.name, "review" if found else "pass", evidence=tuple(found))
        ```
    """

    @property
    def name(self) -> str:
        """Unique name of the rule within a graph; recorded on every finding."""
        ...

    def evaluate(self, state: ComplianceState) -> RuleResult | Awaitable[RuleResult]:
        """Judge the state's draft and return a [`RuleResult`][hitl_compliance.RuleResult]."""
        ...


class _PatternRule:
    """Shared machinery of the built-in rules: one compiled regex over one state field.

    Unless `exact`, the regex searches the normalised view of the field
    (case-folded when `fold`) and each match is mapped back to the original text.
    """

    __slots__ = (
        "_exact",
        "_field",
        "_fold",
        "_name",
        "_pattern",
        "_reason",
        "_severity",
        "_verdict",
    )

    def __init__(
        self,
        name: str,
        pattern: re.Pattern[str],
        verdict: Verdict,
        reason: str,
        field: str,
        severity: Severity,
        *,
        exact: bool,
        fold: bool,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("A rule needs a non-empty name.")
        if verdict not in ("review", "block"):
            raise ConfigurationError(
                f"Rule {name!r}: verdict on a match must be 'review' or 'block', got {verdict!r}."
            )
        if severity not in _SEVERITIES:
            raise ConfigurationError(
                f"Rule {name!r}: severity must be low/medium/high/critical, got {severity!r}."
            )
        self._severity: Severity = severity
        self._name = name
        self._pattern = pattern
        self._verdict: Verdict = verdict
        self._reason = reason
        self._field = field
        self._exact = bool(exact)
        self._fold = fold

    @property
    def name(self) -> str:
        """The rule's unique name."""
        return self._name

    @property
    def severity(self) -> Severity:
        """The severity given to findings."""
        return self._severity

    @property
    def verdict(self) -> Verdict:
        """The verdict given when the pattern matches."""
        return self._verdict

    @property
    def field(self) -> str:
        """The state field searched (default `draft_response`)."""
        return self._field

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled pattern the rule searches for (over the normalised view unless `exact`)."""
        return self._pattern

    @property
    def exact(self) -> bool:
        """Whether the rule matches the text exactly as written, not its normalised view."""
        return self._exact

    def evaluate(self, state: ComplianceState) -> RuleResult:
        """Search the configured field; every distinct match becomes evidence.

        Evidence is always the original text a match covers, so it can be found (and
        highlighted) in the draft, invisible characters and look-alikes included.
        """
        # A missing field raises (and so fails closed to review) rather than passing.
        text = str(getattr(state, self._field) or "")
        evidence: list[str] = []
        if self._exact:
            spans = [m.group(0) for m in self._pattern.finditer(text)]
        else:
            view = normalize(text, fold=self._fold)
            spans = []
            for match in self._pattern.finditer(view.text):
                if match.end() > match.start():
                    start, end = view.original_span(match.start(), match.end())
                    spans.append(text[start:end])
        for span in spans:
            if span and span not in evidence:
                evidence.append(span)
        if not evidence:
            return RuleResult(self._name, "pass")
        return RuleResult(self._name, self._verdict, self._reason, tuple(evidence), self._severity)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name!r}, {self._pattern.pattern!r}, "
            f"verdict={self._verdict!r}, reason={self._reason!r}"
            + (", exact=True)" if self._exact else ")")
        )


class KeywordRule(_PatternRule):
    """Flags drafts containing any of `phrases` (case-insensitive, whole words only).

    Phrases and drafts are compared in the normalised view (NFKC, format characters
    removed, white space as one space, confusable letters as their Latin skeleton,
    case-folded), so "gu\u200baranteed" or "guаranteed" with a Cyrillic "а" still
    matches "guaranteed". `exact=True` compares the text as written (still ignoring
    case), for phrases whose exact characters matter.

    Example:
        >>> rule = KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")
        >>> from hitl_compliance import ComplianceState
        >>> rule.evaluate(ComplianceState(draft_response="Guaranteed returns of 9%!")).evidence
        ('Guaranteed returns',)
    """

    __slots__ = ("_phrases",)

    def __init__(
        self,
        name: str,
        phrases: Iterable[str],
        *,
        verdict: Verdict = "review",
        reason: str = "",
        field: str = "draft_response",
        severity: Severity = "medium",
        exact: bool = False,
    ) -> None:
        if isinstance(phrases, str):
            raise ConfigurationError(
                f"Rule {name!r}: phrases must be a list of strings, not one string."
            )
        phrase_list = list(phrases)
        if not all(isinstance(p, str) for p in phrase_list):
            raise ConfigurationError(f"Rule {name!r}: every phrase must be a str.")
        cleaned = tuple(p.strip() for p in phrase_list if p.strip())
        if not cleaned:
            raise ConfigurationError(f"Rule {name!r}: give at least one non-empty phrase.")
        searched = cleaned if exact else tuple(normalized_phrase(p) for p in cleaned)
        if not all(searched):
            raise ConfigurationError(
                f"Rule {name!r}: a phrase is only invisible characters, which drafts are "
                "matched without; remove it or pass exact=True."
            )
        # Longest first so "guaranteed returns" wins over "guaranteed" in one alternation;
        # (?<!\w)/(?!\w) are word boundaries that also work for phrases ending in punctuation.
        alternation = "|".join(
            re.escape(p) for p in sorted(dict.fromkeys(searched), key=len, reverse=True)
        )
        pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
        super().__init__(name, pattern, verdict, reason, field, severity, exact=exact, fold=True)
        self._phrases = cleaned

    @property
    def phrases(self) -> tuple[str, ...]:
        """The phrases searched for."""
        return self._phrases


class RegexRule(_PatternRule):
    """Flags drafts matching a regular expression (a `str` or compiled pattern).

    The pattern searches the normalised view of the text (NFKC, format characters
    removed, any run of white space or line breaks as one space, confusable letters
    as their Latin skeleton) without case folding: the pattern's own flags decide
    case, so `[A-Z]{2}` keeps its meaning and `re.IGNORECASE` ignores case.
    `exact=True` searches the text as written, for patterns that need line breaks,
    invisible characters or non-Latin letters as they are.

    Example:
        >>> rule = RegexRule("percent_return", r"\\d+% (?:return|yield)", verdict="block")
        >>> from hitl_compliance import ComplianceState
        >>> rule.evaluate(ComplianceState(draft_response="A 12% return")).verdict
        'block'
    """

    __slots__ = ()

    def __init__(
        self,
        name: str,
        pattern: str | re.Pattern[str],
        *,
        verdict: Verdict = "review",
        reason: str = "",
        field: str = "draft_response",
        flags: int = 0,
        severity: Severity = "medium",
        exact: bool = False,
    ) -> None:
        if isinstance(pattern, re.Pattern):
            if flags:
                raise ConfigurationError(
                    f"Rule {name!r}: flags= applies to a str pattern; compile them into the "
                    "pattern you passed instead."
                )
            compiled = pattern
        else:
            try:
                compiled = re.compile(pattern, flags)
            except (re.error, TypeError) as exc:
                raise ConfigurationError(
                    f"Rule {name!r}: {pattern!r} is not a valid regular expression ({exc})."
                ) from exc
        if compiled.pattern == "":
            raise ConfigurationError(f"Rule {name!r}: the pattern is empty and would match all.")
        super().__init__(name, compiled, verdict, reason, field, severity, exact=exact, fold=False)
