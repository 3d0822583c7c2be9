"""`GET /reviews?assigned_to=`: a reviewer's queue over HTTP, with why each review is in it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitl_compliance import AssignmentRule, Routing
from tests.api.conftest import ADVICE, PROMO, ROLES, ServiceFactory

ROUTING = Routing(
    rules=[AssignmentRule("sam", severity="high")],
    default="queue:desk",
    queues={"desk": {"cora"}},
)


class TestAssignedTo:
    async def test_lists_the_reviewers_queue_with_the_reason(
        self, service_factory: ServiceFactory
    ) -> None:
        """`assigned_to` filters exactly; items carry `assigned_to` and `assignment_reason`."""
        service = service_factory(routing=ROUTING)
        advice = await service.pause(ADVICE)
        promo = await service.pause(PROMO)
        auth = {"Authorization": "Bearer cora"}
        got = await service.client.get("/reviews", params={"assigned_to": "cora"}, headers=auth)
        assert got.status_code == 200
        [item] = got.json()["items"]
        assert (item["thread_id"], item["assigned_to"]) == (promo, "queue:desk")
        assert item["assignment_reason"] == "no routing rule matched -> queue:desk"
        got = await service.client.get("/reviews", params={"assigned_to": "sam"}, headers=auth)
        assert [i["thread_id"] for i in got.json()["items"]] == [advice]
        until = service.clock() + timedelta(days=1)
        await service.coord.delegate("sam", "dan", until=until, by="sam")
        got = await service.client.get("/reviews", params={"assigned_to": "dan"}, headers=auth)
        [item] = got.json()["items"]
        assert (item["thread_id"], item["delegated_from"]) == (advice, "sam")

    async def test_without_routing_is_a_422(self, service_factory: ServiceFactory) -> None:
        """A service whose coordinator assigns nothing refuses the filter with a problem."""
        service = service_factory()
        got = await service.client.get(
            "/reviews", params={"assigned_to": "cora"}, headers={"Authorization": "Bearer cora"}
        )
        assert got.status_code == 422
        assert "routing" in got.json()["detail"]


class TestReassignRoute:
    async def test_a_supervisor_reassigns_and_others_are_refused(
        self, service_factory: ServiceFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`POST /reviews/{id}/assign` moves the review (audited); a non-supervisor gets 403."""
        monkeypatch.setitem(ROLES, "lead", frozenset({"supervisor"}))
        service = service_factory(routing=ROUTING)
        thread = await service.pause(PROMO)
        body = {"to": "dan", "reason": "cora is away"}
        refused = await service.client.post(
            f"/reviews/{thread}/assign", json=body, headers={"Authorization": "Bearer cora"}
        )
        assert refused.status_code == 403
        got = await service.client.post(
            f"/reviews/{thread}/assign", json=body, headers={"Authorization": "Bearer lead"}
        )
        assert got.status_code == 200, got.text
        assert got.json() == {
            "review_id": got.json()["review_id"],
            "thread_id": thread,
            "assigned_to": "dan",
            "reason": "cora is away",
        }
        last = (await service.coord.audit_log(thread))[-1]
        assert (last.event, last.actor, last.payload["from"]) == (
            "reassigned",
            "lead",
            "queue:desk",
        )
        missing = await service.client.post(
            "/reviews/nope/assign", json=body, headers={"Authorization": "Bearer lead"}
        )
        assert missing.status_code == 404

    async def test_without_routing_is_a_422(self, service_factory: ServiceFactory) -> None:
        """A service that assigns nothing refuses to reassign, changing nothing."""
        service = service_factory()
        thread = await service.pause(PROMO)
        got = await service.client.post(
            f"/reviews/{thread}/assign",
            json={"to": "dan", "reason": "r"},
            headers={"Authorization": "Bearer cora"},
        )
        assert got.status_code == 422
        assert [r.event for r in await service.coord.audit_log(thread)] == ["paused"]
