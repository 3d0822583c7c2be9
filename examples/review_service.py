"""The FCA scenario as a review service: the review API and the reviewer inbox on FastAPI.

Run it with one command from the repository root (needs the `api` and `sqlite`
extras, both in `dev`):

    python examples/review_service.py

or with uvicorn's own command line (the database is then `$HITL_REVIEW_DB`, by
default the same file in the temp directory):

    uvicorn examples.review_service:app

then open http://127.0.0.1:8000/inbox?reviewer=sam@bank. On start it seeds a
couple of paused reviews (when none are pending) into an SQLite file, so a
restart keeps what was left undecided. `?reviewer=` (or an `X-Reviewer` header)
picks one of the demo reviewers below: `sam@bank` may decide everything,
`cora@bank` only misleading promotions, `ops@bank` nothing.

Send the support agent a new customer message, and watch it arrive in the
open inbox through the event stream:

    curl -X POST http://127.0.0.1:8000/demo/messages -H 'Content-Type: application/json' \\
         -d '{"message": "Is the Fixed Rate Saver safe for my pension lump sum?"}'

Options: `--host`, `--port`, `--db PATH` (default: a file in the temp directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from hitl_compliance import HitlCoordinator, ProcessResult, Reviewer, open_backend
from hitl_compliance._fca import (
    COMPLIANCE_OFFICER,
    SCRIPT,
    SLA,
    SMCR_APPROVER,
    fca_graph,
    fca_policy,
)
from hitl_compliance.fastapi import ReviewEvents, create_review_router

DEFAULT_DB = Path(tempfile.gettempdir()) / "hitl_review_service.db"
"""Where the demo keeps its reviews unless `--db` or `$HITL_REVIEW_DB` says otherwise."""

REVIEWERS: Mapping[str, frozenset[str]] = {
    "sam@bank": frozenset({SMCR_APPROVER}),
    "cora@bank": frozenset({COMPLIANCE_OFFICER}),
    "ops@bank": frozenset(),
    "head@bank": frozenset({"compliance-head"}),  # may stop delivery (POST /stops)
}
"""The demo's reviewers and their SM&CR roles; a real service asks its identity provider."""

SEED_MESSAGES = [
    "Should I move my savings into the Global Equity Fund?",
    "Is the Fixed Rate Saver safe for my pension lump sum?",
]
"""Customer messages whose scripted drafts need a compliance decision."""


def authenticate(
    x_reviewer: Annotated[
        str | None, Header(description="Demo authentication: the reviewer's id.")
    ] = None,
    reviewer: Annotated[
        str | None, Query(description="Demo authentication, for browsers: the reviewer's id.")
    ] = None,
) -> Reviewer:
    """Demo authentication: trust the `X-Reviewer` header or `?reviewer=`. Never in production."""
    who = x_reviewer or reviewer
    if who is None or who not in REVIEWERS:
        raise HTTPException(
            status_code=401,
            detail=f"Unknown reviewer {who!r}: send X-Reviewer or ?reviewer= with one of "
            f"{sorted(REVIEWERS)}.",
            headers={"WWW-Authenticate": "X-Reviewer"},
        )
    return Reviewer(who, roles=REVIEWERS[who])


async def seed(coord: HitlCoordinator) -> list[str]:
    """Pause a couple of risky drafts for review, unless some are already pending."""
    if await coord.pending(limit=1):
        return []
    threads = []
    for message in SEED_MESSAGES:
        thread_id = f"conv-{uuid.uuid4().hex[:6]}"
        await coord.process(thread_id, message)
        threads.append(thread_id)
    return threads


class CustomerMessage(BaseModel):
    """A message from a customer to the support agent (`POST /demo/messages`)."""

    message: str = Field(min_length=1, max_length=2_000, examples=[next(iter(SCRIPT))])
    thread_id: str | None = Field(default=None, min_length=1, max_length=64)


@contextlib.contextmanager
def streams_end_on_exit_signal(events: ReviewEvents) -> Iterator[None]:
    """While the app runs, SIGINT / SIGTERM first end the open event streams, then stop the server.

    uvicorn waits for open responses before it runs the lifespan's shutdown, and
    an event stream never ends by itself: without this an open inbox would hold
    up Ctrl-C. The lifespan starts after uvicorn installed its own handlers, so
    ours wraps them (and puts them back on shutdown); it works the same under
    `uvicorn examples.review_service:app` and `python examples/review_service.py`.
    Signals reach only the main thread, so elsewhere (a test's server thread)
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(sig: int, frame: FrameType | None) -> None:
        events.close()  # safe from a signal handler
        then = previous[sig]
        if callable(then):
            then(sig, frame)
        elif then == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, then in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, then)


def create_app(
    database_url: str,
    *,
    seed_reviews: bool = True,
    authenticate: Callable[..., Any] = authenticate,
) -> FastAPI:
    """The service: the FCA coordinator on `database_url`, its review router and inbox.

    `authenticate` is the router's dependency returning the calling `Reviewer`
    (by default the demo's `X-Reviewer` / `?reviewer=`; a deployment passes its
    cookie session or bearer-token check).
    """
    events = ReviewEvents()
    holder: dict[str, HitlCoordinator] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backend(database_url) as backend:
            coord = HitlCoordinator(
                fca_graph(backend.checkpointer),
                reviews=backend.reviews,
                policy=fca_policy(),
                sla=SLA,
                hooks=events.hooks(),
            )
            await coord.recover()  # finish whatever a crashed run left behind
            if seed_reviews:
                await seed(coord)
            holder["coordinator"] = coord
            sweeper = asyncio.create_task(coord.run_sla_sweeper(interval=timedelta(minutes=1)))
            try:
                with streams_end_on_exit_signal(events):
                    yield
            finally:
                events.close()  # end open event streams
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    app = FastAPI(
        title="FCA review service",
        summary="hitl-compliance's review API and reviewer inbox for the FCA support agent.",
        lifespan=lifespan,
    )
    app.state.review_events = events
    # The backend is opened in the lifespan, so the router gets a callable.
    app.include_router(
        create_review_router(
            lambda: holder["coordinator"], authenticate=authenticate, events=events
        )
    )

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/inbox?reviewer=sam@bank")

    @app.post("/demo/messages", tags=["demo"], summary="A customer writes to the support agent")
    async def customer_message(body: CustomerMessage) -> ProcessResult:
        thread_id = body.thread_id or f"conv-{uuid.uuid4().hex[:6]}"
        return await holder["coordinator"].process(thread_id, body.message)

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the review service with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="the SQLite file")
    args = parser.parse_args(argv)
    app = create_app(f"sqlite:///{args.db.resolve()}")
    base = f"http://{args.host}:{args.port}"
    print(f"database: {args.db.resolve()}")
    for who, roles in REVIEWERS.items():
        described = ", ".join(sorted(roles)) or "no roles"
        print(f"inbox of {who} ({described}): {base}/inbox?reviewer={who}")
    print(f"API docs: {base}/docs")
    config = uvicorn.Config(app, host=args.host, port=args.port, timeout_graceful_shutdown=5)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once stopped
        uvicorn.Server(config).run()


app = create_app(f"sqlite:///{Path(os.environ.get('HITL_REVIEW_DB', DEFAULT_DB)).resolve()}")
"""The app `uvicorn examples.review_service:app` serves; nothing opens until it starts."""


if __name__ == "__main__":
    main()
