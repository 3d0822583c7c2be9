"""The review service against cross-site requests and framing, through the ASGI app.

A browser lets any page send a "simple" cross-origin POST (a form, or a `fetch`
with a `text/plain`, form-encoded or type-less body) with the user's cookies,
and lets any page frame any other. The router refuses decisions whose body is
not JSON (415) and decisions from another origin (403), and tells browsers not
to frame the inbox. `tests/api/test_browser.py` shows the same in Chromium.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hitl_compliance import (
    ConfigurationError,
    HitlError,
    InputLimits,
    InputTooLargeError,
    InvalidInputError,
    open_backend,
)
from hitl_compliance.fastapi import (
    CrossOriginRequestError,
    ReviewEvents,
    UnsupportedMediaTypeError,
    create_review_router,
    status_for,
)
from hitl_compliance.fastapi._security import MAX_BODY_BYTES
from tests.api.conftest import PROMO, Service, as_, authenticate, new_service
from tests.api.test_routes import events_of, problem
from tests.helpers import FakeClock

SERVICE_ORIGIN = "http://api"
"""The origin of the test client's base URL: the service's own."""

NOT_JSON = [
    pytest.param("text/plain", b"{}", id="text-plain"),
    pytest.param("text/plain;charset=UTF-8", b'{"reason": "="}', id="text-plain-charset"),
    pytest.param("application/x-www-form-urlencoded", b"reason=spam", id="form-urlencoded"),
    pytest.param(
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="reason"\r\n\r\nspam\r\n--b--\r\n',
        id="multipart",
    ),
    # `fetch(url, {method: "POST", body: new Blob(["{}"])})`: no Content-Type at all.
    pytest.param(None, b"{}", id="no-content-type"),
    pytest.param("text/json", b"{}", id="text-json"),
]

ServiceWith = Callable[..., Service]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def service_with(clock: FakeClock) -> AsyncIterator[ServiceWith]:
    """Build memory-backed services with router options (origins, frame ancestors)."""
    built: list[Service] = []
    async with open_backend("memory://") as backend:

        def build(**options: Any) -> Service:
            built.append(new_service(backend, clock, **options))
            return built[-1]

        yield build
        for service in built:
            await service.client.aclose()


async def assert_untouched(service: Service, thread_id: str) -> None:
    """The review is still pending and its audit trail holds only the pause."""
    assert [r.thread_id for r in await service.coord.pending()] == [thread_id]
    assert await events_of(service, thread_id) == [("paused", "system")]


class TestJsonOnly:
    """Decisions need a JSON body, whatever FastAPI version parses it."""

    @pytest.mark.parametrize("decision", ["approve", "reject"])
    @pytest.mark.parametrize(("content_type", "content"), NOT_JSON)
    async def test_non_json_body_is_415(
        self, service: Service, decision: str, content_type: str | None, content: bytes
    ) -> None:
        """A body that is not declared JSON is a 415 problem and decides nothing."""
        thread_id = await service.pause(PROMO)
        headers = as_("sam") | ({} if content_type is None else {"Content-Type": content_type})
        response = await service.client.post(
            f"/reviews/{thread_id}/{decision}", content=content, headers=headers
        )
        body = problem(response, 415, "UnsupportedMediaTypeError")
        assert "application/json" in body["detail"]
        assert body["thread_id"] == thread_id
        assert body.get("content_type") == content_type
        assert response.headers["accept"] == "application/json"
        await assert_untouched(service, thread_id)

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "application/json; charset=utf-8", "Application/JSON"],
    )
    async def test_json_is_accepted(self, memory_service: Service, content_type: str) -> None:
        """`application/json`, with parameters or in any case, decides as usual."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.post(
            f"/reviews/{thread_id}/approve",
            content=b"{}",
            headers=as_("sam") | {"Content-Type": content_type},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        assert await memory_service.coord.pending() == []

    async def test_lenient_fastapi_parsing_is_overruled(self, memory_service: Service) -> None:
        """With FastAPI reading a type-less body as JSON (as 0.115 does), it is still a 415."""
        if "strict_content_type" not in inspect.signature(FastAPI).parameters:
            pytest.skip(
                "this FastAPI always reads a type-less body as JSON; the 415 tests cover it"
            )
        app = FastAPI(strict_content_type=False)
        app.include_router(create_review_router(memory_service.coord, authenticate=authenticate))
        thread_id = await memory_service.pause(PROMO)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post(
                f"/reviews/{thread_id}/approve", content=b"{}", headers=as_("sam")
            )
        problem(response, 415, "UnsupportedMediaTypeError")
        await assert_untouched(memory_service, thread_id)

    @pytest.mark.parametrize(
        ("content", "status", "error"),
        [
            pytest.param(b'{"reason": ', 422, "RequestValidationError", id="malformed-json"),
            pytest.param(b'{"reason": "\xff"}', 400, "HTTPException", id="not-utf8"),
        ],
    )
    async def test_unreadable_json(
        self, memory_service: Service, content: bytes, status: int, error: str
    ) -> None:
        """A JSON-typed body that does not parse is a 422; one that is not UTF-8 text, a 400."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.post(
            f"/reviews/{thread_id}/reject",
            content=content,
            headers=as_("sam") | {"Content-Type": "application/json"},
        )
        problem(response, status, error)
        await assert_untouched(memory_service, thread_id)

    async def test_checked_before_authentication(self, memory_service: Service) -> None:
        """The media type is checked before `authenticate` runs: no reviewer, still a 415."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.post(
            f"/reviews/{thread_id}/approve",
            content=b"{}",
            headers={"Content-Type": "text/plain"},
        )
        problem(response, 415, "UnsupportedMediaTypeError")
        await assert_untouched(memory_service, thread_id)

    async def test_refusal_is_not_replayed(self, memory_service: Service) -> None:
        """A 415 is not stored under its Idempotency-Key: the JSON retry with that key decides."""
        thread_id = await memory_service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        key = {"Idempotency-Key": "click-1"}
        refused = await memory_service.client.post(
            url, content=b"{}", headers=as_("sam") | key | {"Content-Type": "text/plain"}
        )
        problem(refused, 415, "UnsupportedMediaTypeError")
        await assert_untouched(memory_service, thread_id)
        retried = await memory_service.client.post(url, json={}, headers=as_("sam") | key)
        assert retried.status_code == 200, retried.text
        assert "Idempotent-Replayed" not in retried.headers
        assert retried.json()["status"] == "completed"

    def test_error_type(self) -> None:
        """`UnsupportedMediaTypeError` is an `InvalidInputError` that maps to 415."""
        error = UnsupportedMediaTypeError("Send JSON.", content_type="text/plain")
        assert isinstance(error, InvalidInputError)
        assert isinstance(error, HitlError)
        assert error.content_type == "text/plain"
        assert status_for(error) == 415


class TestTooLarge:
    """Bodies past 1 MiB, and inputs past the coordinator's limits, are a 413 problem."""

    async def test_a_declared_oversized_body_is_413_unread(self, service: Service) -> None:
        """A `Content-Length` over the limit is refused before the body is read or parsed."""
        thread_id = await service.pause(PROMO)
        content = b'{"reason": "' + b"x" * MAX_BODY_BYTES + b'"}'
        response = await service.client.post(
            f"/reviews/{thread_id}/reject", content=content, headers=as_("sam") | JSON
        )
        body = problem(response, 413, "InputTooLargeError")
        assert (body["field"], body["size"], body["limit"], body["unit"]) == (
            "the request body",
            len(content),
            MAX_BODY_BYTES,
            "bytes",
        )
        await assert_untouched(service, thread_id)

    async def test_a_chunked_oversized_body_is_413(self, memory_service: Service) -> None:
        """A body without a length is read only until it passes the limit."""
        thread_id = await memory_service.pause(PROMO)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"reason": "'
            for _ in range(20):
                yield b"x" * 65_536
            yield b'"}'

        response = await memory_service.client.post(
            f"/reviews/{thread_id}/reject", content=chunks(), headers=as_("sam") | JSON
        )
        assert "content-length" not in response.request.headers
        problem(response, 413, "InputTooLargeError")
        await assert_untouched(memory_service, thread_id)

    async def test_a_chunked_body_under_the_limit_decides(self, memory_service: Service) -> None:
        """The body read by the check is the one the route parses."""
        thread_id = await memory_service.pause(PROMO)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"reason": "not suitable'
            yield b' for this customer"}'

        response = await memory_service.client.post(
            f"/reviews/{thread_id}/reject", content=chunks(), headers=as_("sam") | JSON
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "rejected"

    async def test_the_coordinators_limits_are_413(self, service_factory: Any) -> None:
        """An edit past the coordinator's `InputLimits` is a 413 naming the field; no change."""
        service = service_factory(limits=InputLimits(max_text_chars=len(PROMO) + 10))
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve",
            json={"response": "Capital at risk. " * 10},
            headers=as_("sam"),
        )
        body = problem(response, 413, "InputTooLargeError")
        assert (body["field"], body["size"], body["unit"]) == ("response", 170, "characters")
        assert "InputLimits(max_text_chars=...)" in body["detail"]
        await assert_untouched(service, thread_id)

    def test_error_type(self) -> None:
        """InputTooLargeError is an InvalidInputError that maps to 413."""
        err = InputTooLargeError("too big", field="f", size=2, limit=1, unit="bytes")
        assert isinstance(err, InvalidInputError)
        assert status_for(err) == 413


class TestCrossOrigin:
    """A decision sent by a page of another origin is refused, cookies or not."""

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"Origin": "http://evil.example"}, id="other-origin"),
            pytest.param({"Origin": "http://api:8080"}, id="other-port"),
            pytest.param({"Origin": "https://api"}, id="other-scheme"),
            pytest.param({"Origin": "null"}, id="opaque-origin"),
            pytest.param({"Sec-Fetch-Site": "cross-site"}, id="cross-site-no-origin"),
            pytest.param(
                {"Sec-Fetch-Site": "same-site", "Origin": "http://inbox.api"}, id="same-site"
            ),
        ],
    )
    @pytest.mark.parametrize("decision", ["approve", "reject"])
    async def test_cross_origin_decision_is_403(
        self, service: Service, decision: str, headers: dict[str, str]
    ) -> None:
        """A JSON decision from another origin is a 403 problem and decides nothing."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/{decision}", json={}, headers=as_("sam") | headers
        )
        body = problem(response, 403, "CrossOriginRequestError")
        assert body["thread_id"] == thread_id
        assert body.get("origin") == headers.get("Origin")
        assert "trusted_origins" in body["detail"]
        await assert_untouched(service, thread_id)

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"Origin": SERVICE_ORIGIN}, id="own-origin"),
            pytest.param({"Origin": "http://API:80"}, id="own-origin-default-port"),
            pytest.param(
                {"Origin": SERVICE_ORIGIN, "Sec-Fetch-Site": "same-origin"}, id="same-origin"
            ),
            pytest.param({"Sec-Fetch-Site": "none"}, id="user-initiated"),
            pytest.param({}, id="not-a-browser"),
        ],
    )
    async def test_own_origin_decides(
        self, memory_service: Service, headers: dict[str, str]
    ) -> None:
        """The service's own pages, and clients that are not browsers, decide as usual."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.post(
            f"/reviews/{thread_id}/approve", json={}, headers=as_("sam") | headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"

    async def test_trusted_origin_decides(self, service_with: ServiceWith) -> None:
        """An origin listed in `trusted_origins` may decide; any other is still refused."""
        service = service_with(trusted_origins=["https://Portal.bank.example:443"])
        first, second = await service.pause(PROMO), await service.pause(PROMO)
        refused = await service.client.post(
            f"/reviews/{first}/approve",
            json={},
            headers=as_("sam") | {"Origin": "https://evil.bank.example"},
        )
        problem(refused, 403, "CrossOriginRequestError")
        accepted = await service.client.post(
            f"/reviews/{second}/approve",
            json={},
            headers=as_("sam")
            | {"Origin": "https://portal.bank.example", "Sec-Fetch-Site": "same-site"},
        )
        assert accepted.status_code == 200, accepted.text
        assert [r.thread_id for r in await service.coord.pending()] == [first]

    async def test_reads_are_not_refused(self, memory_service: Service) -> None:
        """GET routes answer any origin: the browser's same-origin policy guards what it reads."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.get(
            "/reviews",
            headers=as_("sam") | {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert response.status_code == 200
        assert [r["thread_id"] for r in response.json()["items"]] == [thread_id]

    async def test_origin_checked_before_media_type(self, memory_service: Service) -> None:
        """A cross-site form post is refused as cross-origin (403) before its body is looked at."""
        thread_id = await memory_service.pause(PROMO)
        response = await memory_service.client.post(
            f"/reviews/{thread_id}/approve",
            content=b"reason=x",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "http://evil.example",
            },
        )
        problem(response, 403, "CrossOriginRequestError")
        await assert_untouched(memory_service, thread_id)

    @pytest.mark.parametrize(
        "origins",
        [["*"], ["https://bank.example/inbox"], ["bank.example"], ["ftp://bank.example"], "x"],
    )
    def test_bad_trusted_origins(self, origins: Any) -> None:
        """`trusted_origins` must list `scheme://host[:port]` origins; anything else is refused."""
        with pytest.raises(ConfigurationError, match="trusted_origins"):
            create_review_router(lambda: None, authenticate=authenticate, trusted_origins=origins)  # type: ignore[arg-type,return-value]

    def test_error_type(self) -> None:
        """`CrossOriginRequestError` carries the refused origin and maps to 403."""
        error = CrossOriginRequestError("Refused.", origin="http://evil.example")
        assert isinstance(error, HitlError)
        assert error.origin == "http://evil.example"
        assert status_for(error) == 403


class TestFraming:
    """`/inbox` tells browsers who may frame it (nobody by default)."""

    async def test_inbox_refuses_every_frame(self, memory_service: Service) -> None:
        """By default the inbox sends `frame-ancestors 'none'` and `X-Frame-Options: DENY`."""
        response = await memory_service.client.get("/inbox")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["x-frame-options"] == "DENY"

    async def test_self_may_frame(self, service_with: ServiceWith) -> None:
        """`frame_ancestors=["'self'"]` lets the service's own pages frame the inbox."""
        response = await service_with(frame_ancestors=["'self'"]).client.get("/inbox")
        assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"

    async def test_listed_ancestors(self, service_with: ServiceWith) -> None:
        """A list of origins goes into `frame-ancestors`; X-Frame-Options cannot say it, so none."""
        service = service_with(frame_ancestors=["'self'", "https://portal.bank.example"])
        response = await service.client.get("/inbox")
        assert response.headers["content-security-policy"] == (
            "frame-ancestors 'self' https://portal.bank.example"
        )
        assert "x-frame-options" not in response.headers

    async def test_api_responses_unchanged(self, memory_service: Service) -> None:
        """JSON routes carry no frame headers: only the page can be framed."""
        response = await memory_service.client.get("/me", headers=as_("sam"))
        assert response.status_code == 200
        assert "x-frame-options" not in response.headers

    @pytest.mark.parametrize(
        "ancestors",
        [
            [],
            ["https://a.example; script-src *"],
            ["https://a.example b.example"],
            ["'unsafe'"],
            ["'none'", "'self'"],
        ],
    )
    def test_bad_frame_ancestors(self, ancestors: list[str]) -> None:
        """Each `frame_ancestors` entry must be one CSP source; an injection is refused."""
        with pytest.raises(ConfigurationError, match="frame_ancestors"):
            create_review_router(
                lambda: None,  # type: ignore[arg-type,return-value]
                authenticate=authenticate,
                events=ReviewEvents(),
                frame_ancestors=ancestors,
            )
