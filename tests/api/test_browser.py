"""The reviewer inbox end to end in headless Chromium, against the example service on uvicorn.

Skips (with the reason) when Chromium or the `playwright` package is missing,
except under CI (`CI` set), where a missing browser is a failure: the inbox
must have been seen working. Playwright drives the system Chromium
(`/usr/bin/chromium`); `playwright install` is never needed.

A second test plays the attacker: a page served from another origin (another
port of 127.0.0.1, so the reviewer's `SameSite=Lax` session cookie still
travels) tries to decide a review with forms and `fetch`, and to frame the
inbox; the review must still be pending and the frame blocked.

The first test saves a screenshot of the inbox; it replaces `docs/assets/inbox.png`
(shown by docs/guides/review-service.md) when that file is missing or when
`HITL_UPDATE_SCREENSHOTS=1`, so ordinary runs leave the work tree alone; the stop
switch's test does the same for `docs/assets/stop-banner.png` (docs/guides/oversight.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from examples.review_service import REVIEWERS
from fastapi import Cookie, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from hitl_compliance import Reviewer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "assets" / "inbox.png"
STOP_SCREENSHOT = ROOT / "docs" / "assets" / "stop-banner.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EDIT = (
    "Thanks for asking. I can't recommend a particular fund here; one of our "
    "qualified advisers will call you to talk through your options and the risks."
)


def chromium_path() -> str:
    """The system Chromium, or skip (fail under CI) saying how to get it."""
    missing = []
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        missing.append("Chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append('the playwright package (pip install -e ".[dev]")')
    if missing:
        reason = f"the browser test needs {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this must not skip: {reason}")
        pytest.skip(reason)
    return path


class ServerThread:
    """uvicorn serving an ASGI app on a free localhost port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.socket.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerThread]:
    """`examples/review_service.py`'s app on a fresh SQLite file, seeded with two reviews."""
    from examples.review_service import create_app

    app = create_app(f"sqlite:///{tmp_path / 'inbox.db'}")
    with ServerThread(app) as server:
        yield server


def test_edit_approve_and_audit_in_chromium(served: ServerThread, tmp_path: Path) -> None:
    """A reviewer edits a draft and approves it; the item leaves the list, the audit shows it."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    api = httpx.Client(base_url=served.url, headers={"X-Reviewer": "sam@bank"}, timeout=10)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 860},
            locale="en-GB",
            timezone_id="Europe/London",
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/inbox?reviewer=sam@bank")

            reviews = page.locator("article.review")
            expect(reviews).to_have_count(2)
            expect(page.locator("#whoami")).to_have_text("Signed in as sam@bank (smcr_approver)")
            expect(page.locator("#status")).to_have_text("live")

            # The seeded equity-fund review: evidence marked, deadline and quorum shown.
            fund = reviews.filter(has_text="Global Equity Fund").first
            thread_id = fund.get_attribute("data-thread")
            assert thread_id
            marks = fund.locator(".draft mark")
            expect(marks).to_have_text(["you should invest", "guaranteed returns"])
            expect(fund.locator(".deadline")).to_contain_text("due in")
            expect(fund.locator(".votes")).to_have_text("approvals 0 of 1")

            # A new customer message pauses; the open page hears it on /events.
            live = api.post(
                "/demo/messages",
                json={
                    "thread_id": "conv-live",
                    "message": "Should I move my savings into the Global Equity Fund?",
                },
            )
            assert live.json()["status"] == "paused"
            expect(reviews).to_have_count(3)
            expect(page.locator("#activity")).to_contain_text("conv-live paused for review")

            # Edit the draft and approve the edit.
            fund.get_by_role("button", name="Edit").click()
            fund.locator("textarea.edit").fill(EDIT)
            fund.get_by_role("button", name="Approve edited reply").click()

            expect(page.locator(f'article[data-thread="{thread_id}"]')).to_have_count(0)
            expect(reviews).to_have_count(2)
            expect(page.locator("#banner")).to_contain_text(
                f"Approved {thread_id}: the customer received your edited reply."
            )
            expect(page.locator("#audit-title")).to_have_text(f"Audit trail · {thread_id}")
            audit_rows = page.locator("#audit tbody tr")
            expect(audit_rows).to_have_count(3)  # paused, replied, approved
            expect(audit_rows.nth(1)).to_contain_text("replied")
            expect(audit_rows.nth(2)).to_contain_text("approved")
            expect(audit_rows.nth(2)).to_contain_text("sam@bank")
            expect(page.locator("#audit-detail")).to_contain_text(EDIT)
            expect(page.locator("#activity")).to_contain_text(f"{thread_id} approved by sam@bank")
            assert errors == []

            shot = tmp_path / "inbox.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("HITL_UPDATE_SCREENSHOTS") or not SCREENSHOT.exists():
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
        finally:
            context.close()

    # What the browser did is what the service recorded.
    audit = api.get(f"/reviews/{thread_id}/audit").json()
    assert [(row["event"], row["actor"]) for row in audit] == [
        ("paused", "system"),
        ("replied", "sam@bank"),
        ("approved", "sam@bank"),
    ]
    assert audit[1]["payload"]["outcome"] == "edited"
    assert audit[-1]["payload"]["delivered"] == EDIT
    pending = api.get("/reviews").json()["items"]
    assert thread_id not in {item["thread_id"] for item in pending}
    api.close()


HIDDEN_DRAFT = (
    "Good news: gua\u200branteed\u00a0r\u0435turns of 9%, and a guaranteed returns "
    "bonus. Act \uff4e\uff4f\uff57!"
)
"""A draft hiding its phrases with a zero-width space, a no-break space, a Cyrillic е
and fullwidth letters, next to a plain copy of one phrase."""


def test_reject_with_a_reason_in_chromium(served: ServerThread, tmp_path: Path) -> None:
    """Reject opens the reason field; Confirm reject sends it; the audit records the reason."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/inbox?reviewer=sam@bank")
            reviews = page.locator("article.review")
            expect(reviews).to_have_count(2)
            expect(page.locator("#status")).to_have_text("live")
            first = reviews.first
            thread_id = first.get_attribute("data-thread")
            assert thread_id
            expect(first.locator("input.reason")).to_be_hidden()
            first.get_by_role("button", name="Reject", exact=True).click()
            first.get_by_role("textbox", name=f"Rejection reason for {thread_id}").fill("no advice")
            first.get_by_role("button", name="Confirm reject").click()
            expect(page.locator(f'article[data-thread="{thread_id}"]')).to_have_count(0)
            expect(page.locator("#banner")).to_contain_text(f"Rejected {thread_id}.")
            assert errors == []
        finally:
            context.close()
    api = httpx.Client(base_url=served.url, headers={"X-Reviewer": "sam@bank"}, timeout=10)
    audit = api.get(f"/reviews/{thread_id}/audit").json()
    assert (audit[-1]["event"], audit[-1]["payload"]["reason"]) == ("rejected", "no advice")


def test_reject_with_a_reason_code_in_chromium(served: ServerThread, tmp_path: Path) -> None:
    """Each card offers the service's reason codes; the chosen one reaches the ledger."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/inbox?reviewer=sam@bank")
            reviews = page.locator("article.review")
            expect(reviews).to_have_count(2)
            first = reviews.first
            thread_id = first.get_attribute("data-thread")
            assert thread_id
            picker = first.get_by_role("combobox", name=f"Reason code for {thread_id}")
            expect(picker).to_be_visible()
            expect(picker.locator("option[value=missing_risk_warning]")).to_have_count(1)
            picker.select_option("missing_risk_warning")
            first.get_by_role("button", name="Reject", exact=True).click()
            first.get_by_role("textbox", name=f"Rejection reason for {thread_id}").fill(
                "no warning"
            )
            first.get_by_role("button", name="Confirm reject").click()
            expect(page.locator(f'article[data-thread="{thread_id}"]')).to_have_count(0)
            expect(page.locator("#audit-detail")).to_contain_text(
                "Reason code: missing_risk_warning"
            )
            assert errors == []
        finally:
            context.close()
    api = httpx.Client(base_url=served.url, headers={"X-Reviewer": "sam@bank"}, timeout=10)
    last = api.get(f"/reviews/{thread_id}/audit").json()[-1]
    assert (last["event"], last["payload"]["reason_code"]) == ("rejected", "missing_risk_warning")
    counts = api.get("/reason-codes/counts").json()
    assert {"code": "missing_risk_warning", "event": "rejected", "count": 1} in counts


@pytest.fixture
def served_hidden(tmp_path: Path) -> Iterator[ServerThread]:
    """A review router and inbox over a coordinator whose one paused draft is HIDDEN_DRAFT."""
    import contextlib
    from collections.abc import AsyncIterator

    from fastapi import FastAPI
    from langgraph.checkpoint.memory import InMemorySaver

    from hitl_compliance import HitlCoordinator, KeywordRule, Reviewer, build_compliance_graph
    from hitl_compliance.fastapi import create_review_router

    holder: dict[str, HitlCoordinator] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        graph = build_compliance_graph(
            lambda state: HIDDEN_DRAFT,
            rules=[
                KeywordRule("promise", ["guaranteed returns"]),
                KeywordRule("pressure", ["act now"]),
            ],
            checkpointer=InMemorySaver(),
        )
        holder["coordinator"] = coord = HitlCoordinator(graph)
        await coord.process("hidden-1", "Any tips?")
        yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_review_router(lambda: holder["coordinator"], authenticate=lambda: Reviewer("sam"))
    )
    with ServerThread(app) as server:
        yield server


def test_inbox_marks_hidden_evidence_where_it_is_written(
    served_hidden: ServerThread, tmp_path: Path
) -> None:
    """Evidence found through invisible and look-alike characters is marked on those characters."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served_hidden.url}/inbox")
            review = page.locator('article[data-thread="hidden-1"]')
            expect(review).to_have_count(1)
            marks = review.locator(".draft mark")
            expect(marks).to_have_text(
                [
                    "gua\u200branteed\u00a0r\u0435turns",
                    "guaranteed returns",
                    "Act \uff4e\uff4f\uff57",
                ]
            )
            # The marks cover the draft's own characters, nothing more and nothing less.
            assert review.locator(".draft").inner_text() == HIDDEN_DRAFT
            assert errors == []
        finally:
            context.close()


class TestBrowserRequirement:
    """A missing browser skips a developer's run and fails CI's."""

    def test_skips_outside_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without `CI`, a missing Chromium skips with a reason naming the package."""
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.setattr(shutil, "which", lambda name: "/nonexistent/chromium")
        with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
            chromium_path()

    def test_fails_under_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With `CI` set, a missing Chromium is a failure, never a skip."""
        monkeypatch.setenv("CI", "true")
        monkeypatch.setattr(shutil, "which", lambda name: "/nonexistent/chromium")
        with pytest.raises(pytest.fail.Exception, match="must not skip"):
            chromium_path()


# -- a page of another origin against a cookie-authenticated service ---------------

SESSION = "review_session"
"""The session cookie of the cookie-authenticated service: it names the reviewer."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def cookie_reviewer(review_session: Annotated[str | None, Cookie()] = None) -> Reviewer:
    """Cookie authentication, as a deployment's session middleware would resolve it."""
    if review_session not in REVIEWERS:
        raise HTTPException(401, "Sign in first.")
    return Reviewer(review_session, roles=REVIEWERS[review_session])


@dataclass(frozen=True)
class Seen:
    """One request as the service received it, and the status it answered."""

    method: str
    path: str
    origin: str | None
    with_session: bool
    status: int


class RequestLog:
    """ASGI middleware recording every HTTP request (method, origin, cookie, status)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status: list[int] = []

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, record)
        self.seen.append(
            Seen(
                method=scope["method"],
                path=scope["path"],
                origin=headers.get("origin"),
                with_session=f"{SESSION}=" in headers.get("cookie", ""),
                status=status[0] if status else 0,
            )
        )


ATTACKER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>You have won a prize</title></head><body>
<h1>Claim your prize</h1>
<iframe id="framed" src="SERVICE/inbox" width="900" height="500"></iframe>
<iframe name="sink" width="300" height="100"></iframe>
<form id="form" method="post" enctype="text/plain" target="sink"
      action="SERVICE/reviews/THREAD/approve">
  <input type="hidden" name='{"metadata": {"x": "' value='"}}'>
</form>
<script>
  // Each "simple" request a page may send to another origin without asking it first,
  // with the reviewer's cookies; then a JSON fetch, which needs a CORS preflight.
  window.attack = async function () {
    const attempts = [
      ["approve", {mode: "no-cors", body: new Blob(["{}"])}],  // no Content-Type at all
      ["approve", {mode: "no-cors", body: "{}", headers: {"Content-Type": "text/plain"}}],
      ["reject", {mode: "no-cors", body: new URLSearchParams({reason: "spam"})}],
      ["approve", {mode: "cors", body: "{}", headers: {"Content-Type": "application/json"}}],
    ];
    const results = [];
    for (const [decision, init] of attempts) {
      try {
        const url = `SERVICE/reviews/THREAD/${decision}`;
        const response = await fetch(url, {method: "POST", credentials: "include", ...init});
        results.push(response.type);
      } catch (error) {
        results.push(error.name);
      }
    }
    return results;
  };
</script>
</body></html>
"""


def attacker_app(service_url: str, thread_id: str) -> FastAPI:
    """A site of another origin whose page attacks `thread_id`'s review on `service_url`."""
    app = FastAPI()
    html = ATTACKER_PAGE.replace("SERVICE", service_url).replace("THREAD", thread_id)

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    return app


class TestCrossSiteInChromium:
    """A page on another origin can neither decide a review nor frame the inbox."""

    def test_attacker_page_cannot_decide_or_frame(self, tmp_path: Path) -> None:
        """Forms, no-cors and CORS fetches with the session cookie decide nothing; no frame."""
        executable = chromium_path()
        from examples.review_service import create_app
        from playwright.sync_api import expect, sync_playwright

        log = RequestLog(
            create_app(f"sqlite:///{tmp_path / 'csrf.db'}", authenticate=cookie_reviewer)
        )
        with ServerThread(log) as service:
            reviewer = httpx.Client(base_url=service.url, cookies={SESSION: "sam@bank"}, timeout=10)
            seeded = reviewer.get("/reviews").json()["items"]
            target = next(r["thread_id"] for r in seeded if "Equity" in r["customer_message"])
            other = next(r["thread_id"] for r in seeded if r["thread_id"] != target)
            with (
                ServerThread(attacker_app(service.url, target)) as attacker,
                sync_playwright() as pw,
            ):
                assert attacker.url != service.url  # same host, another port: another origin
                context = pw.chromium.launch_persistent_context(
                    str(tmp_path / "chromium-profile"),
                    executable_path=executable,
                    headless=True,
                    args=CHROMIUM_FLAGS,
                )
                try:
                    # The reviewer is signed in to the service (a host-only, Lax cookie).
                    context.add_cookies(
                        [
                            {
                                "name": SESSION,
                                "value": "sam@bank",
                                "url": service.url,
                                "httpOnly": True,
                                "sameSite": "Lax",
                            }
                        ]
                    )
                    page = context.new_page()
                    console: list[str] = []
                    page.on("console", lambda message: console.append(message.text))
                    page.goto(f"{attacker.url}/")

                    # (a) fetch: three simple requests go out (opaque answers); the JSON one
                    # is stopped at its preflight, which the service does not allow.
                    results = page.evaluate("attack()")
                    assert results == ["opaque", "opaque", "opaque", "TypeError"]
                    # (a) a form post (text/plain, shaped like JSON) into a hidden frame.
                    with page.expect_response(
                        lambda r: r.request.method == "POST" and r.url.endswith("/approve")
                    ) as posted:
                        page.evaluate("document.getElementById('form').submit()")
                    assert posted.value.status == 403

                    # (b) the framed inbox: loaded by the browser, refused by it.
                    framed = page.locator("#framed").element_handle().content_frame()
                    assert framed is not None
                    deadline = time.monotonic() + 10
                    while not any("frame-ancestors" in text for text in console):
                        assert time.monotonic() < deadline, console
                        page.wait_for_timeout(100)
                    assert framed.url != f"{service.url}/inbox", framed.url
                    assert framed.locator("#whoami").count() == 0

                    # The same browser, on the service's own page, decides with its cookie.
                    page.goto(f"{service.url}/inbox")
                    expect(page.locator("#whoami")).to_have_text(
                        "Signed in as sam@bank (smcr_approver)"
                    )
                    mine = page.locator(f'article.review[data-thread="{other}"]')
                    mine.get_by_role("button", name="Approve", exact=True).click()
                    expect(page.locator(f'article[data-thread="{other}"]')).to_have_count(0)
                finally:
                    context.close()

            # The attacked review is still pending, its audit trail untouched.
            review = reviewer.get(f"/reviews/{target}")
            assert review.status_code == 200
            assert review.json()["thread_id"] == target
            audit = reviewer.get(f"/reviews/{target}/audit").json()
            assert [(row["event"], row["actor"]) for row in audit] == [("paused", "system")]
            assert [r["thread_id"] for r in reviewer.get("/reviews").json()["items"]] == [target]
            reviewer.close()

        # Every attack reached the service with the session cookie and was refused as
        # cross-origin; the JSON fetch never got past its preflight.
        attacks = [s for s in log.seen if target in s.path and s.origin == attacker.url]
        assert [(s.method, s.path.rsplit("/", 1)[1]) for s in attacks] == [
            ("POST", "approve"),
            ("POST", "approve"),
            ("POST", "reject"),
            ("OPTIONS", "approve"),
            ("POST", "approve"),
        ]
        assert all(s.with_session for s in attacks if s.method == "POST")
        assert {s.status for s in attacks if s.method == "POST"} == {403}
        inbox_loads = [s for s in log.seen if s.path == "/inbox" and s.status == 200]
        assert len(inbox_loads) == 2  # the frame's (refused by the browser) and the reviewer's


@pytest.fixture
def served_parallel(tmp_path: Path) -> Iterator[ServerThread]:
    """The review router and inbox over a gated agent paused on two tool calls at once."""
    import contextlib
    from collections.abc import AsyncIterator

    from examples.gated_agent import app as gated_app
    from fastapi import FastAPI

    from hitl_compliance import Reviewer, open_backend
    from hitl_compliance.fastapi import create_review_router

    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backend(f"sqlite:///{tmp_path / 'parallel.db'}") as backend:
            holder["coordinator"] = coord = gated_app(backend)
            result = await coord.process("two-1", "Pay £5,000 to my landlord and £2,000 to my gym")
            assert result.status == "paused"
            yield

    officer = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))
    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_review_router(lambda: holder["coordinator"], authenticate=lambda: officer)
    )
    with ServerThread(app) as server:
        yield server


def test_two_reviews_of_one_thread_decided_from_the_inbox(
    served_parallel: ServerThread, tmp_path: Path
) -> None:
    """Each card decides its own review (its review_id): reject one call, approve the other."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served_parallel.url}/inbox")
            cards = page.locator('article[data-thread="two-1"]')
            expect(cards).to_have_count(2)
            gym = cards.filter(has_text="55555555")
            gym.get_by_role("button", name="Reject", exact=True).click()
            gym.get_by_role("textbox").last.fill("unknown payee")
            gym.get_by_role("button", name="Confirm reject").click()
            expect(cards).to_have_count(1)
            landlord = cards.filter(has_text="12345678")
            landlord.get_by_role("button", name="Approve", exact=True).click()
            expect(cards).to_have_count(0)
            assert errors == []
        finally:
            context.close()


def test_tool_call_arguments_edited_in_the_inbox(
    served_parallel: ServerThread, tmp_path: Path
) -> None:
    """A tool call's card shows its name and arguments; bad JSON is refused in the page,
    a blocked edit is refused by the service, an edited call is approved and runs."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served_parallel.url}/inbox")
            cards = page.locator('article[data-thread="two-1"]')
            expect(cards).to_have_count(2)
            gym = cards.filter(has_text="55555555")
            expect(gym.locator(".tool-name")).to_have_text("transfer")
            gym.get_by_role("button", name="Edit arguments").click()
            editor = gym.get_by_role("textbox", name="Tool arguments (JSON) for two-1")
            editor.fill("{not json")
            gym.get_by_role("button", name="Approve edited call").click()
            expect(page.locator("#banner")).to_contain_text("Tool arguments must be JSON")
            editor.fill('{"amount_gbp": 30000, "to_account": "55555555"}')
            gym.get_by_role("button", name="Approve edited call").click()
            expect(page.locator("#banner")).to_contain_text("transfer_limits")
            expect(cards).to_have_count(2)
            editor.fill('{"amount_gbp": 200, "to_account": "55555555"}')
            gym.get_by_role("button", name="Approve edited call").click()
            expect(cards).to_have_count(1)
            assert errors == []
        finally:
            context.close()


def test_a_stop_shows_a_banner_in_chromium(served: ServerThread, tmp_path: Path) -> None:
    """While delivery is stopped the inbox says who stopped it, since when and why."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    head = httpx.Client(base_url=served.url, headers={"X-Reviewer": "head@bank"}, timeout=10)
    sam = httpx.Client(base_url=served.url, headers={"X-Reviewer": "sam@bank"}, timeout=10)
    refused = sam.post("/stops/on", json={"scope": "all", "reason": "not mine to stop"})
    assert refused.status_code == 403
    stopped = head.post("/stops/on", json={"scope": "all", "reason": "FCA dear-CEO letter"})
    assert stopped.status_code == 200
    banner = stopped.json()["banner"]
    assert banner.startswith("Delivery stopped (all) by head@bank since ")
    assert banner.endswith(": FCA dear-CEO letter")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/inbox?reviewer=sam@bank")
            expect(page.locator("article.review")).to_have_count(2)
            stops = page.locator("#stops")
            expect(stops).to_be_visible()
            expect(stops.locator("p.stop")).to_have_text([banner])
            shot = tmp_path / "stop-banner.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("HITL_UPDATE_SCREENSHOTS") or not STOP_SCREENSHOT.exists():
                shutil.copyfile(shot, STOP_SCREENSHOT)
            resumed = head.post("/stops/off", json={"scope": "all"})
            assert resumed.json() == []
            expect(stops).to_be_hidden(timeout=12_000)  # the page re-reads /stops every 5 s
            assert errors == []
        finally:
            context.close()
    audit = head.get("/reviews/hitl:delivery/audit").json()
    assert [(r["event"], r["actor"]) for r in audit] == [
        ("delivery_stopped", "head@bank"),
        ("delivery_resumed", "head@bank"),
    ]
    head.close()
    sam.close()


@dataclass
class QaServed:
    """A QA-sampling review service on uvicorn, with its coordinator and event loop."""

    server: ServerThread
    holder: dict[str, Any]

    def run(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `work(coordinator)` on the server's own loop (its stores live there)."""
        import asyncio

        future = asyncio.run_coroutine_threadsafe(
            work(self.holder["coordinator"]), self.holder["loop"]
        )
        return future.result(10)


@pytest.fixture
def served_qa() -> Iterator[QaServed]:
    """The review router over a coordinator sampling every auto-delivered reply for QA.

    Two threads, `qa-1` and `qa-2`, got a clean reply the rules let through, so
    each has a QA review; the caller is `qa@bank`, holding the QA role.
    """
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from langgraph.checkpoint.memory import InMemorySaver

    from hitl_compliance import HitlCoordinator, KeywordRule, QaSampling, build_compliance_graph
    from hitl_compliance.fastapi import create_review_router

    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        graph = build_compliance_graph(
            lambda state: "Our branches open at 9am.",
            rules=[KeywordRule("promise", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
        )
        coord = HitlCoordinator(graph, qa_sampling=QaSampling(rate=1.0, roles=frozenset({"qa"})))
        for thread in ("qa-1", "qa-2"):
            await coord.process(thread, "When do you open?")
        holder["coordinator"] = coord
        holder["loop"] = asyncio.get_running_loop()
        yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_review_router(
            lambda: holder["coordinator"],
            authenticate=lambda: Reviewer("qa@bank", roles=frozenset({"qa"})),
        )
    )
    with ServerThread(app) as server:
        yield QaServed(server, holder)


def test_qa_verdicts_recorded_from_the_inbox(served_qa: QaServed, tmp_path: Path) -> None:
    """The QA panel lists the sample; a disagree needs a code; verdicts reach the ledger."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served_qa.server.url}/inbox")
            panel = page.locator("#qa-panel")
            cards = panel.locator("article.qa")
            expect(cards).to_have_count(2)
            first = panel.locator('article[data-qa="qa:qa-1:1"]')
            expect(first.locator(".qa-id")).to_have_text("qa:qa-1:1")
            first.get_by_role("button", name="Disagree", exact=True).click()
            expect(page.locator("#banner")).to_contain_text("reason_code")
            expect(cards).to_have_count(2)
            first.get_by_role("combobox", name="QA reason code for qa:qa-1:1").select_option(
                "missing_risk_warning"
            )
            first.get_by_role("textbox", name="QA note for qa:qa-1:1").fill("no risk line")
            first.get_by_role("button", name="Disagree", exact=True).click()
            expect(cards).to_have_count(1)
            expect(page.locator("#banner")).to_contain_text("QA verdict on qa:qa-1:1: disagree")
            expect(page.locator("#audit tbody tr").last).to_have_attribute(
                "data-event", "qa_verdict"
            )
            panel.locator('article[data-qa="qa:qa-2:1"]').get_by_role(
                "button", name="Agree", exact=True
            ).click()
            expect(panel).to_be_hidden()
            assert errors == []
        finally:
            context.close()

    async def check(coord: Any) -> None:
        disagreed = await coord.qa_review("qa:qa-1:1")
        assert (disagreed.verdict, disagreed.reason_code, disagreed.reviewer) == (
            "disagree",
            "missing_risk_warning",
            "qa@bank",
        )
        assert (await coord.qa_review("qa:qa-2:1")).verdict == "agree"
        for thread in ("qa-1", "qa-2"):
            rows = [r for r in await coord.audit_log(thread) if r.event == "qa_verdict"]
            assert len(rows) == 1, rows
        assert rows[0].payload["verdict"] == "agree"
        assert (await coord.verify_audit()).ok

    served_qa.run(check)
