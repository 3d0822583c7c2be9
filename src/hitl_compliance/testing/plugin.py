"""The pytest plugin, under the name it was first published as.

The plugin itself is the top-level module `pytest_hitl_compliance`, so that
pytest can load it without importing `hitl_compliance` (and LangGraph) as it
starts. This module re-exports it for code and docs that name it here; do
not list both in `pytest_plugins`.
"""

from __future__ import annotations

from pytest_hitl_compliance import (
    BACKENDS,
    STYLES,
    hitl_backend,
    hitl_backend_url,
    hitl_clock,
    hitl_faults,
    hitl_postgres_dsn,
    hitl_style,
    pytest_configure,
    pytest_generate_tests,
    scripted_drafter,
)

__all__ = [
    "BACKENDS",
    "STYLES",
    "hitl_backend",
    "hitl_backend_url",
    "hitl_clock",
    "hitl_faults",
    "hitl_postgres_dsn",
    "hitl_style",
    "pytest_configure",
    "pytest_generate_tests",
    "scripted_drafter",
]
