"""PostgreSQL's server-side writes: each store write one call of a PL/pgSQL function.

[`ServerSideWrites`][hitl_compliance.stores._pgwrites.ServerSideWrites]
replaces the shared multi-statement writes of
[`SqlStore`][hitl_compliance.stores._sqlwrites.SqlStore] (a transaction of
several statements, so several round trips) with one statement each: a
function installed by migration step 4 (`<prefix>begin_turn`, `open_review`,
`decide`, `complete`, `escalate`, `append_audit`; `decide` replaced by step
6, `open_review` and `decide` by step 7), a conditional UPDATE (`release`) or
one CTE (the hook lease). On the
autocommit pool LangGraph's saver uses, a write is then one round trip and
its own transaction.

A VOLATILE function takes a fresh snapshot for each statement (READ
COMMITTED), so "lock, then check" inside it sees what the lock holder before
it committed. Turn and review changes of one thread are serialised by a
transaction-scoped advisory lock (the one the shared writes take too), which
keeps "is the thread free? then take it" race-free across processes; `claim`
and `vote` lock the review row (`SELECT ... FOR UPDATE`) before they check it.

Audit rows form the tamper-evident ledger of [`ledger`][hitl_compliance.ledger],
in lanes (migration step 13, `schema_lanes`):
each append computes its thread's lane, locks only that lane's head row
(`<prefix>audit_lanes`, `SELECT ... FOR UPDATE`) as the last step of its
statement, draws `seq` from `<prefix>audit_seq`, reads the thread's last row,
seals the new row (format 3, `global_prev_hash` the lane head's hash) and moves
the lane head. Appends of threads in different lanes no longer serialise; the
lock is held only for the rest of that one statement, never across a round
trip. (Before step 13 one head row, `<prefix>audit_head`, serialised every
append store-wide.) The seal is [`seal`][hitl_compliance.models.seal]'s
SHA-256 of [`canonical`][hitl_compliance.ledger.canonical] bytes: Python
builds them, cut where the values only the database knows go (seq, the two
previous hashes, the lane, and the thread and checkpoint ids a `complete`
reads from the row), and the function splices those in as JSON and hashes,
so the hash is byte-identical to `seal`'s. Hook calls owed by an audit row go
to `<prefix>hook_outbox` in the same statement.

The functions apply the same rules as the shared writes: the refusals they
report map to the state machine's (`_REFUSALS`), the conformance suite runs
on both paths, and each append's hash is checked against `seal` (and by a
property test on a real server). The functions' text is
that of the landed migration steps, which never change: a new rule goes to
`_machine` and `_sqlwrites` first, and reaches PostgreSQL as a new step
replacing the function.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hitl_compliance.ledger import GENESIS, LANES_FORMAT, LEDGER_FORMAT, lane_of
from hitl_compliance.models import (
    AuditRecord,
    HookDelivery,
    ReviewRecord,
    Vote,
    seal,
    sealed_canonical,
)
from hitl_compliance.stores import _machine as machine
from hitl_compliance.stores._machine import Refusal, refusal_error
from hitl_compliance.stores._sql import (
    OPEN_SQL,
    audit_json,
    aware,
    delivery_columns,
    delivery_from_row,
    dumps,
    indexed_rules,
    review_from_row,
    review_values,
    several_open_reviews,
)
from hitl_compliance.stores._sqlassign import AssignmentWrites
from hitl_compliance.stores._sqlqa import QaWrites
from hitl_compliance.stores._sqlstops import StopWrites
from hitl_compliance.stores.base import HOOK_FOR_EVENT, FinalStatus

if TYPE_CHECKING:
    from psycopg import AsyncCursor

__all__ = [
    "DEFAULT_LANES",
    "HEAD_MISSING_SQLSTATE",
    "ServerSideWrites",
    "Step",
    "headless_append",
    "lane_sql",
    "schema_lanes",
    "schema_v4",
    "schema_v6",
    "schema_v7",
]

logger = logging.getLogger("hitl_compliance")

_OPEN = OPEN_SQL

# A migration step is SQL statements and, where SQL alone cannot do it, Python
# steps run on the cursor (inside the migration's transaction) with the prefix.
PyStep = Callable[["AsyncCursor[dict[str, Any]]", str], Awaitable[None]]
Step = str | PyStep

# The refusals the write functions report (`begin_turn`'s result, `decide`'s
# `hitl_outcome`), in the words step 4 gave them; the errors are the machine's.
_REFUSALS: Mapping[str, Refusal] = {
    "paused": Refusal.THREAD_PAUSED,
    "busy": Refusal.TURN_IN_PROGRESS,
    "missing": Refusal.NO_REVIEW,
    "stale": Refusal.NOT_OPEN_REVIEW,
    "decided": Refusal.DECIDED,
    "duplicate": Refusal.DUPLICATE_VOTE,
    "applying": Refusal.APPLYING,
}


# The columns every write function returns: what happened (`hitl_outcome`, with
# `hitl_detail` where an error needs it), the audit row it appended, if any
# (`a_*`; `a_rebuilt` when the chain head row had to be recreated) and the
# review row it wrote or found (`review`, expanded by the caller).
_FN_OUT = (
    "OUT hitl_outcome TEXT, OUT hitl_detail TEXT, OUT a_seq BIGINT, OUT a_prev TEXT, "
    "OUT a_gprev TEXT, OUT a_hash TEXT, OUT a_rebuilt BOOLEAN"
)
_AUDIT_ARGS = "p_canon BYTEA[], p_hook TEXT, p_delivery TEXT"
_AUDIT_TYPES = ["bytea[]", "text", "text"]


def schema_v4(p: str) -> list[Step]:
    # Each write is one server-side function, so a store call is one statement:
    # one round trip, atomic on its own on an autocommit connection. A VOLATILE
    # PL/pgSQL function takes a fresh snapshot per statement (READ COMMITTED),
    # so "lock, then read" inside it sees what the lock holder before it committed.
    # A later step changing a function replaces it with CREATE OR REPLACE, or
    # drops it first when its arguments change (else the old overload stays).
    append = f"""CREATE OR REPLACE FUNCTION {p}append_audit(
        p_thread TEXT, p_review TEXT, p_checkpoint TEXT, p_event TEXT, p_actor TEXT,
        p_payload TEXT, p_at TIMESTAMPTZ, {_AUDIT_ARGS},
        OUT a_seq BIGINT, OUT a_prev TEXT, OUT a_gprev TEXT, OUT a_hash TEXT,
        OUT a_rebuilt BOOLEAN) LANGUAGE plpgsql AS $fn$
    BEGIN
        -- The store-wide chain head, locked until the caller's transaction
        -- ends: always the last thing a write does.
        a_rebuilt := false;
        SELECT h.seq, h.hash INTO a_seq, a_gprev FROM {p}audit_head AS h WHERE h.id = 1
            FOR UPDATE;
        IF NOT FOUND THEN
            -- Deleted by a direct edit: recreate it from the last audit row.
            a_rebuilt := true;
            INSERT INTO {p}audit_head (id, seq, hash)
                SELECT 1, COALESCE(MAX(a.seq), 0), COALESCE((SELECT b.hash FROM {p}audit AS b
                    ORDER BY b.seq DESC LIMIT 1), '{GENESIS}') FROM {p}audit AS a
                ON CONFLICT (id) DO NOTHING;
            SELECT h.seq, h.hash INTO STRICT a_seq, a_gprev FROM {p}audit_head AS h
                WHERE h.id = 1 FOR UPDATE;
        END IF;
        a_seq := a_seq + 1;
        -- Read with the head held: no other append of the thread is in flight.
        SELECT a.hash INTO a_prev FROM {p}audit AS a WHERE a.thread_id = p_thread
            ORDER BY a.seq DESC LIMIT 1;
        a_prev := COALESCE(a_prev, '{GENESIS}');
        -- p_canon is the row's canonical JSON (ledger.canonical) cut where the
        -- values only known here go, in key order; they are spliced in as JSON.
        a_hash := encode(sha256(
            p_canon[1] || convert_to(COALESCE(to_json(p_checkpoint)::text, 'null'), 'UTF8')
            || p_canon[2] || convert_to(to_json(a_gprev)::text, 'UTF8')
            || p_canon[3] || convert_to(to_json(a_prev)::text, 'UTF8')
            || p_canon[4] || convert_to(a_seq::text, 'UTF8')
            || p_canon[5] || convert_to(to_json(p_thread)::text, 'UTF8')
            || p_canon[6]), 'hex');
        INSERT INTO {p}audit (seq, thread_id, review_id, checkpoint_id, event, actor,
            payload, at, prev_hash, global_prev_hash, hash)
            VALUES (a_seq, p_thread, p_review, p_checkpoint, p_event, p_actor, p_payload,
                p_at, a_prev, a_gprev, a_hash);
        IF p_hook IS NOT NULL THEN
            INSERT INTO {p}hook_outbox (delivery_id, seq, thread_id, hook, status, attempts,
                created_at) VALUES (p_delivery, a_seq, p_thread, p_hook, 'pending', 0, p_at);
        END IF;
        UPDATE {p}audit_head SET seq = a_seq, hash = a_hash WHERE id = 1;
    END $fn$"""
    begin_turn = f"""CREATE OR REPLACE FUNCTION {p}begin_turn(
        p_lock TEXT, p_thread TEXT, p_owner TEXT, p_now TIMESTAMPTZ)
        RETURNS TEXT LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext(p_lock), hashtext(p_thread));
        IF EXISTS (SELECT 1 FROM {p}reviews AS r WHERE r.thread_id = p_thread
                AND r.status IN {_OPEN}) THEN
            RETURN 'paused';
        END IF;
        INSERT INTO {p}intents (thread_id, owner, started_at) VALUES (p_thread, p_owner, p_now)
            ON CONFLICT (thread_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN 'busy';
        END IF;
        RETURN 'ok';
    END $fn$"""
    open_review = f"""CREATE OR REPLACE FUNCTION {p}open_review(
        p_lock TEXT, p_review_id TEXT, p_thread TEXT, p_checkpoint TEXT, p_status TEXT,
        p_message TEXT, p_draft TEXT, p_violations JSONB, p_requested_at TIMESTAMPTZ,
        p_requested_by TEXT, p_claim TEXT, p_claimed_at TIMESTAMPTZ, p_decided_at TIMESTAMPTZ,
        p_reviewer TEXT, p_decision JSONB, p_votes JSONB, p_approvals INTEGER,
        p_deadline TIMESTAMPTZ, p_priority INTEGER, p_rules TEXT[], p_owner TEXT,
        p_actor TEXT, p_payload TEXT, {_AUDIT_ARGS}, {_FN_OUT}, OUT review {p}reviews)
        LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext(p_lock), hashtext(p_thread));
        SELECT * INTO review FROM {p}reviews AS r
            WHERE r.thread_id = p_thread AND r.checkpoint_id = p_checkpoint;
        IF FOUND THEN
            hitl_outcome := 'existing';
            RETURN;
        END IF;
        SELECT r.review_id INTO hitl_detail FROM {p}reviews AS r
            WHERE r.thread_id = p_thread AND r.status IN {_OPEN};
        IF FOUND THEN
            hitl_outcome := 'busy';
            RETURN;
        END IF;
        INSERT INTO {p}reviews (review_id, thread_id, checkpoint_id, status,
            customer_message, draft_response, violations, requested_at, requested_by,
            claim_id, claimed_at, decided_at, reviewer, decision, votes,
            approvals_required, deadline, priority)
            VALUES (p_review_id, p_thread, p_checkpoint, p_status, p_message, p_draft,
                p_violations, p_requested_at, p_requested_by, p_claim, p_claimed_at,
                p_decided_at, p_reviewer, p_decision, p_votes, p_approvals, p_deadline,
                p_priority);
        IF cardinality(p_rules) > 0 THEN
            INSERT INTO {p}review_rules (review_id, rule, requested_at)
                SELECT p_review_id, u.rule, p_requested_at FROM unnest(p_rules) AS u(rule);
        END IF;
        IF p_owner IS NOT NULL THEN
            DELETE FROM {p}intents AS i WHERE i.thread_id = p_thread AND i.owner = p_owner;
        END IF;
        SELECT * INTO a_seq, a_prev, a_gprev, a_hash, a_rebuilt FROM {p}append_audit(
            p_thread, p_review_id, p_checkpoint, 'paused', p_actor, p_payload,
            p_requested_at, p_canon, p_hook, p_delivery);
        hitl_outcome := 'opened';
    END $fn$"""
    # claim (p_vote NULL) and vote: lock the thread's latest review, check it, write.
    decide = f"""CREATE OR REPLACE FUNCTION {p}decide(
        p_thread TEXT, p_review_id TEXT, p_claim TEXT, p_reviewer TEXT, p_decision JSONB,
        p_now TIMESTAMPTZ, p_vote JSONB, p_quorum INTEGER, p_payload TEXT, {_AUDIT_ARGS},
        {_FN_OUT}, OUT review {p}reviews) LANGUAGE plpgsql AS $fn$
    DECLARE
        cur {p}reviews;
        v_votes JSONB;
    BEGIN
        SELECT * INTO cur FROM {p}reviews AS r WHERE r.thread_id = p_thread
            ORDER BY r.seq DESC LIMIT 1 FOR UPDATE;
        IF NOT FOUND THEN
            hitl_outcome := 'missing';
            RETURN;
        END IF;
        IF p_review_id IS NOT NULL AND cur.review_id <> p_review_id THEN
            SELECT r.status INTO hitl_detail FROM {p}reviews AS r
                WHERE r.review_id = p_review_id;
            hitl_outcome := 'stale';
            RETURN;
        END IF;
        IF cur.status <> 'pending' THEN
            hitl_outcome := 'decided';
            hitl_detail := cur.status;
            RETURN;
        END IF;
        IF p_vote IS NULL THEN
            UPDATE {p}reviews AS r SET status = 'claimed', claim_id = p_claim,
                claimed_at = p_now, reviewer = p_reviewer, decision = p_decision
                WHERE r.review_id = cur.review_id RETURNING * INTO review;
            hitl_outcome := 'claimed';
            RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_array_elements(cur.votes) AS v(vote)
                WHERE v.vote->>'reviewer' IS NOT DISTINCT FROM p_reviewer) THEN
            hitl_outcome := 'duplicate';
            hitl_detail := cur.status;
            RETURN;
        END IF;
        v_votes := cur.votes || jsonb_build_array(p_vote);
        IF (SELECT count(*) FROM jsonb_array_elements(v_votes) AS v(vote)
                WHERE v.vote->>'text_sha256' IS NOT DISTINCT FROM p_vote->>'text_sha256')
                >= p_quorum THEN
            UPDATE {p}reviews AS r SET status = 'claimed', claim_id = p_claim,
                claimed_at = p_now, reviewer = p_reviewer, decision = p_decision,
                votes = v_votes
                WHERE r.review_id = cur.review_id RETURNING * INTO review;
            hitl_outcome := 'claimed';
            RETURN;
        END IF;
        UPDATE {p}reviews AS r SET votes = v_votes WHERE r.review_id = cur.review_id
            RETURNING * INTO review;
        SELECT * INTO a_seq, a_prev, a_gprev, a_hash, a_rebuilt FROM {p}append_audit(
            p_thread, cur.review_id, cur.checkpoint_id, 'voted', p_reviewer, p_payload, p_now,
            p_canon, p_hook, p_delivery);
        hitl_outcome := 'voted';
    END $fn$"""
    complete = f"""CREATE OR REPLACE FUNCTION {p}complete(
        p_review_id TEXT, p_claim TEXT, p_status TEXT, p_now TIMESTAMPTZ, p_actor TEXT,
        p_payload TEXT, {_AUDIT_ARGS}, {_FN_OUT}, OUT review {p}reviews)
        LANGUAGE plpgsql AS $fn$
    BEGIN
        UPDATE {p}reviews AS r SET status = p_status, decided_at = p_now
            WHERE r.review_id = p_review_id AND r.status = 'claimed' AND r.claim_id = p_claim
            RETURNING * INTO review;
        IF NOT FOUND THEN
            SELECT * INTO review FROM {p}reviews AS r WHERE r.review_id = p_review_id;
            hitl_outcome := 'lost';
            RETURN;
        END IF;
        -- Final: list_pending(rule=...) never needs the rule rows again.
        DELETE FROM {p}review_rules AS rr WHERE rr.review_id = p_review_id;
        SELECT * INTO a_seq, a_prev, a_gprev, a_hash, a_rebuilt FROM {p}append_audit(
            review.thread_id, p_review_id, review.checkpoint_id, p_status, p_actor, p_payload,
            p_now, p_canon, p_hook, p_delivery);
        hitl_outcome := 'done';
    END $fn$"""
    escalate = f"""CREATE OR REPLACE FUNCTION {p}escalate(
        p_review_id TEXT, p_now TIMESTAMPTZ, p_deadline TIMESTAMPTZ, p_actor TEXT,
        p_payload TEXT, {_AUDIT_ARGS}, {_FN_OUT}, OUT review {p}reviews)
        LANGUAGE plpgsql AS $fn$
    BEGIN
        UPDATE {p}reviews AS r SET priority = r.priority + 1, deadline = p_deadline
            WHERE r.review_id = p_review_id AND r.status = 'pending'
            AND r.deadline IS NOT NULL AND r.deadline <= p_now
            RETURNING * INTO review;
        IF NOT FOUND THEN
            hitl_outcome := 'skipped';
            RETURN;
        END IF;
        SELECT * INTO a_seq, a_prev, a_gprev, a_hash, a_rebuilt FROM {p}append_audit(
            review.thread_id, p_review_id, review.checkpoint_id, 'escalated', p_actor,
            p_payload, p_now, p_canon, p_hook, p_delivery);
        hitl_outcome := 'escalated';
    END $fn$"""
    return [append, begin_turn, open_review, decide, complete, escalate]


async def _backfill_vote_keys(cur: AsyncCursor[dict[str, Any]], p: str) -> None:
    """Give the votes of open reviews written before keys existed their canonical key.

    The default form (the one `Vote` gives a stored vote without a key), computed in
    Python: SQL has no TS #39 skeleton. Final reviews take no more votes.
    """
    await cur.execute(
        f"SELECT review_id, votes FROM {p}reviews WHERE status IN {_OPEN} "
        "AND jsonb_array_length(votes) > 0 ORDER BY review_id"
    )
    for row in await cur.fetchall():
        votes = [Vote.model_validate(v).model_dump(mode="json") for v in row["votes"]]
        await cur.execute(
            f"UPDATE {p}reviews SET votes = %s::jsonb WHERE review_id = %s",
            (dumps(votes), row["review_id"]),
        )


def schema_v6(p: str) -> list[Step]:
    # One vote per person, compared by canonical key (`reviewer_key`, see
    # canonical_reviewer_id) instead of the id as spelt. `decide` is step 4's with
    # only its duplicate test changed; a vote without a key (none after the backfill)
    # falls back to its id.
    decide = schema_v4(p)[3]
    assert isinstance(decide, str)
    old = "WHERE v.vote->>'reviewer' IS NOT DISTINCT FROM p_reviewer) THEN"
    if old not in decide:  # pragma: no cover - step 4 is never edited
        raise AssertionError("step 4's decide() changed; write step 6's in full")
    decide = decide.replace(
        old,
        "WHERE COALESCE(v.vote->>'reviewer_key', v.vote->>'reviewer')\n"
        "                IS NOT DISTINCT FROM p_vote->>'reviewer_key') THEN",
    )
    return [_backfill_vote_keys, decide]


def _replaced(function: str, old: str, new: str) -> str:
    if old not in function:  # pragma: no cover - landed steps are never edited
        raise AssertionError("a landed step's function changed; write the new step's in full")
    return function.replace(old, new)


def schema_v7(p: str) -> list[Step]:
    # Several open reviews per thread, all of one pause (the state machine's
    # `same_pause`: ids "<checkpoint id>:<review id>" under one parent checkpoint).
    # `open_review` is step 4's with only its open-review test changed; `decide` is
    # step 6's, deciding `p_review_id` when it is another pending review of the thread
    # (the latest row is still locked first, so one thread's decisions queue on it).
    open_review = schema_v4(p)[2]
    decide = schema_v6(p)[1]
    assert isinstance(open_review, str)
    assert isinstance(decide, str)
    open_review = _replaced(
        open_review,
        "WHERE r.thread_id = p_thread AND r.status IN " + _OPEN + ";",
        "WHERE r.thread_id = p_thread AND r.status IN " + _OPEN + "\n"
        "            AND NOT (strpos(r.checkpoint_id, ':') > 0\n"
        "                AND strpos(p_checkpoint, ':') > 0\n"
        "                AND split_part(r.checkpoint_id, ':', 1)\n"
        "                    = split_part(p_checkpoint, ':', 1))\n"
        "            LIMIT 1;",
    )
    decide = _replaced(
        decide,
        """        IF p_review_id IS NOT NULL AND cur.review_id <> p_review_id THEN
            SELECT r.status INTO hitl_detail FROM {p}reviews AS r
                WHERE r.review_id = p_review_id;
            hitl_outcome := 'stale';
            RETURN;
        END IF;""".replace("{p}", p),
        """        IF p_review_id IS NOT NULL AND cur.review_id <> p_review_id THEN
            SELECT * INTO cur FROM {p}reviews AS r
                WHERE r.review_id = p_review_id AND r.thread_id = p_thread FOR UPDATE;
            IF NOT FOUND OR cur.status <> 'pending' THEN
                SELECT r.status INTO hitl_detail FROM {p}reviews AS r
                    WHERE r.review_id = p_review_id;
                hitl_outcome := 'stale';
                RETURN;
            END IF;
        END IF;""".replace("{p}", p),
    )
    decide = _replaced(
        decide,
        """        IF p_vote IS NULL THEN""",
        """        IF EXISTS (SELECT 1 FROM {p}reviews AS r WHERE r.thread_id = p_thread
                AND r.status = 'claimed' AND r.review_id <> cur.review_id) THEN
            hitl_outcome := 'applying';
            RETURN;
        END IF;
        IF p_vote IS NULL THEN""".replace("{p}", p),
    )
    return [*several_open_reviews(p), open_review, decide]


def schema_v9(p: str) -> list[Step]:
    # Ledger format per audit row: 1 (Python's json.dumps) for the rows before,
    # 2 (RFC 8785 JCS) for new ones. The rows there are get 1; then the default
    # becomes 2, so the append function (whichever step last replaced it) writes
    # new rows as format 2 without naming the column: its caller cuts the
    # canonical pieces in format 2. Both statements are safe to repeat.
    return [
        f"ALTER TABLE {p}audit ADD COLUMN IF NOT EXISTS ledger_format SMALLINT NOT NULL DEFAULT 1",
        f"ALTER TABLE {p}audit ALTER COLUMN ledger_format SET DEFAULT 2",
    ]


# The values of an audit row's canonical form (ledger.canonical) that only the
# append function knows, in key order; it splices them, as JSON, between the
# pieces `_canon_parts` cuts. `_MARK` stands in for them while cutting.
# The canonical form itself is defined once, in ledger.canonical(); the server
# only renders these five values with to_json(). If the two renderings ever
# diverge, tests/integration/test_ledger_canonical_sql.py fails (generated,
# escape-heavy rows sealed by the server against `seal`), and `append_audit`
# refuses the row at run time.
_SPLICED = ("checkpoint_id", "global_prev_hash", "lane", "prev_hash", "seq", "thread_id")
# Tables without lanes (before their migration step): format 2, no `lane`.
_SPLICED_ONE_CHAIN = ("checkpoint_id", "global_prev_hash", "prev_hash", "seq", "thread_id")
_MARK = secrets.token_hex(16)


def _canon_parts(
    *,
    thread_id: str | None,
    review_id: str | None,
    event: str,
    actor: str,
    payload: str,
    at: datetime,
    lanes: bool = True,
) -> list[bytes]:
    """The canonical bytes of a format-3 audit row, cut around the `_SPLICED` values (seven pieces).

    The row is sealed over its parsed `payload` (the JSON text stored), which is
    exactly what reading it back gives. Hashing `pieces[0] + json(checkpoint_id)
    + pieces[1] + ... + pieces[5]` gives the same bytes as `seal`. A payload the
    ledger cannot hash raises LedgerValueError (naming `thread_id`) before any call.
    """
    mark = _MARK
    spliced = _SPLICED if lanes else _SPLICED_ONE_CHAIN
    while True:
        marks = {name: f"{mark}{i}" for i, name in enumerate(spliced)}
        row = AuditRecord(
            seq=0,
            thread_id=marks["thread_id"],
            review_id=review_id,
            checkpoint_id=marks["checkpoint_id"],
            event=event,
            actor=actor,
            payload=json.loads(payload),
            at=at,
            prev_hash=marks["prev_hash"],
            global_prev_hash=marks["global_prev_hash"],
            ledger_format=LANES_FORMAT if lanes else LEDGER_FORMAT,
        ).to_row()
        row["seq"] = marks["seq"]
        if lanes:
            row["lane"] = marks["lane"]
        text = sealed_canonical(row, thread_id=thread_id)
        quoted = [f'"{marks[name]}"'.encode() for name in spliced]
        if all(text.count(q) == 1 for q in quoted):
            found = [text.index(q) for q in quoted]
            if found != sorted(found):  # pragma: no cover - the key order is fixed
                raise RuntimeError(f"canonical() no longer orders {spliced} as expected")
            pieces, start = [], 0
            for q, i in zip(quoted, found, strict=True):
                pieces.append(text[start:i])
                start = i + len(q)
            pieces.append(text[start:])
            return pieces
        mark = secrets.token_hex(16)  # pragma: no cover - the payload holds the mark


HEAD_MISSING_SQLSTATE = "HL001"
"""The SQLSTATE `append_audit` raises when the chain head row is gone (LedgerHeadMissingError)."""

_REBUILD_HEAD = f"""        IF NOT FOUND THEN
            -- Deleted by a direct edit: recreate it from the last audit row.
            a_rebuilt := true;
            INSERT INTO {{p}}audit_head (id, seq, hash)
                SELECT 1, COALESCE(MAX(a.seq), 0), COALESCE((SELECT b.hash FROM {{p}}audit AS b
                    ORDER BY b.seq DESC LIMIT 1), '{GENESIS}') FROM {{p}}audit AS a
                ON CONFLICT (id) DO NOTHING;
            SELECT h.seq, h.hash INTO STRICT a_seq, a_gprev FROM {{p}}audit_head AS h
                WHERE h.id = 1 FOR UPDATE;
        END IF;
"""
_REFUSE_HEADLESS = f"""        IF NOT FOUND THEN
            -- Deleted by a direct edit: rebuilding it from the last row would hide
            -- rows cut from the end with it, so refuse (LedgerHeadMissingError).
            RAISE EXCEPTION 'the audit chain head row ({{p}}audit_head) is missing'
                USING ERRCODE = '{HEAD_MISSING_SQLSTATE}';
        END IF;
"""


def headless_append(p: str) -> str:
    """Step 4's `append_audit`, refusing to rebuild a deleted chain head (SQLSTATE HL001).

    Same signature (`a_rebuilt` stays, always false), so every write function
    calling it keeps working.
    """
    append = schema_v4(p)[0]
    assert isinstance(append, str)
    rebuild = _REBUILD_HEAD.replace("{p}", p)
    assert rebuild in append, "step 4's append_audit changed"
    return append.replace(rebuild, _REFUSE_HEADLESS.replace("{p}", p))


class ServerSideWrites(QaWrites, StopWrites, AssignmentWrites):
    """The PostgreSQL store's writes as one statement each (see the module docstring).

    Needs the one-statement primitives of the store (`_fetch_one`,
    `_fetch_all`, `_execute`) and the functions of migration steps 4 and 6.
    """

    def __init__(self, *, table_prefix: str) -> None:
        super().__init__(table_prefix=table_prefix)
        p = table_prefix
        # Turn and review changes of one thread take this advisory lock (with the thread).
        self._lock_ns = f"hitl_compliance:{p}"
        self._sql_open_review = self._call_sql(
            "open_review",
            ["text"] * 7
            + ["jsonb", "timestamptz", "text", "text", "timestamptz", "timestamptz", "text"]
            + ["jsonb", "jsonb", "integer", "timestamptz", "integer", "text[]", "text", "text"]
            + ["text", *_AUDIT_TYPES],
        )
        self._sql_decide = self._call_sql(
            "decide",
            [*(["text"] * 4), "jsonb", "timestamptz", "jsonb", "integer", "text", *_AUDIT_TYPES],
        )
        self._sql_complete = self._call_sql(
            "complete", ["text", "text", "text", "timestamptz", "text", "text", *_AUDIT_TYPES]
        )
        self._sql_escalate = self._call_sql(
            "escalate", ["text", "timestamptz", "timestamptz", "text", "text", *_AUDIT_TYPES]
        )

    def _call_sql(self, function: str, types: Sequence[str]) -> str:
        """The statement calling write function `function` with one typed parameter per type."""
        args = ", ".join(f"%s::{t}" for t in types)
        return (
            "SELECT f.hitl_outcome, f.hitl_detail, f.a_seq, f.a_prev, f.a_gprev, f.a_hash, "
            f"f.a_rebuilt, (f.review).* FROM {self.table_prefix}{function}({args}) AS f"
        )

    def _audit_args(
        self,
        *,
        review_id: str | None,
        event: str,
        actor: str,
        payload: str,
        at: datetime,
        thread_id: str | None = None,
    ) -> list[Any]:
        """The `p_canon, p_hook, p_delivery` arguments of an append with these values.

        Raises LedgerValueError (naming `thread_id` when the caller knows it) for a
        payload the ledger cannot hash, before anything is sent.
        """
        canon = _canon_parts(
            thread_id=thread_id,
            review_id=review_id,
            event=event,
            actor=actor,
            payload=payload,
            at=at,
            lanes=self._lane_sql is not None,
        )
        hook = HOOK_FOR_EVENT.get(event)
        if hook is None or hook not in self._hooks:
            return [canon, None, None]
        return [canon, hook, uuid.uuid4().hex]

    # -- turns -------------------------------------------------------------------

    async def begin_turn(self, thread_id: str, *, owner: str, now: datetime) -> None:
        """Start a turn (see the protocol): one call of the store's `begin_turn` function.

        The function holds the thread's advisory lock from the open-review check
        to the intent insert, so two sessions never both start a turn.
        """
        aware(now)
        row = await self._fetch_one(
            f"SELECT {self.table_prefix}begin_turn(%s::text, %s::text, %s::text, "
            "%s::timestamptz) AS outcome",
            (self._lock_ns, thread_id, owner, now),
        )
        outcome = None if row is None else str(row["outcome"])
        refusal = None if outcome is None else _REFUSALS.get(outcome)
        if refusal is not None:
            raise refusal_error(refusal, thread_id=thread_id)
        assert outcome == "ok", outcome

    # -- reviews -----------------------------------------------------------------

    async def open_review(self, review: ReviewRecord, *, owner: str | None) -> ReviewRecord:
        """Open a review (see the protocol): one call of the store's `open_review` function.

        Under the thread's advisory lock, it looks the checkpoint's review up,
        checks no other is open, and writes review, rules, audit row and the
        end of the turn as one statement.
        """
        values = review_values(self.dialect, review)
        actor = review.requested_by or "system"
        sealed, personal = self._paused_payload(review)
        audit_payload = audit_json(sealed, event="paused", thread_id=review.thread_id)
        # Kept in the server-side write's round trip, just before it (its one statement
        # takes no side rows): a review that then exists already leaves values no row
        # commits to, which erasing the thread removes.
        self.stage_personal(personal)
        row = await self._fetch_one(
            self._sql_open_review,
            [
                self._lock_ns,
                *values,
                indexed_rules(review),
                owner,
                actor,
                audit_payload,
                *self._audit_args(
                    thread_id=review.thread_id,
                    review_id=review.review_id,
                    event="paused",
                    actor=actor,
                    payload=audit_payload,
                    at=review.requested_at,
                ),
            ],
        )
        assert row is not None
        if row["hitl_outcome"] == "existing":
            return review_from_row(self.dialect, row)
        if row["hitl_outcome"] == "busy":
            raise refusal_error(
                Refusal.REVIEW_OPEN, thread_id=review.thread_id, review_id=row["hitl_detail"]
            )
        await self._after_write()
        return review

    async def _decide(
        self,
        thread_id: str,
        review_id: str | None,
        *,
        claim_id: str,
        reviewer: str,
        decision: str,
        now: datetime,
        vote: tuple[str, int, list[Any]] | None,
    ) -> ReviewRecord:
        """Claim the thread's pending review, or vote on it (`vote`: JSON, quorum, audit args).

        One call of the `decide` function: it locks the thread's latest review
        (`SELECT ... FOR UPDATE`), so concurrent deciders queue on the row and,
        after the one ahead commits, the next one finds it as that one left it.

        Raises:
            ReviewNotFoundError: the thread has no review at all.
            AlreadyDecidedError: the latest review is not pending, or is not `review_id`.
            DuplicateVoteError: `reviewer` already voted on this review.
        """
        vote_json, quorum, audit = (None, None, [None, None, None]) if vote is None else vote
        row = await self._fetch_one(
            self._sql_decide,
            # p_vote is also the payload of the `voted` audit row.
            [
                thread_id,
                review_id,
                claim_id,
                reviewer,
                decision,
                now,
                vote_json,
                quorum,
                vote_json,
                *audit,
            ],
        )
        assert row is not None
        outcome = row["hitl_outcome"]
        if outcome in _REFUSALS:
            raise refusal_error(
                _REFUSALS[outcome],
                thread_id=thread_id,
                review_id=review_id,
                status=row["hitl_detail"],
                reviewer=reviewer,
            )
        await self._after_write()
        return review_from_row(self.dialect, row)

    async def claim(
        self,
        thread_id: str,
        *,
        claim_id: str,
        reviewer: str,
        decision: dict[str, Any],
        now: datetime,
        review_id: str | None = None,
    ) -> ReviewRecord:
        """Claim the pending review (see the protocol): one call of the store's `decide` function.

        It locks the thread's latest review (`SELECT ... FOR UPDATE`), so
        concurrent claims and votes queue on the row; after the winner commits,
        the others find it no longer `pending`.
        """
        aware(now)
        return await self._decide(
            thread_id,
            review_id,
            claim_id=claim_id,
            reviewer=reviewer,
            decision=dumps(decision),
            now=now,
            vote=None,
        )

    async def vote(
        self,
        thread_id: str,
        *,
        review_id: str,
        vote: Vote,
        quorum: int,
        claim_id: str,
        decision: dict[str, Any],
        now: datetime,
    ) -> ReviewRecord:
        """Record a vote (see the protocol): one call of the store's `decide` function.

        The review row is locked (`SELECT ... FOR UPDATE`) for the whole
        read-check-write; its outcomes map to the state machine's refusals.
        """
        aware(now)
        vote_json = audit_json(vote.model_dump(mode="json"), event="voted", thread_id=thread_id)
        # The vote itself counts, so a quorum of one always claims: no audit row.
        audit = (
            [None, None, None]
            if quorum <= 1
            else self._audit_args(
                thread_id=thread_id,
                review_id=review_id,
                event="voted",
                actor=vote.reviewer,
                payload=vote_json,
                at=now,
            )
        )
        return await self._decide(
            thread_id,
            review_id,
            claim_id=claim_id,
            reviewer=vote.reviewer,
            decision=dumps(decision),
            now=now,
            vote=(vote_json, quorum, audit),
        )

    async def release(self, review_id: str, *, claim_id: str) -> None:
        """Undo a claim (see the protocol).

        One conditional UPDATE that also filters the claimer's vote out.
        """
        await self._execute(
            f"UPDATE {self._reviews} AS r SET status = 'pending', claim_id = NULL, "
            "claimed_at = NULL, reviewer = NULL, decision = NULL, votes = COALESCE(("
            "SELECT jsonb_agg(v.vote ORDER BY v.n) FROM jsonb_array_elements(r.votes) "
            "WITH ORDINALITY AS v(vote, n) WHERE v.vote->>'reviewer' IS DISTINCT FROM "
            "r.reviewer), '[]'::jsonb) "
            "WHERE r.review_id = %s AND r.status = 'claimed' AND r.claim_id = %s",
            (review_id, claim_id),
        )

    async def complete(
        self,
        review_id: str,
        *,
        claim_id: str,
        status: FinalStatus,
        now: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord:
        """Complete a claimed review (see the protocol).

        One call of the store's `complete` function (update, rule rows, audit row).
        """
        aware(now)
        payload_json = audit_json(payload, event=status, thread_id=None)
        row = await self._fetch_one(
            self._sql_complete,
            [
                review_id,
                claim_id,
                status,
                now,
                actor,
                payload_json,
                *self._audit_args(
                    review_id=review_id, event=status, actor=actor, payload=payload_json, at=now
                ),
            ],
        )
        assert row is not None
        if row["hitl_outcome"] == "lost":
            if machine.completed_by(row["status"], row["claim_id"], claim_id, status):
                return review_from_row(self.dialect, row)  # this claim completed it already
            raise refusal_error(
                Refusal.CLAIM_LOST,
                review_id=review_id,
                thread_id=row["thread_id"],
                status=row["status"],
            )
        await self._after_write()
        return review_from_row(self.dialect, row)

    # -- audit -------------------------------------------------------------------

    async def append_audit(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        checkpoint_id: str | None,
        event: str,
        actor: str,
        payload: dict[str, Any],
        at: datetime,
    ) -> AuditRecord:
        """Append an audit row (see the protocol).

        One call of the store's `append_audit` function, checked against `seal`.
        """
        payload_json = audit_json(payload, event=event, thread_id=thread_id)
        aware(at)
        row = await self._fetch_one(
            f"SELECT * FROM {self.table_prefix}append_audit(%s::text, %s::text, %s::text, "
            "%s::text, %s::text, %s::text, %s::timestamptz, %s::bytea[], %s::text, %s::text)",
            [
                thread_id,
                review_id,
                checkpoint_id,
                event,
                actor,
                payload_json,
                at,
                *self._audit_args(
                    thread_id=thread_id,
                    review_id=review_id,
                    event=event,
                    actor=actor,
                    payload=payload_json,
                    at=at,
                ),
            ],
        )
        assert row is not None
        await self._after_write()
        record = seal(
            seq=row["a_seq"],
            thread_id=thread_id,
            review_id=review_id,
            checkpoint_id=checkpoint_id,
            event=event,
            actor=actor,
            payload=json.loads(payload_json),
            at=at,
            prev_hash=row["a_prev"],
            global_prev_hash=row["a_gprev"],
            **(
                {}
                if self._lane_sql is None
                else {"ledger_format": LANES_FORMAT, "lane": lane_of(thread_id, self._lane_count)}
            ),
        )
        if record.hash != row["a_hash"]:  # pragma: no cover - a bug, never data
            raise RuntimeError(
                f"Audit row {record.seq} was sealed as {row['a_hash']} in the database, "
                f"but its canonical form hashes to {record.hash}."
            )
        return record

    # -- SLA ---------------------------------------------------------------------

    async def escalate(
        self,
        review_id: str,
        *,
        now: datetime,
        new_deadline: datetime,
        actor: str,
        payload: dict[str, Any],
    ) -> ReviewRecord | None:
        """Escalate an overdue review (see the protocol).

        One call of the store's `escalate` function.

        Its conditional UPDATE (still pending, `deadline <= now`) locks the row;
        a concurrent sweeper waits on that lock and then finds the condition
        false, so exactly one escalates, with its `escalated` audit row.
        """
        aware(now)
        aware(new_deadline)
        payload_json = audit_json(payload, event="escalated", thread_id=None)
        row = await self._fetch_one(
            self._sql_escalate,
            [
                review_id,
                now,
                new_deadline,
                actor,
                payload_json,
                *self._audit_args(
                    review_id=review_id,
                    event="escalated",
                    actor=actor,
                    payload=payload_json,
                    at=now,
                ),
            ],
        )
        assert row is not None
        if row["hitl_outcome"] == "skipped":
            return None
        await self._after_write()
        return review_from_row(self.dialect, row)

    # -- hook outbox -------------------------------------------------------------

    async def _lease(
        self, pick: str, params: list[Any], *, owner: str, until: Any
    ) -> list[HookDelivery]:
        """Lease the picked outbox rows in one statement.

        The rows are picked `FOR UPDATE SKIP LOCKED`: a row another claimer
        is leasing at that moment is skipped, and one it leased already no
        longer matches, so concurrent claimers never lease one row twice.
        """
        sql = (
            f"WITH picked AS ({pick} FOR UPDATE SKIP LOCKED), "
            f"c AS (UPDATE {self._outbox} AS u SET lease_owner = %s, lease_until = %s "
            "FROM picked WHERE u.delivery_id = picked.delivery_id RETURNING u.*) "
            f"{delivery_columns('c')} FROM c JOIN {self._audit} AS a ON a.seq = c.seq "
            "ORDER BY c.seq"
        )
        rows = await self._fetch_all(sql, [*params, owner, until])
        return [delivery_from_row(self.dialect, r) for r in rows]


DEFAULT_LANES = 16
"""How many ledger lanes a new PostgreSQL store gets (`PostgresReviewStore(ledger_lanes=)`)."""

_LANE_OF = (
    "(('x' || substr(encode(sha256(convert_to({thread}, 'UTF8')), 'hex'), 1, 8))::bit(32)"
    "::bigint % {lanes})::integer"
)
"""SQL of [`lane_of`][hitl_compliance.ledger.lane_of]: 8 hex digits of SHA-256, modulo L."""


def schema_lanes(p: str) -> list[Step]:
    """Ledger lanes: one chain head per lane, seq from a SEQUENCE, rows in format 3.

    A thread's rows go to lane `lane_of(thread_id, L)`; an append locks only its
    lane's head row (`<prefix>audit_lanes`), so appends of threads in other
    lanes run in parallel. The old store-wide head becomes lane 0 (kept missing
    when it was deleted: appends to lane 0 then refuse with SQLSTATE HL001). L is
    written to `<prefix>audit_config` by the store's setup right after this step
    (the constructor's `ledger_lanes`), once, so the mapping never changes. Every
    statement is safe to repeat.
    """
    g = GENESIS
    lane = _LANE_OF.format(thread="p_thread", lanes="v_lanes")
    append = f"""CREATE OR REPLACE FUNCTION {p}append_audit(
        p_thread TEXT, p_review TEXT, p_checkpoint TEXT, p_event TEXT, p_actor TEXT,
        p_payload TEXT, p_at TIMESTAMPTZ, {_AUDIT_ARGS},
        OUT a_seq BIGINT, OUT a_prev TEXT, OUT a_gprev TEXT, OUT a_hash TEXT,
        OUT a_rebuilt BOOLEAN) LANGUAGE plpgsql AS $fn$
    DECLARE
        v_lanes INTEGER;
        v_lane INTEGER;
    BEGIN
        a_rebuilt := false;
        SELECT c.lanes INTO v_lanes FROM {p}audit_config AS c WHERE c.id = 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the audit ledger configuration row ({p}audit_config) is missing'
                USING ERRCODE = '{HEAD_MISSING_SQLSTATE}';
        END IF;
        v_lane := {lane};
        -- Only this lane's head, locked until the caller's transaction ends:
        -- always the last thing a write does.
        SELECT h.hash INTO a_gprev FROM {p}audit_lanes AS h WHERE h.lane = v_lane FOR UPDATE;
        IF NOT FOUND THEN
            -- Deleted by a direct edit: rebuilding it from the lane's last row would
            -- hide rows cut from the end with it, so refuse (LedgerHeadMissingError).
            RAISE EXCEPTION 'the audit chain head row of lane % ({p}audit_lanes) is missing',
                v_lane USING ERRCODE = '{HEAD_MISSING_SQLSTATE}';
        END IF;
        -- Drawn with the lane head held: seq increases along each lane.
        a_seq := nextval('{p}audit_seq');
        -- Read with the lane head held: no other append of the thread is in flight.
        SELECT a.hash INTO a_prev FROM {p}audit AS a WHERE a.thread_id = p_thread
            ORDER BY a.seq DESC LIMIT 1;
        a_prev := COALESCE(a_prev, '{g}');
        a_hash := encode(sha256(
            p_canon[1] || convert_to(COALESCE(to_json(p_checkpoint)::text, 'null'), 'UTF8')
            || p_canon[2] || convert_to(to_json(a_gprev)::text, 'UTF8')
            || p_canon[3] || convert_to(v_lane::text, 'UTF8')
            || p_canon[4] || convert_to(to_json(a_prev)::text, 'UTF8')
            || p_canon[5] || convert_to(a_seq::text, 'UTF8')
            || p_canon[6] || convert_to(to_json(p_thread)::text, 'UTF8')
            || p_canon[7]), 'hex');
        INSERT INTO {p}audit (seq, thread_id, review_id, checkpoint_id, event, actor,
            payload, at, prev_hash, global_prev_hash, hash, ledger_format, lane)
            VALUES (a_seq, p_thread, p_review, p_checkpoint, p_event, p_actor, p_payload,
                p_at, a_prev, a_gprev, a_hash, 3, v_lane);
        IF p_hook IS NOT NULL THEN
            INSERT INTO {p}hook_outbox (delivery_id, seq, thread_id, hook, status, attempts,
                created_at) VALUES (p_delivery, a_seq, p_thread, p_hook, 'pending', 0, p_at);
        END IF;
        UPDATE {p}audit_lanes SET seq = a_seq, hash = a_hash WHERE lane = v_lane;
    END $fn$"""
    return [
        f"ALTER TABLE {p}audit ADD COLUMN IF NOT EXISTS lane INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {p}audit_seals ADD COLUMN IF NOT EXISTS lanes TEXT",
        f"""CREATE TABLE IF NOT EXISTS {p}audit_config (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            lanes INTEGER NOT NULL CHECK (lanes >= 1)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {p}audit_lanes (
            lane INTEGER PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL
        )""",
        f"CREATE SEQUENCE IF NOT EXISTS {p}audit_seq",
        # The old head becomes lane 0 (a deleted one stays missing), then goes.
        f"""DO $mig$ BEGIN
            IF to_regclass('{p}audit_head') IS NOT NULL THEN
                INSERT INTO {p}audit_lanes (lane, seq, hash)
                    SELECT 0, h.seq, h.hash FROM {p}audit_head AS h WHERE h.id = 1
                    ON CONFLICT (lane) DO NOTHING;
                DROP TABLE {p}audit_head;
            END IF;
        END $mig$""",
        # Past every seq written so far (and the head's, should its row be gone).
        f"""SELECT setval('{p}audit_seq', GREATEST(
            (SELECT COALESCE(MAX(a.seq), 0) FROM {p}audit AS a),
            (SELECT COALESCE(MAX(h.seq), 0) FROM {p}audit_lanes AS h),
            (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
                FROM {p}audit_seq AS s)) + 1, false)""",
        append,
    ]


def lane_sql(thread: str, lanes: str) -> str:
    """The SQL expression of a thread's lane (for tests and queries)."""
    return _LANE_OF.format(thread=thread, lanes=lanes)
