"""An evidence pack's page in headless Chromium: it renders, prints, and requests nothing else.

Skips (with the reason) when Chromium or `playwright` is missing, except under
CI, as the inbox's browser test does. It saves a screenshot that replaces
`docs/assets/evidence-pack.png` (shown by docs/guides/evidence-packs.md) when
that file is missing or `HITL_UPDATE_SCREENSHOTS=1`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    Ed25519Signer,
    EvidencePack,
    HitlCoordinator,
    Reviewer,
    Sealing,
    build_compliance_graph,
)
from hitl_compliance._fca import SMCR_APPROVER, fca_policy, fca_rules
from hitl_compliance.testing import FakeClock, ScriptedDrafter
from tests.api.test_browser import CHROMIUM_FLAGS, chromium_path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "assets" / "evidence-pack.png"
QUESTION = "Should I move my savings into the Global Equity Fund?"
DRAFT = "You should invest in the Global Equity Fund: guaranteed returns of 8% a year."
EDIT = (
    "I can't recommend a particular fund here. One of our qualified advisers will call "
    "you to talk through your options and the risks: the value of investments can fall."
)


async def fca_pack() -> EvidencePack:
    """The FCA scenario's review, edited and approved by an SM&CR approver, ledger sealed."""
    signer = Ed25519Signer.generate()
    graph = build_compliance_graph(
        ScriptedDrafter({QUESTION: DRAFT}),
        rules=fca_rules(),
        checkpointer=InMemorySaver(),
    )
    coord = HitlCoordinator(
        graph,
        policy=fca_policy(),
        clock=FakeClock(),
        sealing=Sealing(signer, every_rows=1, every=None),
    )
    await coord.process("conv-2031-0417", QUESTION, requested_by="support-agent")
    sam = Reviewer("sam@bank", roles=frozenset({SMCR_APPROVER}))
    await coord.approve(
        "conv-2031-0417", reviewer=sam, response=EDIT, reason_code="unsuitable_advice"
    )
    return await coord.evidence_pack("conv-2031-0417", public_key=signer.public_key_pem())


def test_page_renders_offline_in_chromium(tmp_path: Path) -> None:
    """Opened from disk, the page shows every section and makes no request but its own."""
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    pack = asyncio.run(fca_pack())
    files = pack.write(tmp_path / "pack")
    url = files.html.as_uri()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.wait_for_load_state("networkidle")
            expect(page.locator("h2")).to_have_text(
                [
                    "What the customer asked",
                    "What the AI drafted",
                    "Why it was held",
                    "Who decided, when",
                    "What was sent",
                    "The ledger record",
                    "Verification",
                ]
            )
            expect(page.locator("mark")).to_have_text(["You should invest", "guaranteed returns"])
            expect(page.locator("body")).to_contain_text("Last signed head: seq")
            expect(page.locator("body")).to_contain_text("matches the rows: rows 1..3 are complete")
            assert page.locator("ins").count() > 0
            # Printing: the ledger starts a page of its own.
            page.emulate_media(media="print")
            assert page.locator("section.ledger").evaluate(
                "e => getComputedStyle(e).breakBefore"
            ) in ("page", "always")
            page.emulate_media(media="screen")
            assert errors == []
            shot = tmp_path / "evidence-pack.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests == [url]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("HITL_UPDATE_SCREENSHOTS") or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
