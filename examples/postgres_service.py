"""Two processes share one database: the agent pauses a risky reply, a reviewer approves it.

    python examples/postgres_service.py                    # starts both roles as processes
    python examples/postgres_service.py reviewer THREAD    # one role on its own
    python examples/postgres_service.py agent THREAD

The reviewer service starts first and waits for work; the agent process drafts
a reply, the graph pauses it for review, and the agent *exits*. The reviewer,
another process with its own connections, finds the review in `pending()`,
approves it and resumes the graph from the checkpoint the agent left. Finally
this script reads the delivered reply and the audit log from a third
connection.

The database URL comes from `HITL_EXAMPLE_POSTGRES_DSN` or `DATABASE_URL`
(e.g. `postgresql://postgres@127.0.0.1:5432/test`). Without either, the
example uses a temporary SQLite file instead, which two processes can share
just the same, and says so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid

from hitl_compliance import (
    Backend,
    HitlCoordinator,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
    mask_url,
    open_backend,
)
from hitl_compliance._fca import REJECTION_MESSAGE, SMCR_APPROVER, fca_drafter, fca_rules

QUESTION = "Should I move my savings into the Global Equity Fund?"
EDITED = "One of our qualified advisers will call you to discuss your options."


def database_url() -> str | None:
    """The configured database URL, if any."""
    return os.environ.get("HITL_EXAMPLE_POSTGRES_DSN") or os.environ.get("DATABASE_URL")


def coordinator(backend: Backend) -> HitlCoordinator:
    """What both processes build: the same graph, rules and policy on the shared backend."""
    graph = build_compliance_graph(
        fca_drafter,
        rules=fca_rules(),
        checkpointer=backend.checkpointer,
        rejection_message=REJECTION_MESSAGE,
    )
    policy = RoleBasedPolicy(default_roles=SMCR_APPROVER)
    return HitlCoordinator(graph, reviews=backend.reviews, policy=policy)


def say(role: str, text: str) -> None:
    print(f"[{role} pid {os.getpid()}] {text}", flush=True)


async def agent(url: str, thread: str) -> None:
    """The support agent: run the customer's turn; a risky draft pauses, then exit."""
    async with open_backend(url) as backend:
        result = await coordinator(backend).process(thread, QUESTION)
    rules = ", ".join(v.rule for v in result.violations)
    say("agent", f"{thread} {result.status} for review ({rules}); exiting")


async def reviewer(url: str, thread: str, timeout: float = 60.0) -> None:
    """The review service: wait for the thread's review, then approve an edited reply."""
    officer = Reviewer("officer@bank", roles=frozenset({SMCR_APPROVER}))
    async with open_backend(url) as backend:
        coord = coordinator(backend)
        say("reviewer", f"waiting for {thread} to need review")
        deadline = time.monotonic() + timeout
        while not any(r.thread_id == thread for r in await coord.pending()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{thread} never paused")
            await asyncio.sleep(0.2)
        result = await coord.approve(thread, reviewer=officer, response=EDITED)
    say("reviewer", f"{thread} {result.status}: delivered {result.agent_response!r}")


async def report(url: str, thread: str) -> None:
    """What is on record, read back on fresh connections."""
    async with open_backend(url) as backend:
        coord = coordinator(backend)
        state = await coord.graph.aget_state({"configurable": {"thread_id": thread}})
        events = [f"{r.event} by {r.actor}" for r in await coord.audit_log(thread)]
    say("main", f"customer received: {state.values['agent_response']!r}")
    say("main", f"audit of {thread}: {', '.join(events)}")


def main(argv: list[str]) -> int:
    """Start the reviewer and the agent as two processes on one database."""
    if len(argv) == 2 and argv[0] in ("agent", "reviewer"):
        url = database_url()
        if url is None:
            raise SystemExit("set HITL_EXAMPLE_POSTGRES_DSN or DATABASE_URL")
        asyncio.run((agent if argv[0] == "agent" else reviewer)(url, argv[1]))
        return 0
    env = dict(os.environ)
    url = database_url()
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='hitl-service-')}/service.db"
        print(
            "note: neither HITL_EXAMPLE_POSTGRES_DSN nor DATABASE_URL is set; using a "
            f"temporary SQLite file instead: {url}",
            flush=True,
        )
        env["DATABASE_URL"] = url  # the child processes read it from the environment
    print(f"database: {mask_url(url)}", flush=True)
    thread = f"service-{uuid.uuid4().hex[:8]}"
    # The URL (and any password in it) goes to the children through the environment,
    # not the command line, where other users of the machine could read it.
    command = [sys.executable, os.path.abspath(__file__)]
    with subprocess.Popen([*command, "reviewer", thread], env=env) as review_service:
        subprocess.run([*command, "agent", thread], env=env, check=True, timeout=120)
        if review_service.wait(timeout=120) != 0:
            return 1
    asyncio.run(report(url, thread))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
