"""`EvidencePack`: the page escapes everything, loads nothing, survives erasure, prints as PDF."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    EvidencePack,
    HitlCoordinator,
    InvalidInputError,
    KeywordRule,
    RuleResult,
    build_compliance_graph,
)
from hitl_compliance._coordination.packs import highlights, word_diff
from hitl_compliance.evidence_pack import ERASED, pdf_available, text_of
from hitl_compliance.testing import FakeClock

SCRIPT = '<script>alert("x")</script> Buy now: guaranteed returns! <img src=x onerror=alert(1)>'


async def packed(draft: str = SCRIPT, message: str = "Is it safe? <i>really</i>") -> EvidencePack:
    """The pack of a thread whose review of `draft` an officer approved with an edit."""
    graph = build_compliance_graph(
        lambda state: draft,
        rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")],
        checkpointer=InMemorySaver(),
    )
    coord = HitlCoordinator(graph, clock=FakeClock())
    await coord.process("t-1", message)
    await coord.approve("t-1", reviewer="officer@bank", response="Returns can fall.")
    return await coord.evidence_pack("t-1")


class TestPage:
    async def test_draft_with_script_is_escaped(self) -> None:
        """A draft holding `<script>` and an `<img onerror>` shows as text, never as markup."""
        pack = await packed()
        assert "<script" not in pack.html
        assert "<img" not in pack.html
        assert "<i>" not in pack.html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pack.html
        assert "&lt;img src=x onerror=alert(1)&gt;" in pack.html
        assert "Is it safe? &lt;i&gt;really&lt;/i&gt;" in pack.html

    async def test_loads_nothing(self) -> None:
        """Inline CSS only: no script, stylesheet link, image, frame or URL to fetch."""
        html = (await packed(draft="Buy now: guaranteed returns!", message="Safe?")).html
        assert html.startswith("<!DOCTYPE html>")
        assert "<style>" in html
        assert "@media print" in html
        assert "page-break-before" in html
        for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import"):
            assert tag not in html
        assert not re.search(r"(src|href)\s*=", html)
        assert "url(" not in html

    async def test_names_the_manifest_hash(self) -> None:
        """The page names the SHA-256 of the JSON document it was rendered from."""
        pack = await packed()
        assert pack.manifest_sha256 in pack.html


class TestErased:
    async def test_erased_values_render_as_erased(self) -> None:
        """Values erasure replaced (`{"$erased": true}`) show as "erased"; nothing crashes."""
        data: dict[str, Any] = (await packed()).data
        marker = {"$erased": True, "sha256": "ab" * 32}
        data = copy.deepcopy(data)
        data["customer_message"] = copy.deepcopy(marker)
        approved = next(d for d in data["decisions"] if d["event"] == "approved")
        approved["reason"] = copy.deepcopy(marker)
        for row in data["ledger"]:
            if row["event"] == "approved":
                row["payload"]["response"] = copy.deepcopy(marker)
                row["payload"]["delivered"] = copy.deepcopy(marker)
        pack = EvidencePack.from_data(data)
        assert f'<div class="box"><em>{ERASED}</em></div>' in pack.html
        assert f"<td>{ERASED}</td>" in pack.html
        assert '"response": "erased"' in pack.html.replace("&quot;", '"')
        assert "$erased" not in pack.html

    def test_text_of(self) -> None:
        """`text_of`: erased markers, None and non-text values as the text a pack shows."""
        assert text_of({"$erased": True}) == ERASED
        assert text_of({"$erased": False}) == '{"$erased": false}'
        assert text_of(None) == ""
        assert text_of("plain") == "plain"


class TestHighlights:
    def test_overlapping_evidence_merges(self) -> None:
        """Overlapping quotes of two rules become one span naming both, case-insensitively."""
        text = "Guaranteed returns, guaranteed."
        found = highlights(
            text,
            [
                RuleResult("a", "review", evidence=("guaranteed returns",)),
                RuleResult("b", "review", evidence=("GUARANTEED",)),
            ],
        )
        assert found == [
            {"start": 0, "end": 18, "rules": ["a", "b"]},
            {"start": 20, "end": 30, "rules": ["b"]},
        ]

    @given(st.text(max_size=40), st.lists(st.text(min_size=1, max_size=5), max_size=4))
    def test_spans_are_ordered_and_in_the_text(self, text: str, quotes: list[str]) -> None:
        """Spans never overlap, stay inside the text, and each holds a quote."""
        found = highlights(text, [RuleResult("r", "review", evidence=tuple(quotes))])
        ends = 0
        for span in found:
            assert ends <= span["start"] < span["end"] <= len(text)
            ends = span["end"]


class TestWordDiff:
    @given(st.text(max_size=60), st.text(max_size=60))
    def test_diff_rebuilds_both_texts(self, before: str, after: str) -> None:
        """Kept and removed runs give the draft back; kept and added runs give the edit."""
        runs = word_diff(before, after)
        assert "".join(t for op, t in runs if op != "+") == before
        assert "".join(t for op, t in runs if op != "-") == after
        assert {op for op, _ in runs} <= {"=", "-", "+"}


class TestWrite:
    async def test_refuses_a_file(self, tmp_path: Path) -> None:
        """A path that is a file is InvalidInputError, and nothing is written beside it."""
        target = tmp_path / "taken"
        target.write_text("mine")
        with pytest.raises(InvalidInputError):
            (await packed()).write(target)
        assert target.read_text() == "mine"
        assert os.listdir(tmp_path) == ["taken"]

    async def test_creates_the_directory(self, tmp_path: Path) -> None:
        """A missing directory is created with the pack's files in it."""
        files = (await packed()).write(tmp_path / "a" / "b")
        assert files.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        assert files.json.parent == tmp_path / "a" / "b"


class TestPdf:
    async def test_pdf_holds_the_thread_id(self, tmp_path: Path) -> None:
        """With the pdf extra, `evidence.pdf` is a PDF whose text names the thread and review."""
        if not pdf_available():
            reason = (
                'the pdf extra is not installed (pip install -e ".[dev]"; WeasyPrint needs '
                "the Pango libraries: apt-get install libpango-1.0-0 libpangoft2-1.0-0)"
            )
            if os.environ.get("CI"):
                pytest.fail(f"CI is set, so this must not skip: {reason}")
            pytest.skip(reason)
        from pypdf import PdfReader

        pack = await packed()
        files = pack.write(tmp_path)
        assert files.pdf is not None
        assert files.pdf.read_bytes().startswith(b"%PDF-")
        text = "".join(page.extract_text() for page in PdfReader(files.pdf).pages)
        assert "t-1" in text
        assert pack.review_id in text.replace("\n", "")
        assert "What the customer asked" in text
