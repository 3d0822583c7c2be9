"""Hypothesis strategies for drafts, rule sets and human decisions, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

from hitl_compliance import KeywordRule, RegexRule, Verdict

TRIGGERS = ("guaranteed returns", "risk-free", "insider", "act now", "double your money")
"""Phrases the generated rules look for and the generated drafts may contain."""

PATTERNS = (r"\d+%", r"\b\d{3}-\d{2}-\d{4}\b", r"(?i)secret", r"\$\d+")
"""Regular expressions the generated RegexRules may use."""

BuiltinRule = KeywordRule | RegexRule
"""The rules generated here; their `evaluate` is synchronous."""

FILLER = ("hello", "our fund", "returns", "may vary", "42%", "$100", "SECRET", "123-45-6789")

# Lone surrogates are excluded: the checkpoint serializer replaces them with "?",
# which would make the delivered text differ from the draft for reasons outside us.
_TEXT_CHARS = st.characters(codec="utf-8")


@dataclass(frozen=True)
class HumanDecision:
    """A decision a reviewer could make on a paused draft."""

    kind: Literal["approve", "edit", "reject"]
    reviewer: str
    response: str | None = None
    reason: str = ""


@st.composite
def words(draw: st.DrawFn) -> str:
    """One chunk of draft text: a trigger (in any case), filler, or arbitrary text."""
    chunk = draw(
        st.one_of(
            st.sampled_from(TRIGGERS),
            st.sampled_from(FILLER),
            st.text(_TEXT_CHARS, max_size=12),
        )
    )
    style = draw(st.sampled_from(["same", "upper", "title"]))
    return {"same": chunk, "upper": chunk.upper(), "title": chunk.title()}[style]


@st.composite
def drafts(draw: st.DrawFn) -> str:
    """Draft text, often containing trigger phrases and pattern matches."""
    parts = draw(st.lists(words(), max_size=6))
    separator = draw(st.sampled_from([" ", ", ", ". ", "\n", ""]))
    return separator.join(parts)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[BuiltinRule]:
    """A list of built-in rules with unique names and random review/block verdicts."""
    count = draw(st.integers(min_value=0, max_value=4))
    rules: list[BuiltinRule] = []
    for index in range(count):
        verdict: Verdict = draw(st.sampled_from(["review", "block"]))
        if draw(st.booleans()):
            phrases = draw(st.lists(st.sampled_from(TRIGGERS), min_size=1, max_size=3))
            rules.append(KeywordRule(f"keyword_{index}", phrases, verdict=verdict, reason="kw"))
        else:
            pattern = draw(st.sampled_from(PATTERNS))
            rules.append(RegexRule(f"regex_{index}", pattern, verdict=verdict, reason="re"))
    return rules


@st.composite
def decisions(draw: st.DrawFn) -> HumanDecision:
    """Approve as is, approve with an edit, or reject (with or without a reason)."""
    kind = draw(st.sampled_from(["approve", "edit", "reject"]))
    reviewer = draw(st.sampled_from(["alice@bank", "bob@bank", "Ωfficer"]))
    if kind == "edit":
        response = draw(st.text(_TEXT_CHARS, min_size=1, max_size=40).filter(str.strip))
        return HumanDecision("edit", reviewer, response=response)
    if kind == "reject":
        reason = draw(st.sampled_from(["", "promises returns", "needs an adviser"]))
        return HumanDecision("reject", reviewer, reason=reason)
    return HumanDecision("approve", reviewer)


@dataclass(frozen=True)
class Scenario:
    """One thread's story: the draft the LLM writes, and what a reviewer would decide."""

    draft: str
    decision: HumanDecision


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A draft and the decision a reviewer makes if the draft pauses."""
    return Scenario(draw(drafts()), draw(decisions()))
