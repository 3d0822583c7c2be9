"""`GET /reviews/{thread_id}/evidence`: a review's evidence pack over HTTP, page or JSON."""

from __future__ import annotations

import hashlib

from tests.api.conftest import PROMO, Service, as_, who

PROBLEM = "application/problem+json"


class TestEvidenceRoute:
    async def test_html_page(self, service: Service) -> None:
        """The page of the thread's latest review, with the manifest hash in a header."""
        thread_id = await service.pause(PROMO)
        await service.coord.approve(thread_id, reviewer=who("cora"))
        response = await service.client.get(f"/reviews/{thread_id}/evidence", headers=as_("ops"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        pack = await service.coord.evidence_pack(thread_id)
        assert response.text == pack.html
        assert response.headers["x-evidence-manifest-sha256"] == pack.manifest_sha256
        assert "<h2>Who decided, when</h2>" in response.text

    async def test_json_document(self, service: Service) -> None:
        """`format=json` gives the document whose SHA-256 is the manifest hash."""
        thread_id = await service.pause(PROMO)
        await service.coord.approve(thread_id, reviewer=who("cora"))
        response = await service.client.get(
            f"/reviews/{thread_id}/evidence", params={"format": "json"}, headers=as_("ops")
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        digest = hashlib.sha256(response.content).hexdigest()
        assert digest == response.headers["x-evidence-manifest-sha256"]
        body = response.json()
        assert body["thread_id"] == thread_id
        assert [d["actor"] for d in body["decisions"]][-1] == "cora"
        rows = await service.coord.audit_log(thread_id)
        assert [r["hash"] for r in body["ledger"]] == [r.hash for r in rows]

    async def test_unknown_thread_and_review_are_404(self, service: Service) -> None:
        """An unknown thread, or a review id the thread never had, is a 404 problem."""
        response = await service.client.get("/reviews/ghost/evidence", headers=as_("ops"))
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["error"] == "ReviewNotFoundError"
        thread_id = await service.pause(PROMO)
        response = await service.client.get(
            f"/reviews/{thread_id}/evidence", params={"review_id": "nope"}, headers=as_("ops")
        )
        assert response.status_code == 404

    async def test_needs_authentication(self, service: Service) -> None:
        """Without credentials the route is a 401 and packs nothing."""
        thread_id = await service.pause(PROMO)
        response = await service.client.get(f"/reviews/{thread_id}/evidence")
        assert response.status_code == 401

    async def test_bad_format_is_422(self, service: Service) -> None:
        """A format other than html or json is refused."""
        thread_id = await service.pause(PROMO)
        response = await service.client.get(
            f"/reviews/{thread_id}/evidence", params={"format": "pdf"}, headers=as_("ops")
        )
        assert response.status_code == 422
