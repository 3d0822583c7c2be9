"""Every route of the review router, on every backend, and how each error maps to HTTP."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import httpx
import pytest

from hitl_compliance import (
    AlreadyDecidedError,
    ConfigurationError,
    DuplicateVoteError,
    HitlError,
    InvalidDecisionError,
    InvalidInputError,
    NotAuthorizedError,
    PolicyViolationError,
    ReviewNotFoundError,
    RoleBasedPolicy,
    RuleResult,
    StaleReviewError,
    ThreadBusyError,
)
from hitl_compliance._fca import REJECTION_MESSAGE, SMCR_APPROVER
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.fastapi import ReviewEvents, create_review_router
from tests.api.conftest import (
    ADVICE,
    CLEAN,
    LEAK,
    PROMO,
    Service,
    ServiceFactory,
    as_,
    authenticate,
    make_app,
    who,
)

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """Assert `response` is an RFC 7807 problem of `status` and `error`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error"] == error
    assert body["type"]
    assert body["title"]
    assert body["detail"]
    return body


async def events_of(service: Service, thread_id: str) -> list[tuple[str, str]]:
    """(event, actor) of the thread's review records (not its `replied` records)."""
    rows = await service.coord.audit_log(thread_id)
    return [(r.event, r.actor) for r in rows if r.event != REPLIED]


class TestMe:
    """`GET /me` and authentication."""

    async def test_me(self, service: Service) -> None:
        """The reviewer `authenticate` resolved, with sorted roles."""
        response = await service.client.get("/me", headers=as_("sam"))
        assert response.status_code == 200
        assert response.json() == {"id": "sam", "roles": [SMCR_APPROVER]}

    async def test_unauthenticated(self, service: Service) -> None:
        """An HTTPException from `authenticate` becomes a 401 problem, headers kept."""
        response = await service.client.get("/reviews")
        body = problem(response, 401, "HTTPException")
        assert body["type"] == "about:blank"
        assert body["title"] == "Unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_authenticate_must_return_a_reviewer(self, memory_service: Service) -> None:
        """A dependency returning something else is a server error, not a silent pass."""
        app = make_app(memory_service.coord, None)
        app.dependency_overrides[authenticate] = lambda: "sam"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            response = await client.get("/reviews")
        body = problem(response, 500, "ConfigurationError")
        assert "server log" in body["detail"]


class TestListReviews:
    """`GET /reviews`: filters, paging and `mine`."""

    async def test_lists_pending_oldest_first(self, service: Service) -> None:
        """Each item carries the draft, findings with evidence, deadline and quorum."""
        first = await service.pause(ADVICE)
        service.clock.advance(minutes=1)
        second = await service.pause(PROMO)
        await service.coord.process("api-clean", CLEAN)
        response = await service.client.get("/reviews", headers=as_("ops"))
        assert response.status_code == 200
        page = response.json()
        assert [r["thread_id"] for r in page["items"]] == [first, second]
        assert page["next_cursor"] is None
        item = page["items"][0]
        assert item["draft_response"] == ADVICE
        assert {v["rule"]: v["evidence"] for v in item["violations"]} == {
            "investment_advice": ["You should invest"],
            "guaranteed_returns": ["guaranteed returns"],
        }
        assert item["approvals_required"] == 1
        assert item["votes"] == []
        assert item["deadline"] is not None

    async def test_rule_filter(self, service: Service) -> None:
        """`rule=` keeps reviews with a finding of that rule."""
        advice = await service.pause(ADVICE)
        await service.pause(PROMO)
        response = await service.client.get(
            "/reviews", params={"rule": "investment_advice"}, headers=as_("sam")
        )
        assert [r["thread_id"] for r in response.json()["items"]] == [advice]

    async def test_older_than_seconds_and_iso(self, service: Service) -> None:
        """`older_than` takes seconds or an aware ISO datetime."""
        old = await service.pause(ADVICE)
        service.clock.advance(hours=1)
        await service.pause(PROMO)
        for value in ("1800", (service.clock.now - timedelta(minutes=30)).isoformat()):
            response = await service.client.get(
                "/reviews", params={"older_than": value}, headers=as_("sam")
            )
            assert [r["thread_id"] for r in response.json()["items"]] == [old], value
        zulu = (service.clock.now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = await service.client.get(
            "/reviews", params={"older_than": zulu}, headers=as_("sam")
        )
        assert [r["thread_id"] for r in response.json()["items"]] == [old]

    @pytest.mark.parametrize("value", ["yesterday", "2025-01-01T09:00:00", "-5", "nan", "1e300"])
    async def test_bad_older_than(self, memory_service: Service, value: str) -> None:
        """Unparseable, naive, negative or absurd `older_than` is a 422 InvalidInputError."""
        response = await memory_service.client.get(
            "/reviews", params={"older_than": value}, headers=as_("sam")
        )
        problem(response, 422, "InvalidInputError")

    async def test_paging(self, service: Service) -> None:
        """`limit` and `next_cursor` walk every review exactly once; the last page says so."""
        threads = [await service.pause(PROMO) for _ in range(4)]
        pages: list[list[str]] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await service.client.get("/reviews", params=params, headers=as_("sam"))).json()
            pages.append([r["thread_id"] for r in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [threads[:2], threads[2:]]  # no empty third page

    async def test_bad_cursor_and_limit(self, service: Service) -> None:
        """A forged cursor is a 422 InvalidInputError; a bad limit a request validation 422."""
        response = await service.client.get(
            "/reviews", params={"cursor": "nope"}, headers=as_("sam")
        )
        problem(response, 422, "InvalidInputError")
        response = await service.client.get("/reviews", params={"limit": 0}, headers=as_("sam"))
        body = problem(response, 422, "RequestValidationError")
        assert body["errors"][0]["loc"] == ["query", "limit"]

    async def test_mine(self, service: Service) -> None:
        """`mine=true` keeps what the caller may decide now, by the policy."""
        advice = await service.pause(ADVICE)
        promo = await service.pause(PROMO)

        async def mine(reviewer: str) -> list[str]:
            response = await service.client.get(
                "/reviews", params={"mine": "true"}, headers=as_(reviewer)
            )
            return [r["thread_id"] for r in response.json()["items"]]

        assert await mine("sam") == [advice, promo]
        assert await mine("cora") == [promo]
        assert await mine("ops") == []


class TestGetReview:
    """`GET /reviews/{thread_id}`."""

    async def test_pending(self, service: Service) -> None:
        """The full reviewer context of one pending review."""
        thread_id = await service.pause(ADVICE)
        response = await service.client.get(f"/reviews/{thread_id}", headers=as_("cora"))
        assert response.status_code == 200
        body = response.json()
        [listed] = await service.coord.pending()
        assert body == listed.model_dump(mode="json")

    async def test_not_pending_is_404(self, service: Service) -> None:
        """Unknown and already decided threads are 404 ReviewNotFoundError."""
        problem(
            await service.client.get("/reviews/nobody", headers=as_("sam")),
            404,
            "ReviewNotFoundError",
        )
        thread_id = await service.pause(PROMO)
        await service.coord.approve(thread_id, reviewer=who("sam"))
        body = problem(
            await service.client.get(f"/reviews/{thread_id}", headers=as_("sam")),
            404,
            "ReviewNotFoundError",
        )
        assert "approved" in body["detail"]
        assert body["thread_id"] == thread_id

    async def test_nul_in_thread_id_is_422(self, service: Service) -> None:
        """Text no store can keep (NUL) is refused at the edge on every backend."""
        response = await service.client.get("/reviews/a%00b", headers=as_("sam"))
        problem(response, 422, "RequestValidationError")


class TestApprove:
    """`POST /reviews/{thread_id}/approve`."""

    async def test_approve_draft(self, service: Service) -> None:
        """`{}` approves the draft as it is; the result says what was delivered."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve",
            json={"metadata": {"ticket": "C-9"}},
            headers=as_("cora"),
        )
        assert response.status_code == 200
        result = response.json()
        assert result["status"] == "completed"
        assert result["agent_response"] == PROMO
        assert result["reviewer"] == "cora"
        assert result["metadata"]["ticket"] == "C-9"
        assert await service.coord.pending() == []
        assert await events_of(service, thread_id) == [("paused", "system"), ("approved", "cora")]

    async def test_approve_edited(self, service: Service) -> None:
        """An edited `response` is delivered and the audit keeps the diff."""
        thread_id = await service.pause(ADVICE)
        [review] = await service.coord.pending()
        edit = "Please speak to one of our qualified advisers."
        response = await service.client.post(
            f"/reviews/{thread_id}/approve",
            json={"response": edit, "expected": review.draft_sha256},
            headers=as_("sam"),
        )
        assert response.status_code == 200
        assert response.json()["agent_response"] == edit
        approved = (await service.coord.audit_log(thread_id))[-1]
        assert approved.event == "approved"
        assert "+Please speak" in approved.payload["diff"]

    async def test_stale(self, service: Service) -> None:
        """A stale `expected` is a 409 StaleReviewError; the review stays pending."""
        thread_id = await service.pause(PROMO)
        body = problem(
            await service.client.post(
                f"/reviews/{thread_id}/approve", json={"expected": "0" * 64}, headers=as_("sam")
            ),
            409,
            "StaleReviewError",
        )
        assert body["expected"] == "0" * 64
        assert body["actual"]
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    async def test_already_decided(self, service: Service) -> None:
        """A second decision is a 409 AlreadyDecidedError naming the review's status."""
        thread_id = await service.pause(PROMO)
        await service.coord.reject(thread_id, reviewer=who("sam"), reason="no")
        body = problem(
            await service.client.post(
                f"/reviews/{thread_id}/approve", json={}, headers=as_("cora")
            ),
            409,
            "AlreadyDecidedError",
        )
        assert body["review_status"] == "rejected"

    async def test_unknown_thread(self, service: Service) -> None:
        """A thread that never paused is a 404 ReviewNotFoundError."""
        response = await service.client.post("/reviews/ghost/approve", json={}, headers=as_("sam"))
        problem(response, 404, "ReviewNotFoundError")

    async def test_not_authorized(self, service: Service) -> None:
        """The policy's refusal is a 403 with the missing roles, audited as `denied`."""
        thread_id = await service.pause(ADVICE)
        body = problem(
            await service.client.post(
                f"/reviews/{thread_id}/approve", json={}, headers=as_("cora")
            ),
            403,
            "NotAuthorizedError",
        )
        assert body["reviewer"] == "cora"
        assert body["missing_roles"] == [SMCR_APPROVER]
        assert await events_of(service, thread_id) == [("paused", "system"), ("denied", "cora")]
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    async def test_edit_breaking_a_block_rule(self, service: Service) -> None:
        """An edit that leaks account details is a 422 PolicyViolationError with findings."""
        thread_id = await service.pause(PROMO)
        body = problem(
            await service.client.post(
                f"/reviews/{thread_id}/approve", json={"response": LEAK}, headers=as_("sam")
            ),
            422,
            "PolicyViolationError",
        )
        assert [f["rule"] for f in body["findings"] if f["verdict"] == "block"] == [
            "account_details"
        ]
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    async def test_blank_edit(self, service: Service) -> None:
        """A blank edited reply fails the library's validation: 422 InvalidDecisionError."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve", json={"response": "   "}, headers=as_("sam")
        )
        problem(response, 422, "InvalidDecisionError")

    async def test_tool_args_on_a_text_review(self, service: Service) -> None:
        """tool_args on the review of a reply (not a tool call): 422 InvalidDecisionError."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve", json={"tool_args": {"x": 1}}, headers=as_("sam")
        )
        problem(response, 422, "InvalidDecisionError")
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    @pytest.mark.parametrize(
        "payload",
        [
            None,
            {"unknown": 1},
            {"tool_args": [1]},
            {"tool_args": "{}"},
            {"tool_args": {"n": 2**70}},
            {"metadata": {"k": "nul\x00"}},
            {"metadata": []},
            {"metadata": {"k": 2**70}},
            {"response": "x" * 20_001},
        ],
        ids=[
            "no-body",
            "extra-field",
            "tool-args-list",
            "tool-args-string",
            "tool-args-int-beyond-64-bits",
            "nul-in-metadata",
            "metadata-not-object",
            "int-beyond-64-bits",
            "too-long",
        ],
    )
    async def test_request_validation(self, service: Service, payload: Any) -> None:
        """Bodies failing the request schema are 422 problems listing each failed check."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve",
            headers=as_("sam"),
            **({} if payload is None else {"json": payload}),
        )
        body = problem(response, 422, "RequestValidationError")
        assert body["errors"]
        assert all({"loc", "msg", "type"} <= set(e) for e in body["errors"])
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    async def test_form_post_cannot_approve(self, service: Service) -> None:
        """A non-JSON body (what a cross-site form can send) is refused, not an approval."""
        thread_id = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{thread_id}/approve",
            content=b"{}",
            headers={**as_("sam"), "Content-Type": "text/plain"},
        )
        problem(response, 415, "UnsupportedMediaTypeError")
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]

    async def test_quorum_votes(self, service_factory: ServiceFactory) -> None:
        """Below the quorum an approval is a vote (200, `paused`); a second vote is a 409."""
        service = service_factory(
            policy=RoleBasedPolicy(
                rule_roles={"investment_advice": SMCR_APPROVER}, quorum={"high": 2}
            )
        )
        thread_id = await service.pause(ADVICE)
        first = await service.client.post(
            f"/reviews/{thread_id}/approve", json={}, headers=as_("sam")
        )
        assert first.status_code == 200
        assert first.json()["status"] == "paused"
        assert [v["reviewer"] for v in first.json()["votes"]] == ["sam"]
        again = await service.client.post(
            f"/reviews/{thread_id}/approve", json={}, headers=as_("sam")
        )
        problem(again, 409, "DuplicateVoteError")
        review = (await service.client.get(f"/reviews/{thread_id}", headers=as_("dan"))).json()
        assert review["approvals_required"] == 2
        assert len(review["votes"]) == 1
        final = await service.client.post(
            f"/reviews/{thread_id}/approve", json={}, headers=as_("dan")
        )
        assert final.json()["status"] == "completed"


class TestReject:
    """`POST /reviews/{thread_id}/reject`."""

    async def test_reject(self, service: Service) -> None:
        """The customer gets the rejection message; the reason is audited."""
        thread_id = await service.pause(ADVICE)
        response = await service.client.post(
            f"/reviews/{thread_id}/reject",
            json={"reason": "personal recommendation", "metadata": {"ticket": 7}},
            headers=as_("sam"),
        )
        assert response.status_code == 200
        result = response.json()
        assert result["status"] == "rejected"
        assert result["agent_response"] == REJECTION_MESSAGE
        rejected = (await service.coord.audit_log(thread_id))[-1]
        assert (rejected.event, rejected.actor) == ("rejected", "sam")
        assert rejected.payload["reason"] == "personal recommendation"

    async def test_reject_errors(self, service: Service) -> None:
        """403 for a reviewer without the roles, 409 for a stale `expected`, 404 for no review."""
        thread_id = await service.pause(ADVICE)
        problem(
            await service.client.post(f"/reviews/{thread_id}/reject", json={}, headers=as_("ops")),
            403,
            "NotAuthorizedError",
        )
        problem(
            await service.client.post(
                f"/reviews/{thread_id}/reject", json={"expected": "stale"}, headers=as_("sam")
            ),
            409,
            "StaleReviewError",
        )
        problem(
            await service.client.post("/reviews/ghost/reject", json={}, headers=as_("sam")),
            404,
            "ReviewNotFoundError",
        )
        assert [r.thread_id for r in await service.coord.pending()] == [thread_id]


class TestAudit:
    """`GET /reviews/{thread_id}/audit` and `GET /audit/verify`."""

    async def test_audit_log(self, service: Service) -> None:
        """The thread's audit records, oldest first, as the coordinator returns them."""
        thread_id = await service.pause(PROMO)
        await service.coord.approve(thread_id, reviewer=who("cora"))
        response = await service.client.get(f"/reviews/{thread_id}/audit", headers=as_("ops"))
        assert response.status_code == 200
        assert [(r["event"], r["actor"]) for r in response.json()] == [
            ("paused", "system"),
            (REPLIED, "cora"),
            ("approved", "cora"),
        ]
        assert response.json() == [
            r.model_dump(mode="json") for r in await service.coord.audit_log(thread_id)
        ]

    async def test_audit_of_unknown_thread_is_empty(self, service: Service) -> None:
        """A thread with no audit records gives an empty list."""
        response = await service.client.get("/reviews/ghost/audit", headers=as_("ops"))
        assert response.status_code == 200
        assert response.json() == []

    async def test_verify(self, service: Service) -> None:
        """The ledger report for the whole store and for one thread."""
        thread_id = await service.pause(PROMO)
        await service.coord.approve(thread_id, reviewer=who("cora"))
        whole = (await service.client.get("/audit/verify", headers=as_("ops"))).json()
        assert whole["ok"] is True
        assert whole["checked"] == 3  # paused, replied, approved
        assert whole["first_broken"] is None
        one = await service.client.get(
            "/audit/verify", params={"thread_id": thread_id}, headers=as_("ops")
        )
        assert one.json()["ok"] is True
        assert one.json()["checked"] == 3


class TestInbox:
    """`GET /inbox`: the reviewer page."""

    async def test_served_without_authentication(self, memory_service: Service) -> None:
        """The page is a static shell: HTML, no data, no external resources."""
        response = await memory_service.client.get("/inbox")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert "new EventSource(" in page
        assert '"mark"' in page
        assert "http://" not in page
        assert "https://" not in page

    async def test_can_be_left_out(self, memory_service: Service) -> None:
        """`inbox=False` serves no page; without `events` there is no stream."""
        app = make_app(memory_service.coord, None, inbox=False)
        paths = set(app.openapi()["paths"])
        assert "/inbox" not in paths
        assert "/events" not in paths
        assert "/reviews" in paths
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            assert (await client.get("/inbox")).status_code == 404
            assert (await client.get("/events", headers=as_("sam"))).status_code == 404


def _raise(error: HitlError) -> Any:
    async def approve(*args: Any, **kwargs: Any) -> Any:
        raise error

    return approve


class TestErrorMapping:
    """Each library error maps to one status and a problem body carrying its context."""

    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (ReviewNotFoundError("none", thread_id="t"), 404),
            (NotAuthorizedError("no", thread_id="t", reviewer="sam"), 403),
            (AlreadyDecidedError("done", thread_id="t", status="approved"), 409),
            (DuplicateVoteError("twice", thread_id="t"), 409),
            (StaleReviewError("stale", thread_id="t", expected="a", actual="b"), 409),
            (ThreadBusyError("busy", thread_id="t"), 409),
            (InvalidInputError("bad", thread_id="t"), 422),
            (InvalidDecisionError("bad decision", thread_id="t"), 422),
            (
                PolicyViolationError(
                    "blocked",
                    thread_id="t",
                    findings=(RuleResult("account_details", "block", "leak", ("x",)),),
                ),
                422,
            ),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, HitlError) else str(v),
    )
    async def test_mapping(
        self,
        memory_service: Service,
        monkeypatch: pytest.MonkeyPatch,
        error: HitlError,
        status: int,
    ) -> None:
        """The error's class name, message and thread id reach the client."""
        monkeypatch.setattr(memory_service.coord, "approve", _raise(error))
        response = await memory_service.client.post(
            "/reviews/t/approve", json={}, headers=as_("sam")
        )
        body = problem(response, status, type(error).__name__)
        assert body["detail"] == error.message
        assert body["thread_id"] == "t"
        assert body["type"] == f"urn:hitl-compliance:error:{type(error).__name__}"

    async def test_unexpected_library_error_is_opaque_500(
        self,
        memory_service: Service,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An error no client can fix is a 500 whose details go to the log, not the client."""
        monkeypatch.setattr(
            memory_service.coord, "approve", _raise(HitlError("db password=s3cret"))
        )
        response = await memory_service.client.post(
            "/reviews/t/approve", json={}, headers=as_("sam")
        )
        body = problem(response, 500, "HitlError")
        assert "s3cret" not in response.text
        assert "server log" in body["detail"]
        assert "s3cret" in caplog.text


class TestConfiguration:
    """`create_review_router` refuses arguments that cannot work, at build time."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"authenticate": "not callable"},
            {"events": object()},
            {"idempotency": object()},
            {"heartbeat": 0},
        ],
        ids=["authenticate", "events", "idempotency", "heartbeat"],
    )
    def test_bad_arguments(self, memory_service: Service, kwargs: dict[str, Any]) -> None:
        """Each bad argument raises ConfigurationError."""
        options: dict[str, Any] = {"authenticate": authenticate, **kwargs}
        with pytest.raises(ConfigurationError):
            create_review_router(memory_service.coord, **options)

    def test_bad_coordinator(self) -> None:
        """A coordinator that is neither a coordinator nor a callable is refused."""
        with pytest.raises(ConfigurationError, match="HitlCoordinator"):
            create_review_router(42, authenticate=authenticate)  # type: ignore[arg-type]

    async def test_coordinator_callable(self, memory_service: Service) -> None:
        """A zero-argument callable is resolved per request (for lifespan-opened backends)."""
        holder: dict[str, Any] = {}
        app = make_app(lambda: holder["coordinator"], ReviewEvents())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            holder["coordinator"] = memory_service.coord
            thread_id = await memory_service.pause(PROMO)
            listed = (await client.get("/reviews", headers=as_("sam"))).json()
            assert [r["thread_id"] for r in listed["items"]] == [thread_id]
            holder["coordinator"] = "not a coordinator"
            problem(await client.get("/reviews", headers=as_("sam")), 500, "ConfigurationError")


class TestOptionalDependency:
    """`hitl_compliance.fastapi` without FastAPI installed."""

    def test_missing_fastapi_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Importing it raises ConfigurationError telling what to install."""
        monkeypatch.setitem(sys.modules, "fastapi", None)
        monkeypatch.delitem(sys.modules, "hitl_compliance.fastapi")
        with pytest.raises(ConfigurationError, match=r'pip install "hitl-compliance\[api\]"'):
            import hitl_compliance.fastapi  # noqa: F401
