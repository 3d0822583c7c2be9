"""Seal conformance: a [`SealStore`][hitl_compliance.SealStore] keeps signed chain heads.

Covers `configure_sealing`, `seal_head` and `seals`: seals every N rows after
committed writes, exact round trips of sealed heads (their signatures verify),
one seal per head and key when two instances seal at once, and nothing sealed
on an empty ledger. Skipped for a store without the capability (it is
optional) and without `cryptography` (the `signing` extra).

Part of
[`ReviewStoreConformance`][hitl_compliance.testing.conformance.ReviewStoreConformance];
subclass [`SealConformance`][hitl_compliance.testing.conformance.SealConformance]
alone to run only this capability.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_compliance.ledger import check_seals, combined_head, row_lane, verify_rows
from hitl_compliance.stores import ReviewStore, SealStore
from hitl_compliance.testing.conformance._base import ConformanceBase
from hitl_compliance.testing.conformance._helpers import at

__all__ = ["SealConformance"]


def _sealable(store: ReviewStore) -> SealStore:
    pytest.importorskip("cryptography", reason="sealed heads need the signing extra")
    if not isinstance(store, SealStore):
        pytest.skip(f"{type(store).__name__} does not keep sealed heads (SealStore)")
    return store


async def _append(store: ReviewStore, i: int) -> None:
    await store.append_audit(
        thread_id=f"t{i % 2}",
        review_id=None,
        checkpoint_id=None,
        event="note",
        actor="ops",
        payload={"i": i},
        at=at(i),
    )


def _head_at(rows: list[dict[str, Any]], seq: int) -> tuple[int, str] | None:
    """The ledger head when row `seq` was the newest."""
    last: dict[int, tuple[int, str]] = {}
    for row in rows:
        if row["seq"] <= seq:
            last[row_lane(row)] = (row["seq"], row["hash"])
    return combined_head((lane, *head) for lane, head in last.items())


class SealConformance(ConformanceBase):
    """The sealed-head tests: policy, round trip, one seal per head, empty ledger."""

    async def test_seals_every_n_rows_and_round_trips(self, review_store: ReviewStore) -> None:
        """With every_rows=2, five appends leave seals at 2 and 4 that verify with the key."""
        from hitl_compliance.signing import Ed25519Signer, Sealing, load_public_key

        store = _sealable(review_store)
        signer = Ed25519Signer.generate()
        store.configure_sealing(Sealing(signer, every_rows=2, every=None))
        for i in range(5):
            await _append(review_store, i)
        seals = await store.seals()
        assert [s.seq for s in seals] == [2, 4]
        rows = [r.to_row() for r in await review_store.audit_rows()]
        # Each seal signs the head as it was: the last row's hash in a store without
        # lanes, the combined head of the lanes' last rows in one with lanes.
        assert [(s.seq, s.hash) for s in seals] == [_head_at(rows, 2), _head_at(rows, 4)]
        key = load_public_key(signer.public_key_pem())
        report = check_seals(rows, verify_rows(rows), seals, verify=key.verify, key_id=key.key_id)
        assert report.ok, report.first_broken
        assert report.proof is not None
        assert (report.proof.sealed_seq, report.proof.unsealed_rows) == (4, 1)

    async def test_one_seal_per_head_across_instances(
        self, review_store_pair: tuple[ReviewStore, ReviewStore]
    ) -> None:
        """Two instances sealing the same head at once store it once."""
        from hitl_compliance.signing import Ed25519Signer, Sealing

        a, b = (_sealable(s) for s in review_store_pair)
        signer = Ed25519Signer.generate()
        for store in (a, b):
            store.configure_sealing(Sealing(signer, every_rows=None, every=None))
        await _append(review_store_pair[0], 1)
        made = await asyncio.gather(a.seal_head(), b.seal_head())
        assert all(m is not None and m.seq == 1 for m in made)
        assert [s.seq for s in await a.seals()] == [1]

    async def test_empty_ledger_seals_nothing(self, review_store: ReviewStore) -> None:
        """seal_head on an empty ledger returns None and stores nothing."""
        from hitl_compliance.signing import Ed25519Signer, Sealing

        store = _sealable(review_store)
        store.configure_sealing(Sealing(Ed25519Signer.generate()))
        assert await store.seal_head() is None
        assert await store.seals() == []
