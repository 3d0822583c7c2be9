"""The ledger append-rate benchmark runs end to end (no timing is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _urls(tmp: Path) -> list[str]:
    urls = [f"sqlite:///{tmp / 'ledger.db'}"]
    dsn = os.environ.get("HITL_TEST_POSTGRES_DSN")
    if dsn:
        urls.append(dsn)
    elif os.environ.get("HITL_REQUIRE_POSTGRES"):
        pytest.fail("HITL_REQUIRE_POSTGRES is set (CI) but HITL_TEST_POSTGRES_DSN is not.")
    return urls


@pytest.mark.slow
def test_ledger_rate_runs(tmp_path: Path) -> None:
    """Both rates and the reply record's cost are printed for each store kind."""
    for url in _urls(tmp_path):
        command = [sys.executable, "-m", "benchmarks.ledger_rate", "--url", url]
        command += ["--processes", "2", "--seconds", "0.5", "--turns", "3"]
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        rates = re.findall(r"([\d,]+) rows/s", done.stdout)
        assert len(rates) == 2, done.stdout
        assert all(int(r.replace(",", "")) > 0 for r in rates), done.stdout
        assert re.search(r"its reply record \(one append\): [\d.]+ ms", done.stdout)
