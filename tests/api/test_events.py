"""Review events: the in-process broadcaster fed by hooks, and the `GET /events` stream."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from hitl_compliance import ConfigurationError, DecidedEvent, HitlCoordinator, Hooks, PausedEvent
from hitl_compliance._replies import REPLY_EVENT as REPLIED
from hitl_compliance.fastapi import ReviewEventMessage, ReviewEvents
from hitl_compliance.fastapi._events import event_stream
from tests.api.conftest import ADVICE, PROMO, Service, SseStream, as_, make_app, who

AT = "2025-01-01T09:00:00Z"


def message(seq: int, kind: str = "paused") -> ReviewEventMessage:
    """A message as the hooks would publish it."""
    return ReviewEventMessage.model_validate(
        {"type": kind, "thread_id": f"t{seq}", "actor": "system", "at": AT, "seq": seq}
    )


class TestEventStream:
    """`GET /events` on every backend: what the coordinator's hooks publish, as SSE."""

    async def test_paused_and_decided(self, service: Service) -> None:
        """A pause and a decision arrive in order, each with its audit seq as the SSE id."""
        async with SseStream(service.app, "/events", as_("sam")) as stream:
            assert stream.status == 200
            assert stream.response_headers["content-type"].startswith("text/event-stream")
            thread_id = await service.pause(PROMO)
            response = await service.client.post(
                f"/reviews/{thread_id}/approve", json={}, headers=as_("cora")
            )
            assert response.status_code == 200
            paused, decided = await stream.events(2)
        audit = await service.coord.audit_log(thread_id)
        assert (paused.event, decided.event) == ("paused", "decided")
        # The reply record between them is a ledger row, not a review event: no SSE message.
        assert [r.event for r in audit] == ["paused", REPLIED, "approved"]
        assert [paused.id, decided.id] == [str(audit[0].seq), str(audit[2].seq)]
        assert json.loads(paused.data)["thread_id"] == thread_id
        data = json.loads(decided.data)
        assert data["approved"] is True
        assert data["actor"] == "cora"
        assert service.events.listeners == 0  # the disconnect closed the subscription

    async def test_expired(self, service: Service) -> None:
        """An SLA expiry is an `expired` event naming its action."""
        thread_id = await service.pause(ADVICE)
        async with SseStream(service.app, "/events", as_("ops")) as stream:
            service.clock.advance(hours=25)
            [result] = await service.coord.expire_overdue()
            assert result.thread_id == thread_id
            [expired] = await stream.events(1)
        data = json.loads(expired.data)
        assert expired.event == "expired"
        assert (data["thread_id"], data["action"], data["approved"]) == (thread_id, "reject", False)

    async def test_keep_alive_comments(self, service: Service) -> None:
        """An idle stream sends comments, so proxies do not close it."""
        async with SseStream(service.app, "/events", as_("sam")) as stream:
            await service.pause(PROMO)
            await stream.events(1)
            await asyncio.sleep(0.5)  # the test router's heartbeat is 0.2 s
            with pytest.raises(TimeoutError):
                await stream.next_event(timeout=0.1)
        assert "connected" in stream.comments
        assert "keep-alive" in stream.comments

    async def test_requires_authentication(self, service: Service) -> None:
        """Without credentials the stream is a 401 problem, and nobody subscribes."""
        async with SseStream(service.app, "/events", {}) as stream:
            assert stream.status == 401
            assert json.loads(await stream.body())["error"] == "HTTPException"
        assert service.events.listeners == 0

    async def test_close_ends_streams(self, service: Service) -> None:
        """`ReviewEvents.close()` (at shutdown) ends open streams."""
        async with SseStream(service.app, "/events", as_("sam")) as stream:
            service.events.close()
            with pytest.raises(EOFError):
                await stream.next_event()


class TestReviewEvents:
    """The broadcaster itself."""

    async def test_hooks_chain_the_applications_own(self, service: Service) -> None:
        """`hooks(also=...)` publishes, then calls the application's hooks."""
        seen: list[str] = []

        async def on_decided(event: DecidedEvent) -> None:
            seen.append(f"decided {event.thread_id}")

        def on_paused(event: PausedEvent) -> None:
            seen.append(f"paused {event.thread_id}")

        events = ReviewEvents()
        coord = HitlCoordinator(
            service.coord.graph,
            reviews=service.backend.reviews,
            policy=service.coord.policy,
            hooks=events.hooks(also=Hooks(on_paused=on_paused, on_decided=on_decided)),
        )
        async with events.subscribe() as subscription:
            await coord.process("chained", PROMO)
            await coord.approve("chained", reviewer=who("cora"))
            kinds = [(await subscription.get(timeout=2)) for _ in range(2)]
        assert [m.type for m in kinds if m is not None] == ["paused", "decided"]
        assert seen == ["paused chained", "decided chained"]

    async def test_slow_listener_drops_oldest(self) -> None:
        """A full queue drops the oldest message and counts it; the stream says `resync`."""
        events = ReviewEvents(max_queue=2)
        subscription = events.subscribe()
        for seq in (1, 2, 3):
            events.publish(message(seq))
        assert subscription.dropped == 1
        assert [(await subscription.get(timeout=1)).seq for _ in range(2)] == [2, 3]  # type: ignore[union-attr]
        subscription.close()

    async def test_resync_frame(self, memory_service: Service) -> None:
        """The SSE stream tells a client that missed events to reload."""
        events = ReviewEvents(max_queue=1)
        app = make_app(memory_service.coord, events)
        async with SseStream(app, "/events", as_("sam")) as stream:
            for seq in (1, 2, 3):
                events.publish(message(seq))
            resync, last = await stream.events(2)
        assert resync.event == "resync"
        assert last.id == "3"

    async def test_publish_from_another_thread(self) -> None:
        """Publishing is thread-safe: the message reaches the listener's loop."""
        events = ReviewEvents()
        async with events.subscribe() as subscription:
            worker = threading.Thread(target=events.publish, args=(message(7),))
            worker.start()
            worker.join()
            received = await subscription.get(timeout=2)
        assert received is not None
        assert received.seq == 7
        assert events.listeners == 0

    async def test_subscribe_after_close(self) -> None:
        """After `close()` a new subscription ends at once."""
        events = ReviewEvents()
        events.close()
        subscription = events.subscribe()
        assert await subscription.get(timeout=1) is None
        assert events.listeners == 0

    def test_sse_frame(self) -> None:
        """One message is one frame: id, event name and JSON data."""
        frame = message(5, "decided").to_sse()
        assert frame.startswith("id: 5\nevent: decided\ndata: {")
        assert frame.endswith("}\n\n")

    async def test_get_times_out(self) -> None:
        """`get(timeout=...)` raises TimeoutError when nothing arrives."""
        events = ReviewEvents()
        async with events.subscribe() as subscription:
            with pytest.raises(TimeoutError):
                await subscription.get(timeout=0.05)

    @pytest.mark.parametrize("bad", [0, -1])
    def test_bad_queue_size(self, bad: int) -> None:
        """A queue must hold at least one message."""
        with pytest.raises(ConfigurationError, match="max_queue"):
            ReviewEvents(max_queue=bad)


class TestEventStreamFrames:
    """`event_stream` on its own: the SSE frames of one subscription, without an HTTP app."""

    async def test_opens_then_sends_messages_until_closed(self) -> None:
        """The stream opens with `retry` and a comment, sends each message, ends on close."""
        events = ReviewEvents()
        subscription = events.subscribe()
        frames = event_stream(subscription, heartbeat=5)
        assert await anext(frames) == "retry: 3000\n: connected\n\n"
        events.publish(message(1))
        assert await anext(frames) == message(1).to_sse()
        events.close()
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
        assert events.listeners == 0

    async def test_keep_alive_when_idle(self) -> None:
        """Nothing within `heartbeat` seconds sends a keep-alive comment."""
        events = ReviewEvents()
        frames = event_stream(events.subscribe(), heartbeat=0.01)
        await anext(frames)
        assert await anext(frames) == ": keep-alive\n\n"
        await frames.aclose()
        assert events.listeners == 0

    async def test_resync_before_the_next_message(self) -> None:
        """Messages dropped while the stream waits announce `resync` before the next one."""
        events = ReviewEvents(max_queue=1)
        frames = event_stream(events.subscribe(), heartbeat=5)
        await anext(frames)
        waiting = asyncio.create_task(anext(frames))
        await asyncio.sleep(0.01)  # the stream now waits for a message
        for seq in (1, 2):
            events.publish(message(seq))
        assert (await waiting).startswith("event: resync\n")
        assert await anext(frames) == message(2).to_sse()
        await frames.aclose()
