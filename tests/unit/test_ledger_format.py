"""The ledger's two canonical forms, per-row dispatch, and refusal of values JCS cannot write."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hitl_compliance import Decision, InvalidInputError, LedgerValueError
from hitl_compliance.ledger import (
    GENESIS,
    LEDGER_FORMAT,
    UnsealableValueError,
    _main,
    canonical,
    check_sealable,
    row_hash,
    verify_rows,
)
from hitl_compliance.models import seal
from hitl_compliance.stores import InMemoryReviewStore
from hitl_compliance.testing.conformance import at

ROW: dict[str, Any] = {
    "seq": 7,
    "thread_id": "t\U0001d11e",
    "review_id": None,
    "checkpoint_id": "c1",
    "event": "approved",
    "actor": "officer@bank",
    "payload": {"f": [100.0, 1e16, -0.0, 0.1], "big": 2**60, "\uffff": 1, "\U0001d11e": 2},
    "at": "2026-01-02T03:04:05.678901+00:00",
    "prev_hash": "0" * 64,
    "global_prev_hash": "1" * 64,
}
TAIL = (
    '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    '"review_id":null,"seq":7,"thread_id":"t\U0001d11e"}'
)
HEAD = (
    '{"actor":"officer@bank","at":"2026-01-02T03:04:05.678901+00:00","checkpoint_id":"c1",'
    '"event":"approved","global_prev_hash":"1111111111111111111111111111111111111111111111111111111111111111",'
)


class TestCanonicalForms:
    def test_format_one_is_unchanged(self) -> None:
        """A row without `ledger_format` hashes exactly as before format 2 (pinned from 0.1)."""
        expected = (
            HEAD + '"payload":{"big":1152921504606846976,"f":[100.0,1e+16,-0.0,0.1],'
            '"\uffff":1,"\U0001d11e":2},' + TAIL
        )
        assert canonical(ROW) == expected.encode("utf-8")
        assert canonical({**ROW, "ledger_format": 1}) == canonical(ROW)
        assert row_hash(ROW) == "b6d1704393ac2c736ec784dda8846b22389a9efff7f89467c0b67ad8c0fb8091"

    def test_format_two_is_jcs_with_the_format_hashed(self) -> None:
        """ES numbers, UTF-16 key order (U+1D11E before U+FFFF) and `ledger_format` in the bytes."""
        expected = (
            HEAD + '"ledger_format":2,"payload":{"big":1152921504606847000,'
            '"f":[100,10000000000000000,0,0.1],"\U0001d11e":2,"\uffff":1},' + TAIL
        )
        assert canonical({**ROW, "ledger_format": 2}) == expected.encode("utf-8")

    def test_new_rows_are_format_two(self) -> None:
        """`seal` writes the current format unless told otherwise (the migration backfill)."""
        record = seal(
            seq=1,
            thread_id="t1",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="a",
            payload={"x": 1.0},
            at=at(0),
            prev_hash=GENESIS,
            global_prev_hash=GENESIS,
        )
        assert record.ledger_format == LEDGER_FORMAT == 2
        assert record.to_row()["ledger_format"] == 2
        assert record.hash == row_hash(record.to_row())

    @pytest.mark.parametrize("fmt", [4, "2", "3", True, None, 2.0, 3.0])
    def test_unknown_format_is_refused(self, fmt: Any) -> None:
        """Only the ints 1, 2 and 3 name a format."""
        with pytest.raises(ValueError, match="unknown ledger_format"):
            canonical({**ROW, "ledger_format": fmt})


def chain(formats: list[int]) -> list[dict[str, Any]]:
    """Rows of one thread sealed in the given formats, chained."""
    rows, prev = [], GENESIS
    for seq, fmt in enumerate(formats, 1):
        record = seal(
            seq=seq,
            thread_id="t1",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="a",
            payload={"n": seq, "f": 1e16},
            at=at(seq),
            prev_hash=prev,
            global_prev_hash=prev,
            ledger_format=fmt,
        )
        rows.append(record.to_row())
        prev = record.hash
    return rows


class TestVerifyDispatch:
    def test_mixed_formats_verify(self) -> None:
        """An upgraded store's rows (format 1, then 2) verify, each in its own form."""
        rows = chain([1, 1, 2, 2])
        assert verify_rows(rows, head=(4, rows[-1]["hash"])).ok

    @pytest.mark.parametrize("fmt", [1, 2])
    def test_relabelled_format_is_flagged(self, fmt: int) -> None:
        """Changing a row's `ledger_format` breaks its hash at that row."""
        rows = chain([fmt, fmt, fmt])
        rows[1] = {**rows[1], "ledger_format": 3 - fmt}
        report = verify_rows(rows)
        assert report.first_broken is not None
        assert report.first_broken.seq == 2

    def test_a_value_format_two_cannot_hash_is_a_broken_row(self) -> None:
        """An edited row holding 2**53 + 1 is reported broken, not raised."""
        rows = chain([2, 2])
        rows[1] = {**rows[1], "payload": {"n": 2**53 + 1}}
        report = verify_rows(rows)
        assert report.first_broken is not None
        assert report.first_broken.seq == 2
        assert "cannot be hashed" in report.first_broken.reason

    def test_cli_without_rfc8785_says_what_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Format-2 rows and no `rfc8785`: exit 2 naming the package; format 1 still verifies."""
        path = tmp_path / "audit.jsonl"
        path.write_text("".join(json.dumps({"type": "row", **r}) + "\n" for r in chain([2])))
        monkeypatch.setitem(sys.modules, "rfc8785", None)
        assert _main(["ledger.py", "verify", str(path)]) == 2
        assert "pip install rfc8785" in capsys.readouterr().err
        path.write_text("".join(json.dumps({"type": "row", **r}) + "\n" for r in chain([1])))
        assert _main(["ledger.py", "verify", str(path)]) == 0


class TestRefusal:
    @pytest.mark.parametrize(
        ("value", "path"),
        [
            ({"n": 2**53 + 1}, "payload.n"),
            ({"a": [1, {"b": -(2**63) - 1}]}, "payload.a[1].b"),
            ({"x": float("nan")}, "payload.x"),
            ({"x": [float("-inf")]}, "payload.x[0]"),
            ({"s": "lone \ud800"}, "payload.s"),
            ({"\udfff": 1}, "payload"),
            ({"o": object()}, "payload.o"),
        ],
    )
    def test_check_sealable_names_the_path(self, value: Any, path: str) -> None:
        """Each value JCS cannot write exactly is refused, located by its path."""
        with pytest.raises(UnsealableValueError) as raised:
            check_sealable(value)
        assert raised.value.path == path

    def test_exact_doubles_are_sealable(self) -> None:
        """Integers a double equals exactly, even beyond 2**53, are JSON numbers."""
        check_sealable({"i": [2**53 - 1, -(2**53 - 1), 10**16, 2**60, -(2**63)], "f": 1e308})

    async def test_memory_store_refuses_and_changes_nothing(self) -> None:
        """A refused append is a LedgerValueError (an InvalidInputError); nothing is appended."""
        store = InMemoryReviewStore()
        with pytest.raises(LedgerValueError) as raised:
            await store.append_audit(
                thread_id="t1",
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="a",
                payload={"n": float("nan")},
                at=at(0),
            )
        assert isinstance(raised.value, InvalidInputError)
        assert (raised.value.thread_id, raised.value.event, raised.value.path) == (
            "t1",
            "note",
            "row.payload.n",
        )
        assert await store.audit_rows() == []
        assert await store.audit_head() is None

    @pytest.mark.parametrize("field", ["metadata", "tool_args"])
    def test_decision_fields_are_refused_on_every_path(self, field: str) -> None:
        """A Decision (however a resume builds it) refuses ints the ledger cannot hash."""
        with pytest.raises(ValidationError, match=r"2\*\*53-1"):
            Decision(approved=True, reviewer="a", decided_at=at(0), **{field: {"n": 2**53 + 1}})
        exact = Decision(approved=True, reviewer="a", decided_at=at(0), **{field: {"n": 10**16}})
        assert getattr(exact, field) == {"n": 10**16}
