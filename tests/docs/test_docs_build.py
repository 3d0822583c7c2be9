"""The documentation site builds with `mkdocs build --strict` (needs the `docs` extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    """No broken link, unresolved cross-reference or missing snippet anywhere in the docs."""
    pytest.importorskip("mkdocs", reason='install the docs extra: pip install -e ".[docs]"')
    pytest.importorskip("mkdocstrings_handlers.python", reason="install the docs extra")
    pytest.importorskip("material", reason="install the docs extra")
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "index.html").exists()
