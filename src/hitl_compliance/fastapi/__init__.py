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
| `GET /qa/pending` | second-line QA reviews awaiting a verdict (`limit`) |
| `GET /qa/{qa_review_id}` | one QA review |
| `POST /qa/{qa_review_id}/verdict` | record `agree` / `disagree` (with a `reason_code`) once |
| `GET /qa/disagreement` | per-rule QA counts and disagreement rate (`since`, `until`) |
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

The package's modules, one concern each: `_bodies` (what requests and
responses contain), `_problems` (errors as problem documents), `_events` (the
broadcaster and the event stream), `_idempotency` (`Idempotency-Key`),
`_security` (origin and media-type checks), `_inbox` (the page) and
`_router` (the routes, each one public coordinator call).
"""

# FastAPI is an optional extra: check for it before importing the modules that
# use it, so a missing extra names what to install instead of failing deep in
# an import chain (and a re-import after FastAPI vanished fails the same way).
try:
    import fastapi as _fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a test with fastapi hidden
    from hitl_compliance.errors import ConfigurationError

    raise ConfigurationError(
        'hitl_compliance.fastapi needs FastAPI: pip install "hitl-compliance[api]"'
    ) from exc

from hitl_compliance.errors import CrossOriginRequestError, UnsupportedMediaTypeError
from hitl_compliance.fastapi._bodies import (
    ApproveRequest,
    QaVerdictRequest,
    RejectRequest,
    ReviewerInfo,
    ReviewPage,
)
from hitl_compliance.fastapi._events import ReviewEventMessage, ReviewEvents, Subscription
from hitl_compliance.fastapi._idempotency import (
    IdempotencyStore,
    InMemoryIdempotencyStore,
    StoredResponse,
)
from hitl_compliance.fastapi._problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    ValidationIssue,
    problem_response,
    status_for,
)
from hitl_compliance.fastapi._router import create_review_router

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApproveRequest",
    "CrossOriginRequestError",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "Problem",
    "QaVerdictRequest",
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
