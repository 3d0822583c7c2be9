"""Request and response bodies on their own: what a route accepts before the coordinator sees it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from hitl_compliance import InvalidInputError
from hitl_compliance.fastapi import ApproveRequest, RejectRequest, ReviewPage
from hitl_compliance.fastapi._bodies import parse_older_than


class TestApproveRequest:
    """`ApproveRequest`: an optional edit, `expected` and metadata."""

    def test_empty_body_approves_the_draft(self) -> None:
        """`{}` is a valid approval with nothing edited."""
        body = ApproveRequest.model_validate({})
        assert (body.response, body.expected, body.metadata) == (None, None, None)

    @pytest.mark.parametrize(
        "payload",
        [
            {"response": "nul\x00"},
            {"response": "x" * 20_001},
            {"expected": "y" * 129},
            {"metadata": {"k": "nul\x00"}},
            {"metadata": {"k": "v" * 20_000}},
            {"unknown": 1},
        ],
        ids=[
            "nul-response",
            "long-response",
            "long-expected",
            "nul-metadata",
            "big-metadata",
            "extra-field",
        ],
    )
    def test_refused(self, payload: dict[str, object]) -> None:
        """Text no store keeps, oversized fields and unknown fields fail validation."""
        with pytest.raises(ValidationError):
            ApproveRequest.model_validate(payload)

    def test_deep_metadata_is_refused(self) -> None:
        """Metadata nested deeper than the audit record allows fails validation."""
        deep: dict[str, object] = {}
        node = deep
        for _ in range(20):
            node["k"] = {}
            node = node["k"]  # type: ignore[assignment]
        with pytest.raises(ValidationError):
            ApproveRequest.model_validate({"metadata": deep})

    def test_metadata_kept(self) -> None:
        """Small JSON metadata is kept as given."""
        body = ApproveRequest.model_validate({"metadata": {"ticket": "C-9", "n": [1, 2]}})
        assert body.metadata == {"ticket": "C-9", "n": [1, 2]}


class TestRejectRequest:
    """`RejectRequest`: a reason, `expected` and metadata."""

    def test_reason_defaults_to_empty(self) -> None:
        """A rejection without a reason is allowed (the policy may require one)."""
        assert RejectRequest.model_validate({}).reason == ""

    def test_long_reason_is_refused(self) -> None:
        """A reason over 5,000 characters fails validation."""
        with pytest.raises(ValidationError):
            RejectRequest.model_validate({"reason": "r" * 5_001})


class TestReviewPage:
    """`ReviewPage`: items and the next cursor."""

    def test_last_page(self) -> None:
        """Without a cursor the page is the last."""
        assert ReviewPage(items=[]).next_cursor is None


class TestParseOlderThan:
    """`parse_older_than`: seconds or an aware ISO datetime."""

    def test_seconds(self) -> None:
        """A number is an age in seconds."""
        assert parse_older_than("90.5") == timedelta(seconds=90.5)

    def test_aware_datetime_is_utc(self) -> None:
        """An ISO datetime with an offset is returned in UTC."""
        parsed = parse_older_than("2025-01-01T10:00:00+01:00")
        assert parsed == datetime(2025, 1, 1, 9, tzinfo=timezone.utc)
        assert isinstance(parsed, datetime)
        assert parsed.tzinfo is timezone.utc

    @pytest.mark.parametrize(
        "value", ["-1", "nan", "inf", "1e12", "yesterday", "2025-01-01T10:00:00"]
    )
    def test_refused(self, value: str) -> None:
        """Negative, infinite or absurd ages, text and naive datetimes are InvalidInputError."""
        with pytest.raises(InvalidInputError, match="older_than"):
            parse_older_than(value)
