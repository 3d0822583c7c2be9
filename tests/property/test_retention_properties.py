"""Retention invariants under any interleaving of decisions, holds, time and pruning runs.

Whatever happens: the ledger verifies, a held thread keeps every record, nothing is
deleted under its floor, and a decided thread's state at decision stays readable while
its review is kept.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import HitlCoordinator, KeywordRule, RetentionPolicy, build_compliance_graph
from hitl_compliance.testing import FakeClock

DAY = timedelta(days=1)
THREADS = ("t0", "t1", "t2")

operation = st.one_of(
    st.tuples(st.just("decide"), st.sampled_from(THREADS)),
    st.tuples(st.just("hold"), st.sampled_from(THREADS)),
    st.tuples(st.just("release"), st.sampled_from(THREADS)),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("prune"), st.integers(min_value=0, max_value=80)),
)


async def _run(ops: list[tuple[str, object]]) -> None:
    clock = FakeClock()
    floor = 10 * DAY
    graph = build_compliance_graph(
        lambda state: "Guaranteed returns!",
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
    )
    coord = HitlCoordinator(
        graph,
        clock=clock,
        retention=[
            RetentionPolicy("audit", floor=floor, ceiling=20 * DAY),
            RetentionPolicy("reviews", floor=floor, ceiling=15 * DAY),
            RetentionPolicy("checkpoints", floor=DAY, ceiling=2 * DAY),
        ],
    )
    decided_at: dict[str, list] = {}
    for op, arg in ops:
        if op == "decide":
            thread_id = str(arg)
            if await coord.reviews.get_review(thread_id) is not None:
                continue  # one decision per thread keeps the model simple
            await coord.process(thread_id, "Is this fund safe?")
            await coord.reject(thread_id, reviewer="officer@bank", reason="no")
            decided_at[thread_id] = [clock.now, await coord.state_at_decision(thread_id)]
        elif op == "hold":
            await coord.place_hold(str(arg), reason="enquiry", by="legal")
        elif op == "release":
            await coord.release_hold(str(arg), by="legal")
        elif op == "wait":
            clock.advance(days=int(str(arg)))
        else:
            held = {h.thread_id for h in await coord.holds()}
            before = {t: await coord.audit_log(t) for t in THREADS}
            reviews = {t: await coord.reviews.get_review(t) for t in THREADS}
            await coord.apply_retention(now=clock.now + int(str(arg)) * DAY)
            for thread_id in THREADS:
                after = await coord.audit_log(thread_id)
                young = [r for r in before[thread_id] if r.at > clock.now - floor]
                if thread_id in held:
                    assert after[: len(before[thread_id])] == before[thread_id]
                    assert await coord.reviews.get_review(thread_id) == reviews[thread_id]
                # Rows younger than the floor (by the clock) are never deleted.
                assert all(r in after for r in young)
        assert (await coord.verify_audit()).ok
    for thread_id, (_, state) in decided_at.items():
        if await coord.reviews.get_review(thread_id) is not None:
            assert await coord.state_at_decision(thread_id) == state


@given(st.lists(operation, max_size=14))
def test_retention_invariants(ops: list[tuple[str, object]]) -> None:
    """Under any interleaving, the ledger verifies, holds and floors keep records, and
    the evidence of a kept decision answers."""
    asyncio.run(_run(ops))
