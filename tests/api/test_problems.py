"""Problem mapping on its own: library, HTTP and validation errors as RFC 7807 documents."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from hitl_compliance import (
    AlreadyDecidedError,
    ConfigurationError,
    DuplicateVoteError,
    HitlError,
    InvalidDecisionError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    RuleResult,
    StaleReviewError,
    TamperedError,
    ThreadBusyError,
)
from hitl_compliance.fastapi import (
    PROBLEM_MEDIA_TYPE,
    CrossOriginRequestError,
    Problem,
    UnsupportedMediaTypeError,
    problem_response,
    status_for,
)
from hitl_compliance.fastapi._problems import (
    http_problem,
    key_reused_problem,
    problems,
    validation_problem,
)


def body_of(response: Response) -> dict[str, Any]:
    """The problem document of `response`, checked to be one."""
    assert response.media_type == PROBLEM_MEDIA_TYPE
    document: dict[str, Any] = json.loads(bytes(response.body))
    Problem.model_validate(document)
    assert document["status"] == response.status_code
    return document


class TestStatusFor:
    """`status_for`: the status by the error class's MRO."""

    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (ReviewNotFoundError("x"), 404),
            (NotAuthorizedError("x"), 403),
            (CrossOriginRequestError("x"), 403),
            (UnsupportedMediaTypeError("x"), 415),
            (AlreadyDecidedError("x"), 409),
            (DuplicateVoteError("x"), 409),
            (StaleReviewError("x"), 409),
            (ThreadBusyError("x"), 409),
            (InvalidDecisionError("x"), 422),
            (PolicyViolationError("x"), 422),
            (ConfigurationError("x"), 500),
            (TamperedError("x"), 500),  # a row edited in the database: no client can fix it
            (HitlError("x"), 500),
        ],
    )
    def test_status(self, error: HitlError, status: int) -> None:
        """Each error maps to its class's status, or its nearest base's, else 500."""
        assert status_for(error) == status

    def test_subclass_inherits_status(self) -> None:
        """A user's subclass of a mapped error gets the base's status."""

        class GoneError(ReviewNotFoundError):
            pass

        assert status_for(GoneError("x")) == 404


class TestProblemResponse:
    """`problem_response`: the document and its context members."""

    def test_members(self) -> None:
        """type, title, status, detail, error and thread_id; None members are left out."""
        body = body_of(problem_response(ReviewNotFoundError("gone", thread_id="t1")))
        assert body == {
            "type": "urn:hitl-compliance:error:ReviewNotFoundError",
            "title": "Review not found",
            "status": 404,
            "detail": "gone",
            "error": "ReviewNotFoundError",
            "thread_id": "t1",
        }

    def test_context_of_each_error(self) -> None:
        """Each error's keyword context becomes members of its document."""
        denied = body_of(
            problem_response(
                NotAuthorizedError("no", reviewer="ops", missing_roles=frozenset({"b", "a"}))
            )
        )
        assert (denied["reviewer"], denied["missing_roles"]) == ("ops", ["a", "b"])
        decided = body_of(problem_response(AlreadyDecidedError("done", status="approved")))
        assert decided["review_status"] == "approved"
        stale = body_of(problem_response(StaleReviewError("s", expected="e", actual="a")))
        assert (stale["expected"], stale["actual"]) == ("e", "a")
        origin = body_of(problem_response(CrossOriginRequestError("o", origin="https://x")))
        assert origin["origin"] == "https://x"
        finding = RuleResult("account_details", "block", "leaks", ("12345678",), "high")
        blocked = body_of(problem_response(PolicyViolationError("b", findings=(finding, "x"))))
        assert blocked["findings"] == [finding.to_dict()]

    def test_415_says_what_it_accepts(self) -> None:
        """A 415 carries the refused type and an `Accept` header naming JSON."""
        response = problem_response(UnsupportedMediaTypeError("no", content_type="text/plain"))
        assert body_of(response)["content_type"] == "text/plain"
        assert response.headers["accept"] == "application/json"

    def test_duplicate_vote_keeps_its_title(self) -> None:
        """A subclass with its own title uses it, with its base's status."""
        body = body_of(problem_response(DuplicateVoteError("twice")))
        assert (body["title"], body["status"]) == ("Reviewer already voted", 409)

    def test_server_errors_hide_details(self, caplog: pytest.LogCaptureFixture) -> None:
        """A 500 tells the client only that it failed, and logs the message."""
        with caplog.at_level(logging.ERROR, logger="hitl_compliance.fastapi"):
            body = body_of(problem_response(ConfigurationError("secret dsn")))
        assert body["title"] == "Internal Server Error"
        assert "secret" not in body["detail"]
        assert "secret dsn" in caplog.text


class TestOtherProblems:
    """HTTP errors, request validation and a reused idempotency key."""

    def test_http_exception(self) -> None:
        """An HTTPException keeps its status, detail and headers."""
        response = http_problem(HTTPException(401, "who?", headers={"WWW-Authenticate": "X"}))
        body = body_of(response)
        assert (body["title"], body["detail"], body["error"]) == (
            "Unauthorized",
            "who?",
            "HTTPException",
        )
        assert response.headers["www-authenticate"] == "X"

    def test_http_exception_with_structured_detail(self) -> None:
        """A non-text detail is sent as JSON text; an unknown status is titled Error."""
        body = body_of(http_problem(HTTPException(599, {"why": 1})))  # type: ignore[arg-type]
        assert (body["title"], json.loads(body["detail"])) == ("Error", {"why": 1})

    def test_validation(self) -> None:
        """Every failed check is listed and summarised in the detail."""
        error = RequestValidationError(
            [{"loc": ("body", "reason", 0), "msg": "too long", "type": "string_too_long"}]
        )
        body = body_of(validation_problem(error))
        assert body["errors"] == [
            {"loc": ["body", "reason", 0], "msg": "too long", "type": "string_too_long"}
        ]
        assert body["detail"] == "The request failed validation: body.reason.0: too long."

    def test_key_reused(self) -> None:
        """A reused Idempotency-Key is a 422 of its own type."""
        body = body_of(key_reused_problem())
        assert (body["status"], body["error"]) == (422, "IdempotencyKeyReused")


class TestOpenApiResponses:
    """`problems`: the declared problem statuses of a route."""

    def test_with_and_without_model(self) -> None:
        """Each status refers to the Problem schema; `model=False` leaves the model out."""
        declared = problems(404, 409)
        assert set(declared) == {404, 409}
        assert declared[404]["model"] is Problem
        assert declared[404]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
        assert "model" not in problems(401, model=False)[401]
