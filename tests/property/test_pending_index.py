"""`InMemoryReviewStore`'s pending indexes (sorted, bisected) against a brute-force model.

Random interleavings of opening, voting, claiming, releasing and completing
reviews and (re)assigning them, with many ties in `requested_at`, then every
filter combination: `rule` or the assignees of `list_assigned`,
`requested_before`, the keyset cursor `after` and `limit`. The model
is the old definition: sort every pending review by `(requested_at,
review_id)`, then filter and slice.

Hypothesis drives a sync test function; each example runs in a fresh event
loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance import InMemoryReviewStore, ReviewRecord, RuleResult, Vote
from hitl_compliance.errors import AlreadyDecidedError, ReviewNotFoundError, ThreadBusyError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
THREADS = ("a", "b", "c", "d", "e")
RULES = ("r1", "r2")


@dataclass(frozen=True)
class Op:
    kind: str  # open | vote | claim | release | complete | assign | reassign
    thread: str
    minute: int  # requested_at offset (few values: many ties)
    rules: tuple[str, ...]


ops = st.builds(
    Op,
    kind=st.sampled_from(
        ["open", "open", "vote", "claim", "release", "complete", "assign", "reassign"]
    ),
    thread=st.sampled_from(THREADS),
    minute=st.integers(0, 3),
    rules=st.lists(st.sampled_from(RULES), max_size=2, unique=True).map(tuple),
)


@dataclass(frozen=True)
class Query:
    limit: int | None
    rule: str | None
    before: int | None  # minute
    after: tuple[int, int] | None  # (minute, index into known ids, or -1 for "0" * 32)
    assignees: tuple[str, ...] | None  # list_assigned(assignees) instead of list_pending


ASSIGNEES = ("x", "y", "queue:q")

queries = st.builds(
    Query,
    assignees=st.none() | st.lists(st.sampled_from(ASSIGNEES), max_size=3).map(tuple),
    limit=st.none() | st.integers(0, 4),
    rule=st.none() | st.sampled_from([*RULES, "unknown"]),
    before=st.none() | st.integers(0, 4),
    after=st.none() | st.tuples(st.integers(0, 4), st.integers(-1, 12)),
)


async def _story(script: list[Op], asks: list[Query]) -> None:
    store = InMemoryReviewStore()
    claims: dict[str, str] = {}  # review_id -> claim id
    ids: list[str] = []
    for op in script:
        review = await store.get_review(op.thread)
        if op.kind == "open":
            record = ReviewRecord(
                review_id=uuid.uuid4().hex,
                thread_id=op.thread,
                checkpoint_id=uuid.uuid4().hex,
                status="pending",
                violations=[RuleResult(r, "review") for r in op.rules],
                requested_at=T0 + timedelta(minutes=op.minute),
            )
            try:
                await store.open_review(record, owner=None)
            except ThreadBusyError:
                continue
            ids.append(record.review_id)
        elif op.kind in ("vote", "claim") and review is not None:
            claim_id = uuid.uuid4().hex
            try:
                if op.kind == "vote":
                    vote = Vote(reviewer=uuid.uuid4().hex, at=T0, text_sha256="x")
                    done = await store.vote(
                        op.thread,
                        review_id=review.review_id,
                        vote=vote,
                        quorum=1 + len(op.rules),
                        claim_id=claim_id,
                        decision={"approved": True},
                        now=T0,
                    )
                else:
                    done = await store.claim(
                        op.thread, claim_id=claim_id, reviewer="x", decision={}, now=T0
                    )
            except (AlreadyDecidedError, ReviewNotFoundError):
                continue
            if done.status == "claimed":
                claims[done.review_id] = claim_id
        elif op.kind in ("assign", "reassign") and review is not None:
            await store.assign(
                review.review_id,
                to=ASSIGNEES[op.minute % len(ASSIGNEES)],
                reason="r",
                by="b",
                now=T0,
                initial=op.kind == "assign",
            )
        elif op.kind == "release" and review is not None and review.review_id in claims:
            await store.release(review.review_id, claim_id=claims.pop(review.review_id))
        elif op.kind == "complete" and review is not None and review.review_id in claims:
            await store.complete(
                review.review_id,
                claim_id=claims.pop(review.review_id),
                status="approved",
                now=T0,
                actor="x",
                payload={},
            )
    everything = [r for i in ids if (r := await _latest(store, i)) is not None]
    model = sorted(
        (r for r in everything if r.status == "pending"),
        key=lambda r: (r.requested_at, r.review_id),
    )
    assert await store.list_pending() == model
    assigned = {a.review_id: a.assigned_to for a in await store.assignments(ids)}
    for ask in asks:
        before = None if ask.before is None else T0 + timedelta(minutes=ask.before)
        after: tuple[datetime, str] | None = None
        if ask.after is not None:
            minute, index = ask.after
            known = ids[index] if 0 <= index < len(ids) else "0" * 32
            after = (T0 + timedelta(minutes=minute), known)
        rule = None if ask.assignees is not None else ask.rule
        expected = [
            r
            for r in model
            if (rule is None or any(v.rule == rule for v in r.violations))
            and (ask.assignees is None or assigned.get(r.review_id) in ask.assignees)
            and (before is None or r.requested_at < before)
            and (after is None or (r.requested_at, r.review_id) > after)
        ]
        if ask.limit is not None:
            expected = expected[: ask.limit]
        if ask.assignees is None:
            got = await store.list_pending(
                limit=ask.limit, rule=rule, requested_before=before, after=after
            )
        else:
            got = await store.list_assigned(
                ask.assignees, limit=ask.limit, requested_before=before, after=after
            )
        assert [r.review_id for r in got] == [r.review_id for r in expected], ask
        assert got == expected


async def _latest(store: InMemoryReviewStore, review_id: str) -> Any:
    """The store's current record of `review_id` (through its threads' latest reviews)."""
    for thread in THREADS:
        review = await store.get_review(thread)
        if review is not None and review.review_id == review_id:
            return review
    # Not the latest of its thread: decided earlier, so not pending any more.
    return None


@given(script=st.lists(ops, max_size=40), asks=st.lists(queries, min_size=1, max_size=8))
def test_list_pending_matches_sorting_everything(script: list[Op], asks: list[Query]) -> None:
    """Every filter (rule, assignees), cursor and limit gives what sorting all pending
    reviews would."""
    asyncio.run(_story(script, asks))


def test_list_pending_pages_through_ties() -> None:
    """Keyset pages over many equal `requested_at` values miss and repeat nothing."""

    async def story() -> None:
        store = InMemoryReviewStore()
        for i in range(30):
            await store.open_review(
                ReviewRecord(
                    review_id=uuid.uuid4().hex,
                    thread_id=f"t{i}",
                    checkpoint_id="c",
                    status="pending",
                    requested_at=T0 + timedelta(minutes=i % 3),
                ),
                owner=None,
            )
        everything = await store.list_pending()
        pages: list[ReviewRecord] = []
        after: tuple[datetime, str] | None = None
        while page := await store.list_pending(limit=7, after=after):
            pages += page
            after = (page[-1].requested_at, page[-1].review_id)
        assert pages == everything
        assert [(r.requested_at, r.review_id) for r in everything] == sorted(
            (r.requested_at, r.review_id) for r in everything
        )

    asyncio.run(story())
