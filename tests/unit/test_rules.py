"""Unit tests of `hitl_compliance.rules`: RuleResult and the built-in rules."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hitl_compliance import (
    ComplianceRule,
    ComplianceState,
    ConfigurationError,
    KeywordRule,
    RegexRule,
    RuleResult,
)
from hitl_compliance.rules import worst_verdict


def on(draft: str) -> ComplianceState:
    """A state holding `draft` as the draft response."""
    return ComplianceState(draft_response=draft)


class TestRuleResult:
    def test_defaults(self) -> None:
        """A result built from a rule name and verdict has no reason and no evidence."""
        result = RuleResult("r", "pass")
        assert (result.reason, result.evidence) == ("", ())

    @pytest.mark.parametrize("verdict", ["pass", "review", "block"])
    def test_accepts_each_verdict(self, verdict: str) -> None:
        """Each of pass/review/block is a valid verdict."""
        assert RuleResult("r", verdict).verdict == verdict  # type: ignore[arg-type]

    @pytest.mark.parametrize("verdict", ["maybe", "PASS", "", None])
    def test_rejects_unknown_verdict(self, verdict: object) -> None:
        """A verdict outside pass/review/block raises ConfigurationError naming the rule."""
        with pytest.raises(ConfigurationError, match="'my_rule'"):
            RuleResult("my_rule", verdict)  # type: ignore[arg-type]

    def test_is_frozen(self) -> None:
        """A result cannot be changed after it is made."""
        result = RuleResult("r", "review", "why", ("x",))
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.verdict = "pass"  # type: ignore[misc]

    def test_evidence_list_becomes_tuple(self) -> None:
        """Evidence given as a list is stored as a tuple, keeping the result hashable."""
        result = RuleResult("r", "review", "", ["a", "b"])  # type: ignore[arg-type]
        assert result.evidence == ("a", "b")
        assert hash(result) == hash(RuleResult("r", "review", "", ("a", "b")))

    def test_to_dict_is_plain_data(self) -> None:
        """to_dict gives JSON-like data, evidence as a list."""
        result = RuleResult("r", "block", "why", ("a", "b"))
        assert result.to_dict() == {
            "rule": "r",
            "verdict": "block",
            "reason": "why",
            "evidence": ["a", "b"],
            "severity": "medium",
        }

    @pytest.mark.parametrize(
        "result",
        [
            RuleResult("r", "pass"),
            RuleResult("r", "review", "promises", ("guaranteed returns",)),
            RuleResult("ünï", "block", "multi\nline", ("a", "B", "")),
        ],
    )
    def test_round_trip(self, result: RuleResult) -> None:
        """from_dict(to_dict(r)) equals r."""
        assert RuleResult.from_dict(result.to_dict()) == result

    def test_from_dict_fills_defaults(self) -> None:
        """from_dict accepts a dict without reason or evidence."""
        assert RuleResult.from_dict({"rule": "r", "verdict": "review"}) == RuleResult("r", "review")

    def test_from_dict_validates_verdict(self) -> None:
        """from_dict refuses an unknown verdict, as the constructor does."""
        with pytest.raises(ConfigurationError):
            RuleResult.from_dict({"rule": "r", "verdict": "nope"})


class TestWorstVerdict:
    def test_empty_is_pass(self) -> None:
        """No results at all means pass."""
        assert worst_verdict([]) == "pass"

    @pytest.mark.parametrize(
        ("verdicts", "worst"),
        [
            (["pass", "pass"], "pass"),
            (["pass", "review"], "review"),
            (["review", "block", "pass"], "block"),
            (["block", "review"], "block"),
        ],
    )
    def test_most_severe_wins(self, verdicts: list[str], worst: str) -> None:
        """block beats review beats pass, whatever the order."""
        results = [RuleResult(f"r{i}", v) for i, v in enumerate(verdicts)]  # type: ignore[arg-type]
        assert worst_verdict(results) == worst


class TestKeywordRule:
    def test_is_a_compliance_rule(self) -> None:
        """KeywordRule satisfies the ComplianceRule protocol."""
        assert isinstance(KeywordRule("k", ["x"]), ComplianceRule)

    def test_clean_draft_passes(self) -> None:
        """A draft without any phrase gives a pass with no evidence."""
        result = KeywordRule("k", ["guaranteed returns"]).evaluate(on("Returns may vary."))
        assert result == RuleResult("k", "pass")

    def test_case_insensitive(self) -> None:
        """Phrases match whatever the case of the draft."""
        rule = KeywordRule("k", ["guaranteed returns"])
        assert rule.evaluate(on("GUARANTEED Returns!")).verdict == "review"

    def test_evidence_is_exact_text_of_the_draft(self) -> None:
        """Evidence holds the span as written in the draft, not the configured phrase."""
        rule = KeywordRule("k", ["guaranteed returns"])
        assert rule.evaluate(on("We offer GuaRanteed RETURNS.")).evidence == ("GuaRanteed RETURNS",)

    @pytest.mark.parametrize(
        "draft",
        [
            "guaranteed returnsX",
            "unguaranteed returns",
            "guaranteed_returns",
            "xguaranteed returns",
        ],
    )
    def test_whole_words_only(self, draft: str) -> None:
        """A phrase inside a longer word does not match."""
        assert KeywordRule("k", ["guaranteed returns"]).evaluate(on(draft)).verdict == "pass"

    @pytest.mark.parametrize(
        "draft",
        [
            "guaranteed returns",
            "(guaranteed returns)",
            "guaranteed returns.",
            "'guaranteed returns'",
        ],
    )
    def test_punctuation_is_a_boundary(self, draft: str) -> None:
        """Punctuation and string ends count as word boundaries."""
        assert KeywordRule("k", ["guaranteed returns"]).evaluate(on(draft)).verdict == "review"

    def test_phrase_ending_in_punctuation(self) -> None:
        """A phrase ending in punctuation still matches at a word boundary."""
        rule = KeywordRule("k", ["act now!"])
        assert rule.evaluate(on("Please act now! Offer ends.")).evidence == ("act now!",)

    def test_distinct_spans(self) -> None:
        """A span repeated in the draft appears once in evidence, in first-seen order."""
        rule = KeywordRule("k", ["risk-free", "guaranteed"])
        result = rule.evaluate(on("Guaranteed, risk-free, risk-free and guaranteed. Guaranteed!"))
        assert result.evidence == ("Guaranteed", "risk-free", "guaranteed")

    def test_longest_phrase_wins(self) -> None:
        """When phrases overlap, the longer one is reported."""
        rule = KeywordRule("k", ["guaranteed", "guaranteed returns"])
        assert rule.evaluate(on("guaranteed returns")).evidence == ("guaranteed returns",)

    def test_verdict_reason_and_name_carried(self) -> None:
        """A match carries the rule's name, verdict and reason."""
        rule = KeywordRule("k", ["x"], verdict="block", reason="no x")
        assert rule.evaluate(on("an x here")) == RuleResult("k", "block", "no x", ("x",))

    def test_phrases_are_literal(self) -> None:
        """Regex metacharacters in phrases are matched literally."""
        rule = KeywordRule("k", ["a.b"])
        assert rule.evaluate(on("axb")).verdict == "pass"
        assert rule.evaluate(on("a.b")).verdict == "review"

    def test_phrases_are_stripped(self) -> None:
        """Surrounding whitespace of phrases is ignored and blank phrases dropped."""
        rule = KeywordRule("k", ["  risk-free  ", " "])
        assert rule.phrases == ("risk-free",)

    def test_none_draft_passes(self) -> None:
        """A state without a draft passes."""
        assert KeywordRule("k", ["x"]).evaluate(ComplianceState()).verdict == "pass"

    def test_other_field(self) -> None:
        """field= makes the rule read another state field."""
        rule = KeywordRule("k", ["refund"], field="customer_message")
        state = ComplianceState(customer_message="I want a refund", draft_response="ok")
        assert rule.evaluate(state).evidence == ("refund",)

    @pytest.mark.parametrize(
        "rule",
        [KeywordRule("typo", ["x"], field="draft"), RegexRule("typo", "x", field="draft")],
        ids=["keyword", "regex"],
    )
    def test_missing_field_fails_closed(self, rule: KeywordRule | RegexRule) -> None:
        """A rule reading a field the state does not have never passes the draft."""
        try:
            result = rule.evaluate(on("x"))
        except Exception:  # raising is fine: run_rules turns it into a review finding
            return
        assert result.verdict != "pass"

    @pytest.mark.parametrize("phrases", [[], [""], ["  ", "\n"]])
    def test_empty_phrases(self, phrases: list[str]) -> None:
        """A rule without any non-empty phrase raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="non-empty phrase"):
            KeywordRule("k", phrases)

    def test_single_string_phrases(self) -> None:
        """Passing one string instead of a list raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="not one string"):
            KeywordRule("k", "guaranteed returns")

    @pytest.mark.parametrize("verdict", ["pass", "warn", None])
    def test_verdict_must_be_review_or_block(self, verdict: object) -> None:
        """A rule can only give review or block on a match."""
        with pytest.raises(ConfigurationError, match="'review' or 'block'"):
            KeywordRule("k", ["x"], verdict=verdict)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["", "   ", None])
    def test_name_required(self, name: object) -> None:
        """A rule without a non-empty name raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="name"):
            KeywordRule(name, ["x"])  # type: ignore[arg-type]

    def test_repr_names_rule(self) -> None:
        """The repr shows the class, name and verdict."""
        text = repr(KeywordRule("k", ["x"], verdict="block"))
        assert text.startswith("KeywordRule('k'")
        assert "verdict='block'" in text


class TestRegexRule:
    def test_str_pattern(self) -> None:
        """A str pattern is compiled and every distinct match is evidence."""
        rule = RegexRule("pct", r"\d+%")
        result = rule.evaluate(on("9% now, 12% later, 9% again"))
        assert result == RuleResult("pct", "review", "", ("9%", "12%"))

    def test_compiled_pattern(self) -> None:
        """A compiled pattern is used as is, with its own flags."""
        pattern = re.compile(r"secret", re.IGNORECASE)
        rule = RegexRule("s", pattern, verdict="block")
        assert rule.pattern is pattern
        assert rule.evaluate(on("A SECRET plan")).evidence == ("SECRET",)

    def test_flags_apply_to_str_pattern(self) -> None:
        """flags= is used when compiling a str pattern."""
        rule = RegexRule("s", "secret", flags=re.IGNORECASE)
        assert rule.evaluate(on("Secret")).verdict == "review"

    def test_case_sensitive_by_default(self) -> None:
        """Without flags a str pattern is case-sensitive."""
        assert RegexRule("s", "secret").evaluate(on("SECRET")).verdict == "pass"

    def test_empty_matches_are_not_evidence(self) -> None:
        """A pattern that can match the empty string does not flag a draft with no real match."""
        assert RegexRule("a", "a*").evaluate(on("bbb")).verdict == "pass"

    @pytest.mark.parametrize("pattern", ["(", "[a-", "*x"])
    def test_invalid_regex(self, pattern: str) -> None:
        """An invalid regular expression raises ConfigurationError naming the rule."""
        with pytest.raises(ConfigurationError, match=r"'bad'.*not a valid regular expression"):
            RegexRule("bad", pattern)

    def test_empty_pattern(self) -> None:
        """An empty pattern, which would match everything, raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="empty"):
            RegexRule("e", "")

    def test_non_str_pattern(self) -> None:
        """A pattern that is neither str nor compiled raises ConfigurationError."""
        with pytest.raises(ConfigurationError):
            RegexRule("n", 42)  # type: ignore[arg-type]

    def test_verdict_validation(self) -> None:
        """verdict='pass' on a match is refused."""
        with pytest.raises(ConfigurationError):
            RegexRule("r", "x", verdict="pass")

    def test_properties(self) -> None:
        """name and verdict are exposed read-only."""
        rule = RegexRule("r", "x", verdict="block")
        assert (rule.name, rule.verdict) == ("r", "block")
        with pytest.raises(AttributeError):
            rule.name = "other"  # type: ignore[misc]


ZWSP, ZWJ, SHY, BOM, RLO, PDF = "\u200b", "\u200d", "\u00ad", "\ufeff", "\u202e", "\u202c"


class TestKeywordRuleEvasion:
    """A phrase hidden with invisible or look-alike characters is still found."""

    @pytest.mark.parametrize(
        "draft",
        [
            f"We offer gua{ZWSP}ranteed returns.",
            f"We offer guaran{SHY}teed re{ZWJ}turns.",
            f"We offer {BOM}guaranteed returns{BOM}.",
            f"We offer {RLO}guaranteed{PDF} returns.",
            "We offer guaranteed\u00a0returns.",
            "We offer guaranteed\u3000\u2003 returns.",
            "We offer guaranteed\r\n\treturns.",
            "We offer guaranteed\u2028returns.",
            "We offer gu\u0430r\u0430nteed r\u0435turns.",  # Cyrillic а and е
            "We offer gu\u03b1ranteed returns.",  # Greek alpha
            "We offer \uff47\uff55\uff41\uff52\uff41\uff4e\uff54\uff45\uff45\uff44 returns.",
            "We offer \U0001d420uaranteed returns.",  # MATHEMATICAL BOLD SMALL G
            "We offer GU\u0410RANTEED RETURNS.",  # Cyrillic capital А
        ],
    )
    def test_hidden_phrase_is_found(self, draft: str) -> None:
        """Format characters, Unicode spaces, look-alikes and fullwidth forms hide no phrase."""
        result = KeywordRule("k", ["guaranteed returns"]).evaluate(on(draft))
        assert result.verdict == "review"
        [evidence] = result.evidence
        assert evidence in draft

    def test_evidence_is_the_original_characters(self) -> None:
        """Evidence is the draft's own characters, invisible ones included, not the view."""
        draft = f"Yes: gua{ZWSP}ranteed\u00a0r\u0435turns, always."
        result = KeywordRule("k", ["guaranteed returns"]).evaluate(on(draft))
        assert result.evidence == (f"gua{ZWSP}ranteed\u00a0r\u0435turns",)
        start = draft.index(result.evidence[0])
        assert draft[start - 5 : start] == "Yes: "

    def test_evidence_spans_fullwidth_text(self) -> None:
        """A phrase written in fullwidth letters is evidence as written, not in ASCII."""
        draft = "act \uff4e\uff4f\uff57!"
        assert KeywordRule("k", ["act now"]).evaluate(on(draft)).evidence == (draft[:-1],)

    def test_phrase_with_look_alikes_matches_plain_text(self) -> None:
        """A phrase configured with look-alikes or odd spaces matches the plain draft too."""
        rule = KeywordRule("k", ["gu\u0430ranteed\u00a0returns"])
        assert rule.evaluate(on("guaranteed returns")).evidence == ("guaranteed returns",)

    def test_invisible_inside_other_word_does_not_create_a_match(self) -> None:
        """Removing an invisible character joins a word; it never splits one into a phrase."""
        rule = KeywordRule("k", ["invest"])
        assert rule.evaluate(on(f"invest{ZWSP}ment")).verdict == "pass"
        assert rule.evaluate(on("investigate")).verdict == "pass"

    def test_exact_matches_text_as_written(self) -> None:
        """exact=True opts out of the view: hidden phrases pass, plain ones still match."""
        rule = KeywordRule("k", ["guaranteed returns"], exact=True)
        assert rule.exact is True
        assert rule.evaluate(on(f"gua{ZWSP}ranteed returns")).verdict == "pass"
        assert rule.evaluate(on("gu\u0430ranteed returns")).verdict == "pass"
        assert rule.evaluate(on("GUARANTEED returns")).evidence == ("GUARANTEED returns",)
        assert "exact=True" in repr(rule)

    def test_default_is_not_exact(self) -> None:
        """Rules match on the normalised view unless told otherwise."""
        assert KeywordRule("k", ["x"]).exact is False
        assert RegexRule("r", "x").exact is False
        assert "exact" not in repr(KeywordRule("k", ["x"]))

    def test_invisible_only_phrase_is_refused(self) -> None:
        """A phrase of only invisible characters, which no normalised draft contains, is refused."""
        with pytest.raises(ConfigurationError, match="exact=True"):
            KeywordRule("k", ["ok", f"{ZWSP}{BOM}"])


class TestRegexRuleEvasion:
    """Regular expressions search the normalised view too, keeping their own case rules."""

    def test_hidden_match_is_found(self) -> None:
        """A pattern matches through format characters, odd spaces and look-alike letters."""
        rule = RegexRule("s", r"(?i)secret\s+plan")
        draft = f"our S\u0415CR{ZWSP}ET\u2003\u2003pl\u0430n"
        result = rule.evaluate(on(draft))
        assert result.verdict == "review"
        assert result.evidence == (draft[4:],)

    def test_case_sensitive_pattern_keeps_case(self) -> None:
        """The view is not case-folded for regexes: [A-Z] still means capital letters."""
        rule = RegexRule("ref", r"\b[A-Z]{2}\d{6}\b")
        assert rule.evaluate(on("ref AB123456")).evidence == ("AB123456",)
        assert rule.evaluate(on("ref ab123456")).verdict == "pass"
        assert rule.evaluate(on("ref \u0410\u0412123456")).evidence == ("\u0410\u0412123456",)

    def test_digits_keep_their_meaning(self) -> None:
        """Digits are not read as letters (TS #39 would map 0 to O and 1 to l)."""
        rule = RegexRule("acct", r"\b\d{8}\b")
        assert rule.evaluate(on(f"account 1234{ZWSP}5670")).evidence == (f"1234{ZWSP}5670",)
        assert RegexRule("word", r"lO").evaluate(on("10")).verdict == "pass"

    def test_line_breaks_are_one_space(self) -> None:
        """A line break reads as one space in the view; exact=True keeps the lines."""
        assert RegexRule("r", r"a b").evaluate(on("a\r\nb")).verdict == "review"
        assert RegexRule("r", r"a\nb", exact=True).evaluate(on("a\nb")).verdict == "review"
        assert RegexRule("r", r"a\nb").evaluate(on("a\nb")).verdict == "pass"

    def test_exact_searches_text_as_written(self) -> None:
        """exact=True searches the original text, invisible characters included."""
        rule = RegexRule("zw", "\u200b", exact=True)
        assert rule.evaluate(on(f"a{ZWSP}b")).evidence == (ZWSP,)
        assert RegexRule("zw", "\u200b").evaluate(on(f"a{ZWSP}b")).verdict == "pass"
