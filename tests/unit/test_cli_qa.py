"""`hitl-compliance qa pending | verdict | disagreement`: second-line QA from the shell."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import HitlCoordinator, open_backend
from hitl_compliance.cli import main

APP = "qa_cli_app:factory"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """An app sampling every auto-delivered reply for QA (QA role `qa`), with two sampled turns."""
    (tmp_path / "qa_cli_app.py").write_text(
        textwrap.dedent(
            """
            from hitl_compliance import (
                HitlCoordinator, KeywordRule, QaSampling, build_compliance_graph,
            )

            def factory(backend):
                graph = build_compliance_graph(
                    lambda state: "Thanks, here is our ISA factsheet.",
                    rules=[KeywordRule("guarantee", ["guaranteed returns"])],
                    checkpointer=backend.checkpointer,
                )
                qa = QaSampling(rate=1.0, roles=frozenset({"qa"}))
                return HitlCoordinator(graph, reviews=backend.reviews, qa_sampling=qa)
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "qa_cli_app", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    import qa_cli_app  # type: ignore[import-not-found]

    url = f"sqlite:///{tmp_path / 'qa.db'}"

    async def deliver() -> None:
        async with open_backend(url) as backend:
            coord: HitlCoordinator = qa_cli_app.factory(backend)
            for thread in ("c-1", "c-2"):
                await coord.process(thread, "Tell me about ISAs", metadata={"product": "isa"})

    asyncio.run(deliver())
    return ("--backend", url, "--app", APP)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


class TestQaCommands:
    def test_pending_verdict_and_disagreement(
        self, app: tuple[str, ...], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """List the sampled replies, agree with one, disagree with the other, count per rule."""
        waiting = run_json(capsys, "qa", "pending", *app)
        assert [q["thread_id"] for q in waiting] == ["c-1", "c-2"]
        first, second = (q["qa_review_id"] for q in waiting)
        code, out, _ = run(capsys, "qa", "pending", *app)
        assert code == 0
        assert first in out
        assert "isa" in out
        qa = ("--reviewer", "qa@bank", "--role", "qa")
        code, out, _ = run(capsys, "qa", "verdict", first, "agree", *qa, *app)
        assert (code, out.strip()) == (0, f"agree: {first} by qa@bank")
        judged = run_json(
            capsys,
            "qa",
            "verdict",
            second,
            "disagree",
            "--reason-code",
            "missing_risk_warning",
            *qa,
            *app,
        )
        assert (judged["verdict"], judged["reason_code"]) == ("disagree", "missing_risk_warning")
        assert run_json(capsys, "qa", "pending", *app) == []
        counts = run_json(capsys, "qa", "disagreement", *app)
        assert counts == [
            {
                "rule": "guarantee",
                "sampled": 2,
                "reviewed": 2,
                "disagreements": 1,
                "disagreement_rate": 0.5,
            }
        ]
        code, out, _ = run(capsys, "qa", "disagreement", *app)
        assert code == 0
        assert "50.0%" in out
        later = ("--since", "2999-01-01T00:00:00+00:00")
        code, out, _ = run(capsys, "qa", "disagreement", *later, *app)
        assert "No reply was sampled" in out

    def test_refusals_exit_1_and_change_nothing(
        self, app: tuple[str, ...], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No QA role, no code to disagree, an unknown id, a second verdict: exit 1."""
        [first, _] = (q["qa_review_id"] for q in run_json(capsys, "qa", "pending", *app))
        qa = ("--reviewer", "qa@bank", "--role", "qa")
        cases = [
            (("qa", "verdict", first, "agree", "--reviewer", "intern@bank"), "NotAuthorizedError"),
            (("qa", "verdict", first, "disagree", *qa), "InvalidDecisionError"),
            (("qa", "verdict", "qa:none:1", "agree", *qa), "QaReviewNotFoundError"),
        ]
        for argv, error in cases:
            code, _, err = run(capsys, *argv, *app)
            assert code == 1
            assert error in err
        assert len(run_json(capsys, "qa", "pending", *app)) == 2
        assert run(capsys, "qa", "verdict", first, "agree", *qa, *app)[0] == 0
        code, _, err = run(capsys, "qa", "verdict", first, "agree", *qa, *app)
        assert code == 1
        assert "QaAlreadyRecordedError" in err

    def test_a_bad_verdict_is_a_usage_error(
        self, app: tuple[str, ...], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only agree or disagree: anything else exits 2 before the database is opened."""
        code, _, err = run(capsys, "qa", "verdict", "qa:c-1:1", "maybe", "--reviewer", "q", *app)
        assert code == 2
        assert "invalid choice" in err
