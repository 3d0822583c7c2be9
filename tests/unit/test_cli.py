"""The `hitl-compliance` command line, run in-process with `main([...])` on a temporary SQLite file.

The newcomer path is the backbone: `demo` leaves one review pending, `pending`
lists it, `show` explains it, a reviewer without the role is refused (and the
review stays pending), a reviewer with the role approves it, `audit` shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import HitlCoordinator
from hitl_compliance._fca import REJECTION_MESSAGE, SMCR_APPROVER
from hitl_compliance.backends import open_backend
from hitl_compliance.cli import DEFAULT_BACKEND, build_parser, main
from hitl_compliance.models import sha256_text


@pytest.fixture
def backend_url(tmp_path: Path) -> str:
    """A SQLite backend URL of the test's own."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def left_over(backend_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the demo on `backend_url` and return the thread of the review it leaves pending."""
    assert main(["demo", "--backend", backend_url]) == 0
    capsys.readouterr()
    [review] = run_json(capsys, "pending", "--backend", backend_url)
    return str(review["thread_id"])


@pytest.fixture
def empty_backend(backend_url: str) -> str:
    """`backend_url` with its database created (tables, no reviews)."""

    async def create() -> None:
        async with open_backend(backend_url):
            pass

    asyncio.run(create())
    return backend_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run a command with --json, check it succeeded, and parse its output."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def pending_threads(capsys: pytest.CaptureFixture[str], backend_url: str) -> list[str]:
    return [r["thread_id"] for r in run_json(capsys, "pending", "--backend", backend_url)]


class TestNewcomerPath:
    """demo -> pending -> show -> refused approve -> approve -> audit."""

    def test_demo_explains_and_leaves_one_review(
        self, backend_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The demo walks through the scenario and ends with the commands to decide its review."""
        code, out, _ = run(capsys, "demo", "--backend", backend_url)
        assert code == 0
        assert "NotAuthorizedError" in out  # step 4: a colleague without the role
        assert "AlreadyDecidedError" in out  # step 6: a second decision
        assert "Your turn" in out
        [thread] = pending_threads(capsys, backend_url)
        assert thread.startswith("pension-")
        assert f"hitl-compliance pending --backend {backend_url}" in out
        assert f"hitl-compliance approve {thread} --reviewer you@bank --role smcr_approver" in out

    def test_walkthrough(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A newcomer lists, inspects, is refused without the role, approves with it, audits."""
        code, out, _ = run(capsys, "pending", "--backend", backend_url)
        assert code == 0
        assert left_over in out
        assert "investment_advice" in out
        assert "1 pending" in out

        code, out, _ = run(capsys, "show", left_over, "--backend", backend_url)
        assert code == 0
        assert "Is the Fixed Rate Saver safe" in out
        assert "investment_advice: smcr_approver" in out
        assert f"approve {left_over} --reviewer ID --role smcr_approver" in out

        code, out, err = run(
            capsys, "approve", left_over, "--reviewer", "you@bank", "--backend", backend_url
        )
        assert code == 1
        assert out == ""
        assert err.startswith("error: NotAuthorizedError: ")
        assert err.count("\n") == 1
        assert pending_threads(capsys, backend_url) == [left_over]  # nothing changed

        code, out, _ = run(
            capsys,
            *("approve", left_over, "--reviewer", "you@bank", "--role", SMCR_APPROVER),
            *("--backend", backend_url),
        )
        assert code == 0
        assert "Approved by you@bank" in out
        assert "completed" in out
        assert pending_threads(capsys, backend_url) == []

        code, out, _ = run(capsys, "audit", left_over, "--backend", backend_url)
        assert code == 0
        events = [line.split()[4] for line in out.splitlines()[1:]]
        assert events == ["paused", "denied", "replied", "approved"]

    def test_command_resume_demo(
        self, backend_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The demo's suggested commands name the app of the pause style it ran in."""
        code, out, _ = run(capsys, "demo", "--style", "command_resume", "--backend", backend_url)
        assert code == 0
        [line] = [s for s in out.splitlines() if " approve " in s and "--role" in s]
        argv = shlex.split(line)[1:]
        assert argv[argv.index("--app") + 1] == "hitl_compliance._fca:command_resume_app"
        code, decided, err = run(capsys, *argv)
        assert code == 0, err
        assert "completed" in decided
        assert pending_threads(capsys, backend_url) == []

    def test_python_dash_m_runs_the_same_cli(self, backend_url: str, left_over: str) -> None:
        """`python -m hitl_compliance` is the same command line as `hitl-compliance`."""
        completed = subprocess.run(
            [sys.executable, "-m", "hitl_compliance", "pending", "--backend", backend_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert left_over in completed.stdout


class TestJson:
    """--json prints the library's models as JSON (model_dump(mode="json"))."""

    def test_pending_and_show(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """pending gives PendingReview objects; show gives the review row plus its draft hash."""
        [item] = run_json(capsys, "pending", "--backend", backend_url)
        assert item["thread_id"] == left_over
        assert item["draft_sha256"] == sha256_text(item["draft_response"])
        assert [v["rule"] for v in item["violations"]] == [
            "investment_advice",
            "guaranteed_returns",
        ]
        shown = run_json(capsys, "show", left_over, "--backend", backend_url)
        assert shown["status"] == "pending"
        assert shown["draft_sha256"] == item["draft_sha256"]
        assert shown["checkpoint_id"] == item["checkpoint_id"]

    def test_approve_and_audit(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """approve gives a ProcessResult; audit gives AuditRecords, oldest first."""
        result = run_json(
            capsys,
            *("approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER),
            *("--response", "An adviser will call you.", "--backend", backend_url),
        )
        assert result["status"] == "completed"
        assert result["agent_response"] == "An adviser will call you."
        assert result["reviewer"] == "officer@bank"
        records = run_json(capsys, "audit", left_over, "--backend", backend_url)
        assert [r["event"] for r in records] == ["paused", "replied", "approved"]
        assert records[-1]["payload"]["delivered"] == "An adviser will call you."

    def test_options_before_the_command(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--backend and --json may also come before the command."""
        code, out, err = run(capsys, "--backend", backend_url, "--json", "pending")
        assert code == 0, err
        assert [r["thread_id"] for r in json.loads(out)] == [left_over]


class TestDecisions:
    """reject, --expected and filters behave as the library's methods do."""

    def test_reject(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """reject delivers the rejection message and records the reason."""
        result = run_json(
            capsys,
            *("reject", left_over, "--reason", "unsuitable", "--reviewer", "officer@bank"),
            *("--role", SMCR_APPROVER, "--backend", backend_url),
        )
        assert result["status"] == "rejected"
        assert result["agent_response"] == REJECTION_MESSAGE
        records = run_json(capsys, "audit", left_over, "--backend", backend_url)
        assert records[-1]["event"] == "rejected"
        assert records[-1]["payload"]["reason"] == "unsuitable"

    def test_expected_hash(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A stale --expected is refused and changes nothing; the right hash is accepted."""
        code, _, err = run(
            capsys,
            *("approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER),
            *("--expected", "0" * 64, "--backend", backend_url),
        )
        assert code == 1
        assert "StaleReviewError" in err
        assert pending_threads(capsys, backend_url) == [left_over]

        [item] = run_json(capsys, "pending", "--backend", backend_url)
        result = run_json(
            capsys,
            *("approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER),
            *("--expected", item["draft_sha256"], "--backend", backend_url),
        )
        assert result["status"] == "completed"

    def test_second_decision_is_refused(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Deciding a decided review exits 1 with AlreadyDecidedError."""
        decide = ("--reviewer", "officer@bank", "--role", SMCR_APPROVER, "--backend", backend_url)
        assert run(capsys, "approve", left_over, *decide)[0] == 0
        code, _, err = run(capsys, "reject", left_over, "--reason", "late", *decide)
        assert code == 1
        assert "AlreadyDecidedError" in err

    def test_pending_for_a_reviewer(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """pending --reviewer lists only what that reviewer may decide."""
        who = ("pending", "--reviewer", "ops@bank", "--backend", backend_url)
        assert run_json(capsys, *who) == []
        assert run_json(capsys, *who, "--role", SMCR_APPROVER)[0]["thread_id"] == left_over

    def test_pending_for_a_reviewer_says_what_is_hidden(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """pending --reviewer counts the reviews that reviewer may not decide, and says why."""
        code, out, err = run(capsys, "pending", "--reviewer", "ops@bank", "--backend", backend_url)
        assert code == 0, err
        assert "No reviews pending." not in out
        assert "No review ops@bank may decide" in out
        assert "1 pending review ops@bank may not decide" in out
        assert "ops@bank lacks a role for" in out
        assert "smcr_approver" in out
        assert pending_threads(capsys, backend_url) == [left_over]  # listing changed nothing

    def test_pending_for_a_reviewer_counts_a_tampered_review(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A review whose row was edited in the database is counted as hidden, with the reason."""
        conn = sqlite3.connect(backend_url.removeprefix("sqlite:///"))
        with conn:
            emptied = "UPDATE hitl_reviews SET violations = '[]' WHERE thread_id = ?"
            conn.execute(emptied, (left_over,))
        conn.close()
        code, out, err = run(capsys, "pending", "--reviewer", "ops@bank", "--backend", backend_url)
        assert code == 0, err
        assert "its row does not match the audit ledger (TamperedError)" in out

    def test_pending_for_a_reviewer_with_nothing_pending(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With an empty queue, pending --reviewer still says plainly that nothing is pending."""
        code, out, _ = run(capsys, "pending", "--reviewer", "ops@bank", "--backend", empty_backend)
        assert code == 0
        assert out == "No reviews pending.\n"

    def test_recover_with_nothing_to_do(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """recover on a healthy backend finishes nothing and leaves the review pending."""
        code, out, _ = run(capsys, "recover", "--backend", backend_url)
        assert code == 0
        assert "Nothing to recover." in out
        assert pending_threads(capsys, backend_url) == [left_over]


class TestRefusals:
    """Library refusals exit 1 with one line naming the error class; nothing changes."""

    @pytest.mark.parametrize(
        "argv",
        [
            ("show", "no-such-thread"),
            ("approve", "no-such-thread", "--reviewer", "officer@bank"),
            ("reject", "no-such-thread", "--reason", "x", "--reviewer", "officer@bank"),
            ("audit", "no-such-thread"),
        ],
        ids=["show", "approve", "reject", "audit"],
    )
    def test_unknown_thread(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
    ) -> None:
        """An unknown thread is a ReviewNotFoundError: exit 1, one line on stderr."""
        code, out, err = run(capsys, *argv, "--backend", empty_backend)
        assert code == 1
        assert out == ""
        assert err.startswith("error: ReviewNotFoundError: ")
        assert "'no-such-thread'" in err
        assert err.count("\n") == 1

    def test_blank_response_is_refused(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An invalid decision is refused before it reaches the graph."""
        code, _, err = run(
            capsys,
            *("approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER),
            *("--response", "   ", "--backend", backend_url),
        )
        assert code == 1
        assert "InvalidDecisionError" in err
        assert err.count("\n") == 1
        assert pending_threads(capsys, backend_url) == [left_over]

    def test_an_edit_over_the_limit_is_refused(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An edit past the input limits exits 1 with one line naming size, limit and fix."""
        code, _, err = run(
            capsys,
            *("approve", left_over, "--reviewer", "officer@bank", "--role", SMCR_APPROVER),
            *("--response", "x" * 1_000_001, "--backend", backend_url),
        )
        assert code == 1
        assert err.startswith("error: InputTooLargeError: response is 1,000,001 characters")
        assert "InputLimits(max_text_chars=...)" in err
        assert "--app" in err
        assert err.count("\n") == 1
        assert pending_threads(capsys, backend_url) == [left_over]


class TestConfigurationErrors:
    """Usage and configuration errors exit 2 and touch nothing."""

    def test_unreachable_postgres_masks_the_password(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A database that cannot be reached exits 2 without printing its password."""
        url = "postgresql://hitl:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2"
        code, out, err = run(capsys, "pending", "--backend", url)
        assert code == 2
        assert out == ""
        assert err.startswith("error: ConfigurationError: ")
        assert "s3cret-pw" not in err
        assert "hitl:***@127.0.0.1:1" in err

    def test_unknown_scheme(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A URL no backend understands is a configuration error."""
        code, _, err = run(capsys, "pending", "--backend", "mysql://db/x")
        assert code == 2
        assert "ConfigurationError" in err

    @pytest.mark.parametrize(
        ("app", "message"),
        [
            ("no_such_module_xyz:factory", "cannot import 'no_such_module_xyz'"),
            ("hitl_compliance._fca:no_such_function", "has no attribute"),
            ("hitl_compliance._fca", "is not module:function"),
            ("hitl_compliance._fca:SCRIPT", "not a function"),
            ("hitl_compliance._fca:fca_rules", "failed: TypeError"),
        ],
    )
    def test_bad_app(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str], app: str, message: str
    ) -> None:
        """A bad --app exits 2 with the reason."""
        code, out, err = run(capsys, "pending", "--backend", empty_backend, "--app", app)
        assert code == 2
        assert out == ""
        assert err.startswith("error: ConfigurationError: --app ")
        assert message in err

    def test_bad_app_fails_before_opening_the_database(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An --app that does not import creates no database file."""
        db = tmp_path / "untouched.db"
        code, _, _ = run(capsys, "pending", "--backend", f"sqlite:///{db}", "--app", "nope:app")
        assert code == 2
        assert not db.exists()

    def test_app_must_use_the_backend(
        self,
        tmp_path: Path,
        empty_backend: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An app that ignores the backend's store would show an empty queue: refused."""
        (tmp_path / "own_store_app.py").write_text(
            textwrap.dedent(
                """
                from langgraph.checkpoint.memory import InMemorySaver

                from hitl_compliance import AllowAllPolicy, HitlCoordinator, build_compliance_graph


                def factory(backend):
                    graph = build_compliance_graph(lambda s: "hi", checkpointer=InMemorySaver())
                    return HitlCoordinator(graph, policy=AllowAllPolicy())
                """
            ),
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "own_store_app", raising=False)
        code, _, err = run(
            capsys, "pending", "--backend", empty_backend, "--app", "own_store_app:factory"
        )
        assert code == 2
        assert "must build on the backend it receives" in err

    def test_missing_required_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        """reject without --reason is a usage error (argparse's message, exit 2)."""
        code, _, err = run(capsys, "reject", "t1", "--reviewer", "officer@bank")
        assert code == 2
        assert "--reason" in err

    def test_demo_takes_no_app(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--app with demo is refused rather than silently ignored."""
        code, _, err = run(capsys, "--app", "x:y", "demo", "--backend", "memory://")
        assert code == 2
        assert "demo always runs the built-in FCA scenario" in err

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help lists the commands and exits 0."""
        code, out, _ = run(capsys, "--help")
        assert code == 0
        for command in ("demo", "pending", "show", "approve", "reject", "audit", "expire"):
            assert command in out
        assert DEFAULT_BACKEND in run(capsys, "pending", "--help")[1]


class TestCustomApp:
    """--app module:function drives your own graph and policy on the same backend."""

    def test_async_factory_from_the_current_directory(
        self,
        tmp_path: Path,
        backend_url: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An `async def` factory in a module of the working directory decides its reviews."""
        (tmp_path / "my_review_app.py").write_text(
            textwrap.dedent(
                """
                from hitl_compliance import (
                    HitlCoordinator,
                    KeywordRule,
                    RoleBasedPolicy,
                    build_compliance_graph,
                )


                def graph_on(checkpointer):
                    return build_compliance_graph(
                        lambda state: "Crypto is a sure thing.",
                        rules=[KeywordRule("crypto", ["crypto"], reason="high risk")],
                        checkpointer=checkpointer,
                    )


                async def factory(backend):
                    return HitlCoordinator(
                        graph_on(backend.checkpointer),
                        reviews=backend.reviews,
                        policy=RoleBasedPolicy(default_roles="desk_head"),
                    )
                """
            ),
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "my_review_app", raising=False)
        monkeypatch.syspath_prepend(str(tmp_path))
        import my_review_app  # type: ignore[import-not-found]

        async def pause() -> None:
            async with open_backend(backend_url) as backend:
                coord: HitlCoordinator = await my_review_app.factory(backend)
                result = await coord.process("crypto-1", "Should I buy crypto?")
                assert result.status == "paused"

        asyncio.run(pause())
        app = ("--app", "my_review_app:factory", "--backend", backend_url)
        code, out, _ = run(capsys, "show", "crypto-1", *app)
        assert code == 0
        assert "crypto: desk_head" in out
        assert "--app my_review_app:factory" in out  # suggested commands repeat the app
        code, _, err = run(capsys, "approve", "crypto-1", "--reviewer", "a@bank", *app)
        assert code == 1
        assert "NotAuthorizedError" in err
        result = run_json(
            capsys, "approve", "crypto-1", "--reviewer", "a@bank", "--role", "desk_head", *app
        )
        assert result["agent_response"] == "Crypto is a sure thing."


class TestLedgerAndSla:
    """audit --verify / --export and expire drive the coordinator's ledger and SLA."""

    def test_audit_of_everything(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """audit without a thread lists every thread's rows in ledger order."""
        records = run_json(capsys, "audit", "--backend", backend_url)
        assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
        assert {r["thread_id"].split("-")[0] for r in records} == {
            "faq",
            "advice",
            "leak",
            "pension",
        }
        assert (records[-1]["thread_id"], records[-1]["event"]) == (left_over, "paused")

    def test_verify(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An untouched ledger verifies, for the whole store and for one thread."""
        code, out, err = run(capsys, "audit", "--verify", "--backend", backend_url)
        assert code == 0, err
        assert out.startswith("ok: 7 audit rows of the whole store verify")
        report = run_json(capsys, "audit", left_over, "--verify", "--backend", backend_url)
        assert report["ok"] is True
        assert report["checked"] == 1

    def test_verify_detects_an_edited_row(
        self, tmp_path: Path, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A row edited in the database breaks the chain: exit 1 naming the row."""
        with sqlite3.connect(tmp_path / "cli.db") as conn:
            conn.execute("UPDATE hitl_audit SET actor = 'mallory@bank' WHERE seq = 2")
        code, out, _ = run(capsys, "audit", "--verify", "--backend", backend_url)
        assert code == 1
        assert out.startswith(
            "BROKEN: the audit ledger of the whole store does not verify at seq 2"
        )

    def test_export_verifies_offline(
        self, tmp_path: Path, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--export writes JSON Lines that the standalone ledger verifier accepts."""
        path = tmp_path / "audit.jsonl"
        code, out, err = run(capsys, "audit", "--export", str(path), "--backend", backend_url)
        assert code == 0, err
        assert out.startswith("Wrote 7 audit rows")
        completed = subprocess.run(
            [sys.executable, "-m", "hitl_compliance.ledger", "verify", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert completed.stdout.startswith("ok: 7 rows")
        assert completed.stderr == ""  # no RuntimeWarning from runpy

    def test_verify_with_a_public_key(
        self, tmp_path: Path, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--public-key checks the sealed heads: a cut with a rewritten head exits 1."""
        from hitl_compliance import Ed25519Signer, Sealing

        signer = Ed25519Signer.generate()
        key = tmp_path / "key.pub.pem"
        key.write_bytes(signer.public_key_pem())

        async def seal() -> None:
            async with open_backend(backend_url) as backend:
                backend.reviews.configure_sealing(Sealing(signer))  # type: ignore[attr-defined]
                await backend.reviews.seal_head()  # type: ignore[attr-defined]

        asyncio.run(seal())
        argv = ("audit", "--verify", "--public-key", str(key), "--backend", backend_url)
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert "signed head at seq 7" in out
        report = run_json(capsys, *argv)
        assert report["proof"]["sealed_seq"] == 7
        assert report["proof"]["signatures_checked"] is True
        with sqlite3.connect(tmp_path / "cli.db") as conn:
            conn.execute("DELETE FROM hitl_audit WHERE seq = 7")
            conn.execute(
                "UPDATE hitl_audit_head SET seq = 6, "
                "hash = (SELECT hash FROM hitl_audit WHERE seq = 6)"
            )
        code, out, _ = run(capsys, "audit", "--verify", "--backend", backend_url)
        assert code == 1  # the stored seal alone is past the end
        code, out, _ = run(capsys, *argv)
        assert code == 1
        assert "rows 7..7 were deleted" in out
        code, _, err = run(capsys, "audit", "--public-key", str(key), "--backend", backend_url)
        assert code == 2
        assert "--public-key and --anchor go with --verify" in err

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            ((), "usage: python -m hitl_compliance.ledger verify EXPORT.jsonl"),
            (("verify", "no-such-export.jsonl"), "cannot read 'no-such-export.jsonl'"),
        ],
        ids=["usage", "missing-file"],
    )
    def test_ledger_usage_errors(self, tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
        """The offline verifier exits 2 with one line, no traceback, for a usage error."""
        completed = subprocess.run(
            [sys.executable, "-m", "hitl_compliance.ledger", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert completed.returncode == 2
        assert completed.stdout == ""
        assert message in completed.stderr
        assert "Traceback" not in completed.stderr
        assert completed.stderr.count("\n") == 1

    def test_expire_before_the_deadline(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The FCA app's SLA is a day: a fresh review is not expired."""
        [item] = run_json(capsys, "pending", "--backend", backend_url)
        assert item["deadline"] is not None
        code, out, _ = run(capsys, "expire", "--backend", backend_url)
        assert code == 0
        assert "No review is overdue." in out
        assert pending_threads(capsys, backend_url) == [left_over]

    def test_expire_overdue(
        self,
        tmp_path: Path,
        backend_url: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An overdue review is rejected by the SLA sweeper (actor system:sla)."""
        (tmp_path / "short_sla_app.py").write_text(
            textwrap.dedent(
                """
                from datetime import timedelta

                from hitl_compliance._fca import fca_graph, fca_policy
                from hitl_compliance import HitlCoordinator


                def factory(backend):
                    return HitlCoordinator(
                        fca_graph(backend.checkpointer),
                        reviews=backend.reviews,
                        policy=fca_policy(),
                        sla=timedelta(microseconds=1),
                    )
                """
            ),
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "short_sla_app", raising=False)
        monkeypatch.syspath_prepend(str(tmp_path))
        import short_sla_app  # type: ignore[import-not-found]

        async def pause() -> None:
            async with open_backend(backend_url) as backend:
                coord: HitlCoordinator = short_sla_app.factory(backend)
                await coord.process(
                    "late-1", "Should I move my savings into the Global Equity Fund?"
                )

        asyncio.run(pause())
        app = ("--backend", backend_url, "--app", "short_sla_app:factory")
        [result] = run_json(capsys, "expire", *app)
        assert result["thread_id"] == "late-1"
        assert result["status"] == "rejected"
        assert result["agent_response"] == REJECTION_MESSAGE
        assert pending_threads(capsys, backend_url) == []
        records = run_json(capsys, "audit", result["thread_id"], *app)
        assert (records[-1]["event"], records[-1]["actor"]) == ("expired", "system:sla")


class TestFirstContact:
    """The first commands someone types give a true answer, and touch nothing."""

    @pytest.mark.parametrize(
        "argv",
        [
            ("pending",),
            ("show", "t1"),
            ("audit",),
            ("audit", "--verify"),
            ("approve", "t1", "--reviewer", "officer@bank"),
            ("expire",),
            ("recover",),
        ],
        ids=["pending", "show", "audit", "verify", "approve", "expire", "recover"],
    )
    def test_missing_sqlite_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
    ) -> None:
        """A command on a SQLite file that does not exist exits 2 and creates no file."""
        path = tmp_path / "typo.db"
        code, out, err = run(capsys, *argv, "--backend", f"sqlite:///{path}")
        assert code == 2
        assert out == ""
        assert err.startswith("error: ConfigurationError: ")
        assert "no such database" in err
        assert str(path) in err
        assert "hitl-compliance demo" in err  # what to do
        assert not path.exists()
        assert list(tmp_path.iterdir()) == []

    def test_demo_creates_the_file(
        self, backend_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """demo is the one command that creates a missing SQLite file."""
        code, _, err = run(capsys, "demo", "--backend", backend_url)
        assert code == 0, err
        assert len(pending_threads(capsys, backend_url)) == 1

    @pytest.mark.parametrize("limit", ["0", "-3", "x"])
    def test_bad_limit_is_a_usage_error(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str], limit: str
    ) -> None:
        """pending --limit takes a positive integer; anything else exits 2 with usage."""
        code, out, err = run(capsys, "pending", "--limit", limit, "--backend", empty_backend)
        assert code == 2
        assert out == ""
        assert "--limit" in err
        assert "positive integer" in err
        assert err.startswith("usage: ")

    @pytest.mark.parametrize(
        ("value", "why"),
        [("{not json", "must be a JSON object"), ("[1, 2]", "must be a JSON object like")],
        ids=["not-json", "not-an-object"],
    )
    def test_bad_tool_args_is_a_usage_error(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str], value: str, why: str
    ) -> None:
        """approve --tool-args takes a JSON object; anything else exits 2 with usage."""
        argv = ("approve", "t1", "--reviewer", "o@bank", "--tool-args", value)
        code, out, err = run(capsys, *argv, "--backend", empty_backend)
        assert code == 2
        assert out == ""
        assert "--tool-args" in err
        assert why in err
        assert err.startswith("usage: ")

    def test_limit_one(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A valid --limit still works."""
        assert [
            r["thread_id"]
            for r in run_json(capsys, "pending", "--limit", "1", "--backend", backend_url)
        ] == [left_over]


class TestDocsFacts:
    """docs/guides/cli.md states what the code does."""

    DOC = Path(__file__).resolve().parents[2] / "docs" / "guides" / "cli.md"

    def test_demo_step_count(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The step count the guide gives is the number of numbered steps the demo prints."""
        code, out, _ = run(capsys, "demo", "--backend", "memory://")
        assert code == 0
        steps = [line for line in out.splitlines() if line[:1].isdigit() and ". " in line]
        numbers = [int(line.split(".", 1)[0]) for line in steps]
        assert numbers == list(range(1, len(numbers) + 1))
        words = {7: "seven", 8: "eight", 9: "nine", 10: "ten"}
        assert f"its {words[len(numbers)]} steps" in self.DOC.read_text(encoding="utf-8")

    def test_which_commands_take_backend(self) -> None:
        """Every command, demo included, takes --backend; all but demo take --app and --json."""
        parser = build_parser()
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for name, command in sub.choices.items():
            options = {s for a in command._actions for s in a.option_strings}
            assert "--backend" in options, name
            assert ("--app" in options) == (name != "demo"), name
        text = self.DOC.read_text(encoding="utf-8")
        assert "Every command, `demo` included, takes `--backend URL`" in text
        assert "Every command but `demo` takes:" not in text


class TestRetentionCommands:
    """hold / release / retention [--apply] drive the coordinator's legal holds and retention."""

    def test_hold_blocks_retention_until_released(
        self, backend_url: str, left_over: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A held decided thread is kept and listed; released, its checkpoints are pruned."""
        audit = run_json(capsys, "audit", "--backend", backend_url)
        decided = next(r["thread_id"] for r in audit if r["event"] in ("approved", "rejected"))
        code, out, _ = run(
            capsys,
            "hold",
            decided,
            "--reason",
            "FCA enquiry",
            "--by",
            "legal@bank",
            "--backend",
            backend_url,
        )
        assert code == 0
        assert "held" in out
        [hold] = run_json(capsys, "retention", "--backend", backend_url)
        assert (hold["thread_id"], hold["reason"]) == (decided, "FCA enquiry")
        later = "2099-01-01T00:00:00+00:00"
        report = run_json(capsys, "retention", "--apply", "--now", later, "--backend", backend_url)
        assert report["held"] == [decided]
        assert report["reviews"] == report["audit_rows"] == 0  # the five-year floor holds
        assert (
            run(capsys, "release", decided, "--by", "legal@bank", "--backend", backend_url)[0] == 0
        )
        assert (
            run(capsys, "release", decided, "--by", "legal@bank", "--backend", backend_url)[0] == 1
        )
        report = run_json(capsys, "retention", "--apply", "--now", later, "--backend", backend_url)
        assert report["held"] == []
        assert report["checkpoint_threads"] >= 1
        assert run(capsys, "audit", "--verify", "--backend", backend_url)[0] == 0
        assert left_over not in report["held"]
        out = run(capsys, "audit", decided, "--backend", backend_url)[1]
        assert "legal hold: 'FCA enquiry'" in out
        assert "checkpoints pruned; state kept" in out

    def test_now_needs_an_offset(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A --now without a UTC offset is a usage error (exit 2)."""
        code, _, err = run(
            capsys, "retention", "--apply", "--now", "2030-01-01", "--backend", empty_backend
        )
        assert code == 2
        assert "offset" in err


class TestStopCommands:
    """stop / stops / resume-delivery drive the coordinator's stop switch."""

    def test_stop_holds_replies_until_resumed(
        self, empty_backend: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A stop by a stop role is listed and audited; an unauthorised one exits 1."""
        head = ["--by", "head@bank", "--role", "compliance-head"]
        code, _, err = run(
            capsys, "stop", "--by", "x", "--reason", "why", "--backend", empty_backend
        )
        assert code == 1
        assert "NotAuthorizedError" in err
        assert run(capsys, "stops", "--backend", empty_backend)[1].strip() == (
            "Delivery is not stopped."
        )
        code, out, _ = run(
            capsys, "stop", *head, "--reason", "FCA letter", "--backend", empty_backend
        )
        assert code == 0
        assert out.startswith("Delivery stopped (all) by head@bank since ")
        [stop] = run_json(capsys, "stops", "--backend", empty_backend)
        assert (stop["scope"], stop["by"], stop["reason"]) == (
            {"kind": "all", "value": None},
            "head@bank",
            "FCA letter",
        )
        assert run(capsys, "resume-delivery", *head, "--backend", empty_backend)[0] == 0
        assert run(capsys, "resume-delivery", *head, "--backend", empty_backend)[0] == 1
        out = run(capsys, "audit", "hitl:delivery", "--backend", empty_backend)[1]
        assert "delivery stopped (all): 'FCA letter'" in out
        assert "delivery resumed (all)" in out
        assert run(capsys, "audit", "--verify", "--backend", empty_backend)[0] == 0


class TestAssignmentCommands:
    """assign / delegate / pending --assigned-to drive the coordinator's routing."""

    APP = """
from hitl_compliance import (
    AssignmentRule,
    HitlCoordinator,
    KeywordRule,
    Routing,
    build_compliance_graph,
)


def factory(backend):
    graph = build_compliance_graph(
        lambda state: "Crypto is a sure thing.",
        rules=[KeywordRule("crypto", ["crypto"], reason="high risk")],
        checkpointer=backend.checkpointer,
    )
    routing = Routing(rules=[AssignmentRule("queue:desk", rule="crypto")],
                      queues={"desk": {"bob@bank"}})
    return HitlCoordinator(graph, reviews=backend.reviews, routing=routing)
"""

    def test_assign_delegate_and_list(
        self,
        tmp_path: Path,
        backend_url: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A supervisor reassigns, a reviewer delegates, and pending --assigned-to follows."""
        (tmp_path / "routed_app.py").write_text(self.APP, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "routed_app", raising=False)
        monkeypatch.syspath_prepend(str(tmp_path))
        import routed_app  # type: ignore[import-not-found]

        async def pause() -> None:
            async with open_backend(backend_url) as backend:
                coord: HitlCoordinator = routed_app.factory(backend)
                assert (await coord.process("c1", "crypto?")).status == "paused"

        asyncio.run(pause())
        app = ("--app", "routed_app:factory", "--backend", backend_url)
        [item] = run_json(capsys, "pending", "--assigned-to", "bob@bank", *app)
        assert (item["assigned_to"], item["assignment_reason"]) == (
            "queue:desk",
            "rule crypto -> queue:desk",
        )
        code, out, _ = run(capsys, "pending", "--assigned-to", "bob@bank", *app)
        assert "c1: assigned to queue:desk because rule crypto -> queue:desk" in out
        assign = ("assign", "c1", "--to", "ann@bank", "--by", "lead@bank", "--reason", "cover")
        code, _, err = run(capsys, *assign, *app)
        assert code == 1
        assert "NotAuthorizedError" in err
        done = run_json(capsys, *assign, "--role", "supervisor", *app)
        assert done["assigned_to"] == "ann@bank"
        until = "2999-01-01T00:00:00+00:00"
        made = run_json(
            capsys, "delegate", "--from", "ann@bank", "--to", "cat@bank", "--until", until, *app
        )
        assert (made["by"], made["until"]) == ("ann@bank", until)
        [via] = run_json(capsys, "pending", "--assigned-to", "cat@bank", *app)
        assert (via["thread_id"], via["delegated_from"]) == ("c1", "ann@bank")
        assert [d["to_reviewer"] for d in run_json(capsys, "delegate", *app)] == ["cat@bank"]
        assert run(capsys, "delegate", "--revoke", "--from", "ann@bank", *app)[0] == 0
        assert run(capsys, "delegate", "--revoke", "--from", "ann@bank", *app)[0] == 1
        assert run_json(capsys, "pending", "--assigned-to", "cat@bank", *app) == []
        events = [r["event"] for r in run_json(capsys, "audit", "c1", *app)]
        assert events[:3] == ["paused", "assigned", "reassigned"]
        assert run(capsys, "audit", "--verify", *app)[0] == 0
