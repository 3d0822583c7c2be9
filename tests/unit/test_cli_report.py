"""`hitl-compliance report`: the oversight report as text, JSON and one HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hitl_compliance.cli import main


@pytest.fixture
def backend_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A SQLite backend the demo ran on (it decides reviews and leaves one pending)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["demo", "--backend", url]) == 0
    capsys.readouterr()
    return url


def decided(url: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(["audit", "--backend", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return [r for r in rows if r["event"] in ("approved", "rejected", "expired")]


class TestReport:
    def test_json_counts_the_demos_decisions(
        self, backend_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json: the report's totals are the decisions the ledger records."""
        rows = decided(backend_url, capsys)
        assert rows
        assert main(["report", "--backend", backend_url, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        t = report["totals"]
        assert t["approve"] + t["edit"] + t["reject"] + t["expire"] == len(rows)
        assert {r["reviewer"] for r in report["reviewers"]} == {str(r["actor"]) for r in rows}
        # The last 30 days by default: 31 UTC days partly in it (30 when now is midnight).
        assert len(report["periods"]) in (30, 31)
        assert report["period"] == "day"
        assert report["periods"][0]["start"] <= report["since"] < report["periods"][0]["end"]

    def test_text_tables(self, backend_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The text form: a reviewer table with the totals row, then the rules."""
        assert main(["report", "--backend", backend_url, "--period", "week"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^REVIEWER\s+APPROVE\s+EDIT\s+REJECT", out, re.MULTILINE)
        assert re.search(r"^\(all\)\s+\d", out, re.MULTILINE)
        assert re.search(r"^RULE\s+APPROVE", out, re.MULTILINE)

    def test_html_page_is_self_contained(
        self, backend_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--html FILE: one page with plotly.js and the report inlined, nothing loaded."""
        page = tmp_path / "oversight.html"
        assert main(["report", "--backend", backend_url, "--html", str(page)]) == 0
        assert "Wrote the oversight report" in capsys.readouterr().out
        text = page.read_text(encoding="utf-8")
        assert "drawOversight(" in text
        assert "Plotly" in text
        assert len(text) > 1_000_000
        assert not re.search(r"<script[^>]+src=", text)
        assert not re.search(r"<link[^>]+href=\"?http", text)

    def test_bad_threshold_is_a_usage_error(
        self, backend_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A streak of 1 is refused (exit 2) with the field named."""
        assert main(["report", "--backend", backend_url, "--streak", "1"]) == 2
        assert "streak_length" in capsys.readouterr().err
        since_after_until = ["--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"]
        assert main(["report", "--backend", backend_url, *since_after_until]) == 1
        assert "before until" in capsys.readouterr().err


def test_a_z_suffix_is_utc_on_every_python() -> None:
    """`--since ...Z` parses as UTC, also where `datetime.fromisoformat` refuses `Z` (3.10)."""
    from datetime import datetime, timezone

    from hitl_compliance.cli import _aware_time

    assert _aware_time("2026-02-01T00:00:00Z") == datetime(2026, 2, 1, tzinfo=timezone.utc)
