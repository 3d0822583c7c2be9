"""Every invalid argument of a public coordinator method is a typed error that changes nothing.

Before these checks, several inputs escaped as raw Python errors
(`AttributeError`, `OverflowError`, `TypeError` from LangGraph's msgpack
serializer after the review was claimed), or were silently stored (NaN in a
turn's metadata), or made `run_sla_sweeper` spin forever (`interval=nan`).
Each test asserts the typed error and then that the store, the audit log and
the checkpoints are exactly as before.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    InvalidDecisionError,
    InvalidInputError,
    Reviewer,
)
from hitl_compliance._validate import MAX_JSON_DEPTH, check_json
from tests.conftest import CoordinatorFactory
from tests.helpers import RISKY, ScriptedDrafter, config_for


def nested(depth: int) -> dict[str, Any]:
    """A JSON object nested `depth` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


BAD_METADATA: list[Any] = [
    {"k": 2**70},
    {"k": -(2**63) - 1},
    {"k": [1, 2**64]},
    {"k": float("nan")},
    {"k": float("-inf")},
    {"k": "nul\x00"},
    {"\ud800": 1},
    {1: "non-str key"},
    {"k": b"bytes"},
    {"k": {1, 2}},
    {"k": object()},
    nested(MAX_JSON_DEPTH + 1),
    ["not", "a", "mapping"],
    "not a mapping",
]


def _stable_id(value: object) -> str:
    """`repr(value)` without object addresses: the same id in every pytest-xdist worker."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


async def pause(coord: HitlCoordinator) -> None:
    assert (await coord.process("t1", RISKY)).status == "paused"


async def frozen(coord: HitlCoordinator) -> tuple[Any, ...]:
    """Everything a refused call must leave alone: reviews, audit rows, checkpoints."""
    history = [
        s.config["configurable"]["checkpoint_id"]
        async for s in coord.graph.aget_state_history(config_for("t1"))
    ]
    return (
        await coord.pending(),
        await coord.reviews.get_review("t1"),
        await coord.reviews.audit_rows(),
        await coord.reviews.audit_head(),
        history,
    )


async def assert_still_decidable(coord: HitlCoordinator, before: tuple[Any, ...]) -> None:
    """Nothing changed, and the review can still be approved normally."""
    assert await frozen(coord) == before
    assert (await coord.approve("t1", reviewer="alice")).status == "completed"


class TestDecisionArguments:
    """`approve` / `reject` refuse bad arguments before the review is claimed."""

    @pytest.mark.parametrize("response", [b"x", 5, ["x"]])
    async def test_response_of_the_wrong_type_is_refused(
        self, coord: HitlCoordinator, response: Any
    ) -> None:
        """An edited response that is not a str (bytes too) is an InvalidDecisionError."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidDecisionError, match="response must be str"):
            await coord.approve("t1", reviewer="alice", response=response)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("metadata", BAD_METADATA, ids=_stable_id)
    async def test_approval_metadata_that_is_not_storable_json_is_refused(
        self, coord: HitlCoordinator, metadata: Any
    ) -> None:
        """Big ints, NaN, NUL, non-str keys, non-JSON values and deep nesting: no claim."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidDecisionError, match="metadata"):
            await coord.approve("t1", reviewer="alice", metadata=metadata)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("metadata", BAD_METADATA[:3], ids=_stable_id)
    async def test_rejection_metadata_beyond_64_bits_is_refused(
        self, coord: HitlCoordinator, metadata: Any
    ) -> None:
        """A rejection's metadata is checked by the same validator as an approval's."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidDecisionError, match="metadata"):
            await coord.reject("t1", reviewer="alice", metadata=metadata)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("reason", [b"x", 5])
    async def test_reason_of_the_wrong_type_is_refused(
        self, coord: HitlCoordinator, reason: Any
    ) -> None:
        """A rejection reason that is not a str is an InvalidDecisionError."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidDecisionError, match="reason must be str"):
            await coord.reject("t1", reviewer="alice", reason=reason)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("expected", [5, b"abc", "nul\x00"])
    async def test_expected_that_is_not_plain_text_is_refused(
        self, coord: HitlCoordinator, expected: Any
    ) -> None:
        """`expected` must be a draft hash or checkpoint id (a str without NUL)."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidDecisionError, match="expected"):
            await coord.approve("t1", reviewer="alice", expected=expected)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("reviewer", ["nul\x00", "lone \udc00"])
    async def test_reviewer_with_unstorable_text_is_refused(
        self, coord: HitlCoordinator, reviewer: Any
    ) -> None:
        """A reviewer id with NUL is refused, also by `pending` and `may_decide`."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidInputError, match="reviewer"):
            await coord.reject("t1", reviewer=reviewer)
        with pytest.raises(InvalidInputError, match="reviewer"):
            await coord.pending(reviewer=reviewer)
        with pytest.raises(InvalidInputError, match="reviewer"):
            await coord.may_decide("t1", reviewer)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("roles", [{"r\x00"}, {"\ud800"}])
    def test_reviewer_roles_with_unstorable_text_are_refused(self, roles: set[str]) -> None:
        """A Reviewer cannot even be built with a role no audit row could keep."""
        with pytest.raises(InvalidDecisionError, match="roles"):
            Reviewer("alice", roles=frozenset(roles))


class TestTurnArguments:
    """`process` refuses metadata exactly as decisions refuse it, before the turn starts."""

    @pytest.mark.parametrize("metadata", BAD_METADATA, ids=_stable_id)
    async def test_turn_metadata_that_is_not_storable_json_is_refused(
        self, coord: HitlCoordinator, drafter: ScriptedDrafter, metadata: Any
    ) -> None:
        """NaN or NUL in `process(metadata=...)` is refused: no checkpoint, no turn, no draft."""
        with pytest.raises(InvalidInputError, match="metadata"):
            await coord.process("t1", RISKY, metadata=metadata)
        assert drafter.calls == []
        assert (await coord.graph.aget_state(config_for("t1"))).values == {}
        assert await coord.reviews.audit_rows() == []
        await pause(coord)  # the thread was never taken

    async def test_custom_field_beyond_64_bits_is_refused(
        self, make_coordinator: CoordinatorFactory, drafter: ScriptedDrafter
    ) -> None:
        """An int no checkpoint serializer keeps, in a custom state field, is refused up front."""

        class Counted(ComplianceState):
            counter: int = 0

        coord = make_coordinator(state_schema=Counted)
        with pytest.raises(InvalidInputError, match="counter"):
            await coord.process("t1", RISKY, counter=2**64)
        assert drafter.calls == []
        assert (await coord.graph.aget_state(config_for("t1"))).values == {}
        assert (await coord.process("t1", RISKY, counter=2**63 - 1)).status == "paused"

    async def test_storable_metadata_is_kept(self, coord: HitlCoordinator) -> None:
        """The 64-bit limits themselves, finite floats and nesting at the limit are accepted."""
        metadata = {
            "lo": -(2**63),
            "hi": 2**63 - 1,
            "f": 1.5,
            "deep": nested(MAX_JSON_DEPTH - 1),
        }
        result = await coord.process("t1", RISKY, metadata=metadata)
        assert result.metadata == metadata
        # A decision's metadata goes into its audit row: ints within +/-(2**53-1).
        decided = {**metadata, "lo": -(2**53 - 1), "hi": 2**53 - 1}
        assert (await coord.approve("t1", reviewer="a", metadata=decided)).status == "completed"


class TestListingArguments:
    """`pending` refuses filters it cannot apply, before any store read."""

    @pytest.mark.parametrize(
        "older_than", [timedelta(days=10**6), timedelta.max, timedelta(days=-(3 * 10**6))]
    )
    async def test_older_than_beyond_the_calendar_is_refused(
        self, coord: HitlCoordinator, older_than: timedelta
    ) -> None:
        """A timedelta that overflows datetime arithmetic is an InvalidInputError."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidInputError, match="older_than"):
            await coord.pending(older_than=older_than)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("limit", [2**63, 2**70])
    async def test_limit_beyond_64_bits_is_refused(
        self, coord: HitlCoordinator, limit: int
    ) -> None:
        """A limit no SQL store can bind is an InvalidInputError on every store."""
        await pause(coord)
        with pytest.raises(InvalidInputError, match="limit"):
            await coord.pending(limit=limit)
        assert len(await coord.pending(limit=2**63 - 1)) == 1

    @pytest.mark.parametrize(
        "cursor", [5, b"2026-01-01T00:00:00+00:00|r", "2026-01-01T00:00:00+00:00|r\x00"]
    )
    async def test_cursor_of_the_wrong_type_or_with_nul_is_refused(
        self, coord: HitlCoordinator, cursor: Any
    ) -> None:
        """A cursor must be a `PendingReview.cursor` string."""
        await pause(coord)
        with pytest.raises(InvalidInputError, match="cursor"):
            await coord.pending(cursor=cursor)


class TestSlaArguments:
    """`expire_overdue` and `run_sla_sweeper` refuse bad times at once."""

    @pytest.mark.parametrize("now", ["x", 0, date(2026, 1, 1), datetime(2026, 1, 1)])
    async def test_now_that_is_not_an_aware_datetime_is_refused(
        self, coord: HitlCoordinator, now: Any
    ) -> None:
        """`expire_overdue(now=...)` takes only a timezone-aware datetime."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidInputError, match="now"):
            await coord.expire_overdue(now=now)
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize(
        "interval",
        ["5", None, True, math.nan, math.inf, -1, 0, timedelta(0), timedelta.min, 1e300],
        ids=repr,
    )
    async def test_interval_that_is_not_a_positive_finite_duration_is_refused(
        self, coord: HitlCoordinator, interval: Any
    ) -> None:
        """The sweeper raises at once instead of sweeping in a tight (nan) or endless loop."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidInputError, match="interval"):
            await asyncio.wait_for(coord.run_sla_sweeper(interval=interval), timeout=5)
        await assert_still_decidable(coord, before)


class TestEvidenceArguments:
    """`verify_audit`, `export_audit`, `audit_log` and `state_at_decision` check their ids."""

    @pytest.mark.parametrize("thread_id", [5, b"t1", "", "nul\x00", "x" * 513])
    async def test_thread_id_of_the_wrong_type_or_with_nul_is_refused(
        self, coord: HitlCoordinator, tmp_path: Path, thread_id: Any
    ) -> None:
        """Every evidence method refuses a thread id no store could hold."""
        await pause(coord)
        before = await frozen(coord)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.verify_audit(thread_id)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.export_audit(tmp_path / "out.jsonl", thread_id=thread_id)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await coord.state_at_decision(thread_id)
        assert not (tmp_path / "out.jsonl").exists()
        await assert_still_decidable(coord, before)

    @pytest.mark.parametrize("path", [5, None, "out\x00.jsonl", b"out.jsonl"])
    async def test_export_path_that_is_not_a_text_path_is_refused(
        self,
        coord: HitlCoordinator,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        path: Any,
    ) -> None:
        """An int (a file descriptor to `open`), None, bytes or NUL in the path is refused."""
        monkeypatch.chdir(tmp_path)  # relative paths would land here, not in the repository
        await pause(coord)
        with pytest.raises(InvalidInputError, match="path"):
            await coord.export_audit(path)
        assert not (tmp_path / "out.jsonl").exists()
        assert not (tmp_path / "out").exists()


class TestSharedJsonValidator:
    """One validator decides what JSON metadata every store and the serializer keep."""

    def test_decision_model_refuses_what_the_coordinator_refuses(self) -> None:
        """A Decision built directly (say from a raw resume value) refuses a 65-bit int too."""
        from pydantic import ValidationError

        from hitl_compliance import Decision

        with pytest.raises(ValidationError, match="64 bits"):
            Decision(
                approved=True,
                reviewer="a",
                metadata={"k": 2**64},
                decided_at=datetime.now(timezone.utc),
            )

    @pytest.mark.parametrize("value", BAD_METADATA[:-2], ids=_stable_id)
    def test_each_bad_value_is_named(self, value: Any) -> None:
        """The validator raises ValueError saying what is wrong with the value."""
        with pytest.raises(ValueError, match=r"."):
            check_json(value)
