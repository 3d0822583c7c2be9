"""The `Idempotency-Key` algorithm on its own: `IdempotentRunner` without an HTTP app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from hitl_compliance.fastapi import InMemoryIdempotencyStore, StoredResponse
from hitl_compliance.fastapi._idempotency import (
    IdempotentRunner,
    Replay,
    fingerprint,
    replayable,
    scope_key,
)


@dataclass(frozen=True)
class Reply:
    """A decision's answer as a plain value: what the runner needs of a response."""

    status_code: int
    body: bytes
    media_type: str | None = "application/json"


class Decision:
    """A decision that counts its runs and answers what it was told to."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> Reply:
        self.runs += 1
        await self.release.wait()
        return self.replies[min(self.runs, len(self.replies)) - 1]


OK = Reply(200, b'{"status":"approved"}')
BUSY = Reply(409, b'{"status":409,"error":"ThreadBusyError"}', "application/problem+json")
FAILED = Reply(500, b'{"error":"HitlError"}', "application/problem+json")


class TestRun:
    """`IdempotentRunner.run`: once per key, repeats answered from the store."""

    async def test_first_request_runs_and_is_stored(self) -> None:
        """A new key runs the decision, returns its own answer and stores it."""
        store = InMemoryIdempotencyStore()
        runner = IdempotentRunner(store)
        decide = Decision(OK)
        answer = await runner.run("k", "f1", decide)
        assert answer is OK
        assert decide.runs == 1
        assert await store.get("k") == StoredResponse(200, OK.body, "application/json", "f1")
        assert runner.inflight == 0

    async def test_repeat_is_replayed_without_running(self) -> None:
        """The same key and body replay the stored answer; the decision does not run again."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        decide = Decision(OK, Reply(409, b'{"error":"AlreadyDecidedError"}'))
        await runner.run("k", "f1", decide)
        again = await runner.run("k", "f1", decide)
        assert again == Replay(StoredResponse(200, OK.body, "application/json", "f1"), True)
        assert decide.runs == 1

    async def test_other_body_is_not_replayed(self) -> None:
        """The same key with another body fingerprint is a mismatch, and nothing runs."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        decide = Decision(OK)
        await runner.run("k", "f1", decide)
        again = await runner.run("k", "f2", decide)
        assert isinstance(again, Replay)
        assert again.matches is False
        assert decide.runs == 1

    async def test_keys_are_independent(self) -> None:
        """Another key runs the decision again."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        decide = Decision(OK)
        await runner.run("k1", "f", decide)
        assert await runner.run("k2", "f", decide) is OK
        assert decide.runs == 2

    @pytest.mark.parametrize("transient", [BUSY, FAILED])
    async def test_transient_answers_are_not_stored(self, transient: Reply) -> None:
        """A 5xx or a busy thread is returned but not stored, so a retry runs again."""
        store = InMemoryIdempotencyStore()
        runner = IdempotentRunner(store)
        decide = Decision(transient, OK)
        assert await runner.run("k", "f", decide) is transient
        assert await store.get("k") is None
        assert await runner.run("k", "f", decide) is OK
        assert decide.runs == 2

    async def test_missing_media_type_is_stored_as_json(self) -> None:
        """An answer without a media type is replayed as JSON."""
        store = InMemoryIdempotencyStore()
        await IdempotentRunner(store).run("k", "f", Decision(Reply(200, b"{}", None)))
        stored = await store.get("k")
        assert stored is not None
        assert stored.media_type == "application/json"

    async def test_memoryview_body_is_stored_as_bytes(self) -> None:
        """A body handed over as a memoryview is stored as bytes."""
        store = InMemoryIdempotencyStore()

        @dataclass(frozen=True)
        class ViewReply:
            status_code: int
            body: memoryview
            media_type: str | None

        async def decide() -> ViewReply:
            return ViewReply(200, memoryview(b"{}"), "application/json")

        await IdempotentRunner(store).run("k", "f", decide)
        stored = await store.get("k")
        assert stored is not None
        assert type(stored.body) is bytes

    async def test_concurrent_repeats_wait_and_replay(self) -> None:
        """A repeat arriving while the first runs waits for it, then replays it."""
        runner = IdempotentRunner(InMemoryIdempotencyStore())
        decide = Decision(OK)
        decide.release.clear()
        first = asyncio.create_task(runner.run("k", "f", decide))
        second = asyncio.create_task(runner.run("k", "f", decide))
        await asyncio.sleep(0)
        assert runner.inflight == 1
        decide.release.set()
        answers = await asyncio.gather(first, second)
        assert answers[0] is OK
        assert isinstance(answers[1], Replay)
        assert answers[1].matches
        assert decide.runs == 1
        assert runner.inflight == 0

    async def test_failing_decision_releases_the_key(self) -> None:
        """A decision that raises leaves no lock behind, and nothing stored."""
        store = InMemoryIdempotencyStore()
        runner = IdempotentRunner(store)

        async def boom() -> Reply:
            raise RuntimeError("store down")

        with pytest.raises(RuntimeError):
            await runner.run("k", "f", boom)
        assert runner.inflight == 0
        assert await store.get("k") is None
        assert await runner.run("k", "f", Decision(OK)) is OK

    def test_store_is_the_one_given(self) -> None:
        """The runner keeps the store it was given."""
        store = InMemoryIdempotencyStore()
        assert IdempotentRunner(store).store is store


class TestKeys:
    """`scope_key` and `fingerprint`: what makes two requests the same."""

    def test_scope_separates_reviewer_path_and_key(self) -> None:
        """Changing any of reviewer, path or header value changes the store key."""
        base = scope_key("sam", "/reviews/t1/approve", "k")
        assert base == scope_key("sam", "/reviews/t1/approve", "k")
        assert (
            len(
                {
                    base,
                    scope_key("cora", "/reviews/t1/approve", "k"),
                    scope_key("sam", "/reviews/t2/approve", "k"),
                    scope_key("sam", "/reviews/t1/approve", "k2"),
                }
            )
            == 4
        )

    def test_scope_parts_cannot_run_together(self) -> None:
        """A separator keeps ("ab", "c") and ("a", "bc") apart."""
        assert scope_key("ab", "/p", "k") != scope_key("a", "b/p", "k")

    def test_scope_accepts_lone_surrogates(self) -> None:
        """Any header text hashes, even text UTF-8 cannot encode."""
        assert len(scope_key("sam", "/p", "\ud800")) == 64

    def test_fingerprint_ignores_key_order(self) -> None:
        """Two bodies with the same members in another order are the same request."""
        assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
        assert fingerprint({"a": 1}) != fingerprint({"a": 2})


class TestReplayable:
    """`replayable`: which answers are final."""

    @pytest.mark.parametrize(
        ("status", "body", "final"),
        [
            (200, b"{}", True),
            (404, b'{"error":"ReviewNotFoundError"}', True),
            (409, b'{"error":"AlreadyDecidedError"}', True),
            (409, b'{"error":"ThreadBusyError"}', False),
            (500, b"{}", False),
            (503, b"{}", False),
        ],
    )
    def test_final_answers(self, status: int, body: bytes, final: bool) -> None:
        """Client errors and successes are final; server errors and a busy thread are not."""
        assert replayable(status, body) is final
