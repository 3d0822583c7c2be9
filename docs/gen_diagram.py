"""Generate the Mermaid diagrams of the compliance graph shown in the docs.

The diagrams are drawn by LangGraph from the real compiled graph, so they
cannot drift from the code: `tests/docs/test_docs_diagram.py` fails when the
committed files differ from what this script generates.

Usage (from the repository root):

    python docs/gen_diagram.py          # rewrite docs/concepts/*.mmd
    python docs/gen_diagram.py --check  # exit 1 if a committed diagram is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import PauseStyle, build_compliance_graph

CONCEPTS = Path(__file__).resolve().parent / "concepts"

# One file per pause style; graph.mmd is the default (static) style.
DIAGRAMS: dict[PauseStyle, Path] = {
    "interrupt_before": CONCEPTS / "graph.mmd",
    "command_resume": CONCEPTS / "graph-command-resume.mmd",
}


def _never_called(state: object) -> str:
    raise AssertionError("drawing a graph never runs the drafter")


def mermaid(style: PauseStyle) -> str:
    """The Mermaid source of the compliance graph built in `style`."""
    graph = build_compliance_graph(_never_called, checkpointer=InMemorySaver(), style=style)
    return graph.get_graph().draw_mermaid()


def generated() -> dict[Path, str]:
    """Every diagram file and the text it should hold."""
    return {path: mermaid(style) for style, path in DIAGRAMS.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the diagrams, or with `--check` report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = [
        path
        for path, text in generated().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"stale: {path}; run `python docs/gen_diagram.py`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated().items():
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
