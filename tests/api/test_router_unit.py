"""The router's own pieces: GET one review through the coordinator, decide once, no reach-ins."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

import hitl_compliance.fastapi
from hitl_compliance import InvalidInputError, ProcessResult, ReviewNotFoundError, ThreadBusyError
from hitl_compliance.fastapi import ApproveRequest, InMemoryIdempotencyStore
from hitl_compliance.fastapi._idempotency import IdempotentRunner
from hitl_compliance.fastapi._router import decide_once, pending_review
from tests.api.conftest import PROMO, Service, as_, who

PACKAGE = Path(hitl_compliance.fastapi.__file__).parent


def request_to(path: str) -> Request:
    """A bare ASGI request for `path`, as the route handler receives it (no app needed)."""
    return Request({"type": "http", "method": "POST", "path": path, "headers": []})


class TestPendingReview:
    """`pending_review`: `GET /reviews/{thread_id}` is `HitlCoordinator.review`."""

    async def test_pending_is_the_coordinators_review(self, memory_service: Service) -> None:
        """A pending review is exactly what `coord.review()` returns."""
        thread_id = await memory_service.pause(PROMO)
        got = await pending_review(memory_service.coord, thread_id)
        assert got == await memory_service.coord.review(thread_id)

    async def test_never_paused(self, memory_service: Service) -> None:
        """A thread that never paused is ReviewNotFoundError pointing at GET /reviews."""
        with pytest.raises(ReviewNotFoundError, match="has no review; GET /reviews") as caught:
            await pending_review(memory_service.coord, "nobody")
        assert caught.value.thread_id == "nobody"

    async def test_decided_is_not_found(self, memory_service: Service) -> None:
        """A decided review is ReviewNotFoundError naming its status, not a 409."""
        thread_id = await memory_service.pause(PROMO)
        await memory_service.coord.approve(thread_id, reviewer=who("sam"))
        with pytest.raises(ReviewNotFoundError, match="is approved, not pending"):
            await pending_review(memory_service.coord, thread_id)

    async def test_blank_thread_id_is_invalid_input(self, memory_service: Service) -> None:
        """A blank thread id is the coordinator's InvalidInputError (422), as on every route."""
        with pytest.raises(InvalidInputError, match="thread_id"):
            await pending_review(memory_service.coord, " ")
        response = await memory_service.client.get("/reviews/%20", headers=as_("sam"))
        assert response.status_code == 422
        assert response.json()["error"] == "InvalidInputError"

    async def test_route_calls_the_coordinator_once(
        self, memory_service: Service, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The route asks the coordinator once, which finds the review among the open ones.

        The thread's latest review is not read as well (issue 19: one read saved).
        """
        thread_id = await memory_service.pause(PROMO)
        coord, store = memory_service.coord, memory_service.coord.reviews
        calls: list[str] = []
        review, get_review, open_reviews = coord.review, store.get_review, store.open_reviews

        async def spy_review(tid: str) -> Any:
            calls.append("coordinator.review")
            return await review(tid)

        async def spy_get_review(tid: str) -> Any:
            calls.append("store.get_review")
            return await get_review(tid)

        async def spy_open_reviews(tid: str) -> Any:
            calls.append("store.open_reviews")
            return await open_reviews(tid)

        monkeypatch.setattr(coord, "review", spy_review)
        monkeypatch.setattr(store, "get_review", spy_get_review)
        monkeypatch.setattr(store, "open_reviews", spy_open_reviews)
        response = await memory_service.client.get(f"/reviews/{thread_id}", headers=as_("sam"))
        assert response.status_code == 200
        assert calls == ["coordinator.review", "store.open_reviews"]


class TestDecideOnce:
    """`decide_once`: a decision's answer, through the idempotency runner when keyed."""

    @staticmethod
    async def approved() -> ProcessResult:
        """A decision that delivered the reply."""
        return ProcessResult(
            thread_id="t1", status="completed", awaiting_approval=False, agent_response="ok"
        )

    async def test_without_key_runs_each_time(self) -> None:
        """No Idempotency-Key: every call runs and nothing is stored."""
        store = InMemoryIdempotencyStore()
        runner = IdempotentRunner(store)
        runs: list[int] = []

        async def decide() -> ProcessResult:
            runs.append(1)
            return await self.approved()

        for _ in range(2):
            response = await decide_once(
                runner,
                request_to("/reviews/t1/approve"),
                who("sam"),
                None,
                ApproveRequest(),
                decide,
            )
            assert response.status_code == 200
        assert len(runs) == 2
        assert len(store) == 0

    async def test_keyed_repeat_is_replayed(self) -> None:
        """With a key the first answer is replayed, marked `Idempotent-Replayed`."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        request, body = request_to("/reviews/t1/approve"), ApproveRequest()
        first = await decide_once(runner, request, who("sam"), "k", body, self.approved)
        again = await decide_once(runner, request, who("sam"), "k", body, self.approved)
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert bytes(again.body) == bytes(first.body)
        assert json.loads(bytes(again.body))["status"] == "completed"

    async def test_keyed_repeat_with_other_body(self) -> None:
        """The same key with another body is the 422 IdempotencyKeyReused."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        request = request_to("/reviews/t1/approve")
        await decide_once(runner, request, who("sam"), "k", ApproveRequest(), self.approved)
        other = ApproveRequest(response="edited")
        response = await decide_once(runner, request, who("sam"), "k", other, self.approved)
        assert response.status_code == 422
        assert json.loads(bytes(response.body))["error"] == "IdempotencyKeyReused"

    async def test_errors_become_problems(self) -> None:
        """A library error from the decision is answered as its problem document."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())

        async def busy() -> ProcessResult:
            raise ThreadBusyError("busy", thread_id="t1")

        response = await decide_once(
            runner, request_to("/reviews/t1/approve"), who("sam"), "k", ApproveRequest(), busy
        )
        assert response.status_code == 409
        assert runner.inflight == 0


def private_reach_ins(source: str) -> list[str]:
    """`x._name` accesses in `source` whose object is not the module's own `self`/`cls`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        root: ast.expr = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id in ("self", "cls")):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


class TestPublicInterfacesOnly:
    """The review service uses the coordinator's public methods, never a private attribute."""

    @pytest.mark.parametrize(
        "module", sorted(p.name for p in PACKAGE.glob("*.py")), ids=lambda name: name
    )
    def test_no_private_attribute_of_another_object(self, module: str) -> None:
        """No module reads a `_private` attribute of a coordinator, store or graph."""
        assert private_reach_ins((PACKAGE / module).read_text(encoding="utf-8")) == []

    def test_routes_never_touch_the_store_or_graph(self) -> None:
        """The router reaches neither `coordinator.reviews` nor `coordinator.graph`."""
        tree = ast.parse((PACKAGE / "_router.py").read_text(encoding="utf-8"))
        touched = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert touched.isdisjoint({"reviews", "graph", "checkpointer"})

    def test_detector_finds_a_reach_in(self) -> None:
        """The check above would catch `coordinator._reviews`."""
        assert private_reach_ins("coordinator._reviews.get_review(t)") == ["line 1: ._reviews"]
        assert private_reach_ins("self._lock") == []
