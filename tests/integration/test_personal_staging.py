"""Staged personal values travel with the store's next write, and survive a failed one.

`_personal.sealed` stages the values a row commits to on the SQL stores
(`stage_personal`), so they are written in that row's own transaction (SQLite)
or round trip (PostgreSQL) instead of a write of their own. A row must never be
durable without its values: a write that fails puts them back for the next.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import pytest_asyncio

from hitl_compliance import AlreadyDecidedError, PersonalValue, open_backend
from hitl_compliance._personal import StagingStore, sealed
from hitl_compliance.stores import ReviewStore

AT = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/staging.db"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest_asyncio.fixture
async def store(sql_url: str) -> AsyncIterator[ReviewStore]:
    async with open_backend(sql_url, table_prefix=f"s{uuid.uuid4().hex[:8]}_") as backend:
        yield backend.reviews


def _value(thread_id: str, text: str) -> PersonalValue:
    return PersonalValue(
        digest=uuid.uuid4().hex, thread_id=thread_id, subject="alice", salt="00", value=text
    )


async def _kept(store: ReviewStore, thread_id: str) -> list[object]:
    return [v.value for v in await store.personal_values(thread_id)]  # type: ignore[attr-defined]


async def test_sealed_payload_and_its_values_land_with_the_row(store: ReviewStore) -> None:
    assert isinstance(store, StagingStore)
    payload = await sealed(
        store, {"text": "Alice's reply"}, ["text"], thread_id="t1", subject="alice"
    )
    assert await _kept(store, "t1") == []  # staged, not yet written on its own
    row = await store.append_audit(
        thread_id="t1",
        review_id=None,
        checkpoint_id=None,
        event="replied",
        actor="system",
        payload=payload,
        at=AT,
    )
    assert await _kept(store, "t1") == ["Alice's reply"]
    # Read back, the row carries its value again.
    (read,) = await store.audit_log("t1")
    assert read.hash == row.hash
    assert read.payload["text"] == "Alice's reply"


async def test_a_failed_write_restages_the_values_for_the_next(store: ReviewStore) -> None:
    assert isinstance(store, StagingStore)
    store.stage_personal([_value("t2", "kept anyway")])
    with pytest.raises(AlreadyDecidedError):
        # No such review: the write is refused and rolled back, values included.
        await store.complete(
            "no-such-review",
            claim_id="c",
            status="approved",
            now=AT,
            actor="officer",
            payload={},
        )
    # SQLite rolled them back with the refusal and staged them again; PostgreSQL's
    # refusal came after their statement had committed. Either way the next write
    # leaves them kept, once.
    assert await _kept(store, "t2") in ([], ["kept anyway"])
    await store.append_audit(
        thread_id="t3",
        review_id=None,
        checkpoint_id=None,
        event="note",
        actor="system",
        payload={},
        at=AT,
    )
    assert await _kept(store, "t2") == ["kept anyway"]
