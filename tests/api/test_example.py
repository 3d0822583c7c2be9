"""`examples/review_service.py`: one command serves the FCA review service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from examples.review_service import REVIEWERS, SEED_MESSAGES, create_app
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The example app on a fresh SQLite file, its lifespan run (backend opened, seeded)."""
    with TestClient(create_app(f"sqlite:///{tmp_path / 'service.db'}")) as test_client:
        yield test_client


class TestReviewServiceApp:
    """The example's app, in process."""

    def test_seeds_two_reviews(self, client: TestClient) -> None:
        """Startup pauses one review per seed message, each with an SLA deadline."""
        page = client.get("/reviews", headers={"X-Reviewer": "ops@bank"}).json()
        assert [r["customer_message"] for r in page["items"]] == SEED_MESSAGES
        assert all(r["deadline"] for r in page["items"])

    def test_demo_authentication(self, client: TestClient) -> None:
        """`X-Reviewer` or `?reviewer=` picks a demo reviewer; anyone else gets a 401."""
        for name, roles in REVIEWERS.items():
            me = client.get("/me", headers={"X-Reviewer": name}).json()
            assert me == {"id": name, "roles": sorted(roles)}
        assert client.get("/me", params={"reviewer": "cora@bank"}).json()["id"] == "cora@bank"
        refused = client.get("/me", headers={"X-Reviewer": "mallory"})
        assert refused.status_code == 401
        assert "sam@bank" in refused.json()["detail"]

    def test_roles_decide(self, client: TestClient) -> None:
        """The SM&CR policy applies: cora may not approve advice, sam may."""
        [first, _] = client.get("/reviews", params={"reviewer": "sam@bank"}).json()["items"]
        url = f"/reviews/{first['thread_id']}/approve"
        refused = client.post(url, json={}, headers={"X-Reviewer": "cora@bank"})
        assert refused.status_code == 403
        approved = client.post(url, json={}, headers={"X-Reviewer": "sam@bank"})
        assert approved.json()["status"] == "completed"

    def test_customer_messages(self, client: TestClient) -> None:
        """`POST /demo/messages` runs the agent: clean replies complete, risky ones pause."""
        clean = client.post("/demo/messages", json={"message": "What are your opening hours?"})
        assert clean.json()["status"] == "completed"
        risky = client.post("/demo/messages", json={"message": SEED_MESSAGES[0], "thread_id": "x"})
        assert risky.json()["status"] == "paused"
        assert client.get("/", follow_redirects=False).headers["location"] == (
            "/inbox?reviewer=sam@bank"
        )

    def test_restart_keeps_reviews_and_does_not_reseed(self, tmp_path: Path) -> None:
        """The SQLite file survives a restart; seeding happens only when nothing is pending."""
        url = f"sqlite:///{tmp_path / 'restart.db'}"
        with TestClient(create_app(url)) as first:
            before = first.get("/reviews", params={"reviewer": "sam@bank"}).json()["items"]
        with TestClient(create_app(url)) as second:
            after = second.get("/reviews", params={"reviewer": "sam@bank"}).json()["items"]
        assert [r["thread_id"] for r in after] == [r["thread_id"] for r in before]


def free_port() -> int:
    """A localhost port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_one_command_serves(tmp_path: Path) -> None:
    """`python examples/review_service.py` serves the inbox and API until interrupted."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "examples/review_service.py",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "one.db"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"{base}/reviews", headers={"X-Reviewer": "sam@bank"})
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.2)
        assert len(response.json()["items"]) == 2
        assert httpx.get(f"{base}/inbox").text.startswith("<!doctype html>")
        # An inbox's event stream is open while the service is asked to stop.
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream.sendall(b"GET /events?reviewer=sam@bank HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert stream.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        stopping = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    stopped_in = time.monotonic() - stopping
    stream.close()
    assert process.returncode == 0, output
    assert stopped_in < 4, f"the open event stream held up shutdown for {stopped_in:.1f} s"
    assert f"{base}/inbox?reviewer=sam@bank" in output
    assert "Traceback" not in output


class TestUvicornCommandLine:
    """`uvicorn examples.review_service:app`, as the docs give it, in a real subprocess."""

    def test_uvicorn_serves_the_module_app(self, tmp_path: Path) -> None:
        """uvicorn's own command line starts the seeded service on `$HITL_REVIEW_DB` and stops."""
        port = free_port()
        database = tmp_path / "uvicorn.db"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.review_service:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HITL_REVIEW_DB": str(database)},
        )
        stream: socket.socket | None = None
        try:
            base = f"http://127.0.0.1:{port}"
            response = wait_until_serving(process, f"{base}/reviews", {"X-Reviewer": "sam@bank"})
            assert [r["customer_message"] for r in response.json()["items"]] == SEED_MESSAGES
            inbox = httpx.get(f"{base}/inbox")
            assert inbox.text.startswith("<!doctype html>")
            assert inbox.headers["content-security-policy"] == "frame-ancestors 'none'"
            # An inbox's event stream is open while uvicorn is asked to stop.
            stream = socket.create_connection(("127.0.0.1", port), timeout=10)
            stream.sendall(b"GET /events?reviewer=sam@bank HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert stream.recv(4096).startswith(b"HTTP/1.1 200")
        finally:
            stopping = time.monotonic()
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=30)
            if stream is not None:
                stream.close()
        stopped_in = time.monotonic() - stopping
        # The exit status after Ctrl-C is uvicorn's own (0 now; 1 and "Aborted!" in 0.30).
        assert "Application shutdown complete." in output, output
        assert stopped_in < 4, f"the open event stream held up shutdown for {stopped_in:.1f} s"
        assert database.exists(), "the app did not use $HITL_REVIEW_DB"
        assert "Traceback" not in output


def wait_until_serving(
    process: subprocess.Popen[str], url: str, headers: dict[str, str]
) -> httpx.Response:
    """GET `url` once the server in `process` answers (fail if it dies or takes 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, headers=headers)
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
