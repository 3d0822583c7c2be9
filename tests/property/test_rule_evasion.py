"""Property tests: invisible or look-alike characters never turn a finding into a pass.

A draft that a built-in rule flags (`review` or `block`) is rewritten the ways a
model or a user can hide a phrase without changing what a reader sees: format
characters inserted anywhere, any space replaced by any Unicode space, any letter
replaced by a character Unicode TS #39 lists as confusable with it (taken from
the `confusable_homoglyphs` table directly, not from the library's own map). The
rule's verdict stays the same, and each piece of evidence is text of the
rewritten draft, so the inbox can highlight it.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources

from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance import ComplianceState, KeywordRule, RegexRule
from tests.strategies import TRIGGERS, evasions


@cache
def listed_confusables() -> dict[str, tuple[str, ...]]:
    """For each ASCII letter, the characters TS #39 lists with that letter as prototype.

    Digits and marks are left out: the view keeps digits apart from letters, so
    `\\d` keeps its meaning, and a lone mark is not a letter.
    """
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    table: dict[str, list[dict[str, str]]] = json.loads(raw.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for letter in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        for entry in table.get(letter, ()):
            char = entry["c"].strip("\u200e\u200f")
            if len(char) != 1 or char.isascii():
                continue
            if unicodedata.category(char)[0] in "MZC" or unicodedata.category(char) == "Nd":
                continue
            # Listed under `letter` as a source of it (its only entry is `letter`).
            if [e["c"] for e in table.get(entry["c"], ())] == [letter]:
                found.setdefault(letter, []).append(char)
    return {letter: tuple(chars) for letter, chars in found.items()}


RULES = (
    KeywordRule("promise", list(TRIGGERS), verdict="review"),
    KeywordRule("blocked", ["wire the money", "send your PIN"], verdict="block"),
    RegexRule("secret", r"(?i)secret\s+plan", verdict="block"),
    RegexRule("returns", r"Guaranteed\s+\d+% returns"),
    RegexRule("amount", r"\$\d+ bonus"),
)
FLAGGED = (
    *TRIGGERS,
    "wire the money",
    "send your PIN",
    "our SECRET plan",
    "Guaranteed 12% returns",
    "a $100 bonus",
)


@given(
    fragment=st.sampled_from(FLAGGED),
    before=st.sampled_from(["", "Hello, ", "Note:\n", "We say "]),
    after=st.sampled_from(["", " today.", "!", " - thanks"]),
    data=st.data(),
)
def test_evasion_never_turns_a_finding_into_pass(
    fragment: str, before: str, after: str, data: st.DataObject
) -> None:
    """Format characters, Unicode spaces and listed confusables keep every rule's verdict."""
    draft = before + fragment + after
    original = {rule.name: rule.evaluate(ComplianceState(draft_response=draft)) for rule in RULES}
    assert any(r.verdict != "pass" for r in original.values()), draft
    evasive = data.draw(evasions(draft, confusables=listed_confusables()), label="evasive")
    for rule in RULES:
        before_result = original[rule.name]
        result = rule.evaluate(ComplianceState(draft_response=evasive))
        if before_result.verdict == "pass":
            continue
        assert result.verdict == before_result.verdict, (rule, evasive)
        assert result.evidence, (rule, evasive)
        assert all(piece in evasive for piece in result.evidence), (result.evidence, evasive)


def test_listed_confusables_cover_cyrillic_and_greek() -> None:
    """The table the property draws from holds the classic Cyrillic and Greek look-alikes."""
    listed = listed_confusables()
    assert "\u0430" in listed["a"]
    assert "\u03bf" in listed["o"]
    assert "\u0410" in listed["A"]
