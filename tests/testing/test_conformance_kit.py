"""`ReviewStoreConformance` as a third-party adapter's CI sees it, in inner pytest sessions.

Our own stores run the suite in tests/integration/test_review_stores.py; here
it must pass for a correct adapter outside the library, fail for a broken one
(a suite that cannot fail proves nothing), say what to do when the
subclass forgets its fixture, keep its size now that it is composed of
capability mixins, and show which capability fails when run by mixin.
"""

from __future__ import annotations

import pytest

from hitl_compliance.testing import conformance
from hitl_compliance.testing.databases import POSTGRES_DSN_ENV

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider --strict-markers --strict-config
filterwarnings = error
"""

ADAPTER = '''
import pytest_asyncio
from hitl_compliance.stores import InMemoryReviewStore
from hitl_compliance.testing.conformance import ReviewStoreConformance


class ThirdPartyStore(InMemoryReviewStore):
    """Stands in for an adapter another team wrote."""
{body}

class TestThirdPartyStore(ReviewStoreConformance):
    @pytest_asyncio.fixture
    async def review_store(self):
        store = ThirdPartyStore()
        await store.setup()
        yield store
        await store.aclose()
'''

# Lists pending reviews newest first: the suite's ordering and cursor tests must catch it.
NEWEST_FIRST = """
    async def list_pending(self, *args, **kwargs):
        return list(reversed(await super().list_pending(*args, **kwargs)))
"""

# Ignores leases other callers hold: two callers would make the same hook call at once.
IGNORES_LEASES = """
    async def claim_hooks(self, *, now, **kwargs):
        import datetime
        return await super().claim_hooks(now=now + datetime.timedelta(days=3650), **kwargs)
"""


# The same broken adapter, run as one capability mixin per test class, so the report
# shows which capability fails.
BY_CAPABILITY = '''
import pytest_asyncio
from hitl_compliance.stores import InMemoryReviewStore
from hitl_compliance.testing.conformance import ReviewConformance, TurnConformance


class ThirdPartyStore(InMemoryReviewStore):
    """Stands in for an adapter another team wrote."""
{body}

class ThirdPartyFixture:
    @pytest_asyncio.fixture
    async def review_store(self):
        store = ThirdPartyStore()
        await store.setup()
        yield store
        await store.aclose()


class TestTurns(ThirdPartyFixture, TurnConformance):
    pass


class TestReviews(ThirdPartyFixture, ReviewConformance):
    pass
'''

SUITE_SIZE = 72 + 11 + 3 + 1 + 5 + 1 + 3 + 1 + 1 + 4 + 2 + 4 + 1
"""The tests `ReviewStoreConformance` held as one class, counted before the split (72),
plus the 11 of the capability added since, `SeveralReviewsConformance`, the 3 of
`SlaConformance` on undated reviews (`list_undated`, `set_deadline`), the one of
`ReviewConformance` on a `complete` repeated by the claim that completed the review,
and the 5 of `RetentionConformance` (holds, documented pruning, kept evidence), the
one of `LedgerConformance` on `reason_code_counts` (skipped by a store without the
optional `ReasonCodeCounter`), the 3 of `SealConformance` (signed chain heads) and
the one of `ReviewConformance` on a review reading back to its `paused` row's
commitment, and the one of `ReviewConformance` on `count_pending` (skipped by a store
without the optional `PendingCounter`), the 4 of `QaConformance` (second-line QA
reviews; skipped by a store without the optional `QaStore`),
the 2 of `StopConformance` (the stop switch),
and the 4 of `AssignmentConformance` (assignment, reassignment, the assignee list,
delegations),
and the one of `LedgerConformance` on `oversight_report` (skipped by a store without
the optional `OversightSource`)."""


def own_tests(cls: type) -> int:
    """The number of tests `cls` defines itself."""
    return sum(name.startswith("test_") for name in vars(cls))


def suite_size() -> int:
    """The number of tests the suite holds."""
    return sum(name.startswith("test_") for name in dir(conformance.ReviewStoreConformance))


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner test directory configured like a downstream project (no PostgreSQL)."""
    monkeypatch.delenv(POSTGRES_DSN_ENV, raising=False)
    return pytester


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_correct_adapter_passes_every_test(inner: pytest.Pytester, mode: str) -> None:
    """Every test of the suite runs and passes, under pytest-asyncio's strict and auto modes."""
    inner.makeini(INI.format(mode=mode))
    inner.makepyfile(ADAPTER.format(body="    pass\n"))
    result = inner.runpytest()
    assert suite_size() >= 60
    result.assert_outcomes(passed=suite_size())


def test_the_composed_suite_collects_as_many_tests_as_before(inner: pytest.Pytester) -> None:
    """Composed of capability mixins, the suite still collects exactly the tests it held."""
    inner.makeini(INI.format(mode="strict"))
    inner.makepyfile(ADAPTER.format(body="    pass\n"))
    items, _ = inner.inline_genitems()
    assert suite_size() == SUITE_SIZE
    assert own_tests(conformance.SeveralReviewsConformance) == 11
    assert own_tests(conformance.RetentionConformance) == 5
    assert own_tests(conformance.StopConformance) == 2
    assert own_tests(conformance.AssignmentConformance) == 4
    assert len(items) == SUITE_SIZE
    assert len({item.name for item in items}) == SUITE_SIZE


def test_one_capability_alone_shows_which_capability_fails(inner: pytest.Pytester) -> None:
    """Run as separate mixins, an adapter listing newest first fails reviews and passes turns."""
    inner.makeini(INI.format(mode="strict"))
    inner.makepyfile(BY_CAPABILITY.format(body=NEWEST_FIRST))
    result = inner.runpytest("-rA")
    outcomes = result.parseoutcomes()
    turns, reviews = (
        own_tests(conformance.TurnConformance),
        own_tests(conformance.ReviewConformance),
    )
    assert outcomes["failed"] + outcomes["passed"] == turns + reviews
    assert outcomes["failed"] >= 2
    result.stdout.fnmatch_lines(
        ["FAILED *TestReviews::test_oldest_first_with_ties_by_review_id*"], consecutive=False
    )
    result.stdout.no_fnmatch_line("FAILED *TestTurns::*")
    passed = [line for line in result.outlines if line.startswith("PASSED ")]
    assert len([line for line in passed if "::TestTurns::" in line]) == turns


def test_a_broken_adapter_fails_and_says_where(inner: pytest.Pytester) -> None:
    """An adapter listing pending reviews newest first fails the ordering and cursor tests."""
    inner.makeini(INI.format(mode="strict"))
    inner.makepyfile(ADAPTER.format(body=NEWEST_FIRST))
    result = inner.runpytest()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 2
    assert outcomes["failed"] + outcomes.get("passed", 0) == suite_size()
    result.stdout.fnmatch_lines(
        [
            "FAILED *TestThirdPartyStore::test_oldest_first_with_ties_by_review_id*",
            "FAILED *TestThirdPartyStore::test_cursor_pages_through_everything_once*",
        ],
        consecutive=False,
    )


def test_an_adapter_ignoring_hook_leases_fails_the_lease_tests(inner: pytest.Pytester) -> None:
    """An adapter that hands out rows another caller holds fails the hook lease tests."""
    inner.makeini(INI.format(mode="strict"))
    inner.makepyfile(ADAPTER.format(body=IGNORES_LEASES))
    result = inner.runpytest()
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] + outcomes.get("passed", 0) == suite_size()
    result.stdout.fnmatch_lines(
        [
            "FAILED *TestThirdPartyStore::test_claim_leases_each_row_to_one_owner*",
            "FAILED *TestThirdPartyStore::test_expired_lease_is_taken_over_with_the_same_id*",
        ],
        consecutive=False,
    )


def test_a_subclass_without_its_fixture_is_told_what_to_provide(inner: pytest.Pytester) -> None:
    """Forgetting `review_store` fails every test with the fix in the message, not a hang."""
    inner.makeini(INI.format(mode="auto"))
    inner.makepyfile(
        "from hitl_compliance.testing.conformance import ReviewStoreConformance\n\n\n"
        "class TestForgotten(ReviewStoreConformance):\n    pass\n"
    )
    result = inner.runpytest("-x")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TestForgotten must provide a `review_store` fixture*"])
