"""`Idempotency-Key`: a repeated POST gets the first response, and decides nothing twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hitl_compliance import ThreadBusyError
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.fastapi import IdempotencyStore, InMemoryIdempotencyStore, StoredResponse
from hitl_compliance.fastapi._idempotency import fingerprint, scope_key
from tests.api.conftest import ADVICE, PROMO, Service, ServiceFactory, as_


def keyed(reviewer: str, key: str) -> dict[str, str]:
    """Headers authenticating as `reviewer` with `Idempotency-Key: key`."""
    return {**as_(reviewer), "Idempotency-Key": key}


async def audit_events(service: Service, thread_id: str) -> list[str]:
    """The thread's review events (not its `replied` records)."""
    return [r.event for r in await service.coord.audit_log(thread_id) if r.event != REPLIED]


class TestReplay:
    """Repeats of one request, on every backend."""

    async def test_repeat_returns_first_response(self, service: Service) -> None:
        """Same reviewer, path, key and body: the first status and body, decided once."""
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        body = {"response": "Our Fixed Rate Saver has a fixed rate; capital is protected."}
        first = await service.client.post(url, json=body, headers=keyed("cora", "k-1"))
        again = await service.client.post(url, json=body, headers=keyed("cora", "k-1"))
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await audit_events(service, thread_id) == ["paused", "approved"]

    async def test_without_key_a_repeat_runs_again(self, service: Service) -> None:
        """No key, no replay: the repeat is a 409 AlreadyDecidedError."""
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        assert (await service.client.post(url, json={}, headers=as_("cora"))).status_code == 200
        again = await service.client.post(url, json={}, headers=as_("cora"))
        assert again.status_code == 409
        assert again.json()["error"] == "AlreadyDecidedError"

    async def test_errors_are_replayed(self, service: Service) -> None:
        """A final error (403) is replayed too, without a second `denied` audit row."""
        thread_id = await service.pause(ADVICE)
        url = f"/reviews/{thread_id}/approve"
        first = await service.client.post(url, json={}, headers=keyed("cora", "k-2"))
        again = await service.client.post(url, json={}, headers=keyed("cora", "k-2"))
        assert first.status_code == again.status_code == 403
        assert again.content == first.content
        assert again.headers["content-type"] == "application/problem+json"
        assert await audit_events(service, thread_id) == ["paused", "denied"]

    async def test_keys_are_per_reviewer_and_path(self, service: Service) -> None:
        """One key used by another reviewer, or on another route, is another request."""
        thread_id = await service.pause(ADVICE)
        approve, reject = f"/reviews/{thread_id}/approve", f"/reviews/{thread_id}/reject"
        denied = await service.client.post(approve, json={}, headers=keyed("cora", "shared"))
        assert denied.status_code == 403
        on_reject = await service.client.post(reject, json={}, headers=keyed("cora", "shared"))
        assert on_reject.status_code == 403  # ran again: a second denied row
        approved = await service.client.post(approve, json={}, headers=keyed("sam", "shared"))
        assert approved.status_code == 200
        assert approved.json()["reviewer"] == "sam"
        assert await audit_events(service, thread_id) == ["paused", "denied", "denied", "approved"]

    async def test_key_reused_with_another_body(self, service: Service) -> None:
        """A key sent again with a different body is a 422, and decides nothing."""
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/reject"
        first = await service.client.post(url, json={"reason": "a"}, headers=keyed("cora", "k"))
        assert first.status_code == 200
        other = await service.client.post(url, json={"reason": "b"}, headers=keyed("cora", "k"))
        assert other.status_code == 422
        assert other.json()["error"] == "IdempotencyKeyReused"
        assert await audit_events(service, thread_id) == ["paused", "rejected"]

    async def test_fingerprint_of_a_body_without_tool_args_is_unchanged(
        self, service_factory: ServiceFactory
    ) -> None:
        """An approve without tool_args is fingerprinted as before the field existed, so a
        retry across the upgrade (a shared store) replays; another tool_args is a reuse."""
        shared = InMemoryIdempotencyStore()
        service = service_factory(idempotency=shared)
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        before = fingerprint({"response": None, "expected": None, "metadata": None})
        old = StoredResponse(
            status_code=200, body=b'{"old": true}', media_type="application/json",
            fingerprint=before,
        )  # fmt: skip
        await shared.put(scope_key("cora", url, "k-up"), old)
        again = await service.client.post(url, json={}, headers=keyed("cora", "k-up"))
        assert again.status_code == 200
        assert again.content == b'{"old": true}'
        other = await service.client.post(
            url, json={"tool_args": {"x": 1}}, headers=keyed("cora", "k-up")
        )
        assert other.json()["error"] == "IdempotencyKeyReused"
        assert await audit_events(service, thread_id) == ["paused"]

    async def test_concurrent_repeats_decide_once(self, service: Service) -> None:
        """Repeats racing the first request wait for it, then replay it."""
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        responses = await asyncio.gather(
            *(service.client.post(url, json={}, headers=keyed("cora", "race")) for _ in range(4))
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert sum("idempotent-replayed" in r.headers for r in responses) == 3
        assert await audit_events(service, thread_id) == ["paused", "approved"]

    async def test_transient_errors_are_not_replayed(
        self, service: Service, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 409 ThreadBusyError is retryable: the repeat runs again and can succeed."""
        thread_id = await service.pause(PROMO)
        real_approve = service.coord.approve
        calls = 0

        async def busy_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ThreadBusyError("busy", thread_id=thread_id)
            return await real_approve(*args, **kwargs)

        monkeypatch.setattr(service.coord, "approve", busy_once)
        url = f"/reviews/{thread_id}/approve"
        busy = await service.client.post(url, json={}, headers=keyed("cora", "retry"))
        assert busy.status_code == 409
        assert busy.json()["error"] == "ThreadBusyError"
        retried = await service.client.post(url, json={}, headers=keyed("cora", "retry"))
        assert retried.status_code == 200
        assert "idempotent-replayed" not in retried.headers


class TestStores:
    """The bounded in-memory store, and a store of your own through the Protocol."""

    async def test_lru_bound(self) -> None:
        """Past `max_entries` the least recently used key goes first."""
        store = InMemoryIdempotencyStore(max_entries=2)
        response = StoredResponse(200, b"{}", "application/json", "f")
        await store.put("a", response)
        await store.put("b", response)
        assert await store.get("a") == response  # a is now the most recently used
        await store.put("c", response)
        assert len(store) == 2
        assert await store.get("b") is None
        assert await store.get("a") == await store.get("c") == response

    async def test_ttl(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A key older than the TTL is forgotten."""
        now = [1000.0]
        monkeypatch.setattr("hitl_compliance.fastapi._idempotency.time.monotonic", lambda: now[0])
        store = InMemoryIdempotencyStore(ttl=timedelta(seconds=10))
        await store.put("a", StoredResponse(200, b"{}", "application/json", "f"))
        now[0] += 11
        assert await store.get("a") is None
        assert len(store) == 0

    async def test_custom_store(self, service_factory: ServiceFactory) -> None:
        """Any object with async `get` / `put` can hold the responses (say, a shared cache)."""

        class DictStore:
            def __init__(self) -> None:
                self.data: dict[str, StoredResponse] = {}

            async def get(self, key: str) -> StoredResponse | None:
                return self.data.get(key)

            async def put(self, key: str, response: StoredResponse) -> None:
                self.data[key] = response

        store = DictStore()
        assert isinstance(store, IdempotencyStore)
        service = service_factory(idempotency=store)
        thread_id = await service.pause(PROMO)
        url = f"/reviews/{thread_id}/approve"
        first = await service.client.post(url, json={}, headers=keyed("cora", "mine"))
        [stored] = store.data.values()
        assert stored.status_code == 200
        assert stored.body == first.content
        assert "cora" not in next(iter(store.data))  # keys are hashes, not raw reviewer ids
        again = await service.client.post(url, json={}, headers=keyed("cora", "mine"))
        assert again.content == first.content
