"""Every example in `examples/` runs with its documented command and shows what it promises.

Each runs in a subprocess of this interpreter from the repository root, with a
timeout, exactly as `docs/guides/examples.md` tells a reader to run it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run `python *argv` from the repository root; return stdout, failing on an error."""
    completed = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    assert "Warning" not in completed.stderr, completed.stderr
    return completed.stdout


def env_without_database() -> dict[str, str]:
    """The environment with no database URL set, so examples use their fallback."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("HITL_EXAMPLE_POSTGRES_DSN", "DATABASE_URL")
    }


class TestFcaSupportAgent:
    """`python -m examples.fca_support_agent`: the seed scenario with a message store."""

    def test_runs(self) -> None:
        """Hooks escalate held replies and record the officer's reply, clearing the flag."""
        out = run("-m", "examples.fca_support_agent")
        assert re.search(r"\[conv-1001-\w+\] completed: delivered 'Our branches", out)
        assert "held for compliance (investment_advice, guaranteed_returns)" in out
        escalation = re.findall(r"is_escalated=(\w+)", out)
        assert escalation == ["True", "False", "True"]
        assert "ops@bank refused: NotAuthorizedError" in out
        assert "human agent (officer@bank): I can't recommend a specific fund" in out
        assert re.search(r"\[conv-1003-\w+\] rejected: blocked", out)
        events = re.findall(r"^\s+\d+ (\w+)\s+by (\S+)$", out, flags=re.MULTILINE)
        assert events == [
            ("paused", "system"),
            ("denied", "ops@bank"),
            ("replied", "officer@bank"),
            ("approved", "officer@bank"),
        ]

    def test_the_cli_runs_the_apps_hooks(self, tmp_path: Path) -> None:
        """The printed CLI commands decide the left-over review; its hook updates the store."""
        from examples.fca_support_agent import MessageService

        backend = f"sqlite:///{tmp_path / 'agent.db'}"
        messages_path = tmp_path / "messages.db"
        out = run(
            *("-m", "examples.fca_support_agent"),
            *("--backend", backend, "--messages", str(messages_path)),
        )
        [export] = re.findall(r"^\s+export FCA_AGENT_MESSAGES=(.*)$", out, flags=re.MULTILINE)
        assert Path(export) == messages_path
        show, approve = re.findall(r"^\s+hitl-compliance (.*)$", out, flags=re.MULTILINE)
        env = {**os.environ, "FCA_AGENT_MESSAGES": export}
        assert "needs roles" in run("-m", "hitl_compliance", *shlex.split(show), env=env)
        [thread] = re.findall(r"approve (conv-1004-\w+)", approve)

        messages = MessageService(messages_path)
        try:
            assert messages.is_escalated(thread)
            decided = run("-m", "hitl_compliance", *shlex.split(approve), env=env)
            assert "Approved by you@bank" in decided
            assert not messages.is_escalated(thread)
            author, text = messages.transcript(thread)[-1]
            assert author == "human agent (you@bank)"
            assert text.startswith("The Fixed Rate Saver is risk-free")
        finally:
            messages.close()

    def test_message_service(self, tmp_path: Path) -> None:
        """A human reply is stored once per decision and clears the escalation."""
        from examples.fca_support_agent import MessageService

        messages = MessageService(tmp_path / "messages.db")
        try:
            messages.add("c1", "customer", "Hello")
            messages.escalate("c1")
            assert messages.is_escalated("c1")
            for _ in range(2):  # a hook delivered twice (at least once) stores one message
                messages.record_human_reply("c1", "human agent (a@bank)", "Hi!", audit_seq=7)
            assert not messages.is_escalated("c1")
            assert messages.transcript("c1") == [
                ("customer", "Hello"),
                ("human agent (a@bank)", "Hi!"),
            ]
        finally:
            messages.close()


class TestCommandResumeToolApproval:
    """`python examples/command_resume_tool_approval.py`: a ReAct agent's calls reviewed inline."""

    def test_runs(self) -> None:
        """Each flagged call is its own review; only cleared calls run; the model goes on."""
        out = run("examples/command_resume_tool_approval.py")
        threads = dict(re.findall(r"^== (pay-\d): .*\n((?:  .*\n)*)", out, flags=re.MULTILINE))
        assert threads["pay-1"].splitlines() == [
            "  paused for review of transfer(£5,000 to 12345678): transfer_limits: moves customer "
            "money (transfer of 5,000 is above 1,000)",
            "  payments@bank approved it",
            "  ai proposes transfer(£5,000 to 12345678)",
            "  tool success: sent £5,000 to account 12345678",
            "  ai says: Done: sent £5,000 to account 12345678.",
            # Two replies (the pass with the call, then the answer), then the decision.
            "  audit: paused, replied, replied, approved",
        ]
        assert "payments@bank rejected it: payee not on file" in threads["pay-2"]
        assert "tool error: A compliance officer rejected this call" in threads["pay-2"]
        assert "ai says: I couldn't make 1 transfer(s)" in threads["pay-2"]
        assert "paused for review" not in threads["pay-3"]  # blocked by the rule, no human
        # Every review went through the coordinator: one paused and one decision row each,
        # and every reply sent one `replied` row.
        assert "  audit: paused, replied, replied, rejected" in threads["pay-2"]
        assert "  audit: replied, replied" in threads["pay-3"]  # blocked: no review, replies
        # Both flagged calls of pay-4 wait at once (two reviews), then are decided in turn.
        assert "  audit: paused, paused, approved, replied, replied, rejected" in threads["pay-4"]
        assert "tool error: Compliance blocked this call" in threads["pay-3"]
        reviews = re.findall(r"paused for review of (transfer\(.*?\))", threads["pay-4"])
        assert reviews == ["transfer(£12,000 to 12345678)", "transfer(£2,000 to 55555555)"]
        assert "edited it to transfer(£10,000 to 12345678)" in threads["pay-4"]
        # The refused call is answered first; the calls that run come last, for the ToolNode.
        assert threads["pay-4"].index("tool error") < threads["pay-4"].index(
            "ai proposes transfer(£800 to 87654321), transfer(£10,000 to 12345678)"
        )
        assert out.count("tool success") == 3
        assert out.rstrip().endswith(
            "money sent: £5,000 to 12345678, £800 to 87654321, £10,000 to 12345678"
        )


def with_search_path(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    return urlunsplit(parts._replace(query=f"{parts.query}&{option}" if parts.query else option))


@pytest.fixture
def postgres_schema_dsn() -> Iterator[tuple[str, str]]:
    """(DSN whose search_path is a fresh schema, schema name); the schema is dropped after."""
    dsn = os.environ.get("HITL_TEST_POSTGRES_DSN")
    if not dsn:
        if os.environ.get("HITL_REQUIRE_POSTGRES"):
            pytest.fail("HITL_REQUIRE_POSTGRES is set (CI) but HITL_TEST_POSTGRES_DSN is not.")
        pytest.skip("HITL_TEST_POSTGRES_DSN is not set")
    import psycopg
    from psycopg import sql

    schema = f"example_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(dsn, schema), schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


class TestPostgresService:
    """`python examples/postgres_service.py`: one process pauses, another approves."""

    def check(self, out: str) -> None:
        pids = dict(re.findall(r"^\[(\w+) pid (\d+)\]", out, flags=re.MULTILINE))
        assert set(pids) == {"agent", "reviewer", "main"}
        assert len(set(pids.values())) == 3  # three processes
        assert re.search(r"\[agent pid \d+\] service-\w+ paused for review", out)
        assert re.search(r"\[reviewer pid \d+\] service-\w+ completed: delivered", out)
        assert "customer received: 'One of our qualified advisers will call you" in out
        assert re.search(
            r"audit of service-\w+: paused by system, replied by officer@bank, "
            r"approved by officer@bank",
            out,
        )

    @pytest.mark.postgres
    def test_on_postgres(self, postgres_schema_dsn: tuple[str, str]) -> None:
        """With HITL_EXAMPLE_POSTGRES_DSN the two processes share PostgreSQL."""
        dsn, schema = postgres_schema_dsn
        env = {**env_without_database(), "HITL_EXAMPLE_POSTGRES_DSN": dsn}
        out = run("examples/postgres_service.py", env=env)
        assert "note:" not in out
        assert "database: postgresql://" in out
        self.check(out)
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn) as conn:
            query = sql.SQL("SELECT event FROM {}.hitl_audit ORDER BY seq")
            rows = conn.execute(query.format(sql.Identifier(schema))).fetchall()
        assert [event for (event,) in rows] == ["paused", "replied", "approved"]

    def test_sqlite_fallback(self) -> None:
        """Without a DSN the example says so and uses a temporary SQLite file."""
        out = run("examples/postgres_service.py", env=env_without_database())
        assert "note: neither HITL_EXAMPLE_POSTGRES_DSN nor DATABASE_URL is set" in out
        assert "database: sqlite:///" in out
        self.check(out)
