"""Fixtures for the review service: a coordinator on each backend behind the FastAPI router.

The coordinator runs the FCA rules and SM&CR policy over an *echo* drafter (the
draft is the customer message), so each test writes exactly the draft it needs.
Every test gets its own review store (a fresh SQLite file, or its own table
prefix in the session's PostgreSQL schema) and its own thread ids.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hitl_compliance import (
    ApprovalPolicy,
    ComplianceState,
    HitlCoordinator,
    InputLimits,
    QaSampling,
    ReasonPolicy,
    Reviewer,
    Routing,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._fca import (
    COMPLIANCE_OFFICER,
    REJECTION_MESSAGE,
    SLA,
    SMCR_APPROVER,
    fca_policy,
    fca_rules,
)
from hitl_compliance.backends import Backend
from hitl_compliance.fastapi import IdempotencyStore, ReviewEvents, create_review_router
from tests.helpers import FakeClock

# The PostgreSQL schema fixtures of the integration suite, shared rather than copied.
from tests.integration.conftest import postgres_base_dsn, postgres_dsn

__all__ = ["postgres_base_dsn", "postgres_dsn"]  # re-exported so pytest finds them here

ADVICE = "You should invest in the Global Equity Fund: guaranteed returns of 8% a year."
"""Personal recommendation (high) plus a misleading promotion: only `sam` may decide it."""

PROMO = "Our Fixed Rate Saver is risk-free."
"""A misleading promotion alone: `sam` or `cora` may decide it."""

CLEAN = "Our branches open at 9am."
"""Passes every rule: delivered without a review."""

LEAK = "Your joint account is sort code 20-00-00, account 12345678."
"""Breaks the `block` rule `account_details`."""

ROLES: dict[str, frozenset[str]] = {
    "sam": frozenset({SMCR_APPROVER}),
    "cora": frozenset({COMPLIANCE_OFFICER}),
    "dan": frozenset({SMCR_APPROVER}),
    "ops": frozenset(),
}
"""The test reviewers: a bearer token is the reviewer id."""

_bearer = HTTPBearer(auto_error=False)


def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Reviewer:
    """Test authentication: `Authorization: Bearer <reviewer id>` of a known reviewer."""
    if credentials is None or credentials.credentials not in ROLES:
        raise HTTPException(401, "Unknown reviewer.", headers={"WWW-Authenticate": "Bearer"})
    who = credentials.credentials
    return Reviewer(who, roles=ROLES[who])


def as_(reviewer: str) -> dict[str, str]:
    """Request headers authenticating as `reviewer`."""
    return {"Authorization": f"Bearer {reviewer}"}


def who(reviewer: str) -> Reviewer:
    """The test reviewer `reviewer` with its roles, for calling the coordinator directly."""
    return Reviewer(reviewer, roles=ROLES[reviewer])


def echo(state: ComplianceState) -> str:
    """The drafter: the draft is the customer message."""
    return state.customer_message


def build_coordinator(
    backend: Backend,
    events: ReviewEvents,
    clock: FakeClock,
    *,
    policy: ApprovalPolicy | None = None,
    reason_policy: ReasonPolicy | None = None,
    routing: Routing | None = None,
    qa_sampling: QaSampling | None = None,
    limits: InputLimits | None = None,
) -> HitlCoordinator:
    """The FCA rules and policy over the echo drafter on `backend`, publishing to `events`."""
    graph = build_compliance_graph(
        echo,
        rules=fca_rules(),
        checkpointer=backend.checkpointer,
        rejection_message=REJECTION_MESSAGE,
    )
    return HitlCoordinator(
        graph,
        reviews=backend.reviews,
        policy=policy or fca_policy(),
        sla=SLA,
        clock=clock,
        hooks=events.hooks(),
        reason_policy=reason_policy,
        routing=routing,
        qa_sampling=qa_sampling,
        limits=limits,
    )


@dataclass
class Service:
    """One test's review service: coordinator, event broadcaster, app and HTTP client."""

    backend: Backend
    coord: HitlCoordinator
    events: ReviewEvents
    app: FastAPI
    client: httpx.AsyncClient
    clock: FakeClock
    threads: list[str] = field(default_factory=list)

    async def pause(self, draft: str = ADVICE) -> str:
        """Process a customer message whose draft pauses; return the new thread id.

        The clock then moves on a second, so reviews list in the order they paused.
        """
        thread_id = f"api-{uuid.uuid4().hex[:10]}"
        result = await self.coord.process(thread_id, draft)
        assert result.status == "paused", result
        self.threads.append(thread_id)
        self.clock.advance(seconds=1)
        return thread_id


def make_app(
    coordinator: HitlCoordinator | Callable[[], HitlCoordinator],
    events: ReviewEvents | None,
    **options: Any,
) -> FastAPI:
    """A FastAPI app with the review router mounted at the root."""
    app = FastAPI(title="review service under test")
    app.include_router(
        create_review_router(coordinator, authenticate=authenticate, events=events, **options)
    )
    return app


BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend's URL: memory, a fresh SQLite file, the session's PostgreSQL schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    """The opened backend, with review tables of this test's own."""
    async with open_backend(backend_url, table_prefix=f"t{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


ServiceFactory = Callable[..., Service]


def new_service(
    backend: Backend,
    clock: FakeClock,
    *,
    policy: ApprovalPolicy | None = None,
    idempotency: IdempotencyStore | None = None,
    reason_policy: ReasonPolicy | None = None,
    routing: Routing | None = None,
    qa_sampling: QaSampling | None = None,
    limits: InputLimits | None = None,
    **router_options: Any,
) -> Service:
    """A coordinator on `backend` behind the router, with an httpx client over ASGI.

    `router_options` go to `create_review_router` (say, `trusted_origins=`).
    """
    events = ReviewEvents()
    coord = build_coordinator(
        backend,
        events,
        clock,
        policy=policy,
        reason_policy=reason_policy,
        routing=routing,
        qa_sampling=qa_sampling,
        limits=limits,
    )
    app = make_app(coord, events, idempotency=idempotency, heartbeat=0.2, **router_options)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    return Service(backend, coord, events, app, client, clock)


@pytest.fixture
async def service_factory(
    backend: Backend, clock: FakeClock
) -> AsyncIterator[Callable[..., Service]]:
    """Build services on this test's backend (say, with another policy or idempotency store)."""
    built: list[Service] = []

    def build(**options: Any) -> Service:
        built.append(new_service(backend, clock, **options))
        return built[-1]

    yield build
    for service in built:
        await service.client.aclose()


@pytest.fixture
def service(service_factory: Callable[..., Service]) -> Service:
    """The review service on each backend, with the FCA policy."""
    return service_factory()


@pytest.fixture
async def memory_service(clock: FakeClock) -> AsyncIterator[Service]:
    """The review service on the memory backend only, for what no backend can change.

    (Request parsing and error mapping happen before any store is touched.)
    """
    async with open_backend("memory://") as backend:
        service = new_service(backend, clock)
        yield service
        await service.client.aclose()


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Events frame."""

    event: str
    data: str
    id: str | None


class SseStream:
    """Reads a streaming response straight from the ASGI app.

    httpx's `ASGITransport` returns only once the app's response has ended, and
    an event stream never ends, so this drives the app the way a server does:
    one request message, then body chunks as the app sends them, then a
    disconnect when the test is done.
    """

    def __init__(self, app: FastAPI, path: str, headers: dict[str, str]) -> None:
        self.app = app
        self.path = path
        self.headers = headers
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self._messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._disconnected = asyncio.Event()
        self._buffer = ""
        self._task: asyncio.Task[None] | None = None
        self.comments: list[str] = []

    async def __aenter__(self) -> SseStream:
        path, _, query = self.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self.headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("api", 80),
        }
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await self._messages.put(message)

        self._task = asyncio.create_task(self.app(scope, receive, send))
        start = await asyncio.wait_for(self._messages.get(), 5)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return self

    async def body(self, timeout: float = 5) -> str:
        """The whole body of a response that ends (an error response)."""
        chunks = []
        while True:
            message = await asyncio.wait_for(self._messages.get(), timeout)
            chunks.append(message.get("body", b"").decode())
            if not message.get("more_body", False):
                return "".join(chunks)

    async def next_event(self, timeout: float = 5) -> SseEvent:
        """The next event frame (comments are collected in `comments`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while "\n\n" in self._buffer:
                frame, self._buffer = self._buffer.split("\n\n", 1)
                event = self._parse(frame)
                if event is not None:
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no SSE event within {timeout} s")
            try:
                message = await asyncio.wait_for(self._messages.get(), remaining)
            except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
                raise TimeoutError(f"no SSE event within {timeout} s") from None
            if not message.get("more_body", False) and not message.get("body"):
                raise EOFError("the event stream ended")
            self._buffer += message.get("body", b"").decode()

    async def events(self, count: int, timeout: float = 5) -> list[SseEvent]:
        """The next `count` event frames."""
        return [await self.next_event(timeout) for _ in range(count)]

    def _parse(self, frame: str) -> SseEvent | None:
        fields: dict[str, str] = {}
        for line in frame.splitlines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" not in fields:
            return None
        return SseEvent(fields.get("event", "message"), fields["data"], fields.get("id"))

    async def __aexit__(self, *exc_info: object) -> None:
        self._disconnected.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)
