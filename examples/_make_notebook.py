"""Write `examples/notebook_quickstart.ipynb` from the cells below.

The notebook is generated, so its code is reviewed here as plain Python and
the committed `.ipynb` carries no outputs or random cell ids. After editing a
cell, regenerate it from the repository root:

    python examples/_make_notebook.py

`tests/examples/test_notebook.py` checks that the committed notebook matches
this script and executes it on a Jupyter kernel of the current environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

PATH = Path(__file__).with_name("notebook_quickstart.ipynb")

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """\
# hitl-compliance in a notebook

A support agent drafts replies with an LLM. Risky drafts must not reach the
customer until a compliance officer decides. This notebook walks through one
conversation: **process -> pending -> approve -> audit log**.

Jupyter runs an event loop, so the cells use top-level `await` (no
`asyncio.run`). Results, reviews and audit records render as tables.""",
    ),
    (
        "code",
        """\
from IPython.display import Markdown, display
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    NotAuthorizedError,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
)

drafts = {  # a stand-in for the LLM
    "What are your opening hours?": "We are open 9am to 5pm, Monday to Friday.",
    "Should I buy the Global Equity Fund?": (
        "Yes, you should invest in it: guaranteed returns of 8% a year."
    ),
}
rules = [
    KeywordRule("advice", ["you should invest"], reason="personal recommendation"),
    KeywordRule("guarantee", ["guaranteed returns"], reason="misleading promotion"),
]
graph = build_compliance_graph(
    lambda state: drafts[state.customer_message],
    rules=rules,
    checkpointer=InMemorySaver(),
)
policy = RoleBasedPolicy(default_roles="smcr_approver")  # who may decide
coord = HitlCoordinator(graph, policy=policy)""",
    ),
    (
        "markdown",
        """\
## The graph

`draw_mermaid()` gives Mermaid source, generated locally; JupyterLab 4.1+
(and GitHub) draw it from a Markdown `mermaid` block.""",
    ),
    (
        "code",
        """\
Markdown(f"```mermaid\\n{graph.get_graph().draw_mermaid()}\\n```")""",
    ),
    (
        "markdown",
        """\
## A safe reply is delivered at once""",
    ),
    (
        "code",
        """\
await coord.process("chat-1", "What are your opening hours?")""",
    ),
    (
        "markdown",
        """\
## A risky reply pauses for review

Nothing reaches the customer: the graph waits at `human_approval`, and the
review is on the officer's queue.""",
    ),
    (
        "code",
        """\
result = await coord.process("chat-2", "Should I buy the Global Equity Fund?")
result""",
    ),
    (
        "code",
        """\
queue = await coord.pending()
for review in queue:
    display(review)""",
    ),
    (
        "markdown",
        """\
## Only an authorised officer may approve

A refused decision changes nothing (and is audited). The officer with the
role edits the reply and approves it; the LLM does not run again.""",
    ),
    (
        "code",
        """\
try:
    await coord.approve("chat-2", reviewer="intern@bank")
except NotAuthorizedError as exc:
    print(f"refused: {exc}")

officer = Reviewer("officer@bank", roles=frozenset({"smcr_approver"}))
await coord.approve(
    "chat-2", reviewer=officer, response="An adviser will call you to discuss your options."
)""",
    ),
    (
        "markdown",
        """\
## The audit log

Who did what, on which checkpoint, when. Each `AuditRecord` also renders as a
table on its own (`display(record)`); here the whole log is one table.""",
    ),
    (
        "code",
        """\
table = ["| seq | at | event | actor | checkpoint |", "|---|---|---|---|---|"]
for r in await coord.audit_log("chat-2"):
    table.append(f"| {r.seq} | {r.at:%H:%M:%S} | {r.event} | {r.actor} | {r.checkpoint_id} |")
Markdown("\\n".join(table))""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook, with stable cell ids and no outputs."""
    cells = []
    for number, (kind, source) in enumerate(CELLS, start=1):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"cell-{number:02d}"
        cells.append(cell)
    notebook = new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return notebook


def main() -> int:
    """Write the notebook next to this script."""
    nbformat.write(build(), PATH)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
