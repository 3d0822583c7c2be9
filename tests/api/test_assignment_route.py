"""`GET /reviews?assigned_to=`: a reviewer's queue over HTTP, with why each review is in it."""

from __future__ import annotations

from datetime import timedelta

from hitl_compliance import AssignmentRule, Routing
from tests.api.conftest import ADVICE, PROMO, ServiceFactory

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
