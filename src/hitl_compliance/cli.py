"""The `hitl-compliance` command line (also `python -m hitl_compliance`).

`demo` runs the FCA support-agent scenario end to end on an embedded SQLite
file: a safe reply is delivered, a risky one pauses for an officer, the
officer edits and approves it, a reply leaking account details is blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import uuid
from collections.abc import Sequence

from hitl_compliance._fca import fca_drafter, fca_rules
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.errors import HitlError
from hitl_compliance.graph import build_compliance_graph
from hitl_compliance.models import ProcessResult

__all__ = ["main"]

DEFAULT_BACKEND = "sqlite:///hitl_compliance.db"


def _say(text: str = "") -> None:
    indent = " " * (len(text) - len(text.lstrip()) + 4)
    print(textwrap.fill(text, width=92, subsequent_indent=indent) if text else "")


def _show(result: ProcessResult) -> None:
    _say(f"  status: {result.status}")
    _say(f"  draft:  {result.draft_response}")
    for finding in result.violations:
        evidence = ", ".join(repr(e) for e in finding.evidence)
        _say(f"  finding: {finding.rule} ({finding.verdict}): {finding.reason} [{evidence}]")
    if result.status != "paused":
        _say(f"  customer receives: {result.agent_response!r} (from {result.agent_type})")


async def run_demo(backend_url: str, style: str) -> int:
    """Run the FCA scenario end to end and print each step."""
    from hitl_compliance.backends import open_backend

    run = uuid.uuid4().hex[:6]
    async with open_backend(backend_url) as backend:
        graph = build_compliance_graph(
            fca_drafter,
            rules=fca_rules(),
            checkpointer=backend.checkpointer,
            style="command_resume" if style == "command_resume" else "interrupt_before",
            rejection_message="Sorry, I can't help with that here. A colleague will contact you.",
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        _say(f"Backend: {backend.url}   pause style: {style}")
        _say()

        _say("1. A customer asks something harmless; the draft passes every rule.")
        _show(await coord.process(f"faq-{run}", "What are your opening hours?"))
        _say()

        thread = f"advice-{run}"
        _say("2. A customer asks for investment advice; the LLM's draft breaks two rules,")
        _say("   so the graph pauses before `human_approval` and nothing reaches the customer.")
        _show(await coord.process(thread, "Should I move my savings into the Global Equity Fund?"))
        _say()

        _say("3. The compliance officer's queue (read from the review store, not checkpoints):")
        for item in await coord.pending():
            _say(f"  - {item.thread_id}: {item.draft_response!r}")
            _say(
                f"    rules: {', '.join(v.rule for v in item.violations)}; draft sha256 "
                f"{item.draft_sha256[:12]}...; paused at checkpoint {item.checkpoint_id}"
            )
        _say()

        _say("4. The officer edits the reply and approves it; the graph resumes without")
        _say("   re-running the LLM, and the decision is recorded.")
        edited = (
            "I can't recommend a specific fund, but one of our qualified advisers can review "
            "your circumstances. Would you like us to book a call?"
        )
        _show(
            await coord.approve(
                thread, reviewer="officer@bank", response=edited, metadata={"ticket": "C-9"}
            )
        )
        _say()

        _say("5. A second decision on the same review is refused:")
        try:
            await coord.reject(thread, reviewer="someone-else@bank", reason="too late")
        except HitlError as exc:
            _say(f"  {type(exc).__name__}: {exc}")
        _say()

        _say("6. The audit log of that thread:")
        for record in await coord.audit_log(thread):
            _say(
                f"  {record.at:%H:%M:%S} {record.event:<9} by {record.actor:<14} "
                f"checkpoint {record.checkpoint_id}"
            )
        _say()

        _say("7. A draft leaking account details is blocked outright, no human needed:")
        _show(await coord.process(f"leak-{run}", "What is the account number on my joint account?"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl-compliance",
        description="Human-in-the-loop compliance graphs on LangGraph.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the FCA support-agent scenario end to end")
    demo.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help=f"backend URL (default {DEFAULT_BACKEND}; also memory:// or postgresql://...)",
    )
    demo.add_argument(
        "--style", choices=["interrupt_before", "command_resume"], default="interrupt_before"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hitl-compliance` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(run_demo(args.backend, args.style))
    except HitlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1
