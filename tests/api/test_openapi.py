"""The OpenAPI schema: every route typed, every problem declared, served by the app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hitl_compliance import open_backend
from hitl_compliance.fastapi import ReviewEvents
from tests.api.conftest import build_coordinator, make_app
from tests.helpers import FakeClock

JSON_ROUTES = {
    ("get", "/me"): "ReviewerInfo",
    ("get", "/reviews"): "ReviewPage",
    ("get", "/reviews/{thread_id}"): "PendingReview",
    ("post", "/reviews/{thread_id}/approve"): "ProcessResult",
    ("post", "/reviews/{thread_id}/reject"): "ProcessResult",
    ("post", "/reviews/{thread_id}/assign"): "AssignmentInfo",
    ("get", "/audit/verify"): "LedgerReport",
    ("get", "/reason-codes"): "ReasonTaxonomy",
    ("post", "/stops/on"): "StopInfo",
    ("get", "/qa/{qa_review_id}"): "QaReview",
    ("post", "/qa/{qa_review_id}/verdict"): "QaReview",
    ("get", "/oversight"): "OversightReport",
}
PROBLEMS = {
    ("get", "/me"): {"401", "422"},
    ("get", "/reviews"): {"401", "422"},
    ("get", "/reviews/{thread_id}"): {"401", "404", "422"},
    ("post", "/reviews/{thread_id}/approve"): {
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("post", "/reviews/{thread_id}/reject"): {
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("post", "/reviews/{thread_id}/assign"): {
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("get", "/reviews/{thread_id}/audit"): {"401", "422"},
    ("get", "/reviews/{thread_id}/evidence"): {"401", "404", "422"},
    ("get", "/audit/verify"): {"401", "422"},
    ("get", "/events"): {"401", "422"},
    ("get", "/reason-codes"): {"401", "422"},
    ("get", "/reason-codes/counts"): {"401", "422"},
    ("get", "/stops"): {"401", "422"},
    ("post", "/stops/on"): {"400", "401", "403", "413", "415", "422"},
    ("post", "/stops/off"): {"400", "401", "403", "413", "415", "422"},
    ("get", "/qa/pending"): {"401", "422"},
    ("get", "/qa/disagreement"): {"401", "422"},
    ("get", "/qa/{qa_review_id}"): {"401", "404", "422"},
    ("post", "/qa/{qa_review_id}/verdict"): {
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("get", "/oversight"): {"401", "422"},
}


@pytest.fixture
async def openapi(clock: FakeClock) -> dict[str, Any]:
    """The schema as the app serves it at `/openapi.json` (the same on every backend)."""
    events = ReviewEvents()
    async with open_backend("memory://") as backend:
        app = make_app(build_coordinator(backend, events, clock), events)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


class TestOpenApi:
    """What clients and generators read from `/openapi.json`."""

    def test_every_route_is_described(self, openapi: dict[str, Any]) -> None:
        """Each route has an operation id, a summary and the `reviews` tag."""
        operations = {
            (method, path): op
            for path, item in openapi["paths"].items()
            for method, op in item.items()
        }
        assert set(operations) == set(PROBLEMS) | {
            ("get", "/reviews/{thread_id}/audit"),
            ("get", "/inbox"),
            ("get", "/oversight/plotly.js"),
            ("get", "/oversight/charts.js"),
        }
        for key, op in operations.items():
            assert op["operationId"], key
            assert op["summary"], key
            assert op["tags"] == ["reviews"], key

    def test_response_models(self, openapi: dict[str, Any]) -> None:
        """Every JSON route's 200 response refers to a typed component schema."""
        for (method, path), model in JSON_ROUTES.items():
            ok = openapi["paths"][path][method]["responses"]["200"]
            assert ok["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{model}"
            }, path
        audit = openapi["paths"]["/reviews/{thread_id}/audit"]["get"]["responses"]["200"]
        assert audit["content"]["application/json"]["schema"] == {
            "type": "array",
            "items": {"$ref": "#/components/schemas/AuditRecord"},
            "title": "Response Review Audit",
        }
        events = openapi["paths"]["/events"]["get"]["responses"]["200"]["content"]
        assert set(events) == {"text/event-stream"}
        inbox = openapi["paths"]["/inbox"]["get"]["responses"]["200"]["content"]
        assert set(inbox) == {"text/html"}
        for script in ("/oversight/plotly.js", "/oversight/charts.js"):
            ok = openapi["paths"][script]["get"]["responses"]["200"]["content"]
            assert set(ok) == {"text/javascript"}, script
        evidence = openapi["paths"]["/reviews/{thread_id}/evidence"]["get"]["responses"]["200"]
        assert set(evidence["content"]) == {"text/html", "application/json"}
        for path, model in (("/qa/pending", "QaReview"), ("/qa/disagreement", "QaRuleCountInfo")):
            listed = openapi["paths"][path]["get"]["responses"]["200"]["content"]
            assert listed["application/json"]["schema"]["items"] == {
                "$ref": f"#/components/schemas/{model}"
            }, path

    def test_qa_routes(self, openapi: dict[str, Any]) -> None:
        """The QA id is one path parameter (no convertor suffix); the verdict body is closed."""
        paths = openapi["paths"]
        assert not [p for p in paths if ":" in p]
        for path, method in (("/qa/{qa_review_id}", "get"), ("/qa/{qa_review_id}/verdict", "post")):
            [param] = [p for p in paths[path][method]["parameters"] if p["in"] == "path"]
            assert (param["name"], param["required"]) == ("qa_review_id", True)
            assert param["schema"]["maxLength"] == 600
        verdict = paths["/qa/{qa_review_id}/verdict"]["post"]
        headers = [p["name"] for p in verdict["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"]
        body = openapi["components"]["schemas"]["QaVerdictRequest"]
        assert body["additionalProperties"] is False
        assert body["required"] == ["verdict"]
        assert body["properties"]["verdict"]["enum"] == ["agree", "disagree"]
        counts = openapi["components"]["schemas"]["QaRuleCountInfo"]["properties"]
        assert {"rule", "sampled", "reviewed", "disagreements", "disagreement_rate"} == set(counts)

    def test_problem_responses(self, openapi: dict[str, Any]) -> None:
        """Each route declares its problem statuses as `application/problem+json` Problems."""
        for (method, path), statuses in PROBLEMS.items():
            responses = openapi["paths"][path][method]["responses"]
            assert set(responses) - {"200"} == statuses, path
            for status in statuses:
                content = responses[status]["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }, (path, status)

    def test_typed_components(self, openapi: dict[str, Any]) -> None:
        """The bodies and the problem document are closed, typed schemas."""
        schemas = openapi["components"]["schemas"]
        problem = schemas["Problem"]
        assert set(problem["required"]) == {"type", "title", "status", "detail", "error"}
        assert problem["properties"]["status"]["type"] == "integer"
        for body in ("ApproveRequest", "RejectRequest"):
            assert schemas[body]["additionalProperties"] is False
        assert set(schemas["ApproveRequest"]["properties"]) == {
            "response",
            "expected",
            "metadata",
            "tool_args",
            "reason_code",
            "reason",
        }
        assert set(schemas["RejectRequest"]["properties"]) == {
            "reason",
            "expected",
            "metadata",
            "reason_code",
        }
        violation = schemas["RuleResult"]["properties"]
        assert violation["verdict"]["enum"] == ["pass", "review", "block"]
        pending = schemas["PendingReview"]["properties"]
        assert pending["violations"]["items"] == {"$ref": "#/components/schemas/RuleResult"}

    def test_parameters(self, openapi: dict[str, Any]) -> None:
        """Query filters and the Idempotency-Key header are declared with their bounds."""
        params = {p["name"]: p for p in openapi["paths"]["/reviews"]["get"]["parameters"]}
        assert {"rule", "older_than", "limit", "cursor", "mine"} <= set(params)
        assert params["limit"]["schema"]["maximum"] == 500
        approve = openapi["paths"]["/reviews/{thread_id}/approve"]["post"]
        headers = {p["name"]: p for p in approve["parameters"] if p["in"] == "header"}
        assert headers["Idempotency-Key"]["schema"]["anyOf"][0]["maxLength"] == 255
        assert approve["requestBody"]["required"] is True
