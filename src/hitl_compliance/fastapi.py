"""A review service on FastAPI: JSON routes, a Server-Sent Events stream and a reviewer inbox.

Install the `api` extra (`pip install "hitl-compliance[api]"`), then mount
[`create_review_router`][hitl_compliance.fastapi.create_review_router] in your
application. The router only translates HTTP to the coordinator: your
`authenticate` dependency says *who* calls, the coordinator's
[`ApprovalPolicy`][hitl_compliance.ApprovalPolicy] says what they may decide.

Routes (relative to where the router is mounted):

| Route | What |
|---|---|
| `GET /reviews` | pending reviews, oldest first (`rule`, `older_than`, `limit`, `cursor`, `mine`) |
| `GET /reviews/{thread_id}` | one pending review: the draft, findings, votes, deadline |
| `POST /reviews/{thread_id}/approve` | approve, optionally with an edited `response` |
| `POST /reviews/{thread_id}/reject` | reject with a `reason` |
| `GET /reviews/{thread_id}/audit` | the thread's audit records |
| `GET /audit/verify` | verify the tamper-evident ledger |
| `GET /events` | `paused` / `decided` / `expired` as Server-Sent Events |
| `GET /me` | the authenticated reviewer |
| `GET /inbox` | the reviewer inbox page (HTML and vanilla JS, no build step) |

Errors are RFC 7807 problem documents (`application/problem+json`) with
`type`, `title`, `status`, `detail` and `error` (the exception's class name):
404 `ReviewNotFoundError`, 403 `NotAuthorizedError` / `CrossOriginRequestError`,
409 `AlreadyDecidedError` / `StaleReviewError` / `ThreadBusyError`, 415
`UnsupportedMediaTypeError`, 422 `InvalidInputError` / `PolicyViolationError` /
request validation.

Cross-site requests: a `POST` that a browser says another origin's page sent
(`Origin`, `Sec-Fetch-Site`) is a 403 unless that origin is in
`trusted_origins`, and a `POST` body must be declared JSON (415 otherwise), so
a cookie session cannot be used by another site's form or `fetch`. `/inbox`
forbids framing (`frame-ancestors 'none'` and `X-Frame-Options: DENY`, or the
configured `frame_ancestors`).

Example:
    ```python
    events = ReviewEvents()
    coord = HitlCoordinator(graph, reviews=backend.reviews, hooks=events.hooks())
    app = FastAPI()
    app.include_router(
        create_review_router(coord, authenticate=current_reviewer, events=events)
    )
    ```
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints'
# annotations at runtime, and they refer to the factory's local `authenticate`.

import asyncio
import hashlib
import http
import inspect
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    DuplicateVoteError,
    HitlError,
    InvalidDecisionError,
    InvalidInputError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    StaleReviewError,
    ThreadBusyError,
)

try:
    from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from fastapi.routing import APIRoute
    from starlette.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - exercised in a test with fastapi hidden
    raise ConfigurationError(
        'hitl_compliance.fastapi needs FastAPI: pip install "hitl-compliance[api]"'
    ) from exc

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from hitl_compliance._security import (
    CrossOriginRequestError,
    RequestGuard,
    UnsupportedMediaTypeError,
    frame_headers,
)
from hitl_compliance._text import plain_text
from hitl_compliance._validate import check_json
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.hooks import DecidedEvent, ExpiredEvent, Hooks, PausedEvent, ReviewEvent
from hitl_compliance.ledger import LedgerReport
from hitl_compliance.models import AuditRecord, PendingReview, ProcessResult
from hitl_compliance.policy import Reviewer
from hitl_compliance.rules import RuleResult

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApproveRequest",
    "CrossOriginRequestError",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "Problem",
    "RejectRequest",
    "ReviewEventMessage",
    "ReviewEvents",
    "ReviewPage",
    "ReviewerInfo",
    "StoredResponse",
    "Subscription",
    "UnsupportedMediaTypeError",
    "ValidationIssue",
    "create_review_router",
    "problem_response",
    "status_for",
]

logger = logging.getLogger("hitl_compliance.fastapi")

PROBLEM_MEDIA_TYPE = "application/problem+json"
"""The media type of every error response (RFC 7807)."""
_PROBLEM_TYPE = "urn:hitl-compliance:error:"

# -- input hygiene ---------------------------------------------------------------
# PostgreSQL refuses NUL characters in text and jsonb, and no backend can encode a
# lone surrogate as UTF-8: such input would fail deep in a store as a 500. Refuse it
# at the edge with a 422 instead, with the same rules on every backend.


_MAX_METADATA_DEPTH = 16
_MAX_METADATA_BYTES = 16_384


def _metadata(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    if value is None:
        return None
    check_json(value, max_depth=_MAX_METADATA_DEPTH)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > _MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {_MAX_METADATA_BYTES} bytes of JSON")
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
Metadata = Annotated[dict[str, JsonValue] | None, AfterValidator(_metadata)]
ThreadId = Annotated[
    str,
    Path(min_length=1, max_length=512, description="The paused thread's id."),
    AfterValidator(plain_text),
]

# -- request and response bodies -------------------------------------------------


class ApproveRequest(BaseModel):
    """Body of `POST /reviews/{thread_id}/approve`; send `{}` to approve the draft as it is."""

    model_config = ConfigDict(extra="forbid")

    response: PlainText | None = Field(
        default=None,
        max_length=20_000,
        description="An edited reply to deliver instead of the draft; re-checked by the rules.",
    )
    expected: PlainText | None = Field(
        default=None,
        max_length=128,
        description=(
            "The `draft_sha256` or `checkpoint_id` the reviewer saw; a mismatch is a 409 "
            "`StaleReviewError`."
        ),
    )
    metadata: Metadata = Field(
        default=None, description="JSON merged into the thread's metadata and the audit record."
    )


class RejectRequest(BaseModel):
    """Body of `POST /reviews/{thread_id}/reject`."""

    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(
        default="", max_length=5_000, description="Why the draft is rejected; audited."
    )
    expected: PlainText | None = Field(
        default=None,
        max_length=128,
        description="The `draft_sha256` or `checkpoint_id` the reviewer saw.",
    )
    metadata: Metadata = Field(
        default=None, description="JSON merged into the thread's metadata and the audit record."
    )


class ReviewPage(BaseModel):
    """One page of `GET /reviews`: pending reviews, oldest first."""

    items: list[PendingReview]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; `null` when this page is the last.",
    )


class ReviewerInfo(BaseModel):
    """The reviewer `authenticate` resolved for this request."""

    id: str
    roles: list[str]


class ValidationIssue(BaseModel):
    """One failed check of a request (`Problem.errors` of a 422 request validation)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 7807 problem document: what went wrong, as `application/problem+json`.

    `error` is the library's exception class name (`ReviewNotFoundError`, ...) or
    `RequestValidationError` / `HTTPException`; the other optional members carry
    the exception's context.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the problem type.")
    title: str = Field(description="A short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What happened and what to do, for this occurrence.")
    error: str = Field(description="The exception class name.")
    thread_id: str | None = None
    reviewer: str | None = None
    missing_roles: list[str] | None = None
    review_status: str | None = Field(
        default=None, description="`AlreadyDecidedError`: the review's status now."
    )
    expected: str | None = None
    actual: str | None = None
    origin: str | None = Field(
        default=None, description="`CrossOriginRequestError`: the refused `Origin` header."
    )
    content_type: str | None = Field(
        default=None, description="`UnsupportedMediaTypeError`: the refused `Content-Type`."
    )
    findings: list[RuleResult] | None = Field(
        default=None, description="`PolicyViolationError`: the rule results of the edit."
    )
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Request validation: every failed check."
    )


# -- errors -> problems ------------------------------------------------------------

_STATUS: dict[type[HitlError], int] = {
    ReviewNotFoundError: 404,
    NotAuthorizedError: 403,
    CrossOriginRequestError: 403,
    UnsupportedMediaTypeError: 415,
    AlreadyDecidedError: 409,
    StaleReviewError: 409,
    ThreadBusyError: 409,
    InvalidInputError: 422,
    PolicyViolationError: 422,
}

_TITLES: dict[type[HitlError], str] = {
    ReviewNotFoundError: "Review not found",
    NotAuthorizedError: "Not authorized to decide this review",
    CrossOriginRequestError: "Cross-origin request refused",
    UnsupportedMediaTypeError: "Body is not JSON",
    AlreadyDecidedError: "Review already decided",
    DuplicateVoteError: "Reviewer already voted",
    StaleReviewError: "Review changed since it was loaded",
    ThreadBusyError: "Thread busy",
    InvalidInputError: "Invalid input",
    InvalidDecisionError: "Invalid decision",
    PolicyViolationError: "Edited reply breaks a block rule",
}


def status_for(exc: HitlError) -> int:
    """The HTTP status a library error maps to (500 for errors no client can fix)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _title_for(exc: HitlError, status: int) -> str:
    for cls in type(exc).__mro__:
        if cls in _TITLES:
            return _TITLES[cls]
    return http.HTTPStatus(status).phrase


def _problem(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    content = {k: v for k, v in body.items() if v is not None}
    return JSONResponse(
        content=content, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def problem_response(exc: HitlError) -> Response:
    """The problem response for a library error, with its context as extra members."""
    status = status_for(exc)
    name = type(exc).__name__
    if status == 500:
        # Not the client's fault (a misconfigured coordinator, a thread changed outside
        # it): log the details, tell the client only that it happened.
        logger.error("review service error: %s", exc, exc_info=exc)
        detail = "The review service failed; the server log has the details."
    else:
        detail = exc.message
    body: dict[str, Any] = {
        "type": _PROBLEM_TYPE + name,
        "title": _title_for(exc, status),
        "status": status,
        "detail": detail,
        "error": name,
        "thread_id": exc.thread_id,
    }
    if isinstance(exc, NotAuthorizedError):
        body["reviewer"] = exc.reviewer
        body["missing_roles"] = sorted(exc.missing_roles)
    if isinstance(exc, AlreadyDecidedError):
        body["review_status"] = exc.status
    if isinstance(exc, StaleReviewError):
        body["expected"] = exc.expected
        body["actual"] = exc.actual
    if isinstance(exc, CrossOriginRequestError):
        body["origin"] = exc.origin
    headers: dict[str, str] = {}
    if isinstance(exc, UnsupportedMediaTypeError):
        body["content_type"] = exc.content_type
        headers["Accept"] = "application/json"  # RFC 9110: what a 415 would have accepted
    if isinstance(exc, PolicyViolationError):
        body["findings"] = [f.to_dict() for f in exc.findings if isinstance(f, RuleResult)]
    return _problem(status, body, headers=headers or None)


def _http_problem(exc: HTTPException) -> Response:
    status = exc.status_code
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    body = {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
    body["error"] = "HTTPException"
    return _problem(status, body, headers=exc.headers)


def _validation_problem(exc: RequestValidationError) -> Response:
    issues = []
    for error in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        issues.append({"loc": loc, "msg": str(error.get("msg", "")), "type": str(error["type"])})
    summary = "; ".join(
        f"{'.'.join(str(p) for p in issue['loc'])}: {issue['msg']}" for issue in issues[:5]
    )
    body = {
        "type": _PROBLEM_TYPE + "RequestValidationError",
        "title": "Invalid request",
        "status": 422,
        "detail": f"The request failed validation: {summary}.",
        "error": "RequestValidationError",
        "errors": issues,
    }
    return _problem(422, body)


class _ProblemRoute(APIRoute):
    """Turns library errors, HTTP errors and request validation into problem responses.

    An `APIRouter` cannot register exception handlers (only an application can),
    so the router's routes convert errors themselves: mounting the router is enough.
    A router's subclass sets `guard`, whose origin and media-type checks run
    first: before FastAPI parses the body (which FastAPI versions do
    differently) and before `authenticate`.
    """

    guard: RequestGuard | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guard = self.guard

        async def handle(request: Request) -> Response:
            if guard is not None:
                refused = await guard.refusal(request)
                if refused is not None:
                    return problem_response(refused)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_problem(exc)
            except HitlError as exc:
                return problem_response(exc)
            except HTTPException as exc:
                return _http_problem(exc)

        return handle


def _problems(*statuses: int, model: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for problem statuses.

    With `model`, FastAPI also lists the schema under the route's own media type
    (harmless for JSON routes); the event stream route passes `model=False` and
    refers to the `Problem` schema the other routes register.
    """
    described = {
        400: "The body under a JSON `Content-Type` cannot be read as text (not UTF-8).",
        401: "Not authenticated: `authenticate` refused the request.",
        403: (
            "The approval policy (or four-eyes) forbids this reviewer, audited as `denied`; "
            "or a browser sent the request from another origin (`CrossOriginRequestError`)."
        ),
        404: "No pending review for this thread.",
        409: "Already decided, stale (`expected` mismatch) or the thread is busy.",
        415: "The body is not declared JSON (`Content-Type: application/json`).",
        422: "Invalid input, or an edited reply breaks a `block` rule.",
    }
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": described[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if model:
            response["model"] = Problem
        responses[status] = response
    return responses


# -- events ------------------------------------------------------------------------


class ReviewEventMessage(BaseModel):
    """What `GET /events` sends as the `data:` of one event (the event name is `type`)."""

    type: Literal["paused", "decided", "expired"]
    thread_id: str
    review_id: str | None = None
    checkpoint_id: str | None = None
    actor: str
    at: datetime
    seq: int = Field(description="The audit row's sequence number; also the SSE `id`.")
    approved: bool | None = Field(
        default=None, description="`decided`/`expired`: whether a reply was delivered."
    )
    action: str | None = Field(default=None, description="`expired`: reject, approve_draft...")

    @classmethod
    def from_event(cls, event: ReviewEvent) -> "ReviewEventMessage":
        """The message for one hook event."""
        kind: Literal["paused", "decided", "expired"]
        approved: bool | None = None
        action: str | None = None
        if isinstance(event, PausedEvent):
            kind = "paused"
        elif isinstance(event, DecidedEvent):
            kind, approved = "decided", event.approved
        elif isinstance(event, ExpiredEvent):
            kind, approved, action = "expired", event.approved, event.action
        else:
            raise TypeError(f"not a review event: {type(event).__name__}")
        return cls(
            type=kind,
            thread_id=event.thread_id,
            review_id=event.review_id,
            checkpoint_id=event.checkpoint_id,
            actor=event.actor,
            at=event.at,
            seq=event.seq,
            approved=approved,
            action=action,
        )

    def to_sse(self) -> str:
        """The message as one Server-Sent Events frame."""
        return f"id: {self.seq}\nevent: {self.type}\ndata: {self.model_dump_json()}\n\n"


class Subscription:
    """One listener's queue of [`ReviewEventMessage`][hitl_compliance.fastapi.ReviewEventMessage]s.

    Bounded: when a slow listener's queue is full the oldest message is dropped
    and `dropped` counts it (the SSE stream then tells the client to `resync`).
    Use it as an async context manager, and `await get()` (or `async for`).
    """

    def __init__(self, owner: "ReviewEvents", max_queue: int) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[ReviewEventMessage | None] = asyncio.Queue(max_queue)
        self.dropped = 0
        self.closed = False

    def offer(self, message: ReviewEventMessage | None) -> None:
        """Queue `message` (None ends the subscription); safe from any thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(message)
            return
        try:
            self._loop.call_soon_threadsafe(self._put, message)
        except RuntimeError:  # the listener's loop is closed: nobody is listening
            self.close()

    def end(self) -> None:
        """End the subscription from anywhere (another thread, a signal handler)."""
        try:
            self._loop.call_soon_threadsafe(self._put, None)
        except RuntimeError:  # the listener's loop is closed
            self.close()

    def _put(self, message: ReviewEventMessage | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> ReviewEventMessage | None:
        """The next message; None once the broadcaster closed.

        Raises:
            TimeoutError: nothing arrived within `timeout` seconds.
        """
        if self.closed and self._queue.empty():
            return None
        try:
            message = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no review event within {timeout} s") from None
        if message is None:
            self.close()
        return message

    def close(self) -> None:
        """Stop receiving messages."""
        self.closed = True
        self._owner._unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[ReviewEventMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ReviewEventMessage]:
        while (message := await self.get()) is not None:
            yield message


class ReviewEvents:
    """An in-process broadcaster of review events, fed by the coordinator's hooks.

    The coordinator takes its hooks when it is built, so create this first and
    pass its [`hooks()`][hitl_compliance.fastapi.ReviewEvents.hooks]:

    ```python
    events = ReviewEvents()
    coord = HitlCoordinator(graph, reviews=backend.reviews, hooks=events.hooks())
    router = create_review_router(coord, authenticate=current_reviewer, events=events)
    ```

    Hooks fire in the process that made the change, after it is durable. With
    several replicas, each replica's listeners hear only that replica's events:
    a client that must see every change should also re-read `GET /reviews`
    periodically (the inbox does on every reconnect), or bridge the events
    through a shared channel (say, PostgreSQL `LISTEN/NOTIFY`) by calling
    [`publish`][hitl_compliance.fastapi.ReviewEvents.publish] from it.

    Args:
        max_queue: Messages kept per listener before the oldest is dropped.
    """

    def __init__(self, *, max_queue: int = 256) -> None:
        if max_queue < 1:
            raise ConfigurationError("max_queue must be at least 1.")
        self._max_queue = max_queue
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._closed = False

    def hooks(self, also: Hooks | None = None) -> Hooks:
        """Hooks that publish every paused / decided / expired event.

        Args:
            also: The application's own hooks, called after publishing (a hook
                that raises is retried by `recover()`, as usual).
        """
        if also is not None and not isinstance(also, Hooks):
            raise ConfigurationError("also must be a hitl_compliance.Hooks instance.")

        def chain(name: str) -> Callable[[Any], Awaitable[None]]:
            own: Callable[[Any], Awaitable[None] | None] | None = getattr(also, name, None)

            async def hook(event: ReviewEvent) -> None:
                self.publish(ReviewEventMessage.from_event(event))
                if own is not None:
                    outcome = own(event)
                    if inspect.isawaitable(outcome):
                        await outcome

            return hook

        return Hooks(
            on_paused=chain("on_paused"),
            on_decided=chain("on_decided"),
            on_expired=chain("on_expired"),
        )

    def publish(self, message: ReviewEventMessage) -> None:
        """Send `message` to every current listener (thread-safe, never blocks)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(message)

    def subscribe(self) -> Subscription:
        """Start listening (call from the listener's event loop); close it when done."""
        subscription = Subscription(self, self._max_queue)
        with self._lock:
            if self._closed:
                subscription.closed = True
            else:
                self._subscribers.add(subscription)
        return subscription

    @property
    def listeners(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (their SSE streams finish); later ones end at once.

        Call it when the server is asked to stop, so open event streams do not
        hold up a graceful shutdown. Safe from any thread and from a signal
        handler: the end is handed to each listener's loop, never applied here.
        """
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.end()

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)


class _EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


async def _event_stream(subscription: Subscription, heartbeat: float) -> AsyncIterator[str]:
    """SSE frames for `subscription` until it closes or the client goes away."""
    try:
        # `retry` sets the browser's reconnect delay; the comment opens the stream at once.
        yield "retry: 3000\n: connected\n\n"
        while True:
            dropped = subscription.dropped
            try:
                message = await subscription.get(timeout=heartbeat)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if subscription.dropped != dropped:
                yield 'event: resync\ndata: {"reason": "events were dropped"}\n\n'
            if message is None:
                return
            yield message.to_sse()
    finally:
        subscription.close()


# -- idempotency -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to an `Idempotency-Key`, replayed for repeats of the request."""

    status_code: int
    body: bytes
    media_type: str
    fingerprint: str


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where first responses to `Idempotency-Key`s are kept.

    Keys are opaque strings (a hash of reviewer, path and header value). The
    in-memory default serves one process; several replicas behind a load
    balancer need a shared store (Redis, a database table) implementing these
    two methods, or a retry that lands on another replica re-runs the decision
    (which then fails with 409 `AlreadyDecidedError` instead of replaying).
    """

    async def get(self, key: str) -> StoredResponse | None:
        """The stored response for `key`, or None."""
        ...

    async def put(self, key: str, response: StoredResponse) -> None:
        """Remember `response` for `key`."""
        ...


class InMemoryIdempotencyStore:
    """A bounded, least-recently-used, in-memory idempotency store for one process.

    Args:
        max_entries: How many keys to keep; the least recently used goes first.
        ttl: How long a key is kept (None: until evicted).
    """

    def __init__(self, *, max_entries: int = 10_000, ttl: timedelta | None = timedelta(hours=24)):
        if max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1.")
        self._max = max_entries
        self._ttl = None if ttl is None else ttl.total_seconds()
        self._entries: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> StoredResponse | None:
        """The stored response for `key`, unless it expired or was evicted."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, response = entry
        if self._ttl is not None and time.monotonic() - stored_at > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return response

    async def put(self, key: str, response: StoredResponse) -> None:
        """Remember `response`, evicting the least recently used key when full."""
        self._entries[key] = (time.monotonic(), response)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


@dataclass(slots=True)
class _Inflight:
    """The lock serialising one idempotency key's requests, and how many hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _replayable(status: int, body: bytes) -> bool:
    """Whether a response is the final answer to its request (so a retry gets it again).

    Server errors and `ThreadBusyError` are transient: a retry should run again.
    """
    if status >= 500:
        return False
    return not (status == 409 and b'"error":"ThreadBusyError"' in body)


# -- the router --------------------------------------------------------------------

_DATETIME = TypeAdapter(datetime)
_MAX_AGE_S = 100 * 366 * 24 * 3600  # older_than beyond a century is a typo, not a query


def _parse_older_than(value: str) -> timedelta | datetime:
    """`older_than`: seconds (a number) or an ISO-8601 datetime with a timezone."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_AGE_S:
            raise InvalidInputError(
                f"older_than must be between 0 and {_MAX_AGE_S} seconds, got {value!r}."
            )
        return timedelta(seconds=seconds)
    try:
        parsed = _DATETIME.validate_python(value)
    except ValueError:
        raise InvalidInputError(
            f"older_than must be a number of seconds or an ISO-8601 datetime, got {value!r}."
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"older_than {value!r} has no timezone; add one (Z or +00:00).")
    return parsed.astimezone(timezone.utc)


def _fingerprint(body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _inbox_html() -> str:
    return resources.files("hitl_compliance").joinpath("_inbox.html").read_text(encoding="utf-8")


def create_review_router(
    coordinator: HitlCoordinator | Callable[[], HitlCoordinator],
    *,
    authenticate: Callable[..., Any],
    events: ReviewEvents | None = None,
    idempotency: IdempotencyStore | None = None,
    inbox: bool = True,
    heartbeat: float = 15.0,
    tags: Sequence[str] = ("reviews",),
    trusted_origins: Sequence[str] = (),
    frame_ancestors: Sequence[str] = ("'none'",),
) -> APIRouter:
    """An `APIRouter` serving the review API, the event stream and the inbox page.

    Args:
        coordinator: The coordinator to serve, or a zero-argument callable returning
            it (for applications that open their backend in a lifespan handler).
        authenticate: A FastAPI dependency returning the calling
            [`Reviewer`][hitl_compliance.Reviewer] (raise `HTTPException(401)` to
            refuse). Every route but `/inbox` depends on it; the coordinator's
            policy then decides what the reviewer may decide.
        events: The [`ReviewEvents`][hitl_compliance.fastapi.ReviewEvents] whose
            `hooks()` the coordinator was built with; without it there is no
            `GET /events` and the inbox polls instead.
        idempotency: Where `Idempotency-Key` responses are kept (default: a bounded
            in-memory LRU; use a shared store with several replicas).
        inbox: Serve the reviewer inbox page at `GET /inbox`. The page is a static
            shell with no data, so it is served without `authenticate`; its
            requests forward the page's own query string (for a demo `?reviewer=`)
            and carry the browser's cookies.
        heartbeat: Seconds between SSE keep-alive comments.
        tags: OpenAPI tags of the routes.
        trusted_origins: Origins (`https://portal.bank.example`) besides the
            service's own whose pages may send decisions. A `POST` that a browser
            says came from any other origin (`Origin`, `Sec-Fetch-Site`) is a 403
            [`CrossOriginRequestError`][hitl_compliance.fastapi.CrossOriginRequestError]
            before `authenticate` runs, so a cookie session cannot be used by
            another site. Clients that are not browsers send neither header and
            are not affected.
        frame_ancestors: Who may frame `/inbox`, as CSP `frame-ancestors` sources:
            nobody by default (`'none'`, plus `X-Frame-Options: DENY`), `'self'`, or
            origins of your own portal.

    Raises:
        ConfigurationError: an argument cannot work (say, a `trusted_origins`
            entry that is not an origin, or a `frame_ancestors` entry that is not
            one CSP source).

    Example:
        ```python
        def current_reviewer(x_reviewer: Annotated[str, Header()]) -> Reviewer:
            return Reviewer(x_reviewer, roles=frozenset(ROLES.get(x_reviewer, ())))

        app.include_router(
            create_review_router(coord, authenticate=current_reviewer, events=events),
            prefix="/compliance",
        )
        ```
    """
    if not callable(authenticate):
        raise ConfigurationError("authenticate must be a FastAPI dependency (a callable).")
    if events is not None and not isinstance(events, ReviewEvents):
        raise ConfigurationError("events must be a ReviewEvents instance.")
    if idempotency is not None and not isinstance(idempotency, IdempotencyStore):
        raise ConfigurationError("idempotency must implement IdempotencyStore (get / put).")
    if not isinstance(coordinator, HitlCoordinator) and not callable(coordinator):
        raise ConfigurationError(
            "coordinator must be a HitlCoordinator or a callable returning one."
        )
    if heartbeat <= 0:
        raise ConfigurationError("heartbeat must be positive.")
    cache: IdempotencyStore = idempotency if idempotency is not None else InMemoryIdempotencyStore()
    inflight: dict[str, _Inflight] = {}
    page = _inbox_html() if inbox else ""
    request_guard = RequestGuard.build(trusted_origins)
    page_headers = {"Cache-Control": "no-store", **frame_headers(frame_ancestors)}

    class _GuardedRoute(_ProblemRoute):
        guard = request_guard

    def coord() -> HitlCoordinator:
        found = coordinator if isinstance(coordinator, HitlCoordinator) else coordinator()
        if not isinstance(found, HitlCoordinator):
            raise ConfigurationError(
                f"The coordinator callable returned {type(found).__name__}, not a HitlCoordinator."
            )
        return found

    async def reviewer_of(who: Annotated[Any, Depends(authenticate)]) -> Reviewer:
        if not isinstance(who, Reviewer):
            raise ConfigurationError(
                f"authenticate returned {type(who).__name__}; it must return a Reviewer."
            )
        return who

    # Type aliases, named like types; local because they close over `authenticate`.
    Who = Annotated[Reviewer, Depends(reviewer_of)]  # noqa: N806
    IdempotencyKey = Annotated[  # noqa: N806
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Repeat a POST with the same key to get the first response again.",
        ),
    ]

    router = APIRouter(route_class=_GuardedRoute, tags=list(tags))

    async def decide_once(
        request: Request,
        who: Reviewer,
        key: str | None,
        body: BaseModel,
        decide: Callable[[], Awaitable[ProcessResult]],
    ) -> Response:
        """Run `decide` once per (reviewer, path, Idempotency-Key); replay its response."""
        if key is None:
            return await run_decision(decide)
        scope = "\x00".join((who.id, request.url.path, key))
        cache_key = hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()
        fingerprint = _fingerprint(body)
        # One request per key at a time in this process: a concurrent repeat waits
        # for the first and then replays it rather than racing it.
        entry = inflight.setdefault(cache_key, _Inflight())
        entry.users += 1
        try:
            async with entry.lock:
                stored = await cache.get(cache_key)
                if stored is None:
                    response = await run_decision(decide)
                    body_bytes = bytes(response.body)
                    if _replayable(response.status_code, body_bytes):
                        stored = StoredResponse(
                            status_code=response.status_code,
                            body=body_bytes,
                            media_type=response.media_type or "application/json",
                            fingerprint=fingerprint,
                        )
                        await cache.put(cache_key, stored)
                    return response
        finally:
            entry.users -= 1
            if entry.users == 0:
                del inflight[cache_key]
        if stored.fingerprint != fingerprint:
            return _problem(
                422,
                {
                    "type": _PROBLEM_TYPE + "IdempotencyKeyReused",
                    "title": "Idempotency-Key reused",
                    "status": 422,
                    "detail": (
                        "This Idempotency-Key was used with a different request body; "
                        "use a new key for a new request."
                    ),
                    "error": "IdempotencyKeyReused",
                },
            )
        return Response(
            content=stored.body,
            status_code=stored.status_code,
            media_type=stored.media_type,
            headers={"Idempotent-Replayed": "true"},
        )

    async def run_decision(decide: Callable[[], Awaitable[ProcessResult]]) -> Response:
        try:
            result = await decide()
        except HitlError as exc:
            return problem_response(exc)
        return Response(content=result.model_dump_json(), media_type="application/json")

    @router.get(
        "/me",
        operation_id="whoami",
        summary="The authenticated reviewer",
        response_model=ReviewerInfo,
        responses=_problems(401, 422),
    )
    async def whoami(who: Who) -> ReviewerInfo:
        return ReviewerInfo(id=who.id, roles=sorted(who.roles))

    @router.get(
        "/reviews",
        operation_id="list_reviews",
        summary="Pending reviews, oldest first",
        response_model=ReviewPage,
        responses=_problems(401, 422),
    )
    async def list_reviews(
        who: Who,
        rule: Annotated[
            PlainText | None,
            Query(min_length=1, max_length=256, description="Only reviews with this rule."),
        ] = None,
        older_than: Annotated[
            PlainText | None,
            Query(
                max_length=64,
                description=(
                    "Only reviews requested longer ago than this many seconds, or before "
                    "this ISO-8601 datetime (with a timezone)."
                ),
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
        cursor: Annotated[
            PlainText | None,
            Query(max_length=600, description="`next_cursor` of the previous page."),
        ] = None,
        mine: Annotated[bool, Query(description="Only reviews the caller may decide now.")] = False,
    ) -> ReviewPage:
        # One more than asked tells whether another page exists.
        items = await coord().pending(
            rule=rule,
            reviewer=who if mine else None,
            older_than=None if older_than is None else _parse_older_than(older_than),
            limit=limit + 1,
            cursor=cursor,
        )
        more = len(items) > limit
        items = items[:limit]
        return ReviewPage(items=items, next_cursor=items[-1].cursor if more else None)

    @router.get(
        "/reviews/{thread_id}",
        operation_id="get_review",
        summary="One pending review: the draft and what the reviewer needs to decide it",
        response_model=PendingReview,
        responses=_problems(401, 404, 422),
    )
    async def get_review(who: Who, thread_id: ThreadId) -> PendingReview:
        record = await coord().reviews.get_review(thread_id)
        if record is None or record.status != "pending":
            state = "has no review" if record is None else f"is {record.status}, not pending"
            raise ReviewNotFoundError(
                f"Thread {thread_id!r} {state}; GET /reviews lists what awaits a decision.",
                thread_id=thread_id,
            )
        return record.to_pending()

    @router.post(
        "/reviews/{thread_id}/approve",
        operation_id="approve_review",
        summary="Approve the draft, or an edited reply",
        response_model=ProcessResult,
        responses=_problems(400, 401, 403, 404, 409, 415, 422),
    )
    async def approve(
        request: Request,
        who: Who,
        thread_id: ThreadId,
        body: Annotated[ApproveRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        async def decide() -> ProcessResult:
            return await coord().approve(
                thread_id,
                reviewer=who,
                response=body.response,
                metadata=body.metadata,
                expected=body.expected,
            )

        return await decide_once(request, who, idempotency_key, body, decide)

    @router.post(
        "/reviews/{thread_id}/reject",
        operation_id="reject_review",
        summary="Reject the draft",
        response_model=ProcessResult,
        responses=_problems(400, 401, 403, 404, 409, 415, 422),
    )
    async def reject(
        request: Request,
        who: Who,
        thread_id: ThreadId,
        body: Annotated[RejectRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        async def decide() -> ProcessResult:
            return await coord().reject(
                thread_id,
                reviewer=who,
                reason=body.reason,
                metadata=body.metadata,
                expected=body.expected,
            )

        return await decide_once(request, who, idempotency_key, body, decide)

    @router.get(
        "/reviews/{thread_id}/audit",
        operation_id="review_audit",
        summary="The thread's audit records, oldest first",
        response_model=list[AuditRecord],
        responses=_problems(401, 422),
    )
    async def review_audit(who: Who, thread_id: ThreadId) -> list[AuditRecord]:
        return await coord().audit_log(thread_id)

    @router.get(
        "/audit/verify",
        operation_id="verify_audit",
        summary="Verify the tamper-evident audit ledger",
        response_model=LedgerReport,
        responses=_problems(401, 422),
    )
    async def verify_audit(
        who: Who,
        thread_id: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=512,
                description="Verify one thread's chain (default: the whole store).",
            ),
        ] = None,
    ) -> LedgerReport:
        return await coord().verify_audit(thread_id)

    if events is not None:
        broadcaster = events

        @router.get(
            "/events",
            operation_id="review_events",
            summary="Review events as Server-Sent Events",
            response_class=_EventStreamResponse,
            responses={
                200: {
                    "description": (
                        "A `text/event-stream` of `paused`, `decided` and `expired` events "
                        "(`data` is a ReviewEventMessage, `id` its audit seq), `resync` "
                        "when events were dropped, and keep-alive comments."
                    ),
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_problems(401, 422, model=False),
            },
        )
        async def review_events(who: Who) -> _EventStreamResponse:
            # Subscribed before the response starts: nothing after this call is missed.
            subscription = broadcaster.subscribe()
            return _EventStreamResponse(
                _event_stream(subscription, heartbeat),
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )

    if inbox:

        @router.get(
            "/inbox",
            operation_id="inbox",
            summary="The reviewer inbox page",
            response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
        )
        async def inbox_page() -> HTMLResponse:
            return HTMLResponse(page, headers=page_headers)

    return router
