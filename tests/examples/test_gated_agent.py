"""The gated ReAct agent of `examples/gated_agent.py` through the CLI and the review service.

The "Gate your own graph" page promises that the CLI and the review router
work on a graph with a gate unchanged: here one process runs the agent to its
pause, other processes list and approve it with `hitl-compliance --app`, and
the review router approves another over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import httpx
from examples.gated_agent import app as gated_app
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hitl_compliance import Reviewer, open_backend
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.fastapi import create_review_router

ROOT = Path(__file__).resolve().parents[2]
APP = ["--app", "examples.gated_agent:app"]
TWO = "Pay £5,000 to my landlord and £2,000 to my gym"
# This checkout's library first, whatever copy of it the environment has installed.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def cli(*argv: str, db: Path) -> subprocess.CompletedProcess[str]:
    """`hitl-compliance *argv` on the SQLite file `db`, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "hitl_compliance", *argv, "--backend", f"sqlite:///{db}", *APP],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestCli:
    def test_pending_and_approve_across_processes(self, tmp_path: Path) -> None:
        """The agent pauses in one process; the CLI lists and approves it in others."""
        db = tmp_path / "gated.db"
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "examples.gated_agent",
                f"sqlite:///{db}",
                "Pay £5,000 to my landlord",
            ],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert ran.stdout.startswith("pay-1: paused: transfer(")
        pending = cli("pending", db=db)
        assert pending.returncode == 0, pending.stderr
        assert "transfer_limits" in pending.stdout
        refused = cli("approve", "pay-1", "--reviewer", "clerk@bank", db=db)
        assert refused.returncode == 1
        assert "NotAuthorizedError" in refused.stderr
        approved = cli(
            "approve", "pay-1", "--reviewer", "payments@bank", "--role", "payments_officer", db=db
        )
        assert approved.returncode == 0, approved.stderr
        assert "Done: sent £5,000 to account 12345678." in approved.stdout
        audit = cli("audit", "pay-1", "--verify", db=db)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert audit.stdout.startswith("ok: 5 audit rows")
        events = [line.split()[4] for line in cli("audit", "pay-1", db=db).stdout.splitlines()[1:]]
        # The approval's run replies twice (the pass with the call, the answer), then is recorded.
        assert events == ["paused", "denied", "replied", "replied", "approved"]

    def test_two_pending_reviews_need_review_id(self, tmp_path: Path) -> None:
        """Two flagged calls wait at once; the CLI decides each by --review-id."""
        db = tmp_path / "gated.db"
        subprocess.run(
            [sys.executable, "-m", "examples.gated_agent", f"sqlite:///{db}", TWO, "pay-2"],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        listed = cli("pending", "--json", db=db)
        assert listed.returncode == 0, listed.stderr
        by_account = {
            "gym" if "55555555" in r["draft_response"] else "landlord": r["review_id"]
            for r in json.loads(listed.stdout)
        }
        assert len(by_account) == 2
        officer = ["--reviewer", "payments@bank", "--role", "payments_officer"]
        refused = cli("approve", "pay-2", *officer, db=db)
        assert refused.returncode == 1
        assert "ReviewIdRequiredError" in refused.stderr
        shown = cli("show", "pay-2", "--review-id", by_account["gym"], db=db)
        assert shown.returncode == 0, shown.stderr
        assert f"--review-id {by_account['gym']}" in shown.stdout
        assert by_account["landlord"] in shown.stdout  # the other open review is named
        rejected = cli(
            "reject", "pay-2", "--reason", "unknown gym", "--review-id", by_account["gym"],
            *officer, db=db,
        )  # fmt: skip
        assert rejected.returncode == 0, rejected.stderr
        approved = cli("approve", "pay-2", "--review-id", by_account["landlord"], *officer, db=db)
        assert approved.returncode == 0, approved.stderr
        assert "sent £5,000 to account 12345678" in approved.stdout
        events = [line.split()[4] for line in cli("audit", "pay-2", db=db).stdout.splitlines()[1:]]
        assert events == ["paused", "paused", "rejected", "replied", "replied", "approved"]

    def test_approve_with_edited_tool_args(self, tmp_path: Path) -> None:
        """approve --tool-args runs the call with the reviewer's arguments; a blocked edit is
        refused (exit 1) and leaves the review pending."""
        db = tmp_path / "gated.db"
        subprocess.run(
            [sys.executable, "-m", "examples.gated_agent", f"sqlite:///{db}",
             "Pay £5,000 to my landlord", "pay-3"],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        officer = ["--reviewer", "payments@bank", "--role", "payments_officer"]
        blocked = cli(
            "approve", "pay-3", "--tool-args", '{"amount_gbp": 30000, "to_account": "12345678"}',
            *officer, db=db,
        )  # fmt: skip
        assert blocked.returncode == 1
        assert "PolicyViolationError" in blocked.stderr
        assert [r["thread_id"] for r in json.loads(cli("pending", "--json", db=db).stdout)] == [
            "pay-3"
        ]
        edited = cli(
            "approve", "pay-3", "--tool-args", '{"amount_gbp": 900, "to_account": "12345678"}',
            *officer, db=db,
        )  # fmt: skip
        assert edited.returncode == 0, edited.stderr
        assert "sent £900 to account 12345678" in edited.stdout
        assert json.loads(cli("pending", "--json", db=db).stdout) == []


_bearer = HTTPBearer(auto_error=False)


def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Reviewer:
    """`Bearer payments@bank` is the payments officer; anything else is refused."""
    if credentials is None or credentials.credentials != "payments@bank":
        raise HTTPException(401, "Unknown reviewer.")
    return Reviewer("payments@bank", roles=frozenset({"payments_officer"}))


class TestReviewService:
    async def test_router_lists_and_approves_a_gate_review(self, tmp_path: Path) -> None:
        """GET /reviews lists the gate's review; POST approve resumes the agent."""
        async with open_backend(f"sqlite:///{tmp_path / 'svc.db'}") as backend:
            coord = gated_app(backend)
            assert (await coord.process("pay-9", "Pay £5,000 to my landlord")).status == "paused"
            service = FastAPI()
            service.include_router(create_review_router(coord, authenticate=authenticate))
            headers = {"Authorization": "Bearer payments@bank"}
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                listed = (await client.get("/reviews", headers=headers)).json()
                assert [r["thread_id"] for r in listed["items"]] == ["pay-9"]
                done = await client.post("/reviews/pay-9/approve", json={}, headers=headers)
                assert done.status_code == 200, done.text
                assert done.json()["status"] == "completed"
            assert [row.event for row in await coord.audit_log("pay-9")] == [
                "paused",
                REPLIED,
                REPLIED,
                "approved",
            ]

    async def test_router_approves_with_edited_tool_args(self, tmp_path: Path) -> None:
        """POST approve with tool_args runs the call with them; a blocked edit is a 422
        PolicyViolationError that leaves the review pending, and bad JSON is a 422."""
        async with open_backend(f"sqlite:///{tmp_path / 'svc.db'}") as backend:
            coord = gated_app(backend)
            assert (await coord.process("pay-7", "Pay £5,000 to my landlord")).status == "paused"
            service = FastAPI()
            service.include_router(create_review_router(coord, authenticate=authenticate))
            headers = {"Authorization": "Bearer payments@bank"}
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                approve = "/reviews/pay-7/approve"
                blocked = await client.post(
                    approve,
                    json={"tool_args": {"amount_gbp": 30_000, "to_account": "12345678"}},
                    headers=headers,
                )
                assert blocked.status_code == 422, blocked.text
                assert blocked.json()["error"] == "PolicyViolationError"
                not_object = await client.post(approve, json={"tool_args": [900]}, headers=headers)
                assert not_object.status_code == 422, not_object.text
                assert not_object.json()["error"] == "RequestValidationError"
                text_edit = await client.post(approve, json={"response": "hi"}, headers=headers)
                assert text_edit.status_code == 422, text_edit.text
                assert text_edit.json()["error"] == "InvalidDecisionError"
                [still] = (await client.get("/reviews", headers=headers)).json()["items"]
                assert still["thread_id"] == "pay-7"
                done = await client.post(
                    approve,
                    json={"tool_args": {"amount_gbp": 900, "to_account": "12345678"}},
                    headers=headers,
                )
                assert done.status_code == 200, done.text
                assert done.json()["status"] == "completed"
                assert "sent £900 to account 12345678" in done.json()["agent_response"]
            rows = await coord.audit_log("pay-7")
            assert [row.event for row in rows] == ["paused", REPLIED, REPLIED, "approved"]
            approved = rows[-1]
            assert approved.payload["tool_args"] == {"amount_gbp": 900, "to_account": "12345678"}

    async def test_router_decides_each_of_two_reviews_by_review_id(self, tmp_path: Path) -> None:
        """Two pending reviews of one thread: a decision needs ?review_id=, then each works."""
        async with open_backend(f"sqlite:///{tmp_path / 'svc.db'}") as backend:
            coord = gated_app(backend)
            assert (await coord.process("pay-8", TWO)).status == "paused"
            service = FastAPI()
            service.include_router(create_review_router(coord, authenticate=authenticate))
            headers = {"Authorization": "Bearer payments@bank"}
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                listed = (await client.get("/reviews", headers=headers)).json()["items"]
                assert [r["thread_id"] for r in listed] == ["pay-8", "pay-8"]
                refused = await client.post("/reviews/pay-8/approve", json={}, headers=headers)
                assert refused.status_code in (400, 422), refused.text
                assert refused.json()["error"] == "ReviewIdRequiredError"
                first, second = (r["review_id"] for r in listed)
                one = await client.get(
                    "/reviews/pay-8", params={"review_id": second}, headers=headers
                )
                assert one.json()["review_id"] == second
                half = await client.post(
                    "/reviews/pay-8/approve", params={"review_id": first}, json={}, headers=headers
                )
                assert half.status_code == 200, half.text
                assert half.json()["status"] == "paused"
                done = await client.post(
                    "/reviews/pay-8/reject",
                    params={"review_id": second},
                    json={"reason": "no"},
                    headers=headers,
                )
                assert done.status_code == 200, done.text
                assert done.json()["status"] == "completed"
            rows = await coord.audit_log("pay-8")
            assert [(r.event, r.review_id) for r in rows][2:] == [
                ("approved", first),
                (REPLIED, None),
                (REPLIED, None),
                ("rejected", second),
            ]
