"""The Postgres append function seals audit rows exactly as `ledger.canonical()` does.

The store's `append_audit` PL/pgSQL function (migration step 4) hashes the
canonical form with the values only it knows (seq, both links, the thread and
checkpoint ids) spliced in as JSON by the server. This test fails when the two
definitions diverge: every row the server seals over generated, escape-heavy
content must hash as [`row_hash`][hitl_compliance.ledger.row_hash] says and
equal what [`seal`][hitl_compliance.models.seal] builds in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_compliance.ledger import LANES_FORMAT, lane_of, row_hash, verify_rows
from hitl_compliance.models import seal
from tests.strategies import AuditAppend, audit_appends

pytestmark = pytest.mark.postgres

# Every example appends to the test's one store (one event loop, one pool): the
# chain simply grows, and each row is checked against the links it was given.
SHARED_STORE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest_asyncio.fixture
async def postgres_store(postgres_dsn: str) -> AsyncIterator[object]:
    """A Postgres review store on tables of its own prefix."""
    from hitl_compliance.stores.postgres import PostgresReviewStore

    prefix = f"c{uuid.uuid4().hex[:8]}_"
    async with PostgresReviewStore.from_conn_string(postgres_dsn, table_prefix=prefix) as store:
        yield store


class TestServerSealMatchesCanonical:
    @SHARED_STORE
    @given(appends=st.lists(audit_appends(), min_size=1, max_size=4))
    async def test_rows_hash_as_python_seals_them(
        self, postgres_store: object, appends: list[AuditAppend]
    ) -> None:
        """Each row the server seals equals Python's `seal` of it and hashes as `row_hash` says."""
        from hitl_compliance.stores.postgres import PostgresReviewStore

        assert isinstance(postgres_store, PostgresReviewStore)
        suffix = uuid.uuid4().hex[:6]
        for a in appends:
            thread_id = f"{a.thread}-{suffix}"
            lanes = await postgres_store.audit_lanes()
            assert lanes is not None
            lane = lane_of(thread_id, len(lanes))
            await postgres_store.append_audit(
                thread_id=thread_id,
                review_id=a.review_id,
                checkpoint_id=a.checkpoint_id,
                event=a.event,
                actor=a.actor,
                payload=a.payload,
                at=a.at,
            )
            stored = (await postgres_store.audit_rows(thread_id))[-1]
            # Linked to its lane's head as it was, and sealed in its lane (format 3).
            assert (stored.lane, stored.global_prev_hash) == (lane, lanes[lane][2])
            python = seal(
                seq=stored.seq,
                thread_id=thread_id,
                review_id=a.review_id,
                checkpoint_id=a.checkpoint_id,
                event=a.event,
                actor=a.actor,
                payload=a.payload,
                at=a.at,
                prev_hash=stored.prev_hash,
                global_prev_hash=stored.global_prev_hash,
                ledger_format=LANES_FORMAT,
                lane=lane,
            )
            assert stored == python
            assert stored.hash == row_hash(stored.to_row())
        report = verify_rows([r.to_row() for r in await postgres_store.audit_rows()])
        assert report.ok, report
