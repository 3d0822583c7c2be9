"""The oversight report: arguments checked here, figures computed by the store."""

from __future__ import annotations

from datetime import datetime, timezone

from hitl_compliance import _validate
from hitl_compliance._coordination.context import Context
from hitl_compliance.errors import ConfigurationError, InvalidInputError
from hitl_compliance.oversight import (
    MAX_PERIODS,
    PERIODS,
    OversightReport,
    OversightThresholds,
    Period,
    period_count,
)
from hitl_compliance.stores.base import OversightSource

__all__ = ["oversight_report"]


async def oversight_report(
    ctx: Context,
    *,
    since: datetime,
    until: datetime,
    thresholds: OversightThresholds | None,
    period: str,
) -> OversightReport:
    """The store's report of `[since, until)` (contract: `HitlCoordinator.oversight_report`)."""
    start = _validate.aware_datetime("since", since).astimezone(timezone.utc)
    end = _validate.aware_datetime("until", until).astimezone(timezone.utc)
    if start >= end:
        raise InvalidInputError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}): the "
            "report covers since <= t < until."
        )
    if period not in PERIODS:
        raise InvalidInputError(f"period must be one of {list(PERIODS)}, got {period!r}.")
    if period_count(start, end, period) > MAX_PERIODS + 1:
        raise InvalidInputError(
            f"since..until spans more than {MAX_PERIODS} {period}s; pass a shorter window "
            "or a longer period (week, month)."
        )
    if thresholds is None:
        thresholds = OversightThresholds()
    elif not isinstance(thresholds, OversightThresholds):
        raise InvalidInputError(
            f"thresholds must be an OversightThresholds, got {type(thresholds).__name__}."
        )
    store = ctx.reviews
    if not isinstance(store, OversightSource):
        raise ConfigurationError(
            f"{type(store).__name__} computes no oversight reports: it needs the "
            "OversightSource capability (the library's three stores have it)."
        )
    chosen: Period = period  # narrowed by the check against PERIODS above
    return await store.oversight_report(
        since=start, until=end, thresholds=thresholds, period=chosen
    )
