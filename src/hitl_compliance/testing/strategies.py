"""Hypothesis strategies: customer messages, drafts, rules, reviewers, decisions, lifecycles.

Each is an `@st.composite` strategy with keyword options, so you can narrow it
to your own domain (your trigger phrases, your reviewers and roles):

```python
@given(draft=drafts(triggers=["guaranteed payout"]), rules=rule_sets(max_size=2))
def test_my_rules(draft, rules): ...
```

Needs Hypothesis: `pip install "hitl-compliance[testing]"`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "hitl_compliance.testing.strategies needs Hypothesis: "
        'pip install "hitl-compliance[testing]"'
    ) from exc

from hitl_compliance._normalize import latin_skeleton_map
from hitl_compliance.policy import Reviewer
from hitl_compliance.rules import KeywordRule, RegexRule, Severity, Verdict
from hitl_compliance.testing.faults import FaultPoint
from hitl_compliance.testing.lifecycle import DecisionKind, HumanDecision, Step

__all__ = [
    "DECISION_KINDS",
    "FILLER",
    "PATTERNS",
    "ROLES",
    "SEVERITIES",
    "TRIGGERS",
    "BuiltinRule",
    "Scenario",
    "customer_messages",
    "decisions",
    "draft_chunks",
    "drafts",
    "evasions",
    "lifecycles",
    "reviewers",
    "rule_sets",
    "scenarios",
    "spellings",
]

TRIGGERS = ("guaranteed returns", "risk-free", "insider", "act now", "double your money")
"""Phrases the generated rules look for and the generated drafts may contain."""

PATTERNS = (r"\d+%", r"\b\d{3}-\d{2}-\d{4}\b", r"(?i)secret", r"\$\d+")
"""Regular expressions the generated `RegexRule`s may use."""

FILLER = ("hello", "our fund", "returns", "may vary", "42%", "$100", "SECRET", "123-45-6789")
"""Harmless and pattern-matching text the generated drafts are padded with."""

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
"""Every finding severity."""

ROLES = ("compliance", "senior_compliance", "smcr_approver")
"""Roles the generated reviewers may hold."""

DECISION_KINDS: tuple[DecisionKind, ...] = ("approve", "edit", "reject", "expire")
"""Every kind of decision."""

BuiltinRule = KeywordRule | RegexRule
"""The rules `rule_sets` generates; their `evaluate` is synchronous."""

_REVIEWER_IDS = ("alice@bank", "bob@bank", "carol@bank", "Ωfficer")
_QUESTIONS = (
    "Should I {verb} {product}?",
    "Is {product} safe?",
    "Can you {verb} {product} for me?",
    "What returns does {product} give?",
)
_VERBS = ("buy", "sell", "invest in", "cancel", "switch to")
_PRODUCTS = ("the Global Equity Fund", "my ISA", "a fixed-rate bond", "crypto", "my pension")

# Only text every store can keep, as the coordinator requires: no lone surrogates (the
# checkpoint serializer would also turn them into "?") and no NUL (PostgreSQL refuses it).
_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")
_WORDS = st.from_regex(r"[a-z]{3,10}", fullmatch=True)


@dataclass(frozen=True)
class Scenario:
    """One turn's story: the draft the LLM writes, and what a reviewer decides if it pauses."""

    draft: str
    decision: HumanDecision


@st.composite
def customer_messages(draw: st.DrawFn) -> str:
    """A customer's message: a templated question about a product, or arbitrary non-blank text."""
    if draw(st.booleans()):
        template = draw(st.sampled_from(_QUESTIONS))
        return template.format(
            verb=draw(st.sampled_from(_VERBS)), product=draw(st.sampled_from(_PRODUCTS))
        )
    return draw(st.text(_TEXT, min_size=1, max_size=60).filter(str.strip))


@st.composite
def draft_chunks(
    draw: st.DrawFn,
    *,
    triggers: Sequence[str] = TRIGGERS,
    filler: Sequence[str] = FILLER,
) -> str:
    """A chunk of draft text: a trigger phrase, filler or arbitrary text, in one of three cases."""
    options = [st.sampled_from(filler), st.text(_TEXT, max_size=12)]
    if triggers:
        options.insert(0, st.sampled_from(triggers))
    chunk = draw(st.one_of(options))
    case = draw(st.sampled_from(["same", "upper", "title"]))
    return {"same": chunk, "upper": chunk.upper(), "title": chunk.title()}[case]


@st.composite
def drafts(
    draw: st.DrawFn,
    *,
    triggers: Sequence[str] = TRIGGERS,
    filler: Sequence[str] = FILLER,
    max_chunks: int = 6,
) -> str:
    """A drafted reply seeded with rule-triggering phrases (`triggers`) and pattern matches."""
    parts = draw(st.lists(draft_chunks(triggers=triggers, filler=filler), max_size=max_chunks))
    separator = draw(st.sampled_from([" ", ", ", ". ", "\n", ""]))
    return separator.join(parts)


# Every character Python reads as white space (the last one is U+3000).
_UNICODE_SPACES = tuple(c for c in map(chr, range(0x3001)) if c.isspace())


def _latin_confusables() -> dict[str, tuple[str, ...]]:
    """Each ASCII letter and the non-ASCII look-alikes the built-in rules map to it."""
    found: dict[str, list[str]] = {}
    for source, target in latin_skeleton_map().items():
        if len(target) == 1:
            found.setdefault(target, []).append(source)
    return {letter: tuple(sorted(chars)) for letter, chars in found.items()}


@st.composite
def evasions(
    draw: st.DrawFn,
    text: str,
    *,
    confusables: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """`text` as it could be disguised without changing what a reader sees.

    Format characters (zero-width space, soft hyphen, bidi controls...) inserted
    anywhere, any space replaced by any Unicode space, any letter replaced by one of
    its `confusables` (default: the look-alikes the built-in rules read as that
    letter). A rule that flags `text` should flag every evasion of it:

    ```python
    @given(st.data())
    def test_my_rule_sees_through_disguises(data):
        draft = data.draw(evasions("guaranteed payout"))
        assert my_rule.evaluate(ComplianceState(draft_response=draft)).verdict != "pass"
    ```
    """
    table = _latin_confusables() if confusables is None else confusables
    format_characters = st.characters(categories=["Cf"], codec="utf-8")
    out: list[str] = []
    for char in text:
        if draw(st.booleans()):
            out.append(draw(format_characters))
        if char == " " and draw(st.booleans()):
            char = draw(st.sampled_from(_UNICODE_SPACES))
        elif table.get(char) and draw(st.booleans()):
            char = draw(st.sampled_from(list(table[char])))
        out.append(char)
    if draw(st.booleans()):
        out.append(draw(format_characters))
    return "".join(out)


@st.composite
def spellings(
    draw: st.DrawFn,
    identity: str,
    *,
    confusables: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Another spelling of a reviewer id that names the same person.

    Each character may change case, turn into its fullwidth (NFKC-equivalent) form
    or into one of its `confusables` (default: the look-alikes the canonical form
    reads as that letter); Unicode spaces and invisible format characters may be
    added around and inside. [`canonical_reviewer_id`][hitl_compliance.canonical_reviewer_id]
    gives every spelling the same form, so the coordinator treats them as one person.
    """
    table = _latin_confusables() if confusables is None else confusables
    padding = st.one_of(
        st.sampled_from(_UNICODE_SPACES), st.characters(categories=["Cf"], codec="utf-8")
    )
    out: list[str] = [draw(padding)] if draw(st.booleans()) else []
    for char in identity:
        how = draw(st.sampled_from(["same", "case", "fullwidth", "look-alike"]))
        if how == "case":
            char = char.swapcase()
        elif how == "fullwidth" and "!" <= char <= "~":
            char = chr(ord(char) + 0xFEE0)
        elif how == "look-alike" and table.get(char):
            char = draw(st.sampled_from(list(table[char])))
        out.append(char)
        if draw(st.booleans()):
            out.append(draw(padding))
    return "".join(out)


@st.composite
def rule_sets(
    draw: st.DrawFn,
    *,
    triggers: Sequence[str] = TRIGGERS,
    patterns: Sequence[str] = PATTERNS,
    verdicts: Sequence[Verdict] = ("review", "block"),
    severities: Sequence[Severity] = SEVERITIES,
    min_size: int = 0,
    max_size: int = 4,
) -> list[BuiltinRule]:
    """A list of `KeywordRule`s and `RegexRule`s with unique names.

    Phrases come from `triggers` (or are random words), patterns from
    `patterns` (or are escaped random words); each rule has a random verdict
    from `verdicts` and severity from `severities`.
    """
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    phrase = st.one_of(st.sampled_from(triggers), _WORDS) if triggers else _WORDS
    pattern = st.one_of(st.sampled_from(patterns), _WORDS.map(re.escape)) if patterns else None
    rules: list[BuiltinRule] = []
    for index in range(count):
        verdict = draw(st.sampled_from(verdicts))
        severity = draw(st.sampled_from(severities))
        if pattern is None or draw(st.booleans()):
            phrases = draw(st.lists(phrase, min_size=1, max_size=3))
            rules.append(
                KeywordRule(
                    f"keyword_{index}", phrases, verdict=verdict, severity=severity, reason="kw"
                )
            )
        else:
            rules.append(
                RegexRule(
                    f"regex_{index}",
                    draw(pattern),
                    verdict=verdict,
                    severity=severity,
                    reason="re",
                )
            )
    return rules


@st.composite
def reviewers(
    draw: st.DrawFn,
    *,
    ids: Sequence[str] = _REVIEWER_IDS,
    roles: Sequence[str] = ROLES,
) -> Reviewer:
    """A [`Reviewer`][hitl_compliance.Reviewer] with an id from `ids` and any subset of `roles`."""
    held = draw(st.frozensets(st.sampled_from(roles))) if roles else frozenset[str]()
    return Reviewer(draw(st.sampled_from(ids)), roles=held)


@st.composite
def decisions(
    draw: st.DrawFn,
    *,
    kinds: Sequence[DecisionKind] = DECISION_KINDS,
    reviewer: st.SearchStrategy[str | Reviewer] | None = None,
    responses: st.SearchStrategy[str] | None = None,
) -> HumanDecision:
    """A [`HumanDecision`][hitl_compliance.testing.HumanDecision] of one of `kinds`.

    `approve` as drafted, `edit` with a non-blank reply from `responses`,
    `reject` with or without a reason, or `expire` (the SLA decides). Deciders
    come from `reviewer` (default: [`reviewers()`][hitl_compliance.testing.strategies.reviewers]).
    """
    kind = draw(st.sampled_from(kinds))
    who = draw(reviewer if reviewer is not None else reviewers())
    if kind == "edit":
        text = (
            responses
            if responses is not None
            else st.text(_TEXT, min_size=1, max_size=40).filter(str.strip)
        )
        return HumanDecision("edit", who, response=draw(text))
    if kind == "reject":
        reason = draw(st.sampled_from(["", "promises returns", "needs an adviser"]))
        return HumanDecision("reject", who, reason=reason)
    return HumanDecision(kind, who)


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    draft: st.SearchStrategy[str] | None = None,
    decision: st.SearchStrategy[HumanDecision] | None = None,
) -> Scenario:
    """A [`Scenario`][hitl_compliance.testing.strategies.Scenario]: a draft, and a decision."""
    return Scenario(
        draw(draft if draft is not None else drafts()),
        draw(decision if decision is not None else decisions(kinds=("approve", "edit", "reject"))),
    )


@st.composite
def lifecycles(
    draw: st.DrawFn,
    *,
    threads: Sequence[str] = ("t1", "t2"),
    messages: st.SearchStrategy[str] | None = None,
    decision: st.SearchStrategy[HumanDecision] | None = None,
    faults: Sequence[FaultPoint] = (),
    tick_seconds: Sequence[float] = (1.0, 60.0, 3600.0),
    min_steps: int = 1,
    max_steps: int = 12,
    settle: bool = True,
) -> list[Step]:
    """A whole lifecycle: a list of [`Step`][hitl_compliance.testing.Step]s to play.

    Processes `messages` (default:
    [`customer_messages()`][hitl_compliance.testing.strategies.customer_messages])
    on `threads`, decides with `decision` (default: approve, edit or reject),
    moves the clock by one of `tick_seconds`, sweeps SLAs and recovers; with
    `faults`, some process, decide and sweep steps crash at one of them.
    With `settle` (the default) it ends by moving the clock by the largest of
    `tick_seconds` and recovering, so with a lease shorter than that every
    crash has been recovered from at the end. Run it with
    [`play`][hitl_compliance.testing.play].
    """
    message = messages if messages is not None else customer_messages()
    decide = decision if decision is not None else decisions(kinds=("approve", "edit", "reject"))
    count = draw(st.integers(min_value=min_steps, max_value=max_steps))
    steps: list[Step] = []
    for _ in range(count):
        kind = draw(st.sampled_from(["process", "process", "decide", "decide", "tick", "expire"]))
        if kind == "tick":
            steps.append(Step("tick", seconds=draw(st.sampled_from(tick_seconds))))
            if draw(st.booleans()):
                steps.append(Step("recover"))
            continue
        fault = draw(st.none() | st.sampled_from(faults)) if faults else None
        thread = draw(st.sampled_from(threads))
        if kind == "process":
            steps.append(Step("process", thread, message=draw(message), fault=fault))
        elif kind == "decide":
            steps.append(Step("decide", thread, decision=draw(decide), fault=fault))
        else:
            steps.append(Step("expire", fault=fault))
    if settle:
        steps += [Step("tick", seconds=max(tick_seconds)), Step("recover")]
    return steps
