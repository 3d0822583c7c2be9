"""Ledger lanes (format 3): per-lane links, the combined head, seals over all lanes.

Rows are sealed here with `models.seal` exactly as PostgreSQL's append seals
them (tests/integration/test_ledger_lanes.py checks that on a real server), so
these tests need no database.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from hitl_compliance.ledger import (
    GENESIS,
    LANES_FORMAT,
    PRUNED_EVENT,
    SealedHead,
    check_seals,
    combined_head,
    lane_of,
    row_hash,
    row_lane,
    seal_message,
    verify_rows,
)
from hitl_compliance.models import seal

AT = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def build(threads: list[str], lanes: int, *, first_seq: int = 1) -> list[dict[str, Any]]:
    """One format-3 row per entry of `threads`, chained per thread and per lane."""
    rows: list[dict[str, Any]] = []
    thread_prev: dict[str, str] = {}
    lane_prev: dict[int, str] = {}
    for seq, thread in enumerate(threads, first_seq):
        lane = lane_of(thread, lanes)
        record = seal(
            seq=seq,
            thread_id=thread,
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="ops",
            payload={"n": seq},
            at=AT,
            prev_hash=thread_prev.get(thread, GENESIS),
            global_prev_hash=lane_prev.get(lane, GENESIS),
            ledger_format=LANES_FORMAT,
            lane=lane,
        )
        rows.append(record.to_row())
        thread_prev[thread] = lane_prev[lane] = record.hash
    return rows


def head_of(rows: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The combined head of the rows' lanes."""
    last: dict[int, tuple[int, str]] = {}
    for row in rows:
        last[row_lane(row)] = (row["seq"], row["hash"])
    return combined_head((lane, *h) for lane, h in last.items())


def threads_in(lane: int, count: int, lanes: int = 16) -> list[str]:
    """`count` thread ids whose lane is `lane`."""
    found = [f"t{i}" for i in range(10_000) if lane_of(f"t{i}", lanes) == lane]
    return found[:count]


class TestLaneOf:
    def test_is_the_documented_function(self) -> None:
        """The lane is the first 8 hex digits of SHA-256(thread id) modulo the lane count."""
        digest = hashlib.sha256("thread-é".encode()).hexdigest()
        assert lane_of("thread-é", 16) == int(digest[:8], 16) % 16
        assert lane_of("thread-é", 1) == 0

    def test_refuses_no_lanes(self) -> None:
        """A ledger has at least one lane."""
        with pytest.raises(ValueError, match="at least one lane"):
            lane_of("t", 0)


class TestCombinedHead:
    def test_lane_zero_alone_is_the_single_chain_head(self) -> None:
        """With rows in lane 0 only, the head is lane 0's (seq, hash): as without lanes."""
        assert combined_head([(0, 7, "a" * 64), (1, 0, GENESIS)]) == (7, "a" * 64)
        assert combined_head([(0, 0, GENESIS), (1, 0, GENESIS)]) is None

    def test_several_lanes_hash_their_list(self) -> None:
        """Otherwise the head is the largest seq and SHA-256 of the JCS of the lanes' list."""
        heads = [(3, 9, "c" * 64), (0, 4, "a" * 64), (5, 0, GENESIS)]
        text = json.dumps([[0, 4, "a" * 64], [3, 9, "c" * 64]], separators=(",", ":"))
        assert combined_head(heads) == (9, hashlib.sha256(text.encode()).hexdigest())


class TestVerifyLanes:
    def test_interleaved_lanes_verify(self) -> None:
        """Rows of several lanes, interleaved, link per lane and verify against the head."""
        a, b = threads_in(3, 1)[0], threads_in(7, 1)[0]
        rows = build([a, b, a, b, b, a], 16)
        assert {row_lane(r) for r in rows} == {3, 7}
        report = verify_rows(rows, head=head_of(rows))
        assert (report.ok, report.checked) == (True, 6)
        assert report.head_hash == head_of(rows)[1]  # type: ignore[index]

    def test_sequence_gaps_verify(self) -> None:
        """Seqs may skip numbers (a rolled-back append drew one): the links are what count."""
        a, b = threads_in(2, 2)
        rows = build([a, b, a], 16)
        for row, seq in zip(rows, (3, 8, 20), strict=True):
            row["seq"] = seq
            row["hash"] = row_hash(row)
        # Re-link after re-hashing: rebuild the chain with the new seqs.
        rows = relink(rows)
        assert verify_rows(rows, head=head_of(rows)).ok

    def test_deleted_row_breaks_its_lane_successor(self) -> None:
        """A deleted row breaks the next row of its lane, even of another thread."""
        a, b = threads_in(2, 2)
        c = threads_in(9, 1)[0]
        rows = build([a, c, b, c, a], 16)
        del rows[2]  # b's row, lane 2; a's next row (seq 5) links to it in the lane
        report = verify_rows(rows, head=head_of(rows))
        assert report.first_broken is not None
        assert (report.first_broken.seq, report.checked) == (5, 3)
        assert "global_prev_hash" in report.first_broken.reason

    def test_cut_lane_end_breaks_the_head(self) -> None:
        """Deleting a lane's last row is caught by the head, whichever lane it is."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c], 16)
        head = head_of(rows)
        report = verify_rows([rows[0], rows[1], rows[3]], head=head)
        assert report.first_broken is not None
        assert "chain head" in report.first_broken.reason

    def test_moved_lane_breaks_the_hash(self) -> None:
        """A row's lane is hashed: moving it to another lane is an edit."""
        a = threads_in(2, 1)[0]
        rows = build([a, a], 16)
        rows[1]["lane"] = 4
        report = verify_rows(rows)
        assert report.first_broken is not None
        assert (report.first_broken.seq, "edited" in report.first_broken.reason) == (2, True)

    def test_format_two_rows_are_lane_zero(self) -> None:
        """Rows before lanes (format 2) chain as lane 0; new lanes start from genesis."""
        old = seal(
            seq=1,
            thread_id="old",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="ops",
            payload={},
            at=AT,
            prev_hash=GENESIS,
            global_prev_hash=GENESIS,
        ).to_row()
        assert "lane" not in old
        assert row_lane(old) == 0
        new = build([threads_in(5, 1)[0]], 16, first_seq=2)
        rows = [old, *new]
        assert verify_rows(rows, head=head_of(rows)).ok

    def test_pruned_rows_of_a_lane_verify(self) -> None:
        """A tombstone's listed rows are an accepted gap in their lane."""
        a, b = threads_in(2, 2)
        rows = build([a, b, a], 16)
        removed = rows.pop(1)
        tomb = seal(
            seq=4,
            thread_id=b,
            review_id=None,
            checkpoint_id=None,
            event=PRUNED_EVENT,
            actor="retention",
            payload={"removed": [[removed["seq"], removed["hash"]]]},
            at=AT,
            prev_hash=removed["hash"],
            global_prev_hash=rows[-1]["hash"],
            ledger_format=LANES_FORMAT,
            lane=2,
        ).to_row()
        rows.append(tomb)
        assert verify_rows(rows, head=head_of(rows)).ok
        # The gap is accepted only while the tombstone lists it.
        del tomb["payload"]["removed"][0]
        assert not verify_rows(rows, head=head_of(rows)).ok

    @given(
        picks=st.lists(st.integers(min_value=0, max_value=5), min_size=2, max_size=30),
        lanes=st.sampled_from([1, 2, 16]),
        data=st.data(),
    )
    def test_any_interleaving_verifies_and_any_deletion_breaks(
        self, picks: list[int], lanes: int, data: st.DataObject
    ) -> None:
        """Any interleaving of threads over any lane count verifies; deleting a row does not."""
        rows = build([f"thread-{p}" for p in picks], lanes)
        assert verify_rows(rows, head=head_of(rows)).ok
        gone = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
        assert not verify_rows(rows[:gone] + rows[gone + 1 :], head=head_of(rows)).ok


def relink(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows re-chained (thread and lane links, hashes) in their order."""
    thread_prev: dict[str, str] = {}
    lane_prev: dict[int, str] = {}
    for row in rows:
        row["prev_hash"] = thread_prev.get(row["thread_id"], GENESIS)
        row["global_prev_hash"] = lane_prev.get(row["lane"], GENESIS)
        row["hash"] = row_hash(row)
        thread_prev[row["thread_id"]] = lane_prev[row["lane"]] = row["hash"]
    return rows


def sign_lanes(rows: list[dict[str, Any]], key: Any) -> SealedHead:
    """A seal of the rows' lane heads signed by `key` (an Ed25519 private key)."""
    last: dict[int, tuple[int, str]] = {}
    for row in rows:
        last[row_lane(row)] = (row["seq"], row["hash"])
    lanes = tuple(sorted((lane, *h) for lane, h in last.items()))
    seq, digest = combined_head(lanes)  # type: ignore[misc]
    message = seal_message(seq, digest, AT, "k")
    return SealedHead(seq, digest, AT, "k", key.sign(message).hex(), lanes=lanes)


class TestSealsOverLanes:
    @pytest.fixture
    def key(self) -> Any:
        ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
        return ed25519.Ed25519PrivateKey.generate()

    def verifier(self, key: Any) -> Any:
        from cryptography.exceptions import InvalidSignature

        public = key.public_key()

        def verify(message: bytes, signature: bytes) -> bool:
            try:
                public.verify(signature, message)
            except InvalidSignature:
                return False
            return True

        return verify

    def test_seal_of_all_lanes_verifies_and_round_trips(self, key: Any) -> None:
        """A seal lists every lane head, signs their combined head and reads back equal."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c, a], 16)
        sealed = sign_lanes(rows, key)
        assert SealedHead.from_record(sealed.to_record()) == sealed
        assert sealed.to_record()["lanes"] == [[2, 5, rows[4]["hash"]], [9, 4, rows[3]["hash"]]]
        report = check_seals(
            rows, verify_rows(rows), [sealed], verify=self.verifier(key), key_id="k"
        )
        assert report.ok, report.first_broken
        assert report.proof is not None
        assert (report.proof.sealed_seq, report.proof.unsealed_rows) == (5, 0)

    def test_truncated_lane_is_caught(self, key: Any) -> None:
        """Cutting one lane back past its sealed head is caught, though another lane is longer."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c, a], 16)
        sealed = sign_lanes(rows[:4], key)  # lane 9's head is row 4
        cut = [r for r in rows if r["seq"] != 4]  # lane 9 loses row 4; lane 2 goes on to 5
        report = check_seals(cut, verify_rows(cut), [sealed], verify=self.verifier(key), key_id="k")
        assert report.first_broken is not None
        assert "lane 9" in report.first_broken.reason
        assert "deleted" in report.first_broken.reason

    def test_rehashed_lane_is_caught(self, key: Any) -> None:
        """A lane rewritten and re-hashed no longer matches its sealed head."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c], 16)
        sealed = sign_lanes(rows, key)
        rows[1]["actor"] = "mallory"
        forged = relink(rows)
        report = check_seals(
            forged, verify_rows(forged), [sealed], verify=self.verifier(key), key_id="k"
        )
        assert report.first_broken is not None
        assert "re-hashed" in report.first_broken.reason

    def test_edited_lane_list_is_caught(self, key: Any) -> None:
        """A seal whose lane list was altered no longer hashes to the signed head."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c], 16)
        sealed = sign_lanes(rows, key)
        record = sealed.to_record()
        record["lanes"] = record["lanes"][:1]
        altered = SealedHead.from_record(record)
        report = check_seals(
            rows, verify_rows(rows), [altered], verify=self.verifier(key), key_id="k"
        )
        assert report.first_broken is not None
        assert "lane heads do not hash" in report.first_broken.reason

    def test_rows_after_the_seal_are_counted_per_lane(self, key: Any) -> None:
        """Rows past their lane's sealed head are unsealed; a lower seq in another lane is not."""
        a, c = threads_in(2, 1)[0], threads_in(9, 1)[0]
        rows = build([a, c, a, c], 16)
        sealed = sign_lanes(rows, key)
        more = build([a, c, a, c, c, a], 16)  # same first four rows, then 5 (c) and 6 (a)
        assert more[:4] == rows
        report = check_seals(
            more, verify_rows(more), [sealed], verify=self.verifier(key), key_id="k"
        )
        assert report.ok
        assert report.proof is not None
        assert report.proof.unsealed_rows == 2
