"""`hitl-compliance reason-codes` and `--reason-code` on the decision commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitl_compliance import FCA_RETAIL_REASON_CODES
from hitl_compliance._fca import SMCR_APPROVER
from hitl_compliance.cli import main


@pytest.fixture
def backend_url(tmp_path: Path) -> str:
    """A SQLite backend URL of the test's own."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def left_over(backend_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The thread of the review the demo leaves pending."""
    assert main(["demo", "--backend", backend_url]) == 0
    capsys.readouterr()
    assert main(["pending", "--backend", backend_url, "--json"]) == 0
    [review] = json.loads(capsys.readouterr().out)
    return str(review["thread_id"])


class TestReasonCodes:
    def test_lists_the_taxonomy(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The app's codes, as a table and as JSON."""
        assert main(["reason-codes", "--backend", backend_url]) == 0
        out = capsys.readouterr().out
        assert "misleading_promotion" in out
        assert "other *" in out
        assert main(["reason-codes", "--backend", backend_url, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [c["code"] for c in listed["codes"]] == [c.code for c in FCA_RETAIL_REASON_CODES]
        assert listed["required_for"] == []

    def test_reject_with_a_code_then_count(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--reason-code is recorded; reason-codes --counts counts it."""
        argv = ["reject", left_over, "--reason", "no", "--reviewer", "officer@bank"]
        argv += ["--role", SMCR_APPROVER, "--backend", backend_url]
        assert main([*argv, "--reason-code", "nope"]) == 1
        assert "ReasonCodeError" in capsys.readouterr().err
        assert main([*argv, "--reason-code", "unsuitable_advice", "--json"]) == 0
        capsys.readouterr()
        assert main(["reason-codes", "--counts", "--backend", backend_url, "--json"]) == 0
        counts = json.loads(capsys.readouterr().out)
        assert counts == [{"code": "unsuitable_advice", "event": "rejected", "count": 1}]
        later = [
            "reason-codes",
            "--counts",
            "--since",
            "2999-01-01T00:00:00+00:00",
            "--backend",
            backend_url,
        ]
        assert main(later) == 0
        assert "No decision recorded a reason code." in capsys.readouterr().out

    def test_approve_takes_a_code_and_a_reason(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """approve --reason-code other --reason TEXT: both in the audit row."""
        argv = ["approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER]
        argv += ["--response", "Please speak to an adviser.", "--backend", backend_url]
        assert main([*argv, "--reason-code", "other", "--reason", "tone", "--json"]) == 0
        capsys.readouterr()
        assert main(["audit", left_over, "--backend", backend_url, "--json"]) == 0
        last = json.loads(capsys.readouterr().out)[-1]
        assert (last["payload"]["reason_code"], last["payload"]["reason"]) == ("other", "tone")
