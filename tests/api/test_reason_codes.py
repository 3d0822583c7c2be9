"""The review service's reason codes: the taxonomy, decisions carrying a code, the counts."""

from __future__ import annotations

from typing import Any

from hitl_compliance import ReasonPolicy
from tests.api.conftest import PROMO, ServiceFactory, as_
from tests.api.test_routes import problem

POLICY = ReasonPolicy(require={"reject", "edit"})


class TestTaxonomy:
    async def test_lists_the_codes_and_the_policy(self, service_factory: ServiceFactory) -> None:
        """`GET /reason-codes` lists the coordinator's codes and which actions need one."""
        service = service_factory(reason_policy=POLICY)
        response = await service.client.get("/reason-codes", headers=as_("sam"))
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        assert [c["code"] for c in body["codes"]] == [c.code for c in service.coord.reason_codes]
        other = next(c for c in body["codes"] if c["code"] == "other")
        assert other["requires_text"] is True
        assert body["required_for"] == ["edit", "reject"]
        assert body["expiry_code"] is None

    async def test_needs_a_reviewer(self, service_factory: ServiceFactory) -> None:
        """Unauthenticated: 401, like every other route."""
        service = service_factory()
        assert (await service.client.get("/reason-codes")).status_code == 401


class TestDecisions:
    async def test_missing_or_unknown_code_is_422_and_changes_nothing(
        self, service_factory: ServiceFactory
    ) -> None:
        """A reject without a code, or with an unknown one: 422 ReasonCodeError, still pending."""
        service = service_factory(reason_policy=POLICY)
        thread_id = await service.pause(PROMO)
        for body in ({"reason": "no"}, {"reason": "no", "reason_code": "nope"}):
            response = await service.client.post(
                f"/reviews/{thread_id}/reject", json=body, headers=as_("cora")
            )
            problem(response, 422, "ReasonCodeError")
        assert [p.thread_id for p in await service.coord.pending()] == [thread_id]
        assert [r.event for r in await service.coord.audit_log(thread_id)] == ["paused"]

    async def test_code_reaches_the_ledger_and_the_counts(
        self, service_factory: ServiceFactory
    ) -> None:
        """A reject and an edit with codes are audited with them and counted."""
        service = service_factory(reason_policy=POLICY)
        rejected = await service.pause(PROMO)
        edited = await service.pause(PROMO)
        response = await service.client.post(
            f"/reviews/{rejected}/reject",
            json={"reason": "misleading", "reason_code": "misleading_promotion"},
            headers=as_("cora"),
        )
        assert response.status_code == 200, response.text
        response = await service.client.post(
            f"/reviews/{edited}/approve",
            json={
                "response": "Returns can go down as well as up.",
                "reason_code": "other",
                "reason": "rewrote",
            },
            headers=as_("cora"),
        )
        assert response.status_code == 200, response.text
        assert (await service.coord.audit_log(edited))[-1].payload["reason"] == "rewrote"
        counts = await service.client.get("/reason-codes/counts", headers=as_("sam"))
        assert counts.json() == [
            {"code": "misleading_promotion", "event": "rejected", "count": 1},
            {"code": "other", "event": "approved", "count": 1},
        ]
        later = await service.client.get(
            "/reason-codes/counts", params={"since": "2100-01-01T00:00:00Z"}, headers=as_("sam")
        )
        assert later.json() == []

    async def test_bad_since_is_422(self, service_factory: ServiceFactory) -> None:
        """A `since` that is not an aware ISO-8601 datetime is a 422 problem."""
        service = service_factory()
        for value in ("yesterday", "2026-01-01T00:00:00"):
            response = await service.client.get(
                "/reason-codes/counts", params={"since": value}, headers=as_("sam")
            )
            problem(response, 422, "InvalidInputError")
