"""The ledger verifier accepts exactly the gaps a `pruned` tombstone documents."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance.ledger import PRUNED_EVENT, row_hash, verify_rows
from hitl_compliance.stores import InMemoryReviewStore

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
LATER = T0 + timedelta(days=3000)


async def _ledger(threads: list[str]) -> InMemoryReviewStore:
    store = InMemoryReviewStore()
    for i, thread_id in enumerate(threads):
        await store.append_audit(
            thread_id=thread_id,
            review_id=None,
            checkpoint_id=None,
            event="paused",
            actor="system",
            payload={"i": i},
            at=T0 + timedelta(seconds=i),
        )
    return store


async def _pruned(threads: list[str], prune: set[str]) -> tuple[list[dict[str, Any]], Any]:
    store = await _ledger(threads)
    for thread_id in sorted(prune):
        await store.prune_thread(thread_id, "audit", before=LATER, now=LATER, actor="system:t")
    rows = [r.to_row() for r in await store.audit_rows()]
    return rows, await store.audit_head()


def _verify(rows: list[dict[str, Any]], head: Any) -> bool:
    return verify_rows(rows, head=head).ok


class TestDocumentedPruning:
    async def test_pruned_threads_verify_store_wide_and_per_thread(self) -> None:
        """A store with whole threads pruned verifies, and so does each thread's chain."""
        rows, head = await _pruned(["a", "b", "a", "c", "b", "a"], {"a"})
        assert [r["thread_id"] for r in rows] == ["b", "c", "b", "a"]
        assert rows[-1]["event"] == PRUNED_EVENT
        assert [s for s, _ in rows[-1]["payload"]["removed"]] == [1, 3, 6]
        assert _verify(rows, head)
        for thread_id in "abc":
            mine = [r for r in rows if r["thread_id"] == thread_id]
            assert verify_rows(mine, thread_id=thread_id).ok

    async def test_an_undocumented_deletion_still_breaks(self) -> None:
        """Deleting a row no tombstone lists breaks the global link after it."""
        rows, head = await _pruned(["a", "b", "a", "c", "b", "a"], {"a"})
        cut = [r for r in rows if r["seq"] != 4]  # c's only row
        report = verify_rows(cut, head=head)
        assert not report.ok
        assert report.first_broken is not None
        assert report.first_broken.seq == 5

    async def test_deleting_next_to_a_documented_gap_still_breaks(self) -> None:
        """A row deleted right after a documented gap widens it with an unlisted seq."""
        rows, head = await _pruned(["a", "b", "a", "c", "b"], {"a"})
        cut = [r for r in rows if r["seq"] != 2]  # b's row right after a's seq 1
        assert not _verify(cut, head)
        mine = [r for r in cut if r["thread_id"] == "b"]
        assert not verify_rows(mine, thread_id="b").ok

    async def test_deleting_the_tombstone_breaks(self) -> None:
        """The tombstone is the documentation: without it the gap is a deletion."""
        rows, head = await _pruned(["a", "b", "b"], {"a"})
        cut = [r for r in rows if r["event"] != PRUNED_EVENT]
        assert not _verify(cut, head)

    async def test_an_edited_tombstone_breaks(self) -> None:
        """A tombstone listing one more row than was pruned fails its own hash."""
        rows, head = await _pruned(["a", "b", "b"], {"a"})
        tomb = rows[-1]
        tomb["payload"]["removed"].append([2, rows[0]["hash"]])
        report = verify_rows([r for r in rows if r["seq"] != 2], head=head)
        assert not report.ok

    async def test_a_listed_row_still_present_breaks(self) -> None:
        """A row a tombstone says was pruned cannot also be in the ledger."""
        full = [r.to_row() for r in await (await _ledger(["a", "b"])).audit_rows()]
        rows, head = await _pruned(["a", "b"], {"a"})
        assert not _verify([full[0], *rows], head)

    async def test_a_rehashed_tombstone_with_a_wrong_hash_breaks(self) -> None:
        """Listing a wrong hash for the removed row breaks the link that skips it."""
        rows, head = await _pruned(["a", "b"], {"a"})
        tomb = rows[-1]
        tomb["payload"]["removed"][0][1] = "f" * 64
        tomb["hash"] = row_hash(tomb)
        assert not _verify(rows, (head[0], tomb["hash"]))


@given(
    threads=st.lists(st.sampled_from("abcde"), min_size=1, max_size=25),
    prune=st.sets(st.sampled_from("abcde")),
    victim=st.integers(min_value=0),
)
def test_only_documented_gaps_verify(threads: list[str], prune: set[str], victim: int) -> None:
    """Any set of pruned threads verifies; then deleting any one remaining row breaks it."""
    rows, head = asyncio.run(_pruned(threads, prune))
    assert _verify(rows, head)
    cut = rows[:]
    del cut[victim % len(cut)]
    assert not _verify(cut, head)
