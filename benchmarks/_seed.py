"""Bulk seeding for the pending() benchmark: review rows and cloned checkpoints.

Running 100k threads through the graph would take longer than the whole
benchmark budget, so the data is written directly, in the exact form the
real code writes it:

* review rows: through the store API (`open_review`, then `claim` and
  `complete` for decided ones) on the in-memory store. On the SQL stores two
  template rows (one pending, one approved) are written through the same API
  and then copied in bulk (`INSERT ... SELECT` with fresh ids, thread id and
  `requested_at`), so every column, including ones added to the schema later,
  holds what the store itself writes;
* checkpoints for the naive scan: the latest checkpoint of a real thread run
  through the raw graph (one paused, one completed) is copied under new thread
  ids: with the saver's `aput` on `InMemorySaver`, and as a row-for-row SQL
  copy of what `aput` wrote on SQLite and Postgres (checkpoint row, its blobs
  and pending writes), so every seeded thread reads back through
  `aget_state` exactly like the original.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks._workload import MESSAGE, REVIEWER, RISKY_REPLY
from hitl_compliance import ReviewRecord, ReviewStore, RuleResult

__all__ = [
    "ASSIGNEES",
    "PAUSED_EVERY",
    "RULES",
    "SeedRow",
    "clone_checkpoints",
    "pending_templates",
    "seed_reviews",
    "seed_templates",
    "thread_id",
]

PAUSED_EVERY = 10
"""Thread `i` is paused when `i % PAUSED_EVERY == 0`: 10% of threads await review."""

_BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)

RULES: tuple[tuple[str, int], ...] = (
    ("advice", 40),
    ("guarantee", 30),
    ("pii", 20),
    ("complaint", 9),
    ("vulnerable", 1),
)
"""The rule of each seeded review and its share of them in percent (a skewed mix)."""
_RULE_OF = [name for name, share in RULES for _ in range(share)]
_SEVERITY = ("low", "medium", "high", "critical")

ASSIGNEES = 10
"""Pending reviews are assigned round-robin to `agent-0` .. `agent-9` (10% each)."""


def _finding(rule: str, severity: str) -> RuleResult:
    return RuleResult(rule, "review", f"{rule} finding", ("guaranteed returns",), severity)  # type: ignore[arg-type]


def thread_id(i: int) -> str:
    """The seeded thread id number `i`."""
    return f"seed-{i:07d}"


@dataclass(frozen=True)
class SeedRow:
    """One seeded review: pending, or approved an hour after it was requested."""

    index: int

    @property
    def paused(self) -> bool:
        """Whether this thread is still awaiting review."""
        return self.index % PAUSED_EVERY == 0

    @property
    def rule(self) -> str:
        """The rule of its one finding (`RULES` gives the mix)."""
        return _RULE_OF[(self.index // PAUSED_EVERY) % len(_RULE_OF)]

    @property
    def assignee(self) -> str:
        """Whom it is assigned to while pending."""
        return f"agent-{(self.index // PAUSED_EVERY) % ASSIGNEES}"

    @property
    def requested_at(self) -> datetime:
        """When it was requested: one second per thread index."""
        return _BASE + timedelta(seconds=self.index)

    def record(self) -> ReviewRecord:
        """The review as the store API sees it."""
        requested = self.requested_at
        # One severity per rule, so each rule's template row is what its copies hold.
        severity = _SEVERITY[[name for name, _ in RULES].index(self.rule) % len(_SEVERITY)]
        fields: dict[str, Any] = {
            "review_id": uuid.UUID(int=(3 << 64) + self.index).hex,
            "thread_id": thread_id(self.index),
            "checkpoint_id": str(uuid.UUID(int=(1 << 64) + self.index)),
            "status": "pending",
            "customer_message": MESSAGE,
            "draft_response": RISKY_REPLY,
            "violations": [_finding(self.rule, severity)],
            "requested_at": requested,
        }
        if not self.paused:
            decided = requested + timedelta(hours=1)
            fields.update(
                status="approved",
                claim_id=uuid.UUID(int=(2 << 64) + self.index).hex,
                claimed_at=decided,
                decided_at=decided,
                reviewer=REVIEWER,
                decision=_decision(decided),
            )
        return ReviewRecord(**fields)


def _decision(at: datetime) -> dict[str, Any]:
    return {
        "approved": True,
        "reviewer": REVIEWER,
        "response": None,
        "reason": None,
        "metadata": {},
        "decided_at": at.isoformat(),
        "kind": "human",
    }


def _sqlite_ts(value: datetime) -> str:
    # The SQLite store's own text format: fixed-width UTC ISO-8601.
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


async def _api_seed(store: ReviewStore, record: ReviewRecord) -> None:
    """Write one review the way the coordinator does: open, then claim and complete."""
    pending = record.model_copy(
        update={
            "status": "pending",
            "claim_id": None,
            "claimed_at": None,
            "decided_at": None,
            "reviewer": None,
            "decision": None,
        }
    )
    await store.open_review(pending, owner=None)
    if record.status == "approved":
        assert record.claim_id is not None
        assert record.decided_at is not None
        await store.claim(
            record.thread_id,
            claim_id=record.claim_id,
            reviewer=REVIEWER,
            decision=record.decision or {},
            now=record.decided_at,
        )
        await store.complete(
            record.review_id,
            claim_id=record.claim_id,
            status="approved",
            now=record.decided_at,
            actor=REVIEWER,
            payload=record.decision or {},
        )


TEMPLATE_PENDING = -PAUSED_EVERY
"""Seed index of the first pending template review (thread `seed--000010`)."""
TEMPLATE_DONE = -1
"""Seed index of the approved template review (thread `seed--000001`)."""

# Columns given a fresh value in every copy; every other column is copied from
# the template row, so new columns added to the store's schema are filled the
# way the store itself fills them.
_FRESH = (
    "review_id",
    "thread_id",
    "checkpoint_id",
    "requested_at",
    "claim_id",
    "assigned_to",
)


def pending_templates() -> dict[str, int]:
    """The seed index of each rule's pending template review (negative, paused)."""
    out: dict[str, int] = {}
    i = TEMPLATE_PENDING
    while len(out) < len(RULES):
        out.setdefault(SeedRow(i).rule, i)
        i -= PAUSED_EVERY
    return out


async def _assign(store: ReviewStore, row: SeedRow) -> None:
    assign = getattr(store, "assign")  # noqa: B009 - every library store has it
    await assign(
        row.record().review_id,
        to=row.assignee,
        reason="seeded",
        by="seed",
        now=row.requested_at,
        initial=True,
    )


async def seed_templates(store: ReviewStore) -> None:
    """Write the template reviews (one pending per rule, one approved) through the store API."""
    for index in pending_templates().values():
        await _api_seed(store, SeedRow(index).record())
        await _assign(store, SeedRow(index))
    await _api_seed(store, SeedRow(TEMPLATE_DONE).record())


async def seed_reviews(
    backend: str, store: ReviewStore, location: str, start: int, stop: int
) -> None:
    """Add review rows for threads `start..stop-1` (10% pending, the rest approved).

    On memory every row goes through the store API. On SQLite and Postgres the
    rows are copies of the two template rows `seed_templates` wrote through the
    API, with fresh ids, thread id and `requested_at`, inserted in one statement
    batch; call `seed_templates` first.

    Args:
        backend: `memory`, `sqlite` or `postgres`.
        store: the library's review store.
        location: the backend URL the store was opened from (its file or DSN).
        start: first thread index to seed.
        stop: one past the last thread index.
    """
    if backend == "memory":
        for i in range(start, stop):
            await _api_seed(store, SeedRow(i).record())
            if SeedRow(i).paused:
                await _assign(store, SeedRow(i))
        return
    # Copies grouped by the template they copy: each rule's pending one, the approved one.
    copies: dict[str, list[_Copy]] = {}
    templates = {rule: SeedRow(i).record().review_id for rule, i in pending_templates().items()}
    templates[""] = SeedRow(TEMPLATE_DONE).record().review_id
    for i in range(start, stop):
        row = SeedRow(i)
        r = row.record()
        copies.setdefault(row.rule if row.paused else "", []).append(
            (
                r.review_id,
                r.thread_id,
                r.checkpoint_id,
                r.requested_at,
                r.claim_id,
                row.assignee if row.paused else None,
            )
        )
    if backend == "sqlite":
        _copy_sqlite(location.removeprefix("sqlite:///"), templates, copies)
        return
    await _copy_postgres(location, templates, copies)


_Copy = tuple[str, str, str, datetime, str | None, str | None]
"""review_id, thread_id, checkpoint_id, requested_at, claim_id, assigned_to."""


def _copy_sqlite(path: str, templates: dict[str, str], copies: dict[str, list[_Copy]]) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(hitl_reviews)")]
        row = conn.execute(
            "SELECT requested_at FROM hitl_reviews WHERE review_id = ?",
            (SeedRow(TEMPLATE_PENDING).record().review_id,),
        ).fetchone()
        expected = _sqlite_ts(SeedRow(TEMPLATE_PENDING).record().requested_at)
        if row is None or row[0] != expected:
            raise RuntimeError(
                f"SQLite store's requested_at format changed ({row!r} != {expected!r}): "
                "update benchmarks/_seed.py"
            )
        fresh = [c for c in columns if c in _FRESH]
        select = ", ".join("?" if c in _FRESH else c for c in columns)
        sql = (
            f"INSERT INTO hitl_reviews ({', '.join(columns)}) SELECT {select} "
            "FROM hitl_reviews WHERE review_id = ?"
        )
        rule_rows = (
            "INSERT INTO hitl_review_rules (review_id, rule, requested_at) "
            "SELECT ?, rule, ? FROM hitl_review_rules WHERE review_id = ?"
        )
        with conn:
            for group, rows in copies.items():
                params = []
                for review_id, thread, checkpoint, requested, claim, assignee in rows:
                    value = {
                        "review_id": review_id,
                        "thread_id": thread,
                        "checkpoint_id": checkpoint,
                        "requested_at": _sqlite_ts(requested),
                        "claim_id": claim,
                        "assigned_to": assignee,
                    }
                    params.append((*(value[c] for c in fresh), templates[group]))
                conn.executemany(sql, params)
                # The open reviews' rule side-table rows, as open_review writes them.
                conn.executemany(
                    rule_rows,
                    [(r[0], _sqlite_ts(r[3]), templates[group]) for r in rows],
                )
    finally:
        conn.close()


async def _copy_postgres(
    dsn: str, templates: dict[str, str], copies: dict[str, list[_Copy]]
) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'hitl_reviews' "
            "AND is_identity = 'NO' AND is_generated = 'NEVER' ORDER BY ordinal_position"
        )
        columns = [str(r[0]) for r in await cur.fetchall()]
        select = ", ".join(f"v.{c}" if c in _FRESH else f"t.{c}" for c in columns)
        sql = (
            f"INSERT INTO hitl_reviews ({', '.join(columns)}) SELECT {select} "
            "FROM hitl_reviews t CROSS JOIN unnest(%s::text[], %s::text[], %s::text[], "
            "%s::timestamptz[], %s::text[], %s::text[]) "
            "AS v(review_id, thread_id, checkpoint_id, requested_at, claim_id, assigned_to) "
            "WHERE t.review_id = %s"
        )
        rule_rows = (
            "INSERT INTO hitl_review_rules (review_id, rule, requested_at) "
            "SELECT v.review_id, t.rule, v.requested_at FROM hitl_review_rules t "
            "CROSS JOIN unnest(%s::text[], %s::timestamptz[]) AS v(review_id, requested_at) "
            "WHERE t.review_id = %s"
        )
        for group, rows in copies.items():
            for chunk in range(0, len(rows), 20_000):
                part = rows[chunk : chunk + 20_000]
                if not part:
                    continue
                cols = [list(col) for col in zip(*part, strict=True)]
                await conn.execute(sql, (*cols, templates[group]))
                await conn.execute(rule_rows, (cols[0], cols[3], templates[group]))
        # What autovacuum would have done on a table this size in steady state.
        await conn.execute("ANALYZE hitl_reviews")
        await conn.execute("ANALYZE hitl_review_rules")


def _config(thread: str, checkpoint_id: str | None = None) -> Any:
    configurable: dict[str, str] = {"thread_id": thread, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def clone_checkpoints(
    backend: str,
    saver: BaseCheckpointSaver[Any],
    templates: dict[bool, CheckpointTuple],
    start: int,
    stop: int,
) -> None:
    """Copy the latest checkpoint of the paused / completed template to threads `start..stop-1`.

    Args:
        backend: `memory`, `sqlite` or `postgres`.
        saver: the raw graph's saver.
        templates: `{True: paused template tuple, False: completed template tuple}`.
        start: first thread index to seed.
        stop: one past the last thread index.
    """
    if backend == "memory":
        assert isinstance(saver, InMemorySaver)
        for i in range(start, stop):
            tup = templates[SeedRow(i).paused]
            checkpoint = dict(tup.checkpoint)
            checkpoint["id"] = str(uuid6(clock_seq=-1))
            new = await saver.aput(
                _config(thread_id(i)),
                checkpoint,  # type: ignore[arg-type]
                tup.metadata,
                checkpoint["channel_versions"],  # type: ignore[arg-type]
            )
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in tup.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await saver.aput_writes(new, writes, task_id)
        return
    groups: dict[bool, list[str]] = {True: [], False: []}
    for i in range(start, stop):
        groups[SeedRow(i).paused].append(thread_id(i))
    if backend == "sqlite":
        await _clone_sqlite(saver, templates, groups)
    else:
        await _clone_postgres(saver, templates, groups)


async def _clone_sqlite(
    saver: Any, templates: dict[bool, CheckpointTuple], groups: dict[bool, list[str]]
) -> None:
    conn = saver.conn
    async with saver.lock:
        for paused, ids in groups.items():
            source = templates[paused].config["configurable"]
            key = (source["thread_id"], source["checkpoint_id"])
            await conn.executemany(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) "
                "SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
                "checkpoint, metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_id = ?",
                [(t, *key) for t in ids],
            )
            await conn.executemany(
                "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
                "task_id, task_path, idx, channel, type, value FROM writes "
                "WHERE thread_id = ? AND checkpoint_id = ?",
                [(t, *key) for t in ids],
            )
        await conn.commit()


async def _clone_postgres(
    saver: Any, templates: dict[bool, CheckpointTuple], groups: dict[bool, list[str]]
) -> None:
    async with saver.conn.connection() as conn, conn.transaction():
        for paused, ids in groups.items():
            source = templates[paused].config["configurable"]
            args = {"ids": ids, "src": source["thread_id"], "cid": source["checkpoint_id"]}
            await conn.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) "
                "SELECT t.id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type, "
                "c.checkpoint, c.metadata FROM checkpoints c "
                "CROSS JOIN unnest(%(ids)s::text[]) AS t(id) "
                "WHERE c.thread_id = %(src)s AND c.checkpoint_id = %(cid)s",
                args,
            )
            # Only the blobs the checkpoint points at (the versions aget_tuple loads).
            await conn.execute(
                "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, "
                "type, blob) SELECT t.id, b.checkpoint_ns, b.channel, b.version, b.type, b.blob "
                "FROM checkpoint_blobs b JOIN checkpoints c ON c.thread_id = b.thread_id "
                "AND c.checkpoint_ns = b.checkpoint_ns AND c.checkpoint_id = %(cid)s "
                "JOIN jsonb_each_text(c.checkpoint -> 'channel_versions') v "
                "ON v.key = b.channel AND v.value = b.version "
                "CROSS JOIN unnest(%(ids)s::text[]) AS t(id) WHERE b.thread_id = %(src)s",
                args,
            )
            await conn.execute(
                "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, blob) SELECT t.id, w.checkpoint_ns, "
                "w.checkpoint_id, w.task_id, w.task_path, w.idx, w.channel, w.type, w.blob "
                "FROM checkpoint_writes w CROSS JOIN unnest(%(ids)s::text[]) AS t(id) "
                "WHERE w.thread_id = %(src)s AND w.checkpoint_id = %(cid)s",
                args,
            )
    async with saver.conn.connection() as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            await conn.execute(f"ANALYZE {table}")
