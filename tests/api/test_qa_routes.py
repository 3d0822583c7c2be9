"""The second-line QA routes: `/qa/pending`, `/qa/{id}`, `/qa/{id}/verdict`, `/qa/disagreement`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from hitl_compliance import QaReview, QaSampling, Reviewer
from hitl_compliance.qa import QA_VERDICT_EVENT, qa_review_id
from tests.api.conftest import ADVICE, CLEAN, ROLES, Service, ServiceFactory, as_

QA = QaSampling(rate=1.0, seed="api", roles=frozenset({"qa"}))
"""Every auto-delivered reply is sampled; only a reviewer holding `qa` may judge one."""

QA_REVIEWER = Reviewer("qa", roles=frozenset({"qa"}))
"""The QA reviewer, for direct coordinator calls (bearer `qa`, added by `qa_service`)."""


@pytest.fixture
def qa_service(service_factory: ServiceFactory, monkeypatch: pytest.MonkeyPatch) -> Service:
    """The review service with QA sampling on, and a reviewer `qa` holding the QA role."""
    monkeypatch.setitem(ROLES, "qa", frozenset({"qa"}))
    return service_factory(qa_sampling=QA)


async def sample(service: Service, thread_id: str | None = None) -> QaReview:
    """Deliver a clean reply in a new thread (sampled at rate 1.0); its QA review."""
    thread = thread_id or f"qa-{uuid.uuid4().hex[:10]}"
    result = await service.coord.process(thread, CLEAN)
    assert result.status == "completed", result
    service.clock.advance(seconds=1)
    review = await service.coord.qa_review(qa_review_id(thread, "1"))
    assert review.verdict is None
    return review


def keyed(reviewer: str, key: str) -> dict[str, str]:
    """Headers authenticating as `reviewer` with `Idempotency-Key: key`."""
    return {**as_(reviewer), "Idempotency-Key": key}


async def verdict_rows(service: Service, thread_id: str) -> list[dict[str, Any]]:
    """The payloads of the thread's `qa_verdict` ledger rows."""
    return [
        dict(r.payload)
        for r in await service.coord.audit_log(thread_id)
        if r.event == QA_VERDICT_EVENT
    ]


class TestQaPending:
    """`GET /qa/pending`: the sample awaiting a verdict, apart from first-line reviews."""

    async def test_lists_the_sample_oldest_first(self, qa_service: Service) -> None:
        """Sampled replies are listed in sampling order, as `QaReview`s; a paused draft is not."""
        first = await sample(qa_service)
        second = await sample(qa_service)
        await qa_service.pause(ADVICE)
        got = await qa_service.client.get("/qa/pending", headers=as_("qa"))
        assert got.status_code == 200
        assert [QaReview.model_validate(item) for item in got.json()] == [first, second]
        assert got.json()[0]["qa_review_id"] == qa_review_id(first.thread_id, "1")
        limited = await qa_service.client.get("/qa/pending?limit=1", headers=as_("qa"))
        assert [item["qa_review_id"] for item in limited.json()] == [first.qa_review_id]

    async def test_a_judged_review_leaves_the_list(self, qa_service: Service) -> None:
        """Once judged, a QA review is no longer pending."""
        review = await sample(qa_service)
        await qa_service.coord.qa_verdict(
            review.qa_review_id, reviewer=QA_REVIEWER, verdict="agree"
        )
        got = await qa_service.client.get("/qa/pending", headers=as_("qa"))
        assert got.json() == []

    @pytest.mark.parametrize("limit", ["0", "501", "x"])
    async def test_bad_limit_is_a_422(self, memory_service: Service, limit: str) -> None:
        """`limit` outside 1-500 is a request-validation problem."""
        got = await memory_service.client.get(f"/qa/pending?limit={limit}", headers=as_("sam"))
        assert got.status_code == 422
        assert got.json()["error"] == "RequestValidationError"

    async def test_unauthenticated_is_a_401(self, memory_service: Service) -> None:
        """Every QA route depends on `authenticate`."""
        for path in ("/qa/pending", "/qa/disagreement", "/qa/qa:t:1"):
            got = await memory_service.client.get(path)
            assert got.status_code == 401, path
            assert got.headers["content-type"] == "application/problem+json"


class TestGetQaReview:
    """`GET /qa/{qa_review_id}`: one QA review by its `qa:<thread>:<turn>` id."""

    async def test_a_real_id_with_colons(self, qa_service: Service) -> None:
        """The id's colons route as they are, and percent-encoded."""
        review = await sample(qa_service)
        assert review.qa_review_id.count(":") == 2
        for path in (f"/qa/{review.qa_review_id}", f"/qa/{quote(review.qa_review_id, safe='')}"):
            got = await qa_service.client.get(path, headers=as_("qa"))
            assert got.status_code == 200, (path, got.text)
            assert QaReview.model_validate(got.json()) == review

    async def test_a_thread_id_with_a_slash(self, qa_service: Service) -> None:
        """A thread id holding `/` (and `:`) is still addressable, raw or percent-encoded."""
        review = await sample(qa_service, f"tenant/{uuid.uuid4().hex[:6]}:chat")
        encoded = quote(review.qa_review_id, safe="")
        for path in (f"/qa/{review.qa_review_id}", f"/qa/{encoded}"):
            got = await qa_service.client.get(path, headers=as_("qa"))
            assert got.status_code == 200, (path, got.text)
            assert got.json()["thread_id"] == review.thread_id
        judged = await qa_service.client.post(
            f"/qa/{encoded}/verdict", json={"verdict": "agree"}, headers=as_("qa")
        )
        assert judged.status_code == 200, judged.text
        assert judged.json()["verdict"] == "agree"

    async def test_a_verdict_shows(self, qa_service: Service) -> None:
        """After a verdict the review carries it, its reviewer and when."""
        review = await sample(qa_service)
        await qa_service.coord.qa_verdict(
            review.qa_review_id, reviewer=QA_REVIEWER, verdict="agree"
        )
        got = (await qa_service.client.get(f"/qa/{review.qa_review_id}", headers=as_("qa"))).json()
        assert (got["verdict"], got["reviewer"]) == ("agree", "qa")
        assert got["decided_at"] is not None

    @pytest.mark.parametrize("qa_id", ["qa:nobody:1", "nope", "qa:a/b:1"])
    async def test_unknown_is_a_404_problem(self, qa_service: Service, qa_id: str) -> None:
        """An id no QA review has is a 404 `QaReviewNotFoundError` naming the id."""
        got = await qa_service.client.get(f"/qa/{qa_id}", headers=as_("qa"))
        assert got.status_code == 404
        assert got.headers["content-type"] == "application/problem+json"
        problem = got.json()
        assert problem["error"] == "QaReviewNotFoundError"
        assert problem["title"] == "QA review not found"
        assert problem["qa_review_id"] == qa_id

    async def test_the_verdict_path_is_post_only(self, memory_service: Service) -> None:
        """`GET /qa/{id}/verdict` is not read as the id `{id}/verdict`: a 405 offering POST."""
        got = await memory_service.client.get("/qa/qa:t:1/verdict", headers=as_("sam"))
        assert got.status_code == 405
        assert got.headers["allow"] == "POST"

    async def test_nul_in_the_id_is_a_422(self, memory_service: Service) -> None:
        """Text no store can keep is refused at the edge."""
        got = await memory_service.client.get("/qa/qa:a%00b:1", headers=as_("sam"))
        assert got.status_code == 422


class TestQaVerdict:
    """`POST /qa/{qa_review_id}/verdict`: a verdict, once, audited, or a typed refusal."""

    async def test_agree_writes_one_ledger_row(self, qa_service: Service) -> None:
        """The judged review comes back; exactly one `qa_verdict` row; the ledger verifies."""
        review = await sample(qa_service)
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict", json={"verdict": "agree"}, headers=as_("qa")
        )
        assert got.status_code == 200, got.text
        judged = QaReview.model_validate(got.json())
        assert judged == await qa_service.coord.qa_review(review.qa_review_id)
        assert (judged.verdict, judged.reviewer, judged.reason_code) == ("agree", "qa", None)
        assert await verdict_rows(qa_service, review.thread_id) == [
            {
                "verdict": "agree",
                "reason_code": None,
                "rules": list(review.rules),
                "sampled_review_id": review.qa_review_id,
            }
        ]
        report = await qa_service.coord.verify_audit()
        assert report.ok, report
        served = await qa_service.client.get("/audit/verify", headers=as_("qa"))
        assert served.json()["ok"] is True

    async def test_disagree_with_a_code_and_reason(self, qa_service: Service) -> None:
        """A disagreement carries its reason code and text into the ledger row."""
        review = await sample(qa_service)
        body = {
            "verdict": "disagree",
            "reason_code": "missing_risk_warning",
            "reason": "no capital-at-risk line",
        }
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict", json=body, headers=as_("qa")
        )
        assert got.status_code == 200, got.text
        assert (got.json()["verdict"], got.json()["reason_code"]) == (
            "disagree",
            "missing_risk_warning",
        )
        [row] = await verdict_rows(qa_service, review.thread_id)
        assert (row["verdict"], row["reason_code"], row["reason"]) == (
            "disagree",
            "missing_risk_warning",
            "no capital-at-risk line",
        )
        assert (await qa_service.coord.verify_audit()).ok

    @pytest.mark.parametrize(
        ("reviewer", "body", "status", "error"),
        [
            ("qa", {"verdict": "maybe"}, 422, "RequestValidationError"),
            ("qa", {}, 422, "RequestValidationError"),
            ("qa", {"verdict": "agree", "extra": 1}, 422, "RequestValidationError"),
            ("qa", {"verdict": "disagree"}, 422, "InvalidDecisionError"),
            ("qa", {"verdict": "disagree", "reason_code": "nope"}, 422, "ReasonCodeError"),
            ("qa", {"verdict": "disagree", "reason_code": "other"}, 422, "ReasonCodeError"),
            ("qa", {"verdict": "agree", "reason": "a\u0000b"}, 422, "RequestValidationError"),
            ("cora", {"verdict": "agree"}, 403, "NotAuthorizedError"),
        ],
    )
    async def test_a_refusal_changes_nothing(
        self,
        qa_service: Service,
        reviewer: str,
        body: dict[str, Any],
        status: int,
        error: str,
    ) -> None:
        """A bad verdict or code, or a reviewer without the QA role: a typed problem, no row."""
        review = await sample(qa_service)
        before = await qa_service.coord.audit_log(review.thread_id)
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict", json=body, headers=as_(reviewer)
        )
        assert got.status_code == status, got.text
        assert got.headers["content-type"] == "application/problem+json"
        assert got.json()["error"] == error
        if status == 403:
            assert (got.json()["reviewer"], got.json()["missing_roles"]) == ("cora", ["qa"])
            assert got.json()["thread_id"] == review.thread_id
        assert await qa_service.coord.audit_log(review.thread_id) == before
        assert await qa_service.coord.qa_review(review.qa_review_id) == review

    async def test_already_recorded_is_a_409(self, qa_service: Service) -> None:
        """A second verdict is a 409 `QaAlreadyRecordedError` naming the verdict; one row stays."""
        review = await sample(qa_service)
        url = f"/qa/{review.qa_review_id}/verdict"
        assert (
            await qa_service.client.post(url, json={"verdict": "agree"}, headers=as_("qa"))
        ).status_code == 200
        again = await qa_service.client.post(
            url,
            json={"verdict": "disagree", "reason_code": "missing_risk_warning"},
            headers=as_("qa"),
        )
        assert again.status_code == 409
        problem = again.json()
        assert problem["error"] == "QaAlreadyRecordedError"
        assert problem["title"] == "QA verdict already recorded"
        assert (problem["review_status"], problem["qa_review_id"]) == (
            "agree",
            review.qa_review_id,
        )
        assert len(await verdict_rows(qa_service, review.thread_id)) == 1

    async def test_unknown_is_a_404(self, qa_service: Service) -> None:
        """A verdict on an id no QA review has (a turn never sampled) is a 404; nothing written."""
        review = await sample(qa_service)
        before = await qa_service.coord.audit_log(review.thread_id)
        unknown = qa_review_id(review.thread_id, "2")
        got = await qa_service.client.post(
            f"/qa/{unknown}/verdict", json={"verdict": "agree"}, headers=as_("qa")
        )
        assert got.status_code == 404
        assert (got.json()["error"], got.json()["qa_review_id"]) == (
            "QaReviewNotFoundError",
            unknown,
        )
        assert await qa_service.coord.audit_log(review.thread_id) == before
        assert await qa_service.coord.qa_pending() == [review]

    @pytest.mark.parametrize("qa_id", ["a\nb", "x\n", "a/verdict", "qa:a/b:1"])
    async def test_any_text_routes_to_the_verdict(
        self, memory_service: Service, qa_id: str
    ) -> None:
        """Newlines and slashes in the id reach the route (a 404 problem), never a redirect."""
        got = await memory_service.client.post(
            f"/qa/{quote(qa_id, safe='')}/verdict", json={"verdict": "agree"}, headers=as_("sam")
        )
        assert got.status_code == 404, got.text
        assert got.json()["qa_review_id"] == qa_id

    async def test_unauthenticated_is_a_401(self, qa_service: Service) -> None:
        """No reviewer, no verdict."""
        review = await sample(qa_service)
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict", json={"verdict": "agree"}
        )
        assert got.status_code == 401
        assert await qa_service.coord.qa_review(review.qa_review_id) == review

    async def test_body_must_be_json(self, qa_service: Service) -> None:
        """A form post is a 415 before authentication, as on the decision routes."""
        review = await sample(qa_service)
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict",
            content=b"verdict=agree",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert got.status_code == 415
        assert got.json()["error"] == "UnsupportedMediaTypeError"
        assert await qa_service.coord.qa_review(review.qa_review_id) == review

    async def test_cross_origin_is_a_403(self, qa_service: Service) -> None:
        """A browser's POST from another origin is refused with the reviewer's own session."""
        review = await sample(qa_service)
        got = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict",
            json={"verdict": "agree"},
            headers={**as_("qa"), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert got.status_code == 403
        assert (got.json()["error"], got.json()["origin"]) == (
            "CrossOriginRequestError",
            "https://evil.example",
        )
        assert await qa_service.coord.qa_review(review.qa_review_id) == review
        own = await qa_service.client.post(
            f"/qa/{review.qa_review_id}/verdict",
            json={"verdict": "agree"},
            headers={**as_("qa"), "Origin": "http://api", "Sec-Fetch-Site": "same-origin"},
        )
        assert own.status_code == 200


class TestQaVerdictIdempotency:
    """`Idempotency-Key` on a verdict: replayed as on the decision routes."""

    async def test_repeat_returns_the_first_response(self, qa_service: Service) -> None:
        """Same reviewer, path, key and body: the first answer again, one ledger row."""
        review = await sample(qa_service)
        url = f"/qa/{review.qa_review_id}/verdict"
        body = {"verdict": "disagree", "reason_code": "missing_risk_warning"}
        first = await qa_service.client.post(url, json=body, headers=keyed("qa", "k-1"))
        again = await qa_service.client.post(url, json=body, headers=keyed("qa", "k-1"))
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert len(await verdict_rows(qa_service, review.thread_id)) == 1
        assert (await qa_service.coord.verify_audit()).ok

    async def test_key_reused_with_another_body(self, qa_service: Service) -> None:
        """The key sent again with another verdict is a 422 and records nothing more."""
        review = await sample(qa_service)
        url = f"/qa/{review.qa_review_id}/verdict"
        first = await qa_service.client.post(
            url, json={"verdict": "agree"}, headers=keyed("qa", "k-2")
        )
        assert first.status_code == 200
        reused = await qa_service.client.post(
            url,
            json={"verdict": "disagree", "reason_code": "missing_risk_warning"},
            headers=keyed("qa", "k-2"),
        )
        assert reused.status_code == 422
        assert reused.json()["error"] == "IdempotencyKeyReused"
        assert [r["verdict"] for r in await verdict_rows(qa_service, review.thread_id)] == ["agree"]

    async def test_a_refusal_is_replayed(self, qa_service: Service) -> None:
        """A final 403 is replayed, even after the role would allow it (same reviewer id)."""
        review = await sample(qa_service)
        url = f"/qa/{review.qa_review_id}/verdict"
        first = await qa_service.client.post(
            url, json={"verdict": "agree"}, headers=keyed("cora", "k-3")
        )
        again = await qa_service.client.post(
            url, json={"verdict": "agree"}, headers=keyed("cora", "k-3")
        )
        assert first.status_code == again.status_code == 403
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert await verdict_rows(qa_service, review.thread_id) == []

    async def test_keys_are_per_reviewer(self, qa_service: Service) -> None:
        """One key used by another reviewer is another request."""
        review = await sample(qa_service)
        url = f"/qa/{review.qa_review_id}/verdict"
        denied = await qa_service.client.post(
            url, json={"verdict": "agree"}, headers=keyed("cora", "shared")
        )
        assert denied.status_code == 403
        judged = await qa_service.client.post(
            url, json={"verdict": "agree"}, headers=keyed("qa", "shared")
        )
        assert judged.status_code == 200
        assert "idempotent-replayed" not in judged.headers


class TestQaDisagreement:
    """`GET /qa/disagreement`: per-rule counts of the sample with the disagreement rate."""

    async def test_counts_per_rule(self, qa_service: Service) -> None:
        """Each rule of the sample: sampled, reviewed, disagreements and their rate."""
        agreed = await sample(qa_service)
        disagreed = await sample(qa_service)
        await sample(qa_service)  # no verdict yet
        await qa_service.coord.qa_verdict(
            agreed.qa_review_id, reviewer=QA_REVIEWER, verdict="agree"
        )
        await qa_service.coord.qa_verdict(
            disagreed.qa_review_id,
            reviewer=QA_REVIEWER,
            verdict="disagree",
            reason_code="missing_risk_warning",
        )
        got = await qa_service.client.get("/qa/disagreement", headers=as_("qa"))
        assert got.status_code == 200
        expected = [
            {
                "rule": c.rule,
                "sampled": c.sampled,
                "reviewed": c.reviewed,
                "disagreements": c.disagreements,
                "disagreement_rate": c.disagreement_rate,
            }
            for c in await qa_service.coord.qa_disagreement()
        ]
        assert got.json() == expected
        assert [row["rule"] for row in got.json()] == sorted(agreed.rules)
        for row in got.json():
            assert (row["sampled"], row["reviewed"], row["disagreements"]) == (3, 2, 1)
            assert row["disagreement_rate"] == 0.5

    async def test_window_and_no_verdict_yet(self, qa_service: Service) -> None:
        """`since` / `until` bound the sampling time; before any verdict the rate is null."""
        first = await sample(qa_service)
        second = await sample(qa_service)
        since = second.sampled_at.isoformat()
        got = await qa_service.client.get(
            "/qa/disagreement", params={"since": since}, headers=as_("qa")
        )
        assert {(r["sampled"], r["reviewed"], r["disagreement_rate"]) for r in got.json()} == {
            (1, 0, None)
        }
        until = (first.sampled_at - timedelta(seconds=1)).isoformat()
        got = await qa_service.client.get(
            "/qa/disagreement", params={"until": until}, headers=as_("qa")
        )
        assert got.json() == []

    @pytest.mark.parametrize("params", [{"since": "yesterday"}, {"until": "2031-01-01T00:00:00"}])
    async def test_bad_times_are_422(self, memory_service: Service, params: dict[str, str]) -> None:
        """An unparseable or naive datetime is an `InvalidInputError` problem."""
        got = await memory_service.client.get("/qa/disagreement", params=params, headers=as_("sam"))
        assert got.status_code == 422
        assert got.json()["error"] == "InvalidInputError"
