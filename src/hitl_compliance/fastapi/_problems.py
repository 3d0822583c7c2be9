"""Errors as RFC 7807 problem documents: the one place an exception becomes an HTTP answer.

Library errors map to a status by their class's MRO (a subclass of
`ReviewNotFoundError` is a 404 too), HTTP errors and request validation keep
their status; every one is `application/problem+json` with the same members.
`ProblemRoute` applies the mapping to each route of the router, because an
`APIRouter` cannot register exception handlers (only an application can).
"""

import http
import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from hitl_compliance.errors import (
    AlreadyDecidedError,
    CrossOriginRequestError,
    DuplicateVoteError,
    HitlError,
    InputTooLargeError,
    InvalidDecisionError,
    InvalidInputError,
    NotAuthorizedError,
    PolicyViolationError,
    QaAlreadyRecordedError,
    QaReviewNotFoundError,
    ReviewNotFoundError,
    StaleReviewError,
    ThreadBusyError,
    UnsupportedMediaTypeError,
)
from hitl_compliance.fastapi._security import RequestGuard, bounded
from hitl_compliance.rules import RuleResult

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemRoute",
    "ValidationIssue",
    "http_problem",
    "key_reused_problem",
    "problem_response",
    "problems",
    "status_for",
    "validation_problem",
]

# The logger keeps the public package's name: log configuration written for the
# single-module `hitl_compliance.fastapi` goes on working.
logger = logging.getLogger("hitl_compliance.fastapi")

PROBLEM_MEDIA_TYPE = "application/problem+json"
"""The media type of every error response (RFC 7807)."""
_PROBLEM_TYPE = "urn:hitl-compliance:error:"


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
        default=None,
        description=(
            "`AlreadyDecidedError`: the review's status now (`QaAlreadyRecordedError`: "
            "the verdict it holds)."
        ),
    )
    qa_review_id: str | None = Field(
        default=None,
        description="`QaReviewNotFoundError`, `QaAlreadyRecordedError`: the QA review's id.",
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
    field: str | None = Field(
        default=None, description="`InputTooLargeError`: the input over its limit."
    )
    size: int | None = Field(default=None, description="`InputTooLargeError`: its size, in `unit`.")
    limit: int | None = Field(
        default=None, description="`InputTooLargeError`: the limit, in `unit`."
    )
    unit: str | None = Field(
        default=None, description="`InputTooLargeError`: `characters` or `bytes`."
    )


_STATUS: dict[type[HitlError], int] = {
    ReviewNotFoundError: 404,
    NotAuthorizedError: 403,
    CrossOriginRequestError: 403,
    UnsupportedMediaTypeError: 415,
    InputTooLargeError: 413,
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
    QaReviewNotFoundError: "QA review not found",
    QaAlreadyRecordedError: "QA verdict already recorded",
    StaleReviewError: "Review changed since it was loaded",
    ThreadBusyError: "Thread busy",
    InvalidInputError: "Invalid input",
    InputTooLargeError: "Input too large",
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
    """The problem title of the error's nearest titled class, else the status phrase."""
    for cls in type(exc).__mro__:
        if cls in _TITLES:
            return _TITLES[cls]
    return http.HTTPStatus(status).phrase


def _problem(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """A problem document response; members that are None are left out."""
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
    if isinstance(exc, (QaReviewNotFoundError, QaAlreadyRecordedError)):
        body["qa_review_id"] = exc.qa_review_id
    if isinstance(exc, InputTooLargeError):
        body.update(field=exc.field, size=exc.size, limit=exc.limit, unit=exc.unit)
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


def key_reused_problem() -> Response:
    """The 422 for an `Idempotency-Key` repeated with a different body."""
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


def http_problem(exc: HTTPException) -> Response:
    """The problem response for an `HTTPException` (say, `authenticate`'s 401)."""
    status = exc.status_code
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    body = {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
    body["error"] = "HTTPException"
    return _problem(status, body, headers=exc.headers)


def validation_problem(exc: RequestValidationError) -> Response:
    """The 422 problem response listing every failed check of a request."""
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


class ProblemRoute(APIRoute):
    """Turns library errors, HTTP errors and request validation into problem responses.

    An `APIRouter` cannot register exception handlers (only an application can),
    so the router's routes convert errors themselves: mounting the router is enough.
    A router's subclass sets `guard`, whose origin and media-type checks run
    first: before FastAPI parses the body (which FastAPI versions do
    differently) and before `authenticate`.
    """

    guard: RequestGuard | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped in the guard and the error mapping."""
        handler = super().get_route_handler()
        guard = self.guard

        async def handle(request: Request) -> Response:
            if guard is not None:
                read = await bounded(request)
                if isinstance(read, InputTooLargeError):
                    return problem_response(read)
                request = read
                refused = await guard.refusal(request)
                if refused is not None:
                    return problem_response(refused)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return validation_problem(exc)
            except HitlError as exc:
                return problem_response(exc)
            except HTTPException as exc:
                return http_problem(exc)

        return handle


def problems(*statuses: int, model: bool = True) -> dict[int | str, dict[str, Any]]:
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
        404: "No pending review for this thread (on `/qa/...`: no QA review has this id).",
        409: (
            "Already decided, stale (`expected` mismatch) or the thread is busy "
            "(on `/qa/...`: the QA review holds a verdict already)."
        ),
        413: (
            "The body is over 1 MiB, or a text or metadata over the coordinator's "
            "`InputLimits` (`InputTooLargeError`); nothing was decided."
        ),
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
