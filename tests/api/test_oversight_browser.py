"""The Oversight view and `report --html` in headless Chromium: the charts are drawn.

Two weeks of decisions by three reviewers (one of them a fast, unbroken
approver) are seeded with a fake clock. The inbox's Oversight view loads
plotly.js and the chart script from the router (no other host is asked for
anything), and the page `OversightReport.to_html()` writes opens from disk
with no request but its own; both show a stacked bar per outcome, the two
time-to-decision series and one table row per flag. The inbox test saves the
screenshot `docs/assets/oversight.png` (docs/guides/oversight.md) when that
file is missing or `HITL_UPDATE_SCREENSHOTS=1`. Skips as the other browser
tests do when Chromium or playwright is missing (fails under CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    OversightReport,
    OversightThresholds,
    Reviewer,
    build_compliance_graph,
)
from hitl_compliance.testing import FakeClock
from tests.api.test_browser import CHROMIUM_FLAGS, ServerThread, chromium_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "assets" / "oversight.png"
DAYS = 14
RULES = [
    KeywordRule("promise", ["guaranteed returns"], reason="promises returns"),
    KeywordRule("pressure", ["act now"], reason="pressure selling"),
]
DRAFTS = [
    "Guaranteed returns of 8% a year on the Global Equity Fund.",
    "Act now: the offer closes today and guaranteed returns are rare.",
    "You should act now before prices rise again this quarter, as our analysts expect "
    "the fund to outperform its benchmark over the coming months.",
]


async def seeded(start: datetime) -> HitlCoordinator:
    """Two weeks of reviews from `start`: alice approves in seconds, bob and carol read."""
    clock = FakeClock(start)
    graph = build_compliance_graph(
        lambda state: state.customer_message, rules=RULES, checkpointer=InMemorySaver()
    )
    coord = HitlCoordinator(graph, clock=clock)
    rng = random.Random(7)
    n = 0
    for _day in range(DAYS):
        for _ in range(rng.randint(3, 6)):
            n += 1
            thread = f"conv-{n:03d}"
            await coord.process(thread, rng.choice(DRAFTS))
            who = rng.choice(["alice", "alice", "bob", "carol"])
            if who == "alice":
                clock.advance(seconds=rng.uniform(1, 4))
                await coord.approve(thread, reviewer=who)
                continue
            clock.advance(minutes=rng.uniform(2, 40))
            roll = rng.random()
            if roll < 0.25:
                await coord.reject(thread, reviewer=who, reason="misleading")
            elif roll < 0.45:
                await coord.approve(thread, reviewer=who, response="Please speak to an adviser.")
            else:
                await coord.approve(thread, reviewer=who)
        clock.advance(hours=rng.uniform(20, 26))
    return coord


def two_weeks_ago() -> datetime:
    now = datetime.now(timezone.utc).replace(hour=8, minute=0, second=0, microsecond=0)
    return now - timedelta(days=DAYS)


THRESHOLDS = OversightThresholds(streak_length=8, min_decisions=5)


@pytest.fixture
def served() -> Iterator[ServerThread]:
    """The review router and inbox over the seeded coordinator."""
    from fastapi import FastAPI

    from hitl_compliance.fastapi import create_review_router

    holder: dict[str, HitlCoordinator] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["coordinator"] = await seeded(two_weeks_ago())
        yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_review_router(lambda: holder["coordinator"], authenticate=lambda: Reviewer("sam"))
    )
    with ServerThread(app) as server:
        yield server


def drawn(page: Any) -> dict[str, int]:
    """What plotly drew: traces and bars of each chart, rows of the flags table."""
    return {
        "outcome_traces": page.locator("#ov-decisions g.trace.bars").count(),
        "outcome_bars": page.locator("#ov-decisions g.trace.bars g.point").count(),
        "time_traces": page.locator("#ov-times g.trace.bars").count(),
        "time_bars": page.locator("#ov-times g.trace.bars g.point").count(),
        "flag_rows": page.locator("#ov-flags tbody tr.flag").count(),
    }


def test_inbox_oversight_view_draws_the_charts(served: ServerThread, tmp_path: Path) -> None:
    """The view fetches the report and draws 5 outcome traces, 2 time series and the flags."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    since = two_weeks_ago().replace(hour=0) - timedelta(days=15)
    until = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    until += timedelta(days=1)
    report = OversightReport.model_validate_json(
        httpx.get(
            f"{served.url}/oversight",
            params={"since": since.isoformat(), "until": until.isoformat()},
        ).text
    )
    assert report.totals.decisions > 40
    kinds = {f.kind for f in report.flags}
    assert kinds == {"fast_decision", "approval_streak", "high_approval_rate"}
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/inbox")
            page.click("#view-oversight")
            expect(page.locator("#oversight")).to_have_attribute("data-loaded", "true")
            expect(page.locator("main")).to_be_hidden()
            got = drawn(page)
            reviewers = [r for r in report.reviewers if r.decisions]
            days_with = sum(
                1 for p in report.periods for o in ("approve", "edit", "reject") if getattr(p, o)
            )
            assert got["outcome_traces"] == 5
            assert got["time_traces"] == 2
            assert got["time_bars"] == 2 * len(reviewers)
            assert got["outcome_bars"] >= days_with
            assert got["flag_rows"] == len(report.flags)
            expect(page.locator("#ov-flags tbody tr.flag").first).to_contain_text("alice")
            expect(page.locator("#ov-summary")).to_contain_text(
                f"{report.totals.decisions} decisions"
            )
            assert errors == []
            shot = tmp_path / "oversight.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert all(url.startswith(served.url) for url in requests), requests
    assert any(url.split("?")[0].endswith("/oversight/plotly.js") for url in requests)
    if os.environ.get("HITL_UPDATE_SCREENSHOTS") or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_report_page_draws_offline(tmp_path: Path) -> None:
    """`to_html()` opened from disk draws the same charts and requests nothing else."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    start = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)
    coord = asyncio.run(seeded(start))
    report = asyncio.run(
        coord.oversight_report(
            since=start.replace(hour=0),
            until=start.replace(hour=0) + timedelta(days=DAYS + 1),
            thresholds=THRESHOLDS,
        )
    )
    kinds = {f.kind for f in report.flags}
    assert {"fast_decision", "approval_streak"} <= kinds
    path = tmp_path / "oversight.html"
    path.write_text(report.to_html(), encoding="utf-8")
    url = path.as_uri()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            expect(page.locator("#ov-decisions g.trace.bars")).to_have_count(5)
            got = drawn(page)
            assert got["time_traces"] == 2
            assert got["time_bars"] == 2 * len([r for r in report.reviewers if r.decisions])
            assert got["flag_rows"] == len(report.flags)
            expect(page.locator("table").nth(1)).to_contain_text("alice")
            assert errors == []
        finally:
            browser.close()
    assert requests == [url]
