"""`GET /oversight`: the oversight report as JSON; the chart scripts the inbox loads."""

from __future__ import annotations

from datetime import timedelta

from hitl_compliance import OversightReport
from hitl_compliance.testing.fakes import EPOCH
from tests.api.conftest import PROMO, ServiceFactory, as_
from tests.api.test_routes import problem


def window() -> dict[str, str]:
    now = EPOCH  # the services' fake clock stands there
    return {
        "since": (now - timedelta(days=400)).isoformat(),
        "until": (now + timedelta(days=400)).isoformat(),
        "period": "month",
    }


class TestOversightRoute:
    async def test_report_counts_the_decisions(self, service_factory: ServiceFactory) -> None:
        """A rejection and an approval through the API are in the report, by reviewer."""
        service = service_factory()
        rejected = await service.pause(PROMO)
        approved = await service.pause(PROMO)
        for thread, verb, body in (
            (rejected, "reject", {"reason": "no"}),
            (approved, "approve", {}),
        ):
            response = await service.client.post(
                f"/reviews/{thread}/{verb}", json=body, headers=as_("cora")
            )
            assert response.status_code == 200, response.text
        response = await service.client.get("/oversight", params=window(), headers=as_("sam"))
        assert response.status_code == 200, response.text
        report = OversightReport.model_validate(response.json())
        assert (report.totals.approve, report.totals.reject) == (1, 1)
        assert [(r.reviewer, r.decisions) for r in report.reviewers] == [("cora", 2)]
        assert report.period == "month"

    async def test_bad_window_is_422(self, service_factory: ServiceFactory) -> None:
        """A naive or reversed window, or an unknown period: 422 problems."""
        service = service_factory()
        params = window()
        naive = {**params, "since": "2026-01-01T00:00:00"}
        reversed_ = {**params, "since": params["until"], "until": params["since"]}
        huge = {"since": "0001-01-01T00:00:00Z", "until": "9999-01-01T00:00:00Z"}
        for bad in (naive, reversed_, huge):
            response = await service.client.get("/oversight", params=bad, headers=as_("sam"))
            problem(response, 422, "InvalidInputError")
        response = await service.client.get(
            "/oversight", params={**params, "period": "year"}, headers=as_("sam")
        )
        assert response.status_code == 422

    async def test_needs_a_reviewer(self, service_factory: ServiceFactory) -> None:
        """Unauthenticated: 401, like every other data route."""
        service = service_factory()
        assert (await service.client.get("/oversight", params=window())).status_code == 401

    async def test_chart_scripts_are_served(self, service_factory: ServiceFactory) -> None:
        """plotly.js (from the installed package) and the chart script, as JavaScript."""
        service = service_factory()
        plotly = await service.client.get("/oversight/plotly.js")
        charts = await service.client.get("/oversight/charts.js")
        for response in (plotly, charts):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/javascript")
        assert "plotly.js" in plotly.text[:2000]
        assert "window.drawOversight" in charts.text
