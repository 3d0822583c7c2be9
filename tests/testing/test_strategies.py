"""`hitl_compliance.testing.strategies`: each strategy generates what its docstring promises."""

from __future__ import annotations

from hypothesis import find, given
from hypothesis import strategies as st

from hitl_compliance import ComplianceState, KeywordRule, RegexRule, Reviewer
from hitl_compliance._normalize import normalize
from hitl_compliance.testing import HumanDecision, Step
from hitl_compliance.testing.strategies import (
    DECISION_KINDS,
    ROLES,
    SEVERITIES,
    TRIGGERS,
    BuiltinRule,
    Scenario,
    customer_messages,
    decisions,
    draft_chunks,
    drafts,
    evasions,
    lifecycles,
    reviewers,
    rule_sets,
    scenarios,
)


@given(customer_messages())
def test_customer_messages_are_non_blank_text(message: str) -> None:
    """A customer message is a non-blank string."""
    assert isinstance(message, str)
    assert message.strip()


def test_customer_messages_include_product_questions() -> None:
    """Some messages are templated questions about a product."""
    assert find(customer_messages(), lambda m: m.startswith("Should I")).endswith("?")


@given(draft_chunks(triggers=["act now"], filler=["hello"]))
def test_draft_chunks_come_from_the_given_words(chunk: str) -> None:
    """A chunk is a trigger or filler (in some case), or short arbitrary text."""
    # Upper/title case may expand a character to up to three ("ß" -> "SS").
    assert chunk.lower() in ("act now", "hello") or len(chunk) <= 3 * 12


def test_drafts_are_seeded_with_triggers() -> None:
    """Drafts contain the trigger phrases, in any case, next to other text."""
    draft = find(drafts(), lambda d: "GUARANTEED RETURNS" in d and len(d) > len(TRIGGERS[0]))
    assert "GUARANTEED RETURNS" in draft


@given(drafts(triggers=(), filler=("calm",), max_chunks=2))
def test_drafts_respect_their_options(draft: str) -> None:
    """Without triggers no trigger appears; max_chunks bounds the parts."""
    assert not any(t in draft.lower() for t in TRIGGERS)


@given(rule_sets(min_size=1, max_size=5, verdicts=("block",), severities=("high",)))
def test_rule_sets_have_unique_names_and_the_given_verdicts(rules: list[BuiltinRule]) -> None:
    """Rules are built-ins with unique names, the allowed verdicts and severities."""
    assert 1 <= len(rules) <= 5
    assert len({r.name for r in rules}) == len(rules)
    for rule in rules:
        assert isinstance(rule, (KeywordRule, RegexRule))
        assert (rule.verdict, rule.severity) == ("block", "high")


@given(rule_sets(), drafts())
def test_rule_sets_evaluate_drafts(rules: list[BuiltinRule], draft: str) -> None:
    """Every generated rule evaluates every generated draft without error."""
    for rule in rules:
        result = rule.evaluate(ComplianceState(draft_response=draft))
        assert result.verdict in ("pass", rule.verdict)


def test_rule_sets_mix_kinds_patterns_and_severities() -> None:
    """Both kinds of rule, random patterns and several severities appear."""
    mixed = find(
        rule_sets(),
        lambda rs: (
            {type(r) for r in rs} == {KeywordRule, RegexRule} and len({r.severity for r in rs}) > 1
        ),
    )
    assert len(mixed) >= 2
    random_phrase = find(
        rule_sets(min_size=1),
        lambda rs: any(isinstance(r, KeywordRule) and set(r.phrases) - set(TRIGGERS) for r in rs),
    )
    assert random_phrase


@given(reviewers(ids=["x@bank"], roles=ROLES))
def test_reviewers_hold_a_subset_of_the_roles(reviewer: Reviewer) -> None:
    """A reviewer has one of the ids and any subset of the roles."""
    assert reviewer.id == "x@bank"
    assert reviewer.roles <= set(ROLES)


@given(customer_messages(), drafts(), decisions())
def test_generated_text_is_storable(message: str, draft: str, decision: HumanDecision) -> None:
    """No NUL or lone surrogate: the coordinator would refuse the input (InvalidInputError)."""
    for text in (message, draft, decision.response or ""):
        assert "\x00" not in text
        text.encode("utf-8")


@given(decisions())
def test_decisions_are_well_formed(decision: HumanDecision) -> None:
    """Every kind appears with what it needs: an edit has a reply, a reject a reason string."""
    assert decision.kind in DECISION_KINDS
    assert isinstance(decision.reviewer, Reviewer)
    assert (decision.response is not None) == (decision.kind == "edit")
    if decision.response is not None:
        assert decision.response.strip()


@given(decisions(kinds=("reject",), reviewer=st.just("bo")))
def test_decisions_respect_their_options(decision: HumanDecision) -> None:
    """kinds and reviewer narrow the decisions."""
    assert (decision.kind, decision.reviewer) == ("reject", "bo")


def test_decisions_include_every_kind() -> None:
    """Each of approve, edit, reject and expire is generated."""
    for kind in DECISION_KINDS:
        assert find(decisions(), lambda d, k=kind: d.kind == k).kind == kind


@given(scenarios())
def test_scenarios_pair_a_draft_with_a_human_decision(scenario: Scenario) -> None:
    """A scenario's decision is a human one (never an SLA expiry)."""
    assert isinstance(scenario.draft, str)
    assert scenario.decision.kind != "expire"


@given(lifecycles(threads=("a",), faults=("after_claim",), max_steps=6))
def test_lifecycles_settle_and_crash_only_where_told(steps: list[Step]) -> None:
    """Steps use the given threads and faults, and end by moving the clock and recovering."""
    assert steps[-2:] == [Step("tick", seconds=3600.0), Step("recover")]
    assert {s.thread_id for s in steps} <= {"a", ""}
    assert {s.fault for s in steps} <= {None, "after_claim"}


@given(lifecycles(settle=False, min_steps=3, max_steps=3))
def test_lifecycles_without_faults_or_settling(steps: list[Step]) -> None:
    """Without faults no step crashes; without settle there is no closing recovery."""
    assert all(s.fault is None for s in steps)
    assert 3 <= len(steps) <= 6


def test_severities_and_decision_kinds_are_complete() -> None:
    """The exported choices cover every severity and decision kind."""
    assert set(SEVERITIES) == {"low", "medium", "high", "critical"}
    assert set(DECISION_KINDS) == {"approve", "edit", "reject", "expire"}


@given(evasions("act now"))
def test_evasions_read_the_same_once_normalised(text: str) -> None:
    """An evasion differs only by invisible characters, spaces and look-alikes: same view."""
    assert normalize(text).text == "act now"


def test_evasions_insert_format_characters_and_look_alikes() -> None:
    """Evasions include invisible format characters and non-ASCII look-alike letters."""
    assert find(evasions("act now"), lambda t: any(c in t for c in "\u200b\u00ad\ufeff"))
    assert find(evasions("act now"), lambda t: not t.replace(" ", "").isascii() and len(t) == 7)
    assert find(evasions("act now", confusables={"a": ["@"]}), lambda t: "@" in t).count("@") == 1
