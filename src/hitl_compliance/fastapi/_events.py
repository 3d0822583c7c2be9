"""Review events for listeners: the in-process broadcaster and the Server-Sent Events stream.

The coordinator's hooks feed [`ReviewEvents`][hitl_compliance.fastapi.ReviewEvents]
once a change is durable; each listener holds a bounded
[`Subscription`][hitl_compliance.fastapi.Subscription], and `GET /events`
turns one into `text/event-stream` frames.
"""

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hitl_compliance.errors import ConfigurationError
from hitl_compliance.hooks import DecidedEvent, ExpiredEvent, Hooks, PausedEvent, ReviewEvent

__all__ = [
    "EventStreamResponse",
    "ReviewEventMessage",
    "ReviewEvents",
    "Subscription",
    "event_stream",
]


class ReviewEventMessage(BaseModel):
    """What `GET /events` sends as the `data:` of one event (the event name is `type`)."""

    type: Literal["paused", "decided", "expired"]
    thread_id: str
    review_id: str | None = None
    checkpoint_id: str | None = None
    actor: str
    at: datetime
    seq: int = Field(description="The audit row's sequence number; also the SSE `id`.")
    approved: bool | None = Field(
        default=None, description="`decided`/`expired`: whether a reply was delivered."
    )
    action: str | None = Field(default=None, description="`expired`: reject, approve_draft...")

    @classmethod
    def from_event(cls, event: ReviewEvent) -> "ReviewEventMessage":
        """The message for one hook event."""
        kind: Literal["paused", "decided", "expired"]
        approved: bool | None = None
        action: str | None = None
        if isinstance(event, PausedEvent):
            kind = "paused"
        elif isinstance(event, DecidedEvent):
            kind, approved = "decided", event.approved
        elif isinstance(event, ExpiredEvent):
            kind, approved, action = "expired", event.approved, event.action
        else:
            raise TypeError(f"not a review event: {type(event).__name__}")
        return cls(
            type=kind,
            thread_id=event.thread_id,
            review_id=event.review_id,
            checkpoint_id=event.checkpoint_id,
            actor=event.actor,
            at=event.at,
            seq=event.seq,
            approved=approved,
            action=action,
        )

    def to_sse(self) -> str:
        """The message as one Server-Sent Events frame."""
        return f"id: {self.seq}\nevent: {self.type}\ndata: {self.model_dump_json()}\n\n"


class Subscription:
    """One listener's queue of [`ReviewEventMessage`][hitl_compliance.fastapi.ReviewEventMessage]s.

    Bounded: when a slow listener's queue is full the oldest message is dropped
    and `dropped` counts it (the SSE stream then tells the client to `resync`).
    Use it as an async context manager, and `await get()` (or `async for`).
    """

    def __init__(self, owner: "ReviewEvents", max_queue: int) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[ReviewEventMessage | None] = asyncio.Queue(max_queue)
        self.dropped = 0
        self.closed = False

    def offer(self, message: ReviewEventMessage | None) -> None:
        """Queue `message` (None ends the subscription); safe from any thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(message)
            return
        try:
            self._loop.call_soon_threadsafe(self._put, message)
        except RuntimeError:  # the listener's loop is closed: nobody is listening
            self.close()

    def end(self) -> None:
        """End the subscription from anywhere (another thread, a signal handler)."""
        try:
            self._loop.call_soon_threadsafe(self._put, None)
        except RuntimeError:  # the listener's loop is closed
            self.close()

    def _put(self, message: ReviewEventMessage | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> ReviewEventMessage | None:
        """The next message; None once the broadcaster closed.

        Raises:
            TimeoutError: nothing arrived within `timeout` seconds.
        """
        if self.closed and self._queue.empty():
            return None
        try:
            message = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no review event within {timeout} s") from None
        if message is None:
            self.close()
        return message

    def close(self) -> None:
        """Stop receiving messages."""
        self.closed = True
        self._owner._unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[ReviewEventMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ReviewEventMessage]:
        while (message := await self.get()) is not None:
            yield message


class ReviewEvents:
    """An in-process broadcaster of review events, fed by the coordinator's hooks.

    The coordinator takes its hooks when it is built, so create this first and
    pass its [`hooks()`][hitl_compliance.fastapi.ReviewEvents.hooks]:

    ```python
    events = ReviewEvents()
    coord = HitlCoordinator(graph, reviews=backend.reviews, hooks=events.hooks())
    router = create_review_router(coord, authenticate=current_reviewer, events=events)
    ```

    Hooks fire in the process that made the change, after it is durable. With
    several replicas, each replica's listeners hear only that replica's events:
    a client that must see every change should also re-read `GET /reviews`
    periodically (the inbox does on every reconnect), or bridge the events
    through a shared channel (say, PostgreSQL `LISTEN/NOTIFY`) by calling
    [`publish`][hitl_compliance.fastapi.ReviewEvents.publish] from it.

    Args:
        max_queue: Messages kept per listener before the oldest is dropped.
    """

    def __init__(self, *, max_queue: int = 256) -> None:
        if max_queue < 1:
            raise ConfigurationError("max_queue must be at least 1.")
        self._max_queue = max_queue
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._closed = False

    def hooks(self, also: Hooks | None = None) -> Hooks:
        """Hooks that publish every paused / decided / expired event.

        Args:
            also: The application's own hooks, called after publishing (a hook
                that raises is retried by `recover()`, as usual).
        """
        if also is not None and not isinstance(also, Hooks):
            raise ConfigurationError("also must be a hitl_compliance.Hooks instance.")

        def chain(name: str) -> Callable[[Any], Awaitable[None]]:
            own: Callable[[Any], Awaitable[None] | None] | None = getattr(also, name, None)

            async def hook(event: ReviewEvent) -> None:
                self.publish(ReviewEventMessage.from_event(event))
                if own is not None:
                    outcome = own(event)
                    if inspect.isawaitable(outcome):
                        await outcome

            return hook

        return Hooks(
            on_paused=chain("on_paused"),
            on_decided=chain("on_decided"),
            on_expired=chain("on_expired"),
        )

    def publish(self, message: ReviewEventMessage) -> None:
        """Send `message` to every current listener (thread-safe, never blocks)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(message)

    def subscribe(self) -> Subscription:
        """Start listening (call from the listener's event loop); close it when done."""
        subscription = Subscription(self, self._max_queue)
        with self._lock:
            if self._closed:
                subscription.closed = True
            else:
                self._subscribers.add(subscription)
        return subscription

    @property
    def listeners(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (their SSE streams finish); later ones end at once.

        Call it when the server is asked to stop, so open event streams do not
        hold up a graceful shutdown. Safe from any thread and from a signal
        handler: the end is handed to each listener's loop, never applied here.
        """
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.end()

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)


class EventStreamResponse(StreamingResponse):
    """A streaming response declared as `text/event-stream` (in OpenAPI too)."""

    media_type = "text/event-stream"


async def event_stream(subscription: Subscription, heartbeat: float) -> AsyncIterator[str]:
    """SSE frames for `subscription` until it closes or the client goes away."""
    try:
        # `retry` sets the browser's reconnect delay; the comment opens the stream at once.
        yield "retry: 3000\n: connected\n\n"
        while True:
            dropped = subscription.dropped
            try:
                message = await subscription.get(timeout=heartbeat)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if subscription.dropped != dropped:
                yield 'event: resync\ndata: {"reason": "events were dropped"}\n\n'
            if message is None:
                return
            yield message.to_sse()
    finally:
        subscription.close()
