"""`hitl-compliance evidence THREAD --out DIR`: a review's evidence pack from the command line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance._fca import SMCR_APPROVER
from hitl_compliance.cli import main
from hitl_compliance.evidence_pack import pdf_available


@pytest.fixture
def backend_url(tmp_path: Path) -> str:
    """A SQLite backend URL of the test's own."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def decided(backend_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The demo's pending review, approved by an SM&CR approver; its thread."""
    assert main(["demo", "--backend", backend_url]) == 0
    capsys.readouterr()
    assert main(["pending", "--backend", backend_url, "--json"]) == 0
    [review] = json.loads(capsys.readouterr().out)
    thread = str(review["thread_id"])
    argv = ["approve", thread, "--reviewer", "sam@bank", "--role", SMCR_APPROVER]
    assert main([*argv, "--backend", backend_url]) == 0
    capsys.readouterr()
    return thread


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestEvidenceCommand:
    def test_writes_the_pack(
        self, backend_url: str, decided: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The pack's files land in --out; the manifest hashes each of them."""
        out_dir = tmp_path / "pack"
        code, out, err = run(
            capsys, "evidence", decided, "--out", str(out_dir), "--backend", backend_url
        )
        assert code == 0, err
        assert f"(thread {decided})" in out
        manifest = json.loads((out_dir / "manifest.json").read_text())
        assert f"manifest hash): {manifest['manifest_sha256']}" in out
        names = {"evidence.html", "evidence.json"} | (
            {"evidence.pdf"} if pdf_available() else set()
        )
        assert set(manifest["files"]) == names
        for name, digest in manifest["files"].items():
            assert hashlib.sha256((out_dir / name).read_bytes()).hexdigest() == digest
        data = json.loads((out_dir / "evidence.json").read_text())
        assert data["thread_id"] == decided
        assert data["review"]["reviewer"] == "sam@bank"
        assert "sam@bank" in (out_dir / "evidence.html").read_text()

    def test_json_output_and_review_id(
        self, backend_url: str, decided: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json prints the files and hash; --review picks the review by id."""
        code, out, _ = run(
            capsys,
            "evidence",
            decided,
            "--out",
            str(tmp_path / "a"),
            "--backend",
            backend_url,
            "--json",
        )
        assert code == 0
        first: dict[str, Any] = json.loads(out)
        argv = ["evidence", decided, "--review", first["review_id"], "--out", str(tmp_path / "b")]
        code, out, _ = run(capsys, *argv, "--backend", backend_url, "--json")
        assert code == 0
        second = json.loads(out)
        assert second["manifest_sha256"] == first["manifest_sha256"]
        assert str(tmp_path / "b" / "evidence.html") in second["files"]

    def test_unknown_thread_writes_nothing(
        self, backend_url: str, decided: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown thread exits 1 naming ReviewNotFoundError; no directory is created."""
        out_dir = tmp_path / "none"
        code, out, err = run(
            capsys, "evidence", "ghost", "--out", str(out_dir), "--backend", backend_url
        )
        assert code == 1
        assert out == ""
        assert err.startswith("error: ReviewNotFoundError: ")
        assert not os.path.exists(out_dir)

    def test_out_is_required(self, backend_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --out the command is a usage error (exit 2)."""
        code, _, err = run(capsys, "evidence", "t1", "--backend", backend_url)
        assert code == 2
        assert "--out" in err
