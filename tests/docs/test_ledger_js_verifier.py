"""The JavaScript verifier in the docs agrees with `ledger.py` on real exports.

`docs/assets/verify-ledger.mjs` was written from the documented procedure
(docs/concepts/audit.md) alone. A ledger written through the real stores
(SQLite and PostgreSQL) with the values where Python's JSON and ECMAScript's
differ (`100.0`, `1e16`, `-0.0`, integers up to 2**53-1, keys outside the BMP
that JCS sorts by UTF-16 code units) is exported and verified by node: every
row's hash equals Python's, the verdicts are the same, and a tampered row is
flagged at the same seq by both. Skipped when node is missing, unless
`HITL_REQUIRE_NODE=1` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import HitlCoordinator, KeywordRule, RetentionPolicy, build_compliance_graph
from hitl_compliance.backends import Backend
from hitl_compliance.ledger import GENESIS, PRUNED_EVENT, _main, _read_export, row_hash
from hitl_compliance.models import seal

VERIFIER = Path(__file__).parents[2] / "docs" / "assets" / "verify-ledger.mjs"
AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)

# The values where Python's json.dumps, JCS and a naive JavaScript port disagree.
AWKWARD: dict[str, Any] = {
    "floats": [100.0, 1e16, 0.1, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308],
    "ints": [2**53 - 1, -(2**53 - 1), 0, -1],
    "\U0001d11e": "G clef (UTF-16 D834 DD1E: sorts before U+FFFF in JCS)",
    "\uffff": "last BMP code point",
    "\ue000": "private use",
    "text": 'é Ω 😀 "quoted" back\\slash\ncontrol\x01\x1f del\x7f \u2028',
    "nested": [[[], {}], [{"b": [1, [2.5, None]], "a": True}]],
}


def node_path() -> str:
    """The node executable; skips (or fails under HITL_REQUIRE_NODE=1) without one."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("HITL_REQUIRE_NODE") == "1":
            pytest.fail("HITL_REQUIRE_NODE=1 (CI) but node is not on PATH: install nodejs >= 18")
        pytest.skip("node is not on PATH: the JavaScript ledger verifier cannot run")
    return node


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the docs' verifier under node."""
    return subprocess.run(
        [node_path(), str(VERIFIER), *args], capture_output=True, text=True, timeout=60
    )


def run_python(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`python -m hitl_compliance.ledger verify path`: its exit status and output."""
    capsys.readouterr()
    status = _main(["ledger.py", "verify", str(path)])
    return status, capsys.readouterr().out.strip()


def node_hashes(path: Path) -> dict[int, str]:
    """The hash node computes for each row of an export, by seq."""
    done = run_node("--hashes", str(path))
    assert done.returncode == 0, done.stderr
    return {
        int(seq): digest for seq, digest in (line.split("\t") for line in done.stdout.splitlines())
    }


def broken_seq(output: str) -> int:
    """The seq a `BROKEN at seq N ...` verdict names."""
    found = re.match(r"BROKEN at seq (\d+)", output)
    assert found is not None, output
    return int(found.group(1))


def assert_agree(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Node and Python compute the same hash for every row and give the same verdict."""
    rows, _ = _read_export(str(path))
    assert node_hashes(path) == {int(r["seq"]): row_hash(r) for r in rows}
    status, python_out = run_python(path, capsys)
    done = run_node(str(path))
    assert done.returncode == status, (done.stdout, done.stderr, python_out)
    if status == 0:
        assert done.stdout.strip() == python_out
    else:
        assert broken_seq(done.stdout) == broken_seq(python_out)
    return status, python_out


def edited(path: Path, target: Path, seq: int, change: Any) -> Path:
    """A copy of the export whose row `seq` was edited by `change(row)`."""
    lines = []
    # Split on "\n" only: str.splitlines() would also cut at the U+2028 rows hold.
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        record = json.loads(line)
        if record.get("type") == "row" and record["seq"] == seq:
            change(record)
        lines.append(json.dumps(record, ensure_ascii=False))
    target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return target


@pytest.mark.hitl_backends("sqlite", "postgres")
class TestJavaScriptVerifier:
    async def test_node_agrees_on_a_real_store_export(
        self, hitl_backend: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every row of a store's export hashes the same in node and Python; both say ok."""
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=hitl_backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=hitl_backend.reviews)
        for thread in ("t1", "t2"):
            await coord.process(thread, "Is this fund safe?")
        await coord.approve("t1", reviewer="officer@bank", metadata=AWKWARD)
        await coord.reject("t2", reviewer="officer@bank", reason="misleading 😀")
        for thread in ("t1", "t3"):
            await hitl_backend.reviews.append_audit(
                thread_id=thread,
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="auditor \U0001d11e",
                payload={"awkward": AWKWARD, "list": [AWKWARD["floats"], [[123456789.125]]]},
                at=AT,
            )
        export = tmp_path / "audit.jsonl"
        count = await coord.export_audit(export)
        assert count >= 6
        rows, _ = _read_export(str(export))
        # Format 2 in one chain (SQLite); format 3 in PostgreSQL's lanes, several here.
        assert {r["ledger_format"] for r in rows} in ({2}, {3})
        if rows[0]["ledger_format"] == 3:
            assert len({r["lane"] for r in rows}) > 1
        status, out = assert_agree(export, capsys)
        assert status == 0, out

        # One thread's export (no head line) verifies in both too.
        partial = tmp_path / "t1.jsonl"
        await coord.export_audit(partial, thread_id="t1")
        assert assert_agree(partial, capsys)[0] == 0

        # A tampered row is flagged at the same seq by both.
        target = rows[2]["seq"]

        def tamper(row: dict[str, Any]) -> None:
            row["payload"]["tampered"] = 0.1

        status, out = assert_agree(edited(export, tmp_path / "t.jsonl", target, tamper), capsys)
        assert (status, broken_seq(out)) == (1, target)

        # Relabelling a row as format 1 breaks its hash in both.
        def relabel(row: dict[str, Any]) -> None:
            row["ledger_format"] = 1

        status, out = assert_agree(edited(export, tmp_path / "f.jsonl", target, relabel), capsys)
        assert (status, broken_seq(out)) == (1, target)

        # Retention's documented gaps (rows listed by a `pruned` tombstone) verify in both.
        pruning = HitlCoordinator(
            graph,
            reviews=hitl_backend.reviews,
            retention=[RetentionPolicy("audit", floor=timedelta(0), ceiling=timedelta(0))],
        )
        await pruning.apply_retention(now=AT + timedelta(days=365 * 100))
        pruned = tmp_path / "pruned.jsonl"
        await pruning.export_audit(pruned)
        rows, _ = _read_export(str(pruned))
        assert any(r["event"] == PRUNED_EVENT for r in rows)
        assert len(rows) < count + 2
        status, out = assert_agree(pruned, capsys)
        assert status == 0, out

        # A listed row put back is flagged by both, at the same row.
        listed = next(r for r in rows if r["event"] == PRUNED_EVENT)["payload"]["removed"]
        original, _ = _read_export(str(export))
        back = next(r for r in original if r["seq"] == listed[0][0])
        restored = sorted([*rows, back], key=lambda r: int(r["seq"]))
        lines = [json.dumps({"type": "row", **r}, ensure_ascii=False) for r in restored]
        (tmp_path / "restored.jsonl").write_text(
            "".join(f"{line}\n" for line in lines), encoding="utf-8"
        )
        status, out = assert_agree(tmp_path / "restored.jsonl", capsys)
        assert status == 1, out


class TestLegacyRows:
    def test_node_agrees_on_format_one_rows_before_format_two(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An upgraded store's export (format-1 rows, then format-2 rows) verifies in both."""
        rows = []
        prev = GENESIS
        legacy = {**AWKWARD, "big": [2**60, -(2**63)], "floats": [100.0, 1e16, -0.0]}
        for seq, fmt, payload in [(1, 1, legacy), (2, 1, {"x": 1.5}), (3, 2, AWKWARD)]:
            record = seal(
                seq=seq,
                thread_id="t1",
                review_id=None,
                checkpoint_id="c1",
                event="note",
                actor="a",
                payload=payload,
                at=AT,
                prev_hash=prev,
                global_prev_hash=prev,
                ledger_format=fmt,
            )
            rows.append(record.to_row())
            prev = record.hash
        export = tmp_path / "legacy.jsonl"
        lines = [json.dumps({"type": "row", **r}, ensure_ascii=False) for r in rows]
        lines.append(json.dumps({"type": "head", "seq": 3, "hash": prev}))
        export.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        status, out = assert_agree(export, capsys)
        assert status == 0, out

        def tamper(row: dict[str, Any]) -> None:
            row["payload"]["big"][0] += 1

        status, out = assert_agree(edited(export, tmp_path / "t.jsonl", 1, tamper), capsys)
        assert (status, broken_seq(out)) == (1, 1)
