"""Property: `pending(reviewer=...)` lists exactly what the naive reference lists.

The reference is the definition: every pending review, oldest first, kept when
`authorization(ctx, reviewer, review).allowed` (not its requester, no vote yet,
the policy), then `rule` and `older_than`, then `limit`. The coordinator's path
memoises parts of that check and reads wider pages; on the memory store and on
SQLite, for random stores, policies and reviewers, the pages must be the same.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    AllowAllPolicy,
    ApprovalPolicy,
    Authorization,
    HitlCoordinator,
    InMemoryReviewStore,
    KeywordRule,
    Reviewer,
    ReviewRecord,
    RoleBasedPolicy,
    RuleResult,
    Vote,
    build_compliance_graph,
)
from hitl_compliance._coordination.reviews import authorization, canonical
from hitl_compliance.stores.sqlite import SqliteReviewStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RULES = ("r1", "r2", "r3")
SEVERITIES = ("low", "medium", "high", "critical")
ROLES = ("a", "b", "c")
PEOPLE = ("ann", "ANN ", "bob", "cy")


class EvidencePolicy:
    """A policy the coordinator cannot memoise: it reads each finding's evidence."""

    def authorize(self, reviewer: Reviewer, findings: Sequence[RuleResult]) -> Authorization:
        """Refused when any finding's evidence names the reviewer."""
        if any(reviewer.id in e for f in findings for e in f.evidence):
            return Authorization(False, "named in the evidence")
        return Authorization(True)

    def approvals_required(self, findings: Sequence[RuleResult]) -> int:
        """Always one."""
        return 1


@dataclass(frozen=True)
class Row:
    findings: tuple[tuple[str, str, str], ...]  # rule, severity, evidence
    minute: int
    requester: str | None
    voter: str | None


rows = st.builds(
    Row,
    findings=st.lists(
        st.tuples(st.sampled_from(RULES), st.sampled_from(SEVERITIES), st.sampled_from(PEOPLE)),
        max_size=3,
    ).map(tuple),
    minute=st.integers(0, 5),
    requester=st.none() | st.sampled_from(PEOPLE),
    voter=st.none() | st.sampled_from(PEOPLE),
)

role_maps = st.dictionaries(
    st.sampled_from(RULES + SEVERITIES), st.frozensets(st.sampled_from(ROLES), min_size=1)
)


@st.composite
def policies(draw: st.DrawFn) -> ApprovalPolicy:
    """The library's policies (memoised path) and a custom one (per-row path)."""
    kind = draw(st.sampled_from(["allow", "roles", "custom"]))
    if kind == "allow":
        return AllowAllPolicy()
    if kind == "custom":
        return EvidencePolicy()
    mapping = draw(role_maps)
    return RoleBasedPolicy(
        rule_roles={k: v for k, v in mapping.items() if k in RULES},
        severity_roles={k: v for k, v in mapping.items() if k in SEVERITIES},
        default_roles=draw(st.none() | st.frozensets(st.sampled_from(ROLES), min_size=1)),
    )


@dataclass(frozen=True)
class Ask:
    reviewer: str
    roles: frozenset[str]
    rule: str | None
    older_than: int | None  # minute
    limit: int | None


asks = st.builds(
    Ask,
    reviewer=st.sampled_from(PEOPLE),
    roles=st.frozensets(st.sampled_from(ROLES)),
    rule=st.none() | st.sampled_from(RULES),
    older_than=st.none() | st.integers(0, 6),
    limit=st.none() | st.integers(1, 5),
)


async def _seed(store: InMemoryReviewStore | SqliteReviewStore, data: list[Row]) -> None:
    for i, row in enumerate(data):
        record = ReviewRecord(
            review_id=uuid.UUID(int=i).hex,
            thread_id=f"t{i}",
            checkpoint_id="c",
            status="pending",
            violations=[RuleResult(r, "review", "", (e,), s) for r, s, e in row.findings],  # type: ignore[arg-type]
            requested_at=T0 + timedelta(minutes=row.minute),
            requested_by=row.requester,
        )
        await store.open_review(record, owner=None)
        if row.voter is not None:
            vote = Vote(reviewer=row.voter, at=T0, text_sha256="x")
            await store.vote(
                record.thread_id,
                review_id=record.review_id,
                vote=vote,
                quorum=2,
                claim_id=uuid.uuid4().hex,
                decision={"approved": True},
                now=T0,
            )


async def _check(
    store: InMemoryReviewStore | SqliteReviewStore,
    data: list[Row],
    policy: ApprovalPolicy,
    questions: list[Ask],
) -> None:
    await _seed(store, data)
    graph = build_compliance_graph(
        lambda state: state.customer_message,
        rules=[KeywordRule("r1", ["x"])],
        checkpointer=InMemorySaver(),
    )
    coord = HitlCoordinator(graph, reviews=store, policy=policy)
    everything = await store.list_pending()
    for ask in questions:
        who = Reviewer(ask.reviewer, roles=ask.roles)
        cutoff = None if ask.older_than is None else T0 + timedelta(minutes=ask.older_than)
        expected = [
            r.review_id
            for r in everything
            if authorization(coord._ctx, who, r).allowed
            and (ask.rule is None or any(v.rule == ask.rule for v in r.violations))
            and (cutoff is None or r.requested_at < cutoff)
        ][: ask.limit]
        got = await coord.pending(reviewer=who, rule=ask.rule, older_than=cutoff, limit=ask.limit)
        assert [p.review_id for p in got] == expected, ask
    # The reviewer id's canonical form is what the memoised path compares.
    assert canonical(coord._ctx, "ANN ") == canonical(coord._ctx, "ann")


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(rows, max_size=25),
    policy=policies(),
    questions=st.lists(asks, min_size=1, max_size=5),
)
def test_reviewer_filter_matches_reference_memory(
    data: list[Row], policy: ApprovalPolicy, questions: list[Ask]
) -> None:
    """On the memory store, `pending(reviewer=)` equals the per-row reference filter."""
    asyncio.run(_check(InMemoryReviewStore(), data, policy, questions))


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(rows, max_size=25),
    policy=policies(),
    questions=st.lists(asks, min_size=1, max_size=5),
)
def test_reviewer_filter_matches_reference_sqlite(
    data: list[Row], policy: ApprovalPolicy, questions: list[Ask]
) -> None:
    """On SQLite, `pending(reviewer=)` equals the per-row reference filter."""

    async def story() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteReviewStore(Path(tmp) / "reviews.db")
            await store.setup()
            try:
                await _check(store, data, policy, questions)
            finally:
                await store.aclose()

    asyncio.run(story())


def test_reviewer_filter_pages_past_many_refused_reviews() -> None:
    """A rare reviewer's page spans several widening store pages and still equals the
    reference, on both stores."""
    data = [
        Row(((("r1" if i % 37 == 0 else "r2"), "low", "x"),), i % 6, None, None) for i in range(400)
    ]
    policy = RoleBasedPolicy(rule_roles={"r1": "a", "r2": "b"})
    questions = [Ask("cy", frozenset({"a"}), None, None, limit) for limit in (1, 5, 11, None)]

    async def story() -> None:
        await _check(InMemoryReviewStore(), data, policy, questions)
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteReviewStore(Path(tmp) / "reviews.db")
            await store.setup()
            try:
                await _check(store, data, policy, questions)
            finally:
                await store.aclose()

    asyncio.run(story())
