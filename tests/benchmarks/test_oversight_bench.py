"""The oversight benchmark runs end to end on a small fill (no timing is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _urls(tmp: Path) -> list[str]:
    urls = [f"sqlite:///{tmp / 'oversight.db'}"]
    dsn = os.environ.get("HITL_TEST_POSTGRES_DSN")
    if dsn:
        urls.append(dsn)
    elif os.environ.get("HITL_REQUIRE_POSTGRES"):
        pytest.fail("HITL_REQUIRE_POSTGRES is set (CI) but HITL_TEST_POSTGRES_DSN is not.")
    return urls


@pytest.mark.slow
def test_oversight_benchmark_runs(tmp_path: Path) -> None:
    """Each store is filled, every query plan reads an index, both windows are timed."""
    for url in _urls(tmp_path):
        command = [sys.executable, "-m", "benchmarks.oversight", "--url", url]
        command += ["--rows", "3000", "--days", "30", "--repeat", "1"]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"filled [23],\d{3} audit rows over 30 days", done.stdout), done.stdout
        plans = re.findall(r"plan \((\w+), 30 days\): (.*)", done.stdout)
        assert [name for name, _ in plans] == ["decisions", "escalations", "qa"]
        for _, plan in plans:
            assert "reviews_decided" in plan or "audit_event_at" in plan, plan
        timed = re.findall(
            r"oversight_report, (1 day|30 days): [\d.]+ ms \(([\d,]+) decided", done.stdout
        )
        assert [label for label, _ in timed] == ["1 day", "30 days"], done.stdout
        assert int(timed[1][1].replace(",", "")) > int(timed[0][1].replace(",", "")) > 0
