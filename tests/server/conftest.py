"""A real `langgraph dev` serving `examples/langgraph_server/`, started once per session.

The server runs from the `langgraph` command named by `HITL_LANGGRAPH_CLI` (a
separate environment: `pip install -e ".[server]"`, as CI does) or, without it,
from this interpreter's environment when `langgraph-cli[inmem]` is installed
there. Neither: the tests skip, or fail when `HITL_REQUIRE_SERVER` is set (CI).

The fixtures every server test module shares are here too: each served graph
(`graph_id`), the shared review store (`store`), and SDK clients authenticated
as the officer, the trainee and the agent (`tests/server/_helpers.py` holds
the tokens, texts and shapes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from langgraph_sdk.client import LangGraphClient

from hitl_compliance import ReviewStore, review_store
from tests.server._helpers import (
    AGENT_TOKEN,
    GRAPH_IDS,
    OFFICER_TOKEN,
    TRAINEE_TOKEN,
    sdk_client,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langgraph_server"
CLI_ENV = "HITL_LANGGRAPH_CLI"
REQUIRE_ENV = "HITL_REQUIRE_SERVER"
START_TIMEOUT_S = 90.0


def _cli() -> str | None:
    """The `langgraph` command to start the server with, or None when there is none."""
    named = os.environ.get(CLI_ENV)
    if named:
        return named
    if importlib.util.find_spec("langgraph_cli") and importlib.util.find_spec("langgraph_api"):
        beside = Path(sys.executable).with_name("langgraph")
        return str(beside) if beside.exists() else shutil.which("langgraph")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


POSTGRES_ENV = "HITL_TEST_POSTGRES_DSN"
SERVER_SLA = timedelta(days=1)
"""The example deployment's SLA for the pauses its graphs record (`HITL_REVIEW_SLA_SECONDS`)."""


@pytest.fixture(scope="session")
def server_reviews_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The review store the served graphs are attached to (`HITL_REVIEWS_URL`).

    With `HITL_TEST_POSTGRES_DSN`, a PostgreSQL schema of its own (created for
    the session, dropped after it), shared by the deployment and the tests'
    coordinators as in production; without it, a SQLite file both open.
    """
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        yield f"sqlite:///{tmp_path_factory.mktemp('server_reviews') / 'reviews.db'}"
        return
    from hitl_compliance.testing.databases import postgres_schema

    with postgres_schema(dsn, prefix="hitl_server_") as url:
        yield url


@pytest.fixture(scope="session")
def server_postgres_url(server_reviews_url: str) -> str:
    """The deployment's review store when it is PostgreSQL; else the test skips (fails in CI).

    Several processes deciding at once (coordinators, the server's workers) need
    the store whose claims hold across processes, as in production.
    """
    if server_reviews_url.startswith("postgres"):
        return server_reviews_url
    reason = f"{POSTGRES_ENV} is not set: the deployment's review store is a SQLite file"
    if os.environ.get("HITL_REQUIRE_POSTGRES"):
        pytest.fail(f"HITL_REQUIRE_POSTGRES is set (CI) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def langgraph_server(
    tmp_path_factory: pytest.TempPathFactory, server_reviews_url: str
) -> Iterator[str]:
    """The base URL of `langgraph dev` serving the example deployment on 127.0.0.1."""
    cli = _cli()
    if cli is None:
        reason = (
            "langgraph-cli[inmem] is not installed here; set HITL_LANGGRAPH_CLI to the "
            '`langgraph` command of an environment with `pip install -e ".[server]"`'
        )
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set (CI) but {reason}")
        pytest.skip(reason)
    # The in-memory runtime keeps its state in ./.langgraph_api of its working
    # directory and reads the config's paths from there: serve a copy of the
    # example, so each session starts empty and the checkout stays clean.
    workdir = tmp_path_factory.mktemp("langgraph_dev")
    deployment = workdir / EXAMPLE.name
    shutil.copytree(
        EXAMPLE, deployment, ignore=shutil.ignore_patterns(".langgraph_api", "reviews.db*")
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "PYTHONUNBUFFERED": "1",
        "HITL_REVIEWS_URL": server_reviews_url,
        # Pauses the graphs record themselves get a deadline a day away: no test's
        # sweep (as of minutes later at most) reaches it.
        "HITL_REVIEW_SLA_SECONDS": str(SERVER_SLA.total_seconds()),
    }
    argv = [cli, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--config", "langgraph.json"]
    started = time.monotonic()
    with log.open("wb") as out:
        # Its own process group: the CLI starts the server in child processes.
        process = subprocess.Popen(
            argv, cwd=deployment, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"`langgraph dev` exited with {process.returncode}:\n{_log_tail(log)}")
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"`langgraph dev` not up after {START_TIMEOUT_S}s:\n{_log_tail(log)}")
            time.sleep(0.2)
        sys.stderr.write(f"\nlanggraph dev up in {time.monotonic() - started:.1f}s at {url}\n")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(params=GRAPH_IDS)
def graph_id(request: pytest.FixtureRequest) -> str:
    """Each graph of the example deployment: the factory graph and the gated agent."""
    name: str = request.param
    return name


@pytest_asyncio.fixture
async def store(server_reviews_url: str) -> AsyncIterator[ReviewStore]:
    """The review store the served graphs are attached to, opened from this process."""
    reviews = review_store(server_reviews_url)
    await reviews.setup()
    try:
        yield reviews
    finally:
        await reviews.aclose()


@pytest_asyncio.fixture
async def officer(langgraph_server: str) -> AsyncIterator[LangGraphClient]:
    """An SDK client authenticated as the compliance officer, alice@bank."""
    async with sdk_client(langgraph_server, OFFICER_TOKEN) as client:
        yield client


@pytest_asyncio.fixture
async def trainee(langgraph_server: str) -> AsyncIterator[LangGraphClient]:
    """A reviewer the server lets resume runs, whom the graph's policy does not let approve."""
    async with sdk_client(langgraph_server, TRAINEE_TOKEN) as client:
        yield client


@pytest_asyncio.fixture
async def agent(langgraph_server: str) -> AsyncIterator[LangGraphClient]:
    """An SDK client authenticated as the support agent (may run, may not decide)."""
    async with sdk_client(langgraph_server, AGENT_TOKEN) as client:
        yield client
