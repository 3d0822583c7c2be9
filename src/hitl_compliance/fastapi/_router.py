"""The review router: each route translates HTTP to one public `HitlCoordinator` call.

[`create_review_router`][hitl_compliance.fastapi.create_review_router] checks its
arguments, then adds four groups of routes: the JSON review routes (reading
and deciding reviews, the audit trail), the second-line QA routes, the event
stream, and the inbox page.
Nothing here decides anything: who may decide what is the coordinator's policy,
what a request may contain is `_bodies`, how errors look is `_problems`, how
a repeated `Idempotency-Key` is answered is `_idempotency`.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints'
# annotations at runtime, and they refer to the builders' local `Who`.

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor

from hitl_compliance import _decision_kinds
from hitl_compliance._decision_kinds import DecisionKind
from hitl_compliance._oversight_html import charts_js, plotly_js
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    HitlError,
    InvalidInputError,
    ReviewNotFoundError,
)
from hitl_compliance.fastapi._bodies import (
    AssignmentInfo,
    AssignRequest,
    PlainText,
    QaReviewId,
    QaRuleCountInfo,
    QaVerdictRequest,
    ReasonCodeInfo,
    ReasonCountInfo,
    ReasonTaxonomy,
    ReviewerInfo,
    ReviewPage,
    StopInfo,
    StopRequest,
    ThreadId,
    parse_older_than,
    parse_time,
)
from hitl_compliance.fastapi._events import EventStreamResponse, ReviewEvents, event_stream
from hitl_compliance.fastapi._idempotency import (
    IdempotencyStore,
    IdempotentRunner,
    InMemoryIdempotencyStore,
    Replay,
    fingerprint,
    scope_key,
)
from hitl_compliance.fastapi._inbox import inbox_headers, inbox_html
from hitl_compliance.fastapi._problems import (
    ProblemRoute,
    key_reused_problem,
    problem_response,
    problems,
)
from hitl_compliance.fastapi._security import RequestGuard
from hitl_compliance.ledger import LedgerReport
from hitl_compliance.models import AuditRecord, PendingReview, ProcessResult
from hitl_compliance.oversight import OversightReport
from hitl_compliance.policy import Reviewer
from hitl_compliance.qa import QaReview

__all__ = ["create_review_router", "decide_once", "pending_review"]

_LATER_FIELDS = ("tool_args", "reason_code", "reason")
"""Body fields added after the first release: out of a replay's fingerprint while unset."""


class _QaReviewIdConvertor(Convertor[str]):
    """A QA review id in `GET /qa/{id}`: any text (a thread id may hold `/`) not ending `/verdict`.

    With Starlette's `path` convertor the GET route would also match
    `/qa/{id}/verdict` and answer its other methods with `405 Allow: GET`,
    hiding the POST. A QA review id ends in `:<turn>`, never in `/verdict`.
    `[\\s\\S]`, not `.`: a decoded path may hold a newline, and the route should
    answer it (a 404 or 422 problem), not miss it.
    """

    regex = r"(?:[^/]|/(?!verdict\Z))+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _QaVerdictIdConvertor(_QaReviewIdConvertor):
    """A QA review id in `POST /qa/{id}/verdict`: any text, newlines and `/` included."""

    regex = r"[\s\S]+"


# Starlette keeps convertors in one registry; the names are this package's own.
register_url_convertor("hitl_qa_review_id", _QaReviewIdConvertor())
register_url_convertor("hitl_qa_verdict_id", _QaVerdictIdConvertor())

ResolveCoordinator = Callable[[], HitlCoordinator]
"""Returns the coordinator to serve, per request."""
ResolveReviewer = Callable[..., Awaitable[Reviewer]]
"""The FastAPI dependency giving the calling reviewer."""


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
    runner = IdempotentRunner(
        idempotency if idempotency is not None else InMemoryIdempotencyStore()
    )
    page = inbox_html() if inbox else ""
    request_guard = RequestGuard.build(trusted_origins)
    page_headers = inbox_headers(frame_ancestors)

    class _GuardedRoute(ProblemRoute):
        guard = request_guard

    coord = _resolver(coordinator)
    reviewer_of = _reviewer_dependency(authenticate)
    router = APIRouter(route_class=_GuardedRoute, tags=list(tags))
    _add_review_routes(router, coord, reviewer_of, runner)
    _add_qa_routes(router, coord, reviewer_of, runner)
    if events is not None:
        _add_event_route(router, reviewer_of, events, heartbeat)
    if inbox:
        _add_inbox_route(router, page, page_headers)
    return router


def _resolver(coordinator: HitlCoordinator | ResolveCoordinator) -> ResolveCoordinator:
    """The coordinator per request: the one given, or what the callable returns now."""

    def coord() -> HitlCoordinator:
        found = coordinator if isinstance(coordinator, HitlCoordinator) else coordinator()
        if not isinstance(found, HitlCoordinator):
            raise ConfigurationError(
                f"The coordinator callable returned {type(found).__name__}, not a HitlCoordinator."
            )
        return found

    return coord


def _reviewer_dependency(authenticate: Callable[..., Any]) -> ResolveReviewer:
    """A dependency running `authenticate` and refusing anything but a `Reviewer`."""

    async def reviewer_of(who: Annotated[Any, Depends(authenticate)]) -> Reviewer:
        if not isinstance(who, Reviewer):
            raise ConfigurationError(
                f"authenticate returned {type(who).__name__}; it must return a Reviewer."
            )
        return who

    return reviewer_of


async def pending_review(
    coordinator: HitlCoordinator, thread_id: str, review_id: str | None = None
) -> PendingReview:
    """`GET /reviews/{thread_id}`: the coordinator's `review()`, where only pending is found.

    A decided review has nothing left to decide, so to this route it is not
    found (404) rather than a conflict; the detail says which it is.

    Raises:
        ReviewNotFoundError: the thread never paused, or its review is decided.
    """
    try:
        if review_id is None:
            return await coordinator.review(thread_id)
        return await coordinator.review(thread_id, review_id=review_id)
    except AlreadyDecidedError as exc:
        state = f"is {exc.status}, not pending"
    except ReviewNotFoundError:
        state = "has no review"
    raise ReviewNotFoundError(
        f"Thread {thread_id!r} {state}; GET /reviews lists what awaits a decision.",
        thread_id=thread_id,
    )


async def _answer(decide: Callable[[], Awaitable[BaseModel]]) -> Response:
    """The decision's result as JSON, or its error as a problem."""
    try:
        result = await decide()
    except HitlError as exc:
        return problem_response(exc)
    return Response(content=result.model_dump_json(), media_type="application/json")


async def decide_once(
    runner: IdempotentRunner,
    request: Request,
    who: Reviewer,
    key: str | None,
    body: BaseModel,
    decide: Callable[[], Awaitable[BaseModel]],
    query: dict[str, str] | None = None,
) -> Response:
    """Run `decide` once per (reviewer, path, Idempotency-Key); replay its response.

    `decide` is a review decision (a `ProcessResult`) or a QA verdict (a
    `QaReview`). `query` (the `review_id` query parameter, when given) is part
    of what a replay must repeat, as the body is.
    """
    if key is None:
        return await _answer(decide)
    sent: dict[str, Any] = body.model_dump(mode="json")
    # Fields added to a body later are left out while unset, so a retry across an
    # upgrade (with a shared idempotency store) still matches its first request.
    for name in _LATER_FIELDS:
        if sent.get(name) is None:
            sent.pop(name, None)
    if query:
        sent = {**sent, "?": query}
    outcome = await runner.run(
        scope_key(who.id, request.url.path, key),
        fingerprint(sent),
        lambda: _answer(decide),
    )
    if not isinstance(outcome, Replay):
        return outcome
    if not outcome.matches:
        return key_reused_problem()
    return Response(
        content=outcome.stored.body,
        status_code=outcome.stored.status_code,
        media_type=outcome.stored.media_type,
        headers={"Idempotent-Replayed": "true"},
    )


def _add_review_routes(
    router: APIRouter,
    coord: ResolveCoordinator,
    reviewer_of: ResolveReviewer,
    runner: IdempotentRunner,
) -> None:
    """The JSON routes: who am I, list, read, one per decision kind, audit trail, ledger check."""
    # Type aliases, named like types; local because they close over `authenticate`.
    Who = Annotated[Reviewer, Depends(reviewer_of)]  # noqa: N806

    @router.get(
        "/me",
        operation_id="whoami",
        summary="The authenticated reviewer",
        response_model=ReviewerInfo,
        responses=problems(401, 422),
    )
    async def whoami(who: Who) -> ReviewerInfo:
        return ReviewerInfo(id=who.id, roles=sorted(who.roles))

    @router.get(
        "/reviews",
        operation_id="list_reviews",
        summary="Pending reviews, oldest first",
        response_model=ReviewPage,
        responses=problems(401, 422),
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
        assigned_to: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=256,
                description=(
                    "Only reviews waiting for this reviewer id: assigned to it, to a queue "
                    "it belongs to, or to someone who delegated to it (needs routing)."
                ),
            ),
        ] = None,
    ) -> ReviewPage:
        current = coord()
        if assigned_to is not None and current.routing is None:
            raise InvalidInputError(
                "assigned_to needs a coordinator with routing= (HitlCoordinator(..., "
                "routing=Routing(...))); this service assigns no reviews."
            )
        # One more than asked tells whether another page exists.
        items = await current.pending(
            rule=rule,
            reviewer=who if mine else None,
            older_than=None if older_than is None else parse_older_than(older_than),
            limit=limit + 1,
            cursor=cursor,
            assigned_to=assigned_to,
        )
        more = len(items) > limit
        items = items[:limit]
        return ReviewPage(items=items, next_cursor=items[-1].cursor if more else None)

    @router.post(
        "/reviews/{thread_id}/assign",
        operation_id="reassign_review",
        summary="Reassign a pending review (a supervisor; a `reassigned` audit row)",
        response_model=AssignmentInfo,
        responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
    )
    async def reassign_review(
        who: Who,
        thread_id: ThreadId,
        body: Annotated[AssignRequest, Body()],
        review_id: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=256,
                description="Which of the thread's pending reviews; required when it has several.",
            ),
        ] = None,
    ) -> AssignmentInfo:
        current = coord()
        if current.routing is None:
            raise InvalidInputError(
                "Reassigning needs a coordinator with routing= (HitlCoordinator(..., "
                "routing=Routing(...))); this service assigns no reviews."
            )
        done = await current.reassign(
            thread_id, to=body.to, by=who, reason=body.reason, review_id=review_id
        )
        return AssignmentInfo(
            review_id=done.review_id,
            thread_id=done.thread_id,
            assigned_to=done.assigned_to,
            reason=done.reason,
        )

    @router.get(
        "/reviews/{thread_id}",
        operation_id="get_review",
        summary="One pending review: the draft and what the reviewer needs to decide it",
        response_model=PendingReview,
        responses=problems(401, 404, 422),
    )
    async def get_review(
        who: Who,
        thread_id: ThreadId,
        review_id: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=256,
                description="Which of the thread's pending reviews; required when it has several.",
            ),
        ] = None,
    ) -> PendingReview:
        return await pending_review(coord(), thread_id, review_id)

    for kind in _decision_kinds.KINDS:
        _add_decision_route(router, kind, coord, reviewer_of, runner)

    @router.get(
        "/reason-codes",
        operation_id="reason_codes",
        summary="The reason codes a decision may carry, and which actions need one",
        response_model=ReasonTaxonomy,
        responses=problems(401, 422),
    )
    async def reason_codes(who: Who) -> ReasonTaxonomy:
        current = coord()
        return ReasonTaxonomy(
            codes=[
                ReasonCodeInfo(
                    code=c.code,
                    label=c.label,
                    description=c.description,
                    requires_text=c.requires_text,
                )
                for c in current.reason_codes
            ],
            required_for=sorted(current.reason_policy.require),
            expiry_code=current.reason_policy.expiry_code,
        )

    @router.get(
        "/reason-codes/counts",
        operation_id="reason_code_counts",
        summary="How many decisions recorded each reason code, by audit event",
        response_model=list[ReasonCountInfo],
        responses=problems(401, 422),
    )
    async def reason_code_counts(
        who: Who,
        since: Annotated[
            PlainText | None,
            Query(max_length=64, description="Decided at or after this ISO-8601 datetime."),
        ] = None,
        until: Annotated[
            PlainText | None,
            Query(max_length=64, description="Decided before this ISO-8601 datetime."),
        ] = None,
    ) -> list[ReasonCountInfo]:
        counts = await coord().reason_code_counts(
            since=parse_time("since", since), until=parse_time("until", until)
        )
        return [ReasonCountInfo(code=c.code, event=c.event, count=c.count) for c in counts]

    @router.get(
        "/stops",
        operation_id="list_stops",
        summary="The stops in force: while one is on, every reply in its scope waits for review",
        response_model=list[StopInfo],
        responses=problems(401, 422),
    )
    async def list_stops(who: Who) -> list[StopInfo]:
        return [StopInfo.of(s) for s in await coord().stops()]

    @router.post(
        "/stops/on",
        operation_id="stop_delivery",
        summary="Stop delivery in a scope (a stop role only; audited)",
        response_model=StopInfo,
        responses=problems(400, 401, 403, 413, 415, 422),
    )
    async def stop_delivery(who: Who, body: Annotated[StopRequest, Body()]) -> StopInfo:
        stop = await coord().stop_delivery(body.scope, by=who, reason=body.reason or "")
        return StopInfo.of(stop)

    @router.post(
        "/stops/off",
        operation_id="resume_delivery",
        summary="Switch a scope's stop off (a stop role only; audited); the stops still on",
        response_model=list[StopInfo],
        responses=problems(400, 401, 403, 413, 415, 422),
    )
    async def resume_delivery(who: Who, body: Annotated[StopRequest, Body()]) -> list[StopInfo]:
        current = coord()
        await current.resume_delivery(body.scope, by=who)
        return [StopInfo.of(s) for s in await current.stops()]

    @router.get(
        "/oversight",
        operation_id="oversight_report",
        summary="Oversight analytics of the reviews decided in a window, with rubber-stamp flags",
        response_model=OversightReport,
        responses=problems(401, 422),
    )
    async def oversight_report(
        who: Who,
        since: Annotated[
            PlainText,
            Query(max_length=64, description="Decided at or after this ISO-8601 datetime."),
        ],
        until: Annotated[
            PlainText,
            Query(max_length=64, description="Decided before this ISO-8601 datetime."),
        ],
        period: Annotated[
            Literal["day", "week", "month"],
            Query(description="The length of one row of `periods` (UTC)."),
        ] = "day",
    ) -> Response:
        # parse_time returns None only for None, which FastAPI never passes here.
        report = await coord().oversight_report(
            since=parse_time("since", since),  # type: ignore[arg-type]
            until=parse_time("until", until),  # type: ignore[arg-type]
            period=period,
        )
        return Response(report.model_dump_json(), media_type="application/json")

    @router.get(
        "/reviews/{thread_id}/audit",
        operation_id="review_audit",
        summary="The thread's audit records, oldest first",
        response_model=list[AuditRecord],
        responses=problems(401, 422),
    )
    async def review_audit(who: Who, thread_id: ThreadId) -> list[AuditRecord]:
        return await coord().audit_log(thread_id)

    @router.get(
        "/reviews/{thread_id}/evidence",
        operation_id="evidence_pack",
        summary="One review's evidence pack: a printable HTML page, or its JSON document",
        response_class=HTMLResponse,
        responses={
            200: {
                "description": (
                    "The self-contained page (`format=html`) or the pack's JSON document "
                    "(`format=json`); `X-Evidence-Manifest-SHA256` is the SHA-256 of the "
                    "JSON document's bytes, on both."
                ),
                "content": {
                    "text/html": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            **problems(401, 404, 422, model=False),
        },
    )
    async def evidence_pack(
        who: Who,
        thread_id: ThreadId,
        review_id: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=256,
                description="Which of the thread's reviews (default: its latest).",
            ),
        ] = None,
        format: Annotated[
            Literal["html", "json"], Query(description="`html` (default) or `json`.")
        ] = "html",
    ) -> Response:
        pack = await coord().evidence_pack(thread_id, review_id=review_id)
        headers = {"X-Evidence-Manifest-SHA256": pack.manifest_sha256, "Cache-Control": "no-store"}
        if format == "json":
            return Response(pack.json_text, media_type="application/json", headers=headers)
        return HTMLResponse(pack.html, headers=headers)

    @router.get(
        "/audit/verify",
        operation_id="verify_audit",
        summary="Verify the tamper-evident audit ledger",
        response_model=LedgerReport,
        responses=problems(401, 422),
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


def _add_decision_route(
    router: APIRouter,
    kind: DecisionKind,
    coord: ResolveCoordinator,
    reviewer_of: ResolveReviewer,
    runner: IdempotentRunner,
) -> None:
    """`POST /reviews/{thread_id}/<verb>`: the coordinator method of `kind`, with its body."""
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
    Body_ = Annotated[kind.body, Body()]  # type: ignore[name-defined]  # noqa: N806

    @router.post(
        kind.path,
        operation_id=kind.operation_id,
        summary=kind.summary,
        response_model=ProcessResult,
        responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
    )
    async def decide_route(
        request: Request,
        who: Who,
        thread_id: ThreadId,
        body: Body_,
        idempotency_key: IdempotencyKey = None,
        review_id: Annotated[
            PlainText | None,
            Query(
                min_length=1,
                max_length=256,
                description=(
                    "Which of the thread's pending reviews (its `review_id` in "
                    "`GET /reviews`); required when it has several (a gate waiting for "
                    "several tool calls at once)."
                ),
            ),
        ] = None,
    ) -> Response:
        # The body's fields are the coordinator method's keywords (`response` or
        # `reason`, `expected`, `metadata`, and approve's `tool_args`).
        fields = {name: getattr(body, name) for name in type(body).model_fields}

        async def decide() -> ProcessResult:
            method = getattr(coord(), kind.verb)
            result: ProcessResult = await method(
                thread_id, reviewer=who, review_id=review_id, **fields
            )
            return result

        query = None if review_id is None else {"review_id": review_id}
        return await decide_once(runner, request, who, idempotency_key, body, decide, query)

    decide_route.__name__ = kind.verb


def _add_qa_routes(
    router: APIRouter,
    coord: ResolveCoordinator,
    reviewer_of: ResolveReviewer,
    runner: IdempotentRunner,
) -> None:
    """Second-line QA: the sample awaiting a verdict, one QA review, a verdict, the counts.

    `/qa/pending` and `/qa/disagreement` are added before `/qa/{qa_review_id}`,
    which would match them too; a QA review's id (`qa:<thread>:<turn>`) is never
    one of those words. The id is routed as a path (`path`, and on GET
    `_QaReviewIdConvertor`, which stops short of `/verdict`), so the `/` a thread
    id may hold (percent-encoded or not) still reaches the coordinator. GET and
    POST are on different paths (`/qa/{id}`, `/qa/{id}/verdict`), so no path
    answers one method with a 405 that hides the other.
    """
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

    @router.get(
        "/qa/pending",
        operation_id="qa_pending",
        summary="QA reviews awaiting a verdict, oldest sampled first",
        response_model=list[QaReview],
        responses=problems(401, 422),
    )
    async def qa_pending(
        who: Who,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    ) -> list[QaReview]:
        return await coord().qa_pending(limit=limit)

    @router.get(
        "/qa/disagreement",
        operation_id="qa_disagreement",
        summary="Per rule, QA reviews sampled, judged and disagreed with",
        response_model=list[QaRuleCountInfo],
        responses=problems(401, 422),
    )
    async def qa_disagreement(
        who: Who,
        since: Annotated[
            PlainText | None,
            Query(max_length=64, description="Sampled at or after this ISO-8601 datetime."),
        ] = None,
        until: Annotated[
            PlainText | None,
            Query(max_length=64, description="Sampled before this ISO-8601 datetime."),
        ] = None,
    ) -> list[QaRuleCountInfo]:
        counts = await coord().qa_disagreement(
            since=parse_time("since", since), until=parse_time("until", until)
        )
        return [QaRuleCountInfo.of(c) for c in counts]

    @router.get(
        "/qa/{qa_review_id:hitl_qa_review_id}",
        operation_id="get_qa_review",
        summary="One QA review, with its verdict once recorded",
        response_model=QaReview,
        responses=problems(401, 404, 422),
    )
    async def get_qa_review(who: Who, qa_review_id: QaReviewId) -> QaReview:
        return await coord().qa_review(qa_review_id)

    @router.post(
        "/qa/{qa_review_id:hitl_qa_verdict_id}/verdict",
        operation_id="qa_verdict",
        summary="Record a QA verdict on a sampled reply (a `qa_verdict` audit row), once",
        response_model=QaReview,
        responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
    )
    async def qa_verdict(
        request: Request,
        who: Who,
        qa_review_id: QaReviewId,
        body: Annotated[QaVerdictRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        async def decide() -> QaReview:
            return await coord().qa_verdict(
                qa_review_id,
                reviewer=who,
                verdict=body.verdict,
                reason_code=body.reason_code,
                reason=body.reason,
            )

        return await decide_once(runner, request, who, idempotency_key, body, decide)


def _add_event_route(
    router: APIRouter, reviewer_of: ResolveReviewer, broadcaster: ReviewEvents, heartbeat: float
) -> None:
    """`GET /events`: the broadcaster's events as Server-Sent Events."""
    Who = Annotated[Reviewer, Depends(reviewer_of)]  # noqa: N806

    @router.get(
        "/events",
        operation_id="review_events",
        summary="Review events as Server-Sent Events",
        response_class=EventStreamResponse,
        responses={
            200: {
                "description": (
                    "A `text/event-stream` of `paused`, `decided` and `expired` events "
                    "(`data` is a ReviewEventMessage, `id` its audit seq), `resync` "
                    "when events were dropped, and keep-alive comments."
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **problems(401, 422, model=False),
        },
    )
    async def review_events(who: Who) -> EventStreamResponse:
        # Subscribed before the response starts: nothing after this call is missed.
        subscription = broadcaster.subscribe()
        return EventStreamResponse(
            event_stream(subscription, heartbeat),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _add_inbox_route(router: APIRouter, page: str, headers: Mapping[str, str]) -> None:
    """`GET /inbox`: the static inbox page, served without `authenticate` (it holds no data)."""

    @router.get(
        "/inbox",
        operation_id="inbox",
        summary="The reviewer inbox page",
        response_class=HTMLResponse,
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    async def inbox_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    scripts: dict[str, str] = {}

    def script(name: str, load: Callable[[], str]) -> Response:
        # Read on first use: plotly.js is 4.8 MB, and the report extra may be absent.
        if name not in scripts:
            scripts[name] = load()
        return Response(
            scripts[name],
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get(
        "/oversight/plotly.js",
        operation_id="oversight_plotly",
        summary="plotly.js, from the installed plotly package (the inbox's Oversight view)",
        response_class=Response,
        responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}}}},
    )
    async def oversight_plotly() -> Response:
        return script("plotly", plotly_js)

    @router.get(
        "/oversight/charts.js",
        operation_id="oversight_charts",
        summary="The script drawing an oversight report (the inbox's Oversight view)",
        response_class=Response,
        responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}}}},
    )
    async def oversight_charts() -> Response:
        return script("charts", charts_js)
