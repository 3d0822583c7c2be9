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

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from hitl_compliance._normalize import normalize, normalized_phrase
from hitl_compliance.errors import ConfigurationError

if TYPE_CHECKING:
    from hitl_compliance.state import ComplianceState

__all__ = [
    "ComplianceRule",
    "KeywordRule",
    "RegexRule",
    "RuleResult",
    "Severity",
    "ToolCallRule",
    "Verdict",
    "rule_targets",
    "rule_version",
    "ruleset_fingerprint",
]

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
    A rule may declare a `version` (a str): every reply's ledger record names the
    version of each rule evaluated; without one, a version is derived from the
    rule's configuration (see [`rule_version`][hitl_compliance.rule_version]).

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
        "_version",
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
        version: str | None,
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
        self._version = _checked_version(name, version) or configured_version(
            type(self).__name__,
            {
                "name": name,
                "pattern": pattern.pattern,
                "flags": int(pattern.flags),
                "verdict": verdict,
                "reason": reason,
                "field": field,
                "severity": severity,
                "exact": self._exact,
            },
        )

    @property
    def name(self) -> str:
        """The rule's unique name."""
        return self._name

    @property
    def severity(self) -> Severity:
        """The severity given to findings."""
        return self._severity

    @property
    def version(self) -> str:
        """The version reply records name for this rule (given, else from its configuration)."""
        return self._version

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
        version: str | None = None,
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
        super().__init__(
            name, pattern, verdict, reason, field, severity, exact=exact, fold=True, version=version
        )
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
        version: str | None = None,
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
        super().__init__(
            name,
            compiled,
            verdict,
            reason,
            field,
            severity,
            exact=exact,
            fold=False,
            version=version,
        )


Target = Literal["text", "tool_call"]
_TARGETS: frozenset[str] = frozenset({"text", "tool_call"})


def rule_targets(rule: object) -> frozenset[str]:
    """What a rule inspects in a [`compliance_gate`][hitl_compliance.compliance_gate]:
    its `applies_to` (`"text"`, `"tool_call"` or both), else the reply text only.

    A rule written for text never sees a tool call's arguments unless it says so
    with `applies_to = ("text", "tool_call")`.

    Raises:
        ConfigurationError: `applies_to` names something else.
    """
    declared = getattr(rule, "applies_to", None)
    if declared is None:
        return frozenset({"text"})
    targets = frozenset([declared] if isinstance(declared, str) else declared)
    if not targets or not targets <= _TARGETS:
        raise ConfigurationError(
            f"Rule {getattr(rule, 'name', rule)!r}: applies_to must name 'text' and/or "
            f"'tool_call', got {declared!r}."
        )
    return targets


_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def _amount(value: object) -> float | None:
    """A finite number from a tool argument (`5000`, `5000.5`, `"5,000"`), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        cleaned = value.strip().replace(",", "").replace("_", "").lstrip("£$€")
        if not _NUMBER.match(cleaned):
            return None
        number = float(cleaned)
    else:
        return None
    return number if math.isfinite(number) else None


class ToolCallRule:
    """Flags an `AIMessage`'s tool calls by tool name and, optionally, a numeric argument.

    Runs only on tool calls, in a [`compliance_gate`][hitl_compliance.compliance_gate]
    (each call of the model's last message is its own review there); on text, and in
    [`build_compliance_graph`][hitl_compliance.build_compliance_graph], it always passes.

    * Without `argument`, every call to one of `tools` gets `verdict`.
    * With `argument`, the call is flagged `block` when the value is above
      `block_above`, `review` when above `review_above`, and passes otherwise. A
      value that is missing or not a number (after removing thousands separators
      and a currency sign) is sent to `review`: the rule fails closed.

    Evidence names the call and the argument (`"transfer: amount_gbp=5000"`), so a
    reviewer sees why; the policy keys roles by the rule's name and `severity`.

    Example:
        >>> rule = ToolCallRule("transfer_limits", "transfer", argument="amount_gbp",
        ...                     review_above=1_000, block_above=25_000, severity="high")
        >>> from hitl_compliance import GateView
        >>> call = {"name": "transfer", "args": {"amount_gbp": 5000}, "id": "c1"}
        >>> result = rule.evaluate(GateView(tool_call=call))
        >>> result.verdict, result.evidence
        ('review', ('transfer: amount_gbp=5000',))
    """

    __slots__ = (
        "_argument",
        "_block_above",
        "_name",
        "_reason",
        "_review_above",
        "_severity",
        "_tools",
        "_verdict",
        "_version",
    )

    applies_to: tuple[Target, ...] = ("tool_call",)

    def __init__(
        self,
        name: str,
        tools: str | Iterable[str],
        *,
        argument: str | None = None,
        review_above: float | None = None,
        block_above: float | None = None,
        verdict: Verdict = "review",
        reason: str = "",
        severity: Severity = "high",
        version: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("A rule needs a non-empty name.")
        names = (tools,) if isinstance(tools, str) else tuple(tools)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ConfigurationError(f"Rule {name!r}: tools must be one or more tool names.")
        if verdict not in ("review", "block"):
            raise ConfigurationError(
                f"Rule {name!r}: verdict on a match must be 'review' or 'block', got {verdict!r}."
            )
        if severity not in _SEVERITIES:
            raise ConfigurationError(
                f"Rule {name!r}: severity must be low/medium/high/critical, got {severity!r}."
            )
        limits = [v for v in (review_above, block_above) if v is not None]
        if argument is None and limits:
            raise ConfigurationError(
                f"Rule {name!r}: review_above/block_above compare an argument; name it with "
                "argument=."
            )
        if argument is not None:
            if not isinstance(argument, str) or not argument:
                raise ConfigurationError(f"Rule {name!r}: argument must be an argument name.")
            if not limits:
                raise ConfigurationError(
                    f"Rule {name!r}: give review_above and/or block_above for {argument!r}."
                )
            if any(_amount(v) is None for v in limits):
                raise ConfigurationError(f"Rule {name!r}: limits must be finite numbers.")
            if review_above is not None and block_above is not None and block_above < review_above:
                raise ConfigurationError(
                    f"Rule {name!r}: block_above ({block_above}) is below review_above "
                    f"({review_above})."
                )
        self._name = name
        self._tools = frozenset(names)
        self._argument = argument
        self._review_above = review_above
        self._block_above = block_above
        self._verdict: Verdict = verdict
        self._reason = reason
        self._severity: Severity = severity
        self._version = _checked_version(name, version) or configured_version(
            "ToolCallRule",
            {
                "name": name,
                "tools": sorted(self._tools),
                "argument": argument,
                "review_above": None if review_above is None else float(review_above),
                "block_above": None if block_above is None else float(block_above),
                "verdict": verdict,
                "reason": reason,
                "severity": severity,
            },
        )

    @property
    def name(self) -> str:
        """The rule's unique name."""
        return self._name

    @property
    def version(self) -> str:
        """The version reply records name for this rule (given, else from its configuration)."""
        return self._version

    @property
    def tools(self) -> frozenset[str]:
        """The tool names the rule inspects."""
        return self._tools

    @property
    def severity(self) -> Severity:
        """The severity given to findings."""
        return self._severity

    def evaluate(self, state: ComplianceState) -> RuleResult:
        """Judge the tool call under check (`state.tool_call`); pass when there is none."""
        call = getattr(state, "tool_call", None)
        if not isinstance(call, Mapping) or call.get("name") not in self._tools:
            return RuleResult(self._name, "pass")
        tool = str(call["name"])
        args = call.get("args")
        args = args if isinstance(args, Mapping) else {}
        if self._argument is None:
            evidence = f"{tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
            reason = self._why(f"every call to {tool} is checked")
            return RuleResult(self._name, self._verdict, reason, (evidence,), self._severity)
        raw = args.get(self._argument)
        evidence = (
            f"{tool}: {self._argument}={raw!r}"
            if isinstance(raw, str)
            else (f"{tool}: {self._argument}={raw}")
        )
        value = _amount(raw)
        if value is None:
            reason = self._why(f"{tool} has no numeric {self._argument!r} to check")
            return RuleResult(self._name, "review", reason, (evidence,), self._severity)
        shown = f"{value:,.2f}".removesuffix(".00")
        if self._block_above is not None and value > self._block_above:
            reason = self._why(f"{tool} of {shown} is above the limit of {self._block_above:,}")
            return RuleResult(self._name, "block", reason, (evidence,), "critical")
        if self._review_above is not None and value > self._review_above:
            reason = self._why(f"{tool} of {shown} is above {self._review_above:,}")
            return RuleResult(self._name, "review", reason, (evidence,), self._severity)
        return RuleResult(self._name, "pass")

    def _why(self, found: str) -> str:
        return f"{self._reason} ({found})" if self._reason else found

    def __repr__(self) -> str:
        return (
            f"ToolCallRule({self._name!r}, {sorted(self._tools)!r}, argument={self._argument!r}, "
            f"review_above={self._review_above!r}, block_above={self._block_above!r})"
        )


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _checked_version(name: str, version: object) -> str | None:
    if version is None:
        return None
    if not isinstance(version, str) or not version.strip():
        raise ConfigurationError(f"Rule {name!r}: version must be a non-empty str.")
    return version.strip()


def configured_version(kind: str, config: Mapping[str, Any]) -> str:
    """A version derived from a rule's configuration: `cfg-` and 12 hex digits of its hash.

    Two rules of the same kind and configuration share it in every process; any
    change of pattern, verdict, reason, severity or limits changes it.
    """
    blob = json.dumps({"kind": kind, **config}, sort_keys=True, separators=(",", ":"))
    return "cfg-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def rule_version(rule: object) -> str:
    """The version of `rule` recorded in the ledger: its declared `version`, else derived.

    A rule without one gets a version derived from its class and configuration
    (its own `__repr__` when it defines one, else its attributes), so a changed
    rule is told apart in the records even when nobody bumped a number.

    Example:
        >>> rule_version(KeywordRule("guarantee", ["guaranteed"], version="2026.1"))
        '2026.1'
        >>> rule_version(KeywordRule("guarantee", ["guaranteed"])).startswith("cfg-")
        True
    """
    declared = getattr(rule, "version", None)
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    kind = f"{type(rule).__module__}.{type(rule).__qualname__}"
    if type(rule).__repr__ is not object.__repr__:
        described = repr(rule)
    else:
        attrs = getattr(rule, "__dict__", None) or {
            slot: getattr(rule, slot, None)
            for klass in type(rule).__mro__
            for slot in getattr(klass, "__slots__", ())
        }
        described = repr(sorted((str(k), repr(v)) for k, v in attrs.items()))
    # Object addresses differ per process; the configuration does not.
    return configured_version(kind, {"repr": _ADDRESS.sub("", described)})


def ruleset_fingerprint(rules: Iterable[object]) -> str:
    """SHA-256 over the sorted `(name, version)` pairs of `rules`: one id for a rule set.

    The same rules in any order share it; adding, removing or changing a rule
    changes it. Every reply's ledger record carries it.
    """
    pairs = sorted((str(getattr(r, "name", "")), rule_version(r)) for r in rules)
    blob = json.dumps(pairs, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
