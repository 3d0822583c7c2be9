"""Unit tests of `hitl_compliance.policy`: canonical reviewer ids and the policies' use of them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    ConfigurationError,
    DuplicateVoteError,
    HitlCoordinator,
    InvalidDecisionError,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    RoleBasedPolicy,
    RuleResult,
    build_compliance_graph,
    canonical_reviewer_id,
)

VARIANTS = [
    "officer@bank",
    "Officer@Bank",
    "OFFICER@BANK",
    "  officer@bank ",
    "officer @bank",
    "offi\u200bcer@bank",  # ZERO WIDTH SPACE
    "\ufeffofficer@bank\u00ad",  # BOM, SOFT HYPHEN
    "\uff4f\uff46\uff46\uff49\uff43\uff45\uff52@bank",  # fullwidth (NFKC)
    "\u043efficer@bank",  # CYRILLIC SMALL LETTER O
    "\u03bffficer@bank",  # GREEK SMALL LETTER OMICRON
    "offlcer@bank",  # l for i
    "off1cer@bank",  # 1 for i
    "0fficer@bank",  # 0 for o
    "officer@bank\u3000",  # IDEOGRAPHIC SPACE
]


class TestCanonicalReviewerId:
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_variants_share_one_form(self, variant: str) -> None:
        """Case, spaces, invisible characters, NFKC forms and look-alikes give one canonical id."""
        assert canonical_reviewer_id(variant) == canonical_reviewer_id("officer@bank")

    @pytest.mark.parametrize("other", ["officer2@bank", "officer@bank.example", "auditor@bank"])
    def test_different_people_stay_apart(self, other: str) -> None:
        """Ids that differ by more than spelling keep different canonical forms."""
        assert canonical_reviewer_id(other) != canonical_reviewer_id("officer@bank")

    def test_is_idempotent(self) -> None:
        """The canonical form of a canonical form is itself."""
        for variant in VARIANTS:
            key = canonical_reviewer_id(variant)
            assert canonical_reviewer_id(key) == key

    def test_refuses_an_id_without_visible_characters(self) -> None:
        """A reviewer id of only invisible characters is refused: it would match any other."""
        with pytest.raises(InvalidDecisionError, match="visible"):
            Reviewer("\u200b\u200d")
        with pytest.raises(InvalidDecisionError, match="visible"):
            canonical_reviewer_id("\ufeff")

    def test_built_in_policies_use_it(self) -> None:
        """Both built-in policies expose the default canonical form as canonical_id."""
        for policy in (AllowAllPolicy(), RoleBasedPolicy()):
            assert policy.canonical_id("Officer@Bank") == canonical_reviewer_id("officer@bank")


class LegacyPolicy:
    """A policy written before canonical ids existed: no canonical_id method."""

    def authorize(self, reviewer: Reviewer, findings: Sequence[RuleResult]) -> Authorization:
        """Anyone."""
        return Authorization(True)

    def approvals_required(self, findings: Sequence[RuleResult]) -> int:
        """Four-eyes on everything."""
        return 2


class EmployeeNumberPolicy(LegacyPolicy):
    """Ids are "name#employee-number"; the number alone identifies a person."""

    def canonical_id(self, reviewer_id: str) -> str:
        """The employee number."""
        return reviewer_id.rpartition("#")[2].strip()


def coordinator(policy: object) -> HitlCoordinator:
    """A coordinator whose every draft pauses, under `policy`."""
    graph = build_compliance_graph(
        lambda state: "guaranteed returns",
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
    )
    return HitlCoordinator(graph, policy=policy)  # type: ignore[arg-type]


class TestCoordinatorComparesCanonically:
    @pytest.mark.parametrize("variant", VARIANTS[1:])
    async def test_requester_variant_may_not_approve(self, variant: str) -> None:
        """The requester is refused under any spelling of their id, and nothing is recorded."""
        coord = coordinator(LegacyPolicy())
        await coord.process("t", "hi", requested_by="officer@bank")
        assert not (await coord.may_decide("t", variant)).allowed
        assert await coord.pending(reviewer=variant) == []
        with pytest.raises(NotAuthorizedError):
            await coord.approve("t", reviewer=variant)
        [item] = await coord.pending()
        assert item.votes == []
        assert [a.event for a in await coord.audit_log("t")] == ["paused", "denied"]

    @pytest.mark.parametrize("variant", VARIANTS[1:])
    async def test_one_person_never_counts_twice(self, variant: str) -> None:
        """A second approval under another spelling is a duplicate vote, not the quorum."""
        coord = coordinator(LegacyPolicy())
        await coord.process("t", "hi")
        first = await coord.approve("t", reviewer="officer@bank")
        assert first.status == "paused"
        assert not (await coord.may_decide("t", variant)).allowed
        assert await coord.pending(reviewer=variant) == []
        with pytest.raises(DuplicateVoteError):
            await coord.approve("t", reviewer=variant)
        [item] = await coord.pending()
        assert [(v.reviewer, v.reviewer_key) for v in item.votes] == [
            ("officer@bank", canonical_reviewer_id("officer@bank"))
        ]
        done = await coord.approve("t", reviewer="auditor@bank")
        assert done.status == "completed"

    async def test_legacy_policy_is_still_an_approval_policy(self) -> None:
        """A policy without canonical_id still is an ApprovalPolicy, and gets the default form."""
        assert isinstance(LegacyPolicy(), ApprovalPolicy)
        coord = coordinator(LegacyPolicy())
        await coord.process("t", "hi")
        vote = (await coord.approve("t", reviewer="Officer@Bank")).votes[0]
        assert vote.reviewer_key == canonical_reviewer_id("officer@bank")

    async def test_policy_supplies_its_own_canonical_id(self) -> None:
        """A policy's canonical_id decides who is the same person, and its key is stored."""
        coord = coordinator(EmployeeNumberPolicy())
        await coord.process("t", "hi", requested_by="Ann Smith#1001")
        with pytest.raises(NotAuthorizedError):
            await coord.approve("t", reviewer="ann.smith#1001")
        first = await coord.approve("t", reviewer="Bob#1002")
        assert [v.reviewer_key for v in first.votes] == ["1002"]
        with pytest.raises(DuplicateVoteError):
            await coord.approve("t", reviewer="Robert Jones#1002")
        # Different people under the default form are one person under this policy, and
        # vice versa: "alice#1003" is not "alice#1004".
        assert (await coord.approve("t", reviewer="Bob#1003")).status == "completed"

    async def test_policy_canonical_id_must_be_a_non_empty_str(self) -> None:
        """A canonical_id returning an empty key is a ConfigurationError, and nothing changes."""

        class Broken(LegacyPolicy):
            def canonical_id(self, reviewer_id: str) -> str:
                return ""

        coord = coordinator(Broken())
        await coord.process("t", "hi")
        with pytest.raises(ConfigurationError, match="canonical_id"):
            await coord.approve("t", reviewer="officer@bank")
        [item] = await coord.pending()
        assert item.votes == []
