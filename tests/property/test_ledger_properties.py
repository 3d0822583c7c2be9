"""Property tests of the ledger's canonical forms over generated JSON payloads.

* Format 2's canonical bytes are exactly RFC 8785 (`rfc8785.dumps`) of the row's
  hashed fields and `ledger_format`.
* A sealed row's hash is stable: the same after the export's JSON round trip
  and after re-reading; `verify_rows` accepts the chain either way.
* Format 1 (the legacy form) still hashes Python's `json.dumps` bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_compliance.ledger import GENESIS, HASHED_FIELDS, canonical, row_hash, verify_rows
from hitl_compliance.models import seal
from tests.strategies import AuditAppend, audit_appends, ledger_payloads


def sealed_chain(appends: list[AuditAppend], payloads: list[dict[str, Any]], fmt: int) -> list[Any]:
    """The appends sealed in one chain (one thread per `thread`), in format `fmt`."""
    rows = []
    prev: dict[str, str] = {}
    global_prev = GENESIS
    for seq, (a, payload) in enumerate(zip(appends, payloads, strict=False), 1):
        record = seal(
            seq=seq,
            thread_id=a.thread,
            review_id=a.review_id,
            checkpoint_id=a.checkpoint_id,
            event=a.event,
            actor=a.actor,
            payload=payload,
            at=a.at,
            prev_hash=prev.get(a.thread, GENESIS),
            global_prev_hash=global_prev,
            ledger_format=fmt,
        )
        rows.append(record)
        prev[a.thread] = global_prev = record.hash
    return rows


class TestFormatTwo:
    @given(append=audit_appends(), payload=ledger_payloads())
    def test_canonical_bytes_are_rfc8785(
        self, append: AuditAppend, payload: dict[str, Any]
    ) -> None:
        """Format 2's canonical bytes equal rfc8785.dumps of the hashed fields and the format."""
        [record] = sealed_chain([append], [payload], 2)
        row = record.to_row()
        content = {name: row[name] for name in HASHED_FIELDS}
        content["ledger_format"] = 2
        assert canonical(row) == rfc8785.dumps(content)
        assert record.hash == hashlib.sha256(rfc8785.dumps(content)).hexdigest()

    @given(
        appends=st.lists(audit_appends(), min_size=1, max_size=4),
        payloads=st.lists(ledger_payloads(), min_size=4, max_size=4),
    )
    def test_hashes_survive_the_export_round_trip(
        self, appends: list[AuditAppend], payloads: list[dict[str, Any]]
    ) -> None:
        """Rows read back from export JSON hash as sealed, twice over, and the chain verifies."""
        rows = sealed_chain(appends, payloads, 2)
        exported = [json.loads(json.dumps(r.to_row(), ensure_ascii=False)) for r in rows]
        assert [row_hash(r) for r in exported] == [r.hash for r in rows]
        assert [row_hash(r) for r in exported] == [row_hash(r) for r in exported]
        report = verify_rows(exported, head=(rows[-1].seq, rows[-1].hash))
        assert report.ok, report.first_broken
        assert report.checked == len(rows)


class TestFormatOne:
    @given(append=audit_appends(), payload=ledger_payloads())
    def test_legacy_rows_hash_pythons_json(
        self, append: AuditAppend, payload: dict[str, Any]
    ) -> None:
        """Format 1 hashes json.dumps(sort_keys, compact, non-ASCII kept) of the fields alone."""
        [record] = sealed_chain([append], [payload], 1)
        row = record.to_row()
        content = {name: row[name] for name in HASHED_FIELDS}
        legacy = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical(row) == legacy.encode("utf-8")
        exported = json.loads(json.dumps(row, ensure_ascii=False))
        assert verify_rows([exported], head=(1, record.hash)).ok


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=4)
            | st.sampled_from(["a", "b", "\ue000", "\U0001f600", "z"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(_JSON_VALUES)
@settings(max_examples=400)
def test_fast_canonical_json_matches_rfc8785_byte_for_byte(value: object) -> None:
    """The ledger's `json` fast path writes exactly what `rfc8785` writes, or both refuse."""
    import rfc8785

    from hitl_compliance.ledger import _jcs

    try:
        expected: bytes | None = rfc8785.dumps(value)
    except ValueError:
        expected = None
    try:
        got: bytes | None = _jcs(value)
    except ValueError:
        got = None
    assert got == expected
