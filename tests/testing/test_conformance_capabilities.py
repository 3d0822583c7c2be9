"""Each capability mixin of the conformance suite, run alone as a third-party adapter would.

One parametrised class per concern: the mixin modules (`_turns`, `_reviews`,
`_votes`, `_sla`, `_outbox`, `_ledger`, `_seals`, `_several`, `_inputs`,
`_retention`, `_qa`, `_stops`, `_assignment`) must each pass on a correct
adapter, fail on an adapter broken in that capability (a capability that
cannot fail proves nothing), and together hold the whole suite exactly once;
`_base` must give each of them the fixtures and the message of the whole suite.
"""

from __future__ import annotations

import pytest

from hitl_compliance.testing import conformance
from hitl_compliance.testing.conformance import CAPABILITIES, ConformanceBase
from hitl_compliance.testing.databases import POSTGRES_DSN_ENV

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider --strict-markers --strict-config
filterwarnings = error
"""

ADAPTER = '''
import pytest_asyncio
from hitl_compliance.stores import InMemoryReviewStore
from hitl_compliance.testing.conformance import {mixin}


class ThirdPartyStore(InMemoryReviewStore):
    """Stands in for an adapter another team wrote."""
{body}

class TestThirdPartyStore({mixin}):
    @pytest_asyncio.fixture
    async def review_store(self):
        store = ThirdPartyStore()
        await store.setup()
        yield store
        await store.aclose()
'''

# For each capability: an adapter bug only that capability's tests are sure to catch,
# and one test of the mixin that must report it.
BROKEN = {
    "QaConformance": (
        """
    async def list_qa_pending(self, *, limit=None):
        return list(reversed(await super().list_qa_pending(limit=limit)))
""",
        "test_pending_oldest_first_and_one_verdict",
    ),
    "StopConformance": (
        """
    async def delivery_stops(self):
        return []
""",
        "test_stops_are_switched_with_audit_rows",
    ),
    "AssignmentConformance": (
        """
    async def list_assigned(self, assignees, **kwargs):
        return list(reversed(await super().list_assigned(assignees, **kwargs)))
""",
        "test_list_assigned_in_order_with_cursor_and_cutoff",
    ),
    "RetentionConformance": (
        """
    async def holds(self):
        return []
""",
        "test_holds_are_placed_and_released_with_audit_rows",
    ),
    "TurnConformance": (
        """
    async def stale_turns(self, *, started_before):
        return []
""",
        "test_stale_turns_and_take_over_turn",
    ),
    "ReviewConformance": (
        """
    async def list_pending(self, *args, **kwargs):
        return list(reversed(await super().list_pending(*args, **kwargs)))
""",
        "test_oldest_first_with_ties_by_review_id",
    ),
    "VoteConformance": (
        """
    async def vote(self, thread_id, **kwargs):
        return await super().vote(thread_id, **{**kwargs, "quorum": 1})
""",
        "test_vote_below_quorum_stays_pending_and_is_audited",
    ),
    "SlaConformance": (
        """
    async def list_overdue(self, *, now, limit=None):
        return []
""",
        "test_overdue_pending_reviews_earliest_first",
    ),
    "OutboxConformance": (
        """
    async def claim_hooks(self, *, now, **kwargs):
        import datetime
        return await super().claim_hooks(now=now + datetime.timedelta(days=3650), **kwargs)
""",
        "test_claim_leases_each_row_to_one_owner",
    ),
    "LedgerConformance": (
        """
    async def audit_head(self):
        return None
""",
        "test_every_append_is_sealed_and_chained",
    ),
    "SealConformance": (
        """
    async def _add_seal(self, head):
        pass  # drops every seal
""",
        "test_seals_every_n_rows_and_round_trips",
    ),
    "SeveralReviewsConformance": (
        """
    async def open_reviews(self, thread_id):
        return (await super().open_reviews(thread_id))[-1:]
""",
        "test_items_of_one_pause_are_open_together",
    ),
    "InputConformance": (
        """
    async def list_pending(self, *, limit=None, **kwargs):
        negative = limit is not None and limit < 0
        return await super().list_pending(limit=None if negative else limit, **kwargs)
""",
        "test_limits_are_checked_alike",
    ),
}

NAMES = [mixin.__name__ for mixin in CAPABILITIES]


def own_tests(mixin: type) -> list[str]:
    """The test methods `mixin` defines itself (not inherited)."""
    return [name for name in vars(mixin) if name.startswith("test_")]


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner test directory configured like a downstream project (no PostgreSQL)."""
    monkeypatch.delenv(POSTGRES_DSN_ENV, raising=False)
    pytester.makeini(INI)
    return pytester


class TestComposition:
    def test_every_capability_has_a_broken_adapter_here(self) -> None:
        """This module proves each exported capability mixin can fail, none is left out."""
        assert sorted(BROKEN) == sorted(NAMES)
        assert all(name in conformance.__all__ for name in NAMES)

    def test_capabilities_hold_the_suite_exactly_once(self) -> None:
        """No test sits in two mixins, and the composed class holds exactly their union."""
        per_mixin = [own_tests(mixin) for mixin in CAPABILITIES]
        union = [name for names in per_mixin for name in names]
        assert len(union) == len(set(union))
        suite = {n for n in dir(conformance.ReviewStoreConformance) if n.startswith("test_")}
        assert suite == set(union)
        assert own_tests(conformance.ReviewStoreConformance) == []

    @pytest.mark.parametrize("mixin", CAPABILITIES, ids=NAMES)
    def test_each_mixin_is_a_conformance_base(self, mixin: type) -> None:
        """Each mixin derives from ConformanceBase, so it brings the suite's fixtures with it."""
        assert issubclass(mixin, ConformanceBase)
        assert issubclass(conformance.ReviewStoreConformance, mixin)
        assert mixin.__doc__
        assert not mixin.__name__.startswith("Test")  # pytest must not collect the mixin itself


class TestAlone:
    @pytest.mark.parametrize("mixin", NAMES)
    def test_a_correct_adapter_passes_the_capability(
        self, inner: pytest.Pytester, mixin: str
    ) -> None:
        """Subclassed alone, a mixin runs exactly its own tests, and all pass."""
        inner.makepyfile(ADAPTER.format(mixin=mixin, body="    pass\n"))
        result = inner.runpytest()
        result.assert_outcomes(passed=len(own_tests(getattr(conformance, mixin))))

    @pytest.mark.parametrize("mixin", NAMES)
    def test_a_broken_adapter_fails_the_capability(
        self, inner: pytest.Pytester, mixin: str
    ) -> None:
        """An adapter broken in one capability fails that mixin's tests, named in the report."""
        body, failing = BROKEN[mixin]
        inner.makepyfile(ADAPTER.format(mixin=mixin, body=body))
        result = inner.runpytest()
        outcomes = result.parseoutcomes()
        assert outcomes.get("failed", 0) >= 1
        total = outcomes["failed"] + outcomes.get("passed", 0)
        assert total == len(own_tests(getattr(conformance, mixin)))
        result.stdout.fnmatch_lines([f"FAILED *TestThirdPartyStore::{failing}*"])

    def test_a_mixin_without_its_fixture_is_told_what_to_provide(
        self, inner: pytest.Pytester
    ) -> None:
        """A mixin subclassed without `review_store` fails with the whole suite's message."""
        inner.makepyfile(
            "from hitl_compliance.testing.conformance import LedgerConformance\n\n\n"
            "class TestForgotten(LedgerConformance):\n    pass\n"
        )
        result = inner.runpytest("-x")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*TestForgotten must provide a `review_store` fixture*"])
