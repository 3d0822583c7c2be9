"""`Idempotency-Key`: run a decision once per key and replay its first final answer.

A reviewer's browser or a client library may resend a `POST` whose answer it
never saw. With the same `Idempotency-Key` the resend gets the first answer
again (`Idempotent-Replayed: true`) instead of running the decision twice;
with the same key and a different body it is refused, so a key cannot be
recycled for another decision by mistake.

The algorithm is [`IdempotentRunner`][hitl_compliance.fastapi._idempotency.IdempotentRunner]:
it knows nothing of HTTP apps (any answer with a status, a body and a media
type will do), so it is tested on its own; the router only calls it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import JsonValue

from hitl_compliance.errors import ConfigurationError

__all__ = [
    "Answer",
    "IdempotencyStore",
    "IdempotentRunner",
    "InMemoryIdempotencyStore",
    "Replay",
    "StoredResponse",
    "fingerprint",
    "replayable",
    "scope_key",
]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to an `Idempotency-Key`, replayed for repeats of the request."""

    status_code: int
    body: bytes
    media_type: str
    fingerprint: str


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where first responses to `Idempotency-Key`s are kept.

    Keys are opaque strings (a hash of reviewer, path and header value). The
    in-memory default serves one process; several replicas behind a load
    balancer need a shared store (Redis, a database table) implementing these
    two methods, or a retry that lands on another replica re-runs the decision
    (which then fails with 409 `AlreadyDecidedError` instead of replaying).
    """

    async def get(self, key: str) -> StoredResponse | None:
        """The stored response for `key`, or None."""
        ...

    async def put(self, key: str, response: StoredResponse) -> None:
        """Remember `response` for `key`."""
        ...


class InMemoryIdempotencyStore:
    """A bounded, least-recently-used, in-memory idempotency store for one process.

    Args:
        max_entries: How many keys to keep; the least recently used goes first.
        ttl: How long a key is kept (None: until evicted).
    """

    def __init__(self, *, max_entries: int = 10_000, ttl: timedelta | None = timedelta(hours=24)):
        if max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1.")
        self._max = max_entries
        self._ttl = None if ttl is None else ttl.total_seconds()
        self._entries: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> StoredResponse | None:
        """The stored response for `key`, unless it expired or was evicted."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, response = entry
        if self._ttl is not None and time.monotonic() - stored_at > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return response

    async def put(self, key: str, response: StoredResponse) -> None:
        """Remember `response`, evicting the least recently used key when full."""
        self._entries[key] = (time.monotonic(), response)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class Answer(Protocol):
    """What a decision answers: a Starlette `Response` is one, so is any frozen record."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def body(self) -> bytes | memoryview:
        """The rendered body."""
        ...

    @property
    def media_type(self) -> str | None:
        """The body's media type (None: JSON)."""
        ...


A = TypeVar("A", bound=Answer)


@dataclass(frozen=True, slots=True)
class Replay:
    """A repeat of a request whose first final answer is stored.

    Attributes:
        stored: The first answer.
        matches: Whether the repeat's body is the first request's; if not, the
            key was reused for another request and nothing is replayed.
    """

    stored: StoredResponse
    matches: bool


def scope_key(reviewer_id: str, path: str, key: str) -> str:
    """The store key of one `Idempotency-Key`: a hash of who sent it, where, and the header.

    Scoped by reviewer and path, so one reviewer's key never replays another's
    decision or another thread's.
    """
    scope = "\x00".join((reviewer_id, path, key))
    return hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(body: JsonValue) -> str:
    """A hash of a request body's JSON form, independent of key order."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def replayable(status: int, body: bytes) -> bool:
    """Whether a response is the final answer to its request (so a retry gets it again).

    Server errors and `ThreadBusyError` are transient: a retry should run again.
    """
    if status >= 500:
        return False
    return not (status == 409 and b'"error":"ThreadBusyError"' in body)


@dataclass(slots=True)
class _Inflight:
    """The lock serialising one idempotency key's requests, and how many hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class IdempotentRunner:
    """Runs a decision once per store key and answers repeats from the store.

    One request per key at a time in this process: a concurrent repeat waits
    for the first and then replays it rather than racing it. Only final
    answers are stored ([`replayable`][hitl_compliance.fastapi._idempotency.replayable]),
    so a retry after a 5xx or a busy thread runs the decision again.

    Args:
        store: Where first answers are kept.
    """

    def __init__(self, store: IdempotencyStore) -> None:
        self._store = store
        self._inflight: dict[str, _Inflight] = {}

    @property
    def store(self) -> IdempotencyStore:
        """Where first answers are kept."""
        return self._store

    @property
    def inflight(self) -> int:
        """How many keys have a request running or waiting (0 when idle)."""
        return len(self._inflight)

    async def run(
        self, key: str, body_fingerprint: str, decide: Callable[[], Awaitable[A]]
    ) -> A | Replay:
        """`decide()`'s answer if `key` has no stored answer yet, else the stored one.

        Args:
            key: The store key, from [`scope_key`][hitl_compliance.fastapi._idempotency.scope_key].
            body_fingerprint: The request body's
                [`fingerprint`][hitl_compliance.fastapi._idempotency.fingerprint].
            decide: Runs the decision and renders its answer; called at most once.

        Returns:
            The fresh answer (stored when final), or a `Replay` of the stored one.
        """
        entry = self._inflight.setdefault(key, _Inflight())
        entry.users += 1
        try:
            async with entry.lock:
                stored = await self._store.get(key)
                if stored is None:
                    answer = await decide()
                    body = bytes(answer.body)
                    if replayable(answer.status_code, body):
                        await self._store.put(
                            key,
                            StoredResponse(
                                status_code=answer.status_code,
                                body=body,
                                media_type=answer.media_type or "application/json",
                                fingerprint=body_fingerprint,
                            ),
                        )
                    return answer
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._inflight[key]
        return Replay(stored, matches=stored.fingerprint == body_fingerprint)
