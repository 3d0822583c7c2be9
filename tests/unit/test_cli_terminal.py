"""CLI output on a real (emulated) terminal: supplied text cannot hide or rewrite anything.

Customer messages, drafts, requesters and reviewers are text other people
chose. Each test seeds a real SQLite file through the library, runs the CLI
as a subprocess, feeds its stdout to the `pyte` terminal emulator (as a tty
would, `\\n` becoming `\\r\\n`), and reads the screen: every piece of text a
control sequence tried to erase, overwrite or swallow must still be on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyte
import pytest

from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph, open_backend
from hitl_compliance._terminal import visible
from hitl_compliance.testing import ScriptedDrafter

# Each value hides the HIDDEN-... marker on a terminal unless escaped.
PENDING_THREAD = "HIDDEN-TID\x1b[1K"  # CSI 1K: erase from the line start to the cursor
CUSTOMER = "Hello HIDDEN-CSI\x1b[2K\x1b[1Gplain question"  # erase the line, back to column 1
DRAFT = "Returns are guaranteed HIDDEN-C1\x9b9Dxxxxxxxxx"  # C1 CSI: 9 left, then overwrite
REQUESTER = "agent\x1b]0;HIDDEN-OSC\x07"  # OSC 0 (window title) ended by BEL swallows text
REJECTED_THREAD = "t-rejected"
REVIEWER = "HIDDEN-BS" + "\b" * 9 + "officer@x"  # backspaces, then overwrite
REASON = "HIDDEN-CR\rbad idea"  # carriage return, then overwrite
RAW_CONTROLS = ("\x1b", "\x9b", "\x07", "\b", "\r")


@pytest.fixture
async def seeded(tmp_path: Path) -> str:
    """A SQLite backend URL holding one pending and one rejected review full of tricks."""
    url = f"sqlite:///{tmp_path / 'tricks.db'}"
    async with open_backend(url) as backend:
        graph = build_compliance_graph(
            ScriptedDrafter({CUSTOMER: DRAFT}, default="It is guaranteed: {message}"),
            rules=[KeywordRule("guarantees", ["guaranteed"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        paused = await coord.process(PENDING_THREAD, CUSTOMER, requested_by=REQUESTER)
        assert paused.status == "paused"
        assert (await coord.process(REJECTED_THREAD, "Any deal?")).status == "paused"
        rejected = await coord.reject(REJECTED_THREAD, reviewer=REVIEWER, reason=REASON)
        assert rejected.status == "rejected"
    return url


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m hitl_compliance ARGV` in a fresh process, as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "hitl_compliance", *argv],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"},
    )


def screen_of(output: str) -> str:
    """What a terminal shows after printing `output` (one string, lines joined by newlines)."""
    screen = pyte.Screen(240, 200)
    stream = pyte.Stream(screen)
    stream.feed(output.replace("\n", "\r\n"))  # what the tty's onlcr does
    return "\n".join(line.rstrip() for line in screen.display)


class TestHiddenTextStaysVisible:
    """Every marker a control sequence tried to hide is on the emulated screen."""

    @pytest.mark.parametrize(
        ("argv", "markers"),
        [
            (("pending",), ["HIDDEN-TID", "HIDDEN-C1"]),
            (("show", PENDING_THREAD), ["HIDDEN-TID", "HIDDEN-CSI", "HIDDEN-C1", "HIDDEN-OSC"]),
            (("show", REJECTED_THREAD), ["HIDDEN-BS", "HIDDEN-CR"]),
            (("audit",), ["HIDDEN-TID", "HIDDEN-BS"]),
        ],
        ids=["pending", "show-pending", "show-rejected", "audit"],
    )
    def test_markers_survive_rendering(
        self, seeded: str, argv: tuple[str, ...], markers: list[str]
    ) -> None:
        """pending, show and audit print supplied text with its control characters escaped."""
        done = cli(*argv, "--backend", seeded)
        assert done.returncode == 0, done.stderr
        screen = screen_of(done.stdout)
        for marker in markers:
            assert marker in screen, f"{marker} hidden on the screen of {argv[0]}:\n{screen}"
        for raw in RAW_CONTROLS:
            assert raw not in done.stdout, f"raw {raw!r} reached the terminal"

    def test_escapes_are_shown_as_text(self, seeded: str) -> None:
        """show prints each control character as its escape, so a reader sees the trick."""
        done = cli("show", PENDING_THREAD, "--backend", seeded)
        assert done.returncode == 0, done.stderr
        screen = screen_of(done.stdout)
        assert "HIDDEN-TID\\x1b[1K" in screen
        assert "HIDDEN-C1\\x9b9Dxxxxxxxxx" in screen
        assert "HIDDEN-OSC\\x07" in screen

    def test_error_line_is_escaped(self, seeded: str) -> None:
        """A refusal naming a supplied thread id escapes it on stderr and changes nothing."""
        done = cli("approve", PENDING_THREAD, "--reviewer", REVIEWER, "--backend", seeded)
        assert done.returncode == 1
        assert "HIDDEN-BS" in screen_of(done.stderr)
        assert not any(raw in done.stderr for raw in RAW_CONTROLS)
        still = cli("pending", "--json", "--backend", seeded)
        assert [r["thread_id"] for r in json.loads(still.stdout)] == [PENDING_THREAD]


class TestJsonStaysLossless:
    """--json output is escaped for the terminal and still decodes to the exact text."""

    def test_pending_json_round_trips(self, seeded: str) -> None:
        """C1 controls are \\u-escaped in JSON, so the terminal never sees them raw."""
        done = cli("pending", "--json", "--backend", seeded)
        assert done.returncode == 0, done.stderr
        assert not any(raw in done.stdout for raw in RAW_CONTROLS)
        [review] = json.loads(done.stdout)
        assert review["thread_id"] == PENDING_THREAD
        assert review["customer_message"] == CUSTOMER
        assert review["draft_response"] == DRAFT
        assert review["requested_by"] == REQUESTER


class TestVisible:
    """The one escaping helper every CLI output path uses."""

    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("a\x1b[2Kb", "a\\x1b[2Kb"),
            ("bell\x07", "bell\\x07"),
            ("back\bspace", "back\\x08space"),
            ("cr\rlf\n", "cr\\rlf\\n"),
            ("c1\x9b2J\x85", "c1\\x9b2J\\x85"),
            ("del\x7f", "del\\x7f"),
            ("rtl\u202eevil", "rtl\\u202eevil"),
            ("tab\tok", "tab\\tok"),
        ],
    )
    def test_controls_are_escaped(self, text: str, shown: str) -> None:
        """C0, DEL, C1 and bidi controls become backslash escapes; nothing else changes."""
        assert visible(text) == shown

    def test_plain_text_is_unchanged(self) -> None:
        """Ordinary text, accents, emoji and backslashes print as they are."""
        text = "Café £5 — ok 👍 C:\\path \"quoted\" 'single'"
        assert visible(text) == text

    def test_multiline_mode_keeps_newlines(self) -> None:
        """With keep_newlines, line breaks stay (for blocks of our own layout)."""
        assert visible("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
