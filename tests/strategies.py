"""This suite's Hypothesis strategies: the testing kit's, narrowed to the suite's reviewers.

Every strategy lives in `hitl_compliance.testing.strategies` (downstream teams
get the same ones); this module only fixes the choices the suite's property
tests rely on: human decisions only (no SLA expiry), by plain reviewer ids.
It also holds the suite's strategies of invalid arguments (`bad_calls`), which
are about the coordinator's own boundary rather than a downstream graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from hitl_compliance._validate import MAX_JSON_DEPTH
from hitl_compliance.models import ReviewRecord
from hitl_compliance.oversight import PERIODS
from hitl_compliance.policy import Reviewer
from hitl_compliance.rules import RuleResult
from hitl_compliance.testing import HumanDecision
from hitl_compliance.testing import strategies as kit
from hitl_compliance.testing.strategies import (
    PATTERNS,
    TRIGGERS,
    BuiltinRule,
    Scenario,
    evasions,
    rule_sets,
)

__all__ = [
    "COORDINATOR_PARAMETERS",
    "FRESH",
    "PATTERNS",
    "PAUSED",
    "TRIGGERS",
    "AuditAppend",
    "BadCall",
    "BuiltinRule",
    "HumanDecision",
    "Scenario",
    "audit_appends",
    "bad_calls",
    "bad_cursors",
    "bad_field_names",
    "bad_intervals",
    "bad_json_values",
    "bad_limits",
    "bad_metadata",
    "bad_nows",
    "bad_older_than",
    "bad_optional_text",
    "bad_paths",
    "bad_reason_codes",
    "bad_reviewers",
    "bad_thread_ids",
    "beyond_utc_calendar",
    "decisions",
    "evasions",
    "not_text",
    "rule_sets",
    "scenarios",
    "unstorable_text",
]

REVIEWERS = st.sampled_from(["alice@bank", "bob@bank", "Ωfficer"])


def decisions() -> st.SearchStrategy[HumanDecision]:
    """Approve as drafted, approve with an edit, or reject, by a reviewer id without roles."""
    return kit.decisions(kinds=("approve", "edit", "reject"), reviewer=REVIEWERS)


def scenarios() -> st.SearchStrategy[Scenario]:
    """A draft and the decision a reviewer makes if the draft pauses."""
    return kit.scenarios(decision=decisions())


# -- invalid arguments -------------------------------------------------------------------
# One strategy of bad values per kind of public coordinator parameter, and `bad_calls`,
# which picks a public method and replaces exactly one of its arguments by a bad value.

_NUL_OR_SURROGATE = st.sampled_from(["\x00", "\ud800", "\udfff"])


@st.composite
def unstorable_text(draw: st.DrawFn) -> str:
    """Text no store could keep: a NUL character or a lone surrogate somewhere inside."""
    return draw(st.text(max_size=4)) + draw(_NUL_OR_SURROGATE) + draw(st.text(max_size=4))


def not_text(*, none: bool = False) -> st.SearchStrategy[Any]:
    """Values that are not a str (bytes and bytearray included); None only when asked."""
    options: list[st.SearchStrategy[Any]] = [
        st.integers(),
        st.floats(),
        st.booleans(),
        st.binary(max_size=4),
        st.binary(max_size=4).map(bytearray),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
    ]
    if none:
        options.append(st.none())
    return st.one_of(options)


def bad_thread_ids() -> st.SearchStrategy[Any]:
    """Not a str, blank, over 512 characters, or text no store could keep."""
    return st.one_of(
        not_text(none=True),
        st.text(" \t\n", max_size=3),
        st.text(min_size=513, max_size=520, alphabet="x"),
        unstorable_text(),
    )


def _beyond_64_bits() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))


@st.composite
def _too_deep(draw: st.DrawFn) -> Any:
    value: Any = draw(st.integers(0, 9))
    for _ in range(MAX_JSON_DEPTH + draw(st.integers(1, 3))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


def bad_json_values() -> st.SearchStrategy[Any]:
    """One value no store and no checkpoint serializer keep as JSON."""
    return st.one_of(
        _beyond_64_bits(),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        unstorable_text(),
        st.binary(max_size=3),
        st.frozensets(st.integers(), max_size=2),
        st.builds(object),
        st.datetimes(),
        _too_deep(),
    )


@st.composite
def bad_metadata(draw: st.DrawFn) -> Any:
    """Decision or turn metadata with one bad value, key or shape, or not a mapping at all."""
    kind = draw(st.sampled_from(["value", "nested", "key", "shape"]))
    good = draw(
        st.dictionaries(
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4),
            st.integers(-5, 5),
            max_size=2,
        )
    )
    if kind == "value":
        return {**good, "bad": draw(bad_json_values())}
    if kind == "nested":
        return {**good, "outer": {"list": [1, draw(bad_json_values())]}}
    if kind == "key":
        key = draw(st.one_of(unstorable_text(), st.integers(), st.none(), st.binary(max_size=2)))
        return {**good, key: 1}
    return draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=3), st.integers()))


def bad_reviewers() -> st.SearchStrategy[Any]:
    """Not a str or Reviewer, blank, over 256 characters, or text no audit row could keep."""
    return st.one_of(
        not_text(none=True),
        st.text(" \t", max_size=3),
        st.text(min_size=257, max_size=260, alphabet="r"),
        unstorable_text(),
    )


def bad_optional_text() -> st.SearchStrategy[Any]:
    """For `response`, `reason`, `expected`, `rule`: not a str (None is valid), or unstorable."""
    return st.one_of(not_text(), unstorable_text())


def bad_reason_codes() -> st.SearchStrategy[Any]:
    """For `reason_code`: bad text, or a code not in the default taxonomy (ReasonCodeError)."""
    unknown = st.sampled_from(["nope", "Misleading_Promotion", "x" * 65, "other "])
    return st.one_of(bad_optional_text(), unknown)


def _offset() -> st.SearchStrategy[timedelta]:
    return st.builds(
        lambda h, m: timedelta(hours=h, minutes=m), st.integers(0, 23), st.integers(1, 59)
    )


def beyond_utc_calendar() -> st.SearchStrategy[datetime]:
    """Aware datetimes valid locally whose UTC value falls in year 0 or 10000."""
    return st.one_of(
        _offset().map(lambda o: datetime(1, 1, 1, tzinfo=timezone(o))),
        _offset().map(lambda o: datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-o))),
    )


def bad_older_than() -> st.SearchStrategy[Any]:
    """Not a timedelta or datetime, a naive datetime, or a timedelta beyond the calendar."""
    return st.one_of(
        st.integers(),
        st.floats(),
        st.text(max_size=3),
        st.dates(),
        st.datetimes(),  # naive
        beyond_utc_calendar(),
        st.timedeltas(min_value=timedelta(days=800_000)),
        st.timedeltas(max_value=timedelta(days=-3_000_000)),
    )


def bad_limits() -> st.SearchStrategy[Any]:
    """Zero, negative, beyond 64 bits, a bool, or not an int."""
    return st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=2**63),
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
    )


def bad_cursors() -> st.SearchStrategy[Any]:
    """Not a str, unstorable text, text that is no cursor, or a cursor with a naive time."""
    return st.one_of(
        not_text(),
        unstorable_text().map(lambda t: f"2026-01-01T00:00:00+00:00|{t}"),
        st.text(max_size=8).filter(lambda t: "|" not in t),
        st.just("2026-01-01T00:00:00|r1"),
        beyond_utc_calendar().map(lambda d: f"{d.isoformat()}|r1"),
        st.just("2026-01-01T00:00:00+00:00|"),
    )


def bad_nows() -> st.SearchStrategy[Any]:
    """Not a datetime (a date, text, a number), a naive datetime, or one beyond UTC's calendar."""
    return st.one_of(
        st.text(max_size=3),
        st.integers(),
        st.floats(),
        st.dates(),
        st.datetimes(),
        beyond_utc_calendar(),
    )


def bad_intervals() -> st.SearchStrategy[Any]:
    """Not a number or timedelta (bools too), zero or negative, NaN, infinite or too long."""
    return st.one_of(
        st.text(max_size=3),
        st.none(),
        st.booleans(),
        st.integers(max_value=0),
        st.floats(max_value=0.0),
        st.sampled_from([math.nan, math.inf]),
        st.floats(min_value=timedelta.max.total_seconds() * 2, allow_infinity=False),
        st.timedeltas(max_value=timedelta(0)),
    )


def bad_paths() -> st.SearchStrategy[Any]:
    """Not a str or path-like (an int would be taken as a file descriptor), or with NUL."""
    return st.one_of(
        st.integers(0, 10),
        st.none(),
        st.binary(max_size=3),
        st.text(max_size=3).map(lambda t: f"out\x00{t}"),
    )


def bad_field_names() -> st.SearchStrategy[str]:
    """`process` fields the default state schema lacks, or ones the library sets itself."""
    reserved = ["customer_message", "turn", "draft_response", "agent_response", "decision"]
    return st.one_of(st.sampled_from(reserved), st.from_regex(r"zz_[a-z]{1,5}", fullmatch=True))


@dataclass(frozen=True)
class BadCall:
    """A public coordinator method called with exactly one bad argument.

    `kwargs` holds every argument by keyword (the thread id ones use the
    placeholders `PAUSED` and `FRESH`, replaced by the test's thread ids);
    `parameter` names the one that is bad.
    """

    method: str
    parameter: str
    kwargs: dict[str, Any]


PAUSED = "<paused thread>"
FRESH = "<fresh thread>"


# method -> its valid arguments, and the bad-value strategy of each parameter.
def _bad_public_keys() -> st.SearchStrategy[Any]:
    """Not a key: a number, an empty list, bytes or a file that is no PEM key, a missing file."""
    return st.one_of(
        st.integers(),
        st.just([]),
        st.lists(st.integers(), min_size=1, max_size=2),
        st.binary(max_size=8),
        st.text(alphabet="abc", min_size=1, max_size=5).map(lambda t: f"/nonexistent/{t}.pem"),
    )


def _bad_qa_ids() -> st.SearchStrategy[Any]:
    """For a QA review id: not a str, or text no store keeps."""
    return st.one_of(not_text(none=True), unstorable_text())


def _bad_hold_text() -> st.SearchStrategy[Any]:
    """For a hold's `reason` and `by`: not a str, blank, or text no audit row could keep."""
    return st.one_of(not_text(none=True), st.text(" \t", max_size=3), unstorable_text())


STOP_HEAD = Reviewer("head@bank", roles=frozenset({"compliance-head"}))
"""A holder of the default stop role (`HitlCoordinator(stop_roles=...)`)."""


def _bad_stop_scopes() -> st.SearchStrategy[Any]:
    """Not a stop scope: not a str, an unknown kind, a kind without a value, unstorable text."""
    return st.one_of(
        not_text(none=True),
        st.sampled_from(["", "everything", "product:", "ruleset:  ", "product:a\nb", "x:y"]),
        unstorable_text().map(lambda t: f"product:{t}"),
    )


_FAR = datetime(2999, 1, 1, tzinfo=timezone.utc)  # a delegation's valid end

_SIGNATURES: dict[str, tuple[dict[str, Any], dict[str, st.SearchStrategy[Any]]]] = {
    "process": (
        {"thread_id": FRESH, "message": "invest", "requested_by": None},
        {
            "thread_id": bad_thread_ids(),
            "message": st.one_of(not_text(none=True), unstorable_text()),
            "requested_by": bad_optional_text(),
            "metadata": bad_metadata(),
        },
    ),
    "pending": (
        {},
        {
            "rule": bad_optional_text(),
            "reviewer": bad_reviewers().filter(lambda r: r is not None),
            "older_than": bad_older_than(),
            "limit": bad_limits(),
            "cursor": bad_cursors(),
            "assigned_to": st.one_of(bad_optional_text(), st.text(" \t", max_size=3)),
        },
    ),
    "reassign": (
        {"thread_id": PAUSED, "to": "bob", "by": "lead", "reason": "cover"},
        {
            "thread_id": bad_thread_ids(),
            "to": _bad_hold_text(),
            "by": bad_reviewers(),
            "reason": _bad_hold_text(),
            "review_id": bad_optional_text(),
        },
    ),
    "delegate": (
        {"from_reviewer": "bob", "to_reviewer": "carol", "until": _FAR, "by": "bob"},
        {
            "from_reviewer": _bad_hold_text(),
            "to_reviewer": _bad_hold_text(),
            "until": bad_nows(),
            "by": bad_reviewers(),
        },
    ),
    "revoke_delegation": (
        {"from_reviewer": "bob", "by": "bob"},
        {"from_reviewer": _bad_hold_text(), "by": bad_reviewers()},
    ),
    "approve": (
        {"thread_id": PAUSED, "reviewer": "alice"},
        {
            "thread_id": bad_thread_ids(),
            "reviewer": bad_reviewers(),
            "response": bad_optional_text(),
            "metadata": bad_metadata(),
            "expected": bad_optional_text(),
            "tool_args": bad_metadata(),
            "review_id": bad_optional_text(),
            "reason_code": bad_reason_codes(),
            "reason": bad_optional_text(),
        },
    ),
    "reject": (
        {"thread_id": PAUSED, "reviewer": "alice"},
        {
            "thread_id": bad_thread_ids(),
            "reviewer": bad_reviewers(),
            "reason": bad_optional_text(),
            "metadata": bad_metadata(),
            "expected": bad_optional_text(),
            "review_id": bad_optional_text(),
            "reason_code": bad_reason_codes(),
        },
    ),
    "review": (
        {"thread_id": PAUSED},
        {"thread_id": bad_thread_ids(), "review_id": bad_optional_text()},
    ),
    "may_decide": (
        {"thread_id": PAUSED, "reviewer": "alice"},
        {
            "thread_id": bad_thread_ids(),
            "reviewer": bad_reviewers(),
            "review_id": bad_optional_text(),
        },
    ),
    "expire_overdue": ({}, {"now": bad_nows()}),
    "run_sla_sweeper": ({}, {"interval": bad_intervals()}),
    "verify_audit": (
        {},
        {
            "thread_id": bad_thread_ids().filter(lambda t: t is not None),
            "public_key": _bad_public_keys(),
            "anchors": st.one_of(
                st.integers(), st.text(min_size=1, max_size=3), st.lists(st.integers(), min_size=1)
            ),
        },
    ),
    "export_audit": (
        {"path": "<export path>"},
        {"path": bad_paths(), "thread_id": bad_thread_ids().filter(lambda t: t is not None)},
    ),
    "audit_log": ({"thread_id": PAUSED}, {"thread_id": bad_thread_ids()}),
    "reason_code_counts": ({}, {"since": bad_nows(), "until": bad_nows()}),
    "qa_pending": ({}, {"limit": bad_limits()}),
    "qa_review": ({"qa_review_id": "qa:x:1"}, {"qa_review_id": _bad_qa_ids()}),
    "qa_verdict": (
        {"qa_review_id": "qa:x:1", "reviewer": "qa@bank", "verdict": "agree"},
        {
            "qa_review_id": _bad_qa_ids(),
            "reviewer": bad_reviewers(),
            "verdict": st.one_of(not_text(none=True), st.sampled_from(["Agree", "yes", ""])),
            "reason_code": bad_reason_codes(),
            "reason": bad_optional_text(),
        },
    ),
    "qa_disagreement": ({}, {"since": bad_nows(), "until": bad_nows()}),
    "oversight_report": (
        {
            "since": datetime(2026, 3, 1, tzinfo=timezone.utc),
            "until": datetime(2026, 4, 1, tzinfo=timezone.utc),
        },
        {
            "since": bad_nows(),
            "until": bad_nows(),
            "period": st.one_of(
                st.none(), st.integers(), st.text(max_size=6).filter(lambda p: p not in PERIODS)
            ),
            "thresholds": st.one_of(
                st.integers(), st.text(max_size=3), st.just({"streak_length": 3})
            ),
        },
    ),
    "state_at_decision": ({"thread_id": PAUSED}, {"thread_id": bad_thread_ids()}),
    "apply_retention": ({}, {"now": bad_nows()}),
    "place_hold": (
        {"thread_id": PAUSED, "reason": "FCA enquiry", "by": "legal@bank"},
        {"thread_id": bad_thread_ids(), "reason": _bad_hold_text(), "by": _bad_hold_text()},
    ),
    "release_hold": (
        {"thread_id": PAUSED, "by": "legal@bank"},
        {"thread_id": bad_thread_ids(), "by": _bad_hold_text()},
    ),
    "ensure_not_held": ({"thread_id": PAUSED}, {"thread_id": bad_thread_ids()}),
    "stop_delivery": (
        {"scope": "product:none-such", "by": STOP_HEAD, "reason": "incident"},
        {"scope": _bad_stop_scopes(), "by": _bad_hold_text(), "reason": _bad_hold_text()},
    ),
    "resume_delivery": (
        {"scope": "product:none-such", "by": STOP_HEAD},
        {"scope": _bad_stop_scopes(), "by": _bad_hold_text()},
    ),
    "erase_subject": ({"subject": "alice"}, {"subject": _bad_hold_text()}),
    "evidence_pack": (
        {"thread_id": PAUSED},
        {
            "thread_id": bad_thread_ids(),
            "review_id": bad_optional_text(),
            "public_key": _bad_public_keys(),
        },
    ),
}

COORDINATOR_PARAMETERS: frozenset[tuple[str, str]] = frozenset(
    (method, name) for method, (_, bad) in _SIGNATURES.items() for name in bad
)
"""Every (method, parameter) pair `bad_calls` covers."""


@st.composite
def bad_calls(draw: st.DrawFn) -> BadCall:
    """A public coordinator method with valid arguments except one bad one."""
    method = draw(st.sampled_from(sorted(_SIGNATURES)))
    valid, bad = _SIGNATURES[method]
    options = sorted(bad)
    if method == "process":
        options.append("**fields")
    parameter = draw(st.sampled_from(options))
    kwargs = dict(valid)
    if parameter == "**fields":
        kwargs[draw(bad_field_names())] = "x"
    else:
        kwargs[parameter] = draw(bad[parameter])
    return BadCall(method, parameter, kwargs)


# -- audit rows (the ledger's canonical form, however a store computes it) -----------

# Storable text (no NUL, no lone surrogate) that leans on what JSON escapes:
# quotes, backslashes, control characters, non-ASCII and line separators.
_LEDGER_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(
            [
                *['"', "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f", "\u2028", "é", "Ω", "😀"],
                # Keys JCS sorts by UTF-16 code units, unlike code points: U+1D11E
                # (a surrogate pair) sorts before U+FFFF there.
                *["\U0001d11e", "\uffff", "\ue000"],
            ]
        ),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)
_LEDGER_JSON = st.recursive(
    st.none()
    | st.booleans()
    # What the ledger's RFC 8785 form writes exactly: ints within +/-(2**53-1),
    # finite floats (leaning on those ECMAScript writes differently from Python).
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.sampled_from([2**53 - 1, -(2**53 - 1), 100.0, 1e16, 1e21, 0.1, -0.0, 5e-324, 1e-7])
    | st.floats(allow_nan=False, allow_infinity=False)
    | _LEDGER_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_LEDGER_TEXT, inner, max_size=3),
    max_leaves=8,
)


@dataclass(frozen=True)
class AuditAppend:
    """The arguments of one `ReviewStore.append_audit` call (its `thread_id` gets a suffix)."""

    thread: str
    review_id: str | None
    checkpoint_id: str | None
    event: str
    actor: str
    payload: dict[str, Any]
    at: datetime


@st.composite
def audit_appends(draw: st.DrawFn) -> AuditAppend:
    """An audit row's content, with every hashed text field drawn from JSON-escape-heavy text."""
    return AuditAppend(
        thread=draw(_LEDGER_TEXT),
        review_id=draw(st.none() | _LEDGER_TEXT),
        checkpoint_id=draw(st.none() | _LEDGER_TEXT),
        event=draw(_LEDGER_TEXT),
        actor=draw(_LEDGER_TEXT),
        payload=draw(st.dictionaries(_LEDGER_TEXT, _LEDGER_JSON, max_size=4)),
        at=draw(
            st.datetimes(
                min_value=datetime(1970, 1, 2),
                max_value=datetime(9998, 12, 31),
                timezones=st.sampled_from(
                    [timezone.utc, timezone(timedelta(hours=-5, minutes=-30))]
                ),
            )
        ),
    )


@st.composite
def review_rows(draw: st.DrawFn) -> ReviewRecord:
    """A pending review row with arbitrary committed content (draft, findings, requester, ...)."""
    findings = draw(
        st.lists(
            st.builds(
                RuleResult,
                rule=st.sampled_from(["guarantee", "pii", "advice"]),
                verdict=st.sampled_from(["review", "block"]),
                reason=st.text(max_size=20),
                evidence=st.lists(st.text(max_size=10), max_size=2).map(tuple),
                severity=st.sampled_from(["low", "medium", "high"]),
            ),
            max_size=3,
        )
    )
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    micros = st.integers(0, 10**9)
    deadline = draw(st.none() | micros.map(lambda us: at + timedelta(microseconds=us)))
    return ReviewRecord(
        review_id=draw(st.uuids()).hex,
        thread_id="t",
        checkpoint_id="cp",
        status="pending",
        draft_response=draw(st.text(max_size=40)),
        violations=findings,
        requested_at=at,
        requested_by=draw(st.none() | st.text(min_size=1, max_size=10)),
        approvals_required=draw(st.integers(1, 5)),
        deadline=deadline,
    )


@st.composite
def ledger_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """An audit payload the ledger's format 2 (RFC 8785) writes exactly, escape- and float-heavy."""
    return draw(st.dictionaries(_LEDGER_TEXT, _LEDGER_JSON, max_size=4))


# -- assignment and delegation -----------------------------------------------------

ASSIGNEES = ("ann", "ben", "cat", "dan")
"""The reviewers of an assignment story; `ann` is in `queue:q`."""


@st.composite
def assignment_stories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Steps over four paused threads: delegate, revoke, let time pass, reassign.

    `("delegate", from, to, hours)`, `("revoke", from)`, `("advance", hours)`,
    `("reassign", thread index, to)`; the test replays them against a model.
    """
    who = st.sampled_from(ASSIGNEES)
    step = st.one_of(
        st.tuples(st.just("delegate"), who, who, st.integers(1, 6)).filter(lambda s: s[1] != s[2]),
        st.tuples(st.just("revoke"), who),
        st.tuples(st.just("advance"), st.integers(1, 4)),
        st.tuples(st.just("reassign"), st.integers(0, 3), st.sampled_from([*ASSIGNEES, "queue:q"])),
    )
    return draw(st.lists(step, min_size=1, max_size=12))
