"""`hitl_compliance.testing.plugin`: its fixtures and markers, as a downstream session sees them.

Each test runs an inner pytest session (pytester) on a small test file, with
only what `pip install "hitl-compliance[testing]"` brings: the plugin is found
through its entry point, not loaded by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from hitl_compliance.testing.databases import POSTGRES_DSN_ENV

SERVER = os.environ.get(POSTGRES_DSN_ENV)  # read before the fixtures hide it from inner sessions

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider --strict-markers --strict-config
filterwarnings = error
"""

PAUSE_TEST = """
import pytest
from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph

RULES = [KeywordRule("payout", ["guaranteed payout"])]


@pytest.mark.hitl_both_styles
async def test_pause(hitl_backend, hitl_style, hitl_clock, scripted_drafter):
    scripted_drafter.script["q"] = "A guaranteed payout!"
    graph = build_compliance_graph(
        scripted_drafter, rules=RULES, checkpointer=hitl_backend.checkpointer, style=hitl_style
    )
    coord = HitlCoordinator(graph, reviews=hitl_backend.reviews, clock=hitl_clock)
    assert (await coord.process("t1", "q")).status == "paused"
    assert [p.thread_id for p in await coord.pending()] == ["t1"]
    print("RAN", hitl_backend.url.split(":")[0], hitl_style)
"""


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner test directory with a downstream-like pytest configuration, without PostgreSQL."""
    monkeypatch.delenv(POSTGRES_DSN_ENV, raising=False)
    pytester.makeini(INI)
    return pytester


def ran(result: pytest.RunResult) -> set[str]:
    """The `RAN <backend> <style>` reports the inner tests printed."""
    return set(re.findall(r"RAN \w+ \w+", result.stdout.str()))


class TestFixtures:
    """hitl_backend, hitl_style, hitl_clock, scripted_drafter and hitl_faults."""

    def test_every_backend_and_style(self, session: pytest.Pytester) -> None:
        """hitl_backend runs on memory and SQLite, once per style under hitl_both_styles."""
        session.makepyfile(PAUSE_TEST)
        result = session.runpytest("-s")
        result.assert_outcomes(passed=4)
        assert ran(result) == {
            f"RAN {backend} {style}"
            for backend in ("memory", "sqlite")
            for style in ("interrupt_before", "command_resume")
        }

    @pytest.mark.skipif(SERVER is None, reason=f"{POSTGRES_DSN_ENV} is not set")
    def test_postgres_when_a_server_is_configured(
        self, session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With HITL_TEST_POSTGRES_DSN set, PostgreSQL joins in a schema dropped afterwards."""
        assert SERVER is not None
        monkeypatch.setenv(POSTGRES_DSN_ENV, SERVER)
        before = _session_schemas(SERVER)
        session.makepyfile(PAUSE_TEST)
        result = session.runpytest("-s")
        result.assert_outcomes(passed=6)
        assert {line for line in ran(result) if "postgres" in line} == {
            "RAN postgresql interrupt_before",
            "RAN postgresql command_resume",
        }
        assert _session_schemas(SERVER) == before

    def test_the_default_style_and_the_other_fixtures(self, session: pytest.Pytester) -> None:
        """Without the marker the style is interrupt_before; the fakes are fresh per test."""
        session.makepyfile(
            """
            from hitl_compliance.testing import FakeClock, FaultInjector, ScriptedDrafter

            def test_fakes(hitl_style, hitl_clock, scripted_drafter, hitl_faults):
                assert hitl_style == "interrupt_before"
                assert isinstance(hitl_clock, FakeClock)
                assert isinstance(scripted_drafter, ScriptedDrafter)
                assert scripted_drafter.script == {}
                assert isinstance(hitl_faults, FaultInjector)
                assert not hitl_faults.dead
            """
        )
        session.runpytest().assert_outcomes(passed=1)

    def test_a_machine_on_every_backend(self, session: pytest.Pytester) -> None:
        """hitl_backend_url feeds run_machine from a synchronous test."""
        session.makepyfile(
            """
            import pytest
            from hypothesis import settings
            from hitl_compliance import KeywordRule
            from hitl_compliance.testing import CoordinatorMachine, run_machine

            class Machine(CoordinatorMachine):
                compliance_rules = [KeywordRule("payout", ["guaranteed payout"])]
                script = {"q": "A guaranteed payout!", "hi": "Hello."}

            @pytest.mark.hitl_both_styles
            def test_machine(hitl_backend_url, hitl_style):
                run_machine(
                    Machine,
                    backend_url=hitl_backend_url,
                    style=hitl_style,
                    settings=settings(max_examples=3, stateful_step_count=8, deadline=None),
                )
            """
        )
        session.runpytest().assert_outcomes(passed=4)


class TestMarkers:
    """The markers are registered and misuse is explained."""

    def test_registered_for_strict_markers(self, session: pytest.Pytester) -> None:
        """`pytest --markers` lists both markers, so --strict-markers accepts them."""
        result = session.runpytest("--markers")
        result.stdout.fnmatch_lines(["*hitl_both_styles:*", "*hitl_backends(*kinds):*"])

    def test_hitl_backends_limits_the_backends(self, session: pytest.Pytester) -> None:
        """@pytest.mark.hitl_backends("memory") runs on memory only."""
        session.makepyfile(
            PAUSE_TEST.replace(
                "@pytest.mark.hitl_both_styles", "@pytest.mark.hitl_backends('memory')"
            )
        )
        result = session.runpytest("-s")
        result.assert_outcomes(passed=1)
        assert ran(result) == {"RAN memory interrupt_before"}

    @pytest.mark.parametrize(
        ("marker", "fixture", "message"),
        [
            ("hitl_both_styles", "hitl_clock", "needs the test to use the hitl_style fixture"),
            ("hitl_backends('mongo')", "hitl_backend_url", "hitl_backends takes backends among"),
        ],
    )
    def test_misuse_is_a_collection_error(
        self, session: pytest.Pytester, marker: str, fixture: str, message: str
    ) -> None:
        """A marker the test cannot honour stops collection with a message saying why."""
        session.makepyfile(
            f"""
            import pytest

            @pytest.mark.{marker}
            def test_x({fixture}):
                pass
            """
        )
        result = session.runpytest()
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([f"*{message}*"])


class TestWithoutPytestAsyncio:
    """hitl_backend explains what to install when pytest-asyncio is missing."""

    def test_hitl_backend_names_the_extra(self, session: pytest.Pytester) -> None:
        """Without pytest-asyncio the plugin still loads; hitl_backend fails naming the extra."""
        session.makeini("[pytest]\naddopts = -p no:cacheprovider --strict-markers\n")
        session.makepyfile(
            """
            def test_backend(hitl_backend):
                pass

            def test_clock(hitl_clock):
                assert hitl_clock() is not None
            """
        )
        script = textwrap.dedent(
            """
            import sys

            class NotInstalled:
                def find_spec(self, name, path=None, target=None):
                    if name.partition(".")[0] == "pytest_asyncio":
                        raise ModuleNotFoundError(name)

            sys.meta_path.insert(0, NotInstalled())  # as if pytest-asyncio were not installed
            import pytest
            # --assert=plain: pytest's rewriting import hook would find pytest_asyncio first.
            sys.exit(pytest.main(["-p", "no:asyncio", "--assert=plain"]))
            """
        )
        completed = subprocess.run(
            [sys.executable, "-c", script],
            cwd=session.path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = completed.stdout + completed.stderr
        assert "1 passed, 1 error" in output, output
        assert 'pip install "hitl-compliance[testing]"' in output


def _session_schemas(dsn: str) -> set[str]:
    """The plugin's per-session schemas on the server."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hitl_session_%'"
        ).fetchall()
    return {row[0] for row in rows}
