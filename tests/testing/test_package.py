"""How `hitl_compliance.testing` ships: optional dependencies, entry point, public surface.

Imports without the `testing` extra run in a subprocess in which Hypothesis,
pytest and pytest-asyncio cannot be imported, as on a production install.
"""

from __future__ import annotations

import enum
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points, metadata

import pytest

import hitl_compliance.testing


class Colour(enum.Enum):
    """An enum LangGraph's strict serializer does not know (module level, so importable)."""

    RED = "red"


WITHOUT_EXTRAS = """
import sys
for name in ("hypothesis", "pytest", "_pytest", "pytest_asyncio"):
    sys.modules[name] = None  # importing them now raises ImportError
"""


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where the testing extra's packages are missing."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestOptionalDependencies:
    """The core install works without the testing extra; the parts that need it say so."""

    def test_core_and_fakes_import_without_the_extra(self) -> None:
        """`hitl_compliance` and the kit's fakes, faults and invariants need only the core."""
        completed = run_without_extras(
            """
            import hitl_compliance
            from hitl_compliance.testing import FakeClock, FaultInjector, assert_invariants
            print("ok")
            """
        )
        assert completed.stdout.strip() == "ok", completed.stderr

    @pytest.mark.parametrize(
        "statement",
        [
            "import hitl_compliance.testing.strategies",
            "import hitl_compliance.testing.stateful",
            "from hitl_compliance.testing import CoordinatorMachine",
        ],
    )
    def test_hypothesis_parts_name_the_extra(self, statement: str) -> None:
        """Strategies and the state machine raise an ImportError naming the extra to install."""
        completed = run_without_extras(statement)
        assert completed.returncode != 0
        assert 'pip install "hitl-compliance[testing]"' in completed.stderr

    def test_the_plugin_imports_neither_the_library_nor_hypothesis(self) -> None:
        """Loading the plugin (in every pytest session) imports no LangGraph, library, Hypothesis.

        So a downstream conftest.py can still set LangGraph's import-time settings.
        """
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pytest_hitl_compliance; "
                "print(sorted({m.split('.')[0] for m in sys.modules} "
                "& {'hypothesis', 'langgraph', 'hitl_compliance'}))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.stdout.strip() == "[]", completed.stderr


class TestDistribution:
    """The wheel's metadata registers the plugin and declares the extra."""

    def test_pytest11_entry_point(self, pytestconfig: pytest.Config) -> None:
        """The plugin is a pytest11 entry point, active in this very session."""
        [plugin] = [e for e in entry_points(group="pytest11") if e.name == "hitl_compliance"]
        assert plugin.value == "pytest_hitl_compliance"
        assert pytestconfig.pluginmanager.has_plugin("hitl_compliance")

    def test_testing_extra(self) -> None:
        """`hitl-compliance[testing]` brings Hypothesis, pytest, pytest-asyncio and SQLite."""
        requires = metadata("hitl-compliance").get_all("Requires-Dist") or []
        testing = {r.split(">")[0].split(";")[0] for r in requires if "extra == 'testing'" in r}
        assert {"hypothesis", "pytest", "pytest-asyncio", "aiosqlite"} <= testing


class TestPublicSurface:
    """`hitl_compliance.testing.__all__` is sorted, complete and importable."""

    def test_all_is_sorted_and_importable(self) -> None:
        """__all__ is in ruff's order and every name resolves (the lazy ones too)."""
        names = list(hitl_compliance.testing.__all__)
        key = [(0 if n.isupper() else 1 if n[:1].isupper() else 2, n) for n in names]
        assert key == sorted(key)
        for name in names:
            assert getattr(hitl_compliance.testing, name) is not None

    def test_all_matches_the_public_names(self) -> None:
        """Every public non-module name of the package is in __all__, and nothing else."""
        import types

        public = {
            name
            for name, value in vars(hitl_compliance.testing).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert public - {"annotations", "TYPE_CHECKING", "Any"} <= set(
            hitl_compliance.testing.__all__
        )


@pytest.mark.allow_serializer_warnings
def test_this_suite_runs_langgraph_strictly() -> None:
    """The suite's serializer is strict: conftest set LANGGRAPH_STRICT_MSGPACK before any import."""
    # Strict mode does not rebuild an enum it does not know on load: it returns its value.
    from langgraph.checkpoint.memory import InMemorySaver

    serde = InMemorySaver().serde
    assert serde.loads_typed(serde.dumps_typed(Colour.RED)) != Colour.RED
